//! Shared by the server and injection tests: fixtures, the golden catalogs,
//! a ready `AppState`, and a real HTTPS client over loopback.

use std::sync::Arc;

use std::path::PathBuf;

pub use super::root;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// A fresh directory under the system temp dir, removed on drop. (Not the
/// `tempfile` crate: as a dev-dependency it turns on features of shared
/// dependencies and makes `cargo test` and `cargo build` compile kube twice.)
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "llm-injector-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
/// `examples/catalog` and the catalog `extra` (a path from the root), in
/// namespace "default" where an object names none.
pub fn catalog_with(extra: &str) -> llm_injector::Catalog {
    llm_injector::Catalog::load_all(
        &[root().join("examples/catalog"), root().join(extra)],
        "default",
    )
    .expect("catalogs")
}

/// The catalogs the golden files are injected with (tests/golden.rs).
pub fn golden_catalog() -> llm_injector::Catalog {
    catalog_with("tests/golden/catalog.yaml")
}

/// The state `serve` answers with once ready (TLS bound, catalog synced),
/// serving `catalog` with the default injection options.
pub fn ready_state(
    catalog: llm_injector::Catalog,
    body_limit: usize,
) -> llm_injector::server::AppState {
    use llm_injector::server::{AppState, Health, Metrics};
    use std::sync::atomic::Ordering;
    let health = Health::default();
    health.tls_bound.store(true, Ordering::Release);
    health.catalog_synced.store(true, Ordering::Release);
    AppState {
        source: Arc::new(catalog),
        metrics: Arc::new(Metrics::default()),
        health: Arc::new(health),
        body_limit,
        injector: Arc::new(llm_injector::Injector::default()),
    }
}

/// A captured AdmissionReview from `tests/fixtures/apiserver-1.36/`.
pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(root().join("tests/fixtures/apiserver-1.36").join(name)).expect("fixture")
}

pub fn fixture_json(name: &str) -> serde_json::Value {
    serde_json::from_slice(&fixture(name)).expect("fixture json")
}

/// A TLS client trusting exactly the CA in `ca_pem`.
pub fn tls_connector(ca_pem: &[u8]) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(cert.expect("CA pem")).expect("add CA");
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    // Full handshakes only: a resumed session shows no certificate, and the
    // tests look at which certificate the server presents.
    config.resumption = rustls::client::Resumption::disabled();
    TlsConnector::from(Arc::new(config))
}

/// The answer to one HTTPS request, with the leaf certificate the server showed.
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
    pub server_cert: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// POSTs `body` to `https://localhost:PORT{path}` on a new connection.
pub async fn post(
    connector: &TlsConnector,
    addr: std::net::SocketAddr,
    path: &str,
    body: Vec<u8>,
) -> Result<Answer, String> {
    let tls = tls_to_localhost(connector, addr).await?;
    let server_cert = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.as_ref().to_vec())
        .unwrap_or_default();
    let (status, body) = post_on(&mut http1(tls).await?, path, body).await?;
    Ok(Answer {
        status,
        body,
        server_cert,
    })
}

/// GETs `http://{addr}{path}` on the admin port: (status, body).
pub async fn get_plain(addr: std::net::SocketAddr, path: &str) -> Result<(u16, String), String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let request = hyper::Request::get(path)
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())?;
    let response = http1(tcp)
        .await?
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let (status, body) = read_response(response).await?;
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// A TLS connection to `localhost` at `addr`.
async fn tls_to_localhost(
    connector: &TlsConnector,
    addr: std::net::SocketAddr,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = ServerName::try_from("localhost").expect("name");
    connector
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS: {e}"))
}

/// An HTTP/1.1 client connection over `io`, driven in the background.
async fn http1<I>(io: I) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, String>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    Ok(sender)
}

/// A keep-alive HTTP/1.1 connection over TLS to `localhost` at `addr`, as the
/// kube-apiserver keeps one to a webhook.
pub async fn connect_keep_alive(
    connector: &TlsConnector,
    addr: std::net::SocketAddr,
) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, String> {
    http1(tls_to_localhost(connector, addr).await?).await
}

/// POSTs `body` to `path` on a keep-alive connection: (status, whole body).
pub async fn post_on(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    path: &str,
    body: Vec<u8>,
) -> Result<(u16, Vec<u8>), String> {
    sender.ready().await.map_err(|e| e.to_string())?;
    let request = hyper::Request::post(path)
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    read_response(response).await
}

/// A `llm-injector serve` child process and the addresses it logged.
pub struct ServeProcess {
    pub child: tokio::process::Child,
    pub addr: std::net::SocketAddr,
    pub admin: std::net::SocketAddr,
}

impl ServeProcess {
    /// Starts `llm-injector serve` on 127.0.0.1 ports of the kernel's choice
    /// with `args` added, and waits for the start-up log line that names the
    /// bound addresses. The rest of its log is drained (and dropped).
    pub async fn start(args: &[&std::ffi::OsStr]) -> Self {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt};
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_llm-injector"))
            .args([
                "serve",
                "--addr",
                "127.0.0.1:0",
                "--admin-addr",
                "127.0.0.1:0",
            ])
            .args(args)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start llm-injector serve");
        let mut lines = tokio::io::BufReader::new(child.stderr.take().expect("stderr"));
        let (mut addr, mut admin) = (None, None);
        let mut log = String::new();
        while addr.is_none() || admin.is_none() {
            let mut line = String::new();
            let n = tokio::time::timeout(
                std::time::Duration::from_secs(20),
                lines.read_line(&mut line),
            )
            .await
            .expect("start-up log")
            .expect("read log");
            assert!(n > 0, "server exited: {log}");
            log.push_str(&line);
            let field = |name: &str| {
                line.split_whitespace()
                    .find_map(|w| w.strip_prefix(&format!("{name}=")))
                    .and_then(|v| v.parse::<std::net::SocketAddr>().ok())
            };
            addr = addr.or(field("addr"));
            admin = admin.or(field("admin"));
        }
        tokio::spawn(async move {
            let mut sink = String::new();
            let _ = lines.read_to_string(&mut sink).await;
        });
        ServeProcess {
            child,
            addr: addr.expect("addr"),
            admin: admin.expect("admin"),
        }
    }

    /// Sends SIGTERM, as the kubelet does to a pod being replaced.
    pub fn terminate(&self) {
        let pid = self.child.id().expect("running").to_string();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -TERM {pid}");
    }
}

async fn read_response(
    response: hyper::Response<hyper::body::Incoming>,
) -> Result<(u16, Vec<u8>), String> {
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes()
        .to_vec();
    Ok((status, body))
}

/// Decodes the base64 `response.patch` of a review answer.
pub fn patch_of(review: &serde_json::Value) -> Option<json_patch::Patch> {
    use base64::Engine as _;
    let b64 = review["response"]["patch"].as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("base64 patch");
    Some(serde_json::from_slice(&bytes).expect("patch JSON"))
}

/// Calls `router` in memory with `oneshot` (no network): (status, whole body).
pub async fn oneshot(
    router: axum::Router,
    method: &str,
    path: &str,
    body: Vec<u8>,
) -> (axum::http::StatusCode, Vec<u8>) {
    use tower::ServiceExt;
    let request = axum::http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(axum::body::Body::from(body))
        .expect("request");
    let response = router.oneshot(request).await.expect("infallible");
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, bytes.to_vec())
}
