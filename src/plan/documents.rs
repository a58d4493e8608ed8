//! The IAM documents: the trust policies (IRSA and Pod Identity), the bucket-scoped S3 policy,
//! and how documents IAM returns are decoded and compared. Pure.

use serde_json::{json, Value};

use super::facts::{provider_arn, Facts, STS_AUDIENCE};
use crate::arn::{self, Partition};
use crate::aws_actions;
use crate::error::DocumentError;

/// The IRSA trust policy: only `<namespace>:<service account>` tokens with the STS audience,
/// issued by this cluster, may assume the role.
pub fn trust_policy(facts: &Facts, namespace: &str, service_account: &str) -> Value {
    let issuer = facts.issuer_host_path();
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "Federated": provider_arn(facts) },
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {
                "StringEquals": {
                    format!("{issuer}:sub"): format!("system:serviceaccount:{namespace}:{service_account}"),
                    format!("{issuer}:aud"): STS_AUDIENCE,
                }
            }
        }]
    })
}

/// The Pod Identity trust policy: EKS Pod Identity may assume the role and tag the session, only
/// for sessions tagged with this cluster, namespace and ServiceAccount (the agent sets those
/// tags from the pod).
pub fn pod_identity_trust_policy(facts: &Facts, namespace: &str, service_account: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "Service": aws_actions::POD_IDENTITY_SERVICE },
            "Action": ["sts:AssumeRole", "sts:TagSession"],
            "Condition": {
                "StringEquals": {
                    "aws:RequestTag/eks-cluster-arn": facts.cluster_arn,
                    "aws:RequestTag/kubernetes-namespace": namespace,
                    "aws:RequestTag/kubernetes-service-account": service_account,
                }
            }
        }]
    })
}

/// What Epinio needs of S3, on its bucket only: bucket-level actions on the bucket ARN,
/// object-level actions on its objects. Nothing on `*`, and no `sts:AssumeRole` (the Epinio
/// docs' policy grants both; neither is needed).
pub fn s3_policy(partition: Partition, bucket: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "EpinioBucket",
                "Effect": "Allow",
                "Action": [
                    "s3:CreateBucket",
                    "s3:GetBucketLocation",
                    "s3:ListBucket",
                    "s3:ListBucketMultipartUploads"
                ],
                "Resource": arn::s3(partition, bucket)
            },
            {
                "Sid": "EpinioObjects",
                "Effect": "Allow",
                "Action": [
                    "s3:AbortMultipartUpload",
                    "s3:DeleteObject",
                    "s3:GetObject",
                    "s3:ListMultipartUploadParts",
                    "s3:PutObject"
                ],
                "Resource": arn::s3(partition, &format!("{bucket}/*"))
            }
        ]
    })
}

/// Compare two IAM policy documents by meaning: parsed JSON, with a lone string and a
/// one-element list treated alike (IAM accepts both and may return either).
pub fn same_document(a: &str, b: &str) -> bool {
    match (
        serde_json::from_str::<Value>(a),
        serde_json::from_str::<Value>(b),
    ) {
        (Ok(a), Ok(b)) => normalize(a) == normalize(b),
        _ => false,
    }
}

fn normalize(v: Value) -> Value {
    match v {
        Value::Array(items) if items.len() == 1 => {
            normalize(items.into_iter().next().unwrap_or(Value::Null))
        }
        Value::Array(items) => Value::Array(items.into_iter().map(normalize).collect()),
        Value::Object(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k, normalize(v))).collect())
        }
        other => other,
    }
}

/// IAM returns policy documents URL-encoded (RFC 3986). Strict: a `%` not followed by two hex
/// digits, or bytes that do not decode to UTF-8, are an error, never a panic or a guess.
pub fn decode_document(raw: &str) -> Result<String, DocumentError> {
    let bytes = raw.as_bytes();
    if let Some(at) = bytes.iter().enumerate().position(|(i, b)| {
        *b == b'%'
            && !bytes
                .get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
    }) {
        return Err(DocumentError::Escape(at));
    }
    percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| DocumentError::Utf8)
}
