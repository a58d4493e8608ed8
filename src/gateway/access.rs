//! What they may ask for: only the configured bucket, and only the operations Epinio's S3
//! clients send (checked against `internal/s3manager/s3manager.go` of each Epinio line and
//! the staging script). Everything else is `AccessDenied` here, before the request body is
//! read and before any AWS call. The role's IAM policy stays bucket-scoped as well, so a bug
//! in this file still cannot reach beyond the bucket.
//!
//! s3s names the operation from the method, path, query and headers (its router follows the
//! S3 service model), so `PUT /b/k` with `x-amz-copy-source` is `CopyObject`, not
//! `PutObject`, and `PUT /b/k?partNumber=1&uploadId=..` is `UploadPart`.

use hyper::header::CONTENT_TYPE;
use hyper::{HeaderMap, Method};
use s3s::access::{S3Access, S3AccessContext};
use s3s::path::S3Path;
use s3s::{s3_error, S3Error, S3ErrorCode, S3Result};

use super::note::Note;
use crate::config::Bucket;

/// Operations on the bucket itself: `HeadBucket` and `CreateBucket` (every Epinio server),
/// `GetBucketLocation` (minio-go looks the region up, Epinio 1.6 - 1.13.9), `ListObjectsV2`
/// (the hook's `verify` probes the gateway with it, issue 17 item 4).
pub const BUCKET_OPERATIONS: &[&str] = &[
    "HeadBucket",
    "CreateBucket",
    "GetBucketLocation",
    "ListObjectsV2",
];

/// Operations on one object: the single-request writes of aws-sdk-go-v2 (1.13.10+), the
/// multipart uploads of minio-go, boto3 and the aws CLI above their part size, reads (ranged
/// too) for staging's `aws s3 cp`, and deletes.
pub const OBJECT_OPERATIONS: &[&str] = &[
    "PutObject",
    "GetObject",
    "HeadObject",
    "DeleteObject",
    "CreateMultipartUpload",
    "UploadPart",
    "CompleteMultipartUpload",
    "AbortMultipartUpload",
];

/// Headers that would change who may read an object (canned ACLs, grants). Epinio never sends
/// them, and an object made public through the gateway would outlive any later fix.
const ACL_HEADERS: &[&str] = &[
    "x-amz-acl",
    "x-amz-grant-full-control",
    "x-amz-grant-read",
    "x-amz-grant-read-acp",
    "x-amz-grant-write",
    "x-amz-grant-write-acp",
];

/// Requests whose header section (names and values) is larger than this get S3's
/// `RequestHeaderSectionTooLarge`. Every client Epinio uses sends well under 4 KiB; AWS
/// allows 8 KiB of user metadata. hyper refuses far larger sections (431) even earlier.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Refusals that must come before s3s looks at the request: an oversized header section,
/// and browser POST uploads (`multipart/form-data`), whose file s3s would read into memory
/// before asking [`BucketOnly`] (it checks the POST policy first). Epinio never sends either.
pub fn refuse_early(method: &Method, headers: &HeaderMap) -> Option<S3Error> {
    let size: usize = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum();
    if size > MAX_HEADER_BYTES {
        return Some(S3Error::with_message(
            S3ErrorCode::RequestHeaderSectionTooLarge,
            "Your request header section exceeds the maximum allowed size.",
        ));
    }
    let form = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/")
        });
    if method == Method::POST && form {
        return Some(s3_error!(
            AccessDenied,
            "The gateway does not accept POST uploads"
        ));
    }
    None
}

/// Why a request is refused (the message of its `AccessDenied`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    Unsigned,
    Operation(String),
    Bucket(String),
    Key,
    Acl(&'static str),
}

impl Denial {
    fn message(&self, bucket: &str) -> String {
        match self {
            Denial::Unsigned => "Requests must be signed with the gateway's access key".into(),
            Denial::Operation(op) => format!("The gateway does not forward {op}"),
            Denial::Bucket(other) => {
                format!("The gateway serves only bucket {bucket}, not {other:?}")
            }
            Denial::Key => "Object keys with '.' or '..' path segments are refused".into(),
            Denial::Acl(h) => format!("The gateway does not forward ACLs ({h})"),
        }
    }
}

/// The decision, pure: `signed` is whether the request carried a valid signature.
pub fn decide(
    op: &str,
    path: &S3Path,
    headers: &HeaderMap,
    signed: bool,
    bucket: &str,
) -> Result<(), Denial> {
    if !signed {
        return Err(Denial::Unsigned);
    }
    let (asked, key) = match path {
        S3Path::Root => return Err(Denial::Operation(op.to_string())),
        S3Path::Bucket { bucket } => (bucket, None),
        S3Path::Object { bucket, key } => (bucket, Some(key)),
    };
    let allowed = match key {
        None => BUCKET_OPERATIONS.contains(&op),
        Some(_) => OBJECT_OPERATIONS.contains(&op),
    };
    if !allowed {
        return Err(Denial::Operation(op.to_string()));
    }
    if &**asked != bucket {
        return Err(Denial::Bucket(asked.to_string()));
    }
    // S3 keeps such keys literally, but a proxy or library on the way may resolve them into
    // another path (`/bucket/../other`), so they are never forwarded.
    if key.is_some_and(|k| k.split('/').any(|s| s == "." || s == "..")) {
        return Err(Denial::Key);
    }
    if let Some(h) = ACL_HEADERS.iter().find(|h| headers.contains_key(**h)) {
        return Err(Denial::Acl(h));
    }
    Ok(())
}

pub struct BucketOnly {
    bucket: Bucket,
}

impl BucketOnly {
    pub fn new(bucket: Bucket) -> Self {
        BucketOnly { bucket }
    }
}

#[async_trait::async_trait]
impl S3Access for BucketOnly {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let op = cx.s3_op().name().to_string();
        let caller = cx.credentials().map(|c| c.access_key.clone());
        let (bucket, key) = match cx.s3_path() {
            S3Path::Root => (None, None),
            S3Path::Bucket { bucket } => (Some(bucket.to_string()), None),
            S3Path::Object { bucket, key } => (Some(bucket.to_string()), Some(key.to_string())),
        };
        let decision = decide(
            &op,
            cx.s3_path(),
            cx.headers(),
            caller.is_some(),
            &self.bucket,
        );
        if let Some(note) = cx.extensions_mut().get::<Note>() {
            note.identify(&op, bucket, key, caller);
            if decision.is_err() {
                note.error("AccessDenied");
            }
        }
        decision.map_err(|d| s3_error!(AccessDenied, "{}", d.message(&self.bucket)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: &str = "epinio";

    fn object(key: &str) -> S3Path {
        S3Path::Object {
            bucket: B.into(),
            key: key.into(),
        }
    }

    fn bucket(b: &str) -> S3Path {
        S3Path::Bucket { bucket: b.into() }
    }

    #[test]
    fn epinio_operations_on_its_bucket_pass() {
        let h = HeaderMap::new();
        for op in BUCKET_OPERATIONS {
            assert_eq!(decide(op, &bucket(B), &h, true, B), Ok(()), "{op}");
        }
        for op in OBJECT_OPERATIONS {
            assert_eq!(
                decide(op, &object("apps/blob"), &h, true, B),
                Ok(()),
                "{op}"
            );
        }
    }

    #[test]
    fn everything_else_is_denied() {
        let h = HeaderMap::new();
        for op in [
            "ListBuckets",
            "DeleteBucket",
            "PutBucketPolicy",
            "GetBucketPolicy",
            "ListObjects",
            "PutBucketAcl",
            "DeleteObjects",
        ] {
            assert!(decide(op, &bucket(B), &h, true, B).is_err(), "{op}");
        }
        for op in [
            "CopyObject",
            "UploadPartCopy",
            "PutObjectAcl",
            "GetObjectAcl",
        ] {
            assert!(decide(op, &object("k"), &h, true, B).is_err(), "{op}");
        }
        assert!(decide("ListBuckets", &S3Path::Root, &h, true, B).is_err());
        // An object operation on a bucket path, and the reverse.
        assert!(decide("GetObject", &bucket(B), &h, true, B).is_err());
        assert!(decide("HeadBucket", &object("k"), &h, true, B).is_err());
    }

    #[test]
    fn other_buckets_unsigned_requests_dot_segments_and_acls_are_denied() {
        let h = HeaderMap::new();
        assert_eq!(
            decide("HeadBucket", &bucket("other"), &h, true, B),
            Err(Denial::Bucket("other".into()))
        );
        assert_eq!(
            decide("GetObject", &object("k"), &h, false, B),
            Err(Denial::Unsigned)
        );
        for key in ["../other/k", "a/../../b", "./k", "a/.", ".."] {
            assert_eq!(
                decide("GetObject", &object(key), &h, true, B),
                Err(Denial::Key),
                "{key}"
            );
        }
        assert_eq!(decide("GetObject", &object("a..b/.c"), &h, true, B), Ok(()));
        let mut acl = HeaderMap::new();
        acl.insert("x-amz-acl", "public-read".parse().unwrap());
        assert_eq!(
            decide("PutObject", &object("k"), &acl, true, B),
            Err(Denial::Acl("x-amz-acl"))
        );
    }
}
