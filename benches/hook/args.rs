//! The benchmark's operations ([`Op`]) and command line ([`Args`]).

use std::path::{Path, PathBuf};

use crate::{BIN_ENV, MOVED_BUCKET, ROOT, STAGING_SA};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Provision,
    Noop,
    BucketChange,
    Teardown,
}

impl Op {
    pub(crate) const ALL: [Op; 4] = [Op::Provision, Op::Noop, Op::BucketChange, Op::Teardown];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Op::Provision => "fresh provision",
            Op::Noop => "no-op re-run",
            Op::BucketChange => "bucket change",
            Op::Teardown => "teardown",
        }
    }

    pub(crate) fn key(self) -> &'static str {
        match self {
            Op::Provision => "provision",
            Op::Noop => "noop",
            Op::BucketChange => "bucket_change",
            Op::Teardown => "teardown",
        }
    }

    pub(crate) fn job_command(self) -> &'static str {
        match self {
            Op::Teardown => "teardown",
            _ => "provision",
        }
    }

    pub(crate) fn job_env(self) -> Vec<(&'static str, &'static str)> {
        let mut env = vec![("EPINIO_IRSA_STAGING_SERVICE_ACCOUNT", STAGING_SA)];
        if matches!(self, Op::BucketChange | Op::Teardown) {
            env.push(("EPINIO_IRSA_S3_BUCKET", MOVED_BUCKET));
        }
        env
    }

    pub(crate) fn manual_args(self) -> Vec<&'static str> {
        match self {
            Op::Provision => vec!["provision"],
            Op::Noop => vec!["check"],
            Op::BucketChange => vec!["bucket-change", MOVED_BUCKET],
            Op::Teardown => vec!["teardown"],
        }
    }

    /// Minimal number of dependent AWS round trips (see BENCHMARKS.md for the chains).
    pub(crate) fn limit(self) -> usize {
        match self {
            Op::Provision => 4,
            Op::Noop => 2,
            Op::BucketChange => 3,
            // After a bucket change the policy has a spare version, which must go before the
            // policy can: 4 (3 without spare versions).
            Op::Teardown => 4,
        }
    }

    /// The target for the critical-path depth, if it sets one.
    pub(crate) fn target(self) -> Option<usize> {
        match self {
            Op::Provision | Op::Teardown => Some(4),
            Op::Noop => Some(2),
            Op::BucketChange => None,
        }
    }
}

pub(crate) struct Args {
    pub(crate) runs: usize,
    pub(crate) manual_runs: usize,
    pub(crate) delays: Vec<u64>,
    pub(crate) bin: PathBuf,
    pub(crate) out: PathBuf,
}

pub(crate) const USAGE: &str =
    "usage: hook [--runs N] [--manual-runs N] [--delays MS,MS,...] [--bin PATH] [--out DIR]
  --runs N           samples of the job per delay (default 5)
  --manual-runs N    samples of the manual procedure per delay (default 5; 0 skips it)
  --delays LIST      per-call delay of the proxy in front of moto, in ms (default 0,50,150)
  --bin PATH         the epinio-irsa binary (default $EPINIO_IRSA_BENCH_BIN, else
                     target/release/epinio-irsa)
  --out DIR          where hook.md and hook.json go (default target/bench)";

pub(crate) fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        runs: 5,
        manual_runs: 5,
        delays: vec![0, 50, 150],
        bin: std::env::var_os(BIN_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(ROOT).join("target/release/epinio-irsa")),
        out: Path::new(ROOT).join("target/bench"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            // Added by `cargo bench` to every harness.
            "--bench" => {}
            "-h" | "--help" => return Err(USAGE.to_string()),
            "--runs" => args.runs = value()?.parse().map_err(|_| "bad --runs")?,
            "--manual-runs" => {
                args.manual_runs = value()?.parse().map_err(|_| "bad --manual-runs")?
            }
            "--delays" => {
                args.delays = value()?
                    .split(',')
                    .map(|d| d.trim().parse::<u64>())
                    .collect::<Result<_, _>>()
                    .map_err(|_| "bad --delays")?
            }
            "--bin" => args.bin = value()?.into(),
            "--out" => args.out = value()?.into(),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    if args.runs == 0 || args.delays.is_empty() {
        return Err(format!("need at least one run and one delay\n{USAGE}"));
    }
    let bin = args.bin.canonicalize().map_err(|e| {
        format!(
            "{}: {e} (build it with `cargo build --release -p epinio-irsa`)",
            args.bin.display()
        )
    })?;
    args.bin = bin;
    Ok(args)
}
