//! Streaming bodies for the data plane: a tee that hands a capped copy of what streamed past to
//! the shadow side when the stream ends (refcounted `Bytes`, no copying on the way), a size
//! limit for request bodies, and the response body type the proxy returns.

use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::sync::oneshot;

pub type BoxError = Box<dyn StdError + Send + Sync>;

/// A request body went over `proxy.max_body` while streaming.
#[derive(Debug, thiserror::Error)]
#[error("request body is larger than {limit} bytes")]
pub struct BodyTooLarge {
    pub limit: u64,
}

/// What a tee saw, delivered when the stream ended (or was dropped).
#[derive(Debug, Default)]
pub struct Captured {
    pub body: Vec<u8>,
    /// More data streamed past than the capture cap.
    pub truncated: bool,
    /// The stream reached its end (false: aborted or failed midway).
    pub complete: bool,
    /// When the stream ended, for latency.
    pub ended: Option<Instant>,
    /// The trailers that ended it (HTTP/2, or chunked HTTP/1.1): gRPC's status is there.
    pub trailers: Option<http::HeaderMap>,
}

struct Capture {
    chunks: Vec<Bytes>,
    len: usize,
    cap: usize,
    truncated: bool,
    trailers: Option<http::HeaderMap>,
    tx: oneshot::Sender<Captured>,
}

impl Capture {
    fn push(&mut self, data: &Bytes) {
        if self.len >= self.cap {
            self.truncated |= !data.is_empty();
            return;
        }
        let room = self.cap - self.len;
        let piece = if data.len() > room {
            self.truncated = true;
            data.slice(..room)
        } else {
            data.clone()
        };
        self.len += piece.len();
        self.chunks.push(piece);
    }

    fn finish(self, complete: bool) {
        let mut body = Vec::with_capacity(self.len);
        for c in &self.chunks {
            body.extend_from_slice(c);
        }
        let _ = self.tx.send(Captured {
            body,
            truncated: self.truncated,
            complete,
            ended: Some(Instant::now()),
            trailers: self.trailers,
        });
    }
}

/// A body that sent nothing for `proxy.idle_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("no body bytes for {} ms", .after.as_millis())]
pub struct BodyIdle {
    pub after: std::time::Duration,
}

/// Wraps a body; optionally copies up to a cap of what passes, optionally enforces a limit
/// and an idle timeout.
pub struct Tee<B: Body> {
    inner: B,
    /// Boxed: only mirrored requests copy, and every body carries the field.
    capture: Option<Box<Capture>>,
    /// `u64::MAX`: no limit.
    limit: u64,
    seen: u64,
    /// Milliseconds; 0: no idle timeout.
    idle_ms: u32,
    /// Armed the first time the body makes the reader wait (a body that is ready at once, the
    /// usual small answer, never makes a timer).
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<B: Body> Tee<B> {
    pub fn new(inner: B) -> Self {
        Tee {
            inner,
            capture: None,
            limit: u64::MAX,
            seen: 0,
            idle_ms: 0,
            timer: None,
        }
    }

    /// Fails the stream with `BodyIdle` when no frame comes for `after`.
    pub fn idle(mut self, after: std::time::Duration) -> Self {
        self.idle_ms = u32::try_from(after.as_millis()).unwrap_or(u32::MAX).max(1);
        self
    }

    /// On a wait: arms or polls the idle timer; true when it has run out.
    fn idled(&mut self, cx: &mut Context<'_>) -> bool {
        if self.idle_ms == 0 {
            return false;
        }
        let after = std::time::Duration::from_millis(u64::from(self.idle_ms));
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(after)));
        timer.as_mut().poll(cx).is_ready()
    }

    /// Fails the stream with `BodyTooLarge` past `limit` bytes.
    pub fn limit(mut self, limit: u64) -> Self {
        self.limit = limit;
        self
    }

    /// Copies up to `cap` bytes and returns where the copy arrives.
    pub fn capture(&mut self, cap: usize) -> oneshot::Receiver<Captured> {
        let (tx, rx) = oneshot::channel();
        self.capture = Some(Box::new(Capture {
            chunks: Vec::new(),
            len: 0,
            cap,
            truncated: false,
            trailers: None,
            tx,
        }));
        rx
    }
}

impl<B: Body> Drop for Tee<B> {
    fn drop(&mut self) {
        if let Some(c) = self.capture.take() {
            // A body at its end when dropped is whole even if never polled: hyper's HTTP/2
            // server sends an empty one (a gRPC trailers-only answer) without polling it.
            let whole = self.inner.is_end_stream();
            c.finish(whole);
        }
    }
}

impl<B> Body for Tee<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let res = match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(res) => res,
            Poll::Pending if this.idled(cx) => {
                let after = std::time::Duration::from_millis(u64::from(this.idle_ms));
                if let Some(c) = this.capture.take() {
                    c.finish(false);
                }
                return Poll::Ready(Some(Err(Box::new(BodyIdle { after }))));
            }
            Poll::Pending => return Poll::Pending,
        };
        if let Some(timer) = this.timer.as_mut() {
            let after = std::time::Duration::from_millis(u64::from(this.idle_ms));
            timer.as_mut().reset(tokio::time::Instant::now() + after);
        }
        match res {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    this.seen += data.len() as u64;
                    let limit = this.limit;
                    if this.seen > limit {
                        if let Some(c) = this.capture.take() {
                            c.finish(false);
                        }
                        return Poll::Ready(Some(Err(Box::new(BodyTooLarge { limit }))));
                    }
                    if let Some(c) = &mut this.capture {
                        c.push(data);
                    }
                } else if let (Some(t), Some(c)) = (frame.trailers_ref(), &mut this.capture) {
                    c.trailers = Some(t.clone());
                }
                if this.inner.is_end_stream() {
                    if let Some(c) = this.capture.take() {
                        c.finish(true);
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(e)) => {
                if let Some(c) = this.capture.take() {
                    c.finish(false);
                }
                Poll::Ready(Some(Err(e.into())))
            }
            None => {
                if let Some(c) = this.capture.take() {
                    c.finish(true);
                }
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A failure reading the client's request body (a malformed chunk, a reset), marked so that
/// it is told apart from the upstream's failures when the upstream exchange fails with it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ClientBodyError(#[source] pub BoxError);

/// The body of a request sent upstream: empty (retryable) or the client's stream.
pub enum UpstreamBody {
    Empty,
    Stream(Tee<Incoming>),
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            UpstreamBody::Empty => Poll::Ready(None),
            UpstreamBody::Stream(t) => Pin::new(t)
                .poll_frame(cx)
                .map_err(|e| Box::new(ClientBodyError(e)) as BoxError),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Empty => true,
            UpstreamBody::Stream(t) => t.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Empty => SizeHint::with_exact(0),
            UpstreamBody::Stream(t) => t.size_hint(),
        }
    }
}

/// A shadow response's body as read: up to the cap, and its trailers.
pub struct Collected {
    pub body: Vec<u8>,
    pub truncated: bool,
    pub trailers: Option<http::HeaderMap>,
}

/// Reads a whole body up to `cap` bytes (the rest is read and discarded), for shadow responses.
pub async fn collect_capped<B>(mut body: B, cap: usize) -> Result<Collected, BoxError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    use http_body_util::BodyExt;
    let mut out = Collected {
        body: Vec::new(),
        truncated: false,
        trailers: None,
    };
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(Into::into)?;
        match frame.into_data() {
            Ok(d) => {
                let room = cap.saturating_sub(out.body.len());
                out.truncated |= d.len() > room;
                out.body.extend_from_slice(&d[..d.len().min(room)]);
            }
            Err(frame) => out.trailers = frame.into_trailers().ok(),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt as _, Empty, StreamBody};

    #[tokio::test]
    async fn an_empty_body_dropped_unpolled_is_captured_whole() {
        let mut tee = Tee::new(Empty::<Bytes>::new());
        let rx = tee.capture(100);
        drop(tee);
        let got = rx.await.unwrap();
        assert!(got.complete && got.body.is_empty());
    }

    #[tokio::test]
    async fn trailers_are_captured_and_collected() {
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
        let frames = || {
            let frames: Vec<Result<Frame<Bytes>, BoxError>> = vec![
                Ok(Frame::data(Bytes::from_static(b"abc"))),
                Ok(Frame::trailers(trailers.clone())),
            ];
            StreamBody::new(futures_util::stream::iter(frames))
        };
        let mut tee = Tee::new(frames());
        let rx = tee.capture(100);
        let passed = tee.collect().await.unwrap();
        assert_eq!(passed.trailers(), Some(&trailers), "passed on");
        let got = rx.await.unwrap();
        assert_eq!((got.body.as_slice(), got.complete), (&b"abc"[..], true));
        assert_eq!(got.trailers.as_ref(), Some(&trailers));

        let got = collect_capped(frames(), 2).await.unwrap();
        assert_eq!((got.body.as_slice(), got.truncated), (&b"ab"[..], true));
        assert_eq!(got.trailers.as_ref(), Some(&trailers));
    }
}
