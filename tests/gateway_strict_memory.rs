//! Issue 23, bodies and connections, through the real binary (debug build) in front of a
//! recording backend (`testkit::gateway_recorder`): the gateway's memory stays bounded
//! whatever a client sends (a huge aws-chunked chunk, a thousand unfinished headers), the
//! declared decoded length is the length stored, a chunk without its signature is a
//! signature error, and connections beyond the limit wait instead of failing. Memory is the
//! process's own (`/proc/<pid>/status`); each figure is printed on one line for BENCHMARKS.md.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use epinio_irsa::arn::Partition;
use testkit::gateway::{epinio_client, ACCESS_KEY, BUCKET, SECRET_KEY};
use testkit::gateway_load::pool;
use testkit::gateway_recorder::raw::{
    ensure_open_files, exchange, head, status_kib, After, Answer, Rss,
};
use testkit::gateway_recorder::sign::{ChunkedPut, Chunking};
use testkit::gateway_recorder::world::StrictWorld;
use testkit::gateway_wire::Wire;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const MIB: usize = 1024 * 1024;
const HEADER_TIMEOUT: (&str, &str) = ("EPINIO_IRSA_GATEWAY_HEADER_READ_TIMEOUT_SECONDS", "300");

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_epinio-irsa"))
}

async fn start(extra: &[(&str, &str)]) -> StrictWorld {
    let policy = epinio_irsa::plan::s3_policy(Partition::Aws, BUCKET).to_string();
    StrictWorld::start(bin(), &policy, extra).await
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Sends `put` over a raw connection (the answer is read while the body is still going).
async fn put_raw(s: &StrictWorld, put: &ChunkedPut) -> Answer {
    let (path, headers, body) = put.build(ACCESS_KEY, SECRET_KEY);
    let request = head("PUT", &path, &headers);
    exchange(
        s.gw.s3,
        &request,
        body,
        After::Wait,
        Duration::from_secs(300),
    )
    .await
}

fn describe(a: &Answer) -> String {
    format!(
        "{} {:?}: {}",
        a.status,
        a.code(),
        String::from_utf8_lossy(&a.body)
    )
}

/// Panics unless `key` is not stored and no request for it reached AWS whole.
async fn assert_not_stored(s: &StrictWorld, key: &str, case: &str) {
    assert_eq!(
        s.stored(key).await.map(|b| b.len()),
        None,
        "{case}: {key} was stored"
    );
    let whole: Vec<String> = s
        .recorder
        .requests()
        .iter()
        .filter(|r| r.path.ends_with(&format!("/{key}")) && r.body_complete && r.method == "PUT")
        .map(|r| r.summary())
        .collect();
    assert!(whole.is_empty(), "{case}: reached AWS whole: {whole:?}");
}

/// Aborts the test with every finding at once.
fn assert_none(wrong: &[String]) {
    assert!(
        wrong.is_empty(),
        "{} findings:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_signed_chunks_and_a_64_mib_unsigned_chunk_stream_in_bounded_memory() {
    let s = start(&[]).await;
    let url = |key: &str| s.url(&format!("/{BUCKET}/{key}"));
    // 64 KiB signed chunks (minio-go's size).
    let small: Vec<Vec<Bytes>> = (0..16).map(|i| vec![pool(64 * 1024, i)]).collect();
    let put = ChunkedPut::new(url("small"), small, Chunking::Signed);
    let a = put_raw(&s, &put).await;
    assert_eq!(
        a.status,
        200,
        "16 signed chunks of 64 KiB: {}",
        describe(&a)
    );
    let want = put.chunks.concat().concat();
    assert!(
        s.stored("small").await == Some(want),
        "16 x 64 KiB stored intact"
    );
    // One 64 MiB unsigned chunk with a trailing checksum (aws-sdk-go-v2, length known).
    let piece = pool(MIB, 7);
    let chunk = vec![piece.clone(); 64];
    let put = ChunkedPut::new(url("unsigned"), vec![chunk], Chunking::UnsignedTrailer);
    let rss = Rss::watch(s.gw.pid);
    let a = put_raw(&s, &put).await;
    let growth = rss.growth_kib();
    eprintln!(
        "gateway (debug build), aws-chunked: one 64 MiB unsigned chunk streamed with RSS +{:.1} MiB (from {:.1} MiB)",
        mib(growth),
        mib(rss.before_kib)
    );
    assert_eq!(a.status, 200, "one unsigned 64 MiB chunk: {}", describe(&a));
    let stored = s.stored("unsigned").await.expect("stored");
    let intact = stored.len() == 64 * MIB && stored.chunks(MIB).all(|c| c == piece);
    assert!(intact, "64 MiB stored intact");
    let seen = s.recorder.requests();
    let last = seen.last().expect("the upload reached AWS");
    let whole = last.body_complete && last.body_bytes == 64 * MIB as u64;
    assert!(whole, "{}", last.summary());
    assert!(
        growth < 16 * 1024,
        "a 64 MiB unsigned chunk: RSS grew {growth} KiB"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_chunk_over_1_mib_is_refused_at_its_header_in_bounded_memory() {
    let s = start(&[]).await;
    let url = |key: &str| s.url(&format!("/{BUCKET}/{key}"));
    let mut wrong = Vec::new();
    // 1 MiB + 1 byte, correctly signed.
    let put = ChunkedPut::new(url("over"), vec![vec![pool(MIB + 1, 8)]], Chunking::Signed);
    let a = put_raw(&s, &put).await;
    if (a.status, a.code().as_deref()) != (400, Some("EntityTooLarge")) {
        wrong.push(format!("a 1 MiB + 1 chunk: {}", describe(&a)));
    }
    // 256 MiB in one chunk (its signature is not worth computing: it must not be read).
    let chunk = vec![pool(MIB, 7); 256];
    let put = ChunkedPut::new(url("huge"), vec![chunk], Chunking::BogusSignatures);
    let rss = Rss::watch(s.gw.pid);
    let a = put_raw(&s, &put).await;
    let growth = rss.growth_kib();
    eprintln!(
        "gateway (debug build), aws-chunked: one 256 MiB signed chunk refused with RSS +{:.1} MiB (from {:.1} MiB)",
        mib(growth),
        mib(rss.before_kib)
    );
    if (a.status, a.code().as_deref()) != (400, Some("EntityTooLarge")) {
        wrong.push(format!("a 256 MiB chunk: {}", describe(&a)));
    }
    if growth >= 16 * 1024 {
        wrong.push(format!("a 256 MiB chunk: RSS grew {growth} KiB"));
    }
    assert_none(&wrong);
    assert_not_stored(&s, "over", "a 1 MiB + 1 chunk").await;
    assert_not_stored(&s, "huge", "a 256 MiB chunk").await;
    // The control on the same gateway: a chunk of exactly 1 MiB passes.
    let put = ChunkedPut::new(url("bound"), vec![vec![pool(MIB, 9)]], Chunking::Signed);
    let a = put_raw(&s, &put).await;
    assert_eq!(a.status, 200, "a 1 MiB chunk: {}", describe(&a));
    assert_eq!(s.stored("bound").await.map(|b| b.len()), Some(MIB));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_declared_decoded_length_is_the_length_stored() {
    let s = start(&[]).await;
    let url = |key: &str| s.url(&format!("/{BUCKET}/{key}"));
    let mut wrong = Vec::new();
    for (key, sent, declared) in [("long", 150, 10), ("short", 10, 150)] {
        let mut put = ChunkedPut::new(url(key), vec![vec![pool(sent, 1)]], Chunking::Signed);
        put.decoded_length = declared;
        let a = put_raw(&s, &put).await;
        if (a.status, a.code().as_deref()) != (400, Some("IncompleteBody")) {
            wrong.push(format!(
                "{key}: {sent} B sent, {declared} declared: {}",
                describe(&a)
            ));
        }
        if let Some(b) = s.stored(key).await {
            wrong.push(format!(
                "{key}: {sent} B sent, {declared} declared: stored {} B",
                b.len()
            ));
        }
    }
    // A plain upload declaring 100 bytes that sends 50 and shuts its write side.
    let wire = Wire::new("PUT", url("cut"))
        .body(&[b'c'; 100])
        .header("content-length", "100");
    let request = head(
        "PUT",
        &format!("/{BUCKET}/cut"),
        &wire.signed(ACCESS_KEY, SECRET_KEY),
    );
    let half = vec![Bytes::from_static(&[b'c'; 50])];
    let a = exchange(
        s.gw.s3,
        &request,
        half,
        After::HalfClose,
        Duration::from_secs(30),
    )
    .await;
    if (a.status, a.code().as_deref()) != (400, Some("IncompleteBody")) {
        wrong.push(format!("cut: 50 of 100 B then shutdown: {}", describe(&a)));
    }
    if s.stored("cut").await.is_some() {
        wrong.push("cut: stored".into());
    }
    let whole: Vec<String> = s
        .recorder
        .requests()
        .iter()
        .filter(|r| r.body_complete)
        .map(|r| r.summary())
        .collect();
    if !whole.is_empty() {
        wrong.push(format!("reached AWS whole: {whole:?}"));
    }
    assert_none(&wrong);
    // Controls: the same uploads, honest.
    let put = ChunkedPut::new(url("honest"), vec![vec![pool(150, 1)]], Chunking::Signed);
    let a = put_raw(&s, &put).await;
    assert_eq!(a.status, 200, "{}", describe(&a));
    assert_eq!(s.stored("honest").await.map(|b| b.len()), Some(150));
    let a = s
        .send(&Wire::new("PUT", url("whole")).body(&[b'c'; 100]))
        .await;
    assert_eq!(a.status, 200, "{}", describe(&a));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_without_its_signature_is_a_signature_error_before_aws() {
    let s = start(&[]).await;
    let url = s.url(&format!("/{BUCKET}/unsigned-chunk"));
    let chunks = || vec![vec![pool(64 * 1024, 1)], vec![pool(64 * 1024, 2)]];
    let put = ChunkedPut::new(&url, chunks(), Chunking::MissingSignature);
    let a = put_raw(&s, &put).await;
    let finding = s.refusal(
        "a chunk without ;chunk-signature=",
        &a,
        (403, "SignatureDoesNotMatch"),
        "",
    );
    assert!(finding.is_none(), "{finding:?}");
    assert_eq!(s.stored("unsigned-chunk").await, None);
    // Control: the same chunks, signed.
    let a = put_raw(&s, &ChunkedPut::new(&url, chunks(), Chunking::Signed)).await;
    assert_eq!(a.status, 200, "{}", describe(&a));
    assert_eq!(
        s.stored("unsigned-chunk").await.map(|b| b.len()),
        Some(128 * 1024)
    );
}

/// A connection that has sent about 15 KiB of a request's headers but not their end.
async fn hold(s: &StrictWorld) -> TcpStream {
    let mut text = format!("GET /{BUCKET}/blob HTTP/1.1\r\nHost: gateway\r\n");
    let mut i = 0;
    while text.len() < 15 * 1024 {
        text.push_str(&format!("x-amz-meta-pad{i}: {}\r\n", "p".repeat(100)));
        i += 1;
    }
    let mut tcp = TcpStream::connect(s.gw.s3).await.expect("connect");
    tcp.write_all(text.as_bytes())
        .await
        .expect("write the unfinished headers");
    tcp
}

async fn head_bucket(s: &StrictWorld) -> Result<(), String> {
    let c = epinio_client(&s.gw.s3_url(), ACCESS_KEY, SECRET_KEY, 1);
    let sent = tokio::time::timeout(
        Duration::from_secs(20),
        c.head_bucket().bucket(BUCKET).send(),
    );
    match sent.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("{e:?}")),
        Err(_) => Err("no answer in 20 s".into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_unfinished_headers_keep_the_gateway_small_and_serving() {
    // 1000 sockets on each side, and the rest: before the gateway starts (it inherits it).
    ensure_open_files(2500);
    let s = start(&[HEADER_TIMEOUT]).await;
    let idle = status_kib(s.gw.pid, "VmRSS").expect("VmRSS");
    let rss = Rss::watch(s.gw.pid);
    let mut held = Vec::new();
    for _ in 0..1000 {
        held.push(hold(&s).await);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let during = head_bucket(&s).await;
    let peak = rss.peak_kib();
    drop(held);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = head_bucket(&s).await;
    let closed = status_kib(s.gw.pid, "VmRSS").expect("VmRSS");
    eprintln!(
        "gateway (debug build): 1000 clients holding 15 KiB unfinished headers: RSS {:.1} MiB idle, peak {:.1} MiB while held (+{:.1} MiB, {:.1} KiB per connection), {:.1} MiB after they closed",
        mib(idle),
        mib(peak),
        mib(peak.saturating_sub(idle)),
        peak.saturating_sub(idle) as f64 / 1000.0,
        mib(closed)
    );
    during.expect("HeadBucket while 1000 connections are held");
    after.expect("HeadBucket after they closed");
    assert!(
        peak < 64 * 1024,
        "the gateway peaked at {peak} KiB (idle {idle} KiB) with 1000 unfinished headers"
    );
    assert_eq!(
        s.recorder.requests().len(),
        2,
        "the two HeadBuckets reached AWS"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_connection_limit_a_request_waits_for_a_free_connection() {
    let s = start(&[("EPINIO_IRSA_GATEWAY_MAX_CONNECTIONS", "4"), HEADER_TIMEOUT]).await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(hold(&s).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let fifth = tokio::spawn({
        let c = epinio_client(&s.gw.s3_url(), ACCESS_KEY, SECRET_KEY, 1);
        async move {
            c.head_bucket()
                .bucket(BUCKET)
                .send()
                .await
                .map_err(|e| format!("{e:?}"))
        }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !fifth.is_finished(),
        "a 5th connection was served while 4 were held: {:?}",
        fifth.await
    );
    assert!(
        s.recorder.requests().is_empty(),
        "the 5th request reached AWS"
    );
    drop(held.pop());
    let served = tokio::time::timeout(Duration::from_secs(10), fifth).await;
    let served = served
        .expect("served within 10 s of a free connection")
        .expect("task");
    served.expect("HeadBucket once a connection is free");
    assert_eq!(s.recorder.requests().len(), 1);
}
