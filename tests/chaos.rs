//! Chaos over loopback: keep-alive clients send pod reviews without pause (as
//! the kube-apiserver does) while (b) the catalog files change under the
//! server — models added and removed, a broken file written and fixed — and
//! (c) the server gets SIGTERM while its replacement starts. Every review sent
//! must come back answered and correct; lost and failed reviews are counted
//! and printed, and the goal, asserted, is zero. (Certificate rotation under
//! load is `rotation_by_symlink_swap_loses_no_request` in tests/server_tls.rs.)

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use llm_injector::server::tls::{Validity, generate};
use llm_injector::server::{ServeConfig, Server, TlsSource};
use serde_json::Value;
use support::server::{
    ServeProcess, TempDir, connect_keep_alive, fixture_json, get_plain, patch_of, post_on, root,
    tls_connector,
};
use tokio_rustls::TlsConnector;

/// A model the chaos adds to and removes from the catalog.
const EXTRA_MODEL: &str = "apiVersion: llm.injector.dev/v1alpha1
kind: LLMModel
metadata:
  name: chaos-extra
  namespace: team-a
spec:
  model: llama3.2:1b
  engineRef: {name: ollama-cpu}
  parallelism: {model: 0}
";

/// The captured pod review, asking for `model`, with a uid of its own.
fn review_for(model: &str, uid: usize) -> Vec<u8> {
    let mut review = fixture_json("pod-create-named.json");
    review["request"]["uid"] = Value::from(format!("chaos-{uid}"));
    review["request"]["object"]["metadata"]["annotations"]["llm.injector.dev/model"] =
        Value::from(model);
    serde_json::to_vec(&review).expect("encode")
}

/// How the reviews of one run went.
#[derive(Default)]
struct Tally {
    patched: AtomicUsize,
    denied: AtomicUsize,
    /// Answered, but not as expected (wrong status, uid or outcome).
    failed: AtomicUsize,
    /// A connection error, retried once on a fresh connection as the
    /// kube-apiserver retries a webhook call after a connection reset.
    retried: AtomicUsize,
    /// No answer even after the retry.
    lost: AtomicUsize,
    /// The first few failures, for the assertion message.
    examples: Mutex<Vec<String>>,
}

impl Tally {
    fn fail(&self, counter: &AtomicUsize, what: String) {
        counter.fetch_add(1, Ordering::Relaxed);
        let mut examples = self.examples.lock().expect("lock");
        if examples.len() < 5 {
            examples.push(what);
        }
    }

    fn report(&self, name: &str) -> String {
        format!(
            "{name}: {} patched, {} denied, {} failed, {} lost, {} connection errors retried; first failures: {:?}",
            self.patched.load(Ordering::Relaxed),
            self.denied.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            self.lost.load(Ordering::Relaxed),
            self.retried.load(Ordering::Relaxed),
            self.examples.lock().expect("lock"),
        )
    }

    /// Checks one answer: 200, the uid echoed, patched or (when the model
    /// may be absent) denied naming it.
    fn check(&self, uid: &str, model: &str, may_be_missing: bool, status: u16, body: &[u8]) {
        let review: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let response = &review["response"];
        if status != 200 || response["uid"] != uid {
            return self.fail(
                &self.failed,
                format!("{uid}: HTTP {status}: {}", String::from_utf8_lossy(body)),
            );
        }
        if response["allowed"] == true && patch_of(&review).is_some_and(|p| !p.0.is_empty()) {
            self.patched.fetch_add(1, Ordering::Relaxed);
        } else if may_be_missing
            && response["allowed"] == false
            && response["status"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(model))
        {
            self.denied.fetch_add(1, Ordering::Relaxed);
        } else {
            self.fail(&self.failed, format!("{uid}: unexpected answer {response}"));
        }
    }
}

/// Where the simulated Service sends reviews: the endpoints whose `/readyz`
/// said 200 at the last poll, as the endpoints controller would.
#[derive(Default)]
struct Endpoints {
    /// (HTTPS address, admin address, ready)
    all: Mutex<Vec<(SocketAddr, SocketAddr, bool)>>,
    next: AtomicUsize,
}

impl Endpoints {
    fn add(&self, addr: SocketAddr, admin: SocketAddr) {
        self.all.lock().expect("lock").push((addr, admin, false));
    }

    /// A ready endpoint, round robin; `None` while none is ready.
    fn pick(&self) -> Option<SocketAddr> {
        let all = self.all.lock().expect("lock");
        let ready: Vec<SocketAddr> = all.iter().filter(|e| e.2).map(|e| e.0).collect();
        (!ready.is_empty()).then(|| ready[self.next.fetch_add(1, Ordering::Relaxed) % ready.len()])
    }

    /// Polls every endpoint's `/readyz` every 20 ms until `running` turns false.
    async fn poll(self: Arc<Self>, running: Arc<AtomicBool>) {
        while running.load(Ordering::Acquire) {
            let admins: Vec<SocketAddr> =
                self.all.lock().expect("lock").iter().map(|e| e.1).collect();
            for admin in admins {
                let ready = matches!(get_plain(admin, "/readyz").await, Ok((200, _)));
                for endpoint in self.all.lock().expect("lock").iter_mut() {
                    if endpoint.1 == admin {
                        endpoint.2 = ready;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// One apiserver-like client: a keep-alive connection per endpoint, reviews
/// sent back to back until `running` turns false; a request that fails on
/// the connection is retried once on a new one. `model` is asked for;
/// `may_be_missing` if the chaos may have removed it.
async fn client(
    id: usize,
    connector: TlsConnector,
    endpoints: Arc<Endpoints>,
    model: &'static str,
    may_be_missing: bool,
    running: Arc<AtomicBool>,
    tally: Arc<Tally>,
) -> Vec<SocketAddr> {
    let mut connections = std::collections::HashMap::new();
    let mut served_by = Vec::new();
    let mut n = 0;
    while running.load(Ordering::Acquire) {
        if endpoints.pick().is_none() {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        }
        n += 1;
        let uid = format!("chaos-{}", id * 1_000_000 + n);
        let body = review_for(model, id * 1_000_000 + n);
        let mut answer = None;
        // The retry goes through the Service again, so it may reach another endpoint.
        for attempt in 0..2 {
            let Some(addr) = endpoints.pick() else {
                break;
            };
            let sent = match connections.entry(addr) {
                std::collections::hash_map::Entry::Occupied(entry) => Ok(entry.into_mut()),
                std::collections::hash_map::Entry::Vacant(entry) => {
                    connect_keep_alive(&connector, addr)
                        .await
                        .map(|c| entry.insert(c))
                }
            };
            let result = match sent {
                Ok(sender) => post_on(sender, "/mutate", body.clone()).await,
                Err(error) => Err(error),
            };
            match result {
                Ok(reply) => {
                    answer = Some((addr, reply));
                    break;
                }
                Err(error) => {
                    connections.remove(&addr);
                    if attempt == 0 {
                        tally.fail(&tally.retried, format!("{uid} to {addr}: {error}"));
                    }
                }
            }
        }
        match answer {
            Some((addr, (status, reply))) => {
                tally.check(&uid, model, may_be_missing, status, &reply);
                served_by.push(addr);
            }
            None => tally.fail(&tally.lost, format!("{uid}: no answer")),
        }
    }
    served_by
}

/// Writes `text` to `path` the way a careful tool does: a new file renamed over the old.
fn write_atomically(path: &Path, text: &str) {
    let temp = path.with_extension("tmp");
    std::fs::write(&temp, text).expect("write");
    std::fs::rename(&temp, path).expect("rename");
}

fn metric(metrics: &str, line_start: &str) -> u64 {
    metrics
        .lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_changes_under_load_lose_no_review() {
    let dir = TempDir::new();
    let catalog = dir.path().join("catalog");
    std::fs::create_dir(&catalog).expect("mkdir");
    for file in ["engines.yaml", "models.yaml"] {
        std::fs::copy(
            root().join("examples/catalog").join(file),
            catalog.join(file),
        )
        .expect("copy catalog");
    }
    let mut config = ServeConfig::new(
        TlsSource::SelfSigned {
            ca_file: dir.path().join("ca.crt"),
        },
        Some(vec![catalog.clone()]),
    );
    config.addr = SocketAddr::from(([127, 0, 0, 1], 0));
    config.admin_addr = SocketAddr::from(([127, 0, 0, 1], 0));
    config.catalog_reload_interval = Duration::from_millis(25);
    let server = Server::bind(config).await.expect("bind");
    let (addr, admin) = (server.local_addr().unwrap(), server.admin_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    let connector = tls_connector(&std::fs::read(dir.path().join("ca.crt")).unwrap());

    let endpoints = Arc::new(Endpoints::default());
    endpoints.add(addr, admin);
    endpoints.all.lock().unwrap()[0].2 = true;
    let running = Arc::new(AtomicBool::new(true));
    let (stable, extra) = (Arc::new(Tally::default()), Arc::new(Tally::default()));
    let mut clients = Vec::new();
    for id in 0..4 {
        let (model, missing, tally) = match id {
            0 | 1 => ("qwen-mp2", false, stable.clone()),
            _ => ("chaos-extra", true, extra.clone()),
        };
        clients.push(tokio::spawn(client(
            id,
            connector.clone(),
            endpoints.clone(),
            model,
            missing,
            running.clone(),
            tally,
        )));
    }

    // Add and remove the extra model ten times; once, break the file of the
    // other models for a while (refused: the previous catalog stays served).
    let extra_file = catalog.join("extra.yaml");
    let models_file = catalog.join("models.yaml");
    let models = std::fs::read_to_string(&models_file).unwrap();
    for round in 0..10 {
        write_atomically(&extra_file, EXTRA_MODEL);
        tokio::time::sleep(Duration::from_millis(120)).await;
        if round == 5 {
            write_atomically(&models_file, "apiVersion: [broken\n");
            tokio::time::sleep(Duration::from_millis(120)).await;
            write_atomically(&models_file, &models);
        }
        std::fs::remove_file(&extra_file).expect("remove");
        tokio::time::sleep(Duration::from_millis(120)).await;
    }
    running.store(false, Ordering::Release);
    for client in clients {
        client.await.expect("client");
    }
    let (_, metrics) = get_plain(admin, "/metrics").await.expect("metrics");
    stop.send(()).unwrap();
    handle.await.unwrap();

    let (stable_report, extra_report) = (stable.report("qwen-mp2"), extra.report("chaos-extra"));
    eprintln!("{stable_report}\n{extra_report}");
    let reloaded = metric(
        &metrics,
        "llm_injector_catalog_reloads_total{result=\"reloaded\"}",
    );
    let refused = metric(
        &metrics,
        "llm_injector_catalog_reloads_total{result=\"refused\"}",
    );
    eprintln!("catalog reloads: {reloaded} reloaded, {refused} refused");
    for tally in [&stable, &extra] {
        assert_eq!(
            tally.lost.load(Ordering::Relaxed),
            0,
            "{stable_report}\n{extra_report}"
        );
        assert_eq!(
            tally.failed.load(Ordering::Relaxed),
            0,
            "{stable_report}\n{extra_report}"
        );
        assert_eq!(
            tally.retried.load(Ordering::Relaxed),
            0,
            "{stable_report}\n{extra_report}"
        );
    }
    assert_eq!(stable.denied.load(Ordering::Relaxed), 0, "{stable_report}");
    assert!(
        stable.patched.load(Ordering::Relaxed) > 50,
        "{stable_report}"
    );
    // The change took effect both ways while the load ran.
    assert!(extra.patched.load(Ordering::Relaxed) > 0, "{extra_report}");
    assert!(extra.denied.load(Ordering::Relaxed) > 0, "{extra_report}");
    assert!(reloaded >= 10, "reloads: {reloaded}\n{metrics}");
    assert!(refused >= 1, "the broken file was not refused\n{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_the_replacement_starts_loses_no_review() {
    // Both replicas mount the same Secret, as in the Helm chart.
    let dir = TempDir::new();
    let pair = generate(
        "llm-injector",
        &["localhost".to_owned()],
        Validity::default(),
    )
    .unwrap();
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert, &pair.cert_pem).unwrap();
    std::fs::write(&key, &pair.key_pem).unwrap();
    let connector = tls_connector(pair.ca_pem.as_bytes());
    let catalog = root().join("examples/catalog");
    let args = [
        "--tls-cert-file".as_ref(),
        cert.as_os_str(),
        "--tls-key-file".as_ref(),
        key.as_os_str(),
        "--catalog".as_ref(),
        catalog.as_os_str(),
        // The chart's values: endpoints get a second to stop routing here.
        "--shutdown-delay".as_ref(),
        "1s".as_ref(),
        "--drain-timeout".as_ref(),
        "10s".as_ref(),
    ];

    let old = ServeProcess::start(&args).await;
    let endpoints = Arc::new(Endpoints::default());
    endpoints.add(old.addr, old.admin);
    let running = Arc::new(AtomicBool::new(true));
    let poller = tokio::spawn(endpoints.clone().poll(running.clone()));
    let tally = Arc::new(Tally::default());
    let clients: Vec<_> = (0..4)
        .map(|id| {
            tokio::spawn(client(
                id,
                connector.clone(),
                endpoints.clone(),
                "qwen-mp2",
                false,
                running.clone(),
                tally.clone(),
            ))
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(500)).await;
    // The rolling update: the new replica starts; once it is ready, the old
    // one gets SIGTERM while the load goes on.
    let new = ServeProcess::start(&args).await;
    endpoints.add(new.addr, new.admin);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !matches!(get_plain(new.admin, "/readyz").await, Ok((200, _))) {
        assert!(
            Instant::now() < deadline,
            "the new server never became ready"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    old.terminate();
    let mut old_child = old.child;
    let exit = tokio::time::timeout(Duration::from_secs(30), old_child.wait())
        .await
        .expect("the old server exits")
        .expect("wait");
    tokio::time::sleep(Duration::from_millis(500)).await;
    running.store(false, Ordering::Release);
    let mut served_by = Vec::new();
    for client in clients {
        served_by.extend(client.await.expect("client"));
    }
    poller.await.expect("poller");

    let report = tally.report("qwen-mp2");
    let by_old = served_by.iter().filter(|a| **a == old.addr).count();
    let by_new = served_by.iter().filter(|a| **a == new.addr).count();
    eprintln!("{report}; answered by the old server {by_old}, by the new one {by_new}");
    assert_eq!(exit.code(), Some(0), "the old server's exit");
    assert_eq!(tally.lost.load(Ordering::Relaxed), 0, "{report}");
    assert_eq!(tally.failed.load(Ordering::Relaxed), 0, "{report}");
    assert_eq!(tally.retried.load(Ordering::Relaxed), 0, "{report}");
    assert!(by_old > 20 && by_new > 20, "no handover seen: {report}");
    // After the handover everything went to the new server.
    assert_eq!(served_by.last(), Some(&new.addr));
}
