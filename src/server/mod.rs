//! `llm-injector serve`: the admission webhook over TLS, with an admin port.
//!
//! [`Server::bind`] loads certificates and the catalog and binds both ports;
//! [`Server::run`] serves until the shutdown future resolves, then turns
//! `/readyz` to 503, stops accepting, lets in-flight reviews finish and returns.

mod catalog_files;
pub mod cert_rotation;
pub mod cert_secret;
mod cluster;
pub mod leader;
mod listener;
mod metrics;
pub mod policy_controller;
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
pub use cert_secret::{ManagedCerts, WebhookConfiguration};
pub use cluster::{ClusterCatalog, NodeSnapshots};
pub use leader::LeaderElection;
pub use metrics::Metrics;
pub use routes::{AppState, CatalogSource, Health, admin_router, webhook_router};

use crate::catalog::CatalogError;
use crate::inject::{InjectOptions, Injector};
use crate::policy::PolicyOptions;

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
    /// A Secret the server creates and renews, its CA written into the
    /// server's own webhook configurations (needs the cluster).
    Secret(ManagedCerts),
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
    /// In cluster mode, whether admission policies inject pods too
    /// ([`policy_controller`]), and which namespaces they match.
    pub policies: Option<PolicyOptions>,
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
            policies: None,
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
        "cannot connect to the Kubernetes API (without --catalog, LLMEngines and LLMModels are watched in the cluster; --tls-secret keeps certificates there): {0}"
    )]
    Kube(String),
    #[error("self-managed certificates: {0}")]
    ManagedCerts(String),
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
    /// What the elected replica does, if anything.
    leader_work: Option<LeaderWork>,
    /// Self-managed certificates: every replica follows the Secret.
    managed_certs: Option<(Arc<ManagedCerts>, kube::Client, Arc<tls::CertResolver>)>,
    catalog_files: Option<Arc<FileCatalog>>,
    /// Set for a self-signed start: the CA file clients must trust.
    pub ca_file: Option<PathBuf>,
}

impl Server {
    /// Loads certificates and the catalog (or starts the cluster watch) and binds both ports.
    pub async fn bind(config: ServeConfig) -> Result<Self, ServeError> {
        let mut client: Option<kube::Client> = None;
        let mut managed_certs = None;
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
            TlsSource::Secret(managed) => {
                let kube = cluster_client(&mut client).await?;
                let pair = initial_pair(managed, &kube).await?;
                let resolver = Arc::new(tls::CertResolver::new(pair));
                managed_certs = Some((Arc::new(managed.clone()), kube, resolver.clone()));
                (resolver, None, None)
            }
        };
        let tls = tls::server_config(resolver.clone())?;

        let health = Arc::new(Health::default());
        let mut status_nodes = None;
        let (source, cluster, catalog_files): (Arc<dyn CatalogSource>, _, _) = match &config.catalog
        {
            Some(paths) => {
                let files = Arc::new(FileCatalog::load(paths, &config.catalog_namespace)?);
                health.catalog_synced.store(true, Ordering::Release);
                (files.clone(), None, Some(files))
            }
            None => {
                let cluster = ClusterCatalog::start(cluster_client(&mut client).await?);
                if config.status_controller {
                    status_nodes = Some(cluster.node_snapshots());
                }
                (Arc::new(cluster.clone()), Some(cluster), None)
            }
        };
        let certs = managed_certs.as_ref().map(|(managed, ..)| managed.clone());
        let policies = match (&cluster, &config.policies) {
            (Some(cluster), Some(options)) => Some((
                cluster.clone(),
                config.inject_options.clone(),
                options.clone(),
            )),
            _ => None,
        };
        let leader_work = match client {
            Some(client) if status_nodes.is_some() || certs.is_some() || policies.is_some() => {
                Some(LeaderWork {
                    client,
                    status_nodes,
                    certs,
                    policies,
                })
            }
            _ => None,
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
            leader_work,
            managed_certs,
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
            leader_work,
            managed_certs,
            catalog_files,
            ..
        } = self;
        if let Some((managed, client, resolver)) = managed_certs {
            tokio::spawn(managed.follow(client, resolver));
        }
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
        let status = leader_work.map(|work| {
            tokio::spawn(run_leader_work(
                work,
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
            tracing::warn!("the leader's work did not stop within 5 s");
        }
        tracing::info!("stopped");
    }
}

/// What the elected replica does: write status, keep the certificates.
struct LeaderWork {
    client: kube::Client,
    /// The status controller's Node snapshots, when it runs.
    status_nodes: Option<NodeSnapshots>,
    certs: Option<Arc<ManagedCerts>>,
    /// The policy controller's caches and options, when it runs.
    policies: Option<(ClusterCatalog, InjectOptions, PolicyOptions)>,
}

impl LeaderWork {
    /// Both jobs (those configured) until aborted.
    fn run(&self, metrics: Arc<Metrics>, identity: String) -> impl Future<Output = ()> + use<> {
        let status = self
            .status_nodes
            .clone()
            .map(|nodes| status_controller::run(self.client.clone(), metrics, identity, nodes));
        let certs = self
            .certs
            .clone()
            .map(|certs| certs.maintain(self.client.clone()));
        let policies = self.policies.clone().map(|(catalog, inject, options)| {
            policy_controller::run(self.client.clone(), catalog, inject, options)
        });
        async move {
            let status = async move {
                if let Some(status) = status {
                    status.await;
                }
            };
            let certs = async move {
                if let Some(certs) = certs {
                    certs.await;
                }
            };
            let policies = async move {
                if let Some(policies) = policies {
                    policies.await;
                }
            };
            tokio::join!(status, certs, policies);
        }
    }
}

/// The leader's work until `stop`: under leader election when configured,
/// else on this replica alone.
async fn run_leader_work(
    work: LeaderWork,
    election: Option<LeaderElection>,
    metrics: Arc<Metrics>,
    stop: impl Future<Output = ()>,
) {
    match election {
        Some(election) => {
            let identity = election.identity.clone();
            let client = work.client.clone();
            leader::run_while_leader(
                client,
                election,
                metrics.clone(),
                move || work.run(metrics.clone(), identity.clone()),
                stop,
            )
            .await;
        }
        None => {
            metrics.set_leader(true);
            tokio::select! {
                () = work.run(metrics.clone(), leader::default_identity()) => {}
                () = stop => {}
            }
            metrics.set_leader(false);
        }
    }
}

/// The one client of the server, made on first use.
async fn cluster_client(slot: &mut Option<kube::Client>) -> Result<kube::Client, ServeError> {
    if let Some(client) = slot {
        return Ok(client.clone());
    }
    let client = kube::Client::try_default()
        .await
        .map_err(|e| ServeError::Kube(e.to_string()))?;
    *slot = Some(client.clone());
    Ok(client)
}

/// The Secret's pair, retried for half a minute (1 s doubling): at start-up
/// the apiserver may not answer yet.
async fn initial_pair(
    managed: &ManagedCerts,
    client: &kube::Client,
) -> Result<rustls::sign::CertifiedKey, ServeError> {
    let mut wait = Duration::from_secs(1);
    let mut waited = Duration::ZERO;
    loop {
        match managed.initial_pair(client).await {
            Ok(pair) => return Ok(pair),
            Err(error) if waited >= Duration::from_secs(30) => {
                return Err(ServeError::ManagedCerts(error));
            }
            Err(error) => {
                tracing::warn!(%error, retry_in = ?wait, "cannot load the serving certificate");
                tokio::time::sleep(wait).await;
                waited += wait;
                wait = (wait * 2).min(Duration::from_secs(8));
            }
        }
    }
}

/// Resolves when the stop flag turns true (or its sender is gone).
async fn stopped(mut rx: tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}
