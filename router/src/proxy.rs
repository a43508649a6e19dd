//! The reverse proxy: every request (any method, path, query, headers and
//! body) goes to the healthy Ollama instance with the fewest requests in
//! flight, and its response comes back frame by frame. Hop-by-hop headers are
//! dropped both ways. A connection failure takes the instance out of rotation
//! at once and, when nothing of the request was sent, retries it once on
//! another instance. Errors of the router itself are JSON `{"error": "..."}`,
//! the shape of Ollama's own.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{Either, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{
    CONNECTION, CONTENT_TYPE, HOST, HeaderMap, HeaderName, HeaderValue, PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION, RETRY_AFTER, TE, TRAILER, TRANSFER_ENCODING, UPGRADE,
};
use hyper::http::uri::PathAndQuery;
use hyper::{Method, Request, Response, StatusCode, Uri, Version};

use super::body::Streamed;
use super::health;
use super::metrics::{ErrorReason, Metrics};
use super::once_body::OnceBody;
use super::pool::Pool;
use super::upstream::{SendError, Upstream};

/// A response to the client: an instance's, streamed, or one of the router's own.
pub type ProxyBody = Either<Streamed, Full<Bytes>>;

/// The proxy's shared state: the pool, the metrics and the upstream connections.
pub struct Proxy {
    pool: Arc<Pool>,
    metrics: Arc<Metrics>,
    upstream: Upstream,
}

impl Proxy {
    /// A proxy over `pool`; connections to instances give up after
    /// `connect_timeout` and idle ones close after `idle_timeout`.
    pub fn new(
        pool: Arc<Pool>,
        metrics: Arc<Metrics>,
        connect_timeout: Duration,
        idle_timeout: Duration,
    ) -> Self {
        let upstream = Upstream::new(pool.backends().len(), connect_timeout, idle_timeout);
        Proxy {
            pool,
            metrics,
            upstream,
        }
    }

    /// Passes one request to an instance and its response back.
    pub async fn handle(&self, request: Request<Incoming>) -> Response<ProxyBody> {
        let (mut parts, body) = request.into_parts();
        let client_version = parts.version;
        if parts.method == Method::CONNECT {
            self.metrics.proxy_error(None, ErrorReason::Unroutable);
            return json_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "CONNECT is not supported: the router forwards Ollama and OpenAI API requests",
            );
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

        let mut body = Some(body);
        let mut exclude = None;
        loop {
            let Some(index) = self.pool.choose(exclude) else {
                return self.unavailable();
            };
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

            let in_flight = self.pool.start(index);
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
                    let body = Streamed::new(incoming, in_flight, lease, Arc::clone(&self.metrics));
                    return Response::from_parts(head, Either::Left(body));
                }
                Err(SendError::Connect(reason)) => {
                    drop(in_flight);
                    backend.mark_down(&reason);
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
        let mut response = json_error(StatusCode::SERVICE_UNAVAILABLE, &message);
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
        response
    }
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
