#!/usr/bin/env bash
# The CRDs of the Gateway API Inference Extension (GAIE,
# sigs.k8s.io/gateway-api-inference-extension) for the end-to-end suite's
# InferencePool check (tests/e2e/inference_pool.rs): the pinned release of
# that Go module, downloaded through the Go module proxy into the Go module
# cache (checked against the go.sum hash below, as `go mod download` also
# checks it against the checksum database), and its config/crd/bases/
# directory printed.
#
#   tests/controlplane/gaie_crds.sh     download if needed, print the directory
#
# .ci/run exports the printed directory as LLM_INJECTOR_GAIE_CRDS. A script
# of its own, not a requirement in tests/controlplane/go.mod, whose hash
# stamps the control plane's build: pinning this module there would rebuild
# the control plane, and nothing there imports it.
#
# Progress goes to stderr; the only line on stdout is the directory.
set -euo pipefail

MODULE=sigs.k8s.io/gateway-api-inference-extension
# v1.6.2: the newest release on the module proxy. Its InferencePool
# (inference.networking.k8s.io/v1) CRD equals v1.5.0's but for
# spec.endpointPickerRef, optional since v1.6.0.
VERSION=v1.6.2
SUM=h1:GfTwDiMta9z6vtsZZuYE2xlryUGw+PiCdTJzYePY23M=

log() { printf 'gaie-crds: %s\n' "$*" >&2; }

command -v go >/dev/null || { log "needs Go on PATH (go mod download $MODULE@$VERSION)"; exit 1; }
started=$SECONDS
# Outside any module (no go.mod in an empty directory), so that nothing of
# the repository is read or written; -mod=mod overrides a GOFLAGS that would
# ask for vendoring.
work=$(mktemp -d "${TMPDIR:-/tmp}/gaie-crds.XXXXXX")
trap 'rm -rf "$work"' EXIT
json=$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "$MODULE@$VERSION") || {
    log "go mod download $MODULE@$VERSION failed:"
    printf '%s\n' "$json" >&2
    exit 1
}
field() { sed -n "s/^[[:space:]]*\"$1\": \"\(.*\)\",\{0,1\}\$/\1/p" <<<"$json"; }
dir=$(field Dir)
sum=$(field Sum)
[[ -n $dir ]] || { log "go mod download printed no Dir: $json"; exit 1; }
[[ $sum == "$SUM" ]] || { log "$MODULE@$VERSION has hash $sum, not the pinned $SUM"; exit 1; }
crds="$dir/config/crd/bases"
[[ -f "$crds/inference.networking.k8s.io_inferencepools.yaml" ]] ||
    { log "$crds has no inference.networking.k8s.io_inferencepools.yaml"; exit 1; }
log "$MODULE@$VERSION ($sum) in $((SECONDS - started)) s: $(cd "$crds" && echo *.yaml)"
echo "$crds"
