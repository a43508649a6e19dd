//! A minimal Ollama model registry over HTTPS on 127.0.0.1, enough for
//! `ollama pull` of Ollama v0.12.6 (server/images.go `pullModelManifest`,
//! server/download.go): the manifest, a HEAD per blob for its size, a GET per
//! blob answered with a redirect to another host name (download.go lines
//! 227-266 take the blob's direct URL from the `Location` of that answer;
//! same-host redirects are followed, so the direct URL is on `localhost`),
//! and ranged GETs of the direct URL.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use llm_injector::server::tls;

/// Manifests by `<name>:<tag>` and blobs by digest (`sha256:<hex>`).
pub struct Store {
    manifests: BTreeMap<String, Vec<u8>>,
    blobs: BTreeMap<String, Vec<u8>>,
}

impl Store {
    /// Reads `library/<name>:1` of each of `names` from an Ollama models directory.
    pub fn read(models: &Path, names: &[&str]) -> Store {
        let mut manifests = BTreeMap::new();
        let mut blobs = BTreeMap::new();
        for name in names {
            let path = models.join(format!("manifests/registry.ollama.ai/library/{name}/1"));
            let manifest =
                std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let value: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
            let layers = value["layers"].as_array().unwrap().iter();
            for layer in layers.chain([&value["config"]]) {
                let digest = layer["digest"].as_str().unwrap().to_owned();
                let file = models.join("blobs").join(digest.replace(':', "-"));
                blobs.insert(digest, std::fs::read(file).unwrap());
            }
            manifests.insert(format!("{name}:1"), manifest);
        }
        Store { manifests, blobs }
    }
}

/// The running registry.
pub struct Registry {
    /// `127.0.0.1:<port>`, the host part of model references.
    pub host: String,
    /// The CA of its certificate, PEM.
    pub ca_file: PathBuf,
    _runtime: tokio::runtime::Runtime,
}

/// Serves `store` until the returned [`Registry`] is dropped.
pub fn serve(store: Arc<Store>, dir: &Path) -> Registry {
    let names = ["127.0.0.1".to_owned(), "localhost".to_owned()];
    let certs = tls::generate(
        "llm-injector test registry",
        &names,
        tls::Validity::default(),
    )
    .unwrap();
    let ca_file = dir.join("registry-ca.pem");
    std::fs::write(&ca_file, &certs.ca_pem).unwrap();
    let key = tls::parse_pair(
        certs.cert_pem.as_bytes(),
        certs.key_pem.as_bytes(),
        "registry cert",
        "registry key",
    )
    .unwrap();
    let config = tls::server_config(Arc::new(tls::CertResolver::new(key))).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    runtime.spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let (acceptor, store) = (acceptor.clone(), store.clone());
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |request| {
                    let store = store.clone();
                    async move { Ok::<_, Infallible>(answer(&store, port, &request)) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
            });
        }
    });
    Registry {
        host: format!("127.0.0.1:{port}"),
        ca_file,
        _runtime: runtime,
    }
}

fn answer(store: &Store, port: u16, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    let status = |code: StatusCode| {
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = code;
        response
    };
    let body = |bytes: &[u8], code: StatusCode| {
        let mut response = Response::new(Full::new(Bytes::copy_from_slice(bytes)));
        *response.status_mut() = code;
        response
    };
    if let Some(rest) = path.strip_prefix("/v2/library/") {
        if let Some((name, tag)) = rest.split_once("/manifests/") {
            return match store.manifests.get(&format!("{name}:{tag}")) {
                Some(manifest) => {
                    let mut response = body(manifest, StatusCode::OK);
                    response.headers_mut().insert(
                        "content-type",
                        "application/vnd.docker.distribution.manifest.v2+json"
                            .parse()
                            .unwrap(),
                    );
                    response
                }
                None => status(StatusCode::NOT_FOUND),
            };
        }
        if let Some((_, digest)) = rest.split_once("/blobs/") {
            let Some(blob) = store.blobs.get(digest) else {
                return status(StatusCode::NOT_FOUND);
            };
            if request.method() == Method::HEAD {
                let mut response = status(StatusCode::OK);
                response
                    .headers_mut()
                    .insert("content-length", blob.len().into());
                return response;
            }
            let mut response = status(StatusCode::TEMPORARY_REDIRECT);
            let direct = format!("https://localhost:{port}/direct/{digest}");
            response
                .headers_mut()
                .insert("location", direct.parse().unwrap());
            return response;
        }
    }
    if let Some(digest) = path.strip_prefix("/direct/") {
        let Some(blob) = store.blobs.get(digest) else {
            return status(StatusCode::NOT_FOUND);
        };
        let range = request
            .headers()
            .get("range")
            .and_then(|r| r.to_str().ok())
            .and_then(|r| r.strip_prefix("bytes="))
            .and_then(|r| r.split_once('-'))
            .and_then(|(a, b)| Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?)));
        return match range {
            Some((start, end)) if start <= end && end < blob.len() => {
                body(&blob[start..=end], StatusCode::PARTIAL_CONTENT)
            }
            _ => body(blob, StatusCode::OK),
        };
    }
    status(StatusCode::NOT_FOUND)
}
