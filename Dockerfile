# syntax=docker/dockerfile:1.4
# epinio-irsa: the Helm hook job that provisions IRSA for Epinio on EKS.
#
# Base images are build arguments so a mirror can stand in for them:
#   docker build --build-arg BUILDER_IMAGE=mirror.example/rust:1.95-slim-bookworm \
#                --build-arg RUNTIME_IMAGE=mirror.example/distroless/cc-debian12:nonroot .
# The runtime image must carry glibc, libgcc_s and CA certificates (distroless
# "cc" does); the binary links nothing else. Build with BuildKit, or with
# podman/buildah >= 1.24 (RUN --mount=type=cache).

ARG BUILDER_IMAGE=docker.io/library/rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${BUILDER_IMAGE} AS builder
WORKDIR /src
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
# binary is copied out of the cache mount in the same step.
RUN --mount=type=cache,id=epinio-irsa-cargo-registry,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,id=epinio-irsa-target,target=/src/target,sharing=locked \
    cargo build --release --locked --bin epinio-irsa \
 && install -D -m 0755 target/release/epinio-irsa /out/epinio-irsa \
 && /out/epinio-irsa --version

FROM ${RUNTIME_IMAGE}
LABEL org.opencontainers.image.title="epinio-irsa" \
      org.opencontainers.image.description="Provisions IAM roles for service accounts (IRSA) for Epinio on Amazon EKS, as Helm hooks" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/epinio-irsa /usr/local/bin/epinio-irsa
# distroless "nonroot": 65532 exists in its /etc/passwd; numeric so that
# Kubernetes can verify runAsNonRoot without reading the image's user database.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/epinio-irsa"]
