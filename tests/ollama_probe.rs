//! The injected `llm-pull` script and the engine's probes, run for real
//! against Ollama v0.12.6 (the version the default images pin), built for
//! CPU from its Go module by tests/ollama/build.sh, with two tiny GGUF models
//! (random weights) written by tests/ollama/tiny_gguf.py: a completion model
//! and an embedding-only one.
//!
//! The pod is injected by the library, and the commands, arguments and
//! environment of its `llm-pull` and `llm-engine-0` are executed as the
//! kubelet would, with only the model store's mount path (`/llm-models`)
//! moved into a temporary directory. `llm-pull` downloads from a registry
//! this test serves over HTTPS on 127.0.0.1 (Ollama refuses plain HTTP
//! without `--insecure`), whose CA reaches `llm-pull` only through the
//! LLMEngine's `env` (`SSL_CERT_FILE`): the path proxy and CA settings take.
//!
//! Needs the build's output: `tests/ollama/build.sh` prints its directory
//! (`.ci/run` builds it and sets `LLM_INJECTOR_OLLAMA`). Without it the test
//! says so and passes, except under CI, where it fails.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod};
use llm_injector::crd::{LLMEngine, LLMModel};
use llm_injector::inject::MODEL_MOUNT_PATH;
use llm_injector::{Catalog, Injector, Outcome};

#[path = "ollama/registry.rs"]
mod registry;

/// The Ollama build, or `None` (with the reason printed) when the test cannot run.
fn ollama_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("LLM_INJECTOR_OLLAMA") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let out = Command::new("bash")
                .arg(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/tests/ollama/build.sh"
                ))
                .arg("--print-dir")
                .output()
                .expect("run tests/ollama/build.sh --print-dir");
            PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
        }
    };
    if dir.join("bin/ollama").is_file() && dir.join("models/tiny-embed.gguf").is_file() {
        return Some(dir);
    }
    let why = format!(
        "no Ollama build in {} (run tests/ollama/build.sh, or set LLM_INJECTOR_OLLAMA)",
        dir.display()
    );
    assert!(
        std::env::var_os("CI").is_none(),
        "{why}; CI must run this test"
    );
    eprintln!("SKIPPED ollama_probe: {why}");
    None
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// A child process stopped when dropped, also when the test fails.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The environment of an injected container as the kubelet would give it,
/// with the model store moved to `store`.
fn container_env(container: &Container, store: &Path) -> BTreeMap<String, String> {
    let store = store.to_str().expect("utf-8 path");
    container
        .env
        .iter()
        .flatten()
        .map(|var| {
            let value = var.value.clone().expect("injected env is literal");
            (var.name.clone(), value.replace(MODEL_MOUNT_PATH, store))
        })
        .collect()
}

/// Runs `argv` (an exec probe's command, or a container's command + args)
/// with `env` only, and PATH pointing at the ollama build.
fn run(argv: &[String], env: &BTreeMap<String, String>, ollama_bin: &Path) -> Output {
    let path = format!("{}:/usr/bin:/bin", ollama_bin.display());
    Command::new(&argv[0])
        .args(&argv[1..])
        .env_clear()
        .env("PATH", path)
        .envs(env)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {argv:?}: {e}"))
}

fn exec_command(probe: Option<&k8s_openapi::api::core::v1::Probe>) -> Vec<String> {
    probe
        .and_then(|p| p.exec.as_ref())
        .and_then(|e| e.command.clone())
        .expect("an exec probe")
}

fn text(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The injected pod for `model` (a reference into the registry) on a CPU
/// engine listening on `port`, whose env carries `extra_env`, with the
/// `llm-router` in front of the engine (`routing.router: Always`).
fn injected(model: &str, port: u16, extra_env: &[(&str, &str)]) -> Vec<Container> {
    let env: Vec<serde_json::Value> = extra_env
        .iter()
        .map(|(name, value)| serde_json::json!({"name": name, "value": value}))
        .collect();
    let engine: LLMEngine = serde_json::from_value(serde_json::json!({
        "apiVersion": "llm.injector.dev/v1alpha1", "kind": "LLMEngine",
        "metadata": {"name": "cpu", "namespace": "t"},
        "spec": {"port": port, "env": env},
    }))
    .unwrap();
    let llm_model: LLMModel = serde_json::from_value(serde_json::json!({
        "apiVersion": "llm.injector.dev/v1alpha1", "kind": "LLMModel",
        "metadata": {"name": "m", "namespace": "t"},
        "spec": {"model": model, "engineRef": {"name": "cpu"},
                 "routing": {"router": "Always"}},
    }))
    .unwrap();
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "app", "namespace": "t",
                     "annotations": {"llm.injector.dev/model": "m"}},
        "spec": {"containers": [{"name": "app", "image": "busybox"}]},
    }))
    .unwrap();
    let mut catalog = Catalog::new();
    catalog.insert_engine(engine);
    catalog.insert_model(llm_model);
    match Injector::default().inject(&pod, "t", &catalog) {
        Ok(Outcome::Injected(injected)) => injected
            .apply(&pod)
            .unwrap()
            .spec
            .unwrap()
            .init_containers
            .unwrap(),
        other => panic!("not injected: {other:?}"),
    }
}

/// Imports the tiny GGUF models into a scratch Ollama store, to serve from
/// the registry as `library/<name>:1`.
fn import_models(ollama: &Path, dir: &Path, scratch: &Path) -> registry::Store {
    let port = free_port();
    let env = BTreeMap::from([
        ("OLLAMA_HOST".to_owned(), format!("127.0.0.1:{port}")),
        (
            "OLLAMA_MODELS".to_owned(),
            scratch.join("models").display().to_string(),
        ),
        (
            "HOME".to_owned(),
            scratch.join("home").display().to_string(),
        ),
    ]);
    let bin = ollama.join("bin");
    let _server = Running(
        Command::new(bin.join("ollama"))
            .arg("serve")
            .env_clear()
            .envs(&env)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ollama serve"),
    );
    wait_for(|| {
        run(&["ollama".into(), "ps".into()], &env, &bin)
            .status
            .success()
    });
    for name in ["tiny-chat", "tiny-embed"] {
        let modelfile = scratch.join(format!("{name}.Modelfile"));
        let gguf = dir.join(format!("models/{name}.gguf"));
        std::fs::write(&modelfile, format!("FROM {}\n", gguf.display())).unwrap();
        let out = run(
            &[
                "ollama".into(),
                "create".into(),
                format!("{name}:1"),
                "-f".into(),
                modelfile.display().to_string(),
            ],
            &env,
            &bin,
        );
        assert!(out.status.success(), "ollama create {name}: {}", text(&out));
    }
    registry::Store::read(&scratch.join("models"), &["tiny-chat", "tiny-embed"])
}

fn wait_for(mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "not ready within 60s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn injected_pull_and_probes_work_on_a_real_ollama() {
    let Some(dir) = ollama_dir() else {
        return;
    };
    let bin = dir.join("bin");
    let tmp = tempdir();
    let store = import_models(&dir, &dir, &tmp.0.join("scratch"));
    let registry = registry::serve(Arc::new(store), &tmp.0);
    let ca = registry.ca_file.display().to_string();

    for (name, kind) in [("tiny-chat", "completion"), ("tiny-embed", "embedding")] {
        let reference = format!("{}/library/{name}:1", registry.host);
        let port = free_port();
        let containers = injected(&reference, port, &[("SSL_CERT_FILE", &ca)]);
        let (pull, engine) = (&containers[0], &containers[1]);
        assert_eq!(
            (pull.name.as_str(), engine.name.as_str()),
            ("llm-pull", "llm-engine-0")
        );
        let model_store = tmp.0.join(format!("store-{name}"));
        std::fs::create_dir_all(&model_store).unwrap();

        // llm-pull: its command and args, its env (with the engine's SSL_CERT_FILE).
        let pull_env = container_env(pull, &model_store);
        assert_eq!(
            pull_env.get("SSL_CERT_FILE"),
            Some(&ca),
            "the engine's env reaches llm-pull"
        );
        let mut argv = pull.command.clone().unwrap();
        argv.extend(pull.args.clone().unwrap());
        let out = run(&argv, &pull_env, &bin);
        assert!(
            out.status.success(),
            "llm-pull of {reference}: {}",
            text(&out)
        );

        // Without the engine's CA the download fails: the env is what made it work.
        let mut no_ca = pull_env.clone();
        no_ca.remove("SSL_CERT_FILE");
        let bare_store = tmp.0.join(format!("bare-{name}"));
        std::fs::create_dir_all(&bare_store).unwrap();
        let no_ca: BTreeMap<String, String> = no_ca
            .into_iter()
            .map(|(k, v)| {
                let v = v.replace(model_store.to_str().unwrap(), bare_store.to_str().unwrap());
                (k, v)
            })
            .collect();
        let out = run(&argv, &no_ca, &bin);
        assert!(
            !out.status.success(),
            "a pull without the CA must fail: {}",
            text(&out)
        );

        // llm-engine-0: `serve` with its env, then its probes as exec'd.
        let engine_env = container_env(engine, &model_store);
        let mut serve = engine
            .command
            .clone()
            .unwrap_or_else(|| vec!["ollama".into()]);
        serve.extend(engine.args.clone().unwrap());
        let _engine = Running(
            Command::new(bin.join(&serve[0]))
                .args(&serve[1..])
                .env_clear()
                .envs(&engine_env)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start the engine"),
        );
        let readiness = exec_command(engine.readiness_probe.as_ref());
        wait_for(|| run(&readiness, &engine_env, &bin).status.success());

        let mut ps_env = engine_env.clone();
        ps_env.insert("OLLAMA_HOST".into(), format!("127.0.0.1:{port}"));
        let ps = || {
            String::from_utf8_lossy(&run(&["ollama".into(), "ps".into()], &ps_env, &bin).stdout)
                .into_owned()
        };
        assert!(
            !ps().contains(name),
            "nothing is loaded before the startup probe"
        );

        let startup = exec_command(engine.startup_probe.as_ref());
        let out = run(&startup, &engine_env, &bin);
        assert!(
            out.status.success(),
            "startup probe for the {kind} model: {}",
            text(&out)
        );
        assert!(
            ps().contains(name),
            "the startup probe loaded the {kind} model:\n{}",
            ps()
        );
        for probe in [&engine.readiness_probe, &engine.liveness_probe] {
            let out = run(&exec_command(probe.as_ref()), &engine_env, &bin);
            assert!(out.status.success(), "probe {probe:?}: {}", text(&out));
        }
        // Ollama keeps the model: OLLAMA_KEEP_ALIVE=-1 from the injection.
        assert!(ps().contains("Forever"), "{}", ps());

        // The probe this replaced, `ollama run` with no input, fails on an
        // embedding model (server/routes.go lines 329-349 of v0.12.6).
        let old = run(
            &["ollama".into(), "run".into(), reference.clone()],
            &ps_env,
            &bin,
        );
        match kind {
            "embedding" => assert!(
                !old.status.success()
                    && String::from_utf8_lossy(&old.stderr).contains("does not support generate"),
                "{}",
                text(&old)
            ),
            _ => assert!(old.status.success(), "{}", text(&old)),
        }

        if kind == "completion" {
            let router = &containers[2];
            assert_eq!(router.name, "llm-router");
            routed_generation(router, &reference, port, &ps);
        }

        // A model the engine does not have: the probe fails and says why.
        let mut missing = engine_env.clone();
        missing.insert("LLM_MODEL".into(), "not-pulled:1".into());
        let out = run(&startup, &missing, &bin);
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("not found"),
            "{}",
            text(&out)
        );
        // Ollama wrote only to the model store (HOME, TMPDIR, OLLAMA_MODELS).
        for sub in ["home", "tmp", "models"] {
            assert!(model_store.join(sub).is_dir(), "{sub} on the model store");
        }
    }
}

/// `method url` with a JSON `body` (or none): the status and the whole body.
fn http(method: &str, url: &str, body: Option<serde_json::Value>) -> (u16, String) {
    use http_body_util::{BodyExt, Full};
    use hyper::body::Bytes;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<Full<Bytes>>();
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let request = hyper::Request::builder()
            .method(method)
            .uri(url)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let response = tokio::time::timeout(Duration::from_secs(120), client.request(request))
            .await
            .expect("an answer within 120 s")
            .expect("an answer");
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    })
}

/// The value of `series` in a Prometheus text exposition.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

/// The injected `llm-router` (its args, as the kubelet would run them) in
/// front of the running engine: a streamed generation passes through and
/// is counted under vLLM's names with Ollama's own token counts, and a
/// client's `keep_alive: 0` does not unload the model, which the same
/// request sent to the engine directly does.
fn routed_generation(router: &Container, model: &str, engine_port: u16, ps: &dyn Fn() -> String) {
    let args = router.args.clone().expect("router args");
    let listen = args[args.iter().position(|a| a == "--listen").unwrap() + 1].clone();
    let _router = Running(
        Command::new(env!("CARGO_BIN_EXE_llm-injector"))
            .args(&args)
            .env_clear()
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start llm-injector route"),
    );
    let base = format!("http://{listen}");
    wait_for(|| std::net::TcpStream::connect(&listen).is_ok());
    wait_for(|| http("GET", &format!("{base}/api/version"), None).0 == 200);

    let generate = serde_json::json!({
        "model": model, "prompt": "Hello", "options": {"num_predict": 6, "seed": 1}
    });
    let (status, stream) = http("POST", &format!("{base}/api/generate"), Some(generate));
    assert_eq!(status, 200, "{stream}");
    let last: serde_json::Value =
        serde_json::from_str(stream.lines().last().expect("NDJSON lines")).unwrap();
    assert_eq!(last["done"], true, "{stream}");
    let (status, text) = http("GET", &format!("{base}/metrics"), None);
    assert_eq!(status, 200);
    let label = format!("{{model_name=\"{model}\"}}");
    let counted = |name: &str| metric(&text, &format!("{name}{label}")).unwrap_or(-1.0);
    // Ollama leaves zero counts out of its last line.
    let reported = |field: &str| last[field].as_f64().unwrap_or(0.0);
    assert_eq!(
        counted("vllm:generation_tokens_total"),
        reported("eval_count"),
        "{text}"
    );
    assert_eq!(
        counted("vllm:prompt_tokens_total"),
        reported("prompt_eval_count"),
        "{text}"
    );
    assert_eq!(
        counted("vllm:time_to_first_token_seconds_count"),
        1.0,
        "{text}"
    );
    assert_eq!(counted("vllm:num_requests_running"), 0.0, "{text}");

    // An unload request (server/routes.go lines 292-302 of v0.12.6) through
    // the router: the model stays loaded, forever.
    let unload = serde_json::json!({"model": model, "prompt": "", "keep_alive": 0});
    let (status, answer) = http(
        "POST",
        &format!("{base}/api/generate"),
        Some(unload.clone()),
    );
    assert_eq!(status, 200, "{answer}");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        ps().contains("Forever"),
        "unloaded through the router:\n{}",
        ps()
    );
    // The same request to the engine itself unloads it.
    let direct = format!("http://127.0.0.1:{engine_port}/api/generate");
    let (status, answer) = http("POST", &direct, Some(unload));
    assert_eq!(status, 200, "{answer}");
    let short_name = model.rsplit('/').next().unwrap_or(model);
    wait_for(|| !ps().contains(short_name.split(':').next().unwrap_or(short_name)));
}

/// A temporary directory removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempdir() -> TempDir {
    let dir = std::env::temp_dir().join(format!("llm-injector-ollama-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}
