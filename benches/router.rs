//! Load benchmark of `llm-injector route`: what the router adds in front of
//! an Ollama instance. A fake instance (this bench binary re-run as a child
//! process) is driven directly and through the router (`llm-injector route`
//! as a child process, as in a pod) at concurrencies 1 and 32, one
//! keep-alive HTTP/1.1 connection per client. Three tables:
//!
//! 1. **Answers**: the fake answers a non-streaming `/api/generate` with a
//!    small JSON at once, then after 2 ms, 20 ms and 10-30 ms (closer to a
//!    real instance; see `ROWS`; their latencies are the time beyond the
//!    instance's own). Requests/s, p50 and p99 of both, the p50 the router
//!    adds and the throughput ratio.
//! 2. **Streams, time to first token**: the fake streams like a model, `PACE`
//!    (20 tokens, 20 ms apart, the first 20 ms after the request), each token
//!    its own HTTP chunk, as NDJSON (`/api/generate`) and as server-sent
//!    events (`/v1/chat/completions`); the 32 clients start together, as
//!    the sequences of a batch get their tokens at once. The time from
//!    sending a request to the first chunk holding a token: p50 and p99
//!    direct and routed, and what the router adds to each.
//! 3. **Streams, throughput and CPU**: from the same runs, tokens per second
//!    direct and routed (all tokens received over the run's wall time) and
//!    their ratio, and the router's CPU time (user + system) per streamed
//!    token.
//!
//! Then the router's peak RSS. The load generator, the fake and the router
//! share the machine's cores, so with an instant instance the router's CPU
//! comes out of the others' share. The goals of issue 17 are printed next
//! to the figures, never checked: figures only.
//!
//! The router runs with the flags the injected `llm-router` sidecar gets
//! ([`SIDECAR_ARGS`]: the keep-alive floor, so every generate body is read
//! and looked into; a slot per request, with a limit above the
//! concurrency so nothing queues; the model name of the metrics).
//!
//! Run: `cargo bench --bench router` (BENCH_SECONDS=N per measurement, default 3;
//! BENCH_ROUTER_ARGS="--threads 2" passes more flags to the router).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender};
use http_body_util::{BodyExt, Either, Full, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncBufReadExt;
use tokio::net::{TcpListener, TcpStream};

mod support;
use support::{Figures, figures, peak_rss_mib};

/// Milliseconds the fake instance waits before answering.
const DELAY_HEADER: &str = "x-bench-delay-ms";
/// How many tokens the fake instance streams.
const TOKENS_HEADER: &str = "x-bench-tokens";
/// Milliseconds between the tokens the fake instance streams (and before
/// the first).
const INTERVAL_HEADER: &str = "x-bench-token-interval-ms";
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
/// The concurrencies of the streamed measurements.
const STREAM_CLIENTS: [usize; 2] = [1, 32];
/// The injected sidecar's flags (see `router_container` in
/// src/inject/containers.rs), with a slot limit above the bench's highest
/// concurrency: the bench measures the router's cost, not its queue.
const SIDECAR_ARGS: [&str; 4] = [
    "--max-in-flight=64",
    "--max-queue=512",
    "--keep-alive-floor=-1",
    "--model-name=qwen3:0.6b",
];
/// Set in the child that plays the Ollama instance.
const BACKEND_ROLE: &str = "LLM_ROUTER_BENCH_BACKEND";

/// What the fake instance answers: a non-streaming `/api/generate` response.
const ANSWER: &str = r#"{"model":"qwen3:0.6b","created_at":"2026-01-01T00:00:00.000000Z","response":"Hello! How can I help you today?","done":true,"done_reason":"stop","total_duration":123456789,"load_duration":1234567,"prompt_eval_count":9,"prompt_eval_duration":2345678,"eval_count":10,"eval_duration":98765432}"#;
const REQUEST: &str = r#"{"model":"qwen3:0.6b","prompt":"Hi","stream":false}"#;

/// How a streamed answer comes: so many tokens, so long apart. The first
/// token comes one interval after the request (a model's first decoding
/// step), the end right after the last.
#[derive(Clone, Copy)]
struct Pace {
    tokens: usize,
    interval: Duration,
}

/// The streamed measurements' pace: a small model on a GPU.
const PACE: Pace = Pace {
    tokens: 20,
    interval: Duration::from_millis(20),
};

/// The texts of the streamed tokens, in turn.
const TOKEN_TEXTS: [&str; 20] = [
    "Hello",
    "!",
    " How",
    " can",
    " I",
    " help",
    " you",
    " today",
    "?",
    " Ask",
    " me",
    " anything",
    ",",
    " and",
    " I",
    " will",
    " do",
    " my",
    " best",
    ".",
];

/// The two ways Ollama streams an answer.
#[derive(Clone, Copy)]
enum Format {
    /// `POST /api/generate`: one JSON object a line, as Go's `json.Marshal`
    /// writes it.
    Ndjson,
    /// `POST /v1/chat/completions` (OpenAI-compatible): server-sent events.
    Sse,
}

impl Format {
    const BOTH: [Format; 2] = [Format::Ndjson, Format::Sse];

    fn name(self) -> &'static str {
        match self {
            Format::Ndjson => "NDJSON",
            Format::Sse => "SSE",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Format::Ndjson => "/api/generate",
            Format::Sse => "/v1/chat/completions",
        }
    }

    /// The request that asks for a stream.
    fn request(self) -> &'static str {
        match self {
            Format::Ndjson => r#"{"model":"qwen3:0.6b","prompt":"Hi","stream":true}"#,
            Format::Sse => {
                r#"{"model":"qwen3:0.6b","messages":[{"role":"user","content":"Hi"}],"stream":true}"#
            }
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Format::Ndjson => "application/x-ndjson",
            Format::Sse => "text/event-stream",
        }
    }

    /// The format a request for `path` would stream in, if it asked to.
    fn of(method: &Method, path: &str) -> Option<Format> {
        if method != Method::POST {
            return None;
        }
        Format::BOTH.into_iter().find(|f| f.path() == path)
    }

    /// The chunk that carries token number `i`.
    fn token(self, i: usize) -> Bytes {
        let text = TOKEN_TEXTS[i % TOKEN_TEXTS.len()];
        Bytes::from(match self {
            Format::Ndjson => {
                format!(
                    r#"{{"model":"qwen3:0.6b","created_at":"2026-01-01T00:00:00.000000Z","response":"{text}","done":false}}"#
                ) + "\n"
            }
            Format::Sse => {
                format!(
                    r#"data: {{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"qwen3:0.6b","system_fingerprint":"fp_ollama","choices":[{{"index":0,"delta":{{"role":"assistant","content":"{text}"}},"finish_reason":null}}]}}"#
                ) + "\n\n"
            }
        })
    }

    /// The chunks after the last token: Ollama's closing statistics, or the
    /// finishing chunk and the end marker.
    fn end(self, pace: Pace) -> Vec<Bytes> {
        match self {
            Format::Ndjson => {
                let (load, prompt) = (1_234_567_u128, 2_345_678_u128);
                let eval = pace.interval.as_nanos() * pace.tokens as u128;
                vec![Bytes::from(format!(
                    r#"{{"model":"qwen3:0.6b","created_at":"2026-01-01T00:00:00.000000Z","response":"","done":true,"done_reason":"stop","total_duration":{},"load_duration":{load},"prompt_eval_count":9,"prompt_eval_duration":{prompt},"eval_count":{},"eval_duration":{eval}}}"#,
                    load + prompt + eval,
                    pace.tokens
                ) + "\n")]
            }
            Format::Sse => vec![
                Bytes::from_static(concat!(
                    r#"data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"qwen3:0.6b","system_fingerprint":"fp_ollama","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":"stop"}]}"#,
                    "\n\n"
                ).as_bytes()),
                Bytes::from_static(b"data: [DONE]\n\n"),
            ],
        }
    }

    /// How many tokens a chunk the client received holds.
    fn tokens_in(self, chunk: &[u8]) -> usize {
        match self {
            Format::Ndjson => occurrences(chunk, br#""done":false"#),
            Format::Sse => occurrences(chunk, br#""finish_reason":null"#),
        }
    }
}

fn occurrences(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .filter(|w| *w == needle)
        .count()
}

/// The fake instance's response body: an answer at once, or a stream of
/// chunks written by a thread.
type FakeBody = Either<Full<Bytes>, StreamBody<TokenStream>>;
type TokenStream =
    futures::stream::Map<UnboundedReceiver<Bytes>, fn(Bytes) -> Result<Frame<Bytes>, Infallible>>;

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
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service_fn(fake_ollama))
                    .await;
            });
        }
    });
}

/// One request to the fake instance: a stream when the request asks for
/// one (`"stream":true` to `/api/generate` or `/v1/chat/completions`), at
/// the pace its headers ask for; otherwise `ANSWER`, after the delay its
/// header asks for.
async fn fake_ollama(request: Request<Incoming>) -> Result<Response<FakeBody>, Infallible> {
    let delay = header(&request, DELAY_HEADER).map(Duration::from_millis);
    let pace = Pace {
        tokens: header(&request, TOKENS_HEADER).unwrap_or(PACE.tokens),
        interval: header(&request, INTERVAL_HEADER).map_or(PACE.interval, Duration::from_millis),
    };
    let format = Format::of(request.method(), request.uri().path());
    // Read the request, as Ollama does, then answer.
    let body = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    };
    // The bench's own requests are compact JSON.
    if let Some(format) = format.filter(|_| occurrences(&body, br#""stream":true"#) > 0) {
        return Ok(stream_response(format, pace));
    }
    if let Some(delay) = delay {
        // Not tokio's timer: it rounds every sleep up to the next
        // millisecond tick, which would blur the difference the router
        // makes. A thread's sleep ends within tens of microseconds of the
        // time.
        let _ = tokio::task::spawn_blocking(move || std::thread::sleep(delay)).await;
    }
    let mut response = Response::new(Either::Left(Full::new(Bytes::from_static(
        ANSWER.as_bytes(),
    ))));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    Ok(response)
}

fn header<T: std::str::FromStr>(request: &Request<Incoming>, name: &str) -> Option<T> {
    request.headers().get(name)?.to_str().ok()?.parse().ok()
}

/// A streamed answer: a thread of its own writes the chunks at `pace` into
/// a channel, and the body hands each to hyper as it comes, which writes it
/// as one HTTP chunk and flushes it.
fn stream_response(format: Format, pace: Pace) -> Response<FakeBody> {
    let (chunks, received) = futures::channel::mpsc::unbounded();
    std::thread::spawn(move || write_tokens(&chunks, format, pace));
    let data: fn(Bytes) -> Result<Frame<Bytes>, Infallible> = |chunk| Ok(Frame::data(chunk));
    let mut response = Response::new(Either::Right(StreamBody::new(received.map(data))));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    response
}

/// Sends the tokens, each when it is due (on a thread's sleep, precise to
/// tens of microseconds, where tokio's timer would round to its millisecond
/// tick; times from the start, so that late wake-ups do not add up), then
/// the end. Stops when the client has gone.
fn write_tokens(chunks: &UnboundedSender<Bytes>, format: Format, pace: Pace) {
    let start = Instant::now();
    for i in 0..pace.tokens {
        let due = start + pace.interval * (i as u32 + 1);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        if chunks.unbounded_send(format.token(i)).is_err() {
            return;
        }
    }
    for chunk in format.end(pace) {
        let _ = chunks.unbounded_send(chunk);
    }
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
        .args(SIDECAR_ARGS)
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

/// CPU time (user and system, all its threads) process `pid` has used so
/// far, to the nanosecond: its CPU-time clock. (`/proc/PID/stat` gives the
/// same time as utime + stime in whole 10 ms ticks, coarser than what the
/// router spends in a run at concurrency 1.)
fn cpu_time(pid: u32) -> Duration {
    let pid = libc::pid_t::try_from(pid).expect("pid");
    let mut clock: libc::clockid_t = 0;
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: each call only writes the value its pointer is given for.
    let error = unsafe { libc::clock_getcpuclockid(pid, &mut clock) };
    assert_eq!(error, 0, "the CPU-time clock of process {pid}");
    // SAFETY: as above.
    let read = unsafe { libc::clock_gettime(clock, &mut now) };
    assert_eq!(read, 0, "{}", std::io::Error::last_os_error());
    Duration::new(
        u64::try_from(now.tv_sec).expect("seconds"),
        u32::try_from(now.tv_nsec).expect("nanoseconds"),
    )
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

fn stream_request(format: Format, pace: Pace) -> Request<Full<Bytes>> {
    Request::post(format.path())
        .header("host", "127.0.0.1")
        .header("content-type", "application/json")
        .header(TOKENS_HEADER, pace.tokens)
        .header(INTERVAL_HEADER, pace.interval.as_millis() as u64)
        .body(Full::new(Bytes::from_static(format.request().as_bytes())))
        .expect("request")
}

/// One streamed answer at `PACE`, read chunk by chunk: its time to first
/// token (request sent to the first chunk holding a token received).
async fn stream(sender: &mut Sender, format: Format) -> Duration {
    let request = stream_request(format, PACE);
    sender.ready().await.expect("connection ready");
    let sent = Instant::now();
    let response = sender.send_request(request).await.expect("response");
    assert_eq!(response.status(), 200, "request failed");
    let mut body = response.into_body();
    let mut first_token = None;
    let mut tokens = 0;
    while let Some(frame) = body.frame().await {
        if let Some(chunk) = frame.expect("body").data_ref() {
            let held = format.tokens_in(chunk);
            if held > 0 {
                first_token.get_or_insert_with(|| sent.elapsed());
            }
            tokens += held;
        }
    }
    assert_eq!(tokens, PACE.tokens, "a stream lost tokens");
    first_token.expect("a stream without tokens")
}

/// The figures of one streamed measurement.
struct Streamed {
    /// Time to first token (its `rps`: streams per second).
    ttft: Figures,
    /// The streams measured, each of `PACE.tokens` tokens.
    streams: usize,
    /// Tokens received per second of the run's wall time.
    tokens_per_s: f64,
    /// The CPU time the router used during the run, when watched.
    router_cpu: Option<Duration>,
}

/// `clients` clients streaming `format` answers for `seconds`; with
/// `router`, the CPU time that process uses meanwhile.
async fn stream_load(
    addr: SocketAddr,
    format: Format,
    clients: usize,
    seconds: f64,
    router: Option<u32>,
) -> Streamed {
    let mut senders = Vec::new();
    for _ in 0..clients {
        senders.push(connect(addr).await);
    }
    // One stream per client first, all at once: every connection warm,
    // the router's to the instance too.
    futures::future::join_all(senders.iter_mut().map(|sender| stream(sender, format))).await;
    let cpu_before = router.map(cpu_time);
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let tasks: Vec<_> = senders
        .into_iter()
        .map(|mut sender| {
            tokio::spawn(async move {
                let mut ttfts = Vec::new();
                while Instant::now() < deadline {
                    ttfts.push(stream(&mut sender, format).await);
                }
                ttfts
            })
        })
        .collect();
    let ttft = figures(tasks, started).await;
    let router_cpu = router
        .zip(cpu_before)
        .map(|(pid, before)| cpu_time(pid) - before);
    // `figures` gives streams per second of this wall time (microseconds
    // shorter), and every stream carried `PACE.tokens` tokens (`stream`
    // checks).
    let streams = (ttft.rps * started.elapsed().as_secs_f64()).round() as usize;
    Streamed {
        tokens_per_s: ttft.rps * PACE.tokens as f64,
        ttft,
        streams,
        router_cpu,
    }
}

/// The router passes a streamed answer on byte for byte, content type too.
async fn check_streams(backend: SocketAddr, router: SocketAddr) {
    let pace = Pace {
        tokens: 3,
        interval: Duration::from_millis(1),
    };
    for format in Format::BOTH {
        let mut answers = Vec::new();
        for addr in [backend, router] {
            let mut sender = connect(addr).await;
            sender.ready().await.expect("connection ready");
            let response = sender
                .send_request(stream_request(format, pace))
                .await
                .expect("response");
            assert_eq!(response.headers()[CONTENT_TYPE], format.content_type());
            let body = response.into_body().collect().await.expect("body");
            answers.push(body.to_bytes());
        }
        assert_eq!(format.tokens_in(&answers[0]), pace.tokens);
        assert_eq!(
            answers[0],
            answers[1],
            "the router changed the {} stream",
            format.name()
        );
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Table 1: non-streamed answers, at once and after a delay.
async fn answers_table(backend: SocketAddr, router: SocketAddr, seconds: f64) {
    println!(
        "1. Answers: POST /api/generate (HTTP/1.1 keep-alive), {}-byte request -> {}-byte JSON answer, {seconds}s per measurement",
        REQUEST.len(),
        ANSWER.len()
    );
    println!(
        "{:>5} | {:>9} {:>8} {:>8} | {:>9} {:>8} {:>8} | {:>11} {:>9}",
        "conc",
        "direct/s",
        "p50 us",
        "p99 us",
        "routed/s",
        "p50 us",
        "p99 us",
        "added p50",
        "rps ratio"
    );
    let mut timing = None;
    for (clients, delay) in ROWS {
        if delay != timing {
            timing = delay;
            match delay {
                Some((least, most)) if least == most => {
                    println!(
                        "the same, the instance answering after {least} ms (latencies: beyond those {least} ms):"
                    );
                }
                Some((least, most)) => {
                    println!(
                        "the same, each answer after {least}-{most} ms, uniform (latencies: beyond each answer's time):"
                    );
                }
                None => {}
            }
        }
        let direct = load(backend, clients, seconds, delay).await;
        let routed = load(router, clients, seconds, delay).await;
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
    println!(
        "goal (issue 17): against the instance that answers at once, routed throughput at concurrency 32 >= 0.75x direct"
    );
}

/// Tables 2 and 3: streamed answers, each format at each concurrency,
/// directly and through the router (process `router_pid`).
async fn streams_tables(backend: SocketAddr, router: SocketAddr, router_pid: u32, seconds: f64) {
    let mut runs = Vec::new();
    for format in Format::BOTH {
        for clients in STREAM_CLIENTS {
            let direct = stream_load(backend, format, clients, seconds, None).await;
            let routed = stream_load(router, format, clients, seconds, Some(router_pid)).await;
            runs.push((format, clients, direct, routed));
        }
    }
    println!();
    println!(
        "2. Streams: {} tokens {} ms apart (the first {} ms after the request), one chunk each, {seconds}s per measurement;",
        PACE.tokens,
        PACE.interval.as_millis(),
        PACE.interval.as_millis()
    );
    for format in Format::BOTH {
        println!(
            "   {:<6} POST {} {} -> {}",
            format.name(),
            format.path(),
            format.request(),
            format.content_type()
        );
    }
    println!("time to first token (request sent -> first chunk holding a token received):");
    println!(
        "{:<6} {:>4} {:>7} | {:>13} {:>8} | {:>13} {:>8} | {:>12} {:>8}",
        "format",
        "conc",
        "streams",
        "direct p50 ms",
        "p99 ms",
        "routed p50 ms",
        "p99 ms",
        "added p50 us",
        "p99 us"
    );
    for (format, clients, direct, routed) in &runs {
        println!(
            "{:<6} {:>4} {:>7} | {:>13.3} {:>8.3} | {:>13.3} {:>8.3} | {:>12.0} {:>8.0}",
            format.name(),
            clients,
            format!("{}+{}", direct.streams, routed.streams),
            ms(direct.ttft.p50),
            ms(direct.ttft.p99),
            ms(routed.ttft.p50),
            ms(routed.ttft.p99),
            us(routed.ttft.p50) - us(direct.ttft.p50),
            us(routed.ttft.p99) - us(direct.ttft.p99),
        );
    }
    println!("goal (issue 17): added time to first token p50 <= 100 us, p99 <= 1000 us");

    println!();
    println!(
        "3. Streams: tokens per second (all tokens received / wall time) and the router's CPU"
    );
    println!(
        "{:<6} {:>4} | {:>12} {:>12} {:>7} | {:>20}",
        "format", "conc", "direct tok/s", "routed tok/s", "ratio", "router CPU us/token"
    );
    for (format, clients, direct, routed) in &runs {
        let cpu = routed.router_cpu.expect("routed runs watch the router");
        let tokens = (routed.streams * PACE.tokens) as f64;
        println!(
            "{:<6} {:>4} | {:>12.1} {:>12.1} {:>7.3} | {:>19.1}",
            format.name(),
            clients,
            direct.tokens_per_s,
            routed.tokens_per_s,
            routed.tokens_per_s / direct.tokens_per_s,
            us(cpu) / tokens,
        );
    }
    println!(
        "goal (issue 17): routed tokens/s >= 0.98x direct; router CPU per token reported (its user + system time over the routed run / the tokens streamed)"
    );
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
        let router_pid = router.id().expect("pid");
        let direct_answer = generate(&mut connect(backend_addr).await, None).await;
        let routed_answer = generate(&mut connect(router_addr).await, None).await;
        assert_eq!(
            direct_answer, routed_answer,
            "the router changed the answer"
        );
        check_streams(backend_addr, router_addr).await;

        answers_table(backend_addr, router_addr, seconds).await;
        streams_tables(backend_addr, router_addr, router_pid, seconds).await;
        println!();
        println!(
            "router peak RSS: {:.1} MiB (VmHWM)",
            peak_rss_mib(router_pid)
        );
        let _ = router.kill().await;
        let _ = backend.kill().await;
    });
}
