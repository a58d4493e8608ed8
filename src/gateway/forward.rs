//! How it is forwarded: s3s-aws's `Proxy` turns each allowed operation into the same call on
//! aws-sdk-s3, signed with the role's credentials from aws-config's default chain. Bodies
//! stream both ways (an s3s body becomes the SDK's body and back), so no object is held
//! whole. AWS errors pass through with their status and code; the SDK does not retry
//! (`mod.rs` configures it so), because the client does, and retrying both would multiply.
//!
//! Only the operations [`super::access`] admits are implemented here; every other one keeps
//! s3s's default answer, `NotImplemented`, as a second fence. Five adjustments:
//! - `CreateBucket` names the bucket's configured region as location constraint (Epinio
//!   1.14 sends one only when its endpoint contains `amazonaws.com`, which the gateway's
//!   does not), except in `us-east-1`, where S3 refuses an explicit one.
//! - A ranged `GetObject` is sent without `x-amz-checksum-mode` and answered without
//!   checksums: a full-object checksum on a partial body makes the SDKs reject it.
//! - No credentials yet means `ServiceUnavailable` without an AWS call.
//! - An aws-chunked upload's trailing checksum is checked against the data (`trailer`), and its
//!   first piece is read before AWS is called (`body`).
//! - `aws-chunked` is taken out of an upload's Content-Encoding: it describes how the client
//!   sent the body to the gateway, not the object.

use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::operation as op;
use futures::future::BoxFuture;
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, S3};
use s3s_aws::Proxy;

use super::body::{upload_body, without_aws_chunked, BodyWatch};
use super::credentials::CredentialState;
use super::note::Note;
use crate::config::Region;

pub struct Forward {
    proxy: Proxy,
    credentials: CredentialState,
    region: Region,
}

impl Forward {
    pub fn new(client: aws_sdk_s3::Client, credentials: CredentialState, region: Region) -> Self {
        Forward {
            proxy: Proxy::from(client),
            credentials,
            region,
        }
    }

    /// Checks credentials, calls the proxy, and turns the failures the SDK reports as its
    /// own (no AWS answer) into what the client can act on.
    /// `E` is the operation's SDK error type, to tell AWS's answers from the SDK's own.
    async fn relay<'a, E, I, O>(
        &'a self,
        req: S3Request<I>,
        body: Option<BodyWatch>,
        call: impl FnOnce(&'a Proxy, S3Request<I>) -> BoxFuture<'a, S3Result<S3Response<O>>>,
    ) -> S3Result<S3Response<O>>
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        let note = req.extensions.get::<Note>().cloned();
        let result = match self.credentials.check() {
            Err(message) => Err(S3Error::with_message(
                S3ErrorCode::ServiceUnavailable,
                message,
            )),
            Ok(()) => call(&self.proxy, req).await.map_err(|e| {
                if answered_by_aws::<E>(&e) {
                    if let Some(note) = &note {
                        note.backend_error(e.code().as_str());
                    }
                    e
                } else {
                    self.explain(e, note.as_ref(), body)
                }
            }),
        };
        if let (Err(e), Some(note)) = (&result, note) {
            note.error(e.code().as_str());
        }
        result
    }

    /// An error that did not come from AWS came from the SDK itself: the client's body failed
    /// its checksum or signature, or the credentials ran out, or AWS could not be reached.
    fn explain(&self, e: S3Error, note: Option<&Note>, body: Option<BodyWatch>) -> S3Error {
        if let Some(why) = note.and_then(Note::body_refusal) {
            return why;
        }
        if let Some(why) = body.and_then(|b| b.failure()) {
            return why;
        }
        if let Err(message) = self.credentials.check() {
            return S3Error::with_message(S3ErrorCode::ServiceUnavailable, message);
        }
        let detail = e
            .source()
            .map(|s| aws_sdk_s3::error::DisplayErrorContext(s).to_string())
            .unwrap_or_default();
        tracing::warn!(error = %detail, "S3 could not be reached");
        if let Some(note) = note {
            note.backend_error("unreachable");
        }
        S3Error::with_message(
            S3ErrorCode::ServiceUnavailable,
            "The gateway could not reach S3; please retry",
        )
    }

    fn location(&self, input: &mut CreateBucketInput) {
        input.create_bucket_configuration =
            (self.region.as_str() != "us-east-1").then(|| CreateBucketConfiguration {
                bucket: None,
                location: None,
                location_constraint: Some(BucketLocationConstraint::from(self.region.to_string())),
            });
    }
}

/// Whether AWS answered (an error with its status and code, passed through as it is).
fn answered_by_aws<E: std::error::Error + Send + Sync + 'static>(e: &S3Error) -> bool {
    e.source()
        .and_then(|s| s.downcast_ref::<SdkError<E>>())
        .is_some_and(|s| matches!(s, SdkError::ServiceError(_)))
}

#[async_trait::async_trait]
impl S3 for Forward {
    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.relay::<op::head_bucket::HeadBucketError, _, _>(req, None, |p, r| p.head_bucket(r))
            .await
    }

    async fn create_bucket(
        &self,
        mut req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        self.location(&mut req.input);
        self.relay::<op::create_bucket::CreateBucketError, _, _>(req, None, |p, r| {
            p.create_bucket(r)
        })
        .await
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.relay::<op::get_bucket_location::GetBucketLocationError, _, _>(req, None, |p, r| {
            p.get_bucket_location(r)
        })
        .await
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        self.relay::<op::list_objects_v2::ListObjectsV2Error, _, _>(req, None, |p, r| {
            p.list_objects_v2(r)
        })
        .await
    }

    async fn put_object(
        &self,
        mut req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        without_aws_chunked(&mut req.input.content_encoding);
        let watch = upload_body(
            &mut req.input.body,
            &req.headers,
            req.trailing_headers.as_ref(),
            req.extensions.get::<Note>(),
        )
        .await?;
        self.relay::<op::put_object::PutObjectError, _, _>(req, Some(watch), |p, r| p.put_object(r))
            .await
    }

    async fn get_object(
        &self,
        mut req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let ranged = req.input.range.is_some();
        if ranged {
            req.input.checksum_mode = None;
        }
        let mut res = self
            .relay::<op::get_object::GetObjectError, _, _>(req, None, |p, r| p.get_object(r))
            .await?;
        if ranged {
            let o = &mut res.output;
            o.checksum_crc32 = None;
            o.checksum_crc32c = None;
            o.checksum_crc64nvme = None;
            o.checksum_sha1 = None;
            o.checksum_sha256 = None;
            o.checksum_type = None;
        }
        Ok(res)
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        self.relay::<op::head_object::HeadObjectError, _, _>(req, None, |p, r| p.head_object(r))
            .await
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        self.relay::<op::delete_object::DeleteObjectError, _, _>(req, None, |p, r| {
            p.delete_object(r)
        })
        .await
    }

    async fn create_multipart_upload(
        &self,
        mut req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        without_aws_chunked(&mut req.input.content_encoding);
        self.relay::<op::create_multipart_upload::CreateMultipartUploadError, _, _>(
            req,
            None,
            |p, r| p.create_multipart_upload(r),
        )
        .await
    }

    async fn upload_part(
        &self,
        mut req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let watch = upload_body(
            &mut req.input.body,
            &req.headers,
            req.trailing_headers.as_ref(),
            req.extensions.get::<Note>(),
        )
        .await?;
        self.relay::<op::upload_part::UploadPartError, _, _>(req, Some(watch), |p, r| {
            p.upload_part(r)
        })
        .await
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        self.relay::<op::complete_multipart_upload::CompleteMultipartUploadError, _, _>(
            req,
            None,
            |p, r| p.complete_multipart_upload(r),
        )
        .await
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        self.relay::<op::abort_multipart_upload::AbortMultipartUploadError, _, _>(
            req,
            None,
            |p, r| p.abort_multipart_upload(r),
        )
        .await
    }
}
