//! The proxy's connections: HTTP/1.1 and HTTP/2 over plain TCP (loopback
//! only), on the shared accept loop (`crate::net`).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::Request;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::Watcher;
use tokio::net::TcpListener;

use super::proxy::Proxy;
use crate::net::accept_and_drain;

/// Accepts connections and proxies their requests until `stop` resolves,
/// then closes the listener and waits up to `drain_timeout` for the
/// responses in flight (idle keep-alive connections close at once).
pub async fn serve(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    drain_timeout: Duration,
    stop: impl Future<Output = ()>,
) {
    let builder = Arc::new(auto::Builder::new(TokioExecutor::new()));
    let serve = move |stream, peer: SocketAddr, watcher: Watcher| {
        let proxy = Arc::clone(&proxy);
        let service = service_fn(move |request: Request<Incoming>| {
            let proxy = Arc::clone(&proxy);
            async move { Ok::<_, Infallible>(proxy.handle(request).await) }
        });
        let builder = Arc::clone(&builder);
        async move {
            let connection = builder
                .serve_connection(TokioIo::new(stream), service)
                .into_owned();
            if let Err(error) = watcher.watch(connection).await {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        }
    };
    accept_and_drain(listener, drain_timeout, "responses", stop, serve).await;
}
