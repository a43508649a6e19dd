//! The reverse proxy: every request (any method, path, query, headers and
//! body) goes to a healthy Ollama instance, and its response comes back
//! frame by frame. Inference requests (generate, chat, embeddings) hold one
//! of their instance's slots and wait in the pool's queue when all are
//! taken (503 with `Retry-After` when the queue is full too); the instance
//! is the one their affinity key hashes to while it is not overloaded, else
//! the least busy. Every other request goes to the instance with the fewest
//! requests in flight. Hop-by-hop headers are dropped both ways. A
//! connection failure takes the instance out of rotation at once and, when
//! nothing of the request was sent, retries it once on another instance.
//! `GET /metrics` is the router's own (Ollama has no such path), where
//! gateways look for a model server's metrics. Errors of the router itself
//! are JSON `{"error": "..."}`, the shape of Ollama's own.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{Either, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{
    CONNECTION, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, HOST, HeaderMap, HeaderName,
    HeaderValue, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, RETRY_AFTER, TE, TRAILER,
    TRANSFER_ENCODING, UPGRADE,
};
use hyper::http::uri::PathAndQuery;
use hyper::{Method, Request, Response, StatusCode, Uri, Version};

use super::body::Streamed;
use super::config::Affinity;
use super::health;
use super::inference::{self, Inference, Inspection, KeepAlive, fnv1a};
use super::metrics::{ErrorReason, Metrics};
use super::observe::Observer;
use super::once_body::OnceBody;
use super::pool::{InFlight, Pool, Refusal};
use super::request_body::{self, ClientBody, MAX_INSPECTED_BODY, Read};
use super::upstream::{SendError, Upstream};

/// A response to the client: an instance's, streamed, or one of the router's own.
pub type ProxyBody = Either<Streamed, Full<Bytes>>;

/// The content type of the metrics.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What the proxy does beyond passing requests on.
#[derive(Debug, Clone, Default)]
pub struct ProxyOptions {
    /// A request's `keep_alive` shorter than this is raised to it.
    pub keep_alive_floor: Option<KeepAlive>,
    /// How inference requests are kept on the same instance.
    pub affinity: Affinity,
    /// Idle keep-alive connections to an instance are closed after this long.
    pub idle_timeout: Duration,
    /// Longest wait for a TCP connection to an instance.
    pub connect_timeout: Duration,
}

/// The proxy's shared state: the pool, the metrics and the upstream connections.
pub struct Proxy {
    pool: Arc<Pool>,
    metrics: Arc<Metrics>,
    upstream: Upstream,
    inspection: Inspection,
    affinity_header: Option<HeaderName>,
}

impl Proxy {
    /// A proxy over `pool`.
    pub fn new(pool: Arc<Pool>, metrics: Arc<Metrics>, options: &ProxyOptions) -> Self {
        let upstream = Upstream::new(
            pool.backends().len(),
            options.connect_timeout,
            options.idle_timeout,
        );
        let (prefix_bytes, affinity_header) = match &options.affinity {
            Affinity::None => (None, None),
            Affinity::Header(name) => (None, Some(name.clone())),
            Affinity::Prefix { bytes } => (Some(*bytes), None),
        };
        Proxy {
            pool,
            metrics,
            upstream,
            inspection: Inspection {
                keep_alive_floor: options.keep_alive_floor,
                prefix_bytes,
            },
            affinity_header,
        }
    }

    /// Passes one request to an instance and its response back.
    pub async fn handle(&self, request: Request<Incoming>) -> Response<ProxyBody> {
        let arrived = Instant::now();
        let (mut parts, body) = request.into_parts();
        let client_version = parts.version;
        if parts.method == Method::CONNECT {
            self.metrics.proxy_error(None, ErrorReason::Unroutable);
            return json_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "CONNECT is not supported: the router forwards Ollama and OpenAI API requests",
            );
        }
        if parts.method == Method::GET && parts.uri.path() == "/metrics" {
            return self.metrics_response();
        }
        // HTTP/2 and absolute-form requests name the host in the URI.
        if !parts.headers.contains_key(HOST)
            && let Some(authority) = parts.uri.authority()
            && let Ok(value) = HeaderValue::from_str(authority.as_str())
        {
            parts.headers.insert(HOST, value);
        }
        strip_hop_by_hop(&mut parts.headers);
        // Upstream requests are origin-form: the path and query only.
        let target = Uri::from(
            parts
                .uri
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/")),
        );

        let kind = inference::classify(&parts.method, parts.uri.path());
        let (body, mut key) = match self.prepare_body(kind, &mut parts.headers, body).await {
            Ok(prepared) => prepared,
            Err(error) => {
                self.metrics.proxy_error(None, ErrorReason::ClientBody);
                return json_error(
                    StatusCode::BAD_REQUEST,
                    &format!("cannot read the request body: {error}"),
                );
            }
        };
        if key.is_none()
            && let Some(name) = &self.affinity_header
            && let Some(value) = parts.headers.get(name)
        {
            key = Some(fnv1a(&[value.as_bytes()]));
        }

        let mut body = Some(body);
        let mut exclude = None;
        loop {
            let in_flight = match self.place(kind, key, exclude).await {
                Ok(in_flight) => in_flight,
                Err(refused) => return refused,
            };
            let index = in_flight.index();
            let Some(backend) = self.pool.backends().get(index) else {
                return self.unavailable();
            };
            let Some(unsent) = body.take() else {
                return self.unavailable();
            };
            // A connection failure may be retried once, elsewhere: keep the
            // headers for it when there is an elsewhere.
            let retry_possible = exclude.is_none() && self.pool.backends().len() > 1;
            let mut headers = if retry_possible {
                parts.headers.clone()
            } else {
                std::mem::take(&mut parts.headers)
            };
            if !headers.contains_key(HOST)
                && let Ok(host) = HeaderValue::from_str(backend.addr().as_str())
            {
                headers.insert(HOST, host);
            }
            let (once, reclaim) = OnceBody::new(unsent);
            let mut upstream = Request::new(once);
            *upstream.method_mut() = parts.method.clone();
            *upstream.uri_mut() = target.clone();
            *upstream.version_mut() = Version::HTTP_11;
            *upstream.headers_mut() = headers;

            match self.upstream.send(index, backend.addr(), upstream).await {
                Ok((response, lease)) => {
                    let (mut head, incoming) = response.into_parts();
                    self.metrics.response(index, head.status);
                    tracing::debug!(
                        method = %parts.method,
                        uri = %parts.uri,
                        backend = %backend.addr(),
                        status = head.status.as_u16(),
                        "proxied"
                    );
                    strip_hop_by_hop(&mut head.headers);
                    head.version = client_version;
                    let observer = kind
                        .filter(|_| head.status.is_success())
                        .map(|kind| Observer::new(kind, arrived));
                    let body = Streamed::new(
                        incoming,
                        in_flight,
                        lease,
                        Arc::clone(&self.metrics),
                        observer,
                    );
                    return Response::from_parts(head, Either::Left(body));
                }
                Err(SendError::Connect(reason)) => {
                    // Out of rotation before its slot frees, so the slot
                    // goes to nobody waiting.
                    self.pool.mark_down(index, &reason);
                    drop(in_flight);
                    self.metrics.proxy_error(Some(index), ErrorReason::Connect);
                    // Nothing reached the instance: the body is still unread.
                    body = reclaim.take();
                    if retry_possible && body.is_some() {
                        exclude = Some(index);
                        continue;
                    }
                    if !self.pool.any_healthy() {
                        return self.unavailable();
                    }
                    return json_error(
                        StatusCode::BAD_GATEWAY,
                        &format!(
                            "cannot connect to Ollama instance {}: {reason}",
                            backend.addr()
                        ),
                    );
                }
                Err(SendError::Exchange(error)) => {
                    let reason = health::reason(&error);
                    self.metrics.proxy_error(Some(index), ErrorReason::Upstream);
                    tracing::warn!(backend = %backend.addr(), %reason, "Ollama instance failed before answering");
                    return json_error(
                        StatusCode::BAD_GATEWAY,
                        &format!(
                            "Ollama instance {} failed before answering: {reason}",
                            backend.addr()
                        ),
                    );
                }
            }
        }
    }

    /// The body to send and the affinity key its prompt makes: an inference
    /// body the router must look into is read whole first (and its
    /// `keep_alive` raised), anything else passes as it comes.
    async fn prepare_body(
        &self,
        kind: Option<Inference>,
        headers: &mut HeaderMap,
        body: Incoming,
    ) -> Result<(ClientBody, Option<u64>), hyper::Error> {
        let pass = |body| ClientBody::Streaming {
            head: None,
            rest: body,
        };
        // A compressed body is not read (Ollama does not read one either).
        let Some(kind) = kind.filter(|&kind| {
            self.inspection.wanted(kind) && !headers.contains_key(CONTENT_ENCODING)
        }) else {
            return Ok((pass(body), None));
        };
        match request_body::read(body, MAX_INSPECTED_BODY).await? {
            Read::TooLong(body) => Ok((body, None)),
            Read::Whole { data, trailers } => {
                let inspected = self.inspection.inspect(kind, &data);
                let data = match inspected.rewritten {
                    Some(rewritten) => {
                        self.metrics.keep_alive_raised();
                        headers.insert(CONTENT_LENGTH, HeaderValue::from(rewritten.len()));
                        rewritten
                    }
                    None => data,
                };
                let body = ClientBody::Whole {
                    data: Some(data),
                    trailers,
                };
                Ok((body, inspected.prefix_key))
            }
        }
    }

    /// The instance for the request: a slot (perhaps after waiting) for an
    /// inference request, the least busy instance for any other; or the
    /// router's refusal.
    async fn place(
        &self,
        kind: Option<Inference>,
        key: Option<u64>,
        exclude: Option<usize>,
    ) -> Result<InFlight, Response<ProxyBody>> {
        if kind.is_none() {
            let index = self
                .pool
                .choose(exclude)
                .ok_or_else(|| self.unavailable())?;
            return Ok(self.pool.start(index));
        }
        match self.pool.acquire(key, exclude).await {
            Ok((in_flight, waited)) => {
                // A retry elsewhere is the same request: its wait counts once.
                if exclude.is_none() {
                    self.metrics.queued(waited);
                }
                Ok(in_flight)
            }
            Err(Refusal::NoHealthyBackend) => Err(self.unavailable()),
            Err(Refusal::QueueFull) => Err(self.busy()),
        }
    }

    /// 503: no instance in rotation, each named with the reason it is out.
    fn unavailable(&self) -> Response<ProxyBody> {
        self.metrics
            .proxy_error(None, ErrorReason::NoHealthyBackend);
        let summary = self.pool.unhealthy_summary();
        let message = if summary.is_empty() {
            "no healthy Ollama instance".to_owned()
        } else {
            format!("no healthy Ollama instance: {summary}")
        };
        retry_later(json_error(StatusCode::SERVICE_UNAVAILABLE, &message))
    }

    /// 503: every instance serves its limit and the queue is full.
    fn busy(&self) -> Response<ProxyBody> {
        self.metrics.proxy_error(None, ErrorReason::QueueFull);
        let limits = self.pool.limits();
        let instances = self.pool.backends().len();
        let message = format!(
            "server busy: all {instances} Ollama instance(s) are serving {} request(s) each and {} more are waiting (the queue is full); retry later",
            limits.per_instance, limits.max_queue
        );
        retry_later(json_error(StatusCode::SERVICE_UNAVAILABLE, &message))
    }

    fn metrics_response(&self) -> Response<ProxyBody> {
        let text = self.metrics.encode(&self.pool);
        let mut response = Response::new(Either::Right(Full::new(Bytes::from(text))));
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(OPENMETRICS));
        response
    }
}

/// Adds `Retry-After: 1` to a 503.
fn retry_later(mut response: Response<ProxyBody>) -> Response<ProxyBody> {
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// `{"error": message}` with `status`, as Ollama answers errors.
fn json_error(status: StatusCode, message: &str) -> Response<ProxyBody> {
    let body = serde_json::json!({ "error": message }).to_string();
    let mut response = Response::new(Either::Right(Full::new(Bytes::from(body))));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Headers that describe one connection, not the message (RFC 9110 7.6.1),
/// besides those named in `Connection`. Constants, so removing them parses
/// no header name per request.
const HOP_BY_HOP: [HeaderName; 9] = [
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION,
    HeaderName::from_static("proxy-connection"),
    TE,
    TRAILER,
    TRANSFER_ENCODING,
    UPGRADE,
];

/// Removes hop-by-hop headers, and the headers `Connection` names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages have none: one pass over the few names present.
    if !headers.keys().any(|name| HOP_BY_HOP.contains(name)) {
        return;
    }
    if headers.contains_key(CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(CONNECTION)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_are_removed() {
        /// Headers in, names of the headers left.
        type Case = (
            &'static [(&'static str, &'static str)],
            &'static [&'static str],
        );
        let cases: &[Case] = &[
            (&[("content-type", "application/json")], &["content-type"]),
            (
                &[
                    ("connection", "keep-alive"),
                    ("keep-alive", "timeout=5"),
                    ("authorization", "Bearer x"),
                ],
                &["authorization"],
            ),
            (
                &[
                    ("connection", "close, X-Drop"),
                    ("connection", "x-also"),
                    ("x-drop", "1"),
                    ("x-also", "2"),
                    ("x-keep", "3"),
                ],
                &["x-keep"],
            ),
            (
                &[
                    ("transfer-encoding", "chunked"),
                    ("te", "trailers"),
                    ("trailer", "x-checksum"),
                    ("upgrade", "websocket"),
                    ("proxy-connection", "keep-alive"),
                    ("proxy-authorization", "Basic x"),
                    ("proxy-authenticate", "Basic"),
                    ("content-length", "10"),
                ],
                &["content-length"],
            ),
            // A Connection value that names no valid header is ignored.
            (
                &[("connection", "bad header, ,"), ("x-keep", "1")],
                &["x-keep"],
            ),
        ];
        for (input, left) in cases {
            let mut headers = HeaderMap::new();
            for (name, value) in *input {
                headers.append(
                    HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    HeaderValue::from_str(value).unwrap(),
                );
            }
            strip_hop_by_hop(&mut headers);
            let mut names: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
            names.sort_unstable();
            assert_eq!(names, *left, "{input:?}");
        }
    }

    #[tokio::test]
    async fn errors_are_ollama_shaped() {
        let response = json_error(StatusCode::SERVICE_UNAVAILABLE, "no healthy \"Ollama\"");
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
        let Either::Right(body) = response.into_body() else {
            panic!("not the router's own body");
        };
        let bytes = http_body_util::BodyExt::collect(body)
            .await
            .unwrap()
            .to_bytes();
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(value, serde_json::json!({"error": "no healthy \"Ollama\""}));
    }
}
