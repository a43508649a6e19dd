//! The upstream response body the proxy hands to the client, which carries
//! the request's in-flight guard until it ends or is dropped. (The request
//! body is in `once_body.rs`.)

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};

use super::metrics::{ErrorReason, Metrics};
use super::observe::{Observer, Outcome};
use super::pool::InFlight;
use super::upstream::Lease;

/// An upstream response body on its way to the client, frame by frame. It
/// holds the request's [`InFlight`] guard until the body ends or is dropped
/// (by the client going away), and counts a failure mid-stream. Its
/// connection goes back to the idle stack when the body has ended, and is
/// closed when it is dropped before that (which cancels the request upstream).
/// An inference answer is observed on its way: time to first byte, and at
/// its end the duration and the tokens it reports.
pub struct Streamed {
    inner: Incoming,
    in_flight: Option<InFlight>,
    lease: Option<Lease>,
    metrics: Arc<Metrics>,
    observer: Option<Observer>,
}

impl Streamed {
    pub fn new(
        inner: Incoming,
        in_flight: InFlight,
        lease: Lease,
        metrics: Arc<Metrics>,
        observer: Option<Observer>,
    ) -> Self {
        Streamed {
            inner,
            in_flight: Some(in_flight),
            lease: Some(lease),
            metrics,
            observer,
        }
    }

    fn ended(&mut self) {
        if let (Some(observer), Some(guard)) = (self.observer.take(), &self.in_flight) {
            let (duration, outcome) = observer.finish(Instant::now());
            match outcome {
                Outcome::Done(tokens) => self.metrics.finished(guard.index(), duration, &tokens),
                Outcome::ReportedError => self
                    .metrics
                    .proxy_error(Some(guard.index()), ErrorReason::ModelError),
            }
        }
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
        } else if let Some(guard) = &self.in_flight {
            self.metrics
                .proxy_error(Some(guard.index()), ErrorReason::ClientGone);
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
            Poll::Ready(Some(Ok(frame))) => {
                let this = &mut *self;
                if let (Some(observer), Some(data), Some(guard)) =
                    (&mut this.observer, frame.data_ref(), &this.in_flight)
                    && let Some(ttft) = observer.frame(data, Instant::now())
                {
                    this.metrics.first_token(guard.index(), ttft);
                }
            }
            Poll::Ready(None) => self.ended(),
            Poll::Ready(Some(Err(error))) => {
                self.lease = None;
                self.observer = None;
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
