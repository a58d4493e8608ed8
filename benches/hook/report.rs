//! The report (`hook.md` and `hook.json`): per delay the job's and the manual procedure's
//! tables, the critical paths, the targets, where the time goes, the call timelines, the
//! footprint, `verify` under propagation and EKS Pod Identity.

use std::fmt::Write as _;

use serde_json::Value;

use crate::args::{Args, Op};
use crate::footprint::{command_line, footprint, loadavg, tree_state};
use crate::sample::Sample;
use crate::sequences::{PropagationRow, POD_IDENTITY_STEPS};
use crate::stats::{
    breakdown, chain, duplicates_cell, median, spread, timeline, wall_cell, wall_median,
};

pub(crate) struct Results {
    pub(crate) load_before: String,
    /// [delay][sample][op]
    pub(crate) job: Vec<(u64, Vec<Vec<Sample>>)>,
    pub(crate) manual: Vec<(u64, Vec<Vec<Sample>>)>,
    pub(crate) rss: Option<(u64, Vec<Sample>)>,
    /// verify under IAM propagation: (delay, rows)
    pub(crate) propagation: Option<(u64, Vec<PropagationRow>)>,
    /// EKS Pod Identity: (delay, samples of the steps)
    pub(crate) pod_identity: Option<(u64, Vec<Vec<Sample>>)>,
}

pub(crate) fn pick(runs: &[Vec<Sample>], op: Op) -> Vec<&Sample> {
    let i = Op::ALL.iter().position(|o| *o == op).unwrap_or(0);
    runs.iter().filter_map(|r| r.get(i)).collect()
}

pub(crate) fn report(args: &Args, results: &Results) -> (String, Value) {
    let mut md = header(args, results);
    let mut js = serde_json::Map::new();
    for (delay, runs) in &results.job {
        job_table(&mut md, &mut js, *delay, runs);
        if let Some((_, manual)) = results.manual.iter().find(|(d, _)| d == delay) {
            manual_table(&mut md, &mut js, *delay, runs, manual);
        }
        let _ = writeln!(md);
    }

    // Targets, at the largest delay.
    if let Some((delay, runs)) = results.job.iter().max_by_key(|(d, _)| *d) {
        critical_paths(&mut md, *delay, runs);
        targets(&mut md, *delay, runs, results);
        time_breakdown(&mut md, *delay, runs);
        timelines(&mut md, *delay, runs);
    }

    let (fp_md, fp_js) = footprint(args, results);
    let _ = writeln!(md, "\n### Footprint\n\n{fp_md}");
    js.insert("footprint".into(), fp_js);
    if let Some((delay, samples)) = &results.rss {
        js.insert(
            format!("rss/{delay}"),
            Value::Array(samples.iter().map(|x| x.to_json()).collect()),
        );
    }
    (md, Value::Object(js))
}

/// The opening line: binary, tree, samples, load.
fn header(args: &Args, results: &Results) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "Binary: `{}` (sha256 {}), tree {}. {} job sample(s) and {} manual sample(s) per delay; wall = median (min–max) in ms, spawn to exit. Load average before / after: {} / {} ({} CPUs).\n",
        args.bin.display(),
        command_line("sha256sum", &[&args.bin.display().to_string()])
            .split_whitespace()
            .next()
            .map(|h| &h[..h.len().min(12)])
            .unwrap_or("?"),
        tree_state(),
        args.runs,
        args.manual_runs,
        results.load_before,
        loadavg(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
    );
    md
}

/// The job's table at one delay (and its samples into the JSON).
fn job_table(
    md: &mut String,
    js: &mut serde_json::Map<String, Value>,
    delay: u64,
    runs: &[Vec<Sample>],
) {
    let _ = writeln!(md, "### {delay} ms per AWS call\n");
    let _ = writeln!(md, "| operation | wall ms | AWS reads | AWS writes | Kubernetes reads / writes | AWS depth | limit | wall / (depth × delay) | wall / (limit × delay) | duplicate calls |");
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|");
    for op in Op::ALL {
        let s = pick(runs, op);
        let wall = wall_median(&s);
        let depth = median(s.iter().map(|x| x.depth() as f64).collect());
        let ratio = |n: f64| {
            if delay == 0 {
                "–".to_string()
            } else {
                format!("{:.2}", wall / (n * delay as f64))
            }
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} / {} | {} | {} | {} | {} | {} |",
            op.label(),
            wall_cell(&s),
            spread(s.iter().map(|x| x.aws_reads())),
            spread(s.iter().map(|x| x.aws_writes())),
            spread(s.iter().map(|x| x.kube_reads())),
            spread(s.iter().map(|x| x.kube_writes())),
            spread(s.iter().map(|x| x.depth())),
            op.limit(),
            ratio(depth),
            ratio(op.limit() as f64),
            duplicates_cell(&s),
        );
        js.insert(
            format!("job/{delay}/{}", op.key()),
            Value::Array(s.iter().map(|x| x.to_json()).collect()),
        );
    }
}

/// The manual procedure's table at one delay, beside the job's (and its samples into the
/// JSON).
fn manual_table(
    md: &mut String,
    js: &mut serde_json::Map<String, Value>,
    delay: u64,
    runs: &[Vec<Sample>],
    manual: &[Vec<Sample>],
) {
    let _ = writeln!(
        md,
        "\nManual procedure (`scripts/manual-procedure.sh`), same delay:\n"
    );
    let _ = writeln!(md, "| operation | manual wall ms | manual AWS calls (reads / writes) | manual kubectl calls | manual AWS depth | epinio-irsa wall ms | manual / epinio-irsa | ceiling: manual / (limit × delay) |");
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|");
    for op in Op::ALL {
        let m = pick(manual, op);
        let j = pick(runs, op);
        let _ = writeln!(
            md,
            "| {} (`{}`) | {} | {} / {} | {} | {} | {:.0} | **{:.1}x** | {} |",
            op.label(),
            op.manual_args()[0],
            wall_cell(&m),
            spread(m.iter().map(|x| x.aws_reads())),
            spread(m.iter().map(|x| x.aws_writes())),
            spread(m.iter().map(|x| x.kube.len())),
            spread(m.iter().map(|x| x.depth())),
            wall_median(&j),
            wall_median(&m) / wall_median(&j),
            if delay == 0 {
                "–".to_string()
            } else {
                format!(
                    "{:.1}x",
                    wall_median(&m) / (op.limit() as f64 * delay as f64)
                )
            },
        );
        js.insert(
            format!("manual/{delay}/{}", op.key()),
            Value::Array(m.iter().map(|x| x.to_json()).collect()),
        );
    }
}

/// The chain of dependent AWS rounds of each operation (first sample).
fn critical_paths(md: &mut String, delay: u64, runs: &[Vec<Sample>]) {
    let _ = writeln!(md, "### Critical path at {delay} ms (first sample)\n");
    let _ = writeln!(md, "| operation | depth | chain of dependent AWS rounds |");
    let _ = writeln!(md, "|---|---|---|");
    for op in Op::ALL {
        if let Some(s) = pick(runs, op).first() {
            let _ = writeln!(md, "| {} | {} | {} |", op.label(), s.depth(), chain(s));
        }
    }
}

/// The issue's targets: depth, reads only, ten times faster than manual, no call twice.
fn targets(md: &mut String, delay: u64, runs: &[Vec<Sample>], results: &Results) {
    let _ = writeln!(md, "\n### Targets\n");
    let _ = writeln!(md, "| target | measured | met |");
    let _ = writeln!(md, "|---|---|---|");
    for op in Op::ALL {
        let s = pick(runs, op);
        let depth = s.iter().map(|x| x.depth()).max().unwrap_or(0);
        let writes = s.iter().map(|x| x.aws_writes()).max().unwrap_or(0);
        if let Some(t) = op.target() {
            let reads_only = if op == Op::Noop {
                format!(", {writes} AWS writes")
            } else {
                String::new()
            };
            let met = depth <= t && (op != Op::Noop || writes == 0);
            let _ = writeln!(
                md,
                "| {}: AWS depth ≤ {t}{} | {depth}{reads_only} (at {delay} ms, worst sample) | {} |",
                op.label(),
                if op == Op::Noop { ", reads only" } else { "" },
                if met { "yes" } else { "**no**" }
            );
        } else {
            let _ = writeln!(
                md,
                "| {}: no target; limit {} | {depth} (at {delay} ms, worst sample) | {} |",
                op.label(),
                op.limit(),
                if depth <= op.limit() {
                    "at the limit"
                } else {
                    "above the limit"
                }
            );
        }
    }
    if let Some((_, manual)) = results.manual.iter().find(|(d, _)| *d == delay) {
        for op in Op::ALL {
            let ratio = wall_median(&pick(manual, op)) / wall_median(&pick(runs, op));
            let _ = writeln!(
                md,
                "| {}: ≥ 10x faster than manual at {delay} ms | {ratio:.1}x | {} |",
                op.label(),
                if ratio >= 10.0 { "yes" } else { "**no**" }
            );
        }
    }
    let dups: Vec<String> = results
        .job
        .iter()
        .flat_map(|(_, r)| r.iter().flatten())
        .flat_map(|s| s.duplicates())
        .collect();
    let _ = writeln!(
        md,
        "| no call made twice (all delays, all operations) | {} | {} |",
        if dups.is_empty() {
            "none".to_string()
        } else {
            dups.join("; ")
        },
        if dups.is_empty() { "yes" } else { "**no**" }
    );
}

/// Where the wall time goes, per operation (medians).
fn time_breakdown(md: &mut String, delay: u64, runs: &[Vec<Sample>]) {
    let _ = writeln!(
        md,
        "\n### Where the time goes at {delay} ms (medians, ms)\n"
    );
    let _ = writeln!(md, "| operation | wall | spawn to first AWS call | injected delay (depth × {delay}) | rest of the AWS rounds (moto, proxy) | between rounds (the job) | after the last AWS call (Kubernetes writes, exit) |");
    let _ = writeln!(md, "|---|---|---|---|---|---|---|");
    for op in Op::ALL {
        let s = pick(runs, op);
        let b: Vec<(f64, f64, f64, f64, f64)> = s.iter().map(|x| breakdown(x, delay)).collect();
        let col = |f: fn(&(f64, f64, f64, f64, f64)) -> f64| median(b.iter().map(f).collect());
        let _ = writeln!(
            md,
            "| {} | {:.0} | {:.1} | {:.0} | {:.1} | {:.1} | {:.1} |",
            op.label(),
            wall_median(&s),
            col(|x| x.0),
            col(|x| x.1),
            col(|x| x.2),
            col(|x| x.3),
            col(|x| x.4),
        );
    }
}

/// The call timelines of each operation (first sample).
fn timelines(md: &mut String, delay: u64, runs: &[Vec<Sample>]) {
    let _ = writeln!(md, "\n### Call timelines at {delay} ms (first sample)\n");
    for op in Op::ALL {
        if let Some(s) = pick(runs, op).first() {
            let _ = writeln!(
                md,
                "{} (`epinio-irsa {}`):\n```text\n{}```",
                op.label(),
                op.job_command(),
                timeline(s)
            );
        }
    }
}

pub(crate) fn pod_identity_table(delay: u64, samples: &[Vec<Sample>]) -> String {
    let mut md = format!("\n### EKS Pod Identity ({delay} ms per AWS call, {} sample(s))\n\n| step | wall ms | AWS reads | AWS writes | AWS depth | Kubernetes reads / writes | duplicate calls |\n|---|---|---|---|---|---|---|\n", samples.len());
    for (i, (label, _, _)) in POD_IDENTITY_STEPS.iter().enumerate() {
        let step: Vec<&Sample> = samples.iter().filter_map(|s| s.get(i)).collect();
        md.push_str(&format!(
            "| {label} | {} | {} | {} | {} | {} / {} | {} |\n",
            wall_cell(&step),
            spread(step.iter().map(|s| s.aws_reads())),
            spread(step.iter().map(|s| s.aws_writes())),
            spread(step.iter().map(|s| s.depth())),
            spread(step.iter().map(|s| s.kube_reads())),
            spread(step.iter().map(|s| s.kube_writes())),
            duplicates_cell(&step),
        ));
    }
    md
}

/// `verify` under IAM propagation: one row per run.
pub(crate) fn propagation_table(delay: u64, rows: &[PropagationRow]) -> String {
    let mut md = format!("\n### verify under IAM propagation ({delay} ms per AWS call, fresh provision)\n\n| run | AssumeRole denied | wall ms | Epinio restarted at ms | AWS depth |\n|---|---|---|---|---|\n");
    for (label, denied, wall, restarted, depth) in rows {
        md.push_str(&format!(
            "| {label} | {denied} | {wall:.0} | {restarted:.0} | {depth} |\n"
        ));
    }
    md
}
