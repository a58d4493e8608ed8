//! Issue 23, the controls of the strict tests: what real clients send passes the gateway
//! and reaches AWS (the recording backend of `testkit::gateway_recorder` shows it), headers
//! that S3 does not model never do, and an aws-chunked upload's transfer encoding stays
//! between the client and the gateway: the object keeps the encoding the client meant.

use std::path::Path;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use epinio_irsa::arn::Partition;
use testkit::gateway::{epinio_client, ACCESS_KEY, BUCKET, SECRET_KEY};
use testkit::gateway_recorder::raw::{exchange, head, After};
use testkit::gateway_recorder::sign::{crc32_of, ChunkedPut, Chunking};
use testkit::gateway_recorder::world::StrictWorld;
use testkit::gateway_wire::{Answer, Wire};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_epinio-irsa"))
}

async fn start() -> StrictWorld {
    let policy = epinio_irsa::plan::s3_policy(Partition::Aws, BUCKET).to_string();
    StrictWorld::start(bin(), &policy, &[]).await
}

fn text(a: &Answer) -> String {
    String::from_utf8_lossy(&a.body).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_real_clients_send_reaches_aws_and_headers_s3_does_not_model_do_not() {
    let s = start().await;
    let body = b"epinio source tarball";
    let trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let crc = crc32_of([&body[..]]);
    let put = Wire::new("PUT", s.url(&format!("/{BUCKET}/ctl")))
        .body(body)
        .header("x-amz-meta-app", "epinio")
        .header("content-type", "application/x-tar")
        .header("content-md5", "HXY7dv8J4+1PIss6n1mrIg==")
        .header("x-amz-checksum-crc32", &crc)
        .header("expect", "100-continue")
        .header("traceparent", trace)
        .header("x-request-id", "req-1");
    let a = s.send(&put).await;
    assert_eq!(a.status, 200, "PutObject: {}", text(&a));
    let etag = a.headers.get("etag").and_then(|v| v.to_str().ok());
    let etag = etag.unwrap_or_default().to_string();
    let get = Wire::new("GET", s.url(&format!("/{BUCKET}/ctl")))
        .header("range", "bytes=0-5")
        .header("x-amz-checksum-mode", "ENABLED")
        .header("if-match", &etag)
        .header("traceparent", trace)
        .header("x-request-id", "req-2");
    let a = s.send(&get).await;
    assert_eq!(
        (a.status, a.body.as_ref()),
        (206, &b"epinio"[..]),
        "GetObject: {}",
        text(&a)
    );

    let seen = s.recorder.requests();
    let lines: Vec<String> = seen.iter().map(|r| r.summary()).collect();
    assert_eq!(seen.len(), 2, "{lines:#?}");
    let (p, g) = (&seen[0], &seen[1]);
    assert!(
        p.body_complete && p.body_bytes == body.len() as u64,
        "{lines:#?}"
    );
    let forwarded = [
        (p, "x-amz-meta-app", "epinio"),
        (p, "content-type", "application/x-tar"),
        (p, "content-md5", "HXY7dv8J4+1PIss6n1mrIg=="),
        (p, "x-amz-checksum-crc32", crc.as_str()),
        (g, "range", "bytes=0-5"),
        (g, "if-match", etag.as_str()),
    ];
    for (r, name, value) in forwarded {
        assert_eq!(r.header(name), Some(value), "{name}: {lines:#?}");
    }
    for r in &seen {
        for name in ["traceparent", "x-request-id"] {
            let found = r.header(name);
            assert!(found.is_none(), "{name} reached AWS: {}", r.summary());
        }
    }
    let head = s.world.admin_s3().head_object().bucket(BUCKET).key("ctl");
    let head = head.send().await.expect("stored");
    let app = head.metadata().and_then(|m| m.get("app"));
    assert_eq!(app.map(String::as_str), Some("epinio"));
    assert_eq!(head.content_type(), Some("application/x-tar"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_of_the_allowlist_passes_as_the_sdk_sends_it() {
    let s = start().await;
    epinio_sdk_flow(&s).await;
}

/// Sends an SDK operation with a `traceparent` header added.
macro_rules! traced {
    ($op:expr) => {
        $op.customize()
            .mutate_request(|r| {
                r.headers_mut().insert("traceparent", "00-1-2-01");
            })
            .send()
            .await
    };
}

/// Every operation of the allowlist as aws-sdk-s3 (configured as Epinio's Go SDK) sends it,
/// each with a `traceparent` added: all succeed, all reach AWS, none with the `traceparent`.
async fn epinio_sdk_flow(s: &StrictWorld) {
    let c = epinio_client(&s.gw.s3_url(), ACCESS_KEY, SECRET_KEY, 1);
    traced!(c.head_bucket().bucket(BUCKET)).expect("HeadBucket");
    traced!(c.create_bucket().bucket(BUCKET)).expect("CreateBucket of Epinio's own bucket");
    traced!(c.get_bucket_location().bucket(BUCKET)).expect("GetBucketLocation");
    let data = ByteStream::from_static(b"pushed by epinio");
    let put = c.put_object().bucket(BUCKET).key("apps/a.tar");
    traced!(put.metadata("app", "a").body(data)).expect("PutObject");
    traced!(c.head_object().bucket(BUCKET).key("apps/a.tar")).expect("HeadObject");
    let get = c.get_object().bucket(BUCKET).key("apps/a.tar");
    let got = traced!(get.range("bytes=0-5")).expect("GetObject");
    assert_eq!(got.body.collect().await.expect("body").to_vec(), b"pushed");
    traced!(c.list_objects_v2().bucket(BUCKET).prefix("apps/")).expect("ListObjectsV2");
    multipart_uploads(&c).await;
    traced!(c.delete_object().bucket(BUCKET).key("apps/a.tar")).expect("DeleteObject");
    assert_eq!(s.stored("apps/m").await.as_deref(), Some(&b"one part"[..]));

    let seen = s.recorder.requests();
    let lines: Vec<String> = seen.iter().map(|r| r.summary()).collect();
    assert_eq!(seen.len(), 13, "one AWS request per SDK call: {lines:#?}");
    let traced = seen.iter().filter(|r| r.header("traceparent").is_some());
    assert_eq!(traced.count(), 0, "{lines:#?}");
}

/// One multipart upload completed, one aborted.
async fn multipart_uploads(c: &aws_sdk_s3::Client) {
    let up = traced!(c.create_multipart_upload().bucket(BUCKET).key("apps/m"))
        .expect("CreateMultipartUpload");
    let id = up.upload_id().expect("an upload id").to_string();
    let part = c.upload_part().bucket(BUCKET).key("apps/m").upload_id(&id);
    let part = part
        .part_number(1)
        .body(ByteStream::from_static(b"one part"));
    let part = traced!(part).expect("UploadPart");
    let etag = part.e_tag().map(str::to_string);
    let done = aws_sdk_s3::types::CompletedPart::builder()
        .part_number(1)
        .set_e_tag(etag);
    let done = aws_sdk_s3::types::CompletedMultipartUpload::builder().parts(done.build());
    let complete = c.complete_multipart_upload().bucket(BUCKET).key("apps/m");
    traced!(complete.upload_id(&id).multipart_upload(done.build()))
        .expect("CompleteMultipartUpload");
    let up = traced!(c.create_multipart_upload().bucket(BUCKET).key("apps/n"))
        .expect("CreateMultipartUpload");
    let id = up.upload_id().expect("an upload id").to_string();
    let abort = c.abort_multipart_upload().bucket(BUCKET).key("apps/n");
    traced!(abort.upload_id(id)).expect("AbortMultipartUpload");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_chunked_stays_between_client_and_gateway_and_the_object_keeps_its_encoding() {
    let s = start().await;
    let chunk = |seed| vec![testkit::gateway_load::pool(64 * 1024, seed)];
    for (key, sent, stored) in [
        ("gz", Some("aws-chunked,gzip"), Some("gzip")),
        ("plain", None, None),
    ] {
        s.recorder.clear();
        let url = s.url(&format!("/{BUCKET}/{key}"));
        let mut put = ChunkedPut::new(url, vec![chunk(1), chunk(2), chunk(3)], Chunking::Signed);
        if let Some(e) = sent {
            put.headers.push(("content-encoding".into(), e.into()));
        }
        let data: Vec<u8> = put.chunks.concat().concat();
        let (path, headers, body) = put.build(ACCESS_KEY, SECRET_KEY);
        let request = head("PUT", &path, &headers);
        let within = Duration::from_secs(60);
        let a = exchange(s.gw.s3, &request, body, After::Wait, within).await;
        assert_eq!(
            a.status,
            200,
            "{key}: 3 signed chunks of 64 KiB: {}",
            text(&a)
        );
        assert_eq!(
            s.stored(key).await.as_deref(),
            Some(&data[..]),
            "{key}: stored intact"
        );
        let object = s
            .world
            .admin_s3()
            .head_object()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await;
        let encoding = object
            .expect("HeadObject")
            .content_encoding()
            .map(str::to_string);
        assert_eq!(
            encoding.as_deref(),
            stored,
            "{key}: the stored Content-Encoding"
        );
        let seen = s.recorder.requests();
        let lines: Vec<String> = seen.iter().map(|r| r.summary()).collect();
        assert_eq!(seen.len(), 1, "{lines:#?}");
        let forwarded = seen[0].header("content-encoding");
        assert_eq!(
            forwarded, stored,
            "{key}: Content-Encoding sent to AWS: {lines:#?}"
        );
        assert_eq!(
            seen[0].body_bytes,
            data.len() as u64,
            "{key}: the decoded body: {lines:#?}"
        );
        assert!(
            seen[0].header("x-amz-decoded-content-length").is_none(),
            "{lines:#?}"
        );
    }
}
