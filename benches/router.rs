//! Load benchmark of `llm-injector route`: what the router adds in front of
//! an Ollama instance. A fake instance (this bench binary re-run as a child
//! process, answering every request with a small non-streaming
//! `/api/generate` JSON at once) is driven directly and through the router
//! (`llm-injector route` as a child process, as in a pod) at concurrencies 1
//! and 32, one keep-alive HTTP/1.1 connection per client. Prints requests/s,
//! p50 and p99 of both, the p50 the router adds and the throughput ratio,
//! then the same with an instance that takes 2 ms, 20 ms and 10-30 ms to
//! answer (closer to a real one; see `ROWS`; their latencies are the time
//! beyond the instance's own), and the router's peak RSS. The load
//! generator, the fake and the router share the machine's cores, so with an
//! instant instance the router's CPU comes out of the others' share. No
//! thresholds: figures only.
//!
//! Run: `cargo bench --bench router` (BENCH_SECONDS=N per measurement, default 3;
//! BENCH_ROUTER_ARGS="--threads 2" passes flags to the router).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncBufReadExt;
use tokio::net::{TcpListener, TcpStream};

mod support;
use support::{Figures, figures, peak_rss_mib};

/// Milliseconds the fake instance waits before answering.
const DELAY_HEADER: &str = "x-bench-delay-ms";
/// The measurements: concurrency, and how long the instance takes to answer
/// (milliseconds, least and most; none: at once). A real instance never
/// answers at once (even one token of a small model on a GPU takes
/// milliseconds), and its answers take different times: with one fixed time
/// the 32 clients stay in step, and every burst of 32 answers queues in the
/// router at once, so the last row draws each request's time from a range
/// (the same draws direct and routed).
const ROWS: [(usize, Option<(u64, u64)>); 7] = [
    (1, None),
    (32, None),
    (1, Some((2, 2))),
    (32, Some((2, 2))),
    (1, Some((20, 20))),
    (32, Some((20, 20))),
    (32, Some((10, 30))),
];
/// Set in the child that plays the Ollama instance.
const BACKEND_ROLE: &str = "LLM_ROUTER_BENCH_BACKEND";

/// What the fake instance answers: a non-streaming `/api/generate` response.
const ANSWER: &str = r#"{"model":"qwen3:0.6b","created_at":"2026-01-01T00:00:00.000000Z","response":"Hello! How can I help you today?","done":true,"done_reason":"stop","total_duration":123456789,"load_duration":1234567,"prompt_eval_count":9,"prompt_eval_duration":2345678,"eval_count":10,"eval_duration":98765432}"#;
const REQUEST: &str = r#"{"model":"qwen3:0.6b","prompt":"Hi","stream":false}"#;

/// The fake Ollama instance: prints its address, answers until killed.
fn run_backend() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        println!("backend {}", listener.local_addr().expect("addr"));
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = service_fn(|request: Request<Incoming>| async move {
                    let delay = request
                        .headers()
                        .get(DELAY_HEADER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse().ok())
                        .map(Duration::from_millis);
                    // Read the request, as Ollama does, then answer.
                    let _ = request.into_body().collect().await;
                    if let Some(delay) = delay {
                        // Not tokio's timer: it rounds every sleep up to
                        // the next millisecond tick, which would blur the
                        // difference the router makes. A thread's sleep
                        // ends within tens of microseconds of the time.
                        let _ =
                            tokio::task::spawn_blocking(move || std::thread::sleep(delay)).await;
                    }
                    let mut response =
                        Response::new(Full::new(Bytes::from_static(ANSWER.as_bytes())));
                    response.headers_mut().insert(
                        hyper::header::CONTENT_TYPE,
                        hyper::header::HeaderValue::from_static("application/json; charset=utf-8"),
                    );
                    Ok::<_, Infallible>(response)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

async fn start_backend() -> (tokio::process::Child, SocketAddr) {
    let mut child = tokio::process::Command::new(std::env::current_exe().expect("bench binary"))
        .env(BACKEND_ROLE, "1")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the fake backend");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("backend start-up")
        .expect("read stdout")
        .expect("backend exited during start-up");
    let addr = line
        .strip_prefix("backend ")
        .and_then(|a| a.parse().ok())
        .expect("backend address");
    (child, addr)
}

async fn start_router(backend: SocketAddr) -> (tokio::process::Child, SocketAddr) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_llm-injector"))
        .args(["route", "--listen", "127.0.0.1:0", "--backend"])
        .arg(backend.to_string())
        .args(
            std::env::var("BENCH_ROUTER_ARGS")
                .unwrap_or_default()
                .split_whitespace(),
        )
        .env("RUST_LOG", "warn")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start llm-injector route");
    let mut lines = tokio::io::BufReader::new(child.stderr.take().expect("stderr")).lines();
    loop {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("router start-up")
            .expect("read stderr")
            .expect("router exited during start-up");
        // "llm-injector route: listening on http://ADDR, backends ..."
        if let Some(rest) = line.strip_prefix("llm-injector route: listening on http://") {
            let addr = rest
                .split(',')
                .next()
                .and_then(|a| a.parse().ok())
                .expect("router address");
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            return (child, addr);
        }
    }
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> Sender {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .expect("HTTP handshake");
    tokio::spawn(conn);
    sender
}

/// Answer times for one client: `range` in milliseconds, drawn uniformly by
/// a xorshift generator seeded with the client's number, so that the direct
/// and the routed run ask for the same times.
struct Delays {
    range: Option<(u64, u64)>,
    state: u64,
}

impl Delays {
    fn new(range: Option<(u64, u64)>, client: usize) -> Self {
        let state =
            0x9E37_79B9_7F4A_7C15_u64 ^ (client as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        Self { range, state }
    }

    fn next(&mut self) -> Option<u64> {
        let (least, most) = self.range?;
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        Some(least + self.state % (most - least + 1))
    }
}

async fn generate(sender: &mut Sender, delay_ms: Option<u64>) -> Bytes {
    let mut request = Request::post("/api/generate").header("host", "127.0.0.1");
    if let Some(delay) = delay_ms {
        request = request.header(DELAY_HEADER, delay);
    }
    let request = request
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(REQUEST.as_bytes())))
        .expect("request");
    sender.ready().await.expect("connection ready");
    let response = sender.send_request(request).await.expect("response");
    assert_eq!(response.status(), 200, "request failed");
    response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
}

async fn load(
    addr: SocketAddr,
    clients: usize,
    seconds: f64,
    delay: Option<(u64, u64)>,
) -> Figures {
    let mut senders = Vec::new();
    for client in 0..clients {
        let mut sender = connect(addr).await;
        let mut delays = Delays::new(delay, client);
        let warm_up = if delay.is_some() { 2 } else { 50 };
        for _ in 0..warm_up {
            generate(&mut sender, delays.next()).await;
        }
        senders.push((sender, delays));
    }
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let tasks: Vec<_> = senders
        .into_iter()
        .map(|(mut sender, mut delays)| {
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let delay_ms = delays.next();
                    let t = Instant::now();
                    generate(&mut sender, delay_ms).await;
                    // What the HTTP path takes: the time beyond the
                    // instance's own (the same measure direct and routed,
                    // and precise even when the instance's time varies).
                    let instance = Duration::from_millis(delay_ms.unwrap_or(0));
                    latencies.push(t.elapsed().saturating_sub(instance));
                }
                latencies
            })
        })
        .collect();
    figures(tasks, started).await
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    if std::env::var_os(BACKEND_ROLE).is_some() {
        run_backend();
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
        let (mut backend, backend_addr) = start_backend().await;
        let (mut router, router_addr) = start_router(backend_addr).await;
        let direct_answer = generate(&mut connect(backend_addr).await, None).await;
        let routed_answer = generate(&mut connect(router_addr).await, None).await;
        assert_eq!(direct_answer, routed_answer, "the router changed the answer");

        println!(
            "POST /api/generate (HTTP/1.1 keep-alive), {}-byte request -> {}-byte JSON answer, {seconds}s per measurement",
            REQUEST.len(),
            ANSWER.len()
        );
        println!(
            "{:>5} | {:>9} {:>8} {:>8} | {:>9} {:>8} {:>8} | {:>11} {:>9}",
            "conc", "direct/s", "p50 us", "p99 us", "routed/s", "p50 us", "p99 us", "added p50", "rps ratio"
        );
        let mut timing = None;
        for (clients, delay) in ROWS {
            if delay != timing {
                timing = delay;
                match delay {
                    Some((least, most)) if least == most => {
                        println!("the same, the instance answering after {least} ms (latencies: beyond those {least} ms):");
                    }
                    Some((least, most)) => {
                        println!("the same, each answer after {least}-{most} ms, uniform (latencies: beyond each answer's time):");
                    }
                    None => {}
                }
            }
            let direct = load(backend_addr, clients, seconds, delay).await;
            let routed = load(router_addr, clients, seconds, delay).await;
            println!(
                "{:>5} | {:>9.0} {:>8.0} {:>8.0} | {:>9.0} {:>8.0} {:>8.0} | {:>8.0} us {:>9.2}",
                clients,
                direct.rps,
                us(direct.p50),
                us(direct.p99),
                routed.rps,
                us(routed.p50),
                us(routed.p99),
                us(routed.p50) - us(direct.p50),
                routed.rps / direct.rps,
            );
        }
        let router_pid = router.id().expect("pid");
        println!("router peak RSS: {:.1} MiB (VmHWM)", peak_rss_mib(router_pid));
        println!("goals: added p50 < 100 us; routed throughput >= 0.90 of direct");
        let _ = router.kill().await;
        let _ = backend.kill().await;
    });
}
