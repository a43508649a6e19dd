//! Prometheus metrics of the router, served on its admin endpoint (and at
//! `GET /metrics` on the proxy port, where gateways look for a model
//! server's metrics).
//!
//! Two sets:
//! - `llm_router_*`, by instance (`backend="host:port"`): responses by
//!   status class, requests in flight and holding a slot, health, time to
//!   first token, duration, output tokens per second, tokens, errors by
//!   reason; the queue (one for all instances): requests waiting and their
//!   wait.
//! - vLLM's names, for the pod (all instances), labelled `model_name` as
//!   vLLM labels them: what LLM-aware gateways, endpoint pickers and
//!   autoscalers read (`vllm:num_requests_running`,
//!   `vllm:num_requests_waiting`, `vllm:time_to_first_token_seconds`,
//!   `vllm:e2e_request_latency_seconds`, `vllm:request_queue_time_seconds`,
//!   `vllm:time_per_output_token_seconds`, `vllm:prompt_tokens_total`,
//!   `vllm:generation_tokens_total`). They are measured at the router in
//!   front of Ollama: "running" is requests holding one of Ollama's
//!   `OLLAMA_NUM_PARALLEL` slots, "waiting" the router's own queue, the
//!   token counts and times per token are Ollama's `prompt_eval_count`,
//!   `eval_count` and `eval_duration` (OpenAI-style answers: their `usage`).

use std::time::Duration;

use hyper::StatusCode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
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
    /// Answered 503: every instance serves its limit and the queue is full.
    QueueFull,
    /// The client's request body could not be read (400).
    ClientBody,
    /// The client went away before its response ended.
    ClientGone,
    /// The instance answered, then reported an error inside the answer (a
    /// last `{"error": ...}` line or event).
    ModelError,
    /// A request the router cannot forward (CONNECT, a URI it cannot rebuild).
    Unroutable,
}

impl ErrorReason {
    /// Every reason, in the order of the metric's series.
    pub const ALL: [ErrorReason; 9] = [
        ErrorReason::Connect,
        ErrorReason::Upstream,
        ErrorReason::UpstreamBody,
        ErrorReason::NoHealthyBackend,
        ErrorReason::QueueFull,
        ErrorReason::ClientBody,
        ErrorReason::ClientGone,
        ErrorReason::ModelError,
        ErrorReason::Unroutable,
    ];

    /// The `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorReason::Connect => "connect",
            ErrorReason::Upstream => "upstream",
            ErrorReason::UpstreamBody => "upstream_body",
            ErrorReason::NoHealthyBackend => "no_healthy_backend",
            ErrorReason::QueueFull => "queue_full",
            ErrorReason::ClientBody => "client_body",
            ErrorReason::ClientGone => "client_gone",
            ErrorReason::ModelError => "model_error",
            ErrorReason::Unroutable => "unroutable",
        }
    }
}

/// What a finished generation reported of its tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TokenStats {
    /// Tokens of the prompt the instance evaluated.
    pub prompt_tokens: Option<u64>,
    /// Tokens generated.
    pub output_tokens: Option<u64>,
    /// Time spent generating them (Ollama's `eval_duration`; for
    /// OpenAI-style answers the time from the first token to the end).
    pub generation_time: Option<Duration>,
}

impl TokenStats {
    /// Output tokens per second of generation, when both are known and above zero.
    pub fn tokens_per_second(&self) -> Option<f64> {
        let tokens = self.output_tokens.filter(|&n| n > 0)?;
        let seconds = self.generation_time?.as_secs_f64();
        #[allow(clippy::cast_precision_loss)]
        (seconds > 0.0).then(|| tokens as f64 / seconds)
    }

    /// Seconds per output token (vLLM's time per output token).
    pub fn seconds_per_token(&self) -> Option<f64> {
        self.tokens_per_second().map(|rate| 1.0 / rate)
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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabels {
    model_name: String,
}

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// vLLM's buckets of time to first token (vllm/v1/metrics/loggers.py).
const TTFT_BUCKETS: [f64; 22] = [
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
];
/// vLLM's buckets of request latency and queue time.
const LATENCY_BUCKETS: [f64; 21] = [
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
    480.0, 960.0, 1920.0, 7680.0,
];
/// Queue waits, finer at the low end: most requests wait not at all.
const QUEUE_BUCKETS: [f64; 16] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 600.0,
];
/// vLLM's buckets of time per output token.
const TPOT_BUCKETS: [f64; 19] = [
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
    40.0, 80.0,
];
const TOKENS_PER_SECOND_BUCKETS: [f64; 14] = [
    1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 50.0, 75.0, 100.0, 150.0, 200.0, 300.0, 500.0, 1000.0,
];

type Constructor = fn() -> Histogram;

fn histogram_family<L>(buckets: Constructor) -> Family<L, Histogram, Constructor>
where
    L: Clone + std::hash::Hash + Eq,
{
    Family::new_with_constructor(buckets)
}

/// The series of one instance, created up front so a request costs atomic
/// operations only.
#[derive(Debug)]
struct InstanceSeries {
    name: String,
    by_class: [Counter; 5],
    ttft: Histogram,
    duration: Histogram,
    tokens_per_second: Histogram,
    prompt_tokens: Counter,
    output_tokens: Counter,
    in_flight: Gauge,
    running: Gauge,
    up: Gauge,
}

/// The pod's series under vLLM's names.
#[derive(Debug)]
struct VllmSeries {
    running: Gauge,
    waiting: Gauge,
    ttft: Histogram,
    e2e: Histogram,
    queue: Histogram,
    tpot: Histogram,
    prompt_tokens: Counter,
    generation_tokens: Counter,
}

/// The router's metrics and their registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    instances: Vec<InstanceSeries>,
    responses: Family<ResponseLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    waiting: Gauge,
    queue_wait: Histogram,
    keep_alive_raised: Counter,
    vllm: VllmSeries,
}

impl Metrics {
    /// Metrics for the instances of `pool`, every series present from the
    /// start; the vLLM-named ones labelled `model_name`.
    pub fn new(pool: &Pool, model_name: &str) -> Self {
        let mut registry = Registry::default();
        let responses = Family::<ResponseLabels, Counter>::default();
        let in_flight = Family::<BackendLabels, Gauge>::default();
        let running = Family::<BackendLabels, Gauge>::default();
        let up = Family::<BackendLabels, Gauge>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let ttft = histogram_family::<BackendLabels>(|| Histogram::new(TTFT_BUCKETS));
        let duration = histogram_family::<BackendLabels>(|| Histogram::new(LATENCY_BUCKETS));
        let tokens_per_second =
            histogram_family::<BackendLabels>(|| Histogram::new(TOKENS_PER_SECOND_BUCKETS));
        let prompt_tokens = Family::<BackendLabels, Counter>::default();
        let output_tokens = Family::<BackendLabels, Counter>::default();
        let waiting = Gauge::default();
        let queue_wait = Histogram::new(QUEUE_BUCKETS);
        let keep_alive_raised = Counter::default();
        registry.register(
            "llm_router_requests",
            "Requests answered by an Ollama instance (response head received), by instance and status class",
            responses.clone(),
        );
        registry.register(
            "llm_router_in_flight_requests",
            "Requests sent to an Ollama instance whose response has not ended yet",
            in_flight.clone(),
        );
        registry.register(
            "llm_router_requests_running",
            "Inference requests (generate, chat, embed; /api and /v1) holding one of an instance's slots (--max-in-flight, Ollama's OLLAMA_NUM_PARALLEL)",
            running.clone(),
        );
        registry.register(
            "llm_router_requests_waiting",
            "Inference requests waiting in the router's queue for a free slot on any instance",
            waiting.clone(),
        );
        registry.register(
            "llm_router_queue_wait_seconds",
            "Time inference requests waited in the router's queue (0 for those that found a free slot)",
            queue_wait.clone(),
        );
        registry.register(
            "llm_router_time_to_first_token_seconds",
            "Time from an inference request's arrival at the router to the first byte of its answer's body, by instance",
            ttft.clone(),
        );
        registry.register(
            "llm_router_request_duration_seconds",
            "Time from an inference request's arrival at the router to the end of its answer, by instance",
            duration.clone(),
        );
        registry.register(
            "llm_router_output_tokens_per_second",
            "Output tokens per second of generation of each answer (Ollama's eval_count / eval_duration), by instance",
            tokens_per_second.clone(),
        );
        registry.register(
            "llm_router_prompt_tokens",
            "Prompt tokens evaluated (Ollama's prompt_eval_count, OpenAI usage.prompt_tokens), by instance",
            prompt_tokens.clone(),
        );
        registry.register(
            "llm_router_output_tokens",
            "Tokens generated (Ollama's eval_count, OpenAI usage.completion_tokens), by instance",
            output_tokens.clone(),
        );
        registry.register(
            "llm_router_backend_up",
            "1 while an Ollama instance is in rotation (health checks pass), else 0",
            up.clone(),
        );
        registry.register(
            "llm_router_proxy_errors",
            "Requests the router could not pass through or that did not end, by instance (empty: none chosen) and reason",
            errors.clone(),
        );
        registry.register(
            "llm_router_keep_alive_raised",
            "Requests whose keep_alive was raised to the model's (the model is kept loaded; --keep-alive-floor)",
            keep_alive_raised.clone(),
        );
        let vllm = VllmSeries::register(&mut registry, model_name);

        let instances = pool
            .backends()
            .iter()
            .map(|b| {
                let name = b.addr().to_string();
                let labels = BackendLabels {
                    backend: name.clone(),
                };
                let by_class = CLASSES.map(|status| {
                    responses
                        .get_or_create(&ResponseLabels {
                            backend: name.clone(),
                            status,
                        })
                        .clone()
                });
                InstanceSeries {
                    by_class,
                    ttft: ttft.get_or_create(&labels).clone(),
                    duration: duration.get_or_create(&labels).clone(),
                    tokens_per_second: tokens_per_second.get_or_create(&labels).clone(),
                    prompt_tokens: prompt_tokens.get_or_create(&labels).clone(),
                    output_tokens: output_tokens.get_or_create(&labels).clone(),
                    in_flight: in_flight.get_or_create(&labels).clone(),
                    running: running.get_or_create(&labels).clone(),
                    up: up.get_or_create(&labels).clone(),
                    name,
                }
            })
            .collect();
        let metrics = Metrics {
            registry,
            instances,
            responses,
            errors,
            waiting,
            queue_wait,
            keep_alive_raised,
            vllm,
        };
        metrics.refresh(pool);
        metrics
    }

    /// Counts a response head from instance `backend` (an index of the pool).
    pub fn response(&self, backend: usize, status: StatusCode) {
        let class = usize::from(status.as_u16() / 100);
        match self.instances.get(backend).zip(class.checked_sub(1)) {
            Some((series, i)) if i < series.by_class.len() => {
                series.by_class[i].inc();
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

    /// An inference request got its slot after waiting `wait`.
    pub fn queued(&self, wait: Duration) {
        let seconds = wait.as_secs_f64();
        self.queue_wait.observe(seconds);
        self.vllm.queue.observe(seconds);
    }

    /// The first byte of an inference answer's body from instance `backend`
    /// came `ttft` after the request arrived.
    pub fn first_token(&self, backend: usize, ttft: Duration) {
        let seconds = ttft.as_secs_f64();
        if let Some(series) = self.instances.get(backend) {
            series.ttft.observe(seconds);
        }
        self.vllm.ttft.observe(seconds);
    }

    /// An inference answer from instance `backend` ended `duration` after
    /// the request arrived, having reported `tokens`.
    pub fn finished(&self, backend: usize, duration: Duration, tokens: &TokenStats) {
        let seconds = duration.as_secs_f64();
        self.vllm.e2e.observe(seconds);
        let series = self.instances.get(backend);
        if let Some(series) = series {
            series.duration.observe(seconds);
        }
        if let Some(n) = tokens.prompt_tokens {
            self.vllm.prompt_tokens.inc_by(n);
            if let Some(series) = series {
                series.prompt_tokens.inc_by(n);
            }
        }
        if let Some(n) = tokens.output_tokens {
            self.vllm.generation_tokens.inc_by(n);
            if let Some(series) = series {
                series.output_tokens.inc_by(n);
            }
        }
        if let Some(rate) = tokens.tokens_per_second() {
            if let Some(series) = series {
                series.tokens_per_second.observe(rate);
            }
            self.vllm.tpot.observe(1.0 / rate);
        }
    }

    /// A request's keep_alive was raised to the floor.
    pub fn keep_alive_raised(&self) {
        self.keep_alive_raised.inc();
    }

    fn backend_name(&self, index: Option<usize>) -> String {
        index
            .and_then(|i| self.instances.get(i))
            .map(|series| series.name.clone())
            .unwrap_or_default()
    }

    /// Copies health, in-flight, running and waiting counts from the pool
    /// into the gauges.
    fn refresh(&self, pool: &Pool) {
        let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        for (series, backend) in self.instances.iter().zip(pool.backends()) {
            series.in_flight.set(gauge(backend.in_flight()));
            series.running.set(gauge(backend.running()));
            series.up.set(i64::from(backend.is_healthy()));
        }
        let waiting = gauge(pool.waiting());
        self.waiting.set(waiting);
        self.vllm.waiting.set(waiting);
        self.vllm.running.set(gauge(pool.running()));
    }

    /// The OpenMetrics text exposition of every metric, gauges read from `pool` now.
    pub fn encode(&self, pool: &Pool) -> String {
        self.refresh(pool);
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

impl VllmSeries {
    fn register(registry: &mut Registry, model_name: &str) -> Self {
        let labels = ModelLabels {
            model_name: model_name.to_owned(),
        };
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let family = Family::<ModelLabels, Gauge>::default();
            registry.register(name, help, family.clone());
            family.get_or_create(&labels).clone()
        };
        let counter = |registry: &mut Registry, name: &str, help: &str| {
            let family = Family::<ModelLabels, Counter>::default();
            registry.register(name, help, family.clone());
            family.get_or_create(&labels).clone()
        };
        let histogram = |registry: &mut Registry, name: &str, help: &str, make: Constructor| {
            let family = histogram_family::<ModelLabels>(make);
            registry.register(name, help, family.clone());
            family.get_or_create(&labels).clone()
        };
        VllmSeries {
            running: gauge(
                registry,
                "vllm:num_requests_running",
                "Inference requests being served by the pod's Ollama instances (holding one of their OLLAMA_NUM_PARALLEL slots), as vLLM's",
            ),
            waiting: gauge(
                registry,
                "vllm:num_requests_waiting",
                "Inference requests waiting in the router's queue for a free slot, as vLLM's",
            ),
            ttft: histogram(
                registry,
                "vllm:time_to_first_token_seconds",
                "Time from arrival at the router (queue included) to the first byte of the answer's body",
                || Histogram::new(TTFT_BUCKETS),
            ),
            e2e: histogram(
                registry,
                "vllm:e2e_request_latency_seconds",
                "Time from arrival at the router to the end of the answer",
                || Histogram::new(LATENCY_BUCKETS),
            ),
            queue: histogram(
                registry,
                "vllm:request_queue_time_seconds",
                "Time spent waiting in the router's queue",
                || Histogram::new(LATENCY_BUCKETS),
            ),
            tpot: histogram(
                registry,
                "vllm:time_per_output_token_seconds",
                "Time per output token: Ollama's eval_duration / eval_count",
                || Histogram::new(TPOT_BUCKETS),
            ),
            prompt_tokens: counter(
                registry,
                "vllm:prompt_tokens",
                "Prompt tokens evaluated (Ollama's prompt_eval_count)",
            ),
            generation_tokens: counter(
                registry,
                "vllm:generation_tokens",
                "Tokens generated (Ollama's eval_count)",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_is_present_and_counts() {
        let pool = Pool::new(["127.0.0.1:1", "127.0.0.1:2"].map(|a| a.parse().unwrap()));
        let metrics = Metrics::new(&pool, "qwen3:0.6b");
        let statuses = [200, 200, 404, 503, 101, 299, 999];
        for code in statuses {
            metrics.response(1, StatusCode::from_u16(code).unwrap());
        }
        metrics.proxy_error(Some(0), ErrorReason::Connect);
        metrics.proxy_error(None, ErrorReason::NoHealthyBackend);
        pool.backends()[0].mark_down("connection refused");
        metrics.queued(Duration::ZERO);
        metrics.queued(Duration::from_millis(30));
        metrics.first_token(1, Duration::from_millis(50));
        let tokens = TokenStats {
            prompt_tokens: Some(9),
            output_tokens: Some(20),
            generation_time: Some(Duration::from_millis(400)),
        };
        metrics.finished(1, Duration::from_millis(450), &tokens);
        metrics.finished(1, Duration::from_millis(10), &TokenStats::default());
        metrics.keep_alive_raised();
        let text = metrics.encode(&pool);
        let expected = [
            r#"llm_router_requests_total{backend="127.0.0.1:1",status="2xx"} 0"#,
            r#"llm_router_requests_total{backend="127.0.0.1:2",status="1xx"} 1"#,
            r#"llm_router_requests_total{backend="127.0.0.1:2",status="2xx"} 3"#,
            r#"llm_router_requests_total{backend="127.0.0.1:2",status="4xx"} 1"#,
            r#"llm_router_requests_total{backend="127.0.0.1:2",status="5xx"} 1"#,
            r#"llm_router_requests_total{backend="127.0.0.1:2",status="other"} 1"#,
            r#"llm_router_in_flight_requests{backend="127.0.0.1:1"} 0"#,
            r#"llm_router_requests_running{backend="127.0.0.1:2"} 0"#,
            r#"llm_router_requests_waiting 0"#,
            r#"llm_router_backend_up{backend="127.0.0.1:1"} 0"#,
            r#"llm_router_backend_up{backend="127.0.0.1:2"} 1"#,
            r#"llm_router_proxy_errors_total{backend="127.0.0.1:1",reason="connect"} 1"#,
            r#"llm_router_proxy_errors_total{backend="",reason="no_healthy_backend"} 1"#,
            r#"llm_router_queue_wait_seconds_count 2"#,
            r#"llm_router_queue_wait_seconds_bucket{le="0.001"} 1"#,
            r#"llm_router_time_to_first_token_seconds_count{backend="127.0.0.1:2"} 1"#,
            r#"llm_router_time_to_first_token_seconds_count{backend="127.0.0.1:1"} 0"#,
            r#"llm_router_request_duration_seconds_count{backend="127.0.0.1:2"} 2"#,
            // 20 tokens in 0.4 s: 50 per second.
            r#"llm_router_output_tokens_per_second_sum{backend="127.0.0.1:2"} 50.0"#,
            r#"llm_router_output_tokens_total{backend="127.0.0.1:2"} 20"#,
            r#"llm_router_prompt_tokens_total{backend="127.0.0.1:2"} 9"#,
            r#"llm_router_keep_alive_raised_total 1"#,
            r#"vllm:num_requests_running{model_name="qwen3:0.6b"} 0"#,
            r#"vllm:num_requests_waiting{model_name="qwen3:0.6b"} 0"#,
            r#"vllm:time_to_first_token_seconds_count{model_name="qwen3:0.6b"} 1"#,
            r#"vllm:e2e_request_latency_seconds_count{model_name="qwen3:0.6b"} 2"#,
            r#"vllm:request_queue_time_seconds_count{model_name="qwen3:0.6b"} 2"#,
            r#"vllm:time_per_output_token_seconds_sum{model_name="qwen3:0.6b"} 0.02"#,
            r#"vllm:generation_tokens_total{model_name="qwen3:0.6b"} 20"#,
            r#"vllm:prompt_tokens_total{model_name="qwen3:0.6b"} 9"#,
            "# TYPE vllm:num_requests_running gauge",
            "# EOF",
        ];
        for line in expected {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
    }

    #[test]
    fn error_reasons_have_distinct_labels() {
        let mut labels: Vec<&str> = ErrorReason::ALL.iter().map(|r| r.as_str()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), ErrorReason::ALL.len());
    }

    #[test]
    fn token_rates() {
        let cases = [
            (Some(20), Some(400), Some(50.0)),
            (Some(0), Some(400), None),
            (Some(20), Some(0), None),
            (None, Some(400), None),
            (Some(20), None, None),
        ];
        for (tokens, millis, want) in cases {
            let stats = TokenStats {
                prompt_tokens: None,
                output_tokens: tokens,
                generation_time: millis.map(Duration::from_millis),
            };
            assert_eq!(stats.tokens_per_second(), want, "{tokens:?} {millis:?}");
        }
    }
}
