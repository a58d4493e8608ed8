//! S3, with the credentials `verify` assumed: can the role read the bucket, and (opt-in)
//! write, read back and delete one key of its own.

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;

use super::AwsError;
use crate::aws_actions::{
    Action, DELETE_OBJECT, GET_OBJECT, HEAD_BUCKET, LIST_OBJECTS, PUT_OBJECT,
};

/// HEAD requests have no error body: the status is the code.
fn s3_error<E>(action: Action, resource: &str, err: SdkError<E, HttpResponse>) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let code = match &err {
        SdkError::ServiceError(e) => {
            e.err()
                .code()
                .map(str::to_string)
                .or_else(|| match e.raw().status().as_u16() {
                    403 => Some("AccessDenied".into()),
                    404 => Some("NotFound".into()),
                    _ => None,
                })
        }
        _ => None,
    };
    let message = match &err {
        SdkError::ServiceError(e) => e
            .err()
            .message()
            .map(str::to_string)
            .unwrap_or_else(|| code.clone().unwrap_or_else(|| "service error".into())),
        other => aws_sdk_s3::error::DisplayErrorContext(other).to_string(),
    };
    AwsError {
        op: action.name,
        resource: resource.to_string(),
        code,
        message,
    }
}

/// What HeadBucket and ListObjectsV2 found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readable {
    /// Both succeeded.
    Yes,
    /// The bucket does not exist (yet: Epinio creates it when it starts).
    Missing,
    /// The bucket lives in another region (S3 answered 301 with `x-amz-bucket-region`).
    InRegion(String),
}

/// HeadBucket and ListObjectsV2 (one key at most), concurrently: one round trip, not two.
pub async fn bucket_readable(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<Readable, AwsError> {
    tracing::debug!(op = "s3:HeadBucket+ListObjectsV2", bucket, "aws call");
    let (head, list) = tokio::join!(
        s3.head_bucket().bucket(bucket).send(),
        s3.list_objects_v2().bucket(bucket).max_keys(1).send(),
    );
    if let Err(SdkError::ServiceError(e)) = &head {
        let raw = e.raw();
        if raw.status().as_u16() == 301 {
            if let Some(region) = raw.headers().get("x-amz-bucket-region") {
                return Ok(Readable::InRegion(region.to_string()));
            }
        }
    }
    let missing = |e: &AwsError| matches!(e.code.as_deref(), Some("NotFound" | "NoSuchBucket"));
    match head.map_err(|e| s3_error(HEAD_BUCKET, bucket, e)) {
        Err(e) if missing(&e) => return Ok(Readable::Missing),
        // A HEAD's 403 has no body; the list's names the cause (SignatureDoesNotMatch,
        // InvalidAccessKeyId, ...) when it was refused too.
        Err(e) if e.is("AccessDenied") => {
            let listed = list.err().map(|l| s3_error(LIST_OBJECTS, bucket, l));
            return Err(listed
                .filter(|l| l.code.is_some() && !missing(l))
                .unwrap_or(e));
        }
        Err(e) => return Err(e),
        Ok(_) => {}
    }
    list.map_err(|e| s3_error(LIST_OBJECTS, bucket, e))?;
    Ok(Readable::Yes)
}

/// Put, get and delete one key. The delete runs whatever the get returned, so no probe object
/// is left behind by a failed read.
pub async fn write_probe(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<(), AwsError> {
    let what = format!("{bucket}/{key}");
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from_static(b"epinio-irsa verify probe"))
        .send()
        .await
        .map_err(|e| s3_error(PUT_OBJECT, &what, e))?;
    let read = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| s3_error(GET_OBJECT, &what, e));
    let delete = s3
        .delete_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| s3_error(DELETE_OBJECT, &what, e));
    read?;
    delete?;
    Ok(())
}

/// The write probe's prefix: nothing of Epinio's lives under it.
pub const PROBE_PREFIX: &str = "epinio-irsa-verify/";

/// A key of the write probe, unique to this moment: `epinio-irsa-verify/<who>-<nanos>`.
pub fn probe_key(who: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos().to_string())
        .unwrap_or_default();
    format!("{PROBE_PREFIX}{who}-{nanos}")
}
