//! The gateway over TLS, and the aws-chunked bodies with trailing checksums that clients send
//! there.
//!
//! Backend: moto with IAM enforcement, the gateway holding the role's credentials (as in
//! `gateway_forward.rs`). The gateway serves HTTPS with a server certificate signed by a CA
//! made in the test (`rcgen`); the client is aws-sdk-s3 configured as Epinio 1.14 configures
//! aws-sdk-go-v2 (path style, static keys, `us-east-1`, the SDK's default checksum
//! behaviour), whose HTTPS client trusts only that CA. Over HTTPS the SDK sends a streamed
//! PutObject body (here: from a file) as `aws-chunked` with `x-amz-content-sha256:
//! STREAMING-UNSIGNED-PAYLOAD-TRAILER` and a CRC32 in the trailer, and an in-memory body with
//! its signed SHA-256 and the CRC32 in a header; an interceptor on the client records what it
//! really sent.
//!
//! What it proves:
//! - a client that trusts only the CA gets through the handshake (so the gateway serves the
//!   configured chain), and PutObject, HeadObject, GetObject and a ranged GetObject of 0 B,
//!   1 B and 8 MiB + 1, each sent both ways, round-trip byte-exact (SHA-256), with what moto stores read back by an
//!   administrator, not through the gateway: the aws-chunked framing never reaches the object;
//! - the trailing checksum is checked by the gateway against the bytes it forwarded: an
//!   aws-chunked upload whose trailer does not match its data (sent by hand, over plain HTTP,
//!   where s3s decodes aws-chunked the same way) gets `BadDigest` and leaves no object.

use std::sync::{Arc, Mutex};

use aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_s3::error::BoxError;
use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};
use epinio_irsa::arn::Partition;
use epinio_irsa::gateway::{self, Gateway};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use sha2::{Digest, Sha256};
use testkit::gateway::{
    epinio_config, wait_for_credentials, GatewayWorld, ACCESS_KEY, BUCKET, SECRET_KEY,
};
use testkit::gateway_wire::Wire;

const MIB: usize = 1024 * 1024;

/// A CA, and a server certificate it signed for 127.0.0.1 and localhost: (CA PEM, server
/// chain PEM, server key PEM).
fn certificates() -> (String, String, String) {
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "epinio-irsa test CA");
    let ca_key = KeyPair::generate().expect("CA key");
    let ca = CertifiedIssuer::self_signed(ca, ca_key).expect("CA certificate");
    let server_key = KeyPair::generate().expect("server key");
    let server = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .expect("server parameters")
        .signed_by(&server_key, &ca)
        .expect("server certificate");
    (
        ca.pem(),
        format!("{}{}", server.pem(), ca.pem()),
        server_key.serialize_pem(),
    )
}

/// What the client put on the wire for each request: method, `x-amz-content-sha256`,
/// `x-amz-trailer`, `content-encoding`.
#[derive(Debug, Clone, Default)]
struct Seen(Arc<Mutex<Vec<[String; 4]>>>);

impl Intercept for Seen {
    fn name(&self) -> &'static str {
        "record what is sent"
    }

    fn read_before_transmit(
        &self,
        ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let req = ctx.request();
        let h = |n: &str| req.headers().get(n).unwrap_or("-").to_string();
        self.0.lock().expect("lock").push([
            req.method().to_string(),
            h("x-amz-content-sha256"),
            h("x-amz-trailer"),
            h("content-encoding"),
        ]);
        Ok(())
    }
}

async fn world() -> GatewayWorld {
    let world =
        GatewayWorld::start(&epinio_irsa::plan::s3_policy(Partition::Aws, BUCKET).to_string())
            .await;
    world.create_bucket().await;
    world
}

fn sha256(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn epinio_client_over_https_round_trips_aws_chunked_uploads_byte_exact() {
    let world = world().await;
    let (ca, chain, key) = certificates();
    let cert_file = world.dir().join("tls.crt");
    let key_file = world.dir().join("tls.key");
    std::fs::write(&cert_file, chain).expect("write tls.crt");
    std::fs::write(&key_file, key).expect("write tls.key");
    let mut env = world.gateway_env();
    env.push((
        "EPINIO_IRSA_GATEWAY_TLS_CERT_FILE".into(),
        cert_file.display().to_string(),
    ));
    env.push((
        "EPINIO_IRSA_GATEWAY_TLS_KEY_FILE".into(),
        key_file.display().to_string(),
    ));
    let gw: Gateway = gateway::start(env).await.expect("the gateway starts");
    wait_for_credentials(gw.health_addr()).await;

    let https = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(
            TlsContext::builder()
                .with_trust_store(
                    TrustStore::empty()
                        .with_native_roots(false)
                        .with_pem_certificate(ca.into_bytes()),
                )
                .build()
                .expect("TLS context"),
        )
        .build_https();
    let seen = Seen::default();
    let endpoint = format!("https://127.0.0.1:{}", gw.s3_addr().port());
    let s3 = aws_sdk_s3::Client::from_conf(
        epinio_config(&endpoint, ACCESS_KEY, SECRET_KEY, 1)
            .http_client(https)
            .interceptor(seen.clone())
            .build(),
    );

    // Each size twice: from memory (the SDK sends a signed SHA-256 of the payload and the
    // CRC32 in a header) and streamed from a file (aws-chunked with the CRC32 in a trailer).
    let sizes = [0, 1, 8 * MIB + 1];
    let uploads = sizes.iter().flat_map(|&s| [(s, false), (s, true)]);
    for (i, (size, streamed)) in uploads.enumerate() {
        let key = format!(
            "tls/blob-{size}-{}",
            if streamed { "file" } else { "memory" }
        );
        let data = content(size, 11 + i as u64);
        let body = if streamed {
            let file = world.dir().join(format!("upload-{i}"));
            std::fs::write(&file, &data).expect("write the upload");
            ByteStream::from_path(&file).await.expect("a file body")
        } else {
            ByteStream::from(data.clone())
        };
        s3.put_object()
            .bucket(BUCKET)
            .key(&key)
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("PutObject {key} over TLS: {e:?}"));
        let head = s3.head_object().bucket(BUCKET).key(&key).send().await;
        let head = head.unwrap_or_else(|e| panic!("HeadObject {size} B: {e:?}"));
        assert_eq!(head.content_length(), Some(size as i64), "{key}");
        let got = s3.get_object().bucket(BUCKET).key(&key).send().await;
        let got = got.unwrap_or_else(|e| panic!("GetObject {size} B: {e:?}"));
        let got = got.body.collect().await.expect("body").to_vec();
        assert_eq!(sha256(&got), sha256(&data), "GetObject {size} B over TLS");
        // What moto stores, read past the gateway: the decoded bytes, no chunk framing.
        let stored = world
            .admin_s3()
            .get_object()
            .bucket(BUCKET)
            .key(&key)
            .send()
            .await
            .expect("the object is in moto");
        let stored = stored.body.collect().await.expect("stored body").to_vec();
        assert_eq!(sha256(&stored), sha256(&data), "moto holds other bytes");
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
            let part = part.body.collect().await.expect("range body").to_vec();
            assert_eq!(sha256(&part), sha256(&data[from..=to]), "range of {size} B");
        }
    }

    let puts: Vec<_> = seen
        .0
        .lock()
        .expect("lock")
        .iter()
        .filter(|s| s[0] == "PUT")
        .cloned()
        .collect();
    eprintln!("PUTs as sent: {puts:?}");
    assert_eq!(puts.len(), 2 * sizes.len());
    for put in puts.iter().skip(1).step_by(2) {
        assert_eq!(
            put[1], "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
            "the SDK did not stream aws-chunked over TLS: {put:?}"
        );
        assert_eq!(put[2], "x-amz-checksum-crc32", "no trailer: {put:?}");
        assert!(put[3].contains("aws-chunked"), "{put:?}");
    }
    gw.shutdown().await;
}

/// One aws-chunked body: the data in chunks of `chunk` bytes, the final empty chunk, and the
/// trailer `name:value`.
fn aws_chunked(data: &[u8], chunk: usize, trailer: (&str, &str)) -> Vec<u8> {
    let mut out = Vec::new();
    for part in data.chunks(chunk) {
        out.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        out.extend_from_slice(part);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n");
    out.extend_from_slice(format!("{}:{}\r\n\r\n", trailer.0, trailer.1).as_bytes());
    out
}

fn crc32_b64(data: &[u8]) -> String {
    use s3s::crypto::Checksum as _;
    let mut h = s3s::crypto::Crc32::new();
    h.update(data);
    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, h.finalize())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trailing_checksum_that_does_not_match_the_data_is_refused_and_nothing_is_stored() {
    let world = world().await;
    let gw = gateway::start(world.gateway_env())
        .await
        .expect("the gateway starts");
    wait_for_credentials(gw.health_addr()).await;
    let full = content(200_000, 5);
    let bad = crc32_b64(b"something else");
    // 200 kB in four chunks, and an empty body, whose trailer is checked before S3 is called.
    for (key, data, checksum, want) in [
        ("good", &full[..], crc32_b64(&full), 200),
        ("bad", &full[..], bad.clone(), 400),
        ("bad-empty", &[][..], bad.clone(), 400),
        ("good-empty", &[][..], crc32_b64(&[]), 200),
    ] {
        let body = aws_chunked(data, 65_536, ("x-amz-checksum-crc32", &checksum));
        let url = format!("http://{}/{BUCKET}/trailer/{key}", gw.s3_addr());
        let answer = Wire::new("PUT", url)
            .header("content-encoding", "aws-chunked")
            .header("x-amz-decoded-content-length", &data.len().to_string())
            .header("x-amz-trailer", "x-amz-checksum-crc32")
            .header("x-amz-sdk-checksum-algorithm", "CRC32")
            .raw_body(body, "STREAMING-UNSIGNED-PAYLOAD-TRAILER")
            .send_signed(ACCESS_KEY, SECRET_KEY)
            .await;
        assert_eq!(
            answer.status,
            want,
            "{key}: {} {}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        );
        let stored = world
            .admin_s3()
            .get_object()
            .bucket(BUCKET)
            .key(format!("trailer/{key}"))
            .send()
            .await;
        if want == 200 {
            let stored = stored.expect("the good upload is stored");
            let stored = stored.body.collect().await.expect("body").to_vec();
            assert_eq!(sha256(&stored), sha256(data), "moto holds other bytes");
        } else {
            assert_eq!(answer.code().as_deref(), Some("BadDigest"), "{answer:?}");
            assert!(stored.is_err(), "a mismatched upload left an object");
        }
    }
    gw.shutdown().await;
}
