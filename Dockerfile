# syntax=docker/dockerfile:1
# The llm-injector image: the one binary on distroless, running as non-root.
#
#   docker build -t ghcr.io/llm-injector/llm-injector:0.1.0 .
#
# The chart's image.tag defaults to its appVersion (0.1.0), which should match
# the version in Cargo.toml.

# ---- build ------------------------------------------------------------------
# The toolchain CI uses (rustc 1.95); bookworm's glibc 2.36 is the runtime's.
FROM rust:1.95-bookworm AS build
WORKDIR /src
# Only what `cargo build` reads (.dockerignore keeps everything else out);
# router/ and go-duration/ are the workspace's other crates; benches/ because Cargo.toml
# declares its [[bench]] targets.
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY router ./router
COPY go-duration ./go-duration
COPY benches ./benches
# --locked: exactly the committed Cargo.lock. The cache mounts keep the
# registry and target/ between builds; the binary is copied out of them.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin llm-injector \
    && install -D -m 0755 target/release/llm-injector /out/llm-injector

# ---- runtime ----------------------------------------------------------------
# glibc and libgcc (the binary links them), CA certificates, no shell, no
# package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/llm-injector /llm-injector
# distroless's "nonroot" user, numeric so that the kubelet can check
# runAsNonRoot without a runAsUser.
USER 65532:65532
# 8443: webhook (HTTPS); 8080: /livez, /readyz, /metrics (HTTP).
EXPOSE 8443 8080
ENTRYPOINT ["/llm-injector"]
CMD ["serve"]
