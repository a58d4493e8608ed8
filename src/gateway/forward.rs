//! How it is forwarded: s3s-aws's `Proxy` turns each allowed operation into the same call on
//! aws-sdk-s3, signed with the role's credentials from aws-config's default chain. Bodies
//! stream both ways (an s3s body becomes the SDK's body and back), so no object is held
//! whole. AWS errors pass through with their status and code; the SDK does not retry
//! (`mod.rs` configures it so), because the client does, and retrying both would multiply.
//!
//! Only the operations [`super::access`] admits are implemented here; every other one keeps
//! s3s's default answer, `NotImplemented`, as a second fence. Four adjustments:
//! - `CreateBucket` names the bucket's configured region as location constraint (Epinio
//!   1.14 sends one only when its endpoint contains `amazonaws.com`, which the gateway's
//!   does not), except in `us-east-1`, where S3 refuses an explicit one.
//! - A ranged `GetObject` is sent without `x-amz-checksum-mode` and answered without
//!   checksums: a full-object checksum on a partial body makes the SDKs reject it.
//! - No credentials yet means `ServiceUnavailable` without an AWS call.
//! - An aws-chunked upload's trailing checksum is checked against the data (`trailer`).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::operation as op;
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::Stream;
use s3s::dto::*;
use s3s::stream::{ByteStream, RemainingLength};
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, StdError, S3};
use s3s_aws::Proxy;

use super::credentials::CredentialState;
use super::note::Note;
use super::trailer;
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

/// An upload's body, ready to forward: an aws-chunked upload's trailing checksum checked as
/// the body streams (`trailer`), watched so that a failure mid-upload is explained, and its
/// first piece read before AWS is called, so that a body refused at once (a chunk too large,
/// an unsigned chunk in a signed upload, a wrong first signature) sends nothing to AWS.
async fn upload_body(
    body: &mut Option<StreamingBlob>,
    headers: &hyper::HeaderMap,
    trailers: Option<&s3s::TrailingHeaders>,
    note: Option<&Note>,
) -> S3Result<BodyWatch> {
    let checked = trailer::check(body, headers, trailers).await;
    let checked = match checked {
        Ok(()) => prime(body).await.map_err(|e| {
            note.and_then(Note::body_refusal)
                .or_else(|| BodyWatch::explain(&e.to_string()))
                .unwrap_or_else(|| incomplete(&e.to_string()))
        }),
        Err(e) => Err(e),
    };
    if let (Err(e), Some(note)) = (&checked, note) {
        note.error(e.code().as_str());
    }
    checked?;
    Ok(BodyWatch::wrap(body))
}

/// Reads the body's first piece and puts it back in front.
async fn prime(body: &mut Option<StreamingBlob>) -> Result<(), StdError> {
    use futures::StreamExt;
    let Some(mut inner) = body.take() else {
        return Ok(());
    };
    let first = match inner.next().await {
        Some(Err(e)) => return Err(e),
        Some(Ok(first)) => Some(first),
        None => None,
    };
    *body = Some(StreamingBlob::new(Primed { first, inner }));
    Ok(())
}

fn incomplete(detail: &str) -> S3Error {
    let mut e = S3Error::with_message(
        S3ErrorCode::IncompleteBody,
        format!("The request body could not be read ({detail})"),
    );
    e.set_status_code(hyper::StatusCode::BAD_REQUEST);
    e
}

/// S3 stores an object's Content-Encoding without `aws-chunked`, which describes only how the
/// client sent the body to the gateway; the body forwarded is already decoded.
fn without_aws_chunked(encoding: &mut Option<String>) {
    if let Some(value) = encoding.as_deref() {
        let rest: Vec<&str> = value
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty() && !e.eq_ignore_ascii_case("aws-chunked"))
            .collect();
        *encoding = (!rest.is_empty()).then(|| rest.join(","));
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

/// Remembers why an upload body failed. s3s checks the payload's SHA-256 (or each chunk's
/// signature) while the body streams to S3, so a tampered body fails mid-upload; the SDK
/// then reports only that sending failed, and this says why.
#[derive(Clone, Default)]
struct BodyWatch(Arc<Mutex<Option<String>>>);

impl BodyWatch {
    fn wrap(body: &mut Option<StreamingBlob>) -> BodyWatch {
        let watch = BodyWatch::default();
        if let Some(inner) = body.take() {
            *body = Some(StreamingBlob::new(Watched {
                inner,
                watch: watch.clone(),
            }));
        }
        watch
    }

    fn failure(&self) -> Option<S3Error> {
        let seen = self.0.lock().ok()?.clone()?;
        BodyWatch::explain(&seen)
    }

    /// The S3 error for a body that failed with `seen`.
    fn explain(seen: &str) -> Option<S3Error> {
        if seen.contains(trailer::MISMATCH) {
            return Some(trailer::bad_digest(seen));
        }
        let (code, message) = if seen.contains("Sha256Mismatch") {
            (
                S3ErrorCode::Custom("XAmzContentSHA256Mismatch".into()),
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
            )
        } else if seen.contains("SignatureMismatch") {
            (
                S3ErrorCode::SignatureDoesNotMatch,
                "The request signature we calculated does not match the signature you provided.",
            )
        } else {
            (
                S3ErrorCode::IncompleteBody,
                "You did not provide the number of bytes specified by the Content-Length HTTP header.",
            )
        };
        let mut e = S3Error::with_message(code, message);
        if e.status_code().is_none() {
            e.set_status_code(hyper::StatusCode::BAD_REQUEST);
        }
        Some(e)
    }
}

/// A body whose first piece was read ahead ([`prime`]).
struct Primed {
    first: Option<Bytes>,
    inner: StreamingBlob,
}

impl Stream for Primed {
    type Item = Result<Bytes, StdError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(first)));
        }
        Pin::new(&mut self.inner).poll_next(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let (lo, hi) = self.inner.size_hint();
        let n = self.first.as_ref().map_or(0, Bytes::len);
        (lo.saturating_add(n), hi.map(|h| h.saturating_add(n)))
    }
}

impl ByteStream for Primed {
    fn remaining_length(&self) -> RemainingLength {
        let n = self.first.as_ref().map_or(0, Bytes::len);
        match self.inner.remaining_length().exact() {
            Some(rest) => RemainingLength::new_exact(rest + n),
            None => RemainingLength::unknown(),
        }
    }
}

struct Watched {
    inner: StreamingBlob,
    watch: BodyWatch,
}

impl Stream for Watched {
    type Item = Result<Bytes, StdError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = Pin::new(&mut self.inner).poll_next(cx);
        if let Poll::Ready(Some(Err(e))) = &polled {
            if let Ok(mut seen) = self.watch.0.lock() {
                seen.get_or_insert_with(|| e.to_string());
            }
        }
        polled
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl ByteStream for Watched {
    fn remaining_length(&self) -> RemainingLength {
        self.inner.remaining_length()
    }
}
