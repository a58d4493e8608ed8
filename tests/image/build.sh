#!/usr/bin/env bash
# Builds the epinio-irsa image from the project's Dockerfile with the local bases
# that make-bases.sh makes (no registry: --pull=never), the way a user behind a
# mirror would: by overriding the BUILDER_IMAGE / RUNTIME_IMAGE build arguments.
#
# The Dockerfile's cache mounts (cargo registry and target/) live in podman's
# storage on this machine, so a rebuild compiles only what changed.
set -euo pipefail
# shellcheck source=tests/image/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

need podman rustc
if ! podman image exists "$BUILDER_BASE" || ! podman image exists "$RUNTIME_BASE"; then
  die "local base images missing: run tests/image/make-bases.sh first"
fi

log "building $IMAGE (builder $BUILDER_BASE, runtime $RUNTIME_BASE)"
start=$(date +%s)
# --network=host: the builder fetches crates from crates.io through the host's network.
podman build \
  --pull=never \
  --network=host \
  --build-arg "BUILDER_IMAGE=$BUILDER_BASE" \
  --build-arg "RUNTIME_IMAGE=$RUNTIME_BASE" \
  --file "$ROOT/Dockerfile" \
  --tag "$IMAGE" \
  "$ROOT"
size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
log "built $IMAGE in $(( $(date +%s) - start ))s; image size: $(( size / 1024 / 1024 )) MiB ($size bytes)"
# Intermediate builder layers are large and not needed once the image exists.
podman image prune -f >/dev/null 2>&1 || true
