//! Backend faults, injected by the proxy between the gateway and moto: S3's 500 and 503
//! `SlowDown` reach the client with their status and code (the gateway does not retry; the
//! client does), a dropped backend connection becomes a retryable `ServiceUnavailable`, and
//! the gateway keeps serving afterwards. Credentials that run out while the credentials
//! endpoint has no new ones: `ServiceUnavailable` without an AWS call, then recovery by
//! itself once the endpoint answers again. (Connections dropped in the middle of a body:
//! `gateway_midway.rs`.)

use std::time::{Duration, Instant, SystemTime};

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use epinio_irsa::arn::Partition;
use epinio_irsa::gateway::{self, Gateway};
use testkit::gateway::{
    epinio_client, wait_for_credentials, GatewayWorld, ACCESS_KEY, BUCKET, SECRET_KEY,
};
use testkit::proxy::{Fault, Rule};

async fn setup() -> (GatewayWorld, Gateway) {
    let policy = epinio_irsa::plan::s3_policy(Partition::Aws, BUCKET).to_string();
    let world = GatewayWorld::start(&policy).await;
    world.create_bucket().await;
    let admin = world.admin_s3();
    admin
        .put_object()
        .bucket(BUCKET)
        .key("blob")
        .body(ByteStream::from_static(b"content"))
        .send()
        .await
        .expect("seed");
    let gw = gateway::start(world.gateway_env()).await.expect("start");
    wait_for_credentials(gw.health_addr()).await;
    (world, gw)
}

fn status<E>(e: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> u16 {
    e.raw_response().map_or(0, |r| r.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_errors_pass_through_and_the_gateway_keeps_serving() {
    let (world, gw) = setup().await;
    let once = epinio_client(
        &format!("http://{}", gw.s3_addr()),
        ACCESS_KEY,
        SECRET_KEY,
        1,
    );

    world
        .proxy
        .add_rule(Rule::once("GetObject", Fault::Throttling));
    let e = once
        .get_object()
        .bucket(BUCKET)
        .key("blob")
        .send()
        .await
        .expect_err("503");
    assert_eq!((status(&e), e.code()), (503, Some("SlowDown")), "{e:?}");

    world
        .proxy
        .add_rule(Rule::once("PutObject", Fault::InternalFailure));
    let e = once
        .put_object()
        .bucket(BUCKET)
        .key("new")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect_err("500");
    assert_eq!(
        (status(&e), e.code()),
        (500, Some("InternalError")),
        "{e:?}"
    );

    world
        .proxy
        .add_rule(Rule::once("HeadObject", Fault::Throttling));
    let e = once
        .head_object()
        .bucket(BUCKET)
        .key("blob")
        .send()
        .await
        .expect_err("503");
    assert_eq!(status(&e), 503, "HEAD answers carry only the status: {e:?}");

    world
        .proxy
        .add_rule(Rule::once("GetObject", Fault::ResetConnection));
    let e = once
        .get_object()
        .bucket(BUCKET)
        .key("blob")
        .send()
        .await
        .expect_err("reset");
    assert_eq!(
        (status(&e), e.code()),
        (503, Some("ServiceUnavailable")),
        "{e:?}"
    );

    // Nothing was left behind, and the next requests work.
    let got = once
        .get_object()
        .bucket(BUCKET)
        .key("blob")
        .send()
        .await
        .expect("GET after faults");
    assert_eq!(got.body.collect().await.expect("body").to_vec(), b"content");
    let missing = world
        .admin_s3()
        .head_object()
        .bucket(BUCKET)
        .key("new")
        .send()
        .await;
    assert!(missing.is_err(), "a failed PutObject left an object");

    // A client with the SDK's standard retries gets through a throttled backend.
    let retrying = epinio_client(
        &format!("http://{}", gw.s3_addr()),
        ACCESS_KEY,
        SECRET_KEY,
        3,
    );
    world
        .proxy
        .add_rule(Rule::new("PutObject", Fault::Throttling, 2));
    retrying
        .put_object()
        .bucket(BUCKET)
        .key("retried")
        .body(ByteStream::from_static(b"y"))
        .send()
        .await
        .expect("the client's retries succeed");
    let faulted: Vec<_> = world
        .s3_calls()
        .into_iter()
        .filter(|c| c.injected.is_some())
        .collect();
    assert_eq!(
        faulted.len(),
        6,
        "each injected fault was sent once, not retried by the gateway: {faulted:?}"
    );
    gw.shutdown().await;
}

/// The credentials endpoint stops handing out credentials (the agent or STS is down) while
/// the gateway serves, with sets that live 16 s. The SDK's identity cache asks for a new set
/// some time before expiry (when exactly is the cache's business; seen here: 2-4 s before),
/// and that refresh fails. Proves: from the first failed refresh on, and after expiry,
/// every request gets `ServiceUnavailable` naming the credentials, none reaches AWS, and no
/// PUT sent after expiry succeeds (none is signed with expired credentials); `/credentials`
/// says `failed` and `expired`; when the endpoint answers again, the gateway recovers by
/// itself (its retry loop backs off to 15 s at most) and serves without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_that_expire_while_the_endpoint_is_down_give_service_unavailable_then_recover()
{
    let policy = epinio_irsa::plan::s3_policy(Partition::Aws, BUCKET).to_string();
    let world = GatewayWorld::start(&policy).await;
    world.create_bucket().await;
    world.set_credential_lifetime(Duration::from_secs(16));
    let gw = gateway::start(world.gateway_env()).await.expect("start");
    wait_for_credentials(gw.health_addr()).await;
    let s3 = epinio_client(
        &format!("http://{}", gw.s3_addr()),
        ACCESS_KEY,
        SECRET_KEY,
        1,
    );
    let put = |key: String| {
        let s3 = s3.clone();
        async move {
            s3.put_object()
                .bucket(BUCKET)
                .key(key)
                .body(ByteStream::from_static(b"z"))
                .send()
                .await
        }
    };
    put("before".into())
        .await
        .expect("PUT with fresh credentials");
    world.fail_credentials(true);
    let expires = world.issued().last().expect("a set was issued").expires;
    let until = Instant::now()
        + expires
            .duration_since(SystemTime::now())
            .unwrap_or_default()
        + Duration::from_secs(1);
    // (succeeded, message, S3 calls so far) for each attempt
    let mut outcomes = Vec::new();
    let mut n = 0;
    while Instant::now() < until {
        let sent = SystemTime::now();
        let r = put(format!("during/{n}")).await;
        assert!(
            r.is_err() || sent < expires,
            "a PUT sent after the credentials expired succeeded"
        );
        n += 1;
        let calls = world.s3_calls().len();
        match r {
            Ok(_) => outcomes.push((true, String::new(), calls)),
            Err(e) => {
                let message = e.message().unwrap_or_default().to_string();
                assert_eq!(
                    (status(&e), e.code()),
                    (503, Some("ServiceUnavailable")),
                    "{e:?}"
                );
                assert!(message.contains("credentials"), "{message}");
                outcomes.push((false, message, calls));
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let first_failure = outcomes
        .iter()
        .position(|o| !o.0)
        .unwrap_or_else(|| panic!("no request failed after expiry: {outcomes:?}"));
    assert!(
        outcomes[first_failure..].iter().all(|o| !o.0),
        "a request succeeded after a failed refresh: {outcomes:?}"
    );
    let calls_at_failure = outcomes[first_failure].2;
    assert_eq!(
        world.s3_calls().len(),
        calls_at_failure,
        "AWS was called while the gateway had no valid credentials"
    );
    eprintln!(
        "{} PUTs succeeded, then {} got ServiceUnavailable: {}",
        first_failure,
        outcomes.len() - first_failure,
        outcomes[first_failure].1
    );
    let (_, body) = testkit::gateway::get(&format!("http://{}/credentials", gw.health_addr()))
        .await
        .expect("/credentials");
    let report: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(
        (&report["state"], &report["expired"]),
        (&serde_json::json!("failed"), &serde_json::json!(true)),
        "{report}"
    );

    // The endpoint answers again: the gateway recovers without a restart.
    world.fail_credentials(false);
    let back = Instant::now();
    let deadline = back + Duration::from_secs(30);
    loop {
        match put("after".into()).await {
            Ok(_) => break,
            Err(e) if Instant::now() < deadline => {
                assert_eq!(e.code(), Some("ServiceUnavailable"), "{e:?}");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => panic!("no recovery 30 s after the endpoint came back: {e:?}"),
        }
    }
    eprintln!(
        "recovered {:?} after the endpoint came back",
        back.elapsed()
    );
    let got = s3
        .get_object()
        .bucket(BUCKET)
        .key("after")
        .send()
        .await
        .expect("GET after recovery");
    assert_eq!(got.body.collect().await.expect("body").to_vec(), b"z");
    gw.shutdown().await;
}
