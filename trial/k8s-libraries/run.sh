#!/usr/bin/env bash
# Two checks with Kubernetes' own code, from the libraries kube-apiserver is
# built from (Debian unstable's golang-k8s-*-dev packages, built with
# Debian's Go):
#
#   crd-cel/    the CRDs as on create (structural schema, CEL compilation and
#               cost budgets), the example catalogs and the CEL case table of
#               tests/crds.rs as custom resources (defaults, schema, CEL);
#   admission/  the mutating-admission-webhook plugin of k8s.io/apiserver
#               calling a running `llm-injector serve` for pods, with the
#               configuration of webhook-config/ (rules, namespaceSelector,
#               CEL matchConditions); each admitted pod must equal what
#               `llm-injector inject` prints.
#
# Everything is fetched into $K8S_LIBS_DIR through a private apt
# configuration; nothing is installed on the system. First run ~6 minutes
# (310 MB of packages, then the builds); later runs reuse the binaries.
#
# Run from the repository: trial/k8s-libraries/run.sh
# Results of the last run: trial/k8s-libraries/README.md.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$REPO/trial/k8s-libraries
K8S_LIBS_DIR=${K8S_LIBS_DIR:-/tmp/llm-injector-k8s-libraries}
LIBRARIES=(golang-k8s-apiextensions-apiserver-dev golang-k8s-apiserver-dev golang-k8s-client-go-dev)
WEBHOOK_ADDR=127.0.0.1:19443
ADMIN_ADDR=127.0.0.1:19080
mkdir -p "$K8S_LIBS_DIR"

say() { printf '\n== %s\n' "$*"; }
# shellcheck source=../common.sh
source "$REPO/trial/common.sh"

fetch() {
  say "fetching ${LIBRARIES[*]}, the Go packages they need and Debian's Go (sid)"
  local apt=$K8S_LIBS_DIR/apt
  private_apt "$apt" "deb sid"
  mkdir -p "$apt/debs"
  # Every golang-* package the libraries need, the Go toolchain included.
  local packages
  mapfile -t packages < <(apt-cache "${APT_OPTS[@]}" depends --recurse --no-recommends \
    --no-suggests --no-conflicts --no-breaks --no-replaces --no-enhances "${LIBRARIES[@]}" |
    grep -E '^golang-' | grep -vE '^golang-(any|go|src)$' | sort -u)
  (cd "$apt/debs" && apt-get "${APT_OPTS[@]}" download "${packages[@]}" >/dev/null 2>&1)
  rm -rf "$K8S_LIBS_DIR/root"
  for deb in "$apt"/debs/*.deb; do dpkg-deb -x "$deb" "$K8S_LIBS_DIR/root"; done
  dpkg-deb -f "$apt"/debs/golang-k8s-apiserver-dev_*.deb Version >"$K8S_LIBS_DIR/k8s-version"
}

build() { # PROGRAM
  local program=$1 src=$K8S_LIBS_DIR/gopath/src/$1
  if [[ -x $K8S_LIBS_DIR/$program && $K8S_LIBS_DIR/$program -nt $HERE/$program/main.go ]]; then
    return
  fi
  [[ -d $K8S_LIBS_DIR/root/usr/share/gocode ]] || fetch
  GOROOT=$(ls -d "$K8S_LIBS_DIR"/root/usr/lib/go-1.* | sort -V | tail -1)
  say "building $program with $("$GOROOT/bin/go" version | cut -d' ' -f3) and the Kubernetes libraries $(cat "$K8S_LIBS_DIR/k8s-version")"
  mkdir -p "$src" && cp "$HERE/$program/main.go" "$src/"
  (cd "$src" && GOROOT=$GOROOT GO111MODULE=off GOFLAGS= GOCACHE=$K8S_LIBS_DIR/gocache \
    GOPATH=$K8S_LIBS_DIR/gopath:$K8S_LIBS_DIR/root/usr/share/gocode \
    "$GOROOT/bin/go" build -o "$K8S_LIBS_DIR/$program" .)
}

build crd-cel
build admission
cd "$REPO"
failures=0

say "crd-cel: the CRDs, the example catalogs and tests/crds/cel-cases.yaml"
"$K8S_LIBS_DIR/crd-cel" -crd crds/llm.injector.dev_llmengines.yaml -crd crds/llm.injector.dev_llmmodels.yaml \
  -objects examples/catalog/engines.yaml -objects examples/catalog/models.yaml \
  -objects tests/golden/catalog.yaml -cases tests/crds/cel-cases.yaml || failures=$((failures + 1))

say "admission: k8s.io/apiserver's mutating webhook plugin calling llm-injector serve"
cargo build --release --quiet
INJECTOR=$REPO/target/release/llm-injector
RUN=$K8S_LIBS_DIR/run
rm -rf "$RUN" && mkdir -p "$RUN"
"$INJECTOR" serve --catalog examples/catalog --addr $WEBHOOK_ADDR --admin-addr $ADMIN_ADDR \
  --ca-file "$RUN/ca.crt" >"$RUN/serve.log" 2>&1 &
serve=$!
trap 'kill $serve 2>/dev/null || true' EXIT
wait_for_serve "$serve" "$ADMIN_ADDR" "$RUN/serve.log"
cat >"$RUN/plain.yaml" <<'POD'
apiVersion: v1
kind: Pod
metadata: {name: plain}
spec:
  containers: [{name: app, image: ghcr.io/example/app:1.0}]
POD
"$K8S_LIBS_DIR/admission" -config webhook-config/60-mutating-webhook.yaml -url "https://$WEBHOOK_ADDR" \
  -ca "$RUN/ca.crt" -injector "$INJECTOR" -catalog examples/catalog \
  examples/workloads/{cpu,gpu1,mp2,2x2,amd}.yaml tests/golden/cases/{existing-env,init-and-sidecars}.yaml \
  tests/fixtures/apiserver-1.36/pod-create-{named,generatename,dryrun}.json "$RUN/plain.yaml" ||
  failures=$((failures + 1))
# The plain pod must not have been sent at all (matchConditions).
reviews=$(curl -s "http://$ADMIN_ADDR/metrics" | grep '^llm_injector_admission_reviews_total' || true)
echo "$reviews" | sed 's/^/    /'
if grep -qv 'outcome="patched"} 10$' <<<"$reviews"; then
  echo "FAIL the webhook was sent something besides the 10 annotated pods"
  failures=$((failures + 1))
fi

say "result: $failures failing check(s)"
exit $((failures > 0))
