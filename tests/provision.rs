//! `provision` and `plan` against moto (real IAM/EKS API) and the Kubernetes stand-in, run as
//! the real binary, as the Helm hook runs it.

use serde_json::{json, Value};
use testkit::world::{World, CLUSTER, NAMESPACE};

const BIN: &str = env!("CARGO_BIN_EXE_epinio-irsa");

async fn world() -> World {
    World::new(BIN).await
}

fn role<'a>(state: &'a Value, name_part: &str) -> (&'a String, &'a Value) {
    let roles = state["roles"].as_object().expect("roles");
    roles
        .iter()
        .find(|(n, _)| n.ends_with(name_part))
        .unwrap_or_else(|| panic!("no role *{name_part} in {roles:?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn fresh_provision_creates_everything_and_restarts_only_epinio_server() {
    let w = world().await;
    let out = w
        .run(
            "provision",
            &[("EPINIO_IRSA_STAGING_SERVICE_ACCOUNT", "epinio-staging")],
        )
        .await;
    out.assert_ok();
    let state = w.iam_state().await;
    let owner = format!("{CLUSTER}/{NAMESPACE}/epinio");
    let host = w.issuer_host_path();
    let account = w.account();

    // OIDC provider: created, tagged, audience sts.amazonaws.com.
    let provider_arn = format!("arn:aws:iam::{account}:oidc-provider/{host}");
    let provider = &state["providers"][&provider_arn];
    assert_eq!(provider["client_ids"], json!(["sts.amazonaws.com"]));
    assert_eq!(provider["tags"]["epinio-irsa/owner"], json!(owner));

    // One policy, scoped to the bucket.
    let policies = state["policies"].as_object().unwrap();
    assert_eq!(policies.len(), 1, "{policies:?}");
    let (policy_arn, policy) = policies.iter().next().unwrap();
    let statements = policy["document"]["Statement"].as_array().unwrap();
    let resources: Vec<&str> = statements
        .iter()
        .map(|s| s["Resource"].as_str().unwrap())
        .collect();
    assert_eq!(resources, ["arn:aws:s3:::epinio", "arn:aws:s3:::epinio/*"]);
    let text = policy["document"].to_string();
    assert!(!text.contains("\"*\""), "no action on *: {text}");
    assert!(!text.contains("sts:AssumeRole"), "{text}");
    assert_eq!(
        policy["tags"]["app.kubernetes.io/managed-by"],
        json!("epinio-irsa")
    );
    assert_eq!(policy["tags"]["epinio-irsa/owner"], json!(owner));

    // Two roles with the exact IRSA trust, the policy attached, tags set.
    for (suffix, sa) in [("-server", "epinio-server"), ("-staging", "epinio-staging")] {
        let (name, r) = role(&state, suffix);
        assert!(name.len() <= 64);
        assert_eq!(
            r["trust"],
            json!({
                "Version": "2012-10-17",
                "Statement": [{
                    "Effect": "Allow",
                    "Principal": {"Federated": provider_arn},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {"StringEquals": {
                        format!("{host}:sub"): format!("system:serviceaccount:{NAMESPACE}:{sa}"),
                        format!("{host}:aud"): "sts.amazonaws.com"
                    }}
                }]
            })
        );
        assert_eq!(r["attached"], json!([policy_arn]));
        assert_eq!(r["tags"]["epinio-irsa/owner"], json!(owner));
        assert_eq!(
            r["tags"]["app.kubernetes.io/managed-by"],
            json!("epinio-irsa")
        );
        assert_eq!(
            w.annotation(sa, "eks.amazonaws.com/role-arn").as_deref(),
            r["arn"].as_str(),
            "{sa} annotated with its role"
        );
        assert_eq!(
            w.annotation(sa, "eks.amazonaws.com/sts-regional-endpoints")
                .as_deref(),
            Some("true")
        );
    }

    // The staging ServiceAccount was created and labelled; Epinio's kept Helm's label.
    let staging = w
        .service_account("epinio-staging")
        .expect("staging SA created");
    assert_eq!(
        staging["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        json!("epinio-irsa")
    );
    let server = w.service_account("epinio-server").unwrap();
    assert_eq!(
        server["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        json!("Helm")
    );
    assert_eq!(
        server["metadata"]["annotations"]["meta.helm.sh/release-name"],
        json!("epinio")
    );
    let managers: Vec<&str> = server["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["manager"].as_str())
        .collect();
    assert!(managers.contains(&"epinio-irsa"), "{managers:?}");

    // Only the Deployment running as epinio-server was restarted.
    let server_dep = w.workload("Deployment", "epinio-server");
    assert_eq!(server_dep["metadata"]["generation"], json!(2));
    assert!(
        server_dep["spec"]["template"]["metadata"]["annotations"]["epinio-irsa/role-arn"]
            .as_str()
            .unwrap()
            .ends_with("-server")
    );
    assert_eq!(
        w.workload("Deployment", "epinio-ui")["metadata"]["generation"],
        json!(1)
    );
    assert_eq!(
        w.workload("StatefulSet", "registry-cache")["metadata"]["generation"],
        json!(1)
    );

    // The summary names what happened and the ARNs.
    assert!(out.stdout.contains("created"), "{}", out.stdout);
    assert!(
        out.stdout.contains("server role ARN: arn:aws:iam::"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("deployment"), "{}", out.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn rerun_is_a_no_op_with_zero_writes() {
    let w = world().await;
    let extra = [("EPINIO_IRSA_STAGING_SERVICE_ACCOUNT", "epinio-staging")];
    w.run("provision", &extra).await.assert_ok();
    let (iam_before, kube_before) = (w.iam_state().await, w.kube.snapshot());
    w.kube.clear_requests();

    let again = w.run("provision", &extra).await;
    again.assert_ok();
    assert!(
        again.aws_writes().is_empty(),
        "AWS writes on re-run: {:?}",
        again.aws_writes()
    );
    assert!(
        again.kube_writes().is_empty(),
        "Kubernetes writes on re-run: {:?}",
        again.kube_writes()
    );
    assert_eq!(w.kube.changes(), 0);
    assert_eq!(w.kube.snapshot(), kube_before, "no resourceVersion moved");
    assert_eq!(w.iam_state().await, iam_before);
    assert!(
        !again.stdout.contains("created") && !again.stdout.contains("updated"),
        "{}",
        again.stdout
    );
    assert!(again.stdout.contains("unchanged"));
}

#[tokio::test(flavor = "multi_thread")]
async fn static_keys_and_bundled_store_are_no_ops() {
    let w = world().await;
    for extra in [
        vec![
            ("EPINIO_IRSA_S3_ACCESS_KEY_ID", "AKIAEXAMPLE"),
            ("EPINIO_IRSA_S3_SECRET_ACCESS_KEY", "s3cr3t-value"),
        ],
        vec![("EPINIO_IRSA_BUNDLED_S3", "TRUE")],
    ] {
        for command in ["provision", "plan"] {
            let out = w.run(command, &extra).await;
            out.assert_ok();
            assert!(out.stdout.contains("nothing to do"), "{}", out.stdout);
            assert!(out.aws_calls.is_empty(), "{:?}", out.aws_calls);
            assert!(out.kube_calls.is_empty(), "{:?}", out.kube_calls);
            assert!(!out.stdout.contains("s3cr3t-value") && !out.stderr.contains("s3cr3t-value"));
        }
    }
    let state = w.iam_state().await;
    assert_eq!(state["roles"], json!({}));
    assert_eq!(state["policies"], json!({}));
}

#[tokio::test(flavor = "multi_thread")]
async fn shared_service_account_makes_one_role() {
    let w = world().await;
    w.run("provision", &[]).await.assert_ok();
    let state = w.iam_state().await;
    let roles = state["roles"].as_object().unwrap();
    assert_eq!(roles.len(), 1, "{roles:?}");
    assert!(roles.keys().next().unwrap().ends_with("-server"));
    assert!(w.service_account("epinio-staging").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn unowned_same_named_role_is_refused_and_untouched() {
    let w = world().await;
    let trust = r#"{"Version":"2012-10-17","Statement":[]}"#;
    w.iam
        .create_role()
        .role_name("epinio-server-role")
        .assume_role_policy_document(trust)
        .send()
        .await
        .unwrap();
    let before = w.iam_state().await;
    let out = w
        .run(
            "provision",
            &[("EPINIO_IRSA_SERVER_ROLE_NAME", "epinio-server-role")],
        )
        .await;
    assert!(!out.success());
    assert!(out.stderr.contains("epinio-server-role"), "{}", out.stderr);
    assert!(
        out.stderr.contains("EPINIO_IRSA_ADOPT_EXISTING"),
        "{}",
        out.stderr
    );
    assert!(out.aws_writes().is_empty(), "{:?}", out.aws_writes());
    assert!(out.kube_writes().is_empty());
    assert_eq!(w.iam_state().await, before);

    // With adoption on, it is taken over: tagged, trust repaired, policy attached.
    let out = w
        .run(
            "provision",
            &[
                ("EPINIO_IRSA_SERVER_ROLE_NAME", "epinio-server-role"),
                ("EPINIO_IRSA_ADOPT_EXISTING", "true"),
            ],
        )
        .await;
    out.assert_ok();
    let state = w.iam_state().await;
    let r = &state["roles"]["epinio-server-role"];
    assert_eq!(r["tags"]["epinio-irsa/owner"], json!("demo/epinio/epinio"));
    assert_eq!(r["attached"].as_array().unwrap().len(), 1);
    assert!(out.stdout.contains("adopt"), "{}", out.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn drift_is_repaired_without_recreating_the_role() {
    let w = world().await;
    w.run("provision", &[]).await.assert_ok();
    let state = w.iam_state().await;
    let (name, r) = role(&state, "-server");
    let policy = r["attached"][0].as_str().unwrap().to_string();
    let role_id = w
        .iam
        .get_role()
        .role_name(name)
        .send()
        .await
        .unwrap()
        .role()
        .unwrap()
        .role_id()
        .to_string();

    // Someone detaches the policy, edits the trust and attaches something else.
    w.iam
        .detach_role_policy()
        .role_name(name)
        .policy_arn(&policy)
        .send()
        .await
        .unwrap();
    w.iam
        .update_assume_role_policy()
        .role_name(name)
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole"}]}"#)
        .send()
        .await
        .unwrap();
    let admin = w
        .iam
        .create_policy()
        .policy_name("hand-made-admin")
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#)
        .send()
        .await
        .unwrap();
    let admin = admin.policy().unwrap().arn().unwrap().to_string();
    w.iam
        .attach_role_policy()
        .role_name(name)
        .policy_arn(&admin)
        .send()
        .await
        .unwrap();
    let mut expected = state.clone();
    expected["policies"][&admin] = w.iam_state().await["policies"][&admin].clone();
    expected["policies"][&admin]["attachments"] = json!(0);

    let out = w.run("provision", &[]).await;
    out.assert_ok();
    assert!(out.stdout.contains("trust policy"), "{}", out.stdout);
    assert_eq!(
        w.iam_state().await,
        expected,
        "repaired: trust restored, our policy attached, the stray one detached"
    );
    let after = w.iam.get_role().role_name(name).send().await.unwrap();
    assert_eq!(
        after.role().unwrap().role_id(),
        role_id,
        "role updated in place, not recreated"
    );
    let ops: Vec<&str> = out.aws_writes().iter().map(|c| c.op.as_str()).collect();
    assert!(
        !ops.contains(&"DeleteRole") && !ops.contains(&"CreateRole"),
        "{ops:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bucket_changed_seven_times_never_exceeds_five_policy_versions() {
    let w = world().await;
    w.run("provision", &[]).await.assert_ok();
    for i in 1..=7 {
        let bucket = format!("epinio-bucket-{i}");
        let out = w
            .run("provision", &[("EPINIO_IRSA_S3_BUCKET", &bucket)])
            .await;
        out.assert_ok();
        let state = w.iam_state().await;
        let (_, policy) = state["policies"]
            .as_object()
            .unwrap()
            .iter()
            .next()
            .unwrap();
        assert!(policy["versions"].as_u64().unwrap() <= 5, "{policy}");
        assert_eq!(
            policy["document"]["Statement"][1]["Resource"],
            json!(format!("arn:aws:s3:::{bucket}/*"))
        );
        // The tags vouch for the published document and the job keeps a window of four
        // versions, so a bucket change needs neither GetPolicyVersion nor ListPolicyVersions.
        let ops: Vec<&str> = out.aws_calls.iter().map(|c| c.op.as_str()).collect();
        assert!(
            !ops.contains(&"GetPolicyVersion") && !ops.contains(&"ListPolicyVersions"),
            "{ops:?}"
        );
        assert!(policy["versions"].as_u64().unwrap() <= 4, "{policy}");
        // Roles were not touched by a bucket change.
        assert!(
            out.aws_writes().iter().all(|c| c.op.contains("Policy")),
            "{:?}",
            out.aws_writes()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_writes_nothing_and_prints_documents() {
    let w = world().await;
    let out = w
        .run(
            "plan",
            &[("EPINIO_IRSA_STAGING_SERVICE_ACCOUNT", "epinio-staging")],
        )
        .await;
    out.assert_ok();
    assert!(out.aws_writes().is_empty(), "{:?}", out.aws_writes());
    assert!(out.kube_writes().is_empty(), "{:?}", out.kube_writes());
    assert_eq!(w.iam_state().await["roles"], json!({}));
    assert!(out.stdout.contains("nothing has been changed"));
    assert!(out.stdout.contains("create"));
    assert!(
        out.stdout.contains("sts:AssumeRoleWithWebIdentity"),
        "{}",
        out.stdout
    );
    assert!(out
        .stdout
        .contains("system:serviceaccount:epinio:epinio-staging"));
    assert!(out.stdout.contains("arn:aws:s3:::epinio/*"));

    // After a provision and a bucket change, plan names the difference.
    w.run(
        "provision",
        &[("EPINIO_IRSA_STAGING_SERVICE_ACCOUNT", "epinio-staging")],
    )
    .await
    .assert_ok();
    let out = w
        .run(
            "plan",
            &[
                ("EPINIO_IRSA_STAGING_SERVICE_ACCOUNT", "epinio-staging"),
                ("EPINIO_IRSA_S3_BUCKET", "other-bucket"),
            ],
        )
        .await;
    out.assert_ok();
    assert!(out.stdout.contains("update: document"), "{}", out.stdout);
    assert!(out.aws_writes().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_cluster_is_a_clear_error() {
    let w = world().await;
    let out = w
        .run(
            "provision",
            &[("EPINIO_IRSA_CLUSTER_NAME", "no-such-cluster")],
        )
        .await;
    assert!(!out.success());
    assert!(
        out.stderr.contains("\"no-such-cluster\" was not found"),
        "{}",
        out.stderr
    );
    assert!(out.aws_writes().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn annotation_set_by_someone_else_is_not_overridden() {
    let w = world().await;
    let mut sa = w.service_account("epinio-server").unwrap();
    sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] =
        json!("arn:aws:iam::123456789012:role/hand-made");
    w.kube.seed(sa);
    let out = w.run("provision", &[]).await;
    assert!(!out.success());
    assert!(out.stderr.contains("hand-made"), "{}", out.stderr);
    assert!(
        out.aws_writes().is_empty(),
        "checked before any write: {:?}",
        out.aws_writes()
    );
    assert_eq!(
        w.annotation("epinio-server", "eks.amazonaws.com/role-arn")
            .as_deref(),
        Some("arn:aws:iam::123456789012:role/hand-made")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bucket_change_with_all_five_version_slots_taken_by_someone_else() {
    let w = world().await;
    w.run("provision", &[]).await.assert_ok();
    let state = w.iam_state().await;
    let arn = state["policies"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    let doc = state["policies"][&arn]["document"].to_string();
    for _ in 0..4 {
        w.iam
            .create_policy_version()
            .policy_arn(&arn)
            .policy_document(&doc)
            .set_as_default(false)
            .send()
            .await
            .unwrap();
    }
    let out = w
        .run("provision", &[("EPINIO_IRSA_S3_BUCKET", "moved")])
        .await;
    out.assert_ok();
    let state = w.iam_state().await;
    assert!(state["policies"][&arn]["versions"].as_u64().unwrap() <= 5);
    assert_eq!(
        state["policies"][&arn]["document"]["Statement"][0]["Resource"],
        json!("arn:aws:s3:::moved")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_whole_run_gives_up_at_its_deadline_and_a_rerun_finishes() {
    use std::time::{Duration, Instant};
    use testkit::proxy::{Fault, Rule};
    let w = world().await;
    // Every AWS write hangs past the call timeout, forever.
    for op in ["CreateOpenIDConnectProvider", "CreatePolicy"] {
        w.aws_proxy
            .add_rule(Rule::always(op, Fault::Slow(Duration::from_secs(30))));
    }
    let started = Instant::now();
    let out = w
        .run(
            "provision",
            &[
                ("EPINIO_IRSA_DEADLINE_SECONDS", "10"),
                ("EPINIO_IRSA_MAX_ATTEMPTS", "10"),
            ],
        )
        .await;
    let took = started.elapsed();
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("gave up after 10 s"), "{}", out.stderr);
    assert!(took < Duration::from_secs(15), "{took:?}");
    w.aws_proxy.clear_rules();
    w.run("provision", &[]).await.assert_ok();
    w.run("provision", &[]).await.assert_ok();
    assert_eq!(w.iam_state().await["roles"].as_object().unwrap().len(), 1);
}
