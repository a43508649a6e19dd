//! The client's request body as the proxy sends it upstream: it can be
//! taken back as long as the upstream client never started reading it, so a
//! request whose connection failed can go to another instance.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use hyper::body::{Body, Frame, SizeHint};

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

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};
    use hyper::body::Bytes;

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
