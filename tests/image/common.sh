# Shared settings for the image scripts; sourced, not executed.
# shellcheck shell=bash disable=SC2034 # the variables are used by the scripts that source this

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export CONTAINERS_CONF="$ROOT/tests/image/containers.conf"

# Local stand-ins for the Dockerfile's default base images. Tagged with the host
# toolchain version so a new toolchain makes a new builder base.
RUST_VERSION="$(rustc --version | awk '{print $2}')"
BUILDER_BASE="localhost/epinio-irsa-builder-base:rust-${RUST_VERSION}-bookworm"
RUNTIME_BASE="localhost/epinio-irsa-runtime-base:bookworm"
IMAGE="${EPINIO_IRSA_TEST_IMAGE:-localhost/epinio-irsa:test}"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
WORK="$ROOT/.tools/image"

log() { printf '[image] %s\n' "$*" >&2; }
die() { printf '[image] ERROR: %s\n' "$*" >&2; exit 1; }

need() {
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found: run scripts/setup.sh first"
  done
}
