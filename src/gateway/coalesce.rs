//! Larger writes for downloads. A backend may deliver an object's body in small pieces (a
//! file-system S3 server writes 4 KiB at a time); relayed one by one, every piece costs a
//! write to the client. This joins the pieces that are already there, up to [`TARGET`] bytes,
//! and never waits for more: a piece is passed on as soon as nothing else is ready, so no
//! latency is added, and at most [`TARGET`] bytes are held per download.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures::Stream;
use s3s::dto::StreamingBlob;
use s3s::stream::{ByteStream, RemainingLength};
use s3s::StdError;

/// Pieces already available are joined up to this size.
pub const TARGET: usize = 64 * 1024;

pub struct Coalesced {
    inner: StreamingBlob,
    /// An error that followed joined bytes: passed on at the next poll.
    stashed: Option<StdError>,
    done: bool,
}

impl Coalesced {
    pub fn wrap(body: Option<StreamingBlob>) -> Option<StreamingBlob> {
        body.map(|inner| {
            StreamingBlob::new(Coalesced {
                inner,
                stashed: None,
                done: false,
            })
        })
    }
}

impl Stream for Coalesced {
    type Item = Result<Bytes, StdError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(e) = self.stashed.take() {
            return Poll::Ready(Some(Err(e)));
        }
        if self.done {
            return Poll::Ready(None);
        }
        let mut joined: Option<BytesMut> = None;
        loop {
            match Pin::new(&mut self.inner).poll_next(cx) {
                Poll::Ready(Some(Ok(piece))) => match joined.as_mut() {
                    None if piece.len() >= TARGET => return Poll::Ready(Some(Ok(piece))),
                    None => joined = Some(BytesMut::from(&piece[..])),
                    Some(buf) => {
                        buf.extend_from_slice(&piece);
                        if buf.len() >= TARGET {
                            return Poll::Ready(joined.map(|b| Ok(b.freeze())));
                        }
                    }
                },
                Poll::Ready(Some(Err(e))) => {
                    return Poll::Ready(Some(match joined {
                        Some(b) => {
                            self.stashed = Some(e);
                            Ok(b.freeze())
                        }
                        None => Err(e),
                    }));
                }
                Poll::Ready(None) => {
                    self.done = true;
                    return Poll::Ready(joined.map(|b| Ok(b.freeze())));
                }
                Poll::Pending => {
                    return match joined {
                        Some(b) => Poll::Ready(Some(Ok(b.freeze()))),
                        None => Poll::Pending,
                    }
                }
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl ByteStream for Coalesced {
    /// Nothing is held between polls, so what remains is what the backend has still to send.
    fn remaining_length(&self) -> RemainingLength {
        self.inner.remaining_length()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn blob(pieces: Vec<Result<Bytes, std::io::Error>>) -> StreamingBlob {
        StreamingBlob::wrap(futures::stream::iter(pieces))
    }

    #[tokio::test]
    async fn ready_pieces_are_joined_up_to_the_target_and_nothing_is_lost() {
        let pieces: Vec<Result<Bytes, std::io::Error>> =
            (0..40u8).map(|i| Ok(Bytes::from(vec![i; 4096]))).collect();
        let out: Vec<Bytes> = Coalesced::wrap(Some(blob(pieces)))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
            .await;
        assert_eq!(
            out.iter().map(Bytes::len).collect::<Vec<_>>(),
            [TARGET, TARGET, 32768]
        );
        let all: Vec<u8> = out.concat();
        let expected: Vec<u8> = (0..40u8).flat_map(|i| vec![i; 4096]).collect();
        assert_eq!(all, expected);
    }

    #[tokio::test]
    async fn an_error_after_joined_bytes_still_reaches_the_client() {
        let pieces: Vec<Result<Bytes, std::io::Error>> = vec![
            Ok(Bytes::from_static(b"abc")),
            Err(std::io::Error::other("backend connection reset")),
        ];
        let out: Vec<Result<Bytes, StdError>> =
            Coalesced::wrap(Some(blob(pieces))).unwrap().collect().await;
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].as_ref().unwrap().as_ref(), b"abc");
        assert!(out[1].is_err());
    }
}
