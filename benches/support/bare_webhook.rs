//! The baseline of the `serve` benchmark: the least a mutating webhook can
//! do, on the same stack. axum over hyper and rustls (the webhook's own
//! rustls configuration), each review decoded into a `serde_json::Value`
//! and answered with a fixed patch for its uid. It runs as a child process
//! of the benchmark (the benchmark binary started again with
//! `BARE_WEBHOOK_PATCH` set), as the webhook does, so both are measured alike.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::routing::post;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use llm_injector::server::tls;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// The environment variable that makes the benchmark binary this server:
/// the file holding the base64 patch to answer with.
pub const PATCH_ENV: &str = "BARE_WEBHOOK_PATCH";
/// Where the server writes the CA its clients must trust.
pub const CA_ENV: &str = "BARE_WEBHOOK_CA";

/// The answer to one review: its uid, allowed, the fixed patch.
fn answer(body: &[u8], patch: &str) -> Value {
    let review: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {
            "uid": review.pointer("/request/uid").cloned().unwrap_or(Value::Null),
            "allowed": true,
            "patchType": "JSONPatch",
            "patch": patch,
        }
    })
}

/// Serves until killed; prints `https://localhost:PORT/mutate` on stderr
/// once listening, as `llm-injector serve` does.
pub fn run(patch_file: &Path, ca_file: &Path) {
    let patch: Arc<str> = std::fs::read_to_string(patch_file)
        .expect("the patch file")
        .trim()
        .into();
    let certs = tls::generate(
        "bare-webhook",
        &["localhost".to_owned()],
        tls::Validity::default(),
    )
    .expect("certificates");
    std::fs::write(ca_file, &certs.ca_pem).expect("write the CA");
    let pair = tls::parse_pair(
        certs.cert_pem.as_bytes(),
        certs.key_pem.as_bytes(),
        "cert",
        "key",
    )
    .expect("the pair");
    let config = tls::server_config(Arc::new(tls::CertResolver::new(pair))).expect("TLS config");
    let acceptor = TlsAcceptor::from(config);
    let router = Router::new().route(
        "/mutate",
        post(move |body: Bytes| {
            let patch = patch.clone();
            async move {
                let json = serde_json::to_vec(&answer(&body, &patch)).expect("JSON");
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    json,
                )
            }
        }),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind");
        let port = listener.local_addr().expect("address").port();
        eprintln!("bare webhook: serving https://localhost:{port}/mutate");
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let (acceptor, router) = (acceptor.clone(), router.clone());
            tokio::spawn(async move {
                let Ok(tls_stream) = acceptor.accept(stream).await else {
                    return;
                };
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls_stream), TowerToHyperService::new(router))
                    .await;
            });
        }
    });
}
