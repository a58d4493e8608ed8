//! Lost answers: the classic cloud failure where a write succeeds but its response never
//! arrives. For every write a clean run makes (IAM creates, attaches, tags and policy versions;
//! EKS association create, update, tag and delete; Kubernetes applies, restarts and deletes),
//! the proxy forwards that one write, lets it commit, then drops the connection or answers 500
//! instead of relaying the answer. The retry inside the run, or else the next run, must end in
//! exactly the state a clean run leaves: no duplicate, no orphan, no ownership refusal of what
//! the job itself made.

mod reliability;

use reliability::{every_write_loses_its_answer, provision_env, teardown_env, BIN};
use serde_json::Value;
use testkit::epinio::Chart;
use testkit::proxy::{Call, Fault, Rule};
use testkit::world::World;

const PI: [(&str, &str); 2] = [
    ("EPINIO_IRSA_STAGING_SERVICE_ACCOUNT", "epinio-staging"),
    ("EPINIO_IRSA_MODE", "pod-identity"),
];

async fn irsa_provision(w: &World) {
    w.run("provision", &provision_env(&[])).await.assert_ok();
}

async fn irsa_teardown(w: &World) {
    w.run("teardown", &teardown_env(&[])).await.assert_ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn irsa_provision_and_teardown_converge_when_any_answer_is_lost() {
    let w = World::new(BIN).await;
    let (p, _) = every_write_loses_its_answer(
        &w,
        "provision",
        irsa_teardown,
        "provision",
        &provision_env(&[]),
    )
    .await;
    assert!(p.points >= 2 * 8, "{p:?}");
    let (t, _) = every_write_loses_its_answer(
        &w,
        "teardown",
        irsa_provision,
        "teardown",
        &teardown_env(&[]),
    )
    .await;
    assert!(t.points >= 2 * 6, "{t:?}");
}

/// A new policy version (the bucket moved) that prunes the oldest, a trust policy and a role
/// tag someone changed, and the tags that record the version: each of those writes loses its
/// answer.
#[tokio::test(flavor = "multi_thread")]
async fn a_policy_and_trust_update_converges_when_any_answer_is_lost() {
    let w = World::new(BIN).await;
    let bucket = ("EPINIO_IRSA_S3_BUCKET", "epinio-moved");
    let prepare = async |w: &World| {
        irsa_teardown(w).await;
        irsa_provision(w).await;
        let role = w.iam_state().await["roles"]
            .as_object()
            .and_then(|r| r.keys().find(|k| k.ends_with("-server")).cloned())
            .expect("server role");
        w.iam
            .update_assume_role_policy()
            .role_name(&role)
            .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole"}]}"#)
            .send()
            .await
            .expect("drift the trust policy");
        // A role tag removed (TagRole puts it back) and three spare policy versions, so the
        // new version fills the kept window and the oldest is pruned (DeletePolicyVersion).
        w.iam
            .untag_role()
            .role_name(role)
            .tag_keys("app.kubernetes.io/managed-by")
            .send()
            .await
            .expect("drift a role tag");
        let policy = w.iam_state().await["policies"]
            .as_object()
            .and_then(|p| p.keys().next().cloned())
            .expect("policy");
        for _ in 0..3 {
            w.iam
                .create_policy_version()
                .policy_arn(&policy)
                .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::spare"}]}"#)
                .set_as_default(false)
                .send()
                .await
                .expect("a spare version");
        }
    };
    let (u, expected) = every_write_loses_its_answer(
        &w,
        "update",
        prepare,
        "provision",
        &provision_env(&[bucket]),
    )
    .await;
    // CreatePolicyVersion, DeletePolicyVersion, TagPolicy, UpdateAssumeRolePolicy, TagRole.
    assert!(u.points >= 2 * 5, "{u:?}");
    // No second version of the same document: exactly what a clean update leaves (the kept
    // window of four).
    let policies = expected.iam["policies"].as_object().expect("policies");
    for (name, p) in policies {
        assert_eq!(p["versions"], 4, "{name}: {p}");
    }
}

/// `CreatePolicyVersion` is not retried blind by the SDK (a lost answer would publish twice),
/// so the job retries it itself: what cannot have committed (throttling, IAM's
/// `ConcurrentModification`) at once, what may have (a reset, a 500, a 503) after reading the
/// default version back. Each, once, still ends in one new version within the run.
#[tokio::test(flavor = "multi_thread")]
async fn publishing_a_policy_version_retries_what_failed_without_publishing_twice() {
    let w = World::new(BIN).await;
    let bucket = ("EPINIO_IRSA_S3_BUCKET", "epinio-moved");
    irsa_provision(&w).await;
    w.run("provision", &provision_env(&[bucket]))
        .await
        .assert_ok();
    let expected = reliability::state(&w).await;
    for fault in [
        Fault::Throttling,
        Fault::Conflict,
        Fault::ServiceUnavailable,
        Fault::InternalFailure,
        Fault::ResetConnection,
    ] {
        irsa_teardown(&w).await;
        irsa_provision(&w).await;
        w.aws_proxy
            .add_rule(Rule::once("CreatePolicyVersion", fault.clone()));
        let out = w.run("provision", &provision_env(&[bucket])).await;
        w.aws_proxy.clear_rules();
        out.assert_ok();
        let publishes: Vec<&Call> = out
            .aws_calls
            .iter()
            .filter(|c| c.op == "CreatePolicyVersion")
            .collect();
        assert_eq!(publishes.len(), 2, "{fault:?}: {publishes:?}");
        assert_eq!(publishes[0].injected.as_deref(), Some(fault.name()));
        reliability::assert_same(
            &reliability::state(&w).await,
            &expected,
            &format!("{fault:?} once on CreatePolicyVersion"),
        );
    }
}

/// The OIDC provider made but its answer lost: the retry finds it (`EntityAlreadyExists`), and
/// it is still new to IAM, which may call it an invalid principal in a role's trust for a few
/// seconds. The role create is retried for that as after the job's own create, in the run.
#[tokio::test(flavor = "multi_thread")]
async fn a_provider_whose_create_answer_was_lost_is_still_waited_for_by_the_roles() {
    let w = World::new(BIN).await;
    let env = provision_env(&[]);
    w.run("provision", &env).await.assert_ok();
    let expected = reliability::state(&w).await;
    w.run("teardown", &teardown_env(&[])).await.assert_ok();
    w.aws_proxy.add_rule(Rule::once(
        "CreateOpenIDConnectProvider",
        Fault::CommitThenReset,
    ));
    w.aws_proxy
        .add_rule(Rule::once("CreateRole", Fault::InvalidPrincipal));
    let out = w.run("provision", &env).await;
    w.aws_proxy.clear_rules();
    out.assert_ok();
    let injected: Vec<&str> = out
        .aws_calls
        .iter()
        .filter_map(|c| c.injected.as_deref())
        .collect();
    assert_eq!(
        injected,
        ["CommitThenReset", "InvalidPrincipal"],
        "{:?}",
        out.aws_calls
    );
    reliability::assert_same(
        &reliability::state(&w).await,
        &expected,
        "provider answer lost",
    );
}

async fn pod_identity_world() -> World {
    let chart = Chart::new("1.13.9")
        .aws_cli(testkit::epinio::POD_IDENTITY_AWS_CLI)
        .staging_workloads("epinio-staging");
    let w = World::with_objects(BIN, chart.objects()).await;
    w.install_agent("ACTIVE");
    w
}

fn creates_answered_409(out: &[Call]) -> usize {
    out.iter()
        .filter(|c| c.op == "CreatePodIdentityAssociation" && c.status == 409)
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn pod_identity_provision_repair_and_teardown_converge_when_any_answer_is_lost() {
    let w = pod_identity_world().await;
    let teardown = async |w: &World| {
        w.run("teardown", &PI).await.assert_ok();
    };
    let provision = async |w: &World| {
        w.run("provision", &PI).await.assert_ok();
    };
    let (p, _) =
        every_write_loses_its_answer(&w, "pod-identity provision", teardown, "provision", &PI)
            .await;
    assert!(p.points >= 2 * 6, "{p:?}");

    // The association made but its answer lost: the retry is answered 409, and the job takes
    // over the association it made (read back, ours by its tags) within the same run.
    teardown(&w).await;
    w.aws_proxy.add_rule(Rule::once(
        "CreatePodIdentityAssociation",
        Fault::CommitThenReset,
    ));
    let out = w.run("provision", &PI).await;
    w.aws_proxy.clear_rules();
    out.assert_ok();
    assert_eq!(
        creates_answered_409(&out.aws_calls),
        1,
        "{:?}",
        out.aws_calls
    );
    assert_eq!(w.pod_identity().associations().len(), 2);

    // Drift repaired: the server's association repointed elsewhere (Update) and staging's
    // ownership tag removed (TagResource); each answer lost.
    let drift = async |w: &World| {
        teardown(w).await;
        provision(w).await;
        reliability::drift_pod_identity(w);
    };
    let (r, _) =
        every_write_loses_its_answer(&w, "pod-identity repair", drift, "provision", &PI).await;
    // UpdatePodIdentityAssociation and TagResource, each answer lost both ways.
    assert_eq!(r.points, 2 * 2, "{r:?}");

    let (t, torn_down) =
        every_write_loses_its_answer(&w, "pod-identity teardown", provision, "teardown", &PI).await;
    assert!(t.points >= 2 * 4, "{t:?}");
    assert_eq!(
        torn_down.iam["pod_identity_associations"],
        Value::Array(vec![])
    );
}
