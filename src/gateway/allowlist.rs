//! What each operation may carry, in one table: the only operations the gateway forwards, and
//! for each the query parameters and request headers that may come with it (checked against
//! what Epinio's S3 clients send: `internal/s3manager/s3manager.go` of each Epinio line, the
//! staging script's aws CLI, minio-go, and the SDKs' 2025 checksum defaults).
//!
//! s3s routes a request by method, path and the query keys it knows, and routes what it does
//! not know to the nearest operation (`PUT /b/k?renameObject` is a `PutObject` to s3s). So the
//! query is checked here, key by key, and a request carrying anything the table does not list
//! never reaches AWS:
//! - a query parameter without a value is a sub-resource (`?encryption`, `?renameObject`):
//!   `NotImplemented`;
//! - any other query parameter, and any `x-amz-*` or S3-modelled standard header the operation
//!   does not list: `AccessDenied`, naming it.
//!
//! Headers S3 does not model at all (`traceparent`, a mesh's `x-request-id`) are let in and
//! dropped: the gateway rebuilds every forwarded request from s3s's typed input, so only
//! fields S3 defines can reach AWS, and this table decides which of those may.

/// Whether an operation names the bucket or one object in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Bucket,
    Object,
}

/// One forwarded operation.
#[derive(Debug)]
pub struct Rule {
    /// s3s's operation name.
    pub op: &'static str,
    pub target: Target,
    /// The IAM action AWS authorizes it as (checked against the job's S3 policy in tests).
    pub action: &'static str,
    /// Query parameters it may carry besides [`ALWAYS_QUERY`].
    pub query: &'static [&'static str],
    /// Lists of headers (lower case) it may carry besides [`ALWAYS_HEADERS`]; a trailing `*`
    /// is a prefix.
    pub headers: &'static [&'static [&'static str]],
}

/// SigV4 presigned URLs, and the `x-id` the Go and Rust SDKs add to the path. Nothing else:
/// SigV2 (`Signature`, `AWSAccessKeyId`, `Expires`) is refused earlier (`signing`).
pub const ALWAYS_QUERY: &[&str] = &[
    "x-id",
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
    "X-Amz-Content-Sha256",
];

/// Signing and the SDKs' own bookkeeping; Content-Type, which clients send on any request
/// with a body and S3 ignores where nothing is stored.
pub const ALWAYS_HEADERS: &[&str] = &[
    "x-amz-date",
    "x-amz-content-sha256",
    "x-amz-user-agent",
    "content-type",
];

/// The standard headers S3 gives a meaning to. Any of these, and any `x-amz-*` header, must be
/// listed for the operation.
pub const MODELLED_HEADERS: &[&str] = &[
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "content-md5",
    "expires",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-unmodified-since",
    "range",
];

/// The checksum headers of an upload: the SDKs' 2025 defaults (a CRC32 computed up front, or
/// announced as a trailer for aws-chunked bodies) and Content-MD5 (minio-go, the aws CLI v1).
const UPLOAD_BODY: &[&str] = &[
    "content-md5",
    "content-encoding",
    "x-amz-decoded-content-length",
    "x-amz-trailer",
    "x-amz-sdk-checksum-algorithm",
    "x-amz-checksum-crc32",
    "x-amz-checksum-crc32c",
    "x-amz-checksum-crc64nvme",
    "x-amz-checksum-sha1",
    "x-amz-checksum-sha256",
];

/// User metadata (PutObject and CreateMultipartUpload).
const META: &[&str] = &["x-amz-meta-*"];

/// Conditional reads: s3transfer sends If-Match on the ranged GETs of one download.
const READ: &[&str] = &[
    "range",
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
    "x-amz-checksum-mode",
];

const LIST_V2: &[&str] = &[
    "list-type",
    "prefix",
    "delimiter",
    "max-keys",
    "continuation-token",
    "start-after",
    "fetch-owner",
    "encoding-type",
];

const COMPLETE: &[&str] = &[
    "x-amz-checksum-crc32",
    "x-amz-checksum-crc32c",
    "x-amz-checksum-crc64nvme",
    "x-amz-checksum-sha1",
    "x-amz-checksum-sha256",
    "x-amz-checksum-type",
    "x-amz-mp-object-size",
];

const fn rule(
    op: &'static str,
    target: Target,
    action: &'static str,
    query: &'static [&'static str],
    headers: &'static [&'static [&'static str]],
) -> Rule {
    Rule {
        op,
        target,
        action,
        query,
        headers,
    }
}

/// Every operation the gateway forwards. `HeadBucket` and `CreateBucket` (every Epinio
/// server), `GetBucketLocation` (minio-go, Epinio 1.6 - 1.13.9), `ListObjectsV2` (the hook's
/// proof of the path), single-request and multipart uploads, reads (ranged too, for the aws
/// CLI's downloads in staging) and deletes.
pub const RULES: &[Rule] = &[
    rule("HeadBucket", Target::Bucket, "s3:ListBucket", &[], &[]),
    rule("CreateBucket", Target::Bucket, "s3:CreateBucket", &[], &[]),
    rule(
        "GetBucketLocation",
        Target::Bucket,
        "s3:GetBucketLocation",
        &["location"],
        &[],
    ),
    rule(
        "ListObjectsV2",
        Target::Bucket,
        "s3:ListBucket",
        LIST_V2,
        &[],
    ),
    rule(
        "PutObject",
        Target::Object,
        "s3:PutObject",
        &[],
        &[UPLOAD_BODY, META],
    ),
    rule("GetObject", Target::Object, "s3:GetObject", &[], &[READ]),
    rule("HeadObject", Target::Object, "s3:GetObject", &[], &[READ]),
    rule("DeleteObject", Target::Object, "s3:DeleteObject", &[], &[]),
    rule(
        "CreateMultipartUpload",
        Target::Object,
        "s3:PutObject",
        &["uploads"],
        &[
            META,
            &[
                "content-encoding",
                "x-amz-checksum-algorithm",
                "x-amz-checksum-type",
            ],
        ],
    ),
    rule(
        "UploadPart",
        Target::Object,
        "s3:PutObject",
        &["partNumber", "uploadId"],
        &[UPLOAD_BODY],
    ),
    rule(
        "CompleteMultipartUpload",
        Target::Object,
        "s3:PutObject",
        &["uploadId"],
        &[COMPLETE],
    ),
    rule(
        "AbortMultipartUpload",
        Target::Object,
        "s3:AbortMultipartUpload",
        &["uploadId"],
        &[],
    ),
];

/// The rule of `op`, if the gateway forwards it.
pub fn rule_of(op: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.op == op)
}

impl Rule {
    /// Whether `name` (lower case) may come with this operation.
    pub fn allows_header(&self, name: &str) -> bool {
        let listed = |list: &[&str]| {
            list.iter().any(|h| match h.strip_suffix('*') {
                Some(prefix) => name.starts_with(prefix),
                None => *h == name,
            })
        };
        listed(ALWAYS_HEADERS) || self.headers.iter().any(|list| listed(list))
    }

    /// Whether the query parameter `name` may come with this operation.
    pub fn allows_query(&self, name: &str) -> bool {
        ALWAYS_QUERY.contains(&name) || self.query.contains(&name)
    }
}

/// Whether S3 gives `name` (lower case) a meaning, so that it must be listed to pass.
pub fn is_modelled(name: &str) -> bool {
    name.starts_with("x-amz-") || MODELLED_HEADERS.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arn::Partition;

    /// `HeadObject` -> `head_object`: the method name of s3s's `S3` trait.
    fn snake(op: &str) -> String {
        let mut out = String::new();
        for (i, c) in op.chars().enumerate() {
            if c.is_ascii_uppercase() && i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        }
        out.replace("v_2", "v2")
    }

    #[test]
    fn every_forwarded_operation_is_granted_by_the_jobs_s3_policy() {
        let policy = crate::plan::s3_policy(Partition::Aws, "epinio");
        let granted: Vec<&str> = policy["Statement"]
            .as_array()
            .expect("statements")
            .iter()
            .flat_map(|s| s["Action"].as_array().expect("actions"))
            .filter_map(|a| a.as_str())
            .collect();
        for rule in RULES {
            assert!(
                granted.contains(&rule.action),
                "{} needs {}, which the job's policy does not grant",
                rule.op,
                rule.action
            );
        }
    }

    #[test]
    fn forward_implements_exactly_the_operations_of_the_table() {
        let source = include_str!("forward.rs");
        let body = source
            .split("impl S3 for Forward {")
            .nth(1)
            .expect("forward.rs implements S3");
        let implemented: Vec<&str> = body
            .split("async fn ")
            .skip(1)
            .filter_map(|s| s.split('(').next())
            .collect();
        let mut expected: Vec<String> = RULES.iter().map(|r| snake(r.op)).collect();
        let mut implemented: Vec<String> = implemented.iter().map(|s| s.to_string()).collect();
        expected.sort();
        implemented.sort();
        assert_eq!(implemented, expected);
    }

    #[test]
    fn each_operation_is_listed_once() {
        for rule in RULES {
            assert_eq!(
                RULES.iter().filter(|r| r.op == rule.op).count(),
                1,
                "{}",
                rule.op
            );
        }
    }
}
