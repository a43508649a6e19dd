//! `llm-injector serve`: the admission webhook over TLS, with an admin port.
//!
//! [`Server::bind`] loads certificates and the catalog and binds both ports;
//! [`Server::run`] serves until the shutdown future resolves, then turns
//! `/readyz` to 503, stops accepting, lets in-flight reviews finish and returns.

mod catalog_files;
mod cluster;
pub mod leader;
mod listener;
mod metrics;
mod polled_files;
pub mod review;
mod routes;
pub mod status_controller;
pub mod tls;
mod triggers;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use thiserror::Error;
use tokio::net::TcpListener;

pub use catalog_files::{CatalogReload, FileCatalog};
pub use cluster::{ClusterCatalog, NodeSnapshots};
pub use leader::LeaderElection;
pub use metrics::Metrics;
pub use routes::{AppState, CatalogSource, Health, admin_router, webhook_router};

use crate::catalog::CatalogError;
use crate::inject::{InjectOptions, Injector};

/// Where the serving certificate comes from.
#[derive(Debug, Clone)]
pub enum TlsSource {
    /// PEM files, re-read every `reload_interval`.
    Files {
        cert: PathBuf,
        key: PathBuf,
        reload_interval: Duration,
    },
    /// A CA and leaf for `localhost`/`127.0.0.1` made at start-up; the CA is
    /// written to `ca_file` for clients to trust.
    SelfSigned { ca_file: PathBuf },
}

/// Everything `serve` is configured with.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// HTTPS address of the webhook routes.
    pub addr: SocketAddr,
    /// Plain-HTTP address of `/livez`, `/readyz`, `/metrics`.
    pub admin_addr: SocketAddr,
    pub tls: TlsSource,
    /// LLMEngine/LLMModel YAML; `None` watches the cluster.
    pub catalog: Option<Vec<PathBuf>>,
    /// Namespace of catalog objects that name none.
    pub catalog_namespace: String,
    /// How often the catalog files are re-read (with `catalog`).
    pub catalog_reload_interval: Duration,
    /// Largest request body accepted.
    pub body_limit: usize,
    /// Time a client has to send request headers.
    pub header_read_timeout: Duration,
    /// After the shutdown signal: time `/readyz` reports 503 before the
    /// listener closes (lets endpoints stop routing here).
    pub shutdown_delay: Duration,
    /// Longest wait for in-flight requests once the listener closed.
    pub drain_timeout: Duration,
    /// Deployment-level injection settings (the router image).
    pub inject_options: InjectOptions,
    /// In cluster mode, also write the status of LLMModels and LLMEngines.
    pub status_controller: bool,
    /// How replicas elect the one that writes status; `None`: this one
    /// always does (a single replica).
    pub leader_election: Option<LeaderElection>,
}

impl ServeConfig {
    /// Defaults for the given TLS source and catalog.
    pub fn new(tls: TlsSource, catalog: Option<Vec<PathBuf>>) -> Self {
        ServeConfig {
            addr: SocketAddr::from(([0, 0, 0, 0], 8443)),
            admin_addr: SocketAddr::from(([0, 0, 0, 0], 8080)),
            tls,
            catalog,
            catalog_namespace: "default".to_owned(),
            catalog_reload_interval: Duration::from_secs(10),
            body_limit: 4 * 1024 * 1024,
            header_read_timeout: Duration::from_secs(10),
            shutdown_delay: Duration::from_secs(0),
            drain_timeout: Duration::from_secs(25),
            inject_options: InjectOptions::default(),
            status_controller: true,
            leader_election: Some(LeaderElection::new()),
        }
    }
}

/// Why the server could not start.
#[derive(Debug, Error)]
pub enum ServeError {
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(
        "cannot connect to the Kubernetes API (no --catalog given, so LLMEngines and LLMModels are watched in the cluster): {0}"
    )]
    Kube(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A server with its ports bound, ready to [`run`](Server::run).
pub struct Server {
    https: TcpListener,
    admin: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    state: AppState,
    config: ServeConfig,
    cert_files: Option<Arc<tls::FileCerts>>,
    cluster: Option<ClusterCatalog>,
    /// The client and the Node snapshots of the status controller, when it
    /// runs.
    status_client: Option<(kube::Client, NodeSnapshots)>,
    catalog_files: Option<Arc<FileCatalog>>,
    /// Set for a self-signed start: the CA file clients must trust.
    pub ca_file: Option<PathBuf>,
}

impl Server {
    /// Loads certificates and the catalog (or starts the cluster watch) and binds both ports.
    pub async fn bind(config: ServeConfig) -> Result<Self, ServeError> {
        let (resolver, cert_files, ca_file): (Arc<tls::CertResolver>, _, _) = match &config.tls {
            TlsSource::Files { cert, key, .. } => {
                let files = Arc::new(tls::FileCerts::load(cert, key)?);
                (files.resolver(), Some(files), None)
            }
            TlsSource::SelfSigned { ca_file } => {
                let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
                let generated = tls::generate("llm-injector", &names, tls::Validity::default())?;
                if let Some(dir) = ca_file.parent() {
                    std::fs::create_dir_all(dir).map_err(|source| tls::TlsError::Write {
                        path: dir.display().to_string(),
                        source,
                    })?;
                }
                std::fs::write(ca_file, &generated.ca_pem).map_err(|source| {
                    tls::TlsError::Write {
                        path: ca_file.display().to_string(),
                        source,
                    }
                })?;
                let pair = tls::parse_pair(
                    generated.cert_pem.as_bytes(),
                    generated.key_pem.as_bytes(),
                    "generated certificate",
                    "generated key",
                )?;
                (
                    Arc::new(tls::CertResolver::new(pair)),
                    None,
                    Some(ca_file.clone()),
                )
            }
        };
        let tls = tls::server_config(resolver.clone())?;

        let health = Arc::new(Health::default());
        let mut status_client = None;
        let (source, cluster, catalog_files): (Arc<dyn CatalogSource>, _, _) = match &config.catalog
        {
            Some(paths) => {
                let files = Arc::new(FileCatalog::load(paths, &config.catalog_namespace)?);
                health.catalog_synced.store(true, Ordering::Release);
                (files.clone(), None, Some(files))
            }
            None => {
                let client = kube::Client::try_default()
                    .await
                    .map_err(|e| ServeError::Kube(e.to_string()))?;
                let cluster = ClusterCatalog::start(client.clone());
                if config.status_controller {
                    status_client = Some((client, cluster.node_snapshots()));
                }
                (Arc::new(cluster.clone()), Some(cluster), None)
            }
        };

        let bind = |addr: SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| ServeError::Bind { addr, source })
        };
        let https = bind(config.addr).await?;
        let admin = bind(config.admin_addr).await?;
        health.tls_bound.store(true, Ordering::Release);

        let state = AppState {
            source,
            metrics: Arc::new(Metrics::with_certificate_expiry(resolver.expiry())),
            health,
            body_limit: config.body_limit,
            injector: Arc::new(Injector::new(config.inject_options.clone())),
        };
        Ok(Server {
            https,
            admin,
            tls,
            state,
            config,
            cert_files,
            cluster,
            status_client,
            catalog_files,
            ca_file,
        })
    }

    /// The bound HTTPS address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.https.local_addr()
    }

    /// The bound admin address.
    pub fn admin_addr(&self) -> std::io::Result<SocketAddr> {
        self.admin.local_addr()
    }

    /// Serves until `shutdown` resolves, then drains and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        let Server {
            https,
            admin,
            tls,
            state,
            config,
            cert_files,
            cluster,
            status_client,
            catalog_files,
            ..
        } = self;
        if let TlsSource::Files {
            reload_interval, ..
        } = &config.tls
            && let Some(files) = cert_files
        {
            tokio::spawn(files.watch(*reload_interval));
        }
        if let Some(files) = catalog_files {
            tokio::spawn(files.watch(config.catalog_reload_interval, state.metrics.clone()));
        }
        if let Some(cluster) = cluster {
            let health = state.health.clone();
            tokio::spawn(async move {
                if cluster.synced().await {
                    health.catalog_synced.store(true, Ordering::Release);
                    tracing::info!("LLMEngine and LLMModel caches synced");
                }
            });
        }

        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let status = status_client.map(|(client, nodes)| {
            tokio::spawn(run_status_controller(
                client,
                nodes,
                config.leader_election.clone(),
                state.metrics.clone(),
                stopped(stop_rx.clone()),
            ))
        });
        let health = state.health.clone();
        let delay = config.shutdown_delay;
        tokio::spawn(async move {
            shutdown.await;
            health.shutting_down.store(true, Ordering::Release);
            tracing::info!(delay = ?delay, "shutting down: /readyz now 503");
            tokio::time::sleep(delay).await;
            let _ = stop_tx.send(true);
        });

        let router = webhook_router(state.clone());
        let admin_stop = stopped(stop_rx.clone());
        let admin_server = axum::serve(admin, admin_router(state))
            .with_graceful_shutdown(admin_stop)
            .into_future();
        let https_server = listener::serve_tls(
            https,
            tls,
            router,
            listener::Limits {
                header_read_timeout: config.header_read_timeout,
                drain_timeout: config.drain_timeout,
            },
            stopped(stop_rx),
        );
        let (admin_result, ()) = tokio::join!(admin_server, https_server);
        if let Err(error) = admin_result {
            tracing::error!(%error, "admin server failed");
        }
        // The Lease is released for the next leader (bounded: a stuck
        // apiserver must not hold the exit).
        if let Some(status) = status
            && tokio::time::timeout(Duration::from_secs(5), status)
                .await
                .is_err()
        {
            tracing::warn!("the status controller did not stop within 5 s");
        }
        tracing::info!("stopped");
    }
}

/// The status controller until `stop`: under leader election when
/// configured, else on this replica alone.
async fn run_status_controller(
    client: kube::Client,
    nodes: NodeSnapshots,
    election: Option<LeaderElection>,
    metrics: Arc<Metrics>,
    stop: impl Future<Output = ()>,
) {
    match election {
        Some(election) => {
            let identity = election.identity.clone();
            leader::run_while_leader(
                client.clone(),
                election,
                metrics.clone(),
                move || {
                    status_controller::run(
                        client.clone(),
                        metrics.clone(),
                        identity.clone(),
                        nodes.clone(),
                    )
                },
                stop,
            )
            .await;
        }
        None => {
            metrics.set_leader(true);
            tokio::select! {
                () = status_controller::run(client, metrics.clone(), leader::default_identity(), nodes) => {}
                () = stop => {}
            }
            metrics.set_leader(false);
        }
    }
}

/// Resolves when the stop flag turns true (or its sender is gone).
async fn stopped(mut rx: tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}
