//! Fault injection: every AWS operation and every Kubernetes call that `provision` and
//! `teardown` make (taken from a clean run's call log) is hit by each fault kind that the
//! service can really produce for it. Injected once, the run must succeed and leave exactly
//! the state of a clean run; injected persistently, the run must fail within the bound the
//! retry settings give, naming the operation and the resource.
//!
//! Which fault kinds apply to which call:
//! - throttling, 503, 500, a reset connection and a response slower than the call timeout can
//!   hit any call of any protocol (IAM/STS Query, EKS REST-JSON, Kubernetes);
//! - a 409 only answers writes: IAM's `ConcurrentModification`, Kubernetes' `Conflict`
//!   (the EKS call, a read, never gets one);
//! - IAM's `NoSuchEntity` is transient only right after this run created the object
//!   (eventual consistency): `AttachRolePolicy` on a new role or policy, `TagPolicy` on a new
//!   version. Anywhere else it is a true answer ("absent"), not a fault, except for the
//!   reads of a run that starts right after another one created everything: those are
//!   covered by `stale_reads_right_after_another_runs_creates_converge_or_fail_bounded`.
//!
//! A persistently failing call whose answer the run does not need (`ListAttachedRolePolicies`
//! of a role `GetRole` says is absent) may let the run succeed: then the final state must be a
//! clean run's.

mod reliability;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::future::join_all;
use reliability::{
    baseline, call_bound, difference, operations, provision_env, state, teardown_env, Baseline,
    State, BIN, FAST, TIMEOUT_SECONDS,
};
use testkit::proxy::{critical_path_depth, Call, Fault, Proxy, Rule};
use testkit::world::World;

/// Longer than the 1 s call timeout: the client gives up first.
const SLOW: Duration = Duration::from_millis(1500);

/// Independent worlds the cases are spread over, run side by side.
const LANES: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Provision,
    Teardown,
}

#[derive(Debug, Clone)]
struct Case {
    phase: Phase,
    service: String,
    op: String,
    fault: Fault,
}

impl Case {
    fn proxy<'a>(&self, w: &'a World) -> &'a Proxy {
        if self.service == "kube" {
            &w.kube_proxy
        } else {
            &w.aws_proxy
        }
    }

    fn label(&self) -> String {
        format!(
            "{:?} {}:{} {}",
            self.phase,
            self.service,
            self.op,
            self.fault.name()
        )
    }
}

/// The fault kinds that model something the service really does to this call.
fn transient_kinds(call: &Call) -> Vec<Fault> {
    let mut kinds = vec![
        Fault::Throttling,
        Fault::ServiceUnavailable,
        Fault::InternalFailure,
        Fault::ResetConnection,
        Fault::Slow(SLOW),
    ];
    if call.is_write && call.service != "eks" {
        kinds.push(Fault::Conflict);
    }
    if call.service == "iam" && ["AttachRolePolicy", "TagPolicy"].contains(&call.op.as_str()) {
        kinds.push(Fault::NoSuchEntity);
    }
    kinds
}

fn cases(base: &Baseline, kinds: impl Fn(&Call) -> Vec<Fault>) -> Vec<Case> {
    let mut out = Vec::new();
    for (phase, calls) in [
        (Phase::Provision, &base.provision_calls),
        (Phase::Teardown, &base.teardown_calls),
    ] {
        for call in operations(calls) {
            for fault in kinds(&call) {
                out.push(Case {
                    phase,
                    service: call.service.clone(),
                    op: call.op.clone(),
                    fault,
                });
            }
        }
    }
    out
}

/// Worlds with their baselines, set up side by side. Every world must make the same calls.
async fn worlds(n: usize) -> Vec<(World, Baseline)> {
    let worlds = join_all((0..n).map(|_| async {
        let w = World::new(BIN).await;
        let b = baseline(&w).await;
        (w, b)
    }))
    .await;
    let ops = |calls: &[Call]| {
        let mut v: Vec<String> = operations(calls)
            .iter()
            .map(|c| format!("{}:{}", c.service, c.op))
            .collect();
        v.sort();
        v
    };
    for (_, b) in &worlds[1..] {
        assert_eq!(
            ops(&b.provision_calls),
            ops(&worlds[0].1.provision_calls),
            "every world makes the same calls"
        );
        assert_eq!(ops(&b.teardown_calls), ops(&worlds[0].1.teardown_calls));
    }
    worlds
}

/// After a case that may have left anything behind, bring the world to the state a clean
/// run of `phase` ends in, with clean runs (teardown must clean up whatever a failed run left).
async fn finish(w: &World, base: &Baseline, phase: Phase) {
    w.run("teardown", &teardown_env(&[])).await.assert_ok();
    reliability::assert_same(
        &state(w).await,
        &base.torn_down,
        "clean teardown after a case",
    );
    if phase == Phase::Provision {
        w.run("provision", &provision_env(&[])).await.assert_ok();
        reliability::assert_same(
            &state(w).await,
            &base.provisioned,
            "clean provision after a case",
        );
    }
}

fn command(phase: Phase) -> &'static str {
    match phase {
        Phase::Provision => "provision",
        Phase::Teardown => "teardown",
    }
}

/// The environment of a run with an injected fault: a 1 s call timeout.
fn env(phase: Phase) -> Vec<(&'static str, &'static str)> {
    match phase {
        Phase::Provision => provision_env(&[FAST]),
        Phase::Teardown => teardown_env(&[FAST]),
    }
}

fn expected(base: &Baseline, phase: Phase) -> &State {
    match phase {
        Phase::Provision => &base.provisioned,
        Phase::Teardown => &base.torn_down,
    }
}

/// One transient case: the fault once, then a normal run must converge to the clean state.
async fn transient(w: &World, base: &Baseline, case: &Case) -> Result<Duration, String> {
    let proxy = case.proxy(w);
    proxy.add_rule(Rule::once(&case.op, case.fault.clone()));
    let t = Instant::now();
    let out = w.run(command(case.phase), &env(case.phase)).await;
    let took = t.elapsed();
    proxy.clear_rules();
    let injected = out
        .aws_calls
        .iter()
        .chain(&out.kube_calls)
        .filter(|c| c.op == case.op && c.injected.as_deref() == Some(case.fault.name()))
        .count();
    if injected != 1 {
        return Err(format!("the fault was injected {injected} times, not once"));
    }
    if !out.success() {
        return Err(format!("failed: {}", out.stderr.trim_end()));
    }
    match difference(&state(w).await, expected(base, case.phase)) {
        Some(d) => Err(format!("final state differs from a clean run's: {d}")),
        None => Ok(took),
    }
}

/// Run `cases` in one world, alternating provision and teardown cases so each starts from
/// the state the previous one left (clean runs fill in when one phase has fewer cases).
async fn lane<T, F, Fut>(
    w: &World,
    base: &Baseline,
    cases: &[Case],
    run: F,
) -> Vec<(Case, Result<T, String>)>
where
    F: Fn(Case) -> Fut,
    Fut: std::future::Future<Output = (Result<T, String>, bool)>,
{
    let provision: Vec<&Case> = cases
        .iter()
        .filter(|c| c.phase == Phase::Provision)
        .collect();
    let teardown: Vec<&Case> = cases
        .iter()
        .filter(|c| c.phase == Phase::Teardown)
        .collect();
    let mut results = Vec::new();
    for i in 0..provision.len().max(teardown.len()) {
        for (phase, list) in [(Phase::Provision, &provision), (Phase::Teardown, &teardown)] {
            match list.get(i) {
                Some(case) => {
                    let (result, left_clean) = run((*case).clone()).await;
                    if !left_clean {
                        finish(w, base, phase).await;
                    }
                    results.push(((*case).clone(), result));
                }
                None => {
                    let clean = match phase {
                        Phase::Provision => provision_env(&[]),
                        Phase::Teardown => teardown_env(&[]),
                    };
                    w.run(command(phase), &clean).await.assert_ok();
                }
            }
        }
    }
    results
}

#[tokio::test(flavor = "multi_thread")]
async fn every_call_survives_each_transient_fault_once_with_the_clean_final_state() {
    let started = Instant::now();
    let worlds = worlds(LANES).await;
    let all = cases(&worlds[0].1, transient_kinds);
    let results: Vec<(Case, Result<Duration, String>)> =
        join_all(worlds.iter().enumerate().map(|(i, (w, b))| {
            let mine: Vec<Case> = all.iter().skip(i).step_by(LANES).cloned().collect();
            async move {
                lane(w, b, &mine, |case| async move {
                    let r = transient(w, b, &case).await;
                    let clean = r.is_ok();
                    (r, clean)
                })
                .await
            }
        }))
        .await
        .into_iter()
        .flatten()
        .collect();

    // The matrix, for the README: operation -> fault kinds survived.
    let mut matrix: BTreeMap<(Phase, String), Vec<&str>> = BTreeMap::new();
    for (case, r) in &results {
        if r.is_ok() {
            matrix
                .entry((case.phase, format!("{}:{}", case.service, case.op)))
                .or_default()
                .push(case.fault.name());
        }
    }
    for ((phase, op), kinds) in matrix.iter_mut() {
        kinds.sort();
        println!("{phase:?} {op}: {}", kinds.join(", "));
    }
    let failures: Vec<String> = results
        .iter()
        .filter_map(|(c, r)| r.as_ref().err().map(|e| format!("{}: {e}", c.label())))
        .collect();
    println!(
        "transient faults: {} cases ({} operations x applicable kinds), {} survived, in {:?}",
        results.len(),
        matrix.len(),
        results.len() - failures.len(),
        started.elapsed()
    );
    assert_eq!(results.len(), all.len());
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        results.len(),
        failures.join("\n")
    );
    // The derived list covers what the job is known to do; a smaller log would mean the
    // scenario lost coverage.
    for op in [
        "iam:CreateOpenIDConnectProvider",
        "iam:CreatePolicy",
        "iam:CreateRole",
        "iam:AttachRolePolicy",
        "eks:DescribeCluster",
        "kube:apply serviceaccounts",
        "kube:apply deployments",
    ] {
        assert!(
            matrix.contains_key(&(Phase::Provision, op.to_string())),
            "{op}"
        );
    }
    for op in [
        "iam:DetachRolePolicy",
        "iam:DeleteRole",
        "iam:DeletePolicy",
        "iam:DeleteOpenIDConnectProvider",
        "kube:apply serviceaccounts",
        "kube:delete serviceaccounts",
    ] {
        assert!(
            matrix.contains_key(&(Phase::Teardown, op.to_string())),
            "{op}"
        );
    }
}

// ----- persistent faults ---------------------------------------------------------------

/// Attempts per call in the persistent-fault runs.
const PERSISTENT_ATTEMPTS: u32 = 3;

/// Every operation with a persistent 503; a few representative ones (an IAM read and write,
/// the EKS read, a Kubernetes read and write) with every kind, the hung upstream included.
fn persistent_kinds(call: &Call) -> Vec<Fault> {
    let full = [
        "GetRole",
        "CreateRole",
        "DeleteRole",
        "DescribeCluster",
        "get serviceaccounts",
        "apply serviceaccounts",
        "delete serviceaccounts",
    ];
    if full.contains(&call.op.as_str()) {
        let mut kinds = transient_kinds(call);
        kinds.retain(|k| *k != Fault::NoSuchEntity);
        kinds
    } else {
        vec![Fault::ServiceUnavailable]
    }
}

/// What the error must name: the operation as the job calls it, and the resource.
fn names_operation_and_resource(case: &Case, stderr: &str, injected: &[&Call]) -> bool {
    if case.service == "kube" {
        let (verb, resource) = case.op.split_once(' ').unwrap_or((&case.op, ""));
        let what = injected.iter().any(|c| match c.resource.as_deref() {
            Some(r) if r.ends_with("/*") => {
                stderr.contains(&format!("{resource} in {}", r.trim_end_matches("/*")))
            }
            Some(r) => stderr.contains(r),
            None => true,
        });
        stderr.contains(&format!("Kubernetes {verb} ")) && what
    } else {
        let what = injected
            .iter()
            .any(|c| c.resource.as_deref().is_none_or(|r| stderr.contains(r)));
        stderr.contains(&format!("{}:{} on ", case.service, case.op)) && what
    }
}

/// How a persistent fault ended: the run failed as it must, or the call's answer did not
/// matter (e.g. `ListAttachedRolePolicies` of a role that `GetRole` says is absent) and the
/// run reached the clean state anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ending {
    Failed(Duration),
    NotNeeded,
}

async fn persistent(
    w: &World,
    base: &Baseline,
    case: &Case,
    limit: Duration,
) -> Result<Ending, String> {
    let proxy = case.proxy(w);
    proxy.add_rule(Rule::always(&case.op, case.fault.clone()));
    let attempts = PERSISTENT_ATTEMPTS.to_string();
    let mut env = env(case.phase);
    env.push(("EPINIO_IRSA_MAX_ATTEMPTS", &attempts));
    let t = Instant::now();
    let out = w.run(command(case.phase), &env).await;
    let took = t.elapsed();
    proxy.clear_rules();
    let injected: Vec<&Call> = out
        .aws_calls
        .iter()
        .chain(&out.kube_calls)
        .filter(|c| c.op == case.op && c.injected.is_some())
        .collect();
    if injected.is_empty() {
        return Err("the fault was never injected".into());
    }
    if took > limit {
        return Err(format!("took {took:?}, over the bound {limit:?}"));
    }
    if out.success() {
        return match difference(&state(w).await, expected(base, case.phase)) {
            None => Ok(Ending::NotNeeded),
            Some(d) => Err(format!(
                "succeeded although {} always failed, and the state differs from a clean run's: {d}",
                case.op
            )),
        };
    }
    if out.code != Some(1) {
        return Err(format!("exit {:?}, expected 1", out.code));
    }
    let error = out
        .stderr
        .lines()
        .rfind(|l| l.starts_with("error: "))
        .unwrap_or_default();
    if !names_operation_and_resource(case, error, &injected) {
        return Err(format!(
            "the error does not name the operation and resource: {error}"
        ));
    }
    Ok(Ending::Failed(took))
}

#[tokio::test(flavor = "multi_thread")]
async fn persistent_faults_fail_within_the_retry_bound_naming_operation_and_resource() {
    let started = Instant::now();
    let n = 4;
    let worlds = worlds(n).await;
    let all = cases(&worlds[0].1, persistent_kinds);
    let per_call = call_bound(PERSISTENT_ATTEMPTS, Duration::from_secs(TIMEOUT_SECONDS));
    // The failing call's bound, plus the rest of the run (at most a clean run's time, twice
    // over for a loaded machine) and a second for process start and exit.
    let slowest_clean = worlds
        .iter()
        .map(|(_, b)| b.provision_time.max(b.teardown_time))
        .max()
        .unwrap_or_default();
    let limit = per_call + slowest_clean * 2 + Duration::from_secs(1);
    let results: Vec<(Case, Result<Ending, String>)> =
        join_all(worlds.iter().enumerate().map(|(i, (w, b))| {
            let mine: Vec<Case> = all.iter().skip(i).step_by(n).cloned().collect();
            async move {
                lane(w, b, &mine, |case| async move {
                    (persistent(w, b, &case, limit).await, false)
                })
                .await
            }
        }))
        .await
        .into_iter()
        .flatten()
        .collect();
    let slowest = results
        .iter()
        .filter_map(|(c, r)| match r {
            Ok(Ending::Failed(d)) => Some((*d, c.label())),
            _ => None,
        })
        .max();
    let not_needed: Vec<String> = results
        .iter()
        .filter(|(_, r)| matches!(r, Ok(Ending::NotNeeded)))
        .map(|(c, _)| c.label())
        .collect();
    println!(
        "persistent faults: {} cases; bound per call {per_call:?} ({PERSISTENT_ATTEMPTS} attempts of {TIMEOUT_SECONDS} s), run limit {limit:?}; slowest {slowest:?}; answer not needed, clean state reached: {not_needed:?}; in {:?}",
        results.len(),
        started.elapsed()
    );
    // At the shipped defaults, a run whose every call on its longest chain of dependent
    // calls needs all its attempts takes at most that many per-call bounds.
    let defaults = call_bound(5, Duration::from_secs(15));
    let b0 = &worlds[0].1;
    for (command, calls) in [
        ("provision", &b0.provision_calls),
        ("teardown", &b0.teardown_calls),
    ] {
        let depth = critical_path_depth(calls);
        println!(
            "{command}: {depth} dependent calls on the critical path; at the defaults (5 attempts of 15 s) one call is bounded by {defaults:?}, the whole run by {:?}",
            defaults * depth as u32
        );
    }
    let failures: Vec<String> = results
        .iter()
        .filter_map(|(c, r)| r.as_ref().err().map(|e| format!("{}: {e}", c.label())))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        results.len(),
        failures.join("\n")
    );
}

#[test]
fn the_bound_follows_the_retry_settings() {
    // Defaults: 5 attempts of 15 s, backoffs 0.2 + 0.4 + 0.8 + 1.6 s.
    assert_eq!(
        call_bound(5, Duration::from_secs(15)),
        Duration::from_secs(78)
    );
    assert_eq!(
        call_bound(3, Duration::from_secs(1)),
        Duration::from_millis(3600)
    );
    // The cap: from the 6th retry on, 5 s each.
    assert_eq!(
        call_bound(10, Duration::from_secs(1)),
        Duration::from_millis(10_000 + 200 + 400 + 800 + 1600 + 3200 + 5000 * 4)
    );
}

// ----- IAM's eventual consistency on reads ---------------------------------------------

/// Right after another run created the roles, the policy and the provider, IAM may still
/// answer `NoSuchEntity` to reads of them. A run that starts then must converge to the same
/// state (once the reads catch up) and never loop: with the reads stale for good, it fails
/// within the bound instead, having changed nothing.
#[tokio::test(flavor = "multi_thread")]
async fn stale_reads_right_after_another_runs_creates_converge_or_fail_bounded() {
    let w = World::new(BIN).await;
    let base = baseline(&w).await;
    w.run("provision", &provision_env(&[])).await.assert_ok();
    let attempts = PERSISTENT_ATTEMPTS.to_string();
    let limit = call_bound(PERSISTENT_ATTEMPTS, Duration::from_secs(TIMEOUT_SECONDS)) * 4
        + base.provision_time * 4
        + Duration::from_secs(2);
    let mut cases = 0;
    for op in [
        "GetRole",
        "ListAttachedRolePolicies",
        "GetPolicy",
        "GetOpenIDConnectProvider",
    ] {
        // Stale once: converges.
        w.aws_proxy.add_rule(Rule::once(op, Fault::NoSuchEntity));
        let out = w.run("provision", &provision_env(&[])).await;
        w.aws_proxy.clear_rules();
        out.assert_ok();
        assert_eq!(
            difference(&state(&w).await, &base.provisioned),
            None,
            "{op} stale once"
        );
        // Stale for good: a bounded failure or a success, never a loop, never a change.
        w.aws_proxy.add_rule(Rule::always(op, Fault::NoSuchEntity));
        let t = Instant::now();
        let out = w
            .run_with_timeout(
                "provision",
                &provision_env(&[FAST, ("EPINIO_IRSA_MAX_ATTEMPTS", &attempts)]),
                limit + Duration::from_secs(30),
            )
            .await;
        let took = t.elapsed();
        w.aws_proxy.clear_rules();
        assert!(took <= limit, "{op} stale for good: {took:?} > {limit:?}");
        // Either the stale answer did not matter, or a clean failure: never a crash.
        assert!(
            matches!(out.code, Some(0) | Some(1)),
            "{op} stale for good: exit {:?}: {}",
            out.code,
            out.stderr.lines().last().unwrap_or_default()
        );
        if out.code == Some(1) {
            assert!(
                out.stderr.contains("error: "),
                "{op}: a clean error: {}",
                out.stderr
            );
        }
        assert_eq!(
            difference(&state(&w).await, &base.provisioned),
            None,
            "{op} stale for good: {}",
            out.stderr
        );
        println!(
            "{op} stale for good: exit {:?} in {took:?}: {}",
            out.code,
            out.stderr.lines().last().unwrap_or_default()
        );
        cases += 2;
    }
    println!("stale reads after creates: {cases} cases");
}
