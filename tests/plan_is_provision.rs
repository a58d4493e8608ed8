//! `plan` shows exactly what `provision` then does, and `plan teardown` exactly what `teardown`
//! then does: from the same state, in every scenario the suite has (fresh, no-op, drift, bucket
//! change, IRSA to EKS Pod Identity and back, into and out of gateway mode, teardown), the
//! summary lines of the plan are the summary lines of the run (future tense against past), and
//! the writes in the run's AWS and Kubernetes call logs are exactly the objects the plan said it
//! would write: no write the plan did not show, no step the plan showed without a write.

use std::collections::{BTreeMap, BTreeSet};

use testkit::epinio::Chart;
use testkit::proxy::Call;
use testkit::world::{RunOutput, World, NAMESPACE};

const BIN: &str = env!("CARGO_BIN_EXE_epinio-irsa");
const STAGING: (&str, &str) = ("EPINIO_IRSA_STAGING_SERVICE_ACCOUNT", "epinio-staging");
const KEY_ID: &str = "EPINIOCLUSTERLOCAL01";
const SECRET: &str = "cluster-local-secret-0123456789abcdefghij";
const KINDS: &[&str] = &[
    "oidc-provider",
    "policy",
    "role",
    "pod-identity-association",
    "serviceaccount",
    "deployment",
    "statefulset",
    "daemonset",
];

/// One summary line: kind, name, and the verb in the past tense.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Line {
    kind: String,
    name: String,
    verb: String,
}

impl Line {
    fn is_write(&self) -> bool {
        ["created", "updated", "deleted"]
            .iter()
            .any(|w| self.verb.starts_with(w))
    }
}

/// The summary's resource lines; a plan's verbs are put in the past tense to compare.
fn lines(out: &RunOutput, planned: bool) -> Vec<Line> {
    let past = |verb: &str| -> String {
        if !planned {
            return verb.to_string();
        }
        for (now, then) in [
            ("create", "created"),
            ("update", "updated"),
            ("delete", "deleted"),
            ("keep", "kept"),
        ] {
            if let Some(rest) = verb.strip_prefix(now) {
                return format!("{then}{rest}");
            }
        }
        verb.to_string()
    };
    let mut found: Vec<Line> = out
        .stdout
        .lines()
        .filter_map(|l| {
            let l = l.strip_prefix("  ")?;
            let mut parts = l.split("  ").map(str::trim).filter(|p| !p.is_empty());
            let kind = parts.next()?;
            if !KINDS.contains(&kind) {
                return None;
            }
            let name = parts.next()?.to_string();
            let verb = parts.collect::<Vec<_>>().join("  ");
            Some(Line {
                kind: kind.to_string(),
                name,
                verb: past(&verb),
            })
        })
        .collect();
    found.sort();
    found
}

/// The object a write call changes, as the summary names it: `(kind, name)`. `ids` maps Pod
/// Identity association ids to their `namespace/serviceaccount`.
fn object_of(call: &Call, ids: &BTreeMap<String, String>, summary: &[Line]) -> (String, String) {
    let resource = call.resource.clone().unwrap_or_default();
    let kind = match (call.service.as_str(), call.op.as_str()) {
        ("iam", op) if op.contains("OpenIDConnectProvider") => "oidc-provider",
        ("iam", op) if op.contains("Role") => "role",
        ("iam", op) if op.contains("Policy") => "policy",
        ("eks", _) => "pod-identity-association",
        (_, op) if op.ends_with(" serviceaccounts") => "serviceaccount",
        (_, op) if op.ends_with(" deployments") => "deployment",
        (_, op) if op.ends_with(" statefulsets") => "statefulset",
        (_, op) if op.ends_with(" daemonsets") => "daemonset",
        _ => panic!("a write the test cannot attribute: {call:?}"),
    };
    let resource = match kind {
        "pod-identity-association" => ids.get(&resource).cloned().unwrap_or(resource),
        "oidc-provider" => resource.trim_start_matches("https://").to_string(),
        _ => resource,
    };
    // The summary's name for it: roles carry their kind ("NAME (server)"), the policy and
    // the provider their ARN.
    let name = summary
        .iter()
        .filter(|l| l.kind == kind)
        .map(|l| l.name.clone())
        .find(|n| {
            n == &resource
                || n.starts_with(&format!("{resource} ("))
                || n.ends_with(&format!("/{resource}"))
        })
        .unwrap_or(resource);
    (kind.to_string(), name)
}

/// Every association the stand-in knows, by id (before and after a run: deletes included).
fn association_ids(w: &World, known: &mut BTreeMap<String, String>) {
    for a in w.pod_identity().associations() {
        known.insert(a.id, format!("{}/{}", a.namespace, a.service_account));
    }
}

/// Runs `plan` (or `plan teardown`) then the command, from the same state, and checks that
/// the plan was exactly what the command did. Returns the command's output.
async fn plan_then(w: &World, command: &str, env: &[(&str, &str)]) -> RunOutput {
    let mut ids = BTreeMap::new();
    association_ids(w, &mut ids);
    let plan_command = if command == "teardown" {
        "plan teardown"
    } else {
        "plan"
    };
    let plan = w.run(plan_command, env).await;
    plan.assert_ok().assert_no_writes();
    let done = w.run(command, env).await;
    done.assert_ok();
    association_ids(w, &mut ids);

    let (planned, did) = (lines(&plan, true), lines(&done, false));
    assert!(
        !planned.is_empty(),
        "the plan names no resource:\n{}",
        plan.stdout
    );
    assert_eq!(
        planned, did,
        "{command}: the plan's lines are not what was done\nplan:\n{}\n{command}:\n{}",
        plan.stdout, done.stdout
    );
    let shown: BTreeSet<(String, String)> = planned
        .iter()
        .filter(|l| l.is_write())
        .map(|l| (l.kind.clone(), l.name.clone()))
        .collect();
    let written: BTreeSet<(String, String)> = done
        .aws_writes()
        .into_iter()
        .chain(done.kube_writes())
        .map(|c| object_of(c, &ids, &did))
        .collect();
    assert_eq!(
        shown,
        written,
        "{command}: objects the plan said it would write (left) against the objects the call log \
         shows written (right)\nplan:\n{}\nwrites: {:#?}",
        plan.stdout,
        done.aws_writes()
            .into_iter()
            .chain(done.kube_writes())
            .map(|c| (&c.op, &c.resource))
            .collect::<Vec<_>>()
    );
    done
}

#[tokio::test(flavor = "multi_thread")]
async fn irsa_fresh_noop_drift_bucket_change_and_teardown() {
    let w = World::with_objects(
        BIN,
        Chart::new("1.13.9")
            .staging_workloads("epinio-staging")
            .objects(),
    )
    .await;
    let env = [STAGING];
    let fresh = plan_then(&w, "provision", &env).await;
    assert!(fresh.aws_writes().len() >= 6, "{:?}", fresh.aws_writes());

    // No-op: nothing to write, and the plan says so.
    let noop = plan_then(&w, "provision", &env).await;
    noop.assert_no_writes();

    // Drift: someone detaches our policy from the server's role.
    let iam = w.iam_state().await;
    let (role, state) = iam["roles"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(n, _)| n.contains("-server"))
        .expect("server role");
    let policy = state["attached"][0].as_str().unwrap().to_string();
    w.iam
        .detach_role_policy()
        .role_name(role)
        .policy_arn(&policy)
        .send()
        .await
        .unwrap();
    let drift = plan_then(&w, "provision", &env).await;
    assert!(
        drift
            .aws_writes()
            .iter()
            .any(|c| c.op == "AttachRolePolicy"),
        "{:?}",
        drift.aws_writes()
    );

    // Bucket change: a new policy version.
    let moved = [STAGING, ("EPINIO_IRSA_S3_BUCKET", "moved")];
    let bucket = plan_then(&w, "provision", &moved).await;
    assert!(
        bucket
            .aws_writes()
            .iter()
            .any(|c| c.op == "CreatePolicyVersion"),
        "{:?}",
        bucket.aws_writes()
    );

    // Teardown: `plan teardown` names every removal, and only those happen.
    let gone = plan_then(&w, "teardown", &moved).await;
    assert!(
        gone.aws_writes().iter().any(|c| c.op == "DeleteRole"),
        "{:?}",
        gone.aws_writes()
    );
    assert!(
        w.iam_state().await["roles"]
            .as_object()
            .is_none_or(|r| r.is_empty()),
        "teardown left roles"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn irsa_to_pod_identity_and_back_and_teardown() {
    let chart = Chart::new("1.13.9")
        .aws_cli(testkit::epinio::POD_IDENTITY_AWS_CLI)
        .staging_workloads("epinio-staging");
    let w = World::with_objects(BIN, chart.objects()).await;
    w.install_agent("ACTIVE");
    let irsa = [STAGING, ("EPINIO_IRSA_MODE", "irsa")];
    let pod_identity = [STAGING, ("EPINIO_IRSA_MODE", "pod-identity")];

    plan_then(&w, "provision", &irsa).await;
    let to_pi = plan_then(&w, "provision", &pod_identity).await;
    assert!(
        to_pi
            .aws_writes()
            .iter()
            .any(|c| c.op == "CreatePodIdentityAssociation"),
        "{:?}",
        to_pi.aws_writes()
    );
    plan_then(&w, "provision", &pod_identity)
        .await
        .assert_no_writes();
    let back = plan_then(&w, "provision", &irsa).await;
    assert!(
        back.aws_writes()
            .iter()
            .any(|c| c.op == "DeletePodIdentityAssociation"),
        "{:?}",
        back.aws_writes()
    );
    plan_then(&w, "provision", &pod_identity).await;
    plan_then(&w, "teardown", &pod_identity).await;
    assert!(w.pod_identity().associations().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn into_and_out_of_gateway_mode_and_teardown() {
    let mut objects = Chart::new("1.13.9")
        .staging_workloads("epinio-staging")
        .objects();
    objects.extend(testkit::gateway::helm_objects(NAMESPACE));
    let w = World::with_objects(BIN, objects).await;
    w.kube.enable_rollouts(std::time::Duration::from_secs(2));
    let gateway = epinio_irsa::gateway::start(testkit::gateway::env_beside(
        &w.moto,
        &w.dir,
        "epinio",
        (KEY_ID, SECRET),
    ))
    .await
    .expect("gateway starts");
    let endpoint = format!("http://{}", gateway.s3_addr());
    let plain = [STAGING];
    let through = [
        STAGING,
        ("EPINIO_IRSA_GATEWAY", "true"),
        ("EPINIO_IRSA_S3_ACCESS_KEY_ID", KEY_ID),
        ("EPINIO_IRSA_S3_SECRET_ACCESS_KEY", SECRET),
        ("EPINIO_IRSA_GATEWAY_ENDPOINT", endpoint.as_str()),
    ];

    plan_then(&w, "provision", &plain).await;
    // Into gateway mode: the gateway's role is made, and Epinio's roles, annotations and the
    // staging ServiceAccount the job created go; the plan names every one of them.
    let into = plan_then(&w, "provision", &through).await;
    let deleted: Vec<&str> = into
        .aws_writes()
        .iter()
        .filter(|c| c.op == "DeleteRole")
        .filter_map(|c| c.resource.as_deref())
        .collect();
    assert_eq!(deleted.len(), 2, "{:?}", into.aws_writes());
    assert!(
        into.kube_writes()
            .iter()
            .any(|c| c.op == "delete serviceaccounts"),
        "{:?}",
        into.kube_writes()
    );
    plan_then(&w, "provision", &through)
        .await
        .assert_no_writes();
    // And out again.
    let out = plan_then(&w, "provision", &plain).await;
    assert!(
        out.aws_writes().iter().any(|c| c.op == "DeleteRole"
            && c.resource
                .as_deref()
                .is_some_and(|r| r.ends_with("-gateway"))),
        "{:?}",
        out.aws_writes()
    );
    plan_then(&w, "teardown", &plain).await;
    gateway.shutdown().await;
}
