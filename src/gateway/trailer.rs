//! The trailing checksum of an `aws-chunked` upload, checked against the bytes forwarded.
//!
//! Over HTTPS, SDKs with the 2025 default checksums send streamed uploads as `aws-chunked`
//! with `x-amz-content-sha256: STREAMING-UNSIGNED-PAYLOAD-TRAILER`: no signature covers the
//! data, only a checksum that comes after it (`x-amz-trailer: x-amz-checksum-crc32`, its
//! value in the trailer). s3s decodes the chunks and hands the trailer over once the body is
//! read, but does not compare it with the data. This does, as S3 would: the body is hashed
//! as it streams to S3, and its last bytes are held back until the trailer has been checked.
//! On a mismatch S3 never receives the whole `Content-Length`, so no object is written, and
//! the client gets `BadDigest`.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use hyper::HeaderMap;
use s3s::checksum::ChecksumHasher;
use s3s::crypto::{Checksum, Crc32, Crc32c, Crc64Nvme, Sha1, Sha256};
use s3s::dto::StreamingBlob;
use s3s::stream::{ByteStream, RemainingLength};
use s3s::{s3_error, S3Result, StdError, TrailingHeaders};

/// The words a failed body's error carries, for `forward`'s `BodyWatch`.
pub const MISMATCH: &str = "TrailingChecksumMismatch";

/// The checksum headers S3 accepts as a trailer.
const NAMES: &[&str] = &[
    "x-amz-checksum-crc32",
    "x-amz-checksum-crc32c",
    "x-amz-checksum-crc64nvme",
    "x-amz-checksum-sha1",
    "x-amz-checksum-sha256",
];

/// When the request announced a trailing checksum, wraps `body` so that it is checked. An
/// empty body is read here (there are no bytes to hold back), so its trailer is checked
/// before anything is sent. Without a trailer, nothing changes.
pub async fn check(
    body: &mut Option<StreamingBlob>,
    headers: &HeaderMap,
    trailers: Option<&TrailingHeaders>,
) -> S3Result<()> {
    let (Some(trailers), Some(named)) = (trailers, headers.get("x-amz-trailer")) else {
        return Ok(());
    };
    let named = named
        .to_str()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let Some(name) = NAMES.iter().copied().find(|n| *n == named) else {
        return Err(s3_error!(
            InvalidRequest,
            "The gateway checks only x-amz-checksum-* trailers, not {named:?}"
        ));
    };
    let Some(inner) = body.take() else {
        return Ok(());
    };
    let mut checked = Checked {
        inner,
        hasher: Some(hasher(name)),
        name,
        trailers: trailers.clone(),
        held: None,
        finished: false,
    };
    if checked.inner.remaining_length().exact() == Some(0) {
        while let Some(next) = checked.next().await {
            if let Err(e) = next {
                return Err(bad_digest(&e.to_string()));
            }
        }
        *body = Some(StreamingBlob::wrap(futures::stream::empty::<
            Result<Bytes, std::io::Error>,
        >()));
        return Ok(());
    }
    *body = Some(StreamingBlob::new(checked));
    Ok(())
}

/// S3's answer to a checksum that does not match the data.
pub fn bad_digest(detail: &str) -> s3s::S3Error {
    let mut e = s3_error!(
        BadDigest,
        "The checksum in the request's trailer did not match the data received ({detail})"
    );
    if e.status_code().is_none() {
        e.set_status_code(hyper::StatusCode::BAD_REQUEST);
    }
    e
}

fn hasher(name: &str) -> ChecksumHasher {
    let mut h = ChecksumHasher::default();
    match name {
        "x-amz-checksum-crc32" => h.crc32 = Some(Crc32::new()),
        "x-amz-checksum-crc32c" => h.crc32c = Some(Crc32c::new()),
        "x-amz-checksum-crc64nvme" => h.crc64nvme = Some(Crc64Nvme::new()),
        "x-amz-checksum-sha1" => h.sha1 = Some(Sha1::new()),
        _ => h.sha256 = Some(Sha256::new()),
    }
    h
}

struct Checked {
    inner: StreamingBlob,
    hasher: Option<ChecksumHasher>,
    name: &'static str,
    trailers: TrailingHeaders,
    /// The latest bytes, forwarded only once the next ones (or the verdict) are in.
    held: Option<Bytes>,
    finished: bool,
}

impl Checked {
    /// Compares the trailer with what was hashed; the error is the body's error.
    fn verdict(&mut self) -> Result<(), String> {
        let computed = self.hasher.take().map(ChecksumHasher::finalize);
        let computed = computed.and_then(|c| match self.name {
            "x-amz-checksum-crc32" => c.checksum_crc32,
            "x-amz-checksum-crc32c" => c.checksum_crc32c,
            "x-amz-checksum-crc64nvme" => c.checksum_crc64nvme,
            "x-amz-checksum-sha1" => c.checksum_sha1,
            _ => c.checksum_sha256,
        });
        let sent = self
            .trailers
            .read(|h| {
                h.get(self.name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            })
            .flatten();
        match (sent, computed) {
            (Some(sent), Some(computed)) if sent.trim() == computed => Ok(()),
            (Some(_), _) => Err(format!("{MISMATCH}: {} differs from the data", self.name)),
            (None, _) => Err(format!("{MISMATCH}: the trailer carried no {}", self.name)),
        }
    }
}

impl Stream for Checked {
    type Item = Result<Bytes, StdError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if self.finished {
                return Poll::Ready(None);
            }
            match Pin::new(&mut self.inner).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(bytes))) => {
                    if let Some(h) = self.hasher.as_mut() {
                        h.update(&bytes);
                    }
                    if bytes.is_empty() {
                        continue;
                    }
                    if let Some(previous) = self.held.replace(bytes) {
                        return Poll::Ready(Some(Ok(previous)));
                    }
                }
                Poll::Ready(None) => {
                    self.finished = true;
                    return Poll::Ready(match self.verdict() {
                        Ok(()) => self.held.take().map(Ok),
                        Err(why) => Some(Err(why.into())),
                    });
                }
            }
        }
    }
}

impl ByteStream for Checked {
    fn remaining_length(&self) -> RemainingLength {
        let held = self.held.as_ref().map_or(0, Bytes::len);
        match self.inner.remaining_length().exact() {
            Some(n) => RemainingLength::new_exact(n + held),
            None => RemainingLength::unknown(),
        }
    }
}
