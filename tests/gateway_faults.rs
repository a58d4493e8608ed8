//! Backend faults, injected by the proxy between the gateway and moto: S3's 500 and 503
//! `SlowDown` reach the client with their status and code (the gateway does not retry; the
//! client does), a dropped backend connection becomes a retryable `ServiceUnavailable`, and
//! the gateway keeps serving afterwards.

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
    let admin = world.admin_s3();
    admin
        .create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("create");
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
