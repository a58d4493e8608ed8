//! A response body re-cut into pieces of at least `min` bytes (the last may be shorter): the
//! gateway benchmark's backend answering the way S3 does (TLS records of up to 16 KiB, written
//! in large pieces) instead of s3s-fs's 4 KiB reads, to tell the backend's share of a GET
//! from the gateway's (`benches/gateway_parity.rs --backend-pieces-kib N`).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use hyper::body::{Body, Frame, SizeHint};

pub struct Pieces<B> {
    inner: Pin<Box<B>>,
    buf: BytesMut,
    min: usize,
    /// A non-data frame (trailers) that arrived while data was buffered.
    held: Option<Frame<Bytes>>,
    done: bool,
}

impl<B> Pieces<B> {
    pub fn new(inner: B, min: usize) -> Self {
        Pieces {
            inner: Box::pin(inner),
            buf: BytesMut::new(),
            min: min.max(1),
            held: None,
            done: false,
        }
    }

    fn flush(&mut self) -> Option<Frame<Bytes>> {
        (!self.buf.is_empty()).then(|| Frame::data(self.buf.split().freeze()))
    }
}

impl<B> Body for Pieces<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        loop {
            if this.done {
                let next = this.flush().or_else(|| this.held.take());
                return Poll::Ready(next.map(Ok));
            }
            match this.inner.as_mut().poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        this.buf.extend_from_slice(&data);
                        if this.buf.len() >= this.min {
                            return Poll::Ready(this.flush().map(Ok));
                        }
                    }
                    Err(other) => {
                        this.held = Some(other);
                        this.done = true;
                    }
                },
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => this.done = true,
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.buf.is_empty() && self.held.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        let inner = self.inner.size_hint();
        let held = self.buf.len() as u64;
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower() + held);
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper + held);
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};

    #[tokio::test]
    async fn pieces_join_small_frames_and_keep_every_byte() {
        let frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = (0..10u8)
            .map(|i| Ok(Frame::data(Bytes::from(vec![i; 4096]))))
            .collect();
        let inner = StreamBody::new(futures::stream::iter(frames));
        let mut body = Pieces::new(inner, 16 * 1024);
        let mut sizes = Vec::new();
        let mut all = Vec::new();
        while let Some(frame) = body.frame().await {
            let data = frame.unwrap().into_data().unwrap();
            sizes.push(data.len());
            all.extend_from_slice(&data);
        }
        assert_eq!(sizes, vec![16384, 16384, 8192]);
        assert_eq!(all.len(), 40960);
        assert!(all
            .chunks(4096)
            .enumerate()
            .all(|(i, c)| c.iter().all(|b| usize::from(*b) == i)));
    }
}
