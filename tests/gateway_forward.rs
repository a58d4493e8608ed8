//! The gateway in-process against moto with IAM enforcement on. The gateway holds the
//! credentials of a role that carries the job's generated S3 policy (`plan::s3_policy`),
//! served to it the way EKS Pod Identity serves a pod (the container credentials endpoint),
//! so moto judges every forwarded request. The client is aws-sdk-s3 configured as Epinio
//! 1.14 configures aws-sdk-go-v2.

use std::time::{Duration, Instant};

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use epinio_irsa::arn::Partition;
use epinio_irsa::gateway::{self, credentials::Phase, Gateway};
use sha2::{Digest, Sha256};
use testkit::gateway::{
    epinio_client, wait_for_credentials, GatewayWorld, ACCESS_KEY, BUCKET, SECRET_KEY,
};

const MIB: usize = 1024 * 1024;

async fn world() -> GatewayWorld {
    GatewayWorld::start(&epinio_irsa::plan::s3_policy(Partition::Aws, BUCKET).to_string()).await
}

async fn start(world: &GatewayWorld) -> Gateway {
    gateway::start(world.gateway_env())
        .await
        .unwrap_or_else(|e| panic!("the gateway did not start: {e}"))
}

fn client(gw: &Gateway) -> aws_sdk_s3::Client {
    epinio_client(
        &format!("http://{}", gw.s3_addr()),
        ACCESS_KEY,
        SECRET_KEY,
        3,
    )
}

/// Bytes that differ at every offset and for every size (a cheap xorshift stream).
fn content(size: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn sha256(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

async fn read_all(out: aws_sdk_s3::operation::get_object::GetObjectOutput) -> Vec<u8> {
    out.body
        .collect()
        .await
        .expect("the body streams to the end")
        .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn epinio_calls_round_trip_every_size_through_the_role() {
    let world = world().await;
    let gw = start(&world).await;
    wait_for_credentials(gw.health_addr()).await;
    let s3 = client(&gw);

    // Epinio's first steps: HeadBucket, then CreateBucket when missing.
    let missing = s3.head_bucket().bucket(BUCKET).send().await;
    let status = missing
        .as_ref()
        .err()
        .and_then(|e| e.raw_response())
        .map(|r| r.status().as_u16());
    assert_eq!(
        status,
        Some(404),
        "HeadBucket of a missing bucket: {missing:?}"
    );
    s3.create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("CreateBucket through the gateway");
    s3.head_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("HeadBucket after CreateBucket");

    for (i, size) in [0, 1, 8 * MIB + 1, 64 * MIB].into_iter().enumerate() {
        let started = Instant::now();
        let key = format!("apps/blob-{size}");
        let data = content(size, 7 + i as u64);
        let put = s3
            .put_object()
            .bucket(BUCKET)
            .key(&key)
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("PutObject {size} B: {e:?}"));
        assert!(put.e_tag().is_some(), "PutObject {size} B: no ETag");
        let head = s3.head_object().bucket(BUCKET).key(&key).send().await;
        let head = head.unwrap_or_else(|e| panic!("HeadObject {size} B: {e:?}"));
        assert_eq!(head.content_length(), Some(size as i64));
        let got = s3.get_object().bucket(BUCKET).key(&key).send().await;
        let got = read_all(got.unwrap_or_else(|e| panic!("GetObject {size} B: {e:?}"))).await;
        assert_eq!(
            sha256(&got),
            sha256(&data),
            "GetObject {size} B: content differs"
        );
        // What moto holds is the same object (read by the administrator, not through us;
        // skipped for the largest size, where moto's slowness would double the test's time).
        if size < 64 * MIB {
            let stored = world
                .admin_s3()
                .get_object()
                .bucket(BUCKET)
                .key(&key)
                .send()
                .await;
            let stored = read_all(stored.expect("the object is in moto")).await;
            assert_eq!(
                sha256(&stored),
                sha256(&data),
                "{size} B: moto holds other bytes"
            );
        }
        if size > 2 {
            let (from, to) = (size / 3, size - 2);
            let part = s3
                .get_object()
                .bucket(BUCKET)
                .key(&key)
                .range(format!("bytes={from}-{to}"))
                .send()
                .await
                .unwrap_or_else(|e| panic!("ranged GetObject {size} B: {e:?}"));
            assert_eq!(part.content_length(), Some((to - from + 1) as i64));
            let part = read_all(part).await;
            assert_eq!(sha256(&part), sha256(&data[from..=to]), "range of {size} B");
        }
        s3.delete_object()
            .bucket(BUCKET)
            .key(&key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("DeleteObject {size} B: {e:?}"));
        let gone = s3.head_object().bucket(BUCKET).key(&key).send().await;
        assert!(gone.is_err(), "{key} still there after DeleteObject");
        eprintln!(
            "{size} B: put, head, get, range, delete in {:?}",
            started.elapsed()
        );
    }

    // Every request reached moto signed with the role, and only for Epinio's bucket.
    let calls = world.s3_calls();
    assert!(!calls.is_empty());
    let elsewhere: Vec<_> = calls
        .iter()
        .filter(|c| c.resource.as_deref() != Some(BUCKET))
        .collect();
    assert!(
        elsewhere.is_empty(),
        "calls for other buckets: {elsewhere:?}"
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_refreshed_before_they_expire_and_requests_keep_working() {
    let world = world().await;
    world.create_bucket().await;
    // aws-config's cache renews credentials 10 s (plus jitter) before they expire; with 12 s
    // each set serves about 2 s, so a few seconds of traffic see several refreshes.
    let lifetime = Duration::from_secs(12);
    world.set_credential_lifetime(lifetime);
    let gw = start(&world).await;
    wait_for_credentials(gw.health_addr()).await;
    let s3 = client(&gw);
    let until = Instant::now() + Duration::from_secs(9);
    let mut requests = 0;
    while Instant::now() < until {
        let key = format!("refresh/{requests}");
        s3.put_object()
            .bucket(BUCKET)
            .key(&key)
            .body(ByteStream::from_static(b"still signed"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("PutObject #{requests}: {e:?}"));
        let got = s3.get_object().bucket(BUCKET).key(&key).send().await;
        assert_eq!(read_all(got.expect("GetObject")).await, b"still signed");
        requests += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let issued = world.issued();
    eprintln!(
        "{requests} PUT+GET pairs, {} credential sets: {:?}",
        issued.len(),
        issued.iter().map(|i| i.at).collect::<Vec<_>>()
    );
    assert!(
        issued.len() >= 3,
        "the gateway did not refresh: {} credential sets in 9 s of {lifetime:?} credentials",
        issued.len()
    );
    // The first set is the gateway's own start-up probe; from the cache's first set on, each
    // refresh came before the set it replaced ran out.
    for pair in issued[1..].windows(2) {
        assert!(
            pair[1].at < pair[0].expires,
            "a refresh came only after expiry: {pair:?}"
        );
    }
    assert_eq!(world.refused(), 0, "the gateway sent a wrong agent token");
    assert_eq!(gw.credentials().fetches() as usize, issued.len());
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_without_credentials_and_s3_requests_get_service_unavailable_until_they_come() {
    let world = world().await;
    world.fail_credentials(true);
    let gw = start(&world).await;
    let health = |path: &str| format!("http://{}{path}", gw.health_addr());
    let (live, _) = testkit::gateway::get(&health("/livez"))
        .await
        .expect("livez");
    let (ready, _) = testkit::gateway::get(&health("/readyz"))
        .await
        .expect("readyz");
    assert_eq!(
        (live, ready),
        (200, 200),
        "readiness must not wait for credentials"
    );

    let s3 = client(&gw);
    let refused = s3
        .put_object()
        .bucket(BUCKET)
        .key("k")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect_err("no credentials yet");
    assert_eq!(refused.code(), Some("ServiceUnavailable"), "{refused:?}");
    let message = refused.message().unwrap_or_default().to_string();
    assert!(message.contains("no AWS credentials"), "{message}");
    // The first attempt may still be under way (aws-config retries the endpoint itself).
    let deadline = Instant::now() + Duration::from_secs(10);
    let report = loop {
        let (_, body) = testkit::gateway::get(&health("/credentials"))
            .await
            .expect("credentials");
        let report: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        if report["last_error"].is_string() || Instant::now() > deadline {
            break report;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(report["state"], "pending", "{report}");
    assert!(
        report["last_error"].as_str().is_some_and(|e| !e.is_empty()),
        "{report}"
    );
    assert!(
        world.s3_calls().is_empty(),
        "AWS was called without credentials"
    );

    // The association appears: the gateway picks the credentials up by itself.
    world.fail_credentials(false);
    wait_for_credentials(gw.health_addr()).await;
    assert_eq!(gw.credentials().phase(), Phase::Ready);
    s3.create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("CreateBucket");
    s3.put_object()
        .bucket(BUCKET)
        .key("k")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect("PutObject once credentials exist");
    let report = testkit::gateway::get(&health("/credentials"))
        .await
        .expect("credentials")
        .1;
    let text = String::from_utf8_lossy(&report);
    assert!(text.contains("EKS Pod Identity"), "{text}");
    for secret in [SECRET_KEY, ACCESS_KEY] {
        assert!(!text.contains(secret), "/credentials shows a key: {text}");
    }
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_requests_in_flight_and_refuses_new_ones() {
    let world = world().await;
    let gw = start(&world).await;
    wait_for_credentials(gw.health_addr()).await;
    let s3 = client(&gw);
    s3.create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("CreateBucket");
    let data = content(16 * MIB, 3);
    s3.put_object()
        .bucket(BUCKET)
        .key("big")
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .expect("PutObject");
    // A download in flight: the answer has begun, the body is not read yet.
    let in_flight = s3
        .get_object()
        .bucket(BUCKET)
        .key("big")
        .send()
        .await
        .expect("GetObject");
    let (s3_addr, health_addr) = (gw.s3_addr(), gw.health_addr());
    let stopping = tokio::spawn(gw.shutdown());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (ready, _) = testkit::gateway::get(&format!("http://{health_addr}/readyz"))
        .await
        .expect("the health listener stays up while draining");
    assert_eq!(ready, 503, "/readyz while draining");
    assert!(
        tokio::net::TcpStream::connect(s3_addr).await.is_err(),
        "a new S3 connection was accepted during shutdown"
    );
    assert!(
        !stopping.is_finished(),
        "shutdown did not wait for the download"
    );
    let got = read_all(in_flight).await;
    assert_eq!(
        sha256(&got),
        sha256(&data),
        "the download in flight was cut"
    );
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("shutdown ends once the download is done")
        .expect("shutdown task");
}
