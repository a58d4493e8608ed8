//! Issue 23, through the real binary (`epinio-irsa gateway`) in front of a backend that
//! records exactly what it received (`testkit::gateway_recorder`): only what Epinio sends
//! reaches AWS, signed by SigV4 alone. Each refusal is checked for its S3 status and code,
//! for naming what was refused, and for 0 requests at the backend; each test has controls
//! that must pass, so a gateway that refused everything would fail it.
//!
//! Here: the allowlist of query parameters and headers, and SigV4 alone. Beside it:
//! `gateway_strict_clients.rs` (what real clients send still passes), `..._memory.rs` (memory,
//! connections, body framing), `..._identity.rs` (the log, the credential chain).

use std::path::Path;
use std::time::{Duration, SystemTime};

use epinio_irsa::arn::Partition;
use testkit::gateway::{ACCESS_KEY, BUCKET, SECRET_KEY};
use testkit::gateway_recorder::sign::{headers_for, presign, sigv2};
use testkit::gateway_recorder::world::{StrictWorld, BLOB, ORIGINAL};
use testkit::gateway_wire::{send, Answer, Wire};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_epinio-irsa"))
}

fn policy() -> String {
    epinio_irsa::plan::s3_policy(Partition::Aws, BUCKET).to_string()
}

async fn start(extra: &[(&str, &str)]) -> StrictWorld {
    StrictWorld::start(bin(), &policy(), extra).await
}

fn text(a: &Answer) -> String {
    String::from_utf8_lossy(&a.body).into_owned()
}

/// Panics with every finding at once, so one run shows all that is wrong.
fn assert_none(wrong: &[String]) {
    assert!(
        wrong.is_empty(),
        "{} findings:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sub_resources_and_query_parameters_outside_the_allowlist_are_refused_before_aws() {
    let s = start(&[]).await;
    let mut wrong = Vec::new();
    // Sub-resources s3s does not model: they ran as PutObject (an empty body over the key)
    // or as CreateBucket.
    for query in ["renameObject", "encryption", "fooBar"] {
        let path = format!("/{BUCKET}/{BLOB}?{query}");
        let a = s.send(&Wire::new("PUT", s.url(&path))).await;
        wrong.extend(s.refusal(&format!("PUT {path}"), &a, (501, "NotImplemented"), ""));
    }
    for query in ["metadataTable", "metadataConfiguration", "abac"] {
        let path = format!("/{BUCKET}?{query}");
        let a = s.send(&Wire::new("PUT", s.url(&path))).await;
        wrong.extend(s.refusal(&format!("PUT {path}"), &a, (501, "NotImplemented"), ""));
    }
    // Parameters with a value that the operation does not allow.
    for (method, query, name) in [
        ("GET", "versionId=abc", "versionId"),
        ("DELETE", "versionId=abc", "versionId"),
        ("GET", "response-content-type=x", "response-content-type"),
    ] {
        let path = format!("/{BUCKET}/{BLOB}?{query}");
        let a = s.send(&Wire::new(method, s.url(&path))).await;
        wrong.extend(s.refusal(&format!("{method} {path}"), &a, (403, "AccessDenied"), name));
    }
    if s.stored(BLOB).await.as_deref() != Some(ORIGINAL) {
        wrong.push(format!(
            "{BUCKET}/{BLOB} was changed: {:?}",
            s.stored(BLOB).await
        ));
    }
    assert_none(&wrong);

    // Controls: `x-id` and the query of ListObjectsV2 pass, and reach AWS.
    let a = s
        .send(&Wire::new(
            "GET",
            s.url(&format!("/{BUCKET}/{BLOB}?x-id=GetObject")),
        ))
        .await;
    assert_eq!((a.status, a.body.as_ref()), (200, ORIGINAL), "{}", text(&a));
    let list = format!("/{BUCKET}?list-type=2&prefix=bl&max-keys=5");
    let a = s.send(&Wire::new("GET", s.url(&list))).await;
    assert_eq!(a.status, 200, "{}", text(&a));
    assert!(text(&a).contains("<Key>blob</Key>"), "{}", text(&a));
    let seen = s.recorder.requests();
    let lines: Vec<String> = seen.iter().map(|r| r.summary()).collect();
    assert_eq!(seen.len(), 2, "{lines:#?}");
    assert_eq!(
        (seen[0].method.as_str(), seen[0].path.as_str()),
        ("GET", "/epinio-sources/blob")
    );
    let query = seen[1].query.clone().unwrap_or_default();
    assert!(
        query.contains("list-type=2") && query.contains("prefix=bl"),
        "{lines:#?}"
    );
}

/// The SSE-C headers, with a customer key of 32 bytes and its MD5.
const SSE_C: &str = "x-amz-server-side-encryption-customer-algorithm: AES256
x-amz-server-side-encryption-customer-key: ZXBpbmlvLXNzZWMta2V5LTAxMjM0NTY3ODlhYmNkZWY=
x-amz-server-side-encryption-customer-key-md5: bhLjmIAnrTC9V3GTaw3Wcw==";

const KMS: &str = "x-amz-server-side-encryption: aws:kms
x-amz-server-side-encryption-aws-kms-key-id: arn:aws:kms:us-east-1:999999999999:key/1234abcd-12ab-34cd-56ef-1234567890ab";

/// Refused headers: the request (`PUT` of a new object, `CreateBucket`, `DeleteObject` or
/// `GetObject` of the blob), what the message must name, the headers (`name: value` lines).
const REFUSED: &[(&str, &str, &str)] = &[
    (
        "PutObject",
        "x-amz-storage-class",
        "x-amz-storage-class: GLACIER",
    ),
    ("PutObject", "x-amz-server-side-encryption-customer", SSE_C),
    ("PutObject", "x-amz-server-side-encryption", KMS),
    (
        "PutObject",
        "x-amz-website-redirect-location",
        "x-amz-website-redirect-location: /x",
    ),
    ("PutObject", "x-amz-tagging", "x-amz-tagging: owner=mallory"),
    (
        "PutObject",
        "x-amz-object-lock",
        "x-amz-object-lock-mode: COMPLIANCE
x-amz-object-lock-retain-until-date: 2099-01-01T00:00:00Z",
    ),
    (
        "PutObject",
        "x-amz-object-lock-legal-hold",
        "x-amz-object-lock-legal-hold: ON",
    ),
    ("PutObject", "x-amz-acl", "x-amz-acl: public-read"),
    ("PutObject", "range", "range: bytes=0-0"),
    (
        "CreateBucket",
        "x-amz-bucket-object-lock-enabled",
        "x-amz-bucket-object-lock-enabled: true",
    ),
    (
        "CreateBucket",
        "x-amz-object-ownership",
        "x-amz-object-ownership: BucketOwnerPreferred",
    ),
    ("CreateBucket", "x-amz-acl", "x-amz-acl: public-read-write"),
    (
        "DeleteObject",
        "x-amz-bypass-governance-retention",
        "x-amz-bypass-governance-retention: true",
    ),
    ("GetObject", "x-amz-acl", "x-amz-acl: public-read"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_that_change_what_aws_does_are_refused_before_aws() {
    let s = start(&[]).await;
    let object = format!("/{BUCKET}/new");
    let blob = format!("/{BUCKET}/{BLOB}");
    let mut wrong = Vec::new();
    for (op, name, headers) in REFUSED {
        let mut w = match *op {
            "PutObject" => Wire::new("PUT", s.url(&object)).body(b"x"),
            "CreateBucket" => Wire::new("PUT", s.url(&format!("/{BUCKET}"))),
            "DeleteObject" => Wire::new("DELETE", s.url(&blob)),
            _ => Wire::new("GET", s.url(&blob)),
        };
        for (k, v) in headers.lines().filter_map(|l| l.split_once(": ")) {
            w = w.header(k, v);
        }
        let a = s.send(&w).await;
        let case = format!("{op} with {headers:?}");
        wrong.extend(s.refusal(&case, &a, (403, "AccessDenied"), name));
        if s.stored("new").await.is_some() {
            wrong.push(format!("{case}: stored {BUCKET}/new"));
            s.remove("new").await;
        }
    }
    if s.stored(BLOB).await.as_deref() != Some(ORIGINAL) {
        wrong.push(format!("{BUCKET}/{BLOB} was changed or deleted"));
    }
    assert_none(&wrong);
    // The control, the same PutObject without them: stored.
    let a = s.send(&Wire::new("PUT", s.url(&object)).body(b"x")).await;
    assert_eq!(a.status, 200, "{}", text(&a));
    assert_eq!(s.stored("new").await.as_deref(), Some(&b"x"[..]));
}

/// `+`, `/` and `=` of a base64 signature, percent-encoded for a query.
fn query_escape(s: &str) -> String {
    s.replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigv2_and_sigv4_beyond_its_bounds_or_for_another_service_are_refused() {
    let s = start(&[]).await;
    let resource = format!("/{BUCKET}/{BLOB}");
    let blob = s.url(&resource);
    let keys = (ACCESS_KEY, SECRET_KEY);
    let mut wrong = Vec::new();
    // SigV2, correctly signed: in the header with a 2001 date, in the query expiring in 2100.
    let date = "Mon, 01 Jan 2001 00:00:00 GMT";
    let v2 = sigv2(SECRET_KEY, &format!("GET\n\n\n{date}\n{resource}"));
    let headers = [
        ("date", date.to_string()),
        ("authorization", format!("AWS {ACCESS_KEY}:{v2}")),
    ];
    let headers: Vec<(String, String)> = headers.map(|(k, v)| (k.to_string(), v)).to_vec();
    let a = send("GET", &blob, &headers, Vec::new()).await;
    let unsupported = (400, "InvalidRequest");
    wrong.extend(s.refusal("SigV2 header, 2001", &a, unsupported, "AWS4-HMAC-SHA256"));
    let expires = "4102444800";
    let v2 = query_escape(&sigv2(
        SECRET_KEY,
        &format!("GET\n\n\n{expires}\n{resource}"),
    ));
    let url = format!("{blob}?AWSAccessKeyId={ACCESS_KEY}&Expires={expires}&Signature={v2}");
    let a = send("GET", &url, &[], Vec::new()).await;
    wrong.extend(s.refusal("SigV2 query, 2100", &a, unsupported, "AWS4-HMAC-SHA256"));
    // SigV4 presigned for ten years (AWS allows a week), signed now and 30 days ago.
    let (now, day) = (SystemTime::now(), Duration::from_secs(24 * 3600));
    let query_error = (400, "AuthorizationQueryParametersError");
    for (case, at) in [("now", now), ("30 days ago", now - 30 * day)] {
        let url = presign("GET", &blob, keys, "s3", at, 3650 * day);
        let a = send("GET", &url, &[], Vec::new()).await;
        let case = format!("presigned {case} with X-Amz-Expires of 10 years");
        wrong.extend(s.refusal(&case, &a, query_error, ""));
    }
    // Scoped to STS, in the header and presigned.
    let headers = headers_for(&Wire::new("GET", &blob), ACCESS_KEY, SECRET_KEY, "sts");
    let a = send("GET", &blob, &headers, Vec::new()).await;
    let malformed = (400, "AuthorizationHeaderMalformed");
    wrong.extend(s.refusal("header-signed for sts", &a, malformed, ""));
    let url = presign("GET", &blob, keys, "sts", now, Duration::from_secs(3600));
    let a = send("GET", &url, &[], Vec::new()).await;
    wrong.extend(s.refusal("presigned for sts", &a, query_error, ""));
    s.assert_blob_intact("signatures").await;
    assert_none(&wrong);

    // Controls: presigned for an hour, and signed in the header, both for s3.
    let url = presign("GET", &blob, keys, "s3", now, Duration::from_secs(3600));
    let a = send("GET", &url, &[], Vec::new()).await;
    assert_eq!((a.status, a.body.as_ref()), (200, ORIGINAL), "{}", text(&a));
    let a = s.send(&Wire::new("GET", &blob)).await;
    assert_eq!((a.status, a.body.as_ref()), (200, ORIGINAL), "{}", text(&a));
    let seen: Vec<String> = s.recorder.requests().iter().map(|r| r.summary()).collect();
    assert_eq!(seen.len(), 2, "{seen:#?}");
}

#[test]
fn gateway_help_exits_zero_and_lists_its_settings() {
    let out = std::process::Command::new(bin())
        .args(["gateway", "--help"])
        .env_clear()
        .output()
        .expect("run the binary");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "gateway --help: {}: {text}",
        out.status
    );
    for setting in [
        "EPINIO_IRSA_GATEWAY_BUCKET",
        "EPINIO_IRSA_GATEWAY_MAX_CONNECTIONS",
    ] {
        assert!(
            text.contains(setting),
            "gateway --help does not name {setting}: {text}"
        );
    }
}
