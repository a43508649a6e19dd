# Sourced by the trial scripts.
#
# `private_apt DIR "TYPES SUITE"...` sets up an
# apt configuration of their own under DIR, for Debian suites the system's apt
# does not use, on the Debian mirror the system's apt already uses, and runs
# apt-get update with it. Afterwards "${APT_OPTS[@]}" makes apt-get and
# apt-cache use it. Nothing is installed and the system's apt is not changed.
#
#   private_apt "$DIR/apt" "deb-src bookworm" "deb bullseye"
private_apt() {
  local dir=$1 mirror entry
  shift
  mirror=$(awk '$1 == "URIs:" && $2 ~ /\/debian\/?$/ {print $2; exit}' \
    /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  if [[ -z $mirror ]]; then
    mirror=$(awk '$1 == "deb" && $2 ~ /\/debian\/?$/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  fi
  if [[ -z $mirror ]]; then
    echo "private_apt: no Debian mirror in the system's apt sources" >&2
    return 1
  fi
  mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial" "$dir/sources"
  : >"$dir/status"
  : >"$dir/sources/trial.sources"
  for entry in "$@"; do
    printf 'Types: %s\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: %s\n\n' "${entry% *}" "$mirror" \
      "${entry#* }" /usr/share/keyrings/debian-archive-keyring.gpg >>"$dir/sources/trial.sources"
  done
  APT_OPTS=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$dir/sources"
    -o "Dir::State::Lists=$dir/lists" -o "Dir::Cache=$dir/cache" -o "Dir::State::status=$dir/status")
  apt-get "${APT_OPTS[@]}" update >/dev/null
}

# `wait_for URL [curl options...]`: until URL answers with success (60 s).
wait_for() {
  local url=$1
  shift
  for _ in $(seq 1 120); do
    curl -fsS "$@" "$url" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  echo "timed out waiting for $url" >&2
  return 1
}

# `wait_for_serve PID ADMIN_ADDR LOG`: until the llm-injector serve started
# as PID is ready. Fails with its log if it exited: another process on its
# ports would otherwise answer in its place.
wait_for_serve() {
  local pid=$1 admin=$2 log=$3
  if ! wait_for "http://$admin/readyz" || ! kill -0 "$pid" 2>/dev/null; then
    echo "llm-injector serve did not start:" >&2
    cat "$log" >&2
    return 1
  fi
}
