//! The data-parallel request router (`llm-injector route`). Ollama never
//! loads one model twice, so data parallelism in a pod means several engine
//! instances on several loopback ports; the router is the one endpoint in
//! front of them.
//!
//! It passes every request (Ollama `/api/*`, OpenAI-compatible `/v1/*`,
//! anything else) to the healthy instance with the fewest requests in flight,
//! ties round-robin, and streams the response back frame by frame (NDJSON,
//! server-sent events). Instances leave rotation when a health check or a
//! connection fails and come back when a check passes; with none left it
//! answers 503 `{"error": "no healthy Ollama instance: ..."}`.
//!
//! [`Router::bind`] binds the ports and runs a first round of health checks;
//! [`Router::run`] serves until the shutdown future resolves, then stops
//! accepting, lets responses in flight finish (bounded) and returns.

#![forbid(unsafe_code)]

mod admin;
mod body;
mod config;
mod health;
mod inference;
mod listener;
mod metrics;
pub mod net;
mod observe;
mod once_body;
mod pool;
mod proxy;
mod request_body;
mod upstream;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use thiserror::Error;
use tokio::net::TcpListener;

pub use admin::{AdminState, admin_router};
pub use config::{Affinity, BackendAddr, DEFAULT_PREFIX_BYTES, OLLAMA_DEFAULT_PORT, RouterConfig};
pub use inference::KeepAlive;
pub use metrics::{ErrorReason, Metrics, TokenStats};
pub use pool::{
    Backend, DEFAULT_LOAD_FACTOR, InFlight, Limits, Pool, Refusal, affinity_bound, least_loaded,
    rendezvous_score,
};
pub use proxy::{Proxy, ProxyOptions, strip_hop_by_hop};

/// Why the router could not start.
#[derive(Debug, Error)]
pub enum RouterError {
    #[error("{0}")]
    Config(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A router with its ports bound, ready to [`run`](Router::run).
pub struct Router {
    listener: TcpListener,
    admin: Option<TcpListener>,
    pool: Arc<Pool>,
    metrics: Arc<Metrics>,
    health_client: health::HealthClient,
    config: RouterConfig,
}

impl Router {
    /// Checks the configuration, binds the proxy (and admin) port and checks
    /// every instance once, so the first requests and `/readyz` already know
    /// which are up. Needs a Tokio runtime.
    pub async fn bind(config: RouterConfig) -> Result<Self, RouterError> {
        config.validate().map_err(RouterError::Config)?;
        let bind = |addr: SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| RouterError::Bind { addr, source })
        };
        let listener = bind(config.listen).await?;
        let admin = match config.admin_listen {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        let pool = Arc::new(Pool::with_limits(
            config.backends.iter().cloned(),
            config.limits,
            config.load_factor,
        ));
        let health_client = health::client(config.connect_timeout);
        health::check_all(&pool, &health_client, config.health_timeout).await;
        let metrics = Arc::new(Metrics::new(&pool, &config.model_name));
        Ok(Router {
            listener,
            admin,
            pool,
            metrics,
            health_client,
            config,
        })
    }

    /// The bound proxy address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The bound admin address, if there is an admin endpoint.
    pub fn admin_addr(&self) -> std::io::Result<Option<SocketAddr>> {
        self.admin.as_ref().map(TcpListener::local_addr).transpose()
    }

    /// The instances and their state (health, requests in flight).
    pub fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }

    /// Serves until `shutdown` resolves, then drains and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        let Router {
            listener,
            admin,
            pool,
            metrics,
            health_client,
            config,
        } = self;
        let checks = tokio::spawn(health::watch(
            Arc::clone(&pool),
            health_client,
            config.health_interval,
            config.health_timeout,
        ));

        let shutting_down = Arc::new(AtomicBool::new(false));
        let (admin_stop, admin_stopped) = tokio::sync::oneshot::channel::<()>();
        let admin_server = admin.map(|admin| {
            let state = AdminState {
                pool: Arc::clone(&pool),
                metrics: Arc::clone(&metrics),
                shutting_down: Arc::clone(&shutting_down),
            };
            tokio::spawn(
                axum::serve(admin, admin_router(state))
                    .with_graceful_shutdown(async move {
                        let _ = admin_stopped.await;
                    })
                    .into_future(),
            )
        });

        let options = ProxyOptions {
            keep_alive_floor: config.keep_alive_floor,
            affinity: config.affinity.clone(),
            idle_timeout: config.pool_idle_timeout,
            connect_timeout: config.connect_timeout,
        };
        let proxy = Arc::new(proxy::Proxy::new(pool, metrics, &options));
        let stop = async move {
            shutdown.await;
            shutting_down.store(true, Ordering::Release);
            tracing::info!("shutting down: no new connections, /readyz now 503");
        };
        listener::serve(listener, proxy, config.drain_timeout, stop).await;

        // The admin endpoint answers until the responses have drained.
        let _ = admin_stop.send(());
        if let Some(server) = admin_server {
            match server.await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::error!(%error, "admin server failed"),
                Err(error) => tracing::error!(%error, "admin server task failed"),
            }
        }
        checks.abort();
        tracing::info!("stopped");
    }
}
