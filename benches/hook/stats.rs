//! Statistics over samples (medians, spreads, duplicate calls) and the analysis of one run's
//! AWS calls: rounds, the critical-path chain, where the time goes, the timeline.

use std::fmt::Write as _;
use std::time::Instant;

use testkit::proxy::Call;

use crate::sample::{ms, Sample};

pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// `x` when every sample agrees, else `min–max`.
pub(crate) fn spread(v: impl IntoIterator<Item = usize>) -> String {
    let v: Vec<usize> = v.into_iter().collect();
    match (v.iter().min(), v.iter().max()) {
        (Some(a), Some(b)) if a == b => a.to_string(),
        (Some(a), Some(b)) => format!("{a}–{b}"),
        _ => "–".into(),
    }
}

/// The calls repeated within a run, over all samples; the same repeat in several samples is
/// listed once.
pub(crate) fn duplicates_cell(samples: &[&Sample]) -> String {
    let mut dups: Vec<String> = samples.iter().flat_map(|x| x.duplicates()).collect();
    dups.sort();
    dups.dedup();
    if dups.is_empty() {
        "none".to_string()
    } else {
        dups.join("; ")
    }
}

pub(crate) fn wall_cell(samples: &[&Sample]) -> String {
    let walls: Vec<f64> = samples.iter().map(|s| ms(s.wall)).collect();
    let lo = walls.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = walls.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{:.0} ({:.0}–{:.0})", median(walls), lo, hi)
}

pub(crate) fn wall_median(samples: &[&Sample]) -> f64 {
    median(samples.iter().map(|s| ms(s.wall)).collect())
}

/// Round (1-based) of each AWS call: the longest chain of calls that ended before it started.
pub(crate) fn rounds(calls: &[Call]) -> Vec<(usize, &Call)> {
    let mut order: Vec<&Call> = calls.iter().collect();
    order.sort_by_key(|c| (c.start, c.end));
    let mut level = vec![1usize; order.len()];
    for i in 0..order.len() {
        for j in 0..i {
            if order[j].end <= order[i].start {
                level[i] = level[i].max(level[j] + 1);
            }
        }
    }
    level.into_iter().zip(order).collect()
}

/// The chain of calls behind the critical-path depth, one name per round.
pub(crate) fn chain(s: &Sample) -> String {
    let r = rounds(&s.aws);
    let max = r.iter().map(|(l, _)| *l).max().unwrap_or(0);
    (1..=max)
        .map(|l| {
            let mut ops: Vec<&str> = r
                .iter()
                .filter(|(x, _)| *x == l)
                .map(|(_, c)| c.op.as_str())
                .collect();
            ops.sort();
            ops.dedup();
            ops.join(" + ")
        })
        .collect::<Vec<_>>()
        .join(" → ")
}

/// Where the wall time of a run goes, in ms: (before the first AWS call, injected delay
/// `depth × delay`, the rest of the time inside the AWS rounds (moto and proxy processing,
/// including moto serialising concurrent calls), between rounds (the job's own work), after the
/// last AWS call (Kubernetes writes, report, exit)).
pub(crate) fn breakdown(s: &Sample, delay: u64) -> (f64, f64, f64, f64, f64) {
    let r = rounds(&s.aws);
    let depth = r.iter().map(|(l, _)| *l).max().unwrap_or(0);
    let at = |t: Instant| ms(t.saturating_duration_since(s.spawned));
    let spans: Vec<(f64, f64)> = (1..=depth)
        .map(|l| {
            let calls: Vec<&Call> = r.iter().filter(|(x, _)| *x == l).map(|(_, c)| *c).collect();
            let start = calls
                .iter()
                .map(|c| at(c.start))
                .fold(f64::INFINITY, f64::min);
            let end = calls.iter().map(|c| at(c.end)).fold(0.0, f64::max);
            (start, end)
        })
        .collect();
    let Some((&(first, _), &(_, last))) = spans.first().zip(spans.last()) else {
        return (ms(s.wall), 0.0, 0.0, 0.0, 0.0);
    };
    let inside: f64 = spans.iter().map(|(a, b)| b - a).sum();
    let injected = (depth as u64 * delay) as f64;
    let between: f64 = spans.windows(2).map(|w| (w[1].0 - w[0].1).max(0.0)).sum();
    (
        first,
        injected,
        inside - injected,
        between,
        ms(s.wall) - last,
    )
}

pub(crate) fn timeline(s: &Sample) -> String {
    let mut t = String::new();
    for (level, c) in rounds(&s.aws) {
        let _ = writeln!(
            t,
            "  round {level}  {:>7.1} – {:>7.1} ms  {:<4} {:<30} {} ({})",
            ms(c.start.saturating_duration_since(s.spawned)),
            ms(c.end.saturating_duration_since(s.spawned)),
            c.service,
            c.op,
            c.resource.as_deref().unwrap_or(""),
            c.status
        );
    }
    for c in &s.kube {
        let _ = writeln!(
            t,
            "  kube     {:>7.1} – {:>7.1} ms  {} {} ({})",
            ms(c.start.saturating_duration_since(s.spawned)),
            ms(c.end.saturating_duration_since(s.spawned)),
            c.op,
            c.resource.as_deref().unwrap_or(""),
            c.status
        );
    }
    let _ = writeln!(t, "  exit at {:.1} ms", ms(s.wall));
    t
}
