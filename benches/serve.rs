//! Load benchmark of `llm-injector serve`: drives `POST /mutate` over TLS with
//! a real apiserver pod review at concurrencies 1, 16 and 64 (one keep-alive
//! HTTP/1.1 connection per client, as the apiserver does), and prints
//! requests/s, p50 and p99 latency and the server's peak RSS, next to a
//! baseline measured in the same run: a bare axum + rustls server that
//! decodes each review into a `serde_json::Value` and answers the webhook's
//! patch for it, fixed (`support/bare_webhook.rs`). The load generator shares
//! the machine's cores, so compare the ratios. No thresholds: figures only.
//!
//! Run: `cargo bench --bench serve` (BENCH_SECONDS=N per level, default 3;
//! BENCH_WEBHOOK_BIN=path to measure another build of `llm-injector`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::AsyncBufReadExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

#[path = "support/bare_webhook.rs"]
mod bare_webhook;
mod support;
use support::{Figures, figures, peak_rss_mib};

/// The allocator of the `llm-injector` binary, for the baseline server (and
/// the load generator) as for the webhook.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const LEVELS: [usize; 3] = [1, 16, 64];

struct Running {
    child: tokio::process::Child,
    addr: SocketAddr,
    connector: TlsConnector,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `llm-injector serve` on the example catalog, with a self-signed CA: this
/// build's binary, or the one `BENCH_WEBHOOK_BIN` names (another build,
/// measured against the same baseline).
async fn start_webhook(dir: &Path) -> Running {
    let ca_file = dir.join("webhook-ca.crt");
    let binary = std::env::var_os("BENCH_WEBHOOK_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_llm-injector")),
        PathBuf::from,
    );
    let mut command = tokio::process::Command::new(binary);
    command
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--admin-addr",
            "127.0.0.1:0",
            "--shutdown-delay",
            "0s",
        ])
        .arg("--catalog")
        .arg(root().join("examples/catalog"))
        .arg("--ca-file")
        .arg(&ca_file);
    started(command, &ca_file).await
}

/// The baseline: this benchmark binary again, as the bare webhook
/// answering with `patch` (base64).
async fn start_bare(dir: &Path, patch: &str) -> Running {
    let (patch_file, ca_file) = (dir.join("bare-patch.b64"), dir.join("bare-ca.crt"));
    std::fs::write(&patch_file, patch).expect("write the patch");
    let mut command =
        tokio::process::Command::new(std::env::current_exe().expect("the benchmark binary"));
    command
        .env(bare_webhook::PATCH_ENV, &patch_file)
        .env(bare_webhook::CA_ENV, &ca_file);
    started(command, &ca_file).await
}

/// Starts `command` and waits for the `https://localhost:PORT` line it
/// prints on stderr; its clients trust the CA it writes to `ca_file`.
async fn started(mut command: tokio::process::Command, ca_file: &Path) -> Running {
    let mut child = command
        .env("RUST_LOG", "warn")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the server");
    let mut lines = tokio::io::BufReader::new(child.stderr.take().expect("stderr")).lines();
    let mut addr = None;
    while addr.is_none() {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("server start-up")
            .expect("read stderr")
            .expect("server exited during start-up");
        // "llm-injector: serving https://localhost:PORT/mutate ..."
        if let Some(rest) = line.split("https://localhost:").nth(1) {
            let port: u16 = rest
                .split('/')
                .next()
                .and_then(|p| p.parse().ok())
                .expect("port");
            addr = Some(SocketAddr::from(([127, 0, 0, 1], port)));
        }
    }
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_file).expect("CA file") {
        roots.add(cert.expect("CA")).expect("add CA");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    Running {
        child,
        addr: addr.expect("address"),
        connector: TlsConnector::from(Arc::new(config)),
    }
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(server: &Running) -> Sender {
    let tcp = TcpStream::connect(server.addr).await.expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    let tls = server
        .connector
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .expect("TLS");
    let (sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
        .await
        .expect("HTTP handshake");
    tokio::spawn(conn);
    sender
}

async fn review(sender: &mut Sender, body: &Bytes) -> Bytes {
    let request = hyper::Request::post("/mutate?timeout=5s")
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(Full::new(body.clone()))
        .expect("request");
    sender.ready().await.expect("connection ready");
    let response = sender.send_request(request).await.expect("response");
    assert_eq!(response.status(), 200, "review failed");
    response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
}

async fn load(server: &Running, body: &Bytes, clients: usize, seconds: f64) -> Figures {
    let mut senders = Vec::new();
    for _ in 0..clients {
        let mut sender = connect(server).await;
        for _ in 0..20 {
            review(&mut sender, body).await; // warm-up
        }
        senders.push(sender);
    }
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let tasks: Vec<_> = senders
        .into_iter()
        .map(|mut sender| {
            let body = body.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let t = Instant::now();
                    review(&mut sender, &body).await;
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    figures(tasks, started).await
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    if let (Ok(patch), Ok(ca)) = (
        std::env::var(bare_webhook::PATCH_ENV),
        std::env::var(bare_webhook::CA_ENV),
    ) {
        bare_webhook::run(Path::new(&patch), Path::new(&ca));
        return;
    }
    let seconds: f64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let dir = std::env::temp_dir().join(format!("llm-injector-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let body = Bytes::from(
            std::fs::read(root().join("tests/fixtures/apiserver-1.36/pod-create-generatename.json")).expect("fixture"),
        );
        let mut server = start_webhook(&dir).await;
        // The baseline answers with the webhook's own patch.
        let real_response = review(&mut connect(&server).await, &body).await;
        let answer: serde_json::Value = serde_json::from_slice(&real_response).expect("JSON answer");
        let patch = answer["response"]["patch"].as_str().expect("the webhook patches the pod");
        let mut baseline = start_bare(&dir, patch).await;
        let base_response = review(&mut connect(&baseline).await, &body).await;

        println!(
            "POST /mutate over TLS (HTTP/1.1 keep-alive), {}-byte pod review -> {}-byte patched response ({} bytes from the baseline), {seconds}s per level",
            body.len(),
            real_response.len(),
            base_response.len()
        );
        println!(
            "{:>5} | {:>10} {:>8} {:>8} | {:>10} {:>8} {:>8} | {:>9} {:>9}",
            "conc", "base rps", "p50 ms", "p99 ms", "hook rps", "p50 ms", "p99 ms", "rps ratio", "p99 ratio"
        );
        for clients in LEVELS {
            let base = load(&baseline, &body, clients, seconds).await;
            let hook = load(&server, &body, clients, seconds).await;
            println!(
                "{:>5} | {:>10.0} {:>8.3} {:>8.3} | {:>10.0} {:>8.3} {:>8.3} | {:>9.2} {:>9.2}",
                clients,
                base.rps,
                ms(base.p50),
                ms(base.p99),
                hook.rps,
                ms(hook.p50),
                ms(hook.p99),
                hook.rps / base.rps,
                hook.p99.as_secs_f64() / base.p99.as_secs_f64(),
            );
        }
        let hook_pid = server.child.id().expect("pid");
        let base_pid = baseline.child.id().expect("pid");
        println!(
            "peak RSS: webhook {:.1} MiB, baseline {:.1} MiB (VmHWM)",
            peak_rss_mib(hook_pid),
            peak_rss_mib(base_pid)
        );
        println!("targets at concurrency 16: rps ratio >= 0.75, p99 ratio <= 1.5; webhook peak RSS < 40 MiB");
        let _ = server.child.kill().await;
        let _ = baseline.child.kill().await;
        let _ = std::fs::remove_dir_all(&dir);
    });
}
