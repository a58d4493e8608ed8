#!/usr/bin/env bash
# The one command that runs every test (CI runs it through .ci/run):
#
#   1. scripts/setup.sh            pinned tools into .tools/ (fast when present)
#   2. cargo fmt --check, then scripts/check-layout.py (no import circle between src/ files;
#      in src/, tests/support/src/ and benches/ no file over 400 lines, no function over 80
#      lines without its reason)
#   3. cargo clippy -D warnings    (workspace, all targets)
#   4. cargo test --workspace
#   5. chart tests                 helm lint/template, kubernetes-validate, checkov, hadolint,
#                                  the release workflows (tests/chart/test_release.py)
#   6. actionlint                  scripts/release-check.sh actionlint: .github/workflows
#   7. arm64 cross-build           scripts/release-check.sh arm64: the release binary for
#                                  aarch64 in target/, checked to be an arm64 ELF
#   8. image                       local Debian bases, podman build, run the image against moto
#                                  and the Kubernetes stand-in, and scripts/demo.sh in a bare
#                                  Debian container (tests/image/test_bare_debian.py)
#
# Stops at the first failing step. Prints a summary per step and a closing
# "N passed, N failed" line. Options: --no-image skips step 8 (local use only).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

IMAGE_STEP=1
for arg in "$@"; do
  case "$arg" in
    --no-image) IMAGE_STEP=0 ;;
    -h|--help) sed -n '2,/^set /{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;;
    *) echo "test.sh: unknown argument '$arg'" >&2; exit 2 ;;
  esac
done

LOGS="$(mktemp -d)"
trap 'rm -rf "$LOGS"' EXIT
PYTHON="$ROOT/.tools/venv/bin/python"
TOTAL_PASSED=0
TOTAL_FAILED=0
SUMMARY=()
START=$(date +%s)

# Counts from a step's log: the sum of cargo's "test result:" lines, or pytest's closing line.
count() {
  local log="$1" kind="$2"
  case "$kind" in
    cargo) grep -E '^test result:' "$log" || true ;;
    pytest) grep -E '[0-9]+ (passed|failed|errors?)' "$log" | tail -1 || true ;;
  esac | tr -d ',;=' | awk '
    { for (i = 1; i < NF; i++) {
        if ($(i+1) == "passed") p += $i
        if ($(i+1) == "failed" || $(i+1) == "error" || $(i+1) == "errors") f += $i } }
    END { print p + 0, f + 0 }'
}

finish() {
  local code=$1
  echo
  echo "==================================================================== summary"
  printf '%s\n' "${SUMMARY[@]}"
  echo "elapsed: $(( $(date +%s) - START ))s"
  echo "total: ${TOTAL_PASSED} passed, ${TOTAL_FAILED} failed"
  exit "$code"
}

# step NAME KIND CMD...   KIND: cargo | pytest | plain
step() {
  local name="$1" kind="$2"
  shift 2
  local log="$LOGS/step.log" t0 code=0
  echo
  echo "==================================================================== $name"
  echo "\$ $*"
  t0=$(date +%s)
  "$@" 2>&1 | tee "$log" || code=${PIPESTATUS[0]}
  local secs=$(( $(date +%s) - t0 ))
  local line="$name: "
  if [[ "$kind" != plain ]]; then
    read -r p f < <(count "$log" "$kind")
    # a runner that ran nothing has failed at its job
    if [[ $code -eq 0 && $p -eq 0 ]]; then
      echo "[test] $name ran no test" >&2
      code=1
    fi
    TOTAL_PASSED=$(( TOTAL_PASSED + p ))
    TOTAL_FAILED=$(( TOTAL_FAILED + f ))
    line+="$p passed, $f failed, "
  fi
  if [[ $code -eq 0 ]]; then
    SUMMARY+=("${line}ok (${secs}s)")
  else
    SUMMARY+=("${line}FAILED with exit code $code (${secs}s)")
    [[ "$kind" == plain ]] && TOTAL_FAILED=$(( TOTAL_FAILED + 1 ))
    finish "$code"
  fi
}

step "setup" plain bash scripts/setup.sh
step "cargo fmt" plain cargo fmt --all -- --check
step "layout" plain "$PYTHON" scripts/check-layout.py --self-test
step "cargo clippy" plain cargo clippy --workspace --all-targets --locked -- -D warnings
step "cargo test" cargo cargo test --workspace --locked
step "chart tests" pytest "$PYTHON" -m pytest tests/chart -q -p no:cacheprovider
step "actionlint" plain bash scripts/release-check.sh --no-setup actionlint
step "arm64 cross-build" plain bash scripts/release-check.sh --no-setup arm64
if [[ $IMAGE_STEP -eq 1 ]]; then
  step "image bases" plain bash tests/image/make-bases.sh
  step "image build" plain bash tests/image/build.sh
  step "image tests" pytest "$PYTHON" -m pytest tests/image -q -s -p no:cacheprovider
else
  SUMMARY+=("image: skipped (--no-image)")
fi
finish 0
