//! The framing of an `aws-chunked` upload, checked on the raw body before s3s decodes it.
//!
//! s3s reads each chunk whole into memory before it checks the chunk's signature, and takes
//! a chunk size of up to 4 GiB from the client. So, as the bytes arrive:
//! - a signed chunk (`;chunk-signature=`) larger than [`MAX_SIGNED_CHUNK`] is refused at its
//!   header, before its data is read (`EntityTooLarge`). minio-go signs 64 KiB chunks, the
//!   Java and .NET SDKs 128 KiB and 80 KiB: 1 MiB is 8 times the largest;
//! - an unsigned chunk (`STREAMING-UNSIGNED-PAYLOAD-TRAILER`, whose integrity is the trailing
//!   checksum) may be any size: aws-sdk-go-v2 sends a body of known length as one chunk. It
//!   is re-framed into one chunk per piece as the piece arrives, which decodes to the same
//!   bytes, so s3s never holds more than one piece;
//! - in a signed stream every chunk must carry its signature (`SignatureDoesNotMatch`);
//! - the chunk sizes must add up to `x-amz-decoded-content-length` exactly, checked at each
//!   chunk header and at the last one (`IncompleteBody`), so a body that declares fewer bytes
//!   than it sends is not stored cut short, and one that declares more is not stored at all.
//!
//! A refusal ends the body with an error and is noted ([`Note::refuse_body`]) for `forward`
//! to answer; S3 never receives the whole declared length, so nothing is stored.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use hyper::HeaderMap;
use s3s::S3ErrorCode;

use super::note::Note;

/// The largest signed chunk accepted (s3s holds one whole chunk to check its signature).
pub const MAX_SIGNED_CHUNK: u64 = 1024 * 1024;
/// A chunk header (`size;chunk-signature=<64 hex>\r\n`) is about 90 bytes; s3s allows 1 KiB.
const MAX_META: usize = 1024;

/// Whether the request's body is aws-chunked, and if so whether its chunks must be signed.
pub fn mode(headers: &HeaderMap) -> Option<Mode> {
    let sha = headers.get("x-amz-content-sha256")?.to_str().ok()?;
    if !sha.starts_with("STREAMING-") {
        return None;
    }
    let declared = headers
        .get("x-amz-decoded-content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    Some(Mode {
        signed: !sha.starts_with("STREAMING-UNSIGNED"),
        declared,
    })
}

#[derive(Debug, Clone, Copy)]
pub struct Mode {
    signed: bool,
    declared: Option<u64>,
}

enum State {
    /// Reading a chunk header.
    Meta(Vec<u8>),
    /// Inside a chunk's data.
    Data {
        left: u64,
        reframe: bool,
    },
    /// The CRLF after a chunk's data: how many of its two bytes are read.
    DataEnd {
        seen: u8,
        reframe: bool,
    },
    /// After the last chunk: the trailer, passed on as it is.
    Trailer,
    Failed,
}

/// The raw body, checked and re-framed as described above.
pub struct Framing<B> {
    inner: B,
    mode: Mode,
    note: Note,
    state: State,
    total: u64,
    out: VecDeque<Bytes>,
}

impl<B> Framing<B> {
    pub fn new(inner: B, mode: Mode, note: Note) -> Self {
        Framing {
            inner,
            mode,
            note,
            state: State::Meta(Vec::new()),
            total: 0,
            out: VecDeque::new(),
        }
    }

    fn refuse(&mut self, code: S3ErrorCode, message: String) -> std::io::Error {
        self.state = State::Failed;
        self.out.clear();
        self.note.refuse_body(code, message.clone());
        std::io::Error::new(std::io::ErrorKind::InvalidData, message)
    }

    fn length_mismatch(&mut self) -> std::io::Error {
        let declared = self.mode.declared.unwrap_or_default();
        self.refuse(
            S3ErrorCode::IncompleteBody,
            format!(
                "The chunks do not add up to x-amz-decoded-content-length ({declared} bytes declared)"
            ),
        )
    }

    /// Feeds one piece of the raw body; what s3s should see goes to `out`.
    fn feed(&mut self, mut input: Bytes) -> Result<(), std::io::Error> {
        while !input.is_empty() {
            match &mut self.state {
                State::Failed => return Ok(()),
                State::Trailer => {
                    self.out.push_back(input.split_to(input.len()));
                }
                State::Meta(buf) => {
                    let end = input.iter().position(|b| *b == b'\n');
                    let take = end.map_or(input.len(), |i| i + 1);
                    buf.extend_from_slice(&input[..take]);
                    input.advance(take);
                    if buf.len() > MAX_META {
                        return Err(self.refuse(
                            S3ErrorCode::IncompleteBody,
                            "An aws-chunked chunk header is longer than 1 KiB".into(),
                        ));
                    }
                    if end.is_some() {
                        let line = std::mem::take(buf);
                        self.header(line)?;
                    }
                }
                State::Data { left, reframe } => {
                    let n = usize::try_from(*left)
                        .unwrap_or(usize::MAX)
                        .min(input.len());
                    let piece = input.split_to(n);
                    *left -= n as u64;
                    let reframe = *reframe;
                    if *left == 0 {
                        self.state = State::DataEnd { seen: 0, reframe };
                    }
                    if reframe {
                        self.out.push_back(Bytes::from(format!("{n:x}\r\n")));
                        self.out.push_back(piece);
                        self.out.push_back(Bytes::from_static(b"\r\n"));
                    } else {
                        self.out.push_back(piece);
                    }
                }
                State::DataEnd { seen, reframe } => {
                    let expected = b"\r\n"[usize::from(*seen)];
                    if input[0] != expected {
                        return Err(self.refuse(
                            S3ErrorCode::IncompleteBody,
                            "An aws-chunked chunk is longer than its header says".into(),
                        ));
                    }
                    input.advance(1);
                    *seen += 1;
                    if !*reframe {
                        let byte: &'static [u8] = if expected == b'\r' { b"\r" } else { b"\n" };
                        self.out.push_back(Bytes::from_static(byte));
                    }
                    if *seen == 2 {
                        self.state = State::Meta(Vec::new());
                    }
                }
            }
        }
        Ok(())
    }

    /// A complete chunk header line (with its CRLF).
    fn header(&mut self, line: Vec<u8>) -> Result<(), std::io::Error> {
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        let (size, ext) = text.split_once(';').unwrap_or((text, ""));
        let size = (size.len() <= 16)
            .then(|| u64::from_str_radix(size, 16).ok())
            .flatten();
        let Some(size) = size else {
            return Err(self.refuse(
                S3ErrorCode::IncompleteBody,
                "An aws-chunked chunk header has no valid size".into(),
            ));
        };
        let signed = ext.starts_with("chunk-signature=");
        if self.mode.signed && !signed {
            return Err(self.refuse(
                S3ErrorCode::SignatureDoesNotMatch,
                "An aws-chunked chunk of a signed upload carries no chunk-signature".into(),
            ));
        }
        self.total = self.total.saturating_add(size);
        if let Some(declared) = self.mode.declared {
            if self.total > declared || (size == 0 && self.total != declared) {
                return Err(self.length_mismatch());
            }
        }
        if size == 0 {
            self.out.push_back(Bytes::from(line));
            self.state = State::Trailer;
            return Ok(());
        }
        if signed && size > MAX_SIGNED_CHUNK {
            return Err(self.refuse(
                S3ErrorCode::EntityTooLarge,
                format!(
                    "A signed aws-chunked chunk of {size} bytes is over the gateway's limit of {MAX_SIGNED_CHUNK}"
                ),
            ));
        }
        if signed {
            self.out.push_back(Bytes::from(line));
        }
        self.state = State::Data {
            left: size,
            reframe: !signed,
        };
        Ok(())
    }

    /// The raw body ended: anything but the trailer state means it ended early.
    fn finish(&mut self) -> Option<std::io::Error> {
        match &self.state {
            State::Trailer | State::Failed => None,
            State::Meta(buf) if buf.is_empty() && self.mode.declared.is_none() => None,
            _ => Some(self.length_mismatch()),
        }
    }
}

impl<B> Body for Framing<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        loop {
            if let Some(next) = self.out.pop_front() {
                if next.is_empty() {
                    continue;
                }
                return Poll::Ready(Some(Ok(Frame::data(next))));
            }
            if matches!(self.state, State::Failed) {
                return Poll::Ready(None);
            }
            match Pin::new(&mut self.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        if let Err(e) = self.feed(data) {
                            return Poll::Ready(Some(Err(e.into())));
                        }
                    }
                    Err(other) => return Poll::Ready(Some(Ok(other))),
                },
                Poll::Ready(None) => {
                    return Poll::Ready(self.finish().map(|e| Err(e.into())));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.out.is_empty() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
