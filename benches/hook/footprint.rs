//! The footprint table: binary and image sizes, peak RSS and CPU, start-up time; and the
//! facts of the machine and tree the report names.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Stdio;

use serde_json::{json, Value};

use crate::args::{Args, Op};
use crate::report::{pick, Results};
use crate::sample::ms;
use crate::stats::median;
use crate::ROOT;

pub(crate) fn footprint(args: &Args, results: &Results) -> (String, Value) {
    let mut md = String::new();
    let size = std::fs::metadata(&args.bin).map(|m| m.len()).unwrap_or(0);
    let stripped = strip_size(&args.bin);
    let images = image_sizes();
    let startup: Vec<f64> = results
        .job
        .iter()
        .flat_map(|(_, runs)| runs.iter().flatten())
        .filter_map(|s| s.first_request.map(ms))
        .collect();
    let startup_first: Vec<f64> = results
        .job
        .iter()
        .flat_map(|(_, runs)| pick(runs, Op::Provision))
        .filter_map(|s| s.first_request.map(ms))
        .collect();
    let rss: Vec<(Op, u64, Option<f64>)> = results
        .rss
        .as_ref()
        .map(|(_, samples)| {
            Op::ALL
                .iter()
                .zip(samples)
                .filter_map(|(op, s)| Some((*op, s.rss_kib?, s.cpu_s)))
                .collect()
        })
        .unwrap_or_default();
    size_rows(&mut md, size, stripped, &images);
    rss_rows(
        &mut md,
        &rss,
        results.rss.as_ref().map(|r| r.0).unwrap_or(0),
    );
    let _ = writeln!(
        md,
        "| start-up to first request, median over {} job runs (fresh provision only: {}) | {:.1} ms (min {:.1}, max {:.1}) | < 50 ms |",
        startup.len(),
        startup_first.len(),
        median(startup.clone()),
        startup.iter().copied().fold(f64::INFINITY, f64::min),
        startup.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    );
    let _ = writeln!(
        md,
        "| start-up to first request, fresh provision only | {:.1} ms median | |",
        median(startup_first.clone())
    );
    let value = json!({
        "binary_bytes": size,
        "binary_stripped_bytes": stripped,
        "images": images.iter().map(|(n, s)| json!({"name": n, "size": s})).collect::<Vec<_>>(),
        "peak_rss_kib": rss.iter().map(|(o, k, _)| (o.key().to_string(), json!(k))).collect::<serde_json::Map<_, _>>(),
        "cpu_s": rss.iter().map(|(o, _, c)| (o.key().to_string(), json!(c))).collect::<serde_json::Map<_, _>>(),
        "startup_to_first_request_ms": {"median": median(startup), "median_fresh_provision": median(startup_first)},
    });
    (md, value)
}

/// The rows of the binary's and the images' sizes.
fn size_rows(md: &mut String, size: u64, stripped: Option<u64>, images: &[(String, String)]) {
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let _ = writeln!(md, "| measure | value | target |");
    let _ = writeln!(md, "|---|---|---|");
    let _ = writeln!(
        md,
        "| release binary as built (`strip = true`) | {} bytes ({:.2} MiB, {:.1} MB) | < 20 MB |",
        size,
        mib(size),
        size as f64 / 1e6
    );
    if let Some(s) = stripped {
        let _ = writeln!(
            md,
            "| after `strip --strip-all` | {s} bytes ({:.2} MiB) | |",
            mib(s)
        );
    }
    for (name, human) in images {
        let _ = writeln!(
            md,
            "| container image `{name}` (`podman images`) | {human} | |"
        );
    }
    if images.is_empty() {
        let _ = writeln!(md, "| container image | not measured (no `localhost/epinio-irsa` image in `podman images`) | |");
    }
}

/// The rows of peak RSS and CPU per operation (`rss`, measured at `delay` ms).
fn rss_rows(md: &mut String, rss: &[(Op, u64, Option<f64>)], delay: u64) {
    let rss_provision = rss
        .iter()
        .find(|(o, _, _)| *o == Op::Provision)
        .map(|r| (r.1, r.2));
    let cpu = |c: &Option<f64>| match c {
        Some(c) => format!(", CPU {:.0} ms user+sys", c * 1000.0),
        None => String::new(),
    };
    match &rss_provision {
        Some((k, c)) => {
            let _ = writeln!(
                md,
                "| peak RSS, fresh provision (at {} ms) | {k} KiB ({:.1} MiB){} | < 32 MiB |",
                delay,
                *k as f64 / 1024.0,
                cpu(c)
            );
        }
        None => {
            let _ = writeln!(
                md,
                "| peak RSS, fresh provision | not measured (/usr/bin/time missing) | < 32 MiB |"
            );
        }
    }
    for (op, k, c) in rss.iter().filter(|(o, _, _)| *o != Op::Provision) {
        let _ = writeln!(
            md,
            "| peak RSS, {} | {k} KiB ({:.1} MiB){} | |",
            op.label(),
            *k as f64 / 1024.0,
            cpu(c)
        );
    }
}

/// The first three fields of /proc/loadavg.
pub(crate) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// stdout of a command, empty when it cannot run.
pub(crate) fn command_line(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .current_dir(ROOT)
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// `git` commit of the work tree, and whether the sources of the binary differ from it.
pub(crate) fn tree_state() -> String {
    let head = command_line("git", &["rev-parse", "--short", "HEAD"]);
    let dirty = command_line(
        "git",
        &[
            "status",
            "--porcelain",
            "--",
            "src",
            "Cargo.toml",
            "Cargo.lock",
        ],
    );
    match (head.is_empty(), dirty.is_empty()) {
        (true, _) => "unknown".into(),
        (false, true) => format!("`{head}`"),
        (false, false) => format!("`{head}` + uncommitted changes to src/ or Cargo.*"),
    }
}

pub(crate) fn strip_size(bin: &Path) -> Option<u64> {
    let tmp = std::env::temp_dir().join(format!("epinio-irsa-bench-strip-{}", std::process::id()));
    let ok = std::process::Command::new("strip")
        .arg("--strip-all")
        .arg("-o")
        .arg(&tmp)
        .arg(bin)
        .stderr(Stdio::null())
        .status()
        .ok()?
        .success();
    let size = if ok {
        std::fs::metadata(&tmp).ok().map(|m| m.len())
    } else {
        None
    };
    let _ = std::fs::remove_file(&tmp);
    size
}

/// Every `localhost/epinio-irsa:TAG` image and its size as podman prints it
/// (tests/image/build.sh tags the project's Dockerfile build `localhost/epinio-irsa:test`).
pub(crate) fn image_sizes() -> Vec<(String, String)> {
    let Ok(out) = std::process::Command::new("podman")
        .args(["images", "--format", "{{.Repository}}:{{.Tag}}\t{{.Size}}"])
        .stderr(Stdio::null())
        .output()
    else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (name, size) = l.split_once('\t')?;
            name.starts_with("localhost/epinio-irsa:")
                .then(|| (name.to_string(), size.to_string()))
        })
        .collect()
}
