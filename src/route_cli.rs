//! Flags of `llm-injector route` and its start-up: logging, runtime, signals.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;

use crate::cli_common::{LogFormat, init_logging, shutdown_signal};
use llm_injector::duration::{KeepAlive, parse_duration, parse_keep_alive};
use llm_router::{Affinity, BackendAddr, Limits, Router, RouterConfig};

#[derive(Args, Debug)]
pub struct RouteArgs {
    /// Address of the one endpoint in front of the Ollama instances (Ollama
    /// `/api/*`, OpenAI-compatible `/v1/*`, every other path too).
    #[arg(long, env = "LLM_ROUTER_LISTEN")]
    listen: SocketAddr,
    /// An Ollama instance, `host:port` or `http://host:port` (port 11434 when
    /// absent). Repeatable; the variable takes a comma-separated list.
    #[arg(
        long = "backend",
        env = "LLM_ROUTER_BACKEND",
        value_delimiter = ',',
        required = true,
        value_name = "HOST:PORT"
    )]
    backends: Vec<BackendAddr>,
    /// Plain-HTTP address of `/livez`, `/readyz` and `/metrics`; none without it.
    #[arg(long, env = "LLM_ROUTER_ADMIN_LISTEN")]
    admin_listen: Option<SocketAddr>,
    /// Time between two health checks (`GET /api/version`) of each instance.
    #[arg(long, env = "LLM_ROUTER_HEALTH_INTERVAL", default_value = "2s", value_parser = parse_duration)]
    health_interval: Duration,
    /// Longest wait for one health check's answer.
    #[arg(long, env = "LLM_ROUTER_HEALTH_TIMEOUT", default_value = "1s", value_parser = parse_duration)]
    health_timeout: Duration,
    /// Longest wait for a TCP connection to an instance.
    #[arg(long, env = "LLM_ROUTER_CONNECT_TIMEOUT", default_value = "2s", value_parser = parse_duration)]
    connect_timeout: Duration,
    /// After SIGTERM, the longest wait for responses still streaming.
    #[arg(long, env = "LLM_ROUTER_DRAIN_TIMEOUT", default_value = "25s", value_parser = parse_duration)]
    drain_timeout: Duration,
    /// Inference requests (generate, chat, embed; `/api` and `/v1`) one
    /// instance serves at once: Ollama's `OLLAMA_NUM_PARALLEL` (1 when
    /// unset). Beyond it they wait in the router's queue, not in Ollama's
    /// unbounded one. 0: no limit.
    #[arg(long, env = "LLM_ROUTER_MAX_IN_FLIGHT", default_value_t = 0)]
    max_in_flight: usize,
    /// Inference requests that wait for a free instance when all serve
    /// their --max-in-flight; one more is answered 503 with Retry-After.
    #[arg(long, env = "LLM_ROUTER_MAX_QUEUE", default_value_t = 512)]
    max_queue: usize,
    /// A request's `keep_alive` shorter than this is raised to it, so a
    /// client cannot unload a model the platform keeps loaded: the model's
    /// OLLAMA_KEEP_ALIVE (`-1`: forever, `30m`, `3600`). Unset: passed as sent.
    #[arg(long, env = "LLM_ROUTER_KEEP_ALIVE_FLOOR", value_parser = parse_floor, allow_hyphen_values = true)]
    keep_alive_floor: Option<llm_router::KeepAlive>,
    /// Keeps inference requests on one instance so Ollama's prompt cache
    /// serves them: `none`, `header:NAME` (the same header value, such as a
    /// session id) or `prefix[:BYTES]` (the same prompt beginning, 1024
    /// bytes by default); bounded by --affinity-load-factor.
    #[arg(long, env = "LLM_ROUTER_AFFINITY", default_value = "none")]
    affinity: Affinity,
    /// An instance takes requests of its affinity while it serves fewer than
    /// this times the average; beyond, they go to the least busy.
    #[arg(long, env = "LLM_ROUTER_AFFINITY_LOAD_FACTOR", default_value_t = llm_router::DEFAULT_LOAD_FACTOR)]
    affinity_load_factor: f64,
    /// The `model_name` label of the vLLM-named metrics (the model served).
    #[arg(long, env = "LLM_ROUTER_MODEL_NAME", default_value = "")]
    model_name: String,
    /// Worker threads. 1, the default, runs the router on one thread: the
    /// lowest latency and memory, and far more than an LLM instance can keep
    /// busy. More use more cores.
    #[arg(long, env = "LLM_ROUTER_THREADS", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: u16,
    /// Log format.
    #[arg(long, env = "LLM_ROUTER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// A keep-alive floor, read as Ollama reads `OLLAMA_KEEP_ALIVE`.
fn parse_floor(text: &str) -> Result<llm_router::KeepAlive, String> {
    Ok(match parse_keep_alive(text.trim())? {
        KeepAlive::Forever => llm_router::KeepAlive::Forever,
        KeepAlive::Nanos(nanos) => llm_router::KeepAlive::For(Duration::from_nanos(
            u64::try_from(nanos).unwrap_or_default(),
        )),
    })
}

pub fn run(args: RouteArgs) -> Result<(), String> {
    init_logging(args.log_format);
    let mut config = RouterConfig::new(args.listen, args.backends);
    config.admin_listen = args.admin_listen;
    config.health_interval = args.health_interval;
    config.health_timeout = args.health_timeout;
    config.connect_timeout = args.connect_timeout;
    config.drain_timeout = args.drain_timeout;
    config.limits = Limits {
        per_instance: args.max_in_flight,
        max_queue: args.max_queue,
    };
    config.keep_alive_floor = args.keep_alive_floor;
    config.affinity = args.affinity;
    config.load_factor = args.affinity_load_factor;
    config.model_name = args.model_name;
    config.validate()?;
    let mut builder = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(usize::from(args.threads));
        builder
    };
    let runtime = builder
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let result = runtime.block_on(async move {
        let backends: Vec<String> = config.backends.iter().map(ToString::to_string).collect();
        let router = Router::bind(config).await.map_err(|e| e.to_string())?;
        let addr = router.local_addr().map_err(|e| e.to_string())?;
        let admin = router.admin_addr().map_err(|e| e.to_string())?;
        let healthy = router
            .pool()
            .backends()
            .iter()
            .filter(|b| b.is_healthy())
            .count();
        tracing::info!(%addr, admin = ?admin, backends = %backends.join(","), healthy, "routing");
        let admin_text = admin.map_or_else(|| "none".to_owned(), |a| format!("http://{a}"));
        eprintln!(
            "llm-injector route: listening on http://{addr}, backends {}, admin {admin_text}",
            backends.join(" "),
        );
        router.run(shutdown_signal()).await;
        Ok(())
    });
    // Connections left after the drain timeout are dropped here, not waited for.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}
