//! Flags of `llm-injector serve` and its start-up: logging, runtime, signals.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::cli_common::{LogFormat, init_logging, shutdown_signal};
use llm_injector::duration::{parse_duration, parse_validity};
use llm_injector::server::cert_rotation::Policy;
use llm_injector::server::leader::default_identity;
use llm_injector::server::tls::Validity;
use llm_injector::server::{
    LeaderElection, ManagedCerts, ServeConfig, Server, TlsSource, WebhookConfiguration,
};

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// HTTPS address of the webhook (`POST /mutate`).
    #[arg(long, env = "LLM_INJECTOR_ADDR", default_value = "0.0.0.0:8443")]
    addr: SocketAddr,
    /// Plain-HTTP address of `/livez`, `/readyz` and `/metrics`.
    #[arg(long, env = "LLM_INJECTOR_ADMIN_ADDR", default_value = "0.0.0.0:8080")]
    admin_addr: SocketAddr,
    /// PEM certificate chain; re-read when it changes. Without it a self-signed
    /// certificate for localhost/127.0.0.1 is made.
    #[arg(long, env = "LLM_INJECTOR_TLS_CERT_FILE", requires = "tls_key_file")]
    tls_cert_file: Option<PathBuf>,
    /// PEM private key of --tls-cert-file.
    #[arg(long, env = "LLM_INJECTOR_TLS_KEY_FILE", requires = "tls_cert_file")]
    tls_key_file: Option<PathBuf>,
    /// How often the certificate files are re-read.
    #[arg(long, env = "LLM_INJECTOR_CERT_RELOAD_INTERVAL", default_value = "10s", value_parser = parse_duration)]
    cert_reload_interval: Duration,
    /// Where the self-signed CA is written (only without --tls-cert-file
    /// and --tls-secret).
    #[arg(long, env = "LLM_INJECTOR_CA_FILE")]
    ca_file: Option<PathBuf>,
    /// Self-managed certificates: the Secret (created if missing) holding
    /// the CA and the serving certificate, renewed a third of their
    /// validity before they end; every replica serves what it holds.
    #[arg(
        long,
        env = "LLM_INJECTOR_TLS_SECRET",
        conflicts_with = "tls_cert_file",
        requires = "tls_dns_names"
    )]
    tls_secret: Option<String>,
    /// Namespace of --tls-secret [default: the pod's own in a cluster, else
    /// the kubeconfig context's].
    #[arg(
        long,
        env = "LLM_INJECTOR_TLS_SECRET_NAMESPACE",
        requires = "tls_secret"
    )]
    tls_secret_namespace: Option<String>,
    /// With --tls-secret: the names (or IP addresses) the serving
    /// certificate is for, e.g. the Service's `NAME.NAMESPACE.svc`.
    #[arg(
        long,
        env = "LLM_INJECTOR_TLS_DNS_NAMES",
        value_delimiter = ',',
        requires = "tls_secret"
    )]
    tls_dns_names: Vec<String>,
    /// With --tls-secret: a webhook configuration whose `caBundle` is kept
    /// equal to the Secret's CA bundle (repeatable), e.g.
    /// `mutatingwebhookconfigurations/llm-injector`.
    #[arg(long, env = "LLM_INJECTOR_WEBHOOK_CONFIGURATIONS", value_delimiter = ',', value_parser = WebhookConfiguration::parse, requires = "tls_secret")]
    webhook_configuration: Vec<WebhookConfiguration>,
    /// With --tls-secret: how long a generated CA is valid.
    #[arg(long, env = "LLM_INJECTOR_CA_VALIDITY", default_value = "3650d", value_parser = parse_validity)]
    ca_validity: Duration,
    /// With --tls-secret: how long a serving certificate is valid (at most
    /// the CA's).
    #[arg(long, env = "LLM_INJECTOR_TLS_VALIDITY", default_value = "365d", value_parser = parse_validity)]
    tls_validity: Duration,
    /// With --tls-secret: how often the elected replica checks the Secret
    /// and the caBundles (a removed caBundle is written back within it).
    #[arg(long, env = "LLM_INJECTOR_CERT_CHECK_INTERVAL", default_value = "1m", value_parser = parse_duration)]
    cert_check_interval: Duration,
    /// LLMEngine/LLMModel YAML (file or directory, repeatable). Without it,
    /// they are watched in the cluster.
    #[arg(long, env = "LLM_INJECTOR_CATALOG", value_delimiter = ',')]
    catalog: Vec<PathBuf>,
    /// How often the --catalog files are re-read; a change is loaded without
    /// a restart, a broken one is refused and the previous catalog kept.
    #[arg(long, env = "LLM_INJECTOR_CATALOG_RELOAD_INTERVAL", default_value = "10s", value_parser = parse_duration)]
    catalog_reload_interval: Duration,
    /// Namespace of catalog objects that name none.
    #[arg(
        short = 'n',
        long,
        env = "LLM_INJECTOR_NAMESPACE",
        default_value = "default"
    )]
    namespace: String,
    /// Log format.
    #[arg(long, env = "LLM_INJECTOR_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Largest request body accepted, in bytes (the apiserver sends at most 3 MiB).
    #[arg(long, env = "LLM_INJECTOR_BODY_LIMIT", default_value_t = 4 * 1024 * 1024)]
    body_limit: usize,
    /// Time a client has for the TLS handshake and the request headers.
    #[arg(long, env = "LLM_INJECTOR_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    header_read_timeout: Duration,
    /// After SIGTERM, how long /readyz reports 503 before the listener closes.
    #[arg(long, env = "LLM_INJECTOR_SHUTDOWN_DELAY", default_value = "1s", value_parser = parse_duration)]
    shutdown_delay: Duration,
    /// Longest wait for in-flight reviews after the listener closed.
    #[arg(long, env = "LLM_INJECTOR_DRAIN_TIMEOUT", default_value = "25s", value_parser = parse_duration)]
    drain_timeout: Duration,
    /// Image of the llm-router sidecar added when parallelism.data > 1.
    #[arg(long, env = "LLM_INJECTOR_ROUTER_IMAGE", default_value = llm_injector::inject::DEFAULT_ROUTER_IMAGE)]
    router_image: String,
    /// Without --catalog: also write the status of LLMModels and LLMEngines
    /// (conditions, resolved shape, pod counts); `false` only serves.
    #[arg(long, env = "LLM_INJECTOR_STATUS_CONTROLLER", default_value_t = true, action = clap::ArgAction::Set)]
    status_controller: bool,
    /// Elect one replica to write status with a coordination.k8s.io Lease
    /// (the webhook serves on every replica); `false`: this one always
    /// writes, for a single replica.
    #[arg(long, env = "LLM_INJECTOR_LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
    leader_elect: bool,
    /// Name of the Lease.
    #[arg(
        long,
        env = "LLM_INJECTOR_LEADER_ELECTION_LEASE",
        default_value = "llm-injector-status"
    )]
    leader_election_lease: String,
    /// Namespace of the Lease [default: the pod's own in a cluster, else the
    /// kubeconfig context's].
    #[arg(long, env = "LLM_INJECTOR_LEADER_ELECTION_NAMESPACE")]
    leader_election_namespace: Option<String>,
    /// How long the Lease holds without renewal: a killed leader is replaced
    /// within it (renewed a third of it before it expires; whole seconds, at least 2).
    #[arg(long, env = "LLM_INJECTOR_LEADER_ELECTION_LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    leader_election_lease_duration: Duration,
    /// This replica's holder identity in the Lease [default: $POD_NAME or the
    /// host name, then the process id].
    #[arg(long, env = "LLM_INJECTOR_LEADER_ELECTION_IDENTITY")]
    leader_election_identity: Option<String>,
    /// Who injects pods. `webhook`: this server's /mutate (the apiserver is
    /// told so by a MutatingWebhookConfiguration). `policy` or `both`
    /// (Kubernetes 1.36+, without --catalog): the elected replica also keeps
    /// a MutatingAdmissionPolicy per namespace with LLMModels, with
    /// ValidatingAdmissionPolicies warning and refusing as the webhook does,
    /// so the apiserver injects pods itself; with `both` the webhook stays
    /// registered as well (for what no policy injects).
    #[arg(long, env = "LLM_INJECTOR_INJECTION_MODE", value_enum, default_value_t = InjectionMode::Webhook)]
    injection_mode: InjectionMode,
    /// With policies: a namespace whose pods are never injected (the
    /// webhook's excluded namespaces). Repeatable, or comma-separated.
    #[arg(
        long,
        env = "LLM_INJECTOR_POLICY_EXCLUDE_NAMESPACES",
        value_delimiter = ','
    )]
    policy_exclude_namespaces: Vec<String>,
    /// With policies: inject only in namespaces labelled
    /// llm.injector.dev/injection=enabled (else in every namespace not
    /// labelled =disabled), as the webhook's namespaceSelector.
    #[arg(long, env = "LLM_INJECTOR_POLICY_NAMESPACE_OPT_IN", default_value_t = false, action = clap::ArgAction::Set)]
    policy_namespace_opt_in: bool,
}

/// Who injects pods (`--injection-mode`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum InjectionMode {
    Webhook,
    Policy,
    Both,
}

pub fn run(args: ServeArgs) -> Result<(), String> {
    init_logging(args.log_format);
    let tls = match (&args.tls_cert_file, &args.tls_key_file) {
        _ if args.tls_secret.is_some() => TlsSource::Secret(managed_certs(&args)?),
        (Some(cert), Some(key)) => TlsSource::Files {
            cert: cert.clone(),
            key: key.clone(),
            reload_interval: args.cert_reload_interval,
        },
        _ => TlsSource::SelfSigned {
            ca_file: args
                .ca_file
                .clone()
                .unwrap_or_else(|| std::env::temp_dir().join("llm-injector").join("ca.crt")),
        },
    };
    let mut config = ServeConfig::new(
        tls,
        (!args.catalog.is_empty()).then(|| args.catalog.clone()),
    );
    config.addr = args.addr;
    config.admin_addr = args.admin_addr;
    config.catalog_namespace = args.namespace.clone();
    config.catalog_reload_interval = args.catalog_reload_interval;
    config.body_limit = args.body_limit;
    config.header_read_timeout = args.header_read_timeout;
    config.shutdown_delay = args.shutdown_delay;
    config.drain_timeout = args.drain_timeout;
    config.inject_options.router_image = args.router_image.clone();
    config.status_controller = args.status_controller;
    if args.injection_mode != InjectionMode::Webhook {
        if !args.catalog.is_empty() {
            return Err(format!(
                "--injection-mode {:?} keeps admission policies in the cluster, which needs the cluster's LLMModels: remove --catalog",
                args.injection_mode
            )
            .to_lowercase());
        }
        config.policies = Some(llm_injector::policy::PolicyOptions::namespaces(
            &args.policy_exclude_namespaces,
            args.policy_namespace_opt_in,
        ));
    }
    config.leader_election = args.leader_elect.then(|| LeaderElection {
        lease_name: args.leader_election_lease.clone(),
        namespace: args.leader_election_namespace.clone(),
        identity: args
            .leader_election_identity
            .clone()
            .unwrap_or_else(default_identity),
        lease_duration: args.leader_election_lease_duration,
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async move {
        let server = Server::bind(config).await.map_err(|e| e.to_string())?;
        let addr = server.local_addr().map_err(|e| e.to_string())?;
        let admin = server.admin_addr().map_err(|e| e.to_string())?;
        tracing::info!(%addr, %admin, "serving");
        if let Some(ca) = &server.ca_file {
            let port = addr.port();
            eprintln!(
                "llm-injector: serving https://localhost:{port}/mutate with a self-signed certificate.\n\
                 CA certificate: {ca}\n\
                 Try: curl --cacert {ca} -H 'Content-Type: application/json' \
                 --data @tests/fixtures/apiserver-1.36/pod-create-named.json https://localhost:{port}/mutate\n\
                 Health: curl http://127.0.0.1:{}/readyz",
                admin.port(),
                ca = ca.display(),
            );
        }
        server.run(shutdown_signal()).await;
        Ok(())
    })
}

/// The --tls-secret settings.
fn managed_certs(args: &ServeArgs) -> Result<ManagedCerts, String> {
    if args.tls_validity > args.ca_validity {
        return Err(format!(
            "--tls-validity ({} s) is longer than --ca-validity ({} s): a serving certificate cannot outlive its CA",
            args.tls_validity.as_secs(),
            args.ca_validity.as_secs()
        ));
    }
    if args.cert_check_interval.is_zero() || args.cert_check_interval * 3 > args.tls_validity {
        return Err(format!(
            "--cert-check-interval ({:?}) must be above zero and at most a third of --tls-validity ({:?}): certificates are renewed a third of their validity before they end",
            args.cert_check_interval, args.tls_validity
        ));
    }
    let common_name = args
        .tls_dns_names
        .iter()
        .find(|name| name.ends_with(".svc"))
        .or(args.tls_dns_names.first())
        .cloned()
        .unwrap_or_else(|| "llm-injector".to_owned());
    Ok(ManagedCerts {
        secret: args.tls_secret.clone().unwrap_or_default(),
        namespace: args.tls_secret_namespace.clone(),
        policy: Policy {
            common_name,
            dns_names: args.tls_dns_names.clone(),
            validity: Validity {
                ca: args.ca_validity,
                leaf: args.tls_validity,
            },
        },
        webhooks: args.webhook_configuration.clone(),
        check_interval: args.cert_check_interval,
    })
}
