//! An upload's body on its way to S3: an aws-chunked upload's trailing checksum checked
//! (`trailer`), the first piece read before AWS is called, the failure of a body that breaks
//! mid-upload explained, and `aws-chunked` kept out of the stored Content-Encoding.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use s3s::dto::StreamingBlob;
use s3s::stream::{ByteStream, RemainingLength};
use s3s::{S3Error, S3ErrorCode, S3Result, StdError};

use super::note::Note;
use super::trailer;

/// An upload's body, ready to forward: an aws-chunked upload's trailing checksum checked as
/// the body streams (`trailer`), watched so that a failure mid-upload is explained, and its
/// first piece read before AWS is called, so that a body refused at once (a chunk too large,
/// an unsigned chunk in a signed upload, a wrong first signature) sends nothing to AWS.
pub async fn upload_body(
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
pub fn without_aws_chunked(encoding: &mut Option<String>) {
    if let Some(value) = encoding.as_deref() {
        let rest: Vec<&str> = value
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty() && !e.eq_ignore_ascii_case("aws-chunked"))
            .collect();
        *encoding = (!rest.is_empty()).then(|| rest.join(","));
    }
}

/// Remembers why an upload body failed. s3s checks the payload's SHA-256 (or each chunk's
/// signature) while the body streams to S3, so a tampered body fails mid-upload; the SDK
/// then reports only that sending failed, and this says why.
#[derive(Clone, Default)]
pub struct BodyWatch(Arc<Mutex<Option<String>>>);

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

    pub fn failure(&self) -> Option<S3Error> {
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
