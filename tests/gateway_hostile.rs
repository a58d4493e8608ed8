//! Hostile input: each request gets S3's own error, and the gateway sends nothing to AWS for
//! it (the counting proxy between the gateway and moto sees no request) and nothing is
//! written (read back by an administrator, straight from moto).

use std::time::{Duration, Instant, SystemTime};

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectCannedAcl, ObjectIdentifier};
use epinio_irsa::arn::Partition;
use epinio_irsa::gateway::{self, Gateway};
use testkit::gateway::{
    epinio_client, wait_for_credentials, GatewayWorld, ACCESS_KEY, BUCKET, OTHER, SECRET_KEY,
};
use testkit::gateway_wire::{send, Wire};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A world whose bucket holds `blob`, the other bucket `secret`, and a gateway whose
/// header-read timeout is 1 s.
async fn setup() -> (GatewayWorld, Gateway) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let policy = epinio_irsa::plan::s3_policy(Partition::Aws, BUCKET).to_string();
    let world = GatewayWorld::start(&policy).await;
    world.create_bucket().await;
    let admin = world.admin_s3();
    for (bucket, key) in [(BUCKET, "blob"), (OTHER, "secret")] {
        admin
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from_static(b"original"))
            .send()
            .await
            .expect("seed an object");
    }
    let mut env = world.gateway_env();
    env.push((
        "EPINIO_IRSA_GATEWAY_HEADER_READ_TIMEOUT_SECONDS".into(),
        "1".into(),
    ));
    let gw = gateway::start(env).await.expect("the gateway starts");
    wait_for_credentials(gw.health_addr()).await;
    (world, gw)
}

fn url(gw: &Gateway, path: &str) -> String {
    format!("http://{}{path}", gw.s3_addr())
}

fn client(gw: &Gateway, access: &str, secret: &str) -> aws_sdk_s3::Client {
    epinio_client(&url(gw, ""), access, secret, 1)
}

/// Panics unless the gateway sent nothing to AWS, and `BUCKET` holds only `blob`, intact.
async fn assert_untouched(world: &GatewayWorld, case: &str) {
    let calls = world.s3_calls();
    assert!(
        calls.is_empty(),
        "{case}: the gateway called AWS: {calls:?}"
    );
    let admin = world.admin_s3();
    let listed = admin
        .list_objects_v2()
        .bucket(BUCKET)
        .send()
        .await
        .expect("list");
    let keys: Vec<_> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["blob"], "{case}: the bucket changed");
    for (bucket, key) in [(BUCKET, "blob"), (OTHER, "secret")] {
        let got = admin.get_object().bucket(bucket).key(key).send().await;
        let body = got
            .expect("seeded object")
            .body
            .collect()
            .await
            .expect("body");
        assert_eq!(body.to_vec(), b"original", "{case}: {bucket}/{key} changed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_signatures_keys_times_and_bodies_are_refused_before_aws() {
    let (world, gw) = setup().await;
    let blob = url(&gw, &format!("/{BUCKET}/blob"));

    let e = client(&gw, ACCESS_KEY, "not-the-secret")
        .get_object()
        .bucket(BUCKET)
        .key("blob")
        .send()
        .await
        .expect_err("wrong secret");
    assert_eq!(e.code(), Some("SignatureDoesNotMatch"), "{e:?}");
    let e = client(&gw, "SOMEONEELSE", SECRET_KEY)
        .get_object()
        .bucket(BUCKET)
        .key("blob")
        .send()
        .await
        .expect_err("wrong key id");
    assert_eq!(e.code(), Some("InvalidAccessKeyId"), "{e:?}");

    let unsigned = Wire::new("GET", &blob).send_unsigned().await;
    assert_eq!(
        (unsigned.status, unsigned.code().as_deref()),
        (403, Some("AccessDenied"))
    );

    for (case, skew) in [("expired", -1), ("future", 1)] {
        let mut w = Wire::new("GET", &blob);
        let twenty_minutes = Duration::from_secs(20 * 60);
        w.time = if skew < 0 {
            SystemTime::now() - twenty_minutes
        } else {
            SystemTime::now() + twenty_minutes
        };
        let a = w.send_signed(ACCESS_KEY, SECRET_KEY).await;
        assert_eq!(
            (a.status, a.code().as_deref()),
            (403, Some("RequestTimeTooSkewed")),
            "{case} x-amz-date"
        );
    }

    let presign = PresigningConfig::builder()
        .start_time(SystemTime::now() - Duration::from_secs(3600))
        .expires_in(Duration::from_secs(60))
        .build()
        .expect("presigning config");
    let stale = client(&gw, ACCESS_KEY, SECRET_KEY)
        .get_object()
        .bucket(BUCKET)
        .key("blob")
        .presigned(presign)
        .await
        .expect("presign");
    let a = send("GET", stale.uri(), &[], Vec::new()).await;
    assert_eq!(
        (a.status, a.code().as_deref()),
        (403, Some("AccessDenied")),
        "presigned URL past expiry"
    );
    assert!(String::from_utf8_lossy(&a.body).contains("expired"));

    assert_untouched(&world, "signatures").await;

    // A signature replayed with a tampered body (same length): s3s finds the mismatch
    // while the body streams, so the upload to S3 is cut off before its end and S3 stores
    // nothing; the client gets S3's code.
    let mut w = Wire::new("PUT", url(&gw, &format!("/{BUCKET}/tampered"))).body(&[b'a'; 4096]);
    w.body = vec![b'b'; 4096];
    let a = w.send_signed(ACCESS_KEY, SECRET_KEY).await;
    assert_eq!(
        (a.status, a.code().as_deref()),
        (400, Some("XAmzContentSHA256Mismatch")),
        "tampered body: {:?}",
        String::from_utf8_lossy(&a.body)
    );
    // The proxy (which, like S3, acts only on whole requests) never got the whole upload.
    let calls = world.s3_calls();
    eprintln!("tampered body: the proxy saw {calls:?}");
    let completed: Vec<_> = calls.iter().filter(|c| c.status != 0).collect();
    assert!(
        completed.is_empty(),
        "a tampered upload reached moto whole: {completed:?}"
    );
    world.proxy.clear_calls();
    assert_untouched(&world, "tampered body").await;

    // The controls: the same requests, honest, do work.
    let s3 = client(&gw, ACCESS_KEY, SECRET_KEY);
    let fresh = PresigningConfig::expires_in(Duration::from_secs(60)).expect("config");
    let fresh = s3
        .get_object()
        .bucket(BUCKET)
        .key("blob")
        .presigned(fresh)
        .await;
    let a = send("GET", fresh.expect("presign").uri(), &[], Vec::new()).await;
    assert_eq!((a.status, a.body.as_ref()), (200, b"original".as_slice()));
    let w = Wire::new("PUT", url(&gw, &format!("/{BUCKET}/honest"))).body(&[b'a'; 4096]);
    assert_eq!(w.send_signed(ACCESS_KEY, SECRET_KEY).await.status, 200);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_buckets_operations_paths_and_acls_are_refused_before_aws() {
    let (world, gw) = setup().await;
    let s3 = client(&gw, ACCESS_KEY, SECRET_KEY);
    let denied = |what: &str, code: Option<&str>| {
        assert_eq!(code, Some("AccessDenied"), "{what} was not refused");
    };
    let e = s3
        .get_object()
        .bucket(OTHER)
        .key("secret")
        .send()
        .await
        .expect_err("other");
    denied("GetObject of another bucket", e.code());
    let e = s3
        .put_object()
        .bucket(OTHER)
        .key("k")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await;
    denied(
        "PutObject into another bucket",
        e.expect_err("other").code(),
    );
    let e = s3
        .head_bucket()
        .bucket(OTHER)
        .send()
        .await
        .expect_err("other");
    assert_eq!(
        e.raw_response().map(|r| r.status().as_u16()),
        Some(403),
        "HeadBucket elsewhere"
    );

    denied(
        "ListBuckets",
        s3.list_buckets().send().await.expect_err("op").code(),
    );
    denied(
        "DeleteBucket",
        s3.delete_bucket()
            .bucket(BUCKET)
            .send()
            .await
            .expect_err("op")
            .code(),
    );
    let policy = r#"{"Version":"2012-10-17","Statement":[]}"#;
    let e = s3
        .put_bucket_policy()
        .bucket(BUCKET)
        .policy(policy)
        .send()
        .await;
    denied("PutBucketPolicy", e.expect_err("op").code());
    let e = s3
        .copy_object()
        .bucket(BUCKET)
        .key("copy")
        .copy_source(format!("{OTHER}/secret"))
        .send()
        .await;
    denied("CopyObject", e.expect_err("op").code());
    let delete = Delete::builder()
        .objects(ObjectIdentifier::builder().key("blob").build().expect("id"))
        .build()
        .expect("delete");
    let e = s3
        .delete_objects()
        .bucket(BUCKET)
        .delete(delete)
        .send()
        .await;
    denied("DeleteObjects", e.expect_err("op").code());
    let e = s3.get_object_acl().bucket(BUCKET).key("blob").send().await;
    denied("GetObjectAcl", e.expect_err("op").code());
    let e = s3
        .put_object()
        .bucket(BUCKET)
        .key("public")
        .acl(ObjectCannedAcl::PublicRead)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await;
    denied("PutObject with a public ACL", e.expect_err("acl").code());

    // Paths that would leave the bucket if anything on the way resolved them.
    for path in [
        format!("/{BUCKET}/../{OTHER}/secret"),
        format!("/{BUCKET}/apps/../../{OTHER}/secret"),
        format!("/{BUCKET}/%2E%2E/{OTHER}/secret"),
    ] {
        let a = Wire::new("GET", url(&gw, &path))
            .send_signed(ACCESS_KEY, SECRET_KEY)
            .await;
        assert_eq!(
            a.status,
            403,
            "{path}: {:?}",
            String::from_utf8_lossy(&a.body)
        );
        assert!(
            matches!(
                a.code().as_deref(),
                Some("AccessDenied" | "SignatureDoesNotMatch")
            ),
            "{path}: {:?}",
            a.code()
        );
    }
    // A browser POST upload (s3s would read its file before asking who may).
    let a = Wire::new("POST", url(&gw, &format!("/{BUCKET}")))
        .header("content-type", "multipart/form-data; boundary=x")
        .body(b"--x\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nk\r\n--x--\r\n")
        .send_unsigned()
        .await;
    assert_eq!(
        (a.status, a.code().as_deref()),
        (403, Some("AccessDenied")),
        "POST form"
    );
    assert_untouched(&world, "outside the allow-list").await;
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_headers_and_slow_clients_are_cut_off() {
    let (world, gw) = setup().await;
    let blob = url(&gw, &format!("/{BUCKET}/blob"));
    let big = "x".repeat(20 * 1024);
    let a = Wire::new("GET", &blob)
        .header("x-amz-meta-big", &big)
        .send_signed(ACCESS_KEY, SECRET_KEY)
        .await;
    assert_eq!(
        (a.status, a.code().as_deref()),
        (400, Some("RequestHeaderSectionTooLarge"))
    );
    // Far larger: hyper refuses it while reading (431), before any S3 parsing.
    let huge = "x".repeat(1024 * 1024);
    let a = Wire::new("GET", &blob)
        .header("x-amz-meta-big", &huge)
        .send_unsigned()
        .await;
    assert_eq!(a.status, 431, "a 100 KiB header");

    // A client that never finishes its headers is disconnected after the 1 s timeout.
    let started = Instant::now();
    let mut tcp = tokio::net::TcpStream::connect(gw.s3_addr())
        .await
        .expect("connect");
    tcp.write_all(format!("GET /{BUCKET}/blob HTTP/1.1\r\nHost: gateway\r\n").as_bytes())
        .await
        .expect("write");
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut buf)).await;
    let waited = started.elapsed();
    assert!(read.is_ok(), "a slow client was kept for over 5 s");
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(3),
        "disconnected after {waited:?}"
    );
    let text = String::from_utf8_lossy(&buf);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
    eprintln!("slow client disconnected after {waited:?}: {text:?}");
    assert_untouched(&world, "headers").await;
    gw.shutdown().await;
}
