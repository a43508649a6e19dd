#!/usr/bin/env bash
# Builds the control plane the end-to-end suite (tests/e2e/) runs against:
# etcd, kube-apiserver, kube-controller-manager and kubectl, from the modules
# pinned in tests/controlplane/go.mod (k8s.io/kubernetes v1.36.3 and the etcd
# server it requires). Built once into a cache directory outside the
# repository and reused by every later run.
#
#   tests/controlplane/build.sh        build if needed, print the bin directory
#
# The directory is $LLM_INJECTOR_CACHE/controlplane-<k8s version>/bin, where
# LLM_INJECTOR_CACHE defaults to ${XDG_CACHE_HOME:-$HOME/.cache}/llm-injector.
# When KUBEBUILDER_ASSETS names a directory holding kube-apiserver, etcd and
# kubectl (envtest's layout), those are used; the controller-manager is taken
# from it too, or, as envtest ships none, built here and the four printed as
# one directory of links.
#
# Progress goes to stderr; the only line on stdout is the bin directory.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
K8S_VERSION=$(awk '$1 == "k8s.io/kubernetes" { print $2; exit }' "$HERE/go.mod")
[[ -n "$K8S_VERSION" ]] || { echo "build.sh: no k8s.io/kubernetes in $HERE/go.mod" >&2; exit 1; }
CACHE=${LLM_INJECTOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/llm-injector}
OUT="$CACHE/controlplane-$K8S_VERSION/bin"
COMMANDS=(etcd kube-apiserver kube-controller-manager kubectl)

log() { printf 'controlplane: %s\n' "$*" >&2; }

have_all() { # DIR NAME...
    local dir=$1 name
    shift
    for name in "$@"; do [[ -x "$dir/$name" ]] || return 1; done
}

if [[ -n "${KUBEBUILDER_ASSETS:-}" ]]; then
    have_all "$KUBEBUILDER_ASSETS" etcd kube-apiserver kubectl || {
        log "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS must hold executable etcd, kube-apiserver and kubectl"
        exit 1
    }
    if have_all "$KUBEBUILDER_ASSETS" kube-controller-manager; then
        log "using KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS"
        echo "$KUBEBUILDER_ASSETS"
        exit 0
    fi
    log "KUBEBUILDER_ASSETS has no kube-controller-manager (envtest ships none): building it"
    COMMANDS=(kube-controller-manager)
fi

# The stamp names what was built: a changed go.mod/go.sum rebuilds.
stamp_want=$(cat "$HERE/go.mod" "$HERE/go.sum" "$HERE/etcd/main.go" | sha256sum | cut -d' ' -f1)
stamp="$OUT/.built-from"
if have_all "$OUT" "${COMMANDS[@]}" && [[ -f "$stamp" && "$(cat "$stamp")" == "$stamp_want" ]]; then
    log "reusing $OUT (built from this go.mod)"
else
    command -v go >/dev/null || { log "needs Go (go.mod says $(awk '$1 == "go" { print $2 }' "$HERE/go.mod")) on PATH"; exit 1; }
    packages=()
    for name in "${COMMANDS[@]}"; do
        case $name in
        etcd) packages+=(./etcd) ;;
        *) packages+=("k8s.io/kubernetes/cmd/$name") ;;
        esac
    done
    log "building ${COMMANDS[*]} from k8s.io/kubernetes $K8S_VERSION with $(go version | cut -d' ' -f3) (cold: about 20 min on 2 cores; Go's build cache makes later builds fast)"
    started=$SECONDS
    mkdir -p "$OUT"
    rm -f "$stamp"
    # The modules first, quietly (go build would print a line for each).
    (cd "$HERE" && GOFLAGS=-mod=readonly go mod download)
    log "modules downloaded in $((SECONDS - started)) s"
    # CGO off: static binaries, no C toolchain needed. -trimpath and no VCS
    # stamping make the build independent of where the repository lives.
    (cd "$HERE" && CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -trimpath -buildvcs=false \
        -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION" \
        -o "$OUT/" "${packages[@]}")
    echo "$stamp_want" >"$stamp"
    log "built in $((SECONDS - started)) s into $OUT"
fi

if [[ -n "${KUBEBUILDER_ASSETS:-}" ]]; then
    # Mix: envtest's binaries plus our controller-manager, in one directory.
    mixed="$CACHE/controlplane-$K8S_VERSION/assets-mix"
    mkdir -p "$mixed"
    for name in etcd kube-apiserver kubectl; do ln -sf "$KUBEBUILDER_ASSETS/$name" "$mixed/$name"; done
    ln -sf "$OUT/kube-controller-manager" "$mixed/kube-controller-manager"
    echo "$mixed"
else
    echo "$OUT"
fi
