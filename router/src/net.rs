//! The one accept loop of llm-injector's two servers (`serve`'s webhook
//! over TLS and `route`'s proxy over plain TCP): accept until told to stop, TCP_NODELAY
//! on every connection (Nagle halves HTTP/2 throughput and delays streamed
//! tokens), a back-off when accepting fails, and a bounded drain of the open
//! connections at the end.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};

/// Accepts connections on `listener` until `stop` resolves and spawns what
/// `handle` makes of each (it serves the connection, watched by the
/// [`Watcher`] it is given); then closes the listener and waits up to
/// `drain_timeout` for the connections still serving (idle keep-alive
/// connections close at once). `what` names those in the log.
pub async fn accept_and_drain<F, Fut>(
    listener: TcpListener,
    drain_timeout: Duration,
    what: &'static str,
    stop: impl Future<Output = ()>,
    mut handle: F,
) where
    F: FnMut(TcpStream, SocketAddr, Watcher) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(error) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(handle(stream, peer, graceful.watcher()));
    }
    drop(listener);
    tracing::info!(timeout = ?drain_timeout, "listener closed; draining open {what}");
    if tokio::time::timeout(drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(timeout = ?drain_timeout, "{what} still open after the drain timeout");
    }
}
