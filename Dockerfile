# syntax=docker/dockerfile:1.4
# epinio-irsa: the Helm hook job that provisions IRSA for Epinio on EKS.
#
# Base images are build arguments so a mirror can stand in for them:
#   docker build --build-arg BUILDER_IMAGE=mirror.example/rust:1.95-slim-bookworm \
#                --build-arg RUNTIME_IMAGE=mirror.example/distroless/cc-debian12:nonroot .
# The runtime image must carry glibc, libgcc_s and CA certificates (distroless
# "cc" does); the binary links nothing else. Build with BuildKit, or with
# podman/buildah >= 1.24 (RUN --mount=type=cache).
#
# linux/amd64 and linux/arm64, without emulation: the builder stage runs on the
# build machine's platform and cross-compiles for the target's, and only the
# runtime stage is of the target platform (it runs nothing at build time):
#   docker buildx build --platform linux/amd64,linux/arm64 .
# BuildKit sets BUILDPLATFORM and TARGETARCH. podman 4.3 sets TARGETARCH (from
# --platform, else the host's) but not BUILDPLATFORM: for another platform add
# --build-arg BUILDPLATFORM=linux/amd64 (the build machine's).

ARG BUILDER_IMAGE=docker.io/library/rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM --platform=$BUILDPLATFORM ${BUILDER_IMAGE} AS builder
ARG TARGETARCH
WORKDIR /src
# The Rust target of TARGETARCH (none given: the builder's own). For another
# platform than the builder's: Debian's cross gcc (the linker, and the C
# compiler of crates with C code) and C library, and the target's Rust standard
# library (by rustup; a builder image without rustup must already carry it);
# /cross.env then holds the target and its linker for the build below.
# Before the COPYs, so that a source change does not redo it.
RUN host="$(rustc --print host-tuple)" \
 && case "${TARGETARCH:-}" in \
      amd64) target=x86_64-unknown-linux-gnu gcc=gcc-x86-64-linux-gnu libc=libc6-dev-amd64-cross \
             linker=CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER=x86_64-linux-gnu-gcc ;; \
      arm64) target=aarch64-unknown-linux-gnu gcc=gcc-aarch64-linux-gnu libc=libc6-dev-arm64-cross \
             linker=CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc ;; \
      "") target="$host" ;; \
      *) echo "TARGETARCH=$TARGETARCH: only amd64 and arm64 are built" >&2; exit 1 ;; \
    esac \
 && if [ "$target" != "$host" ]; then \
      apt-get update \
      && apt-get install -y --no-install-recommends "$gcc=4:12.2.*" "$libc=2.36-*" \
      && rm -rf /var/lib/apt/lists/* \
      && if command -v rustup >/dev/null; then rustup target add "$target"; fi \
      && echo "$target $linker" >/cross.env; \
    fi
# Only what Cargo needs to load the workspace and build the binary. The
# workspace member tests/support (package testkit) and the targets declared in
# Cargo.toml ([[bench]] in benches/) must be present for Cargo to read the
# manifests, even though the binary uses neither.
COPY Cargo.toml Cargo.lock ./
COPY tests/support/Cargo.toml tests/support/Cargo.toml
COPY tests/support/src tests/support/src
COPY benches benches
COPY src src
# The registry and target directories are cache mounts: they survive between
# builds on the same machine, so a rebuild recompiles only what changed. The
# binary is copied out of the cache mount in the same step. A native build is
# checked by running it; a cross build is scripts/release-check.sh's command.
RUN --mount=type=cache,id=epinio-irsa-cargo-registry,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,id=epinio-irsa-target,target=/src/target,sharing=locked \
    if [ ! -e /cross.env ]; then \
      cargo build --release --locked --bin epinio-irsa \
      && install -D -m 0755 target/release/epinio-irsa /out/epinio-irsa \
      && /out/epinio-irsa --version; \
    else \
      read -r target linker </cross.env \
      && env "$linker" cargo build --release --locked --target "$target" --bin epinio-irsa \
      && install -D -m 0755 "target/$target/release/epinio-irsa" /out/epinio-irsa; \
    fi

# The target's platform: BuildKit's default, but buildah 1.28 (podman 4.3)
# would keep the builder's and look for an amd64 runtime image.
# hadolint ignore=DL3065
FROM --platform=$TARGETPLATFORM ${RUNTIME_IMAGE}
LABEL org.opencontainers.image.title="epinio-irsa" \
      org.opencontainers.image.description="Provisions IAM roles for service accounts (IRSA) for Epinio on Amazon EKS, as Helm hooks" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/epinio-irsa /usr/local/bin/epinio-irsa
# distroless "nonroot": 65532 exists in its /etc/passwd; numeric so that
# Kubernetes can verify runAsNonRoot without reading the image's user database.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/epinio-irsa"]
