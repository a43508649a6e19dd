//! The two bodies the proxy wraps: the client's request body, which can be
//! taken back as long as the upstream client never started reading it (so a
//! request whose connection failed can go to another instance), and the
//! upstream response body, which carries the request's in-flight guard until
//! it ends or is dropped.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};

use super::metrics::{ErrorReason, Metrics};
use super::pool::InFlight;
use super::upstream::Lease;

/// A request body that stays in a shared slot until it is first read.
pub struct OnceBody<B> {
    slot: Arc<Mutex<Option<B>>>,
    /// The body, once taken out of the slot by the first read.
    body: Option<B>,
}

/// The other handle of a [`OnceBody`]: gives the body back if it was never read.
pub struct Reclaim<B> {
    slot: Arc<Mutex<Option<B>>>,
}

impl<B> OnceBody<B> {
    pub fn new(body: B) -> (Self, Reclaim<B>) {
        let slot = Arc::new(Mutex::new(Some(body)));
        (
            OnceBody {
                slot: Arc::clone(&slot),
                body: None,
            },
            Reclaim { slot },
        )
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<B>> {
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<B> Reclaim<B> {
    /// The body, if nothing of it was read.
    pub fn take(self) -> Option<B> {
        self.slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

impl<B: Body + Unpin> Body for OnceBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        if self.body.is_none() {
            let taken = self.slot().take();
            self.body = taken;
        }
        match self.body.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            // Reclaimed: the request it belonged to was given up.
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.body {
            Some(body) => body.is_end_stream(),
            None => self.slot().as_ref().is_none_or(Body::is_end_stream),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.body {
            Some(body) => body.size_hint(),
            None => self
                .slot()
                .as_ref()
                .map_or_else(|| SizeHint::with_exact(0), Body::size_hint),
        }
    }
}

/// An upstream response body on its way to the client, frame by frame. It
/// holds the request's [`InFlight`] guard until the body ends or is dropped
/// (by the client going away), and counts a failure mid-stream. Its
/// connection goes back to the idle stack when the body has ended, and is
/// closed when it is dropped before that (which cancels the request upstream).
pub struct Streamed {
    inner: Incoming,
    in_flight: Option<InFlight>,
    lease: Option<Lease>,
    metrics: Arc<Metrics>,
}

impl Streamed {
    pub fn new(inner: Incoming, in_flight: InFlight, lease: Lease, metrics: Arc<Metrics>) -> Self {
        Streamed {
            inner,
            in_flight: Some(in_flight),
            lease: Some(lease),
            metrics,
        }
    }

    fn ended(&mut self) {
        self.in_flight = None;
        if let Some(lease) = self.lease.take() {
            lease.release();
        }
    }
}

impl Drop for Streamed {
    fn drop(&mut self) {
        // A body the server stopped polling because it knew the length.
        if self.inner.is_end_stream() {
            self.ended();
        }
    }
}

impl Body for Streamed {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.ended(),
            Poll::Ready(Some(Err(error))) => {
                self.lease = None;
                if let Some(guard) = self.in_flight.take() {
                    let backend = guard.backend().map(|b| b.addr().to_string());
                    tracing::warn!(
                        backend = backend.as_deref().unwrap_or(""),
                        %error,
                        "Ollama response broke off mid-stream"
                    );
                    self.metrics
                        .proxy_error(Some(guard.index()), ErrorReason::UpstreamBody);
                }
            }
            _ => {}
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

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};

    #[tokio::test]
    async fn an_unread_body_can_be_reclaimed() {
        let (once, reclaim) = OnceBody::new(Full::new(Bytes::from_static(b"hello")));
        assert_eq!(once.size_hint().exact(), Some(5));
        assert!(!once.is_end_stream());
        drop(once);
        let body = reclaim.take().expect("unread body");
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(bytes, "hello");
    }

    #[tokio::test]
    async fn a_read_body_is_gone() {
        let (once, reclaim) = OnceBody::new(Full::new(Bytes::from_static(b"hello")));
        let bytes = once.collect().await.unwrap().to_bytes();
        assert_eq!(bytes, "hello");
        assert!(reclaim.take().is_none());
    }

    #[tokio::test]
    async fn a_reclaimed_body_reads_as_empty() {
        let (once, reclaim) = OnceBody::new(Full::new(Bytes::from_static(b"hello")));
        assert!(reclaim.take().is_some());
        assert!(once.is_end_stream());
        assert_eq!(once.size_hint().exact(), Some(0));
        assert!(once.collect().await.unwrap().to_bytes().is_empty());
    }
}
