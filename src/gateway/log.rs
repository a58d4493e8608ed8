//! One structured line per request: operation, bucket, key, status, bytes in and out,
//! latency and the caller's access key id. Never a header's value, a signature or a secret.
//!
//! The line is written when the response body is finished or dropped, so the bytes and the
//! latency cover the whole streamed transfer, not only the time to the first byte.
//! [`super::access`] fills in who asked for what ([`Note`], in `note`), because only s3s knows
//! the operation; a request refused before that (a bad signature) is logged without one, but
//! with the S3 error code it was answered with.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::{Method, Request, Response};
use s3s::service::S3Service;
use s3s::HttpError;

use super::metrics::{Finished, Metrics};
use super::note::Note;
use super::{chunks, early};

/// Handles one request through s3s, counting and logging it.
pub async fn handle(
    s3: S3Service,
    metrics: Arc<Metrics>,
    peer: SocketAddr,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Logged<s3s::Body>>, HttpError> {
    let started = Instant::now();
    let note = Note::default();
    let bytes_in = Arc::new(AtomicU64::new(0));
    let line = Line {
        started,
        peer,
        method: req.method().clone(),
        note: note.clone(),
        bytes_in: bytes_in.clone(),
        status: 0,
        metrics,
    };
    let response = if let Some(e) = early::refuse_early(req.method(), req.uri(), req.headers()) {
        note.error(e.code().as_str());
        note.refuse(early::reason(&e));
        e.to_http_response()
            .map_err(|e| HttpError::new(Box::new(e)))?
    } else {
        let (mut parts, body) = req.into_parts();
        let declared = parts
            .headers
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let counted = Counted {
            inner: body,
            count: bytes_in,
            declared,
            note: note.clone(),
        };
        let body = match chunks::mode(&parts.headers) {
            Some(mode) => s3s::Body::http_body(chunks::Framing::new(counted, mode, note.clone())),
            None => s3s::Body::http_body(counted),
        };
        parts.extensions.insert(note.clone());
        let response = s3.call(Request::from_parts(parts, body)).await?;
        if response.status().is_client_error() && note.lock().error.is_none() {
            // Refused before `access` (a bad signature, an unknown key): the code is in the body.
            if let Some(code) = response.body().bytes().as_deref().and_then(error_code) {
                note.error(code);
                note.refuse(if AUTHENTICATION.contains(&code) {
                    "authentication"
                } else {
                    "request"
                });
            }
        }
        response
    };
    let status = response.status().as_u16();
    let length = response
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    Ok(response.map(|inner| Logged {
        inner,
        bytes_out: 0,
        length,
        line: Some(Line { status, ..line }),
    }))
}

/// The codes s3s answers a request with when its signature or key is wrong.
const AUTHENTICATION: &[&str] = &[
    "AccessDenied",
    "AuthorizationHeaderMalformed",
    "AuthorizationQueryParametersError",
    "ExpiredToken",
    "IncompleteSignature",
    "InvalidAccessKeyId",
    "InvalidRequest",
    "MissingSecurityHeader",
    "RequestTimeTooSkewed",
    "SignatureDoesNotMatch",
];

/// The S3 error code of an error response's XML body.
fn error_code(body: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(body).ok()?;
    let start = text.find("<Code>")? + "<Code>".len();
    let len = text[start..].find("</Code>")?;
    Some(&text[start..start + len])
}

/// The request body, counted as it streams to S3. A body that ends (or fails) before its
/// `Content-Length` is noted as `IncompleteBody`, so the client learns it sent too little.
pub struct Counted<B> {
    inner: B,
    count: Arc<AtomicU64>,
    declared: Option<u64>,
    note: Note,
}

impl<B: Body<Data = Bytes> + Unpin> Body for Counted<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.count.fetch_add(data.len() as u64, Ordering::Relaxed);
                }
            }
            Poll::Ready(None | Some(Err(_))) => {
                let count = self.count.load(Ordering::Relaxed);
                if let Some(declared) = self.declared.filter(|d| count < *d) {
                    self.note.refuse_body(
                        s3s::S3ErrorCode::IncompleteBody,
                        format!(
                            "You did not provide the number of bytes specified by the Content-Length HTTP header ({count} of {declared})"
                        ),
                    );
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

struct Line {
    started: Instant,
    peer: SocketAddr,
    method: Method,
    note: Note,
    bytes_in: Arc<AtomicU64>,
    status: u16,
    metrics: Arc<Metrics>,
}

impl Line {
    fn emit(&self, bytes_out: u64, complete: bool) {
        let f = self.note.lock();
        let latency = self.started.elapsed();
        let bytes_in = self.bytes_in.load(Ordering::Relaxed);
        self.metrics.finished(&Finished {
            operation: f.op.as_deref().unwrap_or("-"),
            status: self.status,
            refusal: f.refusal,
            backend_error: f.backend_error.as_deref(),
            bytes_in,
            bytes_out,
            duration: latency,
        });
        tracing::info!(
            op = f.op.as_deref().unwrap_or("-"),
            method = %self.method,
            bucket = f.bucket.as_deref().unwrap_or("-"),
            // Control characters and quotes escaped, so a key cannot forge log lines; no
            // surrounding quotes, so the JSON value is the key itself.
            key = %f.key.as_deref().unwrap_or("-").escape_debug(),
            status = self.status,
            error = f.error.as_deref().unwrap_or("-"),
            bytes_in,
            bytes_out,
            latency_ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
            caller = f.caller.as_deref().unwrap_or("-"),
            peer = %self.peer,
            complete,
            "request"
        );
    }
}

/// The response body: counted, and the request's line written when it ends or is dropped
/// (`complete = false` when the client went away before the end). With a `Content-Length`,
/// the end is its last byte: hyper stops polling there, before the body says it is over.
pub struct Logged<B: Body> {
    inner: B,
    bytes_out: u64,
    length: Option<u64>,
    line: Option<Line>,
}

impl<B: Body<Data = Bytes> + Unpin> Body for Logged<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.bytes_out += data.len() as u64;
                }
                if self.length == Some(self.bytes_out) {
                    if let Some(line) = self.line.take() {
                        line.emit(self.bytes_out, true);
                    }
                }
            }
            Poll::Ready(None) => {
                if let Some(line) = self.line.take() {
                    line.emit(self.bytes_out, true);
                }
            }
            Poll::Ready(Some(Err(_))) | Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B: Body> Drop for Logged<B> {
    fn drop(&mut self) {
        // Bodies hyper never polls (HEAD, empty answers) end here, complete.
        let complete = self.inner.is_end_stream()
            || self.length == Some(self.bytes_out)
            || self.line.as_ref().is_some_and(|l| l.method == Method::HEAD);
        if let Some(line) = self.line.take() {
            line.emit(self.bytes_out, complete);
        }
    }
}
