//! The webhooks the apiserver calls: `llm-injector serve` in cluster mode
//! (reflectors on the suite's apiserver, no --catalog), registered with the
//! settings of webhook-config/ (only `clientConfig` becomes a URL on
//! 127.0.0.1), and a bare webhook that answers every pod with one fixed
//! patch: the baseline of the overhead figure.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::controlplane::{ControlPlane, Process};

/// A running `llm-injector serve`.
pub struct Serve {
    pub process: Process,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub ca_pem: String,
}

/// The ServiceAccount of webhook-config/, whose RBAC (20-rbac.yaml) serve
/// runs with: the suite's apiserver user impersonates it.
pub const SERVICE_ACCOUNT: (&str, &str) = ("llm-system", "llm-injector");
/// The Lease of webhook-config/40-deployment.yaml's `--leader-election-lease`.
pub const LEASE: &str = "llm-injector-status";

impl Serve {
    /// Starts serve `name` (its log `<name>.log` in the run directory) with
    /// a self-signed certificate (its CA written to the run directory), as
    /// webhook-config/'s ServiceAccount with its RBAC and Lease, and waits
    /// until /readyz says the caches synced. Replicas started this way
    /// elect one status writer among them.
    pub fn start(injector: &Path, plane: &ControlPlane, name: &str) -> Result<Serve, String> {
        let ca_file = plane.dir.join(format!("{name}-ca.crt"));
        let (namespace, _) = SERVICE_ACCOUNT;
        let args = [
            "--leader-election-namespace",
            namespace,
            "--leader-election-lease",
            LEASE,
            "--ca-file",
            ca_file.to_str().expect("utf-8"),
        ]
        .map(str::to_owned);
        let mut serve =
            Serve::launch(injector, plane, name, "127.0.0.1:0", &args, SERVICE_ACCOUNT)?;
        serve.ca_pem =
            std::fs::read_to_string(&ca_file).map_err(|e| format!("{}: {e}", ca_file.display()))?;
        Ok(serve)
    }

    /// Starts serve `name` on `addr` with `args`, as ServiceAccount
    /// `account` (namespace, name) with its RBAC, and waits until /readyz
    /// answers 200; `ca_pem` is left empty.
    pub fn launch(
        injector: &Path,
        plane: &ControlPlane,
        name: &str,
        addr: &str,
        args: &[String],
        account: (&str, &str),
    ) -> Result<Serve, String> {
        let log = plane.dir.join(format!("{name}.log"));
        let (namespace, account) = account;
        let mut process = Process::start(
            name,
            as_service_account(&mut Command::new(injector), (namespace, account))
                .args(["serve", "--addr", addr, "--admin-addr", "127.0.0.1:0"])
                .args(args)
                .env("KUBECONFIG", &plane.kubeconfig)
                .env("RUST_LOG", "info")
                .env("NO_COLOR", "1"),
            log.clone(),
        )?;
        let deadline = Instant::now() + Duration::from_secs(30);
        let (addr, admin) = loop {
            process.check_running()?;
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let field = |name: &str| {
                text.split_whitespace()
                    .find_map(|word| word.strip_prefix(name))
                    .and_then(|v| v.parse::<SocketAddr>().ok())
            };
            if let (Some(addr), Some(admin)) = (field("addr="), field("admin=")) {
                break (addr, admin);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "llm-injector serve logged no addresses in 30 s: {}",
                    log.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        loop {
            process.check_running()?;
            if let Ok((200, _)) = http_get(admin, "/readyz") {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "llm-injector serve not ready in 30 s: {}",
                    log.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(Serve {
            process,
            addr,
            admin,
            ca_pem: String::new(),
        })
    }

    /// The Prometheus text of /metrics.
    pub fn metrics(&self) -> Result<String, String> {
        match http_get(self.admin, "/metrics")? {
            (200, body) => Ok(body),
            (status, body) => Err(format!("/metrics answered {status}: {body}")),
        }
    }

    /// The sum of the samples of `metric` whose labels contain every one of
    /// `labels` (`kind="LLMModel"`), 0 when there is none.
    pub fn metric(&self, metric: &str, labels: &[&str]) -> Result<f64, String> {
        Ok(self
            .metrics()?
            .lines()
            .filter(|l| {
                l.strip_prefix(metric)
                    .is_some_and(|rest| rest.starts_with(['{', ' ']))
                    && labels.iter().all(|label| l.contains(label))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
            // An empty sum is -0.0.
            + 0.0)
    }
}

/// `command` (an llm-injector, whose kube client reads these variables)
/// with its requests authorised as ServiceAccount (namespace, name): kube's
/// Config::infer impersonates that user and its groups.
pub fn as_service_account<'a>(command: &'a mut Command, account: (&str, &str)) -> &'a mut Command {
    let (namespace, name) = account;
    command
        .env(
            "KUBE_RS_DEBUG_IMPERSONATE_USER",
            format!("system:serviceaccount:{namespace}:{name}"),
        )
        .env(
            "KUBE_RS_DEBUG_IMPERSONATE_GROUP",
            format!(
                "system:serviceaccounts,system:serviceaccounts:{namespace},system:authenticated"
            ),
        )
}

/// webhook-config/60-mutating-webhook.yaml and 61-validating-webhook.yaml
/// as JSON, every webhook's clientConfig pointing at `base_url` + its path
/// with `ca_pem`.
pub fn registrations(root: &Path, base_url: &str, ca_pem: &str) -> Result<Vec<Value>, String> {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    ["60-mutating-webhook.yaml", "61-validating-webhook.yaml"]
        .iter()
        .map(|name| {
            let path = root.join("webhook-config").join(name);
            let text =
                std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let mut config: Value =
                serde_yaml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            for webhook in config["webhooks"].as_array_mut().into_iter().flatten() {
                let route = webhook["clientConfig"]["service"]["path"]
                    .as_str()
                    .ok_or_else(|| {
                        format!(
                            "{}: a webhook without clientConfig.service.path",
                            path.display()
                        )
                    })?
                    .to_string();
                webhook["clientConfig"] =
                    json!({"url": format!("{base_url}{route}"), "caBundle": ca});
            }
            Ok(config)
        })
        .collect()
}

/// A GET over plain HTTP/1.0 (the admin port): status and body.
pub fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("{addr}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut text = String::new();
    stream
        .read_to_string(&mut text)
        .map_err(|e| format!("{addr}{path}: {e}"))?;
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{addr}{path}: not an HTTP answer: {text}"))?;
    let body = text.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    Ok((status, body.to_string()))
}

/// The bare webhook: HTTPS on 127.0.0.1, answering every AdmissionReview
/// with one fixed JSON patch and the request's uid: the status annotation
/// (which the registration's matchConditions read, as for llm-injector) and
/// one container (so the apiserver's later admission plugins see an added
/// container, as with llm-injector). It runs on
/// its own thread until the process exits.
pub struct BareWebhook {
    pub addr: SocketAddr,
    pub ca_pem: String,
}

impl BareWebhook {
    pub fn start() -> Result<BareWebhook, String> {
        let certs = llm_injector::server::tls::generate(
            "bare-webhook",
            &["127.0.0.1".into()],
            llm_injector::server::tls::Validity::default(),
        )
        .map_err(|e| e.to_string())?;
        let tls = server_config(&certs.cert_pem, &certs.key_pem)?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(serve_bare(listener, tls));
        });
        Ok(BareWebhook {
            addr,
            ca_pem: certs.ca_pem,
        })
    }
}

/// The rustls configuration `llm-injector serve` itself uses, with the
/// bare webhook's certificate.
fn server_config(cert_pem: &str, key_pem: &str) -> Result<Arc<rustls::ServerConfig>, String> {
    use llm_injector::server::tls;
    let key = tls::parse_pair(
        cert_pem.as_bytes(),
        key_pem.as_bytes(),
        "bare-webhook.crt",
        "bare-webhook.key",
    )
    .map_err(|e| e.to_string())?;
    tls::server_config(Arc::new(tls::CertResolver::new(key))).map_err(|e| e.to_string())
}

async fn serve_bare(listener: std::net::TcpListener, tls: Arc<rustls::ServerConfig>) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let patch = base64::engine::general_purpose::STANDARD.encode(
        json!([
            {"op": "add", "path": "/metadata/annotations/llm.injector.dev~1status", "value": "{\"bare\":true}"},
            {"op": "add", "path": "/spec/containers/-", "value": {"name": "bare-engine", "image": "ollama/ollama:0.12.6"}},
        ])
        .to_string(),
    );
    let patch: Arc<str> = patch.into();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (acceptor, patch) = (acceptor.clone(), patch.clone());
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(stream).await else {
                return;
            };
            let service = hyper::service::service_fn(
                move |request: hyper::Request<hyper::body::Incoming>| {
                    let patch = patch.clone();
                    async move {
                        use http_body_util::BodyExt;
                        let body = request.into_body().collect().await?.to_bytes();
                        let review: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        let answer = json!({
                            "apiVersion": "admission.k8s.io/v1",
                            "kind": "AdmissionReview",
                            "response": {
                                "uid": review["request"]["uid"],
                                "allowed": true,
                                "patchType": "JSONPatch",
                                "patch": &*patch,
                            },
                        });
                        Ok::<_, hyper::Error>(
                            hyper::Response::builder()
                                .header("content-type", "application/json")
                                .body(http_body_util::Full::new(axum::body::Bytes::from(
                                    answer.to_string(),
                                )))
                                .expect("response"),
                        )
                    }
                },
            );
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
