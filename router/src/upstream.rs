//! Keep-alive HTTP/1.1 connections to the instances: one stack of idle
//! connections per instance, used last-in first-out, on hyper's connection
//! API directly. (hyper-util's pooled client keys its pool by scheme and
//! authority in a hash map and moves large futures around: about a third of
//! the router's instructions per request went there.)
//!
//! A connection is lent for one exchange ([`Lease`]) and goes back to its
//! stack only when the response body has ended; a response dropped before
//! its end (the client went away) takes the connection with it, which is how
//! HTTP/1.1 cancels a request upstream.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::config::BackendAddr;
use super::once_body::OnceBody;
use super::request_body::ClientBody;

type Sender = SendRequest<OnceBody<ClientBody>>;

struct Idle {
    sender: Sender,
    since: Instant,
}

/// The idle connections of every instance, by pool index.
struct Stacks(Box<[Mutex<Vec<Idle>>]>);

impl Stacks {
    fn of(&self, index: usize) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        self.0[index].lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Connections to the instances.
pub struct Upstream {
    stacks: Arc<Stacks>,
    connect_timeout: Duration,
    idle_timeout: Duration,
}

/// Why an exchange with an instance failed.
#[derive(Debug)]
pub enum SendError {
    /// No connection could be made: nothing reached the instance.
    Connect(String),
    /// The instance failed after the request was (perhaps) sent.
    Exchange(hyper::Error),
}

/// A connection lent for one exchange: given back by [`Lease::release`] once
/// the response has ended, closed if dropped.
pub struct Lease {
    stacks: Arc<Stacks>,
    index: usize,
    sender: Sender,
}

impl Lease {
    /// Puts the connection back on its instance's idle stack.
    pub fn release(self) {
        if !self.sender.is_closed() {
            self.stacks.of(self.index).push(Idle {
                sender: self.sender,
                since: Instant::now(),
            });
        }
    }
}

impl Upstream {
    /// Connections to `backends` instances; a new connection gives up after
    /// `connect_timeout`, an idle one is not reused after `idle_timeout`.
    pub fn new(backends: usize, connect_timeout: Duration, idle_timeout: Duration) -> Self {
        let stacks = (0..backends).map(|_| Mutex::new(Vec::new())).collect();
        Upstream {
            stacks: Arc::new(Stacks(stacks)),
            connect_timeout,
            idle_timeout,
        }
    }

    /// Sends `request` (origin-form URI, `Host` set) to instance `index` at
    /// `addr`, on an idle connection if one is alive, else on a new one. A
    /// request that an idle connection refused before sending anything (it
    /// had just been closed) goes on a new connection.
    pub async fn send(
        &self,
        index: usize,
        addr: &BackendAddr,
        mut request: Request<OnceBody<ClientBody>>,
    ) -> Result<(Response<Incoming>, Lease), SendError> {
        while let Some(mut sender) = self.idle(index) {
            if sender.ready().await.is_err() {
                continue;
            }
            match sender.try_send_request(request).await {
                Ok(response) => return Ok((response, self.lease(index, sender))),
                Err(mut error) => match error.take_message() {
                    Some(unsent) => request = unsent,
                    None => return Err(SendError::Exchange(error.into_error())),
                },
            }
        }
        let mut sender = self.connect(addr).await?;
        match sender.send_request(request).await {
            Ok(response) => Ok((response, self.lease(index, sender))),
            Err(error) => Err(SendError::Exchange(error)),
        }
    }

    /// The most recently used idle connection that is not closed or too old.
    fn idle(&self, index: usize) -> Option<Sender> {
        let mut stack = self.stacks.of(index);
        while let Some(idle) = stack.pop() {
            if !idle.sender.is_closed() && idle.since.elapsed() < self.idle_timeout {
                return Some(idle.sender);
            }
        }
        None
    }

    fn lease(&self, index: usize, sender: Sender) -> Lease {
        Lease {
            stacks: Arc::clone(&self.stacks),
            index,
            sender,
        }
    }

    async fn connect(&self, addr: &BackendAddr) -> Result<Sender, SendError> {
        let tcp =
            match tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr.as_str()))
                .await
            {
                Ok(Ok(tcp)) => tcp,
                Ok(Err(error)) => return Err(SendError::Connect(super::health::reason(&error))),
                Err(_) => {
                    return Err(SendError::Connect(format!(
                        "no connection within {:?}",
                        self.connect_timeout
                    )));
                }
            };
        let _ = tcp.set_nodelay(true);
        let (sender, connection) = http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|error| SendError::Connect(super::health::reason(&error)))?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection to an Ollama instance ended");
            }
        });
        Ok(sender)
    }
}
