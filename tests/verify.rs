//! `verify`: the IRSA checklist on what is there plus the live chain ServiceAccount token ->
//! STS -> S3, as the last step of `provision` before any restart, and alone. Against moto
//! (STS and S3 through the same proxy) and the stand-in's TokenRequest.

mod reliability;

use aws_sdk_iam::config::Credentials;
use serde_json::{json, Value};
use testkit::proxy::{Fault, Rule};
use testkit::world::{World, NAMESPACE};

const BIN: &str = env!("CARGO_BIN_EXE_epinio-irsa");
const STAGING: (&str, &str) = ("EPINIO_IRSA_STAGING_SERVICE_ACCOUNT", "epinio-staging");

async fn s3(w: &World) -> aws_sdk_s3::Client {
    let sdk = testkit::moto::sdk_config(&w.moto, Credentials::for_tests()).await;
    let config = aws_sdk_s3::config::Builder::from(&sdk)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

async fn with_bucket(w: &World) -> aws_sdk_s3::Client {
    let s3 = s3(w).await;
    s3.create_bucket().bucket("epinio").send().await.unwrap();
    s3
}

fn restarted_for(w: &World) -> Value {
    w.workload("Deployment", "epinio-server")["spec"]["template"]["metadata"]["annotations"]
        ["epinio-irsa/role-arn"]
        .clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn provision_verifies_every_service_account_before_restarting() {
    let w = World::new(BIN).await;
    with_bucket(&w).await;
    let out = w.run("provision", &[STAGING]).await;
    out.assert_ok();
    for sa in ["epinio-server", "epinio-staging"] {
        let line = format!("verified: ServiceAccount {NAMESPACE}/{sa} -> token ->");
        assert!(out.stdout.contains(&line), "{}", out.stdout);
    }
    assert!(
        out.stdout
            .contains("HeadBucket and ListObjectsV2 succeeded"),
        "{}",
        out.stdout
    );
    // The chain ran in order, and the restart came after it.
    let ops: Vec<&str> = out.aws_calls.iter().map(|c| c.op.as_str()).collect();
    assert_eq!(
        ops.iter()
            .filter(|o| **o == "AssumeRoleWithWebIdentity")
            .count(),
        2,
        "{ops:?}"
    );
    let tokens: Vec<_> = out
        .kube_calls
        .iter()
        .filter(|c| c.op == "create serviceaccounts/token")
        .collect();
    assert_eq!(tokens.len(), 2, "{:?}", out.kube_calls);
    let last_assume = out
        .aws_calls
        .iter()
        .filter(|c| c.op == "AssumeRoleWithWebIdentity")
        .map(|c| c.end)
        .max()
        .unwrap();
    let restart = out
        .kube_calls
        .iter()
        .find(|c| c.op == "apply deployments")
        .expect("restart");
    assert!(restart.start >= last_assume, "restart before verification");
    // The tokens were for the right subjects and audience, and never printed.
    for t in w.kube.tokens() {
        assert!(!out.stdout.contains(&t) && !out.stderr.contains(&t));
        let claims = t.split('.').nth(1).unwrap();
        use base64::Engine;
        let claims: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(claims)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(claims["aud"], json!(["sts.amazonaws.com"]));
        // Issued by the cluster's issuer (the one the OIDC provider trusts), for the job's
        // 10 minutes.
        assert_eq!(claims["iss"], json!(w.issuer));
        assert_eq!(
            claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
            600
        );
        assert!(claims["sub"]
            .as_str()
            .unwrap()
            .starts_with("system:serviceaccount:epinio:epinio-"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_alone_writes_nothing_and_says_when_the_bucket_does_not_exist_yet() {
    let w = World::new(BIN).await;
    w.run("provision", &[STAGING]).await.assert_ok();
    let changes = w.kube.changes();
    let out = w.run("verify", &[STAGING]).await;
    out.assert_ok();
    assert!(out.aws_writes().is_empty(), "{:?}", out.aws_writes());
    assert!(out.kube_writes().is_empty(), "{:?}", out.kube_writes());
    assert_eq!(w.kube.changes(), changes, "no Kubernetes object changed");
    assert!(
        out.stdout
            .contains("the bucket does not exist yet (Epinio creates it at start)"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("WARNING: bucket epinio does not exist yet"),
        "{}",
        out.stdout
    );
}

/// Break one link after a clean provision; `verify` must name it and its fix, although moto's
/// STS and S3 (no policy enforcement here) would let the live calls through.
async fn broken(w: &World, needles: &[&str]) {
    let out = w.run("verify", &[STAGING]).await;
    assert_eq!(out.code, Some(1), "{}\n{}", out.stdout, out.stderr);
    for n in needles {
        assert!(out.stderr.contains(n), "lacks {n:?}: {}", out.stderr);
    }
    assert!(out.aws_writes().is_empty() && out.kube_writes().is_empty());
}

async fn server_role(w: &World) -> (String, Value) {
    let state = w.iam_state().await;
    let (name, role) = state["roles"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(n, _)| n.ends_with("-server"))
        .unwrap();
    (name.clone(), role.clone())
}

#[tokio::test(flavor = "multi_thread")]
async fn every_broken_link_is_named_with_its_fix() {
    let w = World::new(BIN).await;
    with_bucket(&w).await;
    w.run("provision", &[STAGING]).await.assert_ok();
    let (role, state) = server_role(&w).await;
    let policy = state["attached"][0].as_str().unwrap().to_string();

    // Policy detached.
    w.iam
        .detach_role_policy()
        .role_name(&role)
        .policy_arn(&policy)
        .send()
        .await
        .unwrap();
    broken(
        &w,
        &["[policy attachment]", "aws iam attach-role-policy", &role],
    )
    .await;
    w.iam
        .attach_role_policy()
        .role_name(&role)
        .policy_arn(&policy)
        .send()
        .await
        .unwrap();

    // Trust naming another subject.
    let trust = state["trust"]
        .to_string()
        .replace("epinio:epinio-server", "epinio:someone-else");
    w.iam
        .update_assume_role_policy()
        .role_name(&role)
        .policy_document(&trust)
        .send()
        .await
        .unwrap();
    broken(
        &w,
        &["[trust]", "system:serviceaccount:epinio:epinio-server"],
    )
    .await;
    w.iam
        .update_assume_role_policy()
        .role_name(&role)
        .policy_document(state["trust"].to_string())
        .send()
        .await
        .unwrap();

    // A new default version that does not grant the bucket.
    let other = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":["arn:aws:s3:::other","arn:aws:s3:::other/*"]}]}"#;
    w.iam
        .create_policy_version()
        .policy_arn(&policy)
        .policy_document(other)
        .set_as_default(true)
        .send()
        .await
        .unwrap();
    broken(
        &w,
        &[
            "[policy document]",
            "s3:ListBucket on arn:aws:s3:::epinio",
            "s3:GetObject on arn:aws:s3:::epinio/*",
        ],
    )
    .await;

    // A re-run of provision repairs all of it, and verify passes again.
    w.run("provision", &[STAGING]).await.assert_ok();
    w.run("verify", &[STAGING]).await.assert_ok();

    // The annotation removed (by someone applying the ServiceAccount without it).
    let mut sa = w.service_account("epinio-server").unwrap();
    sa["metadata"]["annotations"] = json!({});
    w.kube.seed(sa);
    broken(
        &w,
        &[
            "[annotation]",
            "has no eks.amazonaws.com/role-arn annotation",
            "kubectl annotate serviceaccount -n epinio epinio-server",
        ],
    )
    .await;
    w.run("provision", &[STAGING]).await.assert_ok();

    // (The provider without the STS audience is judged by the checklist's unit test: moto
    // answers RemoveClientIDFromOpenIDConnectProvider with a 500.)
    // The OIDC provider deleted.
    let provider = format!(
        "arn:aws:iam::{}:oidc-provider/{}",
        w.account(),
        w.issuer_host_path()
    );
    w.iam
        .delete_open_id_connect_provider()
        .open_id_connect_provider_arn(&provider)
        .send()
        .await
        .unwrap();
    broken(
        &w,
        &[
            "[OIDC provider]",
            "does not exist",
            "associate-iam-oidc-provider",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_waits_out_iam_propagation_then_passes() {
    let w = World::new(BIN).await;
    with_bucket(&w).await;
    // STS refuses the first assumes as it does for a role created seconds ago.
    w.aws_proxy.add_rule(Rule::new(
        "AssumeRoleWithWebIdentity",
        Fault::AccessDenied,
        3,
    ));
    let out = w.run("provision", &[]).await;
    out.assert_ok();
    let denied = out
        .aws_calls
        .iter()
        .filter(|c| c.op == "AssumeRoleWithWebIdentity" && c.injected.is_some())
        .count();
    assert_eq!(denied, 3);
    assert!(
        out.stdout.contains("attempts while IAM propagated"),
        "{}",
        out.stdout
    );
    assert!(restarted_for(&w).is_string(), "restarted once verified");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_verify_that_never_passes_fails_in_time_restarts_nothing_and_the_next_run_finishes() {
    let w = World::new(BIN).await;
    with_bucket(&w).await;
    w.aws_proxy.add_rule(Rule::always(
        "AssumeRoleWithWebIdentity",
        Fault::AccessDenied,
    ));
    let started = std::time::Instant::now();
    let out = w
        .run("provision", &[("EPINIO_IRSA_VERIFY_TIMEOUT_SECONDS", "5")])
        .await;
    let took = started.elapsed();
    assert_eq!(out.code, Some(1), "{}", out.stdout);
    assert!(
        out.stderr
            .contains("sts:AssumeRoleWithWebIdentity for ServiceAccount epinio-server"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("nothing was restarted"),
        "{}",
        out.stderr
    );
    assert!(took < std::time::Duration::from_secs(20), "{took:?}");
    assert!(
        restarted_for(&w).is_null(),
        "Epinio was restarted before verification passed"
    );

    w.aws_proxy.clear_rules();
    let out = w.run("provision", &[]).await;
    out.assert_ok();
    assert!(
        restarted_for(&w).is_string(),
        "the next run restarts: {}",
        out.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_write_probe_proves_object_access_and_leaves_nothing_behind() {
    let w = World::new(BIN).await;
    let s3 = with_bucket(&w).await;
    let out = w
        .run("provision", &[("EPINIO_IRSA_VERIFY_WRITE", "true")])
        .await;
    out.assert_ok();
    assert!(
        out.stdout
            .contains("write probe put/get/delete epinio-irsa-verify/epinio-server-"),
        "{}",
        out.stdout
    );
    let listed = s3.list_objects_v2().bucket("epinio").send().await.unwrap();
    assert_eq!(listed.key_count(), Some(0), "{:?}", listed.contents());
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_can_be_turned_off() {
    let w = World::new(BIN).await;
    let out = w.run("provision", &[("EPINIO_IRSA_VERIFY", "false")]).await;
    out.assert_ok();
    assert!(!out
        .aws_calls
        .iter()
        .any(|c| c.op == "AssumeRoleWithWebIdentity"));
    assert!(!out.stdout.contains("verified:"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_principal_iam_does_not_know_yet_is_retried_after_creating_the_provider() {
    let w = World::new(BIN).await;
    w.aws_proxy
        .add_rule(Rule::new("CreateRole", Fault::InvalidPrincipal, 2));
    let out = w.run("provision", &[]).await;
    out.assert_ok();
    let created = out
        .aws_calls
        .iter()
        .filter(|c| c.op == "CreateRole")
        .count();
    assert_eq!(created, 3, "two refusals, then created");
    // Without a provider created in this run the same answer is final.
    let w = World::new(BIN).await;
    w.run("provision", &[]).await.assert_ok();
    let (role, state) = server_role(&w).await;
    let trust = state["trust"]
        .to_string()
        .replace("epinio:epinio-server", "epinio:x");
    w.iam
        .update_assume_role_policy()
        .role_name(&role)
        .policy_document(&trust)
        .send()
        .await
        .unwrap();
    w.aws_proxy.add_rule(Rule::new(
        "UpdateAssumeRolePolicy",
        Fault::InvalidPrincipal,
        1,
    ));
    let out = w.run("provision", &[]).await;
    assert_eq!(out.code, Some(1), "{}", out.stdout);
    assert!(out.stderr.contains("Invalid principal"), "{}", out.stderr);
}

/// The stand-in's TokenRequest answers as the apiserver does: the cluster's issuer, an
/// `expirationTimestamp` that is `exp`, 3600 s by default, and 422 under 10 minutes.
#[tokio::test(flavor = "multi_thread")]
async fn token_requests_are_bounded_and_issued_by_the_clusters_issuer() {
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
    use k8s_openapi::api::core::v1::ServiceAccount;
    use kube::api::{Api, PostParams};
    let w = World::new(BIN).await;
    let api = Api::<ServiceAccount>::namespaced(reliability::kube_client(&w).await, NAMESPACE);
    let request = |seconds: Option<i64>| TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec!["sts.amazonaws.com".into()],
            expiration_seconds: seconds,
            bound_object_ref: None,
        },
        ..TokenRequest::default()
    };
    let pp = PostParams::default();
    for (seconds, detail) in [
        (599, "599: may not specify a duration less than 10 minutes"),
        (
            (1 << 32) + 1,
            "4294967297: may not specify a duration larger than 2^32 seconds",
        ),
    ] {
        match api
            .create_token_request("epinio-server", &pp, &request(Some(seconds)))
            .await
        {
            Err(kube::Error::Api(s)) => {
                assert_eq!(s.code, 422);
                assert_eq!(
                    s.message,
                    format!("TokenRequest.authentication.k8s.io \"epinio-server\" is invalid: spec.expirationSeconds: Invalid value: {detail}")
                );
            }
            other => panic!("expirationSeconds {seconds} accepted: {other:?}"),
        }
    }
    assert!(
        w.kube.tokens().is_empty(),
        "a refused request issues no token"
    );
    for (seconds, want) in [(None, 3600), (Some(600), 600)] {
        let out = api
            .create_token_request("epinio-server", &pp, &request(seconds))
            .await
            .unwrap();
        let status = out.status.unwrap();
        use base64::Engine;
        let claims: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(status.token.split('.').nth(1).unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(claims["iss"], json!(w.issuer));
        let (iat, exp) = (
            claims["iat"].as_i64().unwrap(),
            claims["exp"].as_i64().unwrap(),
        );
        assert_eq!(exp - iat, want);
        assert_eq!(status.expiration_timestamp.0.as_second(), exp);
    }
}
