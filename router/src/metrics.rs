//! Prometheus metrics of the router, served on its admin endpoint:
//! responses by instance and status class, requests in flight and health by
//! instance, and proxy errors by reason.

use hyper::StatusCode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::pool::Pool;

/// Why a request was not answered by an instance, or not to its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorReason {
    /// No TCP connection to the instance (refused, timed out); it is taken
    /// out of rotation and the request retried once elsewhere if it can be.
    Connect,
    /// Connected, but the instance failed before a response head arrived.
    Upstream,
    /// The response broke off mid-stream.
    UpstreamBody,
    /// Answered 503: no instance in rotation.
    NoHealthyBackend,
    /// A request the router cannot forward (CONNECT, a URI it cannot rebuild).
    Unroutable,
}

impl ErrorReason {
    /// The `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorReason::Connect => "connect",
            ErrorReason::Upstream => "upstream",
            ErrorReason::UpstreamBody => "upstream_body",
            ErrorReason::NoHealthyBackend => "no_healthy_backend",
            ErrorReason::Unroutable => "unroutable",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResponseLabels {
    backend: String,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackendLabels {
    backend: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    backend: String,
    reason: &'static str,
}

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The router's metrics and their registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    backends: Vec<String>,
    responses: Family<ResponseLabels, Counter>,
    /// `responses` of each instance and class 1xx..5xx, created up front so a
    /// request costs one atomic increment.
    by_class: Vec<[Counter; 5]>,
    in_flight: Family<BackendLabels, Gauge>,
    up: Family<BackendLabels, Gauge>,
    errors: Family<ErrorLabels, Counter>,
}

impl Metrics {
    /// Metrics for the instances of `pool`, every series present from the start.
    pub fn new(pool: &Pool) -> Self {
        let mut registry = Registry::with_prefix("llm_router");
        let responses = Family::<ResponseLabels, Counter>::default();
        let in_flight = Family::<BackendLabels, Gauge>::default();
        let up = Family::<BackendLabels, Gauge>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests answered by an Ollama instance (response head received), by instance and status class",
            responses.clone(),
        );
        registry.register(
            "in_flight_requests",
            "Requests sent to an Ollama instance whose response has not ended yet",
            in_flight.clone(),
        );
        registry.register(
            "backend_up",
            "1 while an Ollama instance is in rotation (health checks pass), else 0",
            up.clone(),
        );
        registry.register(
            "proxy_errors",
            "Requests the router could not pass through, by instance (empty: none chosen) and reason",
            errors.clone(),
        );
        let backends: Vec<String> = pool
            .backends()
            .iter()
            .map(|b| b.addr().to_string())
            .collect();
        let by_class = backends
            .iter()
            .map(|backend| {
                CLASSES.map(|status| {
                    responses
                        .get_or_create(&ResponseLabels {
                            backend: backend.clone(),
                            status,
                        })
                        .clone()
                })
            })
            .collect();
        let metrics = Metrics {
            registry,
            backends,
            responses,
            by_class,
            in_flight,
            up,
            errors,
        };
        metrics.refresh(pool);
        metrics
    }

    /// Counts a response head from instance `backend` (an index of the pool).
    pub fn response(&self, backend: usize, status: StatusCode) {
        let class = usize::from(status.as_u16() / 100);
        match self.by_class.get(backend).zip(class.checked_sub(1)) {
            Some((counters, i)) if i < counters.len() => {
                counters[i].inc();
            }
            _ => {
                // A status outside 100..=599: rare enough for a lookup.
                let name = self.backend_name(Some(backend));
                self.responses
                    .get_or_create(&ResponseLabels {
                        backend: name,
                        status: "other",
                    })
                    .inc();
            }
        }
    }

    /// Counts a request that failed for `reason`, on instance `backend` if one was chosen.
    pub fn proxy_error(&self, backend: Option<usize>, reason: ErrorReason) {
        self.errors
            .get_or_create(&ErrorLabels {
                backend: self.backend_name(backend),
                reason: reason.as_str(),
            })
            .inc();
    }

    fn backend_name(&self, index: Option<usize>) -> String {
        index
            .and_then(|i| self.backends.get(i))
            .cloned()
            .unwrap_or_default()
    }

    /// Copies health and in-flight counts from the pool into the gauges.
    fn refresh(&self, pool: &Pool) {
        for backend in pool.backends() {
            let labels = BackendLabels {
                backend: backend.addr().to_string(),
            };
            let in_flight = i64::try_from(backend.in_flight()).unwrap_or(i64::MAX);
            self.in_flight.get_or_create(&labels).set(in_flight);
            self.up
                .get_or_create(&labels)
                .set(i64::from(backend.is_healthy()));
        }
    }

    /// The Prometheus text exposition of every metric, gauges read from `pool` now.
    pub fn encode(&self, pool: &Pool) -> String {
        self.refresh(pool);
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_is_present_and_counts() {
        let pool = Pool::new(["127.0.0.1:1", "127.0.0.1:2"].map(|a| a.parse().unwrap()));
        let metrics = Metrics::new(&pool);
        let statuses = [200, 200, 404, 503, 101, 299, 999];
        for code in statuses {
            metrics.response(1, StatusCode::from_u16(code).unwrap());
        }
        metrics.proxy_error(Some(0), ErrorReason::Connect);
        metrics.proxy_error(None, ErrorReason::NoHealthyBackend);
        pool.backends()[0].mark_down("connection refused");
        let text = metrics.encode(&pool);
        let expected = [
            r#"llm_router_requests_total{backend="127.0.0.1:1",status="2xx"} 0"#,
            r#"llm_router_requests_total{backend="127.0.0.1:2",status="1xx"} 1"#,
            r#"llm_router_requests_total{backend="127.0.0.1:2",status="2xx"} 3"#,
            r#"llm_router_requests_total{backend="127.0.0.1:2",status="4xx"} 1"#,
            r#"llm_router_requests_total{backend="127.0.0.1:2",status="5xx"} 1"#,
            r#"llm_router_requests_total{backend="127.0.0.1:2",status="other"} 1"#,
            r#"llm_router_in_flight_requests{backend="127.0.0.1:1"} 0"#,
            r#"llm_router_backend_up{backend="127.0.0.1:1"} 0"#,
            r#"llm_router_backend_up{backend="127.0.0.1:2"} 1"#,
            r#"llm_router_proxy_errors_total{backend="127.0.0.1:1",reason="connect"} 1"#,
            r#"llm_router_proxy_errors_total{backend="",reason="no_healthy_backend"} 1"#,
        ];
        for line in expected {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
    }
}
