//! Shared by the router tests: a fake Ollama instance (an axum app on
//! loopback that can be killed and restarted on the same port), the router
//! started in-process, and small HTTP client helpers.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use llm_router::{BackendAddr, Router, RouterConfig};
use serde::Deserialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

/// A request the fake saw on its catch-all route.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// What a fake Ollama instance observed, shared across its restarts.
#[derive(Debug)]
pub struct FakeState {
    pub name: String,
    /// Requests other than health checks.
    pub requests: AtomicUsize,
    /// `GET /api/version` calls.
    pub version_checks: AtomicUsize,
    /// Extra milliseconds before every `/api/generate` answers (a slow instance).
    pub delay_ms: AtomicU64,
    /// Streams that ran to their end.
    pub completed: AtomicUsize,
    /// Streams (or handlers waiting to answer) dropped before their end: the
    /// client (the router) went away.
    pub dropped: AtomicUsize,
    /// `gate: true` streams stop after their first chunk until a permit comes.
    pub gate: Semaphore,
    /// Bytes of `/api/upload` request bodies seen so far, frame by frame.
    pub uploaded: AtomicUsize,
    pub recorded: Mutex<Vec<Recorded>>,
    /// While false, `/api/version` answers 500.
    pub version_ok: AtomicBool,
    /// TCP connections accepted (health checks' included).
    pub connections: AtomicUsize,
    /// Bodies of `/api/generate` requests, in order.
    pub generate_bodies: Mutex<Vec<Bytes>>,
}

impl FakeState {
    pub fn new(name: &str) -> Arc<Self> {
        Arc::new(FakeState {
            name: name.to_owned(),
            requests: AtomicUsize::new(0),
            version_checks: AtomicUsize::new(0),
            delay_ms: AtomicU64::new(0),
            completed: AtomicUsize::new(0),
            dropped: AtomicUsize::new(0),
            gate: Semaphore::new(0),
            uploaded: AtomicUsize::new(0),
            recorded: Mutex::new(Vec::new()),
            version_ok: AtomicBool::new(true),
            connections: AtomicUsize::new(0),
            generate_bodies: Mutex::new(Vec::new()),
        })
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    pub fn dropped(&self) -> usize {
        self.dropped.load(Ordering::SeqCst)
    }

    pub fn completed(&self) -> usize {
        self.completed.load(Ordering::SeqCst)
    }

    pub fn last_recorded(&self) -> Recorded {
        self.recorded
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("a recorded request")
    }
}

/// A fake Ollama instance on loopback.
pub struct FakeOllama {
    pub addr: SocketAddr,
    pub state: Arc<FakeState>,
    server: Option<JoinHandle<()>>,
    /// Turns true on kill: every connection task drops its socket.
    killed: tokio::sync::watch::Sender<bool>,
    /// Connections still open.
    open: Arc<AtomicUsize>,
}

impl FakeOllama {
    /// Starts one on a free port.
    pub async fn start(name: &str) -> Self {
        Self::start_at(SocketAddr::from(([127, 0, 0, 1], 0)), FakeState::new(name)).await
    }

    /// Starts one on `addr` with existing state (a restart).
    pub async fn start_at(addr: SocketAddr, state: Arc<FakeState>) -> Self {
        let listener = TcpListener::bind(addr).await.expect("bind fake Ollama");
        let addr = listener.local_addr().unwrap();
        let app = app(state.clone());
        let (killed, kill_rx) = tokio::sync::watch::channel(false);
        let open = Arc::new(AtomicUsize::new(0));
        let counter = open.clone();
        let seen = state.clone();
        let server = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                seen.connections.fetch_add(1, Ordering::SeqCst);
                let service = TowerToHyperService::new(app.clone());
                let mut kill_rx = kill_rx.clone();
                let counter = counter.clone();
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    let connection = builder.serve_connection(TokioIo::new(stream), service);
                    tokio::select! {
                        _ = connection => {}
                        _ = kill_rx.wait_for(|killed| *killed) => {}
                    }
                    counter.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        FakeOllama {
            addr,
            state,
            server: Some(server),
            killed,
            open,
        }
    }

    /// Stops it as a dying process would: the listener and every connection
    /// closed before this returns.
    pub async fn kill(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
            let _ = server.await;
        }
        let _ = self.killed.send(true);
        let open = self.open.clone();
        assert!(
            wait_until(Duration::from_secs(5), || open.load(Ordering::SeqCst) == 0).await,
            "connections of the killed fake stayed open"
        );
    }

    /// Starts it again on the same port with the same state.
    pub async fn restart(&mut self) {
        self.kill().await;
        *self = FakeOllama::start_at(self.addr, self.state.clone()).await;
    }

    pub fn backend(&self) -> BackendAddr {
        self.addr.to_string().parse().unwrap()
    }
}

impl Drop for FakeOllama {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
        let _ = self.killed.send(true);
    }
}

/// A loopback port nothing listens on (bound, then released).
pub async fn dead_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

fn app(state: Arc<FakeState>) -> axum::Router {
    axum::Router::new()
        .route("/api/version", get(version))
        .route("/api/generate", post(generate))
        .route("/v1/chat/completions", post(chat_sse))
        .route("/api/upload", post(upload))
        .route("/status/{code}", get(status).post(status))
        .fallback(echo)
        // Bodies as large as the router's tests send (axum's default is 2 MB).
        .layer(axum::extract::DefaultBodyLimit::max(64 << 20))
        .with_state(state)
}

async fn version(State(state): State<Arc<FakeState>>) -> Response {
    state.version_checks.fetch_add(1, Ordering::SeqCst);
    if state.version_ok.load(Ordering::SeqCst) {
        (
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"version":"0.12.6"}"#,
        )
            .into_response()
    } else {
        (StatusCode::INTERNAL_SERVER_ERROR, r#"{"error":"sick"}"#).into_response()
    }
}

/// The `/api/generate` body the fake understands (Ollama's, plus test knobs).
#[derive(Debug, Deserialize)]
struct GenerateRequest {
    #[allow(dead_code)]
    model: String,
    #[serde(default = "three")]
    chunks: usize,
    #[serde(default)]
    chunk_delay_ms: u64,
    /// Milliseconds before the response head (a model loading).
    #[serde(default)]
    head_delay_ms: u64,
    /// After the first chunk, wait for a permit of the state's gate.
    #[serde(default)]
    gate: bool,
}

fn three() -> usize {
    3
}

/// Counts a drop before the end into `dropped`, unless disarmed.
struct DropWatch {
    state: Arc<FakeState>,
    armed: bool,
}

impl Drop for DropWatch {
    fn drop(&mut self) {
        if self.armed {
            self.state.dropped.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// One NDJSON line of a generate stream, as Ollama writes it.
pub fn generate_line(backend: &str, i: usize, done: bool) -> String {
    if done {
        format!(
            r#"{{"model":"m","backend":"{backend}","response":"","done":true,"prompt_eval_count":7,"eval_count":{i},"eval_duration":{}}}"#,
            i * 10_000_000
        ) + "\n"
    } else {
        format!(r#"{{"model":"m","backend":"{backend}","response":"tok{i}","done":false}}"#) + "\n"
    }
}

async fn generate(State(state): State<Arc<FakeState>>, body: Bytes) -> Response {
    state.requests.fetch_add(1, Ordering::SeqCst);
    state.generate_bodies.lock().unwrap().push(body.clone());
    let request: GenerateRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => {
            return (
                StatusCode::BAD_REQUEST,
                [(header::CONTENT_TYPE, "application/json")],
                serde_json::json!({"error": format!("invalid JSON: {error}")}).to_string(),
            )
                .into_response();
        }
    };
    let mut watch = DropWatch {
        state: state.clone(),
        armed: true,
    };
    let delay = state.delay_ms.load(Ordering::SeqCst) + request.head_delay_ms;
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    watch.armed = false;
    let stream_watch = DropWatch {
        state: state.clone(),
        armed: true,
    };
    let stream = futures::stream::unfold(
        (0usize, stream_watch, request, state),
        |(i, mut watch, request, state)| async move {
            if i > request.chunks {
                return None;
            }
            if i > 0 && request.chunk_delay_ms > 0 {
                tokio::time::sleep(Duration::from_millis(request.chunk_delay_ms)).await;
            }
            if i == 1 && request.gate {
                state.gate.acquire().await.expect("gate").forget();
            }
            let done = i == request.chunks;
            let line = generate_line(&state.name, i, done);
            if done {
                watch.armed = false;
                state.completed.fetch_add(1, Ordering::SeqCst);
            }
            Some((
                Ok::<_, Infallible>(Bytes::from(line)),
                (i + 1, watch, request, state),
            ))
        },
    );
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response()
}

/// The server-sent events of an OpenAI-compatible streamed chat completion.
pub fn sse_events() -> Vec<String> {
    let mut events: Vec<String> = (0..4)
        .map(|i| {
            format!(
                "data: {{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"tok{i}\"}},\"finish_reason\":null}}]}}\n\n"
            )
        })
        .collect();
    events.push("data: [DONE]\n\n".to_owned());
    events
}

async fn chat_sse(State(state): State<Arc<FakeState>>, _body: Bytes) -> Response {
    state.requests.fetch_add(1, Ordering::SeqCst);
    let stream = futures::stream::unfold((0usize, sse_events()), |(i, events)| async move {
        let event = events.get(i)?.clone();
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Some((Ok::<_, Infallible>(Bytes::from(event)), (i + 1, events)))
    });
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

/// Reads the request body frame by frame, counting bytes as they arrive.
async fn upload(State(state): State<Arc<FakeState>>, body: Body) -> Response {
    state.requests.fetch_add(1, Ordering::SeqCst);
    let mut body = body;
    let mut total = 0;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return StatusCode::BAD_REQUEST.into_response();
        };
        if let Some(data) = frame.data_ref() {
            total += data.len();
            state.uploaded.fetch_add(data.len(), Ordering::SeqCst);
        }
    }
    serde_json::json!({"received": total})
        .to_string()
        .into_response()
}

async fn status(State(state): State<Arc<FakeState>>, Path(code): Path<u16>) -> Response {
    state.requests.fetch_add(1, Ordering::SeqCst);
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::json!({"error": format!("status {code}")}).to_string(),
    )
        .into_response()
}

/// Records the request and answers with what it saw, plus hop-by-hop headers
/// the router must not pass on.
async fn echo(
    State(state): State<Arc<FakeState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.requests.fetch_add(1, Ordering::SeqCst);
    let answer = serde_json::json!({
        "backend": state.name,
        "method": method.as_str(),
        "uri": uri.to_string(),
        "body_len": body.len(),
    })
    .to_string();
    state.recorded.lock().unwrap().push(Recorded {
        method,
        uri,
        headers,
        body,
    });
    let mut response = answer.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert("x-backend", HeaderValue::from_str(&state.name).unwrap());
    headers.insert("x-secret", HeaderValue::from_static("hop"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("x-secret"));
    headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
    response
}

/// A router running in-process.
pub struct RunningRouter {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub handle: Option<JoinHandle<()>>,
}

impl RunningRouter {
    /// Starts a router with an admin endpoint over `backends`; `tweak` adjusts the config.
    pub async fn start(backends: &[SocketAddr], tweak: impl FnOnce(&mut RouterConfig)) -> Self {
        let local = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut config = RouterConfig::new(
            local,
            backends
                .iter()
                .map(|a| a.to_string().parse().unwrap())
                .collect(),
        );
        config.admin_listen = Some(local);
        config.health_interval = Duration::from_millis(100);
        config.health_timeout = Duration::from_millis(500);
        config.drain_timeout = Duration::from_secs(5);
        tweak(&mut config);
        let router = Router::bind(config).await.expect("bind router");
        let addr = router.local_addr().unwrap();
        let admin = router.admin_addr().unwrap().expect("admin endpoint");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(router.run(async move {
            let _ = stopped.await;
        }));
        RunningRouter {
            addr,
            admin,
            stop: Some(stop),
            handle: Some(handle),
        }
    }

    /// Sends the shutdown signal; `handle` finishes once drained.
    pub fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The admin endpoint's answer to `GET path`.
    pub async fn admin_get(&self, path: &str) -> (u16, String) {
        let (status, _, body) = send(self.admin, get_request(path)).await.expect("admin");
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// The value of one metric line, `name{labels}` exactly as exposed.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let (_, text) = self.admin_get("/metrics").await;
        metric_value(&text, series)
    }
}

impl Drop for RunningRouter {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            handle.abort();
        }
    }
}

/// The value of `series` (`name{labels}`) in a Prometheus text exposition.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

pub type TestBody = BoxBody<Bytes, Infallible>;

pub fn full(bytes: impl Into<Bytes>) -> TestBody {
    Full::new(bytes.into()).boxed()
}

pub fn get_request(path: &str) -> hyper::Request<TestBody> {
    hyper::Request::get(path)
        .header(header::HOST, "127.0.0.1")
        .body(full(Bytes::new()))
        .unwrap()
}

pub fn post_json(path: &str, json: &serde_json::Value) -> hyper::Request<TestBody> {
    hyper::Request::post(path)
        .header(header::HOST, "127.0.0.1")
        .header(header::CONTENT_TYPE, "application/json")
        .body(full(json.to_string()))
        .unwrap()
}

/// One HTTP/1.1 connection to `addr`.
pub async fn open(addr: SocketAddr) -> hyper::client::conn::http1::SendRequest<TestBody> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.set_nodelay(true).unwrap();
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .expect("handshake");
    tokio::spawn(connection);
    sender
}

/// Sends one request on a new connection; status, headers and whole body.
pub async fn send(
    addr: SocketAddr,
    request: hyper::Request<TestBody>,
) -> Result<(u16, HeaderMap, Bytes), String> {
    let mut sender = open(addr).await;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, headers, body))
}

/// A pooled keep-alive client, as the user's containers would use.
pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Waits until `condition` holds, polling; false on timeout.
pub async fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    condition()
}
