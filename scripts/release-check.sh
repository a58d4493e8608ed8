#!/usr/bin/env bash
# What the release workflow (.github/workflows/release.yml) relies on, checked here without
# GitHub or a registry:
#
#   scripts/release-check.sh                   both checks below
#   scripts/release-check.sh actionlint [DIR]  actionlint 1.7.7 on the workflows in DIR
#                                              (default .github/workflows); fails on any finding
#   scripts/release-check.sh arm64             cross-compiles the release binary for
#                                              aarch64-unknown-linux-gnu with the Dockerfile's cargo
#                                              command, in target/, then checks it is an arm64 ELF
#                                              (`file`, the ELF header) that links only what the
#                                              distroless cc runtime image has
#
# First it runs scripts/setup.sh (idempotent, seconds when done), which installs the pinned
# tools: actionlint into .tools/, the Rust target, gcc-aarch64-linux-gnu and
# libc6-dev-arm64-cross. With --no-setup (scripts/test.sh, after its own setup step; the
# tests) a missing tool fails, naming scripts/setup.sh.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

TARGET="aarch64-unknown-linux-gnu"
LINKER="aarch64-linux-gnu-gcc"
ACTIONLINT="$ROOT/.tools/bin/actionlint"
# What the binary may load at run time: what gcr.io/distroless/cc-debian12 carries (glibc and
# libgcc_s), as the Dockerfile says.
ALLOWED_NEEDED="ld-linux-aarch64.so.1 libc.so.6 libm.so.6 libgcc_s.so.1 libpthread.so.0 libdl.so.2 librt.so.1"

say() { printf '[release-check] %s\n' "$*"; }
die() { printf '[release-check] ERROR: %s\n' "$*" >&2; exit 1; }
missing() { die "$1 not found: run scripts/setup.sh"; }

SETUP=1
MODE=all
DIR=".github/workflows"
args=()
for arg in "$@"; do
  case "$arg" in
    --no-setup) SETUP=0 ;;
    -h|--help) sed -n '2,/^set /{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;;
    -*) die "unknown option '$arg' (try --help)" ;;
    *) args+=("$arg") ;;
  esac
done
if [[ ${#args[@]} -gt 0 ]]; then
  MODE="${args[0]}"
  case "$MODE" in
    actionlint) [[ ${#args[@]} -le 2 ]] || die "actionlint takes one directory"; DIR="${args[1]:-$DIR}" ;;
    arm64) [[ ${#args[@]} -eq 1 ]] || die "arm64 takes no argument" ;;
    *) die "unknown check '$MODE' (actionlint or arm64; try --help)" ;;
  esac
fi

if [[ $SETUP -eq 1 ]]; then
  bash "$ROOT/scripts/setup.sh" | sed -u 's/^/[release-check]   /'
fi

# ---------------------------------------------------------------- actionlint
check_actionlint() {
  local dir="$1" files out t0
  command -v node >/dev/null 2>&1 || missing "node (Node.js 20+, for actionlint)"
  [[ -x "$ACTIONLINT" ]] || missing "actionlint ($ACTIONLINT)"
  [[ -d "$dir" ]] || die "no directory $dir"
  files=$(find "$dir" -maxdepth 1 -type f \( -name '*.yml' -o -name '*.yaml' \) | wc -l)
  [[ $files -gt 0 ]] || die "no workflow (*.yml, *.yaml) in $dir"
  say "actionlint on $files workflow(s) in $dir"
  t0=$(date +%s)
  # The CLI takes one glob and passes when it matches nothing: make sure it read every file.
  if ! out="$(cd "$dir" && "$ACTIONLINT" '*.{yml,yaml}' 2>&1)"; then
    printf '%s\n' "$out"
    die "actionlint found problems in $dir"
  fi
  printf '%s\n' "$out"
  grep -qx "Checking $files workflow file(s)..." <<<"$out" \
    || die "actionlint did not check the $files workflow(s) in $dir"
  say "actionlint: $files workflow(s) clean ($(( $(date +%s) - t0 ))s)"
}

# --------------------------------------------------------------------- arm64
check_arm64() {
  local bin="target/$TARGET/release/epinio-irsa" t0 desc needed lib python
  command -v cargo >/dev/null 2>&1 || missing "cargo"
  command -v "$LINKER" >/dev/null 2>&1 || missing "$LINKER (Debian gcc-aarch64-linux-gnu)"
  [[ -e /usr/aarch64-linux-gnu/include/stdio.h ]] || missing "the arm64 C library (Debian libc6-dev-arm64-cross)"
  rustup target list --installed 2>/dev/null | grep -qx "$TARGET" || missing "the Rust target $TARGET"
  command -v readelf >/dev/null 2>&1 || missing "readelf (Debian binutils)"
  python="$ROOT/.tools/venv/bin/python"
  [[ -x "$python" ]] || missing "$python"

  say "cargo build --release --locked --target $TARGET --bin epinio-irsa (the Dockerfile's linux/arm64 build)"
  t0=$(date +%s)
  CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER="$LINKER" \
    cargo build --release --locked --target "$TARGET" --bin epinio-irsa
  say "built $bin in $(( $(date +%s) - t0 ))s"

  # e_ident: 64-bit, little-endian; e_machine 183 = EM_AARCH64
  "$python" - "$bin" <<'PY' || die "$bin is not a 64-bit little-endian aarch64 ELF"
import struct, sys
head = open(sys.argv[1], "rb").read(20)
assert head[:4] == b"\x7fELF", "not an ELF file"
assert head[4] == 2 and head[5] == 1, "not 64-bit little-endian"
(machine,) = struct.unpack_from("<H", head, 18)
assert machine == 183, f"e_machine {machine}, not 183 (aarch64)"
PY
  if command -v file >/dev/null 2>&1; then
    desc="$(file -b "$bin")"
    [[ "$desc" == *"ARM aarch64"* ]] || die "file says '$desc', not ARM aarch64"
    say "file: $desc"
  else
    say "ELF header: 64-bit little-endian, e_machine 183 (aarch64); 'file' is not installed"
  fi
  needed="$(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')"
  needed="${needed% }"
  for lib in $needed; do
    [[ " $ALLOWED_NEEDED " == *" $lib "* ]] || die "$bin needs $lib, which the distroless cc runtime image lacks"
  done
  say "links only: $needed"
}

case "$MODE" in
  actionlint) check_actionlint "$DIR" ;;
  arm64) check_arm64 ;;
  all) check_actionlint "$DIR"; check_arm64 ;;
esac
