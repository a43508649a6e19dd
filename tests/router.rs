//! The request router over loopback, in front of fake Ollama instances:
//! spread and least-in-flight choice, streaming (NDJSON and SSE, request
//! bodies too), pass-through of requests and errors, failover and recovery,
//! 503 when all are down, client cancellation, drain at shutdown, garbage
//! input, metrics and the `route` binary itself.

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::StreamExt;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Bytes, Frame};
use hyper::header;
use serde_json::{Value, json};
use support::router::{
    FakeOllama, RunningRouter, TestBody, client, dead_port, full, generate_line, get_request,
    metric_value, open, post_json, send, sse_events, wait_until,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `name` of the backend that answered a generate stream's first line.
fn backend_of(line: &[u8]) -> String {
    let value: Value = serde_json::from_slice(line).expect("NDJSON line");
    value["backend"].as_str().expect("backend").to_owned()
}

/// POSTs `/api/generate` through the router with a pooled client; the whole body.
async fn generate(
    client: &hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        Full<Bytes>,
    >,
    url: &str,
    body: &Value,
) -> (u16, Bytes) {
    let request = hyper::Request::post(url)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let response = client.request(request).await.expect("response");
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_spread_evenly_over_equal_backends() {
    let a = FakeOllama::start("a").await;
    let b = FakeOllama::start("b").await;
    let router = RunningRouter::start(&[a.addr, b.addr], |_| {}).await;
    let client = client();
    let url = router.url("/api/generate");

    // One at a time, an idle pool alternates.
    for _ in 0..10 {
        let (status, _) = generate(&client, &url, &json!({"model": "m"})).await;
        assert_eq!(status, 200);
    }
    assert_eq!((a.state.requests(), b.state.requests()), (5, 5));

    // 200 requests at concurrency 20.
    let body = json!({"model": "m", "chunks": 3, "chunk_delay_ms": 1});
    let results: Vec<(u16, Bytes)> = futures::stream::iter(0..200)
        .map(|_| generate(&client, &url, &body))
        .buffer_unordered(20)
        .collect()
        .await;
    let mut by_backend: HashMap<String, usize> = HashMap::new();
    for (status, bytes) in &results {
        assert_eq!(*status, 200);
        let first = bytes.split(|b| *b == b'\n').next().unwrap();
        *by_backend.entry(backend_of(first)).or_default() += 1;
    }
    let (on_a, on_b) = (by_backend["a"], by_backend["b"]);
    assert_eq!(on_a + on_b, 200);
    assert!(
        (80..=120).contains(&on_a),
        "a got {on_a} of 200, b got {on_b}: not within 40-60%"
    );
    assert_eq!(a.state.requests() + b.state.requests(), 210);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_backend_gets_far_fewer_requests() {
    let slow = FakeOllama::start("slow").await;
    let fast = FakeOllama::start("fast").await;
    // Long enough that a loaded machine (CI) still sees the difference.
    slow.state.delay_ms.store(1000, Ordering::SeqCst);
    let router = RunningRouter::start(&[slow.addr, fast.addr], |_| {}).await;
    let client = client();
    let url = router.url("/api/generate");
    let body = json!({"model": "m", "chunks": 2, "chunk_delay_ms": 2});
    let results: Vec<(u16, Bytes)> = futures::stream::iter(0..100)
        .map(|_| generate(&client, &url, &body))
        .buffer_unordered(10)
        .collect()
        .await;
    assert!(results.iter().all(|(status, _)| *status == 200));
    let (on_slow, on_fast) = (slow.state.requests(), fast.state.requests());
    assert_eq!(on_slow + on_fast, 100);
    assert!(
        on_slow <= 15,
        "the slow instance got {on_slow} of 100 requests, the fast one {on_fast}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ndjson_streams_reach_the_client_before_the_backend_finishes() {
    let a = FakeOllama::start("a").await;
    let router = RunningRouter::start(&[a.addr], |_| {}).await;
    let mut sender = open(router.addr).await;
    let response = sender
        .send_request(post_json(
            "/api/generate",
            &json!({"model": "m", "chunks": 3, "gate": true}),
        ))
        .await
        .expect("response head");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "application/x-ndjson"
    );
    let mut body = response.into_body();
    // The backend holds everything after chunk 0 until the gate opens, which
    // happens only once the client has chunk 0.
    let first = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("first chunk before the backend finished")
        .expect("a frame")
        .expect("no error")
        .into_data()
        .expect("data");
    assert_eq!(first, generate_line("a", 0, false));
    assert_eq!(a.state.completed(), 0);
    a.state.gate.add_permits(1);
    let rest = body.collect().await.expect("rest").to_bytes();
    let expected: String = (1..=3).map(|i| generate_line("a", i, i == 3)).collect();
    assert_eq!(rest, expected);
    assert_eq!(a.state.completed(), 1);
}

/// On one thread, as `route` runs by default.
#[tokio::test(flavor = "current_thread")]
async fn server_sent_events_pass_through_unchanged() {
    let a = FakeOllama::start("a").await;
    let router = RunningRouter::start(&[a.addr], |_| {}).await;
    let chat =
        json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let mut sender = open(router.addr).await;
    let response = sender
        .send_request(post_json("/v1/chat/completions", &chat))
        .await
        .expect("response");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    assert_eq!(response.headers()[header::CACHE_CONTROL], "no-cache");
    let mut body = response.into_body();
    let mut frames = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.expect("frame").into_data() {
            frames.push(data);
        }
    }
    let received: Vec<u8> = frames.concat();
    assert_eq!(received, sse_events().concat().into_bytes());
    // Events 10 ms apart arrive as they are written, not in one piece.
    assert!(frames.len() >= 3, "only {} frames", frames.len());
    // Byte for byte what the backend sends directly.
    let (_, _, direct) = send(a.addr, post_json("/v1/chat/completions", &chat))
        .await
        .unwrap();
    assert_eq!(received, direct);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_are_streamed_upstream() {
    let a = FakeOllama::start("a").await;
    let router = RunningRouter::start(&[a.addr], |_| {}).await;
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(1);
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        let chunk = rx.recv().await?;
        Some((Ok::<_, std::convert::Infallible>(Frame::data(chunk)), rx))
    });
    let body: TestBody = BodyExt::boxed(StreamBody::new(stream));
    let request = hyper::Request::post("/api/upload")
        .header(header::HOST, "127.0.0.1")
        .body(body)
        .unwrap();
    let mut sender = open(router.addr).await;
    let response = tokio::spawn(async move { sender.send_request(request).await });
    tx.send(Bytes::from(vec![b'x'; 1000])).await.unwrap();
    // The backend sees the first part while the client still holds the rest.
    assert!(
        wait_until(Duration::from_secs(5), || a
            .state
            .uploaded
            .load(Ordering::SeqCst)
            == 1000)
        .await,
        "the first part of the body did not reach the backend on its own"
    );
    tx.send(Bytes::from(vec![b'y'; 500])).await.unwrap();
    drop(tx);
    let response = response.await.unwrap().expect("response");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap(),
        json!({"received": 1500})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_connections_are_kept_alive_and_reused() {
    let a = FakeOllama::start("a").await;
    let router = RunningRouter::start(&[a.addr], |_| {}).await;
    // Sequential requests, each on a new client connection: the router still
    // needs only one upstream connection (plus the health checks' own).
    for i in 0..50 {
        let request = post_json(
            "/api/generate",
            &json!({"model": "m", "prompt": i, "stream": false}),
        );
        let (status, _, _) = send(router.addr, request).await.unwrap();
        assert_eq!(status, 200);
    }
    assert_eq!(a.state.requests(), 50);
    let connections = a.state.connections.load(Ordering::SeqCst);
    assert!(
        connections <= 3,
        "{connections} upstream connections for 50 requests"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_pass_through_and_hop_by_hop_headers_do_not() {
    let a = FakeOllama::start("a").await;
    let router = RunningRouter::start(&[a.addr], |_| {}).await;
    let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let request = hyper::Request::put("/api/some/thing?x=1&y=%20z&x=2")
        .header(header::HOST, "localhost:11434")
        .header(header::AUTHORIZATION, "Bearer token")
        .header("x-custom", "one")
        .header("x-custom", "two")
        .header(header::CONNECTION, "keep-alive, x-drop-me")
        .header("x-drop-me", "secret")
        .header("keep-alive", "timeout=5")
        .header(header::TE, "trailers")
        .header("proxy-authorization", "Basic abc")
        .body(full(big.clone()))
        .unwrap();
    let (status, headers, body) = send(router.addr, request).await.unwrap();
    assert_eq!(status, 200);
    let seen = a.state.last_recorded();
    assert_eq!(seen.method, "PUT");
    assert_eq!(seen.uri, "/api/some/thing?x=1&y=%20z&x=2");
    assert_eq!(seen.body, big);
    assert_eq!(seen.headers[header::HOST], "localhost:11434");
    assert_eq!(seen.headers[header::AUTHORIZATION], "Bearer token");
    let custom: Vec<_> = seen.headers.get_all("x-custom").iter().collect();
    assert_eq!(custom, ["one", "two"]);
    assert_eq!(seen.headers[header::CONTENT_LENGTH], "1000000");
    for hop in ["x-drop-me", "keep-alive", "te", "proxy-authorization"] {
        assert!(!seen.headers.contains_key(hop), "{hop} reached the backend");
    }
    // On the way back too.
    assert_eq!(headers["x-backend"], "a");
    assert!(!headers.contains_key("x-secret"), "{headers:?}");
    assert!(!headers.contains_key("keep-alive"), "{headers:?}");
    let answer: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer["body_len"], 1_000_000);

    // Any method, any path, including the root.
    for (method, path) in [
        ("GET", "/"),
        ("DELETE", "/api/delete"),
        ("PATCH", "/v1/x"),
        ("OPTIONS", "/api/tags"),
        ("PURGE", "/weird/%7Epath"),
    ] {
        let request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, "127.0.0.1")
            .body(full(Bytes::new()))
            .unwrap();
        let (status, _, body) = send(router.addr, request).await.unwrap();
        assert_eq!(status, 200, "{method} {path}");
        let answer: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            (answer["method"].as_str(), answer["uri"].as_str()),
            (Some(method), Some(path))
        );
    }
    // HEAD: the head only.
    let request = hyper::Request::head("/api/tags")
        .header(header::HOST, "127.0.0.1")
        .body(full(Bytes::new()))
        .unwrap();
    let (status, _, body) = send(router.addr, request).await.unwrap();
    assert_eq!((status, body.len()), (200, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_errors_and_bad_requests_pass_through_as_is() {
    let a = FakeOllama::start("a").await;
    let router = RunningRouter::start(&[a.addr], |_| {}).await;
    // Invalid JSON: the backend judges it.
    let request = hyper::Request::post("/api/generate")
        .header(header::HOST, "127.0.0.1")
        .body(full("{not json"))
        .unwrap();
    let (status, _, body) = send(router.addr, request).await.unwrap();
    assert_eq!(status, 400);
    let error: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        error["error"].as_str().unwrap().starts_with("invalid JSON"),
        "{error}"
    );
    for code in [404u16, 418, 500, 503] {
        let (status, _, body) = send(router.addr, get_request(&format!("/status/{code}")))
            .await
            .unwrap();
        assert_eq!(status, code);
        assert_eq!(
            serde_json::from_slice::<Value>(&body).unwrap(),
            json!({"error": format!("status {code}")})
        );
    }
    let backend = a.addr.to_string();
    let series = |class: &str| {
        format!(r#"llm_router_requests_total{{backend="{backend}",status="{class}"}}"#)
    };
    assert_eq!(router.metric(&series("4xx")).await, Some(3.0));
    assert_eq!(router.metric(&series("5xx")).await, Some(2.0));
}

/// `llm_router_backend_up` of `backend`.
async fn up(router: &RunningRouter, backend: SocketAddr) -> Option<f64> {
    router
        .metric(&format!(r#"llm_router_backend_up{{backend="{backend}"}}"#))
        .await
}

async fn wait_for_up(router: &RunningRouter, backend: SocketAddr, want: f64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if up(router, backend).await == Some(want) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_backend_leaves_rotation_and_comes_back() {
    let mut a = FakeOllama::start("a").await;
    let b = FakeOllama::start("b").await;
    let router = RunningRouter::start(&[a.addr, b.addr], |_| {}).await;
    let client = client();
    let url = router.url("/api/generate");
    for _ in 0..4 {
        assert_eq!(generate(&client, &url, &json!({"model": "m"})).await.0, 200);
    }
    assert_eq!(a.state.requests(), 2);
    assert_eq!(up(&router, a.addr).await, Some(1.0));

    a.kill().await;
    // A request racing the death itself, on a pooled connection the router
    // has not yet seen close, gets a 502 (its bytes were sent: no retry).
    // The router sees the close within microseconds; give it a moment.
    tokio::time::sleep(Duration::from_millis(20)).await;
    for _ in 0..20 {
        let (status, body) = generate(&client, &url, &json!({"model": "m"})).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        assert_eq!(backend_of(body.split(|b| *b == b'\n').next().unwrap()), "b");
    }
    assert!(
        wait_for_up(&router, a.addr, 0.0).await,
        "health gauge of the dead instance stayed 1"
    );
    assert_eq!(router.admin_get("/readyz").await.0, 200);
    let b_before = b.state.requests();

    a.restart().await;
    assert!(
        wait_for_up(&router, a.addr, 1.0).await,
        "the restarted instance did not come back"
    );
    let before = a.state.requests();
    for _ in 0..10 {
        assert_eq!(generate(&client, &url, &json!({"model": "m"})).await.0, 200);
    }
    assert_eq!(
        a.state.requests() - before,
        5,
        "the restarted instance gets its share again"
    );
    assert_eq!(b.state.requests() - b_before, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_health_check_takes_a_backend_out_until_it_passes() {
    let a = FakeOllama::start("a").await;
    let b = FakeOllama::start("b").await;
    let router = RunningRouter::start(&[a.addr, b.addr], |_| {}).await;
    a.state.version_ok.store(false, Ordering::SeqCst);
    assert!(wait_for_up(&router, a.addr, 0.0).await);
    let client = client();
    let url = router.url("/api/generate");
    for _ in 0..6 {
        assert_eq!(generate(&client, &url, &json!({"model": "m"})).await.0, 200);
    }
    assert_eq!(a.state.requests(), 0);
    a.state.version_ok.store(true, Ordering::SeqCst);
    assert!(wait_for_up(&router, a.addr, 1.0).await);
    for _ in 0..6 {
        assert_eq!(generate(&client, &url, &json!({"model": "m"})).await.0, 200);
    }
    assert_eq!(a.state.requests(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_is_retried_on_another_backend_with_its_body() {
    let mut a = FakeOllama::start("a").await;
    let b = FakeOllama::start("b").await;
    // No active checks during the test: only the failed connection can tell.
    let router = RunningRouter::start(&[a.addr, b.addr], |c| {
        c.health_interval = Duration::from_secs(3600);
    })
    .await;
    a.kill().await;
    let body = vec![b'z'; 100_000];
    for _ in 0..4 {
        let request = hyper::Request::post("/api/anything")
            .header(header::HOST, "127.0.0.1")
            .body(full(body.clone()))
            .unwrap();
        let (status, _, answer) = send(router.addr, request).await.unwrap();
        assert_eq!(status, 200);
        let answer: Value = serde_json::from_slice(&answer).unwrap();
        assert_eq!(
            (answer["backend"].as_str(), answer["body_len"].as_u64()),
            (Some("b"), Some(100_000))
        );
    }
    assert_eq!(b.state.requests(), 4);
    assert_eq!(up(&router, a.addr).await, Some(0.0));
    let errors = format!(
        r#"llm_router_proxy_errors_total{{backend="{}",reason="connect"}}"#,
        a.addr
    );
    assert_eq!(router.metric(&errors).await, Some(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_healthy_backend_gives_503_json_until_one_comes_up() {
    let p1 = dead_port().await;
    let p2 = dead_port().await;
    let router = RunningRouter::start(&[p1, p2], |_| {}).await;
    let (status, headers, body) = send(router.addr, get_request("/api/tags")).await.unwrap();
    assert_eq!(status, 503);
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap(),
        json!({"error": format!("no healthy Ollama instance: {p1} (connection refused), {p2} (connection refused)")})
    );
    let (status, text) = router.admin_get("/readyz").await;
    assert_eq!(status, 503);
    assert!(text.contains("no healthy Ollama instance"), "{text}");
    assert_eq!(router.admin_get("/livez").await.0, 200);
    assert_eq!(
        router
            .metric(r#"llm_router_proxy_errors_total{backend="",reason="no_healthy_backend"}"#)
            .await,
        Some(1.0)
    );

    let a = FakeOllama::start_at(p2, support::router::FakeState::new("a")).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while router.admin_get("/readyz").await.0 != 200 {
        assert!(Instant::now() < deadline, "/readyz stayed 503");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, _, _) = send(router.addr, get_request("/api/tags")).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(a.state.requests(), 1);
}

/// On one thread, as `route` runs by default.
#[tokio::test(flavor = "current_thread")]
async fn a_client_going_away_mid_stream_cancels_the_backend_stream() {
    let a = FakeOllama::start("a").await;
    let router = RunningRouter::start(&[a.addr], |_| {}).await;
    let mut sender = open(router.addr).await;
    let response = sender
        .send_request(post_json(
            "/api/generate",
            &json!({"model": "m", "chunks": 1000, "chunk_delay_ms": 20}),
        ))
        .await
        .unwrap();
    let mut body = response.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first, generate_line("a", 0, false));
    let in_flight = format!(r#"llm_router_in_flight_requests{{backend="{}"}}"#, a.addr);
    assert_eq!(router.metric(&in_flight).await, Some(1.0));
    // The client goes away: its connection closes.
    drop(body);
    drop(sender);
    let started = Instant::now();
    assert!(
        wait_until(Duration::from_secs(3), || a.state.dropped() == 1).await,
        "the backend kept streaming to nobody"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(a.state.completed(), 0);
    let deadline = Instant::now() + Duration::from_secs(2);
    while router.metric(&in_flight).await != Some(0.0) {
        assert!(
            Instant::now() < deadline,
            "the in-flight count was not released"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_going_away_before_the_response_head_cancels_the_backend_request() {
    let a = FakeOllama::start("a").await;
    let router = RunningRouter::start(&[a.addr], |_| {}).await;
    let mut sender = open(router.addr).await;
    let pending = tokio::spawn(async move {
        sender
            .send_request(post_json(
                "/api/generate",
                &json!({"model": "m", "head_delay_ms": 10_000}),
            ))
            .await
    });
    assert!(wait_until(Duration::from_secs(3), || a.state.requests() == 1).await);
    pending.abort();
    let _ = pending.await;
    assert!(
        wait_until(Duration::from_secs(2), || a.state.dropped() == 1).await,
        "the backend kept working for nobody"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_streams_finish_and_refuses_new_connections() {
    let a = FakeOllama::start("a").await;
    let mut router = RunningRouter::start(&[a.addr], |_| {}).await;
    let mut sender = open(router.addr).await;
    let response = sender
        .send_request(post_json(
            "/api/generate",
            &json!({"model": "m", "chunks": 3, "gate": true}),
        ))
        .await
        .unwrap();
    let mut body = response.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first, generate_line("a", 0, false));

    router.shutdown();
    let addr = router.addr;
    assert!(
        wait_until(Duration::from_secs(3), || std::net::TcpStream::connect(
            addr
        )
        .is_err())
        .await,
        "still accepting after the shutdown signal"
    );
    assert_eq!(router.admin_get("/readyz").await.0, 503);
    let handle = router.handle.take().unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!handle.is_finished(), "stopped before the stream ended");

    a.state.gate.add_permits(1);
    let rest = body.collect().await.unwrap().to_bytes();
    let expected: String = (1..=3).map(|i| generate_line("a", i, i == 3)).collect();
    assert_eq!(rest, expected);
    tokio::time::timeout(Duration::from_secs(3), handle)
        .await
        .expect("run returns once drained")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drain_is_bounded() {
    let a = FakeOllama::start("a").await;
    let mut router = RunningRouter::start(&[a.addr], |c| {
        c.drain_timeout = Duration::from_millis(300);
    })
    .await;
    let mut sender = open(router.addr).await;
    let response = sender
        .send_request(post_json(
            "/api/generate",
            &json!({"model": "m", "gate": true}),
        ))
        .await
        .unwrap();
    let mut body = response.into_body();
    body.frame().await.unwrap().unwrap();
    let started = Instant::now();
    router.shutdown();
    let handle = router.handle.take().unwrap();
    tokio::time::timeout(Duration::from_secs(3), handle)
        .await
        .expect("run returns after the drain timeout")
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
}

/// Writes `raw` on a new connection and reads whatever comes back (up to 2 s).
async fn raw_exchange(addr: SocketAddr, raw: &[u8]) -> String {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = tcp.write_all(raw).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), tcp.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_odd_requests_never_break_the_router() {
    let a = FakeOllama::start("a").await;
    let router = RunningRouter::start(&[a.addr], |_| {}).await;
    let cases: &[(&[u8], &str)] = &[
        (b"\x00\x01\x02garbage\r\n\r\n", "HTTP/1.1 400"),
        (b"GET /api/version HTTP/1.0\r\n\r\n", "HTTP/1.0 200"),
        (
            b"GET http://example.com/api/version HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n",
            "HTTP/1.1 200",
        ),
        (
            b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            "HTTP/1.1 ",
        ),
        (
            b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
            "HTTP/1.1 405",
        ),
        (
            b"POST /api/generate HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            "",
        ),
        (
            b"POST /api/generate HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"model\"",
            "",
        ),
        (
            b"GET /api/tags HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade, close\r\n\r\n",
            "HTTP/1.1 200",
        ),
    ];
    for (raw, want) in cases {
        let answer = raw_exchange(router.addr, raw).await;
        assert!(
            answer.starts_with(want),
            "{:?} got {answer:?}",
            String::from_utf8_lossy(raw)
        );
    }
    // Still serving, and not stuck with requests in flight.
    let (status, _, _) = send(router.addr, get_request("/api/version"))
        .await
        .unwrap();
    assert_eq!(status, 200);
    let in_flight = format!(r#"llm_router_in_flight_requests{{backend="{}"}}"#, a.addr);
    let deadline = Instant::now() + Duration::from_secs(3);
    while router.metric(&in_flight).await != Some(0.0) {
        assert!(Instant::now() < deadline, "requests left in flight");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_clients_are_served() {
    let a = FakeOllama::start("a").await;
    let router = RunningRouter::start(&[a.addr], |_| {}).await;
    let tcp = tokio::net::TcpStream::connect(router.addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    let request = hyper::Request::post(router.url("/api/generate"))
        .body(full(json!({"model": "m"}).to_string()))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let expected: String = (0..=3).map(|i| generate_line("a", i, i == 3)).collect();
    assert_eq!(body, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_per_backend() {
    let a = FakeOllama::start("a").await;
    let b = FakeOllama::start("b").await;
    let router = RunningRouter::start(&[a.addr, b.addr], |_| {}).await;
    let client = client();
    let url = router.url("/api/generate");
    for _ in 0..7 {
        assert_eq!(generate(&client, &url, &json!({"model": "m"})).await.0, 200);
    }
    let (status, text) = router.admin_get("/metrics").await;
    assert_eq!(status, 200);
    for (fake, count) in [(&a, 4.0), (&b, 3.0)] {
        let backend = fake.addr;
        let series = [
            (
                format!(r#"llm_router_requests_total{{backend="{backend}",status="2xx"}}"#),
                count,
            ),
            (
                format!(r#"llm_router_requests_total{{backend="{backend}",status="5xx"}}"#),
                0.0,
            ),
            (
                format!(r#"llm_router_in_flight_requests{{backend="{backend}"}}"#),
                0.0,
            ),
            (
                format!(r#"llm_router_backend_up{{backend="{backend}"}}"#),
                1.0,
            ),
        ];
        for (series, want) in series {
            assert_eq!(
                metric_value(&text, &series),
                Some(want),
                "{series} in\n{text}"
            );
        }
        assert_eq!(fake.state.requests() as f64, count);
    }
    for help in [
        "llm_router_requests",
        "llm_router_in_flight_requests",
        "llm_router_backend_up",
        "llm_router_proxy_errors",
    ] {
        assert!(
            text.contains(&format!("# HELP {help} ")),
            "{help} undocumented"
        );
    }
    let (status, text) = router.admin_get("/readyz").await;
    assert_eq!((status, text.as_str()), (200, "ok\n"));
    // The admin endpoint does not proxy.
    assert_eq!(router.admin_get("/api/tags").await.0, 404);
}

/// Starts `llm-injector route` with `env`; its process and proxy address.
async fn start_binary(
    args: &[&str],
    env: &[(&str, String)],
) -> (tokio::process::Child, SocketAddr, SocketAddr) {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_llm-injector"))
        .arg("route")
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("RUST_LOG", "warn")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start llm-injector route");
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    loop {
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("start-up")
            .expect("stderr")
            .expect("route exited during start-up");
        // "llm-injector route: listening on http://ADDR, backends ..., admin http://ADDR"
        if let Some(rest) = line.strip_prefix("llm-injector route: listening on http://") {
            let addr = rest.split(',').next().unwrap().parse().unwrap();
            let admin = rest
                .rsplit("admin http://")
                .next()
                .unwrap()
                .parse()
                .unwrap();
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            return (child, addr, admin);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_route_binary_reads_its_environment_and_exits_0_on_sigterm() {
    let a = FakeOllama::start("a").await;
    let b = FakeOllama::start("b").await;
    let (mut child, addr, admin) = start_binary(
        &[],
        &[
            ("LLM_ROUTER_LISTEN", "127.0.0.1:0".to_owned()),
            ("LLM_ROUTER_ADMIN_LISTEN", "127.0.0.1:0".to_owned()),
            (
                "LLM_ROUTER_BACKEND",
                format!("http://{},http://{}/", a.addr, b.addr),
            ),
            ("LLM_ROUTER_HEALTH_INTERVAL", "500ms".to_owned()),
        ],
    )
    .await;
    for _ in 0..4 {
        let (status, _, _) = send(addr, post_json("/api/generate", &json!({"model": "m"})))
            .await
            .unwrap();
        assert_eq!(status, 200);
    }
    assert_eq!((a.state.requests(), b.state.requests()), (2, 2));
    let (status, _, _) = send(admin, get_request("/readyz")).await.unwrap();
    assert_eq!(status, 200);

    let pid = child.id().expect("pid").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exit after SIGTERM")
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_route_binary_refuses_bad_flags() {
    let cases: &[&[&str]] = &[
        &[
            "--listen",
            "127.0.0.1:0",
            "--backend",
            "https://127.0.0.1:1",
        ],
        &["--listen", "127.0.0.1:0"],
        &[
            "--listen",
            "127.0.0.1:0",
            "--backend",
            "127.0.0.1:1",
            "--backend",
            "127.0.0.1:1",
        ],
        &[
            "--listen",
            "127.0.0.1:0",
            "--backend",
            "127.0.0.1:1",
            "--health-interval",
            "0s",
        ],
        &["--listen", "nowhere", "--backend", "127.0.0.1:1"],
    ];
    for args in cases {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_llm-injector"))
            .arg("route")
            .args(*args)
            .env_remove("LLM_ROUTER_BACKEND")
            .output()
            .await
            .unwrap();
        assert!(!output.status.success(), "{args:?} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("error"), "{args:?}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_serve_their_limit_and_a_full_queue_sheds_load() {
    let a = FakeOllama::start("a").await;
    let router = RunningRouter::start(&[a.addr], |config| {
        config.limits = llm_router::Limits {
            per_instance: 1,
            max_queue: 1,
        };
        config.model_name = "m".to_owned();
    })
    .await;
    // The first holds the one slot (its stream waits at the gate).
    let mut first = open(router.addr).await;
    let held = first
        .send_request(post_json(
            "/api/generate",
            &json!({"model": "m", "gate": true, "chunks": 2}),
        ))
        .await
        .expect("first answer");
    assert_eq!(held.status(), 200);
    // The second waits in the router, not in Ollama.
    let second = tokio::spawn(send(
        router.addr,
        post_json("/api/generate", &json!({"model": "m", "chunks": 1})),
    ));
    assert!(
        wait_until(Duration::from_secs(5), || {
            a.state.requests() == 1 && !second.is_finished()
        })
        .await
    );
    let running = r#"vllm:num_requests_running{model_name="m"}"#;
    let waiting = r#"vllm:num_requests_waiting{model_name="m"}"#;
    let mut queued = false;
    for _ in 0..100 {
        if router.metric(waiting).await == Some(1.0) {
            queued = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(queued, "the second request is not counted as waiting");
    assert_eq!(router.metric(running).await, Some(1.0));
    assert_eq!(
        a.state.requests(),
        1,
        "the instance got a request beyond its limit"
    );
    // The third finds the queue full: 503 at once, with Retry-After.
    let (status, headers, body) = send(
        router.addr,
        post_json("/api/chat", &json!({"model": "m", "messages": []})),
    )
    .await
    .unwrap();
    assert_eq!(status, 503);
    assert_eq!(headers[header::RETRY_AFTER], "1");
    let error: Value = serde_json::from_slice(&body).unwrap();
    let message = error["error"].as_str().unwrap();
    assert!(
        message.contains("server busy") && message.contains("queue is full"),
        "{message}"
    );
    // Requests that hold no slot are not held back.
    let (status, _, _) = send(router.addr, get_request("/api/tags")).await.unwrap();
    assert_eq!(status, 200);
    // The slot frees when the first answer ends: the second goes on, having
    // waited at least this long.
    tokio::time::sleep(Duration::from_millis(50)).await;
    a.state.gate.add_permits(1);
    let body = held.into_body().collect().await.unwrap().to_bytes();
    assert!(body.ends_with(b"}\n"));
    let (status, _, _) = second.await.unwrap().unwrap();
    assert_eq!(status, 200);
    assert_eq!(a.state.requests(), 3);
    assert_eq!(router.metric(running).await, Some(0.0));
    assert_eq!(router.metric(waiting).await, Some(0.0));
    assert_eq!(
        router
            .metric(r#"llm_router_proxy_errors_total{backend="",reason="queue_full"}"#)
            .await,
        Some(1.0)
    );
    // Every inference request's wait is measured, the one that waited too.
    let (_, text) = router.admin_get("/metrics").await;
    let wait = |series: &str| metric_value(&text, series);
    assert_eq!(
        wait("llm_router_queue_wait_seconds_count"),
        Some(2.0),
        "{text}"
    );
    let waited = wait("llm_router_queue_wait_seconds_sum").unwrap_or_default();
    assert!(waited >= 0.05, "waited {waited} s in all:\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_model_stays_pinned() {
    let a = FakeOllama::start("a").await;
    let router = RunningRouter::start(&[a.addr], |config| {
        config.keep_alive_floor = Some(llm_router::KeepAlive::Forever);
    })
    .await;
    // An unload request (empty prompt, keep_alive 0) keeps the model loaded.
    let (status, _, _) = send(
        router.addr,
        post_json(
            "/api/generate",
            &json!({"model": "m", "prompt": "", "keep_alive": 0, "chunks": 0}),
        ),
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    let sent: Value =
        serde_json::from_slice(a.state.generate_bodies.lock().unwrap().last().unwrap()).unwrap();
    assert_eq!(sent["keep_alive"], json!(-1));
    assert_eq!(sent["prompt"], json!(""));
    // The length follows the new body; other requests pass as they were.
    let embed = json!({"model": "m", "input": "x", "keep_alive": "5m"});
    let (status, _, _) = send(router.addr, post_json("/api/embed", &embed))
        .await
        .unwrap();
    assert_eq!(status, 200);
    let recorded = a.state.last_recorded();
    let sent: Value = serde_json::from_slice(&recorded.body).unwrap();
    assert_eq!(sent, json!({"model": "m", "input": "x", "keep_alive": -1}));
    assert_eq!(
        recorded.headers[header::CONTENT_LENGTH],
        recorded.body.len().to_string()
    );
    let forever = json!({"model": "m", "input": "x", "keep_alive": -1});
    send(router.addr, post_json("/api/embed", &forever))
        .await
        .unwrap();
    assert_eq!(a.state.last_recorded().body, forever.to_string());
    assert_eq!(
        router.metric("llm_router_keep_alive_raised_total").await,
        Some(2.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_are_measured_under_vllm_names_on_the_proxy_port() {
    let a = FakeOllama::start("a").await;
    let router = RunningRouter::start(&[a.addr], |config| {
        config.model_name = "qwen3:0.6b".to_owned();
    })
    .await;
    let (status, _, body) = send(
        router.addr,
        post_json(
            "/api/generate",
            &json!({"model": "m", "chunks": 4, "chunk_delay_ms": 5}),
        ),
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    assert_eq!(body.split(|b| *b == b'\n').count(), 6);
    // Gateways read a model server's metrics on its serving port.
    let (status, headers, text) = send(router.addr, get_request("/metrics")).await.unwrap();
    assert_eq!(status, 200);
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = String::from_utf8(text.to_vec()).unwrap();
    let model = r#"{model_name="qwen3:0.6b"}"#;
    let backend = format!(r#"{{backend="{}"}}"#, a.addr);
    for (series, want) in [
        (
            format!("vllm:time_to_first_token_seconds_count{model}"),
            1.0,
        ),
        (
            format!("vllm:e2e_request_latency_seconds_count{model}"),
            1.0,
        ),
        (format!("vllm:generation_tokens_total{model}"), 4.0),
        (format!("vllm:prompt_tokens_total{model}"), 7.0),
        (format!("vllm:num_requests_running{model}"), 0.0),
        // 4 tokens in 40 ms (eval_duration).
        (
            format!("llm_router_output_tokens_per_second_sum{backend}"),
            100.0,
        ),
        (format!("llm_router_output_tokens_total{backend}"), 4.0),
        (
            format!("llm_router_time_to_first_token_seconds_count{backend}"),
            1.0,
        ),
    ] {
        assert_eq!(
            metric_value(&text, &series),
            Some(want),
            "{series} in\n{text}"
        );
    }
    // The answer took its chunks' time, and its first byte came before that.
    let duration = metric_value(
        &text,
        &format!("llm_router_request_duration_seconds_sum{backend}"),
    )
    .unwrap();
    let ttft = metric_value(
        &text,
        &format!("llm_router_time_to_first_token_seconds_sum{backend}"),
    )
    .unwrap();
    assert!(
        duration >= 0.02 && ttft < duration,
        "ttft {ttft} duration {duration}"
    );
    // Requests that are not inference are not timed as such.
    send(router.addr, get_request("/api/tags")).await.unwrap();
    assert_eq!(
        router
            .metric(&format!("vllm:e2e_request_latency_seconds_count{model}"))
            .await,
        Some(1.0)
    );
}

/// The instance that answered each of `bodies` (generate requests) with `headers`.
async fn answered_by(
    router: &RunningRouter,
    bodies: &[Value],
    headers: &[(&str, &str)],
) -> Vec<String> {
    let mut backends = Vec::new();
    for body in bodies {
        let mut request = post_json("/api/generate", body);
        for (name, value) in headers {
            request.headers_mut().insert(
                header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                header::HeaderValue::from_str(value).unwrap(),
            );
        }
        let (status, _, answer) = send(router.addr, request).await.unwrap();
        assert_eq!(status, 200);
        backends.push(backend_of(answer.split(|b| *b == b'\n').next().unwrap()));
    }
    backends
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn affinity_keeps_a_session_or_a_prompt_on_one_instance() {
    let fakes = [
        FakeOllama::start("a").await,
        FakeOllama::start("b").await,
        FakeOllama::start("c").await,
    ];
    let addrs: Vec<SocketAddr> = fakes.iter().map(|f| f.addr).collect();
    let body = json!({"model": "m", "chunks": 1});

    // Without affinity, one client's requests spread.
    let router = RunningRouter::start(&addrs, |_| {}).await;
    let spread = answered_by(&router, &vec![body.clone(); 6], &[]).await;
    assert!(spread.iter().any(|b| *b != spread[0]), "{spread:?}");
    drop(router);

    // A session header: all on one instance; sessions spread over them.
    let router = RunningRouter::start(&addrs, |config| {
        config.affinity = "header:X-Session-Id".parse().unwrap();
    })
    .await;
    let one = answered_by(&router, &vec![body.clone(); 6], &[("x-session-id", "s1")]).await;
    assert!(one.iter().all(|b| *b == one[0]), "{one:?}");
    let mut homes = std::collections::HashSet::new();
    for session in 0..12 {
        let session = format!("session-{session}");
        homes.extend(
            answered_by(
                &router,
                std::slice::from_ref(&body),
                &[("x-session-id", &session)],
            )
            .await,
        );
    }
    assert!(homes.len() > 1, "every session on {homes:?}");
    drop(router);

    // A prompt prefix: the same system prompt, other questions, one instance.
    let router = RunningRouter::start(&addrs, |config| {
        config.affinity = "prefix:64".parse().unwrap();
    })
    .await;
    let system = "You answer questions about the product catalogue, briefly. ".repeat(2);
    let bodies: Vec<Value> = (0..6)
        .map(|i| json!({"model": "m", "chunks": 1, "system": system, "prompt": format!("question {i}")}))
        .collect();
    let same = answered_by(&router, &bodies, &[]).await;
    assert!(same.iter().all(|b| *b == same[0]), "{same:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_too_long_to_look_into_pass_whole() {
    let a = FakeOllama::start("a").await;
    let router = RunningRouter::start(&[a.addr], |config| {
        config.keep_alive_floor = Some(llm_router::KeepAlive::Forever);
    })
    .await;
    // 17 MiB with "keep_alive": 0 at its start, over the 16 MiB the router
    // reads whole: once sent in chunks of unknown total length (read, then
    // the rest passed on), once with a Content-Length (passed at once).
    let mut text = String::from(r#"{"model":"m","keep_alive":0,"input":""#);
    text.push_str(&"x".repeat(17 << 20));
    text.push_str(r#""}"#);
    let big = Bytes::from(text);
    let chunks: Vec<Bytes> = big.chunks(1 << 20).map(Bytes::copy_from_slice).collect();
    let streamed = StreamBody::new(futures::stream::iter(
        chunks
            .into_iter()
            .map(|chunk| Ok::<_, std::convert::Infallible>(Frame::data(chunk))),
    ));
    let request = hyper::Request::post("/api/embed")
        .header(header::HOST, "127.0.0.1")
        .body(BodyExt::boxed(streamed))
        .unwrap();
    let (status, _, _) = send(router.addr, request).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        a.state.last_recorded().body,
        big,
        "the streamed body changed"
    );
    let request = hyper::Request::post("/api/embed")
        .header(header::HOST, "127.0.0.1")
        .header(header::CONTENT_LENGTH, big.len())
        .body(full(big.clone()))
        .unwrap();
    let (status, _, _) = send(router.addr, request).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(a.state.last_recorded().body, big, "the sized body changed");
    assert_eq!(
        router.metric("llm_router_keep_alive_raised_total").await,
        Some(0.0)
    );
    // What is not JSON passes as it came, for Ollama to answer.
    let garbage = Bytes::from_static(b"{\"keep_alive\": 0, not json");
    let request = hyper::Request::post("/api/embed")
        .header(header::HOST, "127.0.0.1")
        .body(full(garbage.clone()))
        .unwrap();
    let (status, _, _) = send(router.addr, request).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(a.state.last_recorded().body, garbage);
}
