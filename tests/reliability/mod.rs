//! Shared by the reliability tests (`faults`, `crash`, `ownership`, `secrets`, ...): the
//! standard scenario, its clean baseline, state comparison, retry-bound arithmetic, lost
//! answers, and a kube client as the job's runs see the stand-in.
#![allow(dead_code)] // each test crate uses its own subset

use std::time::{Duration, Instant};

use serde_json::Value;
use testkit::proxy::{Call, Fault, Rule};
use testkit::world::{RunOutput, World};

pub const BIN: &str = env!("CARGO_BIN_EXE_epinio-irsa");

/// A separate staging ServiceAccount: two roles, one ServiceAccount created by the job.
pub const STAGING: (&str, &str) = ("EPINIO_IRSA_STAGING_SERVICE_ACCOUNT", "epinio-staging");
/// Teardown removes the OIDC provider too, so a torn-down world is back to its start.
pub const DELETE_PROVIDER: (&str, &str) = ("EPINIO_IRSA_DELETE_OIDC_PROVIDER", "true");

/// Per-attempt timeout of the runs with injected faults ([`FAST`]).
pub const TIMEOUT_SECONDS: u64 = 1;

/// The SDK's initial backoff and cap, and the same for `K8s::call` (src/aws/mod.rs,
/// src/k8s.rs): 200 ms doubling, at most 5 s.
pub const INITIAL_BACKOFF: Duration = Duration::from_millis(200);
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Worst-case time of one call that never succeeds, from the retry settings: `attempts`
/// attempts of at most `timeout` each, and between them backoffs of at most
/// 200 ms x 2^(i-1) (the SDK applies jitter in [0, 1) to that; `K8s::call` waits it exactly),
/// capped at 5 s.
pub fn call_bound(attempts: u32, timeout: Duration) -> Duration {
    let backoff: Duration = (1..attempts)
        .map(|i| (INITIAL_BACKOFF * 2u32.pow(i - 1)).min(MAX_BACKOFF))
        .sum();
    timeout * attempts + backoff
}

/// The call timeout of runs with injected faults, so a hung call costs one second; other
/// runs keep the world's 3 s, which a loaded machine never hits by accident.
pub const FAST: (&str, &str) = ("EPINIO_IRSA_CALL_TIMEOUT_SECONDS", "1");

/// Environment of a provision in the standard scenario.
pub fn provision_env<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![STAGING];
    env.extend_from_slice(extra);
    env
}

/// Environment of a teardown in the standard scenario.
pub fn teardown_env<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![STAGING, DELETE_PROVIDER];
    env.extend_from_slice(extra);
    env
}

/// IAM and Kubernetes state together.
#[derive(Debug, Clone, PartialEq)]
pub struct State {
    pub iam: Value,
    pub kube: Value,
}

pub async fn state(w: &World) -> State {
    State {
        iam: w.iam_state().await,
        kube: w.kube_state(),
    }
}

/// What a clean provision and a clean teardown of the standard scenario leave, and the calls
/// they make.
pub struct Baseline {
    pub provisioned: State,
    pub torn_down: State,
    pub provision_calls: Vec<Call>,
    pub teardown_calls: Vec<Call>,
    pub provision_time: Duration,
    pub teardown_time: Duration,
}

/// Provision and tear down once, then again, checking that the cycle is reproducible (the
/// second round ends in the same states), so every later run can be compared with it.
pub async fn baseline(w: &World) -> Baseline {
    let t = Instant::now();
    let p = w.run("provision", &provision_env(&[])).await;
    let provision_time = t.elapsed();
    p.assert_ok();
    let provisioned = state(w).await;
    let t = Instant::now();
    let d = w.run("teardown", &teardown_env(&[])).await;
    let teardown_time = t.elapsed();
    d.assert_ok();
    let torn_down = state(w).await;
    w.run("provision", &provision_env(&[])).await.assert_ok();
    assert_same(&state(w).await, &provisioned, "second clean provision");
    w.run("teardown", &teardown_env(&[])).await.assert_ok();
    assert_same(&state(w).await, &torn_down, "second clean teardown");
    Baseline {
        provisioned,
        torn_down,
        provision_calls: p.aws_calls.into_iter().chain(p.kube_calls).collect(),
        teardown_calls: d.aws_calls.into_iter().chain(d.kube_calls).collect(),
        provision_time,
        teardown_time,
    }
}

/// `None` when equal, else where the first difference is.
pub fn difference(actual: &State, expected: &State) -> Option<String> {
    first_difference(&actual.iam, &expected.iam, "iam")
        .or_else(|| first_difference(&actual.kube, &expected.kube, "kube"))
}

#[track_caller]
pub fn assert_same(actual: &State, expected: &State, what: &str) {
    if let Some(d) = difference(actual, expected) {
        panic!("{what}: state differs from a clean run's: {d}");
    }
}

fn first_difference(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys()) {
                let p = format!("{path}/{k}");
                match (x.get(k), y.get(k)) {
                    (Some(u), Some(v)) => {
                        if let Some(d) = first_difference(u, v, &p) {
                            return Some(d);
                        }
                    }
                    (u, v) => return Some(format!("{p}: {u:?} != {v:?}")),
                }
            }
            None
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (u, v))| first_difference(u, v, &format!("{path}/{i}"))),
        _ if a == b => None,
        _ => Some(format!("{path}: {a} != {b}")),
    }
}

/// Distinct `(service, op)` of a call log, in order of first appearance, with one example
/// call (for its resource and whether it writes).
pub fn operations(calls: &[Call]) -> Vec<Call> {
    let mut ops: Vec<Call> = Vec::new();
    for c in calls {
        if !ops.iter().any(|o| o.service == c.service && o.op == c.op) {
            ops.push(c.clone());
        }
    }
    ops
}

// ----- lost answers ------------------------------------------------------------------------

/// The two ways an answer is lost after the write committed.
pub const LOST: [Fault; 2] = [Fault::CommitThenReset, Fault::CommitThenInternalFailure];

/// Every write of a run: (AWS or not, operation, how many calls of that operation came before).
fn write_points(out: &RunOutput) -> Vec<(bool, String, usize)> {
    let mut points: Vec<(bool, String, usize)> = Vec::new();
    let calls: Vec<&Call> = out.aws_calls.iter().chain(&out.kube_calls).collect();
    for c in calls.iter().filter(|c| c.is_write) {
        let nth = points
            .iter()
            .filter(|(aws, op, _)| *aws == c.is_aws() && *op == c.op)
            .count();
        points.push((c.is_aws(), c.op.clone(), nth));
    }
    points
}

/// How the runs with a lost answer ended.
#[derive(Debug, Default)]
pub struct Tally {
    pub points: usize,
    /// Converged within the run (the retry saw the committed write and went on).
    pub within: usize,
    /// Failed, and the next run converged; with the failing run's error.
    pub next_run: Vec<String>,
}

/// Runs `command` once clean from the state `prepare` makes, then once per write of that clean
/// run and per fault with that write's answer lost, each time from the same start, and checks
/// that every one ends (after at most one more run) in the clean run's state.
pub async fn every_write_loses_its_answer(
    w: &World,
    what: &str,
    prepare: impl AsyncFn(&World),
    command: &str,
    env: &[(&str, &str)],
) -> (Tally, State) {
    // Twice: the first run on a fresh world may do what later ones need not (a restart for a
    // pod template that never had the annotation); the second is what every point repeats.
    prepare(w).await;
    w.run(command, env).await.assert_ok();
    prepare(w).await;
    let clean = w.run(command, env).await;
    clean.assert_ok();
    let expected = state(w).await;
    let points = write_points(&clean);
    assert!(!points.is_empty(), "{what}: a clean run writes");
    let mut tally = Tally::default();
    for (aws, op, nth) in &points {
        for fault in LOST {
            prepare(w).await;
            let proxy = if *aws { &w.aws_proxy } else { &w.kube_proxy };
            proxy.add_rule(Rule::new(op.clone(), fault.clone(), 1).after(*nth));
            let out = w.run(command, env).await;
            proxy.clear_rules();
            let label = format!("{what}: answer of {op} #{nth} lost ({})", fault.name());
            let hit: Vec<&Call> = out
                .aws_calls
                .iter()
                .chain(&out.kube_calls)
                .filter(|c| c.injected.as_deref() == Some(fault.name()))
                .collect();
            assert_eq!(hit.len(), 1, "{label}: the fault fired once");
            assert!(
                (200..300).contains(&hit[0].status),
                "{label}: the write committed upstream ({})",
                hit[0].status
            );
            tally.points += 1;
            if out.success() {
                tally.within += 1;
            } else {
                for refusal in [
                    "was not created by epinio-irsa",
                    "belongs to another",
                    "did not make",
                ] {
                    assert!(
                        !out.stderr.contains(refusal),
                        "{label}: refused its own write as someone else's:\n{}",
                        out.stderr
                    );
                }
                let error = out
                    .stderr
                    .lines()
                    .find(|l| l.starts_with("error:"))
                    .unwrap_or("(no error line)")
                    .to_string();
                let again = w.run(command, env).await;
                assert!(
                    again.success(),
                    "{label}: the next run must converge\nfirst: {error}\nstdout:\n{}\nstderr:\n{}",
                    again.stdout,
                    again.stderr
                );
                tally.next_run.push(format!("{label}: {error}"));
            }
            assert_same(&state(w).await, &expected, &label);
        }
    }
    println!(
        "{what}: {} lost answers, {} converged within the run, {} on the next run",
        tally.points,
        tally.within,
        tally.next_run.len()
    );
    for line in &tally.next_run {
        println!("  next run needed: {line}");
    }
    (tally, expected)
}

/// A kube-rs client from the world's kubeconfig: as the job's runs see the stand-in (under
/// `World::with_rbac`, authenticated as the hook).
pub async fn kube_client(w: &World) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(w.kubeconfig()).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("kube config");
    kube::Client::try_from(config).expect("kube client")
}

/// Pod Identity drift someone else made: the server's association repointed to another role
/// (a re-run updates it) and the staging association's managed-by tag removed (a re-run tags
/// it again).
pub fn drift_pod_identity(w: &World) {
    let a = w.pod_identity().associations();
    let of = |sa: &str| {
        a.iter()
            .find(|x| x.service_account == sa)
            .unwrap_or_else(|| panic!("no association of {sa}: {a:?}"))
    };
    let other = format!("arn:aws:iam::{}:role/elsewhere", w.account());
    w.pod_identity().set_role(&of("epinio-server").id, &other);
    let staging = of("epinio-staging");
    let mut tags = staging.tags.clone();
    tags.remove("app.kubernetes.io/managed-by");
    w.pod_identity().set_tags(&staging.id, tags);
}
