//! One run of a process in a world ([`run`]), and what it did ([`Sample`]).

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use testkit::proxy::{self, Call, CallRecord};
use testkit::world::World;

/// What one run of the job (or of the manual script) did.
pub(crate) struct Sample {
    pub(crate) wall: Duration,
    /// First call seen by either proxy, after the spawn.
    pub(crate) first_request: Option<Duration>,
    /// Peak RSS in KiB (only for runs under /usr/bin/time).
    pub(crate) rss_kib: Option<u64>,
    /// User + system CPU seconds (only for runs under /usr/bin/time).
    pub(crate) cpu_s: Option<f64>,
    pub(crate) aws: Vec<Call>,
    pub(crate) kube: Vec<Call>,
    pub(crate) spawned: Instant,
}

impl Sample {
    pub(crate) fn aws_reads(&self) -> usize {
        self.aws.iter().filter(|c| !c.is_write).count()
    }
    pub(crate) fn aws_writes(&self) -> usize {
        self.aws.iter().filter(|c| c.is_write).count()
    }
    pub(crate) fn kube_reads(&self) -> usize {
        self.kube.iter().filter(|c| !c.is_write).count()
    }
    pub(crate) fn kube_writes(&self) -> usize {
        self.kube.iter().filter(|c| c.is_write).count()
    }
    pub(crate) fn depth(&self) -> usize {
        proxy::critical_path_depth(&self.aws)
    }
    /// Calls made more than once: reads per `testkit::proxy::duplicates` (retries after a
    /// failure excepted), plus successful writes repeated with the same operation and resource.
    pub(crate) fn duplicates(&self) -> Vec<String> {
        let mut out = Vec::new();
        for calls in [&self.aws, &self.kube] {
            for (op, res, n) in proxy::duplicates(calls) {
                out.push(format!("{op} {} x{n}", res.unwrap_or_default()));
            }
            let mut writes: Vec<(&str, &str)> = calls
                .iter()
                .filter(|c| c.is_write && c.is_success())
                .map(|c| (c.op.as_str(), c.resource.as_deref().unwrap_or("")))
                .collect();
            writes.sort();
            let mut i = 0;
            while i < writes.len() {
                let n = writes[i..].iter().take_while(|w| **w == writes[i]).count();
                if n > 1 {
                    out.push(format!("{} {} x{n} (write)", writes[i].0, writes[i].1));
                }
                i += n;
            }
        }
        out
    }
    pub(crate) fn to_json(&self) -> Value {
        let records = |calls: &[Call]| -> Vec<Value> {
            calls
                .iter()
                .map(|c| {
                    serde_json::to_value(CallRecord::from_call(c, self.spawned))
                        .unwrap_or(Value::Null)
                })
                .collect()
        };
        json!({
            "wall_ms": ms(self.wall),
            "first_request_ms": self.first_request.map(ms),
            "peak_rss_kib": self.rss_kib,
            "cpu_s": self.cpu_s,
            "aws_reads": self.aws_reads(),
            "aws_writes": self.aws_writes(),
            "kube_reads": self.kube_reads(),
            "kube_writes": self.kube_writes(),
            "aws_depth": self.depth(),
            "duplicates": self.duplicates(),
            "aws_calls": records(&self.aws),
            "kube_calls": records(&self.kube),
        })
    }
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Run `program args` with `env` (and nothing else) in world `w`; `rss` wraps it in
/// `/usr/bin/time` to read the peak RSS. Errors with the output when it fails.
pub(crate) async fn run(
    w: &World,
    program: &Path,
    args: &[&str],
    env: &[(String, String)],
    rss: bool,
) -> Result<Sample, String> {
    w.aws_proxy.clear_calls();
    w.kube_proxy.clear_calls();
    let rss_file = w.dir.join("rss.txt");
    let mut cmd = if rss {
        let mut c = tokio::process::Command::new("/usr/bin/time");
        c.arg("-f")
            .arg("%M %U %S")
            .arg("-o")
            .arg(&rss_file)
            .arg(program);
        c
    } else {
        tokio::process::Command::new(program)
    };
    cmd.args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let spawned = Instant::now();
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    let out = tokio::time::timeout(Duration::from_secs(300), child.wait_with_output())
        .await
        .map_err(|_| format!("{} {args:?} did not finish in 300 s", program.display()))?
        .map_err(|e| e.to_string())?;
    let wall = spawned.elapsed();
    if !out.status.success() {
        return Err(format!(
            "{} {args:?} failed ({})\nstdout:\n{}\nstderr:\n{}",
            program.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    // The proxies log a call when its response is complete; the client may exit a hair earlier.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (aws, kube) = (w.aws_proxy.calls(), w.kube_proxy.calls());
    let first_request = aws
        .iter()
        .chain(&kube)
        .map(|c| c.start)
        .min()
        .map(|t| t.saturating_duration_since(spawned));
    let (rss_kib, cpu_s) = if rss { timed(&rss_file) } else { (None, None) };
    Ok(Sample {
        wall,
        first_request,
        rss_kib,
        cpu_s,
        aws,
        kube,
        spawned,
    })
}

/// `/usr/bin/time -f "%M %U %S"` wrote to `file`: peak RSS in KiB, user plus system CPU
/// seconds.
fn timed(file: &Path) -> (Option<u64>, Option<f64>) {
    let timed: Vec<f64> = std::fs::read_to_string(file)
        .ok()
        .and_then(|t| t.lines().last().map(str::to_string))
        .map(|l| {
            l.split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let rss_kib = timed.first().map(|k| *k as u64);
    let cpu_s = (timed.len() == 3).then(|| timed[1] + timed[2]);
    (rss_kib, cpu_s)
}
