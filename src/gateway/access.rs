//! What they may ask for: only the configured bucket, and only the operations, query
//! parameters and headers of [`super::allowlist`]. Everything else is refused here, before the
//! request body is read and before any AWS call. The role's IAM policy stays bucket-scoped as well, so a bug
//! in this file still cannot reach beyond the bucket.
//!
//! s3s names the operation from the method, path, query and headers (its router follows the
//! S3 service model), so `PUT /b/k` with `x-amz-copy-source` is `CopyObject`, not
//! `PutObject`, and `PUT /b/k?partNumber=1&uploadId=..` is `UploadPart`.

use hyper::HeaderMap;
use s3s::access::{S3Access, S3AccessContext};
use s3s::path::S3Path;
use s3s::{S3Error, S3ErrorCode, S3Result};

use super::allowlist::{is_modelled, rule_of, Target};
use super::early::query_pairs;
use super::note::Note;
use crate::config::Bucket;

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    Unsigned,
    Operation(String),
    Bucket(String),
    Key,
    /// A sub-resource (a query parameter without a value) the gateway does not implement.
    SubResource(String),
    /// A query parameter the operation may not carry.
    Query {
        op: String,
        name: String,
    },
    /// A header S3 gives a meaning to that the operation may not carry.
    Header {
        op: String,
        name: String,
    },
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
            Denial::SubResource(name) => {
                format!("The gateway does not implement the sub-resource ?{name}")
            }
            Denial::Query { op, name } => {
                format!("The gateway does not forward the query parameter {name} on {op}")
            }
            Denial::Header { op, name } => {
                format!("The gateway does not forward the header {name} on {op}")
            }
        }
    }

    /// The reason counted in the metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Denial::Unsigned => "authentication",
            Denial::Operation(_) | Denial::SubResource(_) => "operation",
            Denial::Bucket(_) => "bucket",
            Denial::Key => "key",
            Denial::Query { .. } => "query",
            Denial::Header { .. } => "header",
        }
    }

    /// The S3 error: `NotImplemented` for an unknown sub-resource, else `AccessDenied`.
    pub fn to_error(&self, bucket: &str) -> S3Error {
        let code = match self {
            Denial::SubResource(_) => S3ErrorCode::NotImplemented,
            _ => S3ErrorCode::AccessDenied,
        };
        S3Error::with_message(code, self.message(bucket))
    }
}

/// The decision, pure: `signed` is whether the request carried a valid signature; `query` the
/// raw query string.
pub fn decide(
    op: &str,
    path: &S3Path,
    headers: &HeaderMap,
    query: Option<&str>,
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
    let target = if key.is_some() {
        Target::Object
    } else {
        Target::Bucket
    };
    let Some(rule) = rule_of(op).filter(|r| r.target == target) else {
        return Err(Denial::Operation(op.to_string()));
    };
    if &**asked != bucket {
        return Err(Denial::Bucket(asked.to_string()));
    }
    // S3 keeps such keys literally, but a proxy or library on the way may resolve them into
    // another path (`/bucket/../other`), so they are never forwarded.
    if key.is_some_and(|k| k.split('/').any(|s| s == "." || s == "..")) {
        return Err(Denial::Key);
    }
    for (name, value) in query_pairs(query.unwrap_or_default()) {
        if rule.allows_query(&name) {
            continue;
        }
        return Err(if !value.is_empty() {
            Denial::Query {
                op: op.to_string(),
                name,
            }
        } else {
            Denial::SubResource(name)
        });
    }
    for name in headers.keys().map(|h| h.as_str()) {
        if is_modelled(name) && !rule.allows_header(name) {
            return Err(Denial::Header {
                op: op.to_string(),
                name: name.to_string(),
            });
        }
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
            cx.uri().query(),
            caller.is_some(),
            &self.bucket,
        );
        if let Some(note) = cx.extensions_mut().get::<Note>() {
            note.identify(&op, bucket, key, caller);
            if let Err(d) = &decision {
                note.error(d.to_error(&self.bucket).code().as_str());
                note.refuse(d.reason());
            }
        }
        decision.map_err(|d| d.to_error(&self.bucket))
    }
}

#[cfg(test)]
mod tests {
    use super::super::allowlist::{Target, RULES};
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

    fn path(target: Target) -> S3Path {
        match target {
            Target::Bucket => bucket(B),
            Target::Object => object("apps/blob"),
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn epinio_operations_on_its_bucket_pass_with_what_they_carry() {
        for rule in RULES {
            let query: Vec<String> = rule.query.iter().map(|q| format!("{q}=1")).collect();
            let query = query.join("&") + "&x-id=Op";
            let listed: Vec<(&'static str, &str)> = rule
                .headers
                .iter()
                .flat_map(|list| list.iter())
                .map(|h| {
                    (
                        if *h == "x-amz-meta-*" {
                            "x-amz-meta-app"
                        } else {
                            *h
                        },
                        "v",
                    )
                })
                .collect();
            let mut h = headers(&listed);
            h.insert("traceparent", "00-1-2-01".parse().unwrap());
            h.insert("content-type", "application/octet-stream".parse().unwrap());
            let d = decide(rule.op, &path(rule.target), &h, Some(&query), true, B);
            assert_eq!(d, Ok(()), "{}", rule.op);
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
            assert!(decide(op, &bucket(B), &h, None, true, B).is_err(), "{op}");
        }
        for op in [
            "CopyObject",
            "UploadPartCopy",
            "PutObjectAcl",
            "GetObjectAcl",
        ] {
            assert!(decide(op, &object("k"), &h, None, true, B).is_err(), "{op}");
        }
        assert!(decide("ListBuckets", &S3Path::Root, &h, None, true, B).is_err());
        // An object operation on a bucket path, and the reverse.
        assert!(decide("GetObject", &bucket(B), &h, None, true, B).is_err());
        assert!(decide("HeadBucket", &object("k"), &h, None, true, B).is_err());
    }

    #[test]
    fn other_buckets_unsigned_requests_and_dot_segments_are_denied() {
        let h = HeaderMap::new();
        assert_eq!(
            decide("HeadBucket", &bucket("other"), &h, None, true, B),
            Err(Denial::Bucket("other".into()))
        );
        assert_eq!(
            decide("GetObject", &object("k"), &h, None, false, B),
            Err(Denial::Unsigned)
        );
        for key in ["../other/k", "a/../../b", "./k", "a/.", ".."] {
            assert_eq!(
                decide("GetObject", &object(key), &h, None, true, B),
                Err(Denial::Key),
                "{key}"
            );
        }
        let fine = decide("GetObject", &object("a..b/.c"), &h, None, true, B);
        assert_eq!(fine, Ok(()));
    }

    #[test]
    fn unknown_sub_resources_are_not_implemented_and_other_parameters_denied() {
        let h = HeaderMap::new();
        for (op, path, query) in [
            ("PutObject", object("k"), "renameObject"),
            ("PutObject", object("k"), "encryption="),
            ("PutObject", object("k"), "fooBar"),
            ("CreateBucket", bucket(B), "metadataTable"),
            ("CreateBucket", bucket(B), "abac"),
        ] {
            let d = decide(op, &path, &h, Some(query), true, B).expect_err(query);
            assert!(matches!(d, Denial::SubResource(_)), "{query}: {d:?}");
            assert_eq!(d.to_error(B).code(), &S3ErrorCode::NotImplemented);
        }
        for (op, query, name) in [
            ("GetObject", "versionId=abc", "versionId"),
            (
                "DeleteObject",
                "versionId=abc&x-id=DeleteObject",
                "versionId",
            ),
            (
                "GetObject",
                "response-content-type=text%2Fhtml",
                "response-content-type",
            ),
            (
                "PutObject",
                "X-Amz-Security-Token=t",
                "X-Amz-Security-Token",
            ),
        ] {
            let d = decide(op, &object("k"), &h, Some(query), true, B);
            let want = Denial::Query {
                op: op.into(),
                name: name.into(),
            };
            assert_eq!(d, Err(want), "{query}");
        }
    }

    #[test]
    fn headers_that_change_what_aws_does_are_denied() {
        for (op, path, name) in [
            ("PutObject", object("k"), "x-amz-storage-class"),
            (
                "PutObject",
                object("k"),
                "x-amz-server-side-encryption-customer-key",
            ),
            (
                "PutObject",
                object("k"),
                "x-amz-server-side-encryption-aws-kms-key-id",
            ),
            ("PutObject", object("k"), "x-amz-website-redirect-location"),
            ("PutObject", object("k"), "x-amz-tagging"),
            ("PutObject", object("k"), "x-amz-object-lock-mode"),
            ("PutObject", object("k"), "x-amz-acl"),
            ("PutObject", object("k"), "x-amz-grant-read"),
            ("PutObject", object("k"), "cache-control"),
            (
                "CreateBucket",
                bucket(B),
                "x-amz-bucket-object-lock-enabled",
            ),
            ("CreateBucket", bucket(B), "x-amz-object-ownership"),
            (
                "DeleteObject",
                object("k"),
                "x-amz-bypass-governance-retention",
            ),
            (
                "GetObject",
                object("k"),
                "x-amz-server-side-encryption-customer-key",
            ),
            ("HeadBucket", bucket(B), "x-amz-security-token"),
        ] {
            let h = headers(&[(name, "v")]);
            let d = decide(op, &path, &h, None, true, B);
            let want = Denial::Header {
                op: op.into(),
                name: name.into(),
            };
            assert_eq!(d, Err(want), "{op} {name}");
        }
    }
}
