#!/usr/bin/env bash
# The benchmark of issue 5 (BENCHMARKS.md): one command, not part of scripts/test.sh.
#
#   scripts/bench.sh                      5 job and 5 manual samples, delays 0,50,150 ms
#   scripts/bench.sh --runs 3 --manual-runs 1 --delays 150     (any option of the harness)
#   scripts/bench.sh --gateway [--quick] [--load-seconds 60]    the gateway's benchmark instead
#                                 (issue 17, BENCHMARKS.md "Gateway"): benches/gateway.rs on the
#                                 release build, s3s-fs in-process as the backend, no tools needed
#   scripts/bench.sh --gateway-parity [--rounds 3] [--perf]   GET/PUT against direct and a plain
#                                 TCP relay, CPU-seconds per GiB of each hop (issue 26)
#
# 1. tools: moto + aws CLI in .tools/venv (scripts/setup.sh --minimal), GNU time for the RSS
# 2. the release binary, built once: cargo build --release -p epinio-irsa (LTO, ~7-10 min cold)
# 3. the harness benches/hook.rs, built in the dev profile (it only spawns processes and runs
#    the proxies, so it needs no LTO build of its own) and pointed at the release binary
#
# Results: printed, and written to target/bench/hook.md and target/bench/hook.json.
# Takes about 5 minutes with the defaults on 2 cores once the release binary exists (the
# manual procedure is most of it), plus the release build when the sources changed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

case "${1:-}" in
  -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  --gateway-parity)
    shift
    # GET and PUT through the gateway against direct and a plain TCP relay, with each hop's
    # CPU per GiB (issue 26); --perf adds a perf profile of the gateway's GETs.
    printf '[bench] cargo bench --bench gateway-parity (release build)\n' >&2
    exec cargo bench --bench gateway-parity -- "$@"
    ;;
  --gateway)
    shift
    # The harness, the gateway binary it spawns (CARGO_BIN_EXE_epinio-irsa) and s3s-fs are all
    # built in the bench profile (the release settings): one build, ~15-20 min cold on 2 cores.
    printf '[bench] cargo bench --bench gateway (release build of the harness and the gateway)\n' >&2
    exec cargo bench --bench gateway -- "$@"
    ;;
esac

say() { printf '[bench] %s\n' "$*" >&2; }

# ------------------------------------------------------------------- tools
if [[ -x scripts/setup.sh ]] || [[ -f scripts/setup.sh ]]; then
  bash scripts/setup.sh --minimal
else
  if [[ ! -x .tools/venv/bin/moto_server || ! -x .tools/venv/bin/aws ]]; then
    say "installing moto and the aws CLI into .tools/venv"
    python3 -m venv .tools/venv
    .tools/venv/bin/pip install -q 'moto[server]==5.2.5' 'awscli==1.36.40'
  fi
fi
# The pinned kubectl (the harness finds it on PATH), never another the machine has.
[[ -x "$ROOT/.tools/bin/kubectl" ]] || { say "ERROR: no .tools/bin/kubectl; run scripts/setup.sh"; exit 1; }
export PATH="$ROOT/.tools/bin:$PATH"
if [[ ! -x /usr/bin/time ]]; then
  if [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null; then
    say "installing GNU time (Debian package time) for the peak RSS"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends time >/dev/null \
      || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends time >/dev/null; } \
      || say "could not install time: peak RSS will be reported as not measured"
  else
    say "/usr/bin/time missing: peak RSS will be reported as not measured"
  fi
fi

# ------------------------------------------------------ release binary, once
# cargo does nothing when target/release/epinio-irsa is up to date.
say "cargo build --release -p epinio-irsa"
cargo build --release -p epinio-irsa

# ------------------------------------------------------------------ harness
export EPINIO_IRSA_BENCH_BIN="$ROOT/target/release/epinio-irsa"
say "running the harness against $EPINIO_IRSA_BENCH_BIN"
exec cargo bench --profile dev --bench hook -- "$@"
