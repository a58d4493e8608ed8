//! The gateway's request log, as the real process writes it with every log target at `trace`
//! (`RUST_LOG=trace`, the most a user could turn on): one JSON line per request with the
//! operation, bucket, key, status, bytes, latency and the caller's access key id, and never the
//! secret key, a request's signature (header or presigned query) or an Authorization header.

use std::path::Path;
use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use testkit::gateway::{epinio_client, ACCESS_KEY, SECRET_KEY};
use testkit::gateway_fs::FsWorld;
use testkit::gateway_process::GatewayProcess;

const BUCKET: &str = "epinio-log";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_line_per_request_with_its_fields_and_never_a_secret_or_signature() {
    let world = FsWorld::start(BUCKET).await;
    let mut env = world.gateway_env();
    env.push(("RUST_LOG".into(), "trace".into()));
    let gw = GatewayProcess::spawn(Path::new(env!("CARGO_BIN_EXE_epinio-irsa")), &env).await;
    gw.wait_ready().await;
    gw.wait_credentials().await;
    let s3 = epinio_client(&gw.s3_url(), ACCESS_KEY, SECRET_KEY, 1);

    s3.put_object()
        .bucket(BUCKET)
        .key("apps/blob")
        .body(ByteStream::from_static(b"epinio source"))
        .send()
        .await
        .expect("PUT");
    let presigned = s3
        .get_object()
        .bucket(BUCKET)
        .key("apps/blob")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).unwrap())
        .await
        .expect("presign");
    let query_signature = presigned
        .uri()
        .split("X-Amz-Signature=")
        .nth(1)
        .expect("a presigned signature")
        .split('&')
        .next()
        .unwrap()
        .to_string();
    // A plain GET of the presigned URL, as a browser or `curl` sends it (no SDK signing).
    let (status, got) = testkit::gateway::get(presigned.uri()).await.expect("GET");
    assert_eq!((status, got.as_ref()), (200, &b"epinio source"[..]));
    // A key that tries to forge a log line.
    let forged = "apps/x\n{\"fields\":{\"message\":\"request\"}}";
    s3.put_object()
        .bucket(BUCKET)
        .key(forged)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect("PUT of an odd key");
    let wrong = epinio_client(&gw.s3_url(), ACCESS_KEY, "not-the-secret-key-0123456789", 1);
    assert!(wrong
        .head_object()
        .bucket(BUCKET)
        .key("apps/blob")
        .send()
        .await
        .is_err());
    tokio::time::sleep(Duration::from_millis(300)).await;

    let log = gw.log();
    assert!(log.all.len() > 3, "{:#?}", log.all);
    for line in &log.all {
        for secret in [SECRET_KEY, query_signature.as_str(), "not-the-secret-key"] {
            assert!(
                !line.contains(secret),
                "logged a secret or signature: {line}"
            );
        }
        assert!(!line.contains("Signature="), "logged a signature: {line}");
        assert!(
            !line.to_ascii_lowercase().contains("authorization"),
            "logged a header: {line}"
        );
    }
    let requests: Vec<serde_json::Value> = log
        .all
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["fields"]["message"] == "request")
        .map(|v| v["fields"].clone())
        .collect();
    assert_eq!(requests.len(), 4, "one line per request: {requests:#?}");
    for line in &log.all {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok(),
            "not one JSON object per line: {line}"
        );
    }
    let put = &requests[0];
    assert_eq!(put["op"], "PutObject", "{put}");
    assert_eq!(put["key"], "apps/blob", "{put}");
    assert_eq!(put["status"], 200, "{put}");
    assert_eq!(put["bytes_in"], 13, "{put}");
    assert_eq!(put["caller"], ACCESS_KEY, "{put}");
    assert!(put["latency_ms"].is_u64(), "{put}");
    assert_eq!(requests[1]["op"], "GetObject", "{}", requests[1]);
    assert_eq!(requests[1]["bytes_out"], 13, "{}", requests[1]);
    assert_eq!(
        requests[2]["key"],
        forged.escape_debug().to_string(),
        "{}",
        requests[2]
    );
    assert_eq!(requests[3]["status"], 403, "{}", requests[3]);
    assert!(
        gw.stop().await,
        "the gateway did not exit cleanly on SIGTERM"
    );
}
