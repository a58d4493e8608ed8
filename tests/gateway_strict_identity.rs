//! Issue 23, the gateway's identity, through the real binary in front of a recording backend
//! (`testkit::gateway_recorder`): its log carries no secret and no signature at any
//! `RUST_LOG` setting, and its credential chain is exactly web identity (IRSA) and the
//! container endpoint (EKS Pod Identity): static keys and instance metadata are never used.

use std::convert::Infallible;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_sdk_s3::config::ProvideCredentials;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use epinio_irsa::arn::Partition;
use http_body_util::Full;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use testkit::gateway::{epinio_client, get, ACCESS_KEY, BUCKET, SECRET_KEY};
use testkit::gateway_agent::AGENT_TOKEN;
use testkit::gateway_process::GatewayProcess;
use testkit::gateway_recorder::sign::{presign, signature_of};
use testkit::gateway_recorder::world::{env_through, world, BLOB};
use testkit::gateway_recorder::Recorder;
use testkit::gateway_wire::{send, Wire};

const SSE_C_KEY: &str = "ZXBpbmlvLXNzZWMta2V5LTAxMjM0NTY3ODlhYmNkZWY=";
const SSE_C_MD5: &str = "bhLjmIAnrTC9V3GTaw3Wcw==";
const WRONG_SECRET: &str = "not-the-secret-but-close-0123456789";

/// Everything at `trace`, then each target that logs requests, signatures or credentials at
/// `trace` over `info` (the gateway's own lines stay, the test reads its addresses from them).
const RUST_LOGS: &[&str] = &[
    "trace",
    "info,aws_sigv4=trace",
    "info,aws_sigv4::http_request=trace",
    "info,s3s=trace",
    "info,s3s::ops::signature=trace",
    "info,hyper=trace",
    "info,hyper_util=trace",
    "info,s3s_aws=trace",
    "info,aws_smithy_http_client=trace",
    "info,aws_smithy_runtime=trace",
    "info,aws_smithy_runtime_api=trace",
    "info,aws_config=trace",
    "info,rustls=trace",
];

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_epinio-irsa"))
}

fn policy() -> String {
    epinio_irsa::plan::s3_policy(Partition::Aws, BUCKET).to_string()
}

/// Sends what the log must describe without its secrets; returns those secrets.
async fn exercise(gw: &GatewayProcess) -> Vec<(&'static str, String)> {
    let blob = format!("{}/{BUCKET}/{BLOB}", gw.s3_url());
    // (a) A wrong signature; the right one is computed here and must never be logged.
    let wire = Wire::new("GET", &blob);
    let right = signature_of(&wire.signed(ACCESS_KEY, SECRET_KEY));
    let sent = signature_of(&wire.signed(ACCESS_KEY, WRONG_SECRET));
    let a = wire.send_signed(ACCESS_KEY, WRONG_SECRET).await;
    assert_eq!(
        a.code().as_deref(),
        Some("SignatureDoesNotMatch"),
        "{:?}",
        a.body
    );
    let a = wire.send_signed("SOMEONEELSE0000000001", SECRET_KEY).await;
    assert_eq!(
        a.code().as_deref(),
        Some("InvalidAccessKeyId"),
        "{:?}",
        a.body
    );
    // (b) A normal PutObject.
    let s3 = epinio_client(&gw.s3_url(), ACCESS_KEY, SECRET_KEY, 1);
    let body = ByteStream::from_static(b"epinio source");
    let put = s3
        .put_object()
        .bucket(BUCKET)
        .key("apps/app.tar")
        .body(body);
    put.send().await.expect("PutObject");
    // (c) SSE-C headers (refused).
    let ssec = Wire::new("PUT", format!("{}/{BUCKET}/ssec", gw.s3_url()))
        .body(b"x")
        .header("x-amz-server-side-encryption-customer-algorithm", "AES256")
        .header("x-amz-server-side-encryption-customer-key", SSE_C_KEY)
        .header("x-amz-server-side-encryption-customer-key-md5", SSE_C_MD5);
    let ssec_signature = signature_of(&ssec.signed(ACCESS_KEY, SECRET_KEY));
    ssec.send_signed(ACCESS_KEY, SECRET_KEY).await;
    // (d) A presigned GET.
    let keys = (ACCESS_KEY, SECRET_KEY);
    let url = presign(
        "GET",
        &blob,
        keys,
        "s3",
        SystemTime::now(),
        Duration::from_secs(300),
    );
    let a = send("GET", &url, &[], Vec::new()).await;
    assert_eq!(a.status, 200, "presigned GET: {:?}", a.body);
    let query = url
        .split("X-Amz-Signature=")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    vec![
        ("Epinio's secret key", SECRET_KEY.into()),
        ("the wrong secret", WRONG_SECRET.into()),
        ("the right signature of a refused request", right),
        ("the signature sent", sent),
        ("the signature of the SSE-C request", ssec_signature),
        ("the SSE-C key", SSE_C_KEY.into()),
        ("the SSE-C key's MD5", SSE_C_MD5.into()),
        ("a presigned URL's signature", query),
        ("the Pod Identity token", AGENT_TOKEN.into()),
    ]
}

/// The role's secrets as the gateway got and used them: the keys from the credentials
/// endpoint's answers (`creds`) and the signatures and session tokens it sent AWS.
fn role_secrets(creds: &Recorder, aws: &Recorder) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for answer in creds.requests() {
        let v: serde_json::Value = serde_json::from_slice(&answer.answer).unwrap_or_default();
        for (what, field) in [
            ("the role's secret key", "SecretAccessKey"),
            ("the role's session token", "Token"),
        ] {
            if let Some(s) = v[field].as_str() {
                out.push((what, s.to_string()));
            }
        }
    }
    for r in aws.requests() {
        if let Some(t) = r.header("x-amz-security-token") {
            out.push(("the session token sent to AWS", t.to_string()));
        }
        if let Some(sig) = r
            .header("authorization")
            .and_then(|a| a.split("Signature=").nth(1))
        {
            out.push(("a signature sent to AWS", sig.to_string()));
        }
    }
    out
}

/// Findings in one run's log: a secret, a header dump, a missing or reasonless request line.
fn findings(setting: &str, log: &[String], secrets: &[(&str, String)]) -> Vec<String> {
    let mut wrong = Vec::new();
    for line in log {
        for (what, secret) in secrets {
            if !secret.is_empty() && line.contains(secret.as_str()) {
                wrong.push(format!("RUST_LOG={setting}: {what} logged: {line}"));
            }
        }
        let lower = line.to_ascii_lowercase();
        for pattern in ["authorization:", "\"authorization\"", "signature="] {
            if lower.contains(pattern) {
                wrong.push(format!("RUST_LOG={setting}: {pattern} logged: {line}"));
            }
        }
    }
    let requests: Vec<serde_json::Value> = log
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["fields"]["message"] == "request")
        .map(|v| v["fields"].clone())
        .collect();
    if requests.len() < 5 {
        wrong.push(format!(
            "RUST_LOG={setting}: {} request lines, want 5: {requests:?}",
            requests.len()
        ));
    }
    for code in ["SignatureDoesNotMatch", "InvalidAccessKeyId"] {
        if !requests
            .iter()
            .any(|r| r["error"] == code && r["status"] == 403)
        {
            wrong.push(format!(
                "RUST_LOG={setting}: no request line with error {code}: {requests:?}"
            ));
        }
    }
    if !requests
        .iter()
        .any(|r| r["op"] == "PutObject" && r["status"] == 200)
    {
        wrong.push(format!(
            "RUST_LOG={setting}: no PutObject line: {requests:?}"
        ));
    }
    wrong
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_or_signature_reaches_the_log_at_any_rust_log_setting() {
    let world = world(&policy()).await;
    let aws = Recorder::start(&world.moto.endpoint()).await;
    let mut env = env_through(&world, &aws);
    // A recorder in front of the credentials endpoint too: the role's keys the gateway got.
    let full_uri = "AWS_CONTAINER_CREDENTIALS_FULL_URI";
    let agent = env
        .iter()
        .find(|(k, _)| k == full_uri)
        .expect("Pod Identity")
        .1
        .clone();
    let creds = Recorder::start(agent.trim_end_matches("/v1/credentials")).await;
    env.retain(|(k, _)| k != full_uri);
    env.push((full_uri.into(), format!("{}/v1/credentials", creds.url())));
    let mut wrong = Vec::new();
    for setting in RUST_LOGS {
        let mut env = env.clone();
        env.push(("RUST_LOG".into(), setting.to_string()));
        let gw = GatewayProcess::spawn(bin(), &env).await;
        gw.wait_credentials().await;
        let mut secrets = exercise(&gw).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        secrets.extend(role_secrets(&creds, &aws));
        let log = gw.log().all;
        eprintln!("RUST_LOG={setting}: {} log lines", log.len());
        wrong.extend(findings(setting, &log, &secrets));
        gw.stop().await;
    }
    assert!(
        wrong.is_empty(),
        "{} findings:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// An instance metadata service (IMDSv2) that hands out `keys` as a node role's, counting
/// every request it gets.
async fn fake_imds(keys: (String, String)) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let count = Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (count, keys) = (counted.clone(), keys.clone());
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                count.fetch_add(1, Ordering::SeqCst);
                let path = req.uri().path().to_string();
                let body = if path == "/latest/api/token" {
                    "imds-session-token".to_string()
                } else if path.ends_with("/security-credentials/") || path.ends_with("-extended/") {
                    "node-role".to_string()
                } else {
                    let expires = aws_sdk_s3::primitives::DateTime::from(
                        SystemTime::now() + Duration::from_secs(3600),
                    );
                    let expires = expires
                        .fmt(aws_sdk_s3::primitives::DateTimeFormat::DateTime)
                        .unwrap_or_default();
                    serde_json::json!({"Code": "Success", "Type": "AWS-HMAC", "AccessKeyId": keys.0,
                        "SecretAccessKey": keys.1, "Token": "node-session-token", "Expiration": expires,
                        "LastUpdated": expires})
                    .to_string()
                };
                let mut res = Response::new(Full::new(Bytes::from(body)));
                let ttl = hyper::header::HeaderValue::from_static("21600");
                res.headers_mut()
                    .insert("x-aws-ec2-metadata-token-ttl-seconds", ttl);
                async move { Ok::<_, Infallible>(res) }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service),
            );
        }
    });
    (url, count)
}

/// What is wrong with a gateway that must have no credentials: `/credentials` must not say
/// ready and must name both sources it looks for, and S3 requests must get 503
/// ServiceUnavailable.
async fn not_ready(case: &str, gw: &GatewayProcess) -> Vec<String> {
    let mut wrong = Vec::new();
    let url = format!("http://{}/credentials", gw.health);
    let (_, report) = get(&url).await.expect("/credentials");
    let report = String::from_utf8_lossy(&report).to_lowercase();
    let web_identity = report.contains("web identity") || report.contains("web_identity");
    let ready = report.contains("\"state\":\"ready\"");
    if ready || !web_identity || !report.contains("container") {
        wrong.push(format!("{case}: /credentials: {report}"));
    }
    let s3 = epinio_client(&gw.s3_url(), ACCESS_KEY, SECRET_KEY, 1);
    match s3.list_objects_v2().bucket(BUCKET).send().await {
        Ok(_) => wrong.push(format!("{case}: ListObjectsV2 was served")),
        Err(e) => {
            let status = e.raw_response().map(|r| r.status().as_u16());
            if (status, e.code()) != (Some(503), Some("ServiceUnavailable")) {
                let code = e.code().map(str::to_string);
                wrong.push(format!(
                    "{case}: ListObjectsV2 answered {status:?} {code:?}"
                ));
            }
        }
    }
    wrong
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_web_identity_or_pod_identity_no_other_credentials_are_used() {
    let world = world(&policy()).await;
    let aws = Recorder::start(&world.moto.endpoint()).await;
    let provider = world
        .admin
        .credentials_provider()
        .expect("admin credentials");
    let admin = provider.provide_credentials().await.expect("admin keys");
    let keys = (
        admin.access_key_id().to_string(),
        admin.secret_access_key().to_string(),
    );
    let (imds, imds_calls) = fake_imds(keys.clone()).await;
    let full = env_through(&world, &aws);
    let (container, mut bare): (Vec<_>, Vec<_>) = full
        .into_iter()
        .partition(|(k, _)| k.starts_with("AWS_CONTAINER_"));
    bare.retain(|(k, _)| k != "AWS_EC2_METADATA_DISABLED");
    bare.push(("AWS_EC2_METADATA_SERVICE_ENDPOINT".into(), imds));
    let mut with_keys = bare.clone();
    with_keys.push(("AWS_ACCESS_KEY_ID".into(), keys.0));
    with_keys.push(("AWS_SECRET_ACCESS_KEY".into(), keys.1));
    let mut wrong = Vec::new();
    for (case, env) in [
        ("static keys and instance metadata", &with_keys),
        ("instance metadata", &bare),
    ] {
        let gw = GatewayProcess::spawn(bin(), env).await;
        gw.wait_ready().await;
        // The chain is asked at once, then after 1 s and 2 s more.
        tokio::time::sleep(Duration::from_millis(3500)).await;
        wrong.extend(not_ready(case, &gw).await);
        let seen: Vec<String> = aws.requests().iter().map(|r| r.summary()).collect();
        if !seen.is_empty() {
            wrong.push(format!("{case}: reached AWS: {seen:?}"));
        }
        let calls = imds_calls.swap(0, Ordering::SeqCst);
        if calls > 0 {
            wrong.push(format!("{case}: {calls} requests to instance metadata"));
        }
        aws.clear();
        gw.stop().await;
    }
    assert!(
        wrong.is_empty(),
        "{} findings:\n{}",
        wrong.len(),
        wrong.join("\n")
    );

    // Control: the same environment with Pod Identity's variables gets the role and serves.
    let mut env = with_keys;
    env.extend(container);
    let gw = GatewayProcess::spawn(bin(), &env).await;
    gw.wait_credentials().await;
    let (_, report) = get(&format!("http://{}/credentials", gw.health))
        .await
        .expect("/credentials");
    let report = String::from_utf8_lossy(&report).into_owned();
    assert!(report.contains("container endpoint"), "{report}");
    let s3 = epinio_client(&gw.s3_url(), ACCESS_KEY, SECRET_KEY, 1);
    s3.head_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("HeadBucket with the role");
    assert_eq!(aws.requests().len(), 1, "HeadBucket reached AWS");
    assert_eq!(
        imds_calls.load(Ordering::SeqCst),
        0,
        "instance metadata was asked"
    );
    gw.stop().await;
}
