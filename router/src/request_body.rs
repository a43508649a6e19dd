//! The client's request body as the proxy forwards it: passed through as
//! it comes, or read whole first when the router must look inside (an
//! inference request whose `keep_alive` may need raising or whose prompt
//! makes the affinity key). A body over the limit is not held back: what
//! was read goes first and the rest follows as it comes.

use std::pin::Pin;
use std::task::{Context, Poll};

use http_body_util::BodyExt;
use hyper::HeaderMap;
use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};

/// The largest request body read whole to look inside (prompts with
/// images can be megabytes).
pub const MAX_INSPECTED_BODY: usize = 16 << 20;

/// A request body on its way to an instance.
pub enum ClientBody {
    /// As it comes from the client.
    Streaming {
        /// What was read before it turned out too long to hold.
        head: Option<Bytes>,
        rest: Incoming,
    },
    /// Read whole (and perhaps rewritten).
    Whole {
        data: Option<Bytes>,
        trailers: Option<HeaderMap>,
    },
}

/// A body read up to [`MAX_INSPECTED_BODY`].
pub enum Read {
    Whole {
        data: Bytes,
        trailers: Option<HeaderMap>,
    },
    /// Longer: to be passed on as it comes.
    TooLong(ClientBody),
}

/// Reads `body` whole if it is at most `limit` bytes.
pub async fn read(mut body: Incoming, limit: usize) -> Result<Read, hyper::Error> {
    if body.size_hint().lower() > limit as u64 {
        return Ok(Read::TooLong(ClientBody::Streaming {
            head: None,
            rest: body,
        }));
    }
    let mut data = Vec::new();
    let mut trailers = None;
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        match frame.into_data() {
            Ok(chunk) => {
                data.extend_from_slice(&chunk);
                if data.len() > limit {
                    return Ok(Read::TooLong(ClientBody::Streaming {
                        head: Some(Bytes::from(data)),
                        rest: body,
                    }));
                }
            }
            Err(frame) => {
                if let Ok(map) = frame.into_trailers() {
                    trailers.get_or_insert_with(HeaderMap::new).extend(map);
                }
            }
        }
    }
    Ok(Read::Whole {
        data: Bytes::from(data),
        trailers,
    })
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            ClientBody::Streaming { head, rest } => match head.take() {
                Some(data) => Poll::Ready(Some(Ok(Frame::data(data)))),
                None => Pin::new(rest).poll_frame(cx),
            },
            ClientBody::Whole { data, trailers } => {
                if let Some(data) = data.take().filter(|d| !d.is_empty()) {
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Poll::Ready(trailers.take().map(|t| Ok(Frame::trailers(t))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ClientBody::Streaming { head, rest } => head.is_none() && rest.is_end_stream(),
            ClientBody::Whole { data, trailers } => {
                data.as_ref().is_none_or(Bytes::is_empty) && trailers.is_none()
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ClientBody::Streaming { head, rest } => {
                let head = head.as_ref().map_or(0, |h| h.len() as u64);
                let rest = rest.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(rest.lower() + head);
                if let Some(upper) = rest.upper() {
                    hint.set_upper(upper + head);
                }
                hint
            }
            ClientBody::Whole { data, .. } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}
