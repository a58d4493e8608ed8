//! Numbers over a call log: the critical path's depth, repeated reads, a [`Summary`].

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::Call;

/// Length of the longest chain of calls where each call started at or after
/// the end of the previous one (longest path in the interval order). A fully
/// sequential run of n calls gives n, fully parallel calls give 1.
pub fn critical_path_depth(calls: &[Call]) -> usize {
    let mut order: Vec<&Call> = calls.iter().collect();
    order.sort_by_key(|c| (c.start, c.end));
    let mut depth = vec![1usize; order.len()];
    for i in 0..order.len() {
        for j in 0..i {
            if order[j].end <= order[i].start {
                depth[i] = depth[i].max(depth[j] + 1);
            }
        }
    }
    depth.into_iter().max().unwrap_or(0)
}

/// Read calls made more than once with the same (service, op, resource),
/// in order of first appearance. A call that directly follows a failed
/// (injected, reset or non-2xx) call with the same key is a retry and is not
/// counted.
pub fn duplicates(calls: &[Call]) -> Vec<(String, Option<String>, usize)> {
    let mut order: Vec<&Call> = calls.iter().filter(|c| !c.is_write).collect();
    order.sort_by_key(|c| c.start);
    type Key = (String, String, Option<String>);
    let mut seen: HashMap<Key, (usize, usize, bool)> = HashMap::new(); // (first index, count, last ok)
    for (i, c) in order.iter().enumerate() {
        let key = (c.service.clone(), c.op.clone(), c.resource.clone());
        let ok = c.is_success();
        match seen.get_mut(&key) {
            None => {
                seen.insert(key, (i, 1, ok));
            }
            Some(entry) => {
                if entry.2 {
                    entry.1 += 1;
                }
                entry.2 = ok;
            }
        }
    }
    let mut out: Vec<(usize, String, Option<String>, usize)> = seen
        .into_iter()
        .filter(|(_, (_, n, _))| *n > 1)
        .map(|((_, op, res), (first, n, _))| (first, op, res, n))
        .collect();
    out.sort();
    out.into_iter()
        .map(|(_, op, res, n)| (op, res, n))
        .collect()
}

/// Aggregate numbers over a call log (see [`summarize`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub total: usize,
    pub aws_reads: usize,
    pub aws_writes: usize,
    pub kube_reads: usize,
    pub kube_writes: usize,
    /// [`critical_path_depth`] over AWS calls only.
    pub depth_aws: usize,
    /// [`critical_path_depth`] over Kubernetes calls only.
    pub depth_kube: usize,
    /// [`critical_path_depth`] over all calls.
    pub depth_all: usize,
    /// Calls answered by an injected fault (incl. crash resets).
    pub injected: usize,
    /// Calls answered with status 0 (reset / client gone).
    pub resets: usize,
    /// Calls that did not succeed (non-2xx, injected or reset).
    pub failed: usize,
    /// Sum over [`duplicates`] of the extra calls (count - 1).
    pub duplicate_reads: usize,
    /// First start to last end, in milliseconds.
    pub wall_ms: f64,
    /// Sum of call durations of AWS calls, in milliseconds.
    pub aws_busy_ms: f64,
    /// Number of calls per `service:op`.
    pub by_op: BTreeMap<String, usize>,
}

pub fn summarize(calls: &[Call]) -> Summary {
    let aws: Vec<Call> = calls.iter().filter(|c| c.is_aws()).cloned().collect();
    let kube: Vec<Call> = calls.iter().filter(|c| !c.is_aws()).cloned().collect();
    let mut s = Summary {
        total: calls.len(),
        aws_reads: aws.iter().filter(|c| !c.is_write).count(),
        aws_writes: aws.iter().filter(|c| c.is_write).count(),
        kube_reads: kube.iter().filter(|c| !c.is_write).count(),
        kube_writes: kube.iter().filter(|c| c.is_write).count(),
        depth_aws: critical_path_depth(&aws),
        depth_kube: critical_path_depth(&kube),
        depth_all: critical_path_depth(calls),
        injected: calls.iter().filter(|c| c.injected.is_some()).count(),
        resets: calls.iter().filter(|c| c.status == 0).count(),
        failed: calls.iter().filter(|c| !c.is_success()).count(),
        duplicate_reads: duplicates(calls).iter().map(|(_, _, n)| n - 1).sum(),
        ..Summary::default()
    };
    if let (Some(first), Some(last)) = (
        calls.iter().map(|c| c.start).min(),
        calls.iter().map(|c| c.end).max(),
    ) {
        s.wall_ms = last.saturating_duration_since(first).as_secs_f64() * 1000.0;
    }
    s.aws_busy_ms = aws
        .iter()
        .map(|c| c.duration().as_secs_f64() * 1000.0)
        .sum();
    for c in calls {
        *s.by_op
            .entry(format!("{}:{}", c.service, c.op))
            .or_default() += 1;
    }
    s
}
