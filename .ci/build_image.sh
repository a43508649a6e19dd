#!/usr/bin/env bash
# Build the llm-injector container image without a Docker engine, then check it.
#
#   .ci/build_image.sh BINARY OUT_DIR
#
# writes OUT_DIR/llm-injector-<version>.oci.tar, an OCI image layout archive
# (what `skopeo copy oci-archive:...`, `podman load` and `buildah pull` read),
# and prints its manifest digest as `image digest: sha256:...`.
#
# Why no Docker: CI has no Docker engine and reaches no container registry
# (neither docker.io nor gcr.io), so the Dockerfile's distroless base cannot be
# pulled. The image is the same as the Dockerfile's, assembled from Debian
# packages instead: one layer holding
#   /llm-injector                      the binary (BINARY), 0755
#   the shared libraries it links      whatever `ldd BINARY` lists (glibc's
#                                      loader and libc, libgcc_s), taken from
#                                      the Debian packages that own them
#   /etc/ssl/certs/ca-certificates.crt from Debian's ca-certificates
#   /etc/passwd, /etc/group            root, nobody and nonroot (65532), as
#                                      in distroless, /home/nonroot
#   /etc/nsswitch.conf, /tmp (1777), and the packages' copyright files and
#   dpkg records (/var/lib/dpkg/status.d, for vulnerability scanners)
# No shell, no package manager. Config: User 65532:65532, Entrypoint
# ["/llm-injector"], Cmd ["serve"], ports 8443/tcp (webhook) and 8080/tcp
# (probes, metrics), org.opencontainers.image.* labels.
#
# The layer and the JSON are written with tar, gzip and jq, reproducibly:
# sorted entries, owner 0:0 (but /home/nonroot), every mtime and the created
# date = SOURCE_DATE_EPOCH (default: the commit time of HEAD). The same binary,
# commit and Debian package versions give the same digest.
#
# The checks, each fatal:
#   1. skopeo reads the archive; its config says User 65532:65532 and the
#      entrypoint; its manifest digest is the one printed.
#   2. The archive is copied out with skopeo and unpacked with umoci; that
#      rootfs holds an executable /llm-injector identical to BINARY.
#   3. `/llm-injector --version` runs inside that rootfs as uid 65532 and
#      prints the version of Cargo.toml: with runc on umoci's runtime bundle,
#      else (where a runtime cannot run, e.g. no usable cgroups) in new
#      namespaces with `unshare` + `chroot --userspec=65532:65532`, else with
#      plain chroot. The output says which way it ran. (runc, not crun: crun
#      1.8 refuses hosts with hybrid cgroups v1+v2, as some CI machines are.)
#
# Tools (installed with apt-get when missing, so run as root): umoci, skopeo,
# runc, jq.
#
# Publishing the image (from any machine with skopeo; no Docker needed):
#   skopeo login ghcr.io
#   skopeo copy oci-archive:OUT_DIR/llm-injector-<version>.oci.tar \
#       docker://ghcr.io/<you>/llm-injector:<version>
# then install the chart with
#   --set image.repository=ghcr.io/<you>/llm-injector --set image.tag=<version>
# (skopeo copies the manifest unchanged: the registry shows the digest printed
# here). `podman load -i <archive>` loads it locally as
# ghcr.io/llm-injector/llm-injector:<version> (IMAGE_REPOSITORY).
#
# Environment: IMAGE_REPOSITORY (default ghcr.io/llm-injector/llm-injector,
# the chart's image.repository), IMAGE_SOURCE (the source label; default the
# GitHub repository of a ghcr.io name), SOURCE_DATE_EPOCH (default: the commit
# time of HEAD).
set -euo pipefail
umask 022

die() { echo "build_image: error: $*" >&2; exit 1; }
step() { echo "==> $*"; }
now() { date +%s%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1fs", (b - a) / 1e9 }'; }

[[ $# -eq 2 ]] || { echo "usage: $0 BINARY OUT_DIR" >&2; exit 2; }
[[ -f $1 && -x $1 ]] || die "$1: not an executable file"
BINARY=$(realpath "$1")
mkdir -p "$2"
OUT_DIR=$(realpath "$2")
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[[ $(id -u) -eq 0 ]] || die "run as root (apt-get, ownership 0:0 in the layer, runc)"

T_START=$(now)

# ---------------------------------------------------------------- settings --
NONROOT=65532
IMAGE_REPOSITORY=${IMAGE_REPOSITORY:-ghcr.io/llm-injector/llm-injector}
# The source label: for ghcr.io/OWNER/NAME, github.com/OWNER/NAME (what links
# a GHCR package to its repository); else none unless IMAGE_SOURCE is set.
if [[ -z ${IMAGE_SOURCE:-} && $IMAGE_REPOSITORY == ghcr.io/* ]]; then
    IMAGE_SOURCE="https://github.com/${IMAGE_REPOSITORY#ghcr.io/}"
fi
# The [package] version of Cargo.toml.
VERSION=$(awk -F'"' '/^\[/ { pkg = ($0 == "[package]") }
                     pkg && /^version[[:space:]]*=/ { print $2; exit }' "$ROOT/Cargo.toml")
[[ -n $VERSION ]] || die "no version in $ROOT/Cargo.toml"
REVISION=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null) || REVISION=unknown
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || echo 0)}
CREATED=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
ARCH=$(dpkg --print-architecture)       # amd64, arm64: the OCI names too
IMAGE_ENV=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
           SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt)
ARCHIVE="$OUT_DIR/llm-injector-$VERSION.oci.tar"
rm -f "$ARCHIVE"                        # a failed run leaves no archive

WORK=$(mktemp -d /tmp/build_image.XXXXXX)
chmod 0755 "$WORK"                      # for apt-get download's user _apt
RUNC_ROOT="$WORK/runc-state"
CONTAINER_ID="llm-injector-check-$$"
cleanup() {
    if [[ -d $RUNC_ROOT ]] && command -v runc >/dev/null; then
        runc --root "$RUNC_ROOT" delete --force "$CONTAINER_ID" >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
export TMPDIR="$WORK/tmp"               # skopeo unpacks archives there
mkdir -p "$TMPDIR"

# ------------------------------------------------------------------- tools --
step "tools"
T0=$(now)
if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
    apt-get update -qq
fi
MISSING=()
for tool in umoci skopeo runc jq; do        # each package is named as its tool
    command -v "$tool" >/dev/null || MISSING+=("$tool")
done
if ((${#MISSING[@]})); then
    echo "installing: ${MISSING[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${MISSING[@]}" >/dev/null
fi
echo "umoci $(umoci --version | awk '{print $NF}'), $(skopeo --version)," \
     "runc $(runc --version | awk 'NR == 1 {print $3}'), $(jq --version)"
T_TOOLS=$(secs "$T0" "$(now)")

# ------------------------------------------------------------------ rootfs --
step "rootfs"
T0=$(now)
# The libraries the loader maps for BINARY: "name => /path (addr)" lines and
# the loader's own "/path (addr)" line (linux-vdso has no file).
LDD=$(ldd "$BINARY" 2>&1) || LDD=""     # a static binary: ldd fails, no libraries
! grep -q 'not found' <<<"$LDD" || die "unresolved libraries:"$'\n'"$LDD"
mapfile -t LIBS < <(awk '/=>/ { if ($3 ~ /^\//) print $3; next }
                         $1 ~ /^\// { print $1 }' <<<"$LDD")
echo "libraries: ${LIBS[*]:-none (static)}"

# The Debian package owning each library (the path ldd shows, else the real
# one: on merged-/usr systems dpkg knows /usr/lib/... only).
owner() {
    local p
    for p in "$1" "$(realpath "$1")" "/usr$1"; do
        dpkg -S "$p" 2>/dev/null | awk -F': ' 'NR == 1 { sub(/:.*/, "", $1); print $1 }' \
            | grep . && return 0
    done
    die "no Debian package owns $1"
}
declare -A LIB_PKG=()
for lib in "${LIBS[@]}"; do LIB_PKG[$lib]=$(owner "$lib"); done
mapfile -t PKGS < <(printf '%s\n' "${LIB_PKG[@]}" ca-certificates | sort -u)

# Download (the versions the apt sources offer) and unpack each package.
mkdir -p "$WORK/debs" "$WORK/pkg"
chown _apt "$WORK/debs" 2>/dev/null || true    # apt downloads as user _apt
(cd "$WORK/debs" && apt-get download -qq "${PKGS[@]}" >/dev/null)
PKG_VERSIONS=()
for pkg in "${PKGS[@]}"; do
    deb=$(echo "$WORK/debs/${pkg}"_*.deb)
    [[ -f $deb ]] || die "apt-get download $pkg: no .deb"
    dpkg-deb -x "$deb" "$WORK/pkg/$pkg"
    # Its dpkg status record, for /var/lib/dpkg/status.d (as distroless has).
    dpkg-deb -f "$deb" | awk '{ print } /^Package:/ { print "Status: install ok installed" }' \
        >"$WORK/pkg/$pkg.status"
    PKG_VERSIONS+=("$pkg=$(dpkg-deb -f "$deb" Version)")
done
echo "Debian packages: ${PKG_VERSIONS[*]}"

STAGE="$WORK/rootfs"
mkdir -p "$STAGE"
# Copy PATH from the unpacked package TREE into the rootfs at the same path;
# a symlink comes with its target (the loader /lib64/ld-linux-x86-64.so.2 is
# one). A file the package keeps elsewhere (merged /usr) is copied to PATH.
copy_from_pkg() {
    local tree=$1 path=$2 target found
    if [[ -L $tree$path ]]; then
        (cd "$tree" && cp -a --parents ".$path" "$STAGE/")
        target=$(readlink "$tree$path")
        [[ $target == /* ]] || target=$(realpath -m -s "$(dirname "$path")/$target")
        copy_from_pkg "$tree" "$target"
    elif [[ -f $tree$path ]]; then
        (cd "$tree" && cp -a --parents ".$path" "$STAGE/")
    else
        found=$(find "$tree" -name "$(basename "$path")" \( -type f -o -type l \) | sort | sed -n 1p)
        [[ -n $found ]] || die "$path is not in the package unpacked at $tree"
        install -D -m 0644 "$(realpath "$found")" "$STAGE$path"
    fi
}
for lib in "${LIBS[@]}"; do copy_from_pkg "$WORK/pkg/${LIB_PKG[$lib]}" "$lib"; done

install -m 0755 "$BINARY" "$STAGE/llm-injector"
install -d -m 0755 "$STAGE/etc/ssl/certs" "$STAGE/var/lib/dpkg/status.d"
install -d -m 1777 "$STAGE/tmp"
install -d -m 0700 "$STAGE/home/nonroot"
# The bundle update-ca-certificates would write: every certificate, in order.
find "$WORK/pkg/ca-certificates/usr/share/ca-certificates" -name '*.crt' | LC_ALL=C sort \
    | xargs cat >"$STAGE/etc/ssl/certs/ca-certificates.crt"
[[ -s $STAGE/etc/ssl/certs/ca-certificates.crt ]] || die "empty CA bundle"
cat >"$STAGE/etc/passwd" <<EOF
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:$NONROOT:$NONROOT:nonroot:/home/nonroot:/sbin/nologin
EOF
cat >"$STAGE/etc/group" <<EOF
root:x:0:
nobody:x:65534:
nonroot:x:$NONROOT:
EOF
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$STAGE/etc/nsswitch.conf"
for pkg in "${PKGS[@]}"; do
    # libgcc-s1's doc directory links to gcc-12-base's: take the installed one.
    copyright="$WORK/pkg/$pkg/usr/share/doc/$pkg/copyright"
    [[ -f $copyright ]] || copyright="/usr/share/doc/$pkg/copyright"
    [[ -f $copyright ]] || die "no copyright file for $pkg"
    install -D -m 0644 "$copyright" "$STAGE/usr/share/doc/$pkg/copyright"
    install -m 0644 "$WORK/pkg/$pkg.status" "$STAGE/var/lib/dpkg/status.d/$pkg"
done
chmod 0644 "$STAGE"/etc/{passwd,group,nsswitch.conf,ssl/certs/ca-certificates.crt}
chown -R 0:0 "$STAGE"
chown "$NONROOT:$NONROOT" "$STAGE/home/nonroot"

# ------------------------------------------------------------------- image --
step "image"
LAYOUT="$WORK/layout"
mkdir -p "$LAYOUT/blobs/sha256"
# Reproducible tar: sorted names without "./", one mtime, numeric owners, no
# atime/ctime or PID-named pax headers.
# shellcheck disable=SC2054  # the commas are --pax-option's
TAR_OPTS=(--format=posix --numeric-owner --mtime="@$SOURCE_DATE_EPOCH"
          --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime)
(cd "$STAGE" && find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort \
    | tar -cf "$WORK/layer.tar" "${TAR_OPTS[@]}" --no-recursion -T -)
gzip -9 -n -c "$WORK/layer.tar" >"$WORK/layer.tar.gz"

# Move FILE into the blob store; print its digest and size.
add_blob() {
    local digest
    digest=$(sha256sum "$1" | cut -d' ' -f1)
    mv "$1" "$LAYOUT/blobs/sha256/$digest"
    echo "sha256:$digest $(stat -c %s "$LAYOUT/blobs/sha256/$digest")"
}
DIFF_ID="sha256:$(sha256sum "$WORK/layer.tar" | cut -d' ' -f1)"
read -r LAYER_DIGEST LAYER_SIZE < <(add_blob "$WORK/layer.tar.gz")

jq -n -c \
    --arg created "$CREATED" --arg arch "$ARCH" --arg user "$NONROOT:$NONROOT" \
    --arg diff_id "$DIFF_ID" --arg version "$VERSION" --arg revision "$REVISION" \
    --arg source "${IMAGE_SOURCE:-}" --arg packages "${PKG_VERSIONS[*]}" \
    --args '{
      created: $created, architecture: $arch, os: "linux",
      config: {
        User: $user,
        ExposedPorts: {"8443/tcp": {}, "8080/tcp": {}},
        Env: $ARGS.positional,
        Entrypoint: ["/llm-injector"],
        Cmd: ["serve"],
        WorkingDir: "/",
        Labels: {
          "org.opencontainers.image.title": "llm-injector",
          "org.opencontainers.image.source": $source,
          "org.opencontainers.image.version": $version,
          "org.opencontainers.image.revision": $revision,
          "org.opencontainers.image.created": $created,
          "org.opencontainers.image.licenses": "Apache-2.0"
        } | with_entries(select(.value != ""))
      },
      rootfs: {type: "layers", diff_ids: [$diff_id]},
      history: [{created: $created, created_by: ".ci/build_image.sh",
                 comment: ("/llm-injector and Debian " + $packages)}]
    }' "${IMAGE_ENV[@]}" >"$WORK/config.json"
read -r CONFIG_DIGEST CONFIG_SIZE < <(add_blob "$WORK/config.json")

jq -n -c --arg cd "$CONFIG_DIGEST" --argjson cs "$CONFIG_SIZE" \
    --arg ld "$LAYER_DIGEST" --argjson ls "$LAYER_SIZE" '{
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: $cd, size: $cs},
      layers: [{mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: $ld, size: $ls}]
    }' >"$WORK/manifest.json"
read -r DIGEST MANIFEST_SIZE < <(add_blob "$WORK/manifest.json")

# The ref name is what `podman load` names the image.
jq -n -c --arg d "$DIGEST" --argjson s "$MANIFEST_SIZE" --arg arch "$ARCH" \
    --arg ref "$IMAGE_REPOSITORY:$VERSION" '{
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.index.v1+json",
      manifests: [{mediaType: "application/vnd.oci.image.manifest.v1+json",
                   digest: $d, size: $s,
                   platform: {architecture: $arch, os: "linux"},
                   annotations: {"org.opencontainers.image.ref.name": $ref}}]
    }' >"$LAYOUT/index.json"
echo '{"imageLayoutVersion":"1.0.0"}' >"$LAYOUT/oci-layout"

# Checked in $WORK, moved to OUT_DIR when every check passed.
BUILT="$WORK/image.oci.tar"
(cd "$LAYOUT" && find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort \
    | tar -cf "$BUILT" "${TAR_OPTS[@]}" --owner=0 --group=0 --no-recursion -T -)
T_BUILD=$(secs "$T0" "$(now)")

# ------------------------------------------------------------------ checks --
step "checks"
T0=$(now)
# 1. What skopeo (the publishing tool) reads from the archive.
SEEN_DIGEST=$(skopeo --insecure-policy inspect "oci-archive:$BUILT" | jq -r .Digest)
[[ $SEEN_DIGEST == "$DIGEST" ]] || die "skopeo sees manifest $SEEN_DIGEST, built $DIGEST"
CONFIG=$(skopeo --insecure-policy inspect --config "oci-archive:$BUILT")
check_config() {   # JQ_EXPR EXPECTED
    local got
    got=$(jq -c "$1" <<<"$CONFIG")
    [[ $got == "$2" ]] || die "image config $1 is $got, expected $2"
}
check_config .config.User "\"$NONROOT:$NONROOT\""
check_config .config.Entrypoint '["/llm-injector"]'
check_config .config.Cmd '["serve"]'
check_config '.config.ExposedPorts | keys' '["8080/tcp","8443/tcp"]'
check_config '.config.Labels["org.opencontainers.image.version"]' "\"$VERSION\""
USER_UID=$(jq -r '.config.User | split(":")[0]' <<<"$CONFIG")
[[ $USER_UID =~ ^[0-9]+$ && $USER_UID -ne 0 ]] || die "image user $USER_UID is not a non-root uid"
echo "config: User $NONROOT:$NONROOT (non-root), Entrypoint [/llm-injector], Cmd [serve]"

# 2. The rootfs as a runtime sees it: copied out of the archive, unpacked.
skopeo --insecure-policy copy -q "oci-archive:$BUILT" "oci:$WORK/check-layout:check"
COPIED_DIGEST=$(jq -r '.manifests[0].digest' "$WORK/check-layout/index.json")
[[ $COPIED_DIGEST == "$DIGEST" ]] || die "skopeo copy changed the manifest digest to $COPIED_DIGEST"
BUNDLE="$WORK/bundle"
umoci unpack --image "$WORK/check-layout:check" "$BUNDLE" >/dev/null
R="$BUNDLE/rootfs"
[[ -f $R/llm-injector && -x $R/llm-injector ]] || die "no executable /llm-injector in the image"
cmp -s "$R/llm-injector" "$BINARY" || die "/llm-injector in the image differs from $BINARY"
[[ $(stat -c '%a %u:%g' "$R/llm-injector") == "755 0:0" ]] \
    || die "/llm-injector is $(stat -c '%a %u:%g' "$R/llm-injector"), expected 755 0:0"
[[ $(stat -c %a "$R/tmp") == 1777 ]] || die "/tmp is not mode 1777"
grep -q "^nonroot:x:$NONROOT:$NONROOT:" "$R/etc/passwd" || die "no nonroot user in /etc/passwd"
echo "rootfs: /llm-injector 0755 root-owned, identical to $BINARY; $(du -sh "$R" | cut -f1) unpacked"

# 3. `llm-injector --version` inside the rootfs, as the image's user.
WANT="llm-injector $VERSION"
# umoci's runtime config: the image's user and entrypoint; run --version instead.
RUN_AS=$(jq -r '"\(.process.user.uid):\(.process.user.gid)"' "$BUNDLE/config.json")
[[ $RUN_AS == "$NONROOT:$NONROOT" ]] || die "umoci's runtime config runs as $RUN_AS"
jq '.process.args = ["/llm-injector", "--version"] | .process.terminal = false' \
    "$BUNDLE/config.json" >"$WORK/config.tmp"
mv "$WORK/config.tmp" "$BUNDLE/config.json"
run_runc() {
    timeout 60 runc --root "$RUNC_ROOT" run --bundle "$BUNDLE" "$CONTAINER_ID" </dev/null
}
run_unshare_chroot() {
    timeout 60 unshare --mount --uts --ipc --net --pid --fork -- env -i "${IMAGE_ENV[@]}" \
        chroot --userspec="$NONROOT:$NONROOT" --groups= "$R" /llm-injector --version </dev/null
}
run_chroot() {
    timeout 60 env -i "${IMAGE_ENV[@]}" \
        chroot --userspec="$NONROOT:$NONROOT" --groups= "$R" /llm-injector --version </dev/null
}
METHOD=""
for method in runc unshare_chroot chroot; do
    if OUTPUT=$("run_$method" 2>&1); then
        METHOD=$method
        break
    fi
    echo "  ${method//_/+}: failed: $(tr '\n' ' ' <<<"$OUTPUT")"
done
[[ -n $METHOD ]] || die "/llm-injector --version failed every way (above)"
case $METHOD in
    runc) METHOD_TEXT="runc $(runc --version | awk 'NR == 1 {print $3}') on umoci's bundle (as root; process user $NONROOT:$NONROOT from the image config)" ;;
    unshare_chroot) METHOD_TEXT="unshare (mount, uts, ipc, net, pid namespaces) + chroot --userspec=$NONROOT:$NONROOT, no OCI runtime" ;;
    chroot) METHOD_TEXT="plain chroot --userspec=$NONROOT:$NONROOT (no namespaces, no OCI runtime)" ;;
esac
echo "ran with: $METHOD_TEXT"
echo "  /llm-injector --version: $OUTPUT"
grep -qxF "$WANT" <<<"$OUTPUT" || die "--version printed '$OUTPUT', expected '$WANT'"
T_CHECK=$(secs "$T0" "$(now)")
mv "$BUILT" "$ARCHIVE"

# ----------------------------------------------------------------- summary --
echo
echo "image: $ARCHIVE"
echo "archive size: $(stat -c %s "$ARCHIVE") bytes ($(du -h --apparent-size "$ARCHIVE" | cut -f1)); layer $LAYER_SIZE bytes gzipped"
echo "name: $IMAGE_REPOSITORY:$VERSION, revision $REVISION, created $CREATED"
echo "image digest: $DIGEST"
echo "time: tools $T_TOOLS, build $T_BUILD, checks $T_CHECK, total $(secs "$T_START" "$(now)")"
