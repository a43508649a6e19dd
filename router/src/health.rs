//! Active health checks: every interval, `GET /api/version` on each Ollama
//! instance with a short timeout. A failed check takes the instance out of
//! rotation, a passing one puts it back. (The proxy also takes an instance
//! out at once when a connection to it fails; only a check puts it back.)

use std::error::Error as StdError;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::Request;
use hyper::body::Bytes;
use hyper::header::{HeaderValue, USER_AGENT};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::time::MissedTickBehavior;

use super::pool::{Backend, Pool};

/// The client of the health checks: its own small pool of keep-alive
/// connections, apart from the proxy's.
pub type HealthClient = Client<HttpConnector, Empty<Bytes>>;

/// A client whose connections give up after `connect_timeout`.
pub fn client(connect_timeout: Duration) -> HealthClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(connect_timeout));
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(1)
        .build(connector)
}

/// The largest `/api/version` answer read (it is about 20 bytes).
const MAX_VERSION_BODY: usize = 64 * 1024;

/// One check: `GET /api/version` answered 2xx, body read, within `timeout`.
pub async fn check(
    client: &HealthClient,
    backend: &Backend,
    timeout: Duration,
) -> Result<(), String> {
    let mut request = Request::new(Empty::new());
    *request.uri_mut() = backend.version_uri().clone();
    request.headers_mut().insert(
        USER_AGENT,
        HeaderValue::from_static(concat!("llm-injector-router/", env!("CARGO_PKG_VERSION"))),
    );
    let exchange = async {
        let response = client.request(request).await.map_err(|e| reason(&e))?;
        let status = response.status();
        // Read the body so the connection can be reused.
        let body = Limited::new(response.into_body(), MAX_VERSION_BODY)
            .collect()
            .await
            .map_err(|e| format!("GET /api/version: unreadable answer: {e}"))?;
        drop(body);
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("GET /api/version answered {status}"))
        }
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer to GET /api/version within {timeout:?}")),
    }
}

/// Checks every instance at once and updates the pool.
pub async fn check_all(pool: &Arc<Pool>, client: &HealthClient, timeout: Duration) {
    let checks = pool
        .backends()
        .iter()
        .enumerate()
        .map(|(index, backend)| async move {
            match check(client, backend, timeout).await {
                Ok(()) => pool.mark_up(index),
                Err(reason) => pool.mark_down(index, &reason),
            }
        });
    futures::future::join_all(checks).await;
}

/// Checks every instance every `interval`, forever (the first round one
/// interval from now: [`Router::bind`](super::Router::bind) ran one).
pub async fn watch(pool: Arc<Pool>, client: HealthClient, interval: Duration, timeout: Duration) {
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        check_all(&pool, &client, timeout).await;
    }
}

/// A short reason for a failed exchange with an instance: the socket error
/// (`connection refused`, `timed out`) when there is one, else the error chain.
pub fn reason(error: &(dyn StdError + 'static)) -> String {
    let mut source: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            return match io.kind() {
                io::ErrorKind::ConnectionRefused
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::TimedOut
                | io::ErrorKind::NotConnected
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::AddrNotAvailable => io.kind().to_string(),
                _ => io.to_string(),
            };
        }
        source = e.source();
    }
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Wrapper(Box<dyn StdError + Send + Sync>);
    impl std::fmt::Display for Wrapper {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("client error (Connect)")
        }
    }
    impl StdError for Wrapper {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&*self.0)
        }
    }

    #[test]
    fn reasons() {
        let refused = Wrapper(Box::new(io::Error::from(io::ErrorKind::ConnectionRefused)));
        assert_eq!(reason(&refused), "connection refused");
        let timed_out = Wrapper(Box::new(io::Error::new(
            io::ErrorKind::TimedOut,
            "connect timeout",
        )));
        assert_eq!(reason(&timed_out), "timed out");
        let other = Wrapper(Box::new(io::Error::other("dns error: no such host")));
        assert_eq!(reason(&other), "dns error: no such host");
        let chain = Wrapper(Box::new(std::fmt::Error));
        assert_eq!(
            reason(&chain),
            "client error (Connect): an error occurred when formatting an argument"
        );
    }
}
