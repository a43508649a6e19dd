#!/usr/bin/env bash
# Builds what tests/ollama_probe.rs runs: Ollama v0.12.6 (the version of the
# default engine images) for CPU from its Go module, and two tiny GGUF models
# (tests/ollama/tiny_gguf.py). Built once into a cache directory outside the
# repository and reused by every later run (cold: about 3 minutes on 2 cores).
#
#   tests/ollama/build.sh              build if needed, print the directory
#   tests/ollama/build.sh --print-dir  only print the directory
#
# The directory is $LLM_INJECTOR_CACHE/ollama-$VERSION, LLM_INJECTOR_CACHE
# defaulting to ${XDG_CACHE_HOME:-$HOME/.cache}/llm-injector; it holds
# bin/ollama and models/tiny-{chat,embed}.gguf.
#
# Needs Go, gcc and g++ (cgo builds Ollama's llama.cpp and ggml), the C++
# headers of Debian's nlohmann-json3-dev and libstb-dev, and a Python
# ($PYTHON, default python3) with pip and the gguf and numpy packages.
# Go module zips leave out vendor/ directories, so three headers Ollama
# vendors under llama/llama.cpp/vendor are missing from the module: json.hpp
# and stb_image.h come from those Debian packages, miniaudio.h (0.11.25; the
# module's is 0.11.24) from the sdist of the PyPI package miniaudio 1.71.
#
# Progress goes to stderr; the only line on stdout is the directory.
set -euo pipefail

VERSION=v0.12.6
MINIAUDIO_SDIST=miniaudio==1.71
MINIAUDIO_SHA256=ff51e2887bb673e2e757752b586b3dc924d59aa5fbcae9bbc45f4a111bd3262b
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${LLM_INJECTOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/llm-injector}
OUT="$CACHE/ollama-$VERSION"
PYTHON=${PYTHON:-python3}

if [[ ${1:-} == --print-dir ]]; then
    echo "$OUT"
    exit 0
fi

log() { printf 'ollama: %s\n' "$*" >&2; }

stamp_want=$(cat "${BASH_SOURCE[0]}" "$HERE/tiny_gguf.py" | sha256sum | cut -d' ' -f1)
stamp="$OUT/.built-from"
if [[ -x "$OUT/bin/ollama" && -f "$OUT/models/tiny-embed.gguf" && -f "$stamp" && "$(cat "$stamp")" == "$stamp_want" ]]; then
    log "reusing $OUT"
    echo "$OUT"
    exit 0
fi

for tool in go gcc g++; do
    command -v "$tool" >/dev/null || { log "needs $tool on PATH"; exit 1; }
done
for header in nlohmann/json.hpp stb/stb_image.h; do
    [[ -f /usr/include/$header ]] || {
        log "needs /usr/include/$header: apt-get install nlohmann-json3-dev libstb-dev"
        exit 1
    }
done
"$PYTHON" -c 'import gguf, numpy' 2>/dev/null || {
    log "needs the Python packages gguf and numpy in $PYTHON (PYTHON=...)"
    exit 1
}

work=$(mktemp -d "${TMPDIR:-/tmp}/llm-injector-ollama.XXXXXX")
trap 'rm -rf "$work"' EXIT
log "miniaudio.h from the PyPI sdist $MINIAUDIO_SDIST"
"$PYTHON" -m pip download --quiet --no-deps --no-binary :all: "$MINIAUDIO_SDIST" -d "$work/sdist" >&2
sdist=$(ls "$work"/sdist/miniaudio-*.tar.gz)
got=$(sha256sum "$sdist" | cut -d' ' -f1)
[[ $got == "$MINIAUDIO_SHA256" ]] || { log "$sdist has sha256 $got, expected $MINIAUDIO_SHA256"; exit 1; }
tar -xzf "$sdist" -C "$work" --wildcards '*/miniaudio/miniaudio.h'
mkdir -p "$work/include"
cp -r "$work"/miniaudio-*/miniaudio "$work/include/"

log "building github.com/ollama/ollama@$VERSION for CPU (cgo)"
started=$SECONDS
mkdir -p "$OUT/bin"
CGO_ENABLED=1 CGO_CPPFLAGS="-I$work/include" GOBIN="$OUT/bin" GOFLAGS=-trimpath \
    go install -ldflags "-X github.com/ollama/ollama/version.Version=${VERSION#v}" \
    "github.com/ollama/ollama@$VERSION" >&2
log "built in $((SECONDS - started))s: $("$OUT/bin/ollama" --version 2>&1 | tail -1)"

"$PYTHON" "$HERE/tiny_gguf.py" "$OUT/models"
echo "$stamp_want" >"$stamp"
echo "$OUT"
