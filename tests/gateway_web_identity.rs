//! The gateway on IRSA's credential path: `AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`, as
//! EKS injects them into a pod whose ServiceAccount carries the role annotation.
//!
//! Backend: moto WITHOUT IAM enforcement. With enforcement on, moto crashes on the unsigned
//! `AssumeRoleWithWebIdentity` (see `tests/s3_policy.rs`), so this is as far as moto goes.
//! Between the gateway and moto: a relay that reads the access key ids going by
//! (`testkit::gateway_cut`) and the recording proxy (`testkit::proxy`).
//!
//! What it proves:
//! - the gateway's default chain takes the web identity link: it calls
//!   `sts:AssumeRoleWithWebIdentity` with the token file's content and the role ARN from the
//!   environment, and nothing else gives it credentials (no keys, no container endpoint, no
//!   instance metadata);
//! - `/credentials` reports the provider as web identity (IRSA);
//! - every S3 request it forwards is signed with the access key id STS issued for that
//!   role session, and PutObject / HeadObject / GetObject round-trip through it.
//!
//! What it does NOT prove (moto cannot): that the role's policy admits the forwarded requests
//! (moto authorizes nothing here; the role's S3 policy is judged by the Pod Identity tests
//! with enforcement on, `gateway_forward.rs`), that the token is validated (signature,
//! audience, subject, trust policy: moto accepts any token), and refresh on this path (moto's
//! STS gives one-hour credentials; refresh is the aws-config cache's, tested with the
//! container endpoint in `gateway_forward.rs`).

use aws_sdk_iam::config::Credentials;
use aws_sdk_s3::primitives::ByteStream;
use epinio_irsa::gateway;
use testkit::gateway::{
    epinio_client, gateway_settings, wait_for_credentials, ACCESS_KEY, BUCKET, SECRET_KEY,
};
use testkit::gateway_cut::CutRelay;
use testkit::moto::{self, Moto};
use testkit::proxy::Proxy;

/// What the kubelet writes into the projected token file (any JWT-shaped text for moto).
const TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6ZXBpbmlvOmVwaW5pby1pcnNhLWdhdGV3YXkifQ.c2lnbmF0dXJl";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_takes_the_web_identity_path_and_signs_with_what_sts_issued() {
    let moto = Moto::start().await;
    let admin = moto::sdk_config(&moto, Credentials::for_tests()).await;
    let iam = aws_sdk_iam::Client::new(&admin);
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Federated":"arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE"},"Action":"sts:AssumeRoleWithWebIdentity"}]}"#;
    let role_arn = iam
        .create_role()
        .role_name("epinio-gateway-irsa")
        .assume_role_policy_document(trust)
        .send()
        .await
        .expect("CreateRole")
        .role()
        .map(|r| r.arn().to_string())
        .expect("role ARN");
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&admin)
            .force_path_style(true)
            .build(),
    )
    .create_bucket()
    .bucket(BUCKET)
    .send()
    .await
    .expect("create the bucket");

    let proxy = Proxy::start(&moto.endpoint()).await;
    let relay = CutRelay::start(&proxy.url()).await;
    let dir = std::env::temp_dir().join(format!("epinio-irsa-gw-webid-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(dir.join("token"), TOKEN).expect("write the token");
    let file = |n: &str| dir.join(n).display().to_string();
    let mut env = gateway_settings(&dir, BUCKET, (ACCESS_KEY, SECRET_KEY));
    env.extend(
        [
            ("EPINIO_IRSA_GATEWAY_REGION", moto::REGION.to_string()),
            // What EKS injects for IRSA; STS and S3 both reach moto through AWS_ENDPOINT_URL.
            ("AWS_WEB_IDENTITY_TOKEN_FILE", file("token")),
            ("AWS_ROLE_ARN", role_arn.clone()),
            ("AWS_ROLE_SESSION_NAME", "epinio-gateway".into()),
            ("AWS_ENDPOINT_URL", relay.url()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
            ("AWS_CONFIG_FILE", "/dev/null".into()),
            ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null".into()),
        ]
        .map(|(k, v)| (k.to_string(), v)),
    );
    let gw = gateway::start(env).await.expect("the gateway starts");
    wait_for_credentials(gw.health_addr()).await;

    let (_, body) = testkit::gateway::get(&format!("http://{}/credentials", gw.health_addr()))
        .await
        .expect("/credentials");
    let report: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(report["provider"], "web identity (IRSA)", "{report}");

    let s3 = epinio_client(
        &format!("http://{}", gw.s3_addr()),
        ACCESS_KEY,
        SECRET_KEY,
        1,
    );
    s3.put_object()
        .bucket(BUCKET)
        .key("apps/blob")
        .body(ByteStream::from_static(b"through IRSA"))
        .send()
        .await
        .expect("PutObject");
    let head = s3
        .head_object()
        .bucket(BUCKET)
        .key("apps/blob")
        .send()
        .await
        .expect("HeadObject");
    assert_eq!(head.content_length(), Some(12));
    let got = s3
        .get_object()
        .bucket(BUCKET)
        .key("apps/blob")
        .send()
        .await
        .expect("GetObject");
    assert_eq!(
        got.body.collect().await.expect("body").to_vec(),
        b"through IRSA"
    );

    let calls = proxy.calls();
    let assumed: Vec<_> = calls
        .iter()
        .filter(|c| c.op == "AssumeRoleWithWebIdentity")
        .collect();
    assert!(
        !assumed.is_empty(),
        "no AssumeRoleWithWebIdentity: {calls:?}"
    );
    for call in &assumed {
        assert_eq!(call.param("RoleArn"), Some(role_arn.as_str()), "{call:?}");
        assert_eq!(call.param("WebIdentityToken"), Some(TOKEN), "{call:?}");
    }
    let s3_calls = calls.iter().filter(|c| c.service == "s3").count();
    assert!(s3_calls >= 3, "S3 calls through the role: {calls:?}");
    let issued = relay.issued_keys();
    let used = relay.access_keys();
    assert!(!issued.is_empty(), "STS issued no key the relay could see");
    assert!(
        !used.is_empty() && used.iter().all(|k| issued.contains(k)),
        "requests signed with {used:?}, STS issued {issued:?}"
    );
    gw.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
