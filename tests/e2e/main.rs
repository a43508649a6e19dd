//! The end-to-end suite: llm-injector against a real Kubernetes control
//! plane (etcd, kube-apiserver and kube-controller-manager v1.36, built from
//! k8s.io/kubernetes by tests/controlplane/build.sh), all on 127.0.0.1, no
//! kubelet. Run by `cargo test --release` (and so by .ci/run) as one
//! program (`harness = false`): one control plane for every check, stopped
//! at the end whatever happened.
//!
//! Environment:
//! - `LLM_INJECTOR_CONTROLPLANE=DIR`: the binaries are in DIR (skips build.sh);
//! - `KUBEBUILDER_ASSETS=DIR`: envtest's kube-apiserver, etcd and kubectl
//!   (build.sh then builds only the controller-manager);
//! - `LLM_INJECTOR_GAIE_CRDS=DIR`: the Gateway API Inference Extension's CRDs
//!   are in DIR (skips tests/controlplane/gaie_crds.sh; required in CI);
//! - `LLM_INJECTOR_E2E=skip`: do not run (refused when `CI` is set);
//! - `LLM_INJECTOR_E2E_KEEP=1`: keep the run directory (logs) on success too;
//! - `LLM_INJECTOR_E2E_API_PORT=N`: the apiserver listens on 127.0.0.1:N.

mod compare;
mod controlplane;
mod crds;
mod helm;
mod inference_pool;
mod kubectl;
mod managed_certs;
mod overhead;
mod pods;
mod policies;
mod restricted;
mod status;
mod validation;
mod webhooks;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use controlplane::ControlPlane;
use kubectl::Kubectl;
use webhooks::{BareWebhook, Serve};

/// The namespace of examples/catalog.
const TEAM: &str = "team-a";

/// Passed and failed checks, printed as they happen.
pub struct Report {
    passed: usize,
    failures: Vec<String>,
    skipped: Vec<String>,
    figures: Vec<String>,
    ci: bool,
}

impl Report {
    pub fn check(&mut self, what: &str, result: Result<String, impl std::fmt::Display>) {
        match result {
            Ok(detail) => {
                self.passed += 1;
                println!("  PASS  {what}");
                print_indented(&detail);
            }
            Err(why) => {
                println!("  FAIL  {what}");
                print_indented(&why.to_string());
                self.failures.push(what.to_string());
            }
        }
    }

    /// A check made of several: passes when `problems` is empty, else fails
    /// listing them.
    pub fn problems(&mut self, what: &str, problems: Vec<String>) {
        let result = if problems.is_empty() {
            Ok(String::new())
        } else {
            Err(problems.join("\n"))
        };
        self.check(what, result);
    }

    /// A check that could not run here. In CI that is a failure.
    pub fn skip(&mut self, what: &str, why: &str) {
        if self.ci {
            self.check(what, Err::<String, _>(format!("cannot run in CI: {why}")));
        } else {
            println!("  SKIP  {what}: {why}");
            self.skipped.push(what.to_string());
        }
    }

    pub fn figure(&mut self, line: &str) {
        println!("  FIGURE  {line}");
        self.figures.push(line.to_string());
    }
}

/// `text` with every run of whitespace made one space: kubectl wraps its
/// messages, the goldens do not.
pub fn squash(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn print_indented(text: &str) {
    for line in text.trim_end().lines().take(40) {
        println!("          {line}");
    }
}

/// What every check needs.
pub struct Suite {
    pub root: PathBuf,
    pub dir: PathBuf,
    pub injector: PathBuf,
    pub kubectl: Kubectl,
    pub report: Report,
    /// The admin address of the running `llm-injector serve`.
    pub serve_admin: Option<std::net::SocketAddr>,
}

impl Suite {
    /// How many objects of `kind` serve's reflectors hold
    /// (`llm_injector_catalog_objects`).
    pub fn cached(&self, kind: &str) -> Option<usize> {
        let (_, metrics) = webhooks::http_get(self.serve_admin?, "/metrics").ok()?;
        let label = format!("kind=\"{kind}\"");
        metrics
            .lines()
            .find(|l| l.starts_with("llm_injector_catalog_objects{") && l.contains(&label))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    }

    /// Waits (up to 10 s) until serve's reflectors hold `count` objects of
    /// `kind`: the webhook judges by its cache, which follows the apiserver
    /// a few milliseconds behind.
    pub fn wait_for_cache(&self, kind: &str, count: usize) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.cached(kind) == Some(count) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

fn main() -> ExitCode {
    let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false");
    if std::env::var("LLM_INJECTOR_E2E").as_deref() == Ok("skip") {
        if ci {
            eprintln!("e2e: LLM_INJECTOR_E2E=skip is refused in CI: the suite must run there");
            return ExitCode::FAILURE;
        }
        eprintln!("e2e: SKIPPED (LLM_INJECTOR_E2E=skip)");
        return ExitCode::SUCCESS;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let started = Instant::now();
    let bin_dir = match controlplane::binaries(&root) {
        Ok(dir) => dir,
        Err(why) => {
            eprintln!("e2e: FAILED: no control plane: {why}");
            return ExitCode::FAILURE;
        }
    };
    let dir = std::env::temp_dir().join(format!("llm-injector-e2e-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("e2e: FAILED: {}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    let mut plane = match ControlPlane::start(&bin_dir, &dir) {
        Ok(plane) => plane,
        Err(why) => {
            eprintln!(
                "e2e: FAILED: the control plane did not start: {why}\n  logs: {}",
                dir.display()
            );
            return ExitCode::FAILURE;
        }
    };
    let mut suite = Suite {
        root,
        dir: dir.clone(),
        injector: PathBuf::from(env!("CARGO_BIN_EXE_llm-injector")),
        kubectl: plane.kubectl(),
        report: Report {
            passed: 0,
            failures: Vec::new(),
            skipped: Vec::new(),
            figures: Vec::new(),
            ci,
        },
        serve_admin: None,
    };
    let outcome =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&mut suite, &mut plane)));
    let aborted = match outcome {
        Ok(Ok(())) => None,
        Ok(Err(why)) => Some(why),
        Err(panic) => Some(format!(
            "a check panicked: {}",
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        )),
    };
    if let Err(why) = plane.check_running() {
        suite
            .report
            .check("the control plane ran to the end", Err::<String, _>(why));
    }
    drop(plane);
    let report = &suite.report;
    println!(
        "\ne2e: {} passed, {} failed, {} skipped in {:.0} s (Kubernetes control plane from {})",
        report.passed,
        report.failures.len(),
        report.skipped.len(),
        started.elapsed().as_secs_f64(),
        bin_dir.display()
    );
    for figure in &report.figures {
        println!("  figure: {figure}");
    }
    for failure in &report.failures {
        println!("  failed: {failure}");
    }
    if let Some(why) = &aborted {
        println!("  ABORTED: {why}");
    }
    if report.failures.is_empty() && aborted.is_none() {
        if std::env::var_os("LLM_INJECTOR_E2E_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&dir);
        } else {
            println!("  logs kept in {}", dir.display());
        }
        ExitCode::SUCCESS
    } else {
        println!("  logs: {}", dir.display());
        ExitCode::FAILURE
    }
}

/// `llm-injector explain pod/NAME` on a pod the apiserver stored injected,
/// and `llm-injector uninject` of its `kubectl get -o yaml`.
fn stored_pod_tools(suite: &mut Suite, plane: &ControlPlane, namespace: &str) {
    let pod = "uninject-me";
    let object = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": pod, "namespace": namespace,
            "annotations": {"llm.injector.dev/model": "llama-cpu"}},
        "spec": {"containers": [{"name": "app", "image": "busybox",
            "env": [{"name": "MODE", "value": "prod"}]}]},
    });
    let created = suite.kubectl.with_object(&["create"], &object);
    if !created.success {
        suite.report.check(
            "a pod for explain pod/NAME and uninject is created",
            Err(created.both()),
        );
        return;
    }
    let explain = std::process::Command::new(&suite.injector)
        .args(["explain", &format!("pod/{pod}"), "-n", namespace])
        .env("KUBECONFIG", &plane.kubeconfig)
        .output();
    let result = succeeded_saying(explain, |stdout| stdout.contains("already injected"));
    suite.report.check(
        &format!("llm-injector explain pod/{pod} reads the stored pod: already injected"),
        result,
    );
    let stored = suite
        .kubectl
        .run(&["get", "pod", pod, "-n", namespace, "-o", "yaml"], None);
    let result = if stored.success {
        uninjected(&suite.injector, &stored.stdout)
    } else {
        Err(stored.both())
    };
    suite.report.check(
        &format!("llm-injector uninject of the stored pod {pod} removes every llm-* container, volume and env entry and the status"),
        result,
    );
    suite
        .kubectl
        .with_object(&["delete", "--wait=false"], &object);
}

/// The stdout of a command that exited 0 and whose stdout `wanted`
/// accepts; else both outputs and the exit status.
pub fn succeeded_saying(
    output: std::io::Result<std::process::Output>,
    wanted: impl Fn(&str) -> bool,
) -> Result<String, String> {
    let out = output.map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() && wanted(&stdout) {
        Ok(stdout)
    } else {
        Err(format!(
            "{}: {stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// `llm-injector uninject -f -` of `yaml`, checked for leftovers.
fn uninjected(injector: &Path, yaml: &str) -> Result<String, String> {
    use std::io::Write as _;
    let mut child = std::process::Command::new(injector)
        .args(["uninject", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    child
        .stdin
        .take()
        .ok_or("no stdin")?
        .write_all(yaml.as_bytes())
        .map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let pod: Value = serde_yaml::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    let mut leftovers = Vec::new();
    for list in ["initContainers", "containers", "volumes"] {
        for item in pod["spec"][list].as_array().into_iter().flatten() {
            if item["name"].as_str().is_some_and(|n| n.starts_with("llm-")) {
                leftovers.push(format!("spec.{list}: {}", item["name"]));
            }
        }
    }
    for container in pod["spec"]["containers"].as_array().into_iter().flatten() {
        for env in container["env"].as_array().into_iter().flatten() {
            if env["name"] == "OLLAMA_HOST" {
                leftovers.push(format!("env OLLAMA_HOST in {}", container["name"]));
            }
        }
    }
    let app_env: Vec<&str> = pod["spec"]["containers"][0]["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["name"].as_str())
        .collect();
    if app_env != ["MODE"] {
        leftovers.push(format!(
            "the app container's env is {app_env:?}, not its own [MODE]"
        ));
    }
    if pod["metadata"]["annotations"]["llm.injector.dev/status"].is_string() {
        leftovers.push("the status annotation".to_owned());
    }
    if leftovers.is_empty() {
        Ok(format!(
            "left: containers {}",
            pod["spec"]["containers"]
                .as_array()
                .map(|c| c
                    .iter()
                    .map(|c| c["name"].to_string())
                    .collect::<Vec<_>>()
                    .join(", "))
                .unwrap_or_default()
        ))
    } else {
        Err(leftovers.join("\n"))
    }
}

/// `llm-injector check-webhook` (the chart's `helm test`) with the webhook
/// down: exit 1, naming the apiserver's failure.
fn check_webhook_down(suite: &mut Suite, plane: &ControlPlane) {
    let out = std::process::Command::new(&suite.injector)
        .args(["check-webhook", "--namespace", TEAM, "--timeout", "1s"])
        .env("KUBECONFIG", &plane.kubeconfig)
        .output();
    let result = match out {
        Ok(out) => {
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            if !out.status.success() && stderr.contains("could not get an answer") {
                Ok(stderr.lines().last().unwrap_or_default().to_owned())
            } else {
                Err(format!("{}: {stderr}", out.status))
            }
        }
        Err(e) => Err(e.to_string()),
    };
    suite.report.check(
        "llm-injector check-webhook fails, saying why, while the webhook is down",
        result,
    );
}

fn section(title: &str) {
    println!("\n== {title}");
}

fn run(suite: &mut Suite, plane: &mut ControlPlane) -> Result<(), String> {
    let version = suite.kubectl.run(&["version"], None);
    print_indented(&version.both());

    section("CRDs");
    crds::install(suite)?;
    create(
        suite,
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": TEAM}}),
    )?;
    crds::explain(suite);
    crds::cel_cases(suite, TEAM);

    section("cluster objects the workloads need");
    let inputs = input_objects(suite)?;
    let namespaces: std::collections::BTreeSet<&str> = inputs
        .iter()
        .filter_map(|o| o["metadata"]["namespace"].as_str())
        .filter(|ns| *ns != TEAM && *ns != "default")
        .collect();
    for namespace in namespaces {
        create(
            suite,
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}),
        )?;
    }
    let classes: std::collections::BTreeSet<&str> = inputs
        .iter()
        .filter_map(|o| {
            o["spec"]["accelerator"]["runtimeClassName"]
                .as_str()
                .or(o["spec"]["runtimeClassName"].as_str())
        })
        .collect();
    for class in classes {
        let object = json!({"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "metadata": {"name": class}, "handler": class});
        create(suite, &object)?;
    }
    create(suite, &gpu_node(&inputs))?;
    // The apiserver taints a new Node not-ready (TaintNodesByCondition);
    // without a kubelet nothing would clear it, and DaemonSet pods do not
    // tolerate it.
    let out = suite.kubectl.run(
        &[
            "taint",
            "nodes",
            "e2e-gpu-node",
            "node.kubernetes.io/not-ready:NoSchedule-",
        ],
        None,
    );
    if !out.success && !out.stderr.contains("not found") {
        return Err(format!("untainting the Node: {}", out.both()));
    }

    section("llm-injector serve in cluster mode, registered from webhook-config/");
    // serve runs as webhook-config/'s ServiceAccount, with only its RBAC.
    for file in [
        "00-namespace.yaml",
        "10-serviceaccount.yaml",
        "20-rbac.yaml",
    ] {
        let path = suite.root.join("webhook-config").join(file);
        let out = suite
            .kubectl
            .run(&["apply", "-f", path.to_str().expect("utf-8")], None);
        if !out.success {
            return Err(format!("applying webhook-config/{file}: {}", out.both()));
        }
    }
    let serve = Serve::start(&suite.injector, plane, "llm-injector-serve")?;
    suite.serve_admin = Some(serve.admin);
    println!(
        "  serve: webhook https://{}, admin http://{}",
        serve.addr, serve.admin
    );
    let registrations = webhooks::registrations(
        &suite.root,
        &format!("https://{}", serve.addr),
        &serve.ca_pem,
    )?;
    for config in &registrations {
        create(suite, config)?;
    }
    wait_for_webhooks(suite)?;
    let [examples, golden] = pods::CATALOGS.map(|catalog| suite.root.join(catalog));
    let out = suite
        .kubectl
        .run(&["apply", "-f", examples.to_str().expect("utf-8")], None);
    suite.report.check(
        &format!("{} is applied through /validate", pods::CATALOGS[0]),
        out.ok().ok_or("refused"),
    );
    // The golden catalog holds objects that validate refuses, for inject's
    // error cases: the apiserver must refuse the same ones.
    validation::catalog_through_apiserver(suite, &golden, "default", &examples);
    wait_for_catalog(suite)?;
    crds::listing(suite, TEAM);

    section("the Helm chart, server dry run");
    use base64::Engine as _;
    helm::dry_run(
        suite,
        &base64::engine::general_purpose::STANDARD.encode(&serve.ca_pem),
    );

    section("self-managed certificates (certs.mode=managed, the chart's default)");
    managed_certs::check(suite, plane, TEAM);

    section("LLMModels and LLMEngines through the apiserver");
    validation::model_before_engine(suite, TEAM);
    validation::delete_engine_in_use(suite, TEAM);
    for stem in ["models", "engines", "pods"] {
        validation::golden_documents(suite, stem, TEAM);
    }

    section("status of LLMModels and LLMEngines, written by serve");
    // A namespace of its own: its pod outlives the sections that delete
    // team-a's pods, for the checks with serve's replicas at the end.
    create(
        suite,
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": status::NAMESPACE}}),
    )?;
    status::check(suite, status::NAMESPACE, &serve);

    section("pods through the apiserver vs llm-injector inject");
    for file in workload_files(&suite.root) {
        let name = file
            .strip_prefix(&suite.root)
            .unwrap_or(&file)
            .display()
            .to_string();
        let result = pods::check_file(suite, &file, false).and_then(|r| pods::summary(&r));
        suite.report.check(
            &format!("{name}: the pods the apiserver made are what inject prints"),
            result,
        );
    }
    for file in ["examples/workloads/cpu.yaml", "examples/workloads/2x2.yaml"] {
        let result =
            pods::check_file(suite, &suite.root.join(file), true).and_then(|r| pods::summary(&r));
        suite.report.check(
            &format!("{file}: kubectl create --dry-run=server answers what inject prints"),
            result,
        );
    }
    already_injected(suite)?;
    stored_pod_tools(suite, plane, TEAM);
    validation::inject_errors(suite);

    section("injection by admission policies (injection.mode=policy), the webhook unregistered");
    policies::check(suite, plane, &registrations[0], &registrations[1])?;

    section(
        "across pods: an InferencePool of the Gateway API Inference Extension (examples/gateway)",
    );
    inference_pool::check(suite);

    section("a namespace with Pod Security restricted, a LimitRange max and a ResourceQuota");
    restricted::check(suite);

    section("figures: webhook calls and added time per pod");
    let bare = BareWebhook::start()?;
    overhead::measure(suite, &bare, &registrations[0], TEAM)?;
    let metrics = serve.metrics()?;
    for line in metrics
        .lines()
        .filter(|l| l.starts_with("llm_injector_admission_reviews_total"))
    {
        println!("    {line}");
    }

    section("failure policies with llm-injector serve stopped");
    validation::prepare_webhook_down(suite, TEAM);
    let log = serve.process.log.clone();
    suite.serve_admin = None;
    // Two more replicas wait for the Lease; the first is killed, as a node
    // dies, and stops answering the webhooks.
    let replicas = status::standbys(suite, plane, &serve)?;
    let mut replicas = status::kill_leader(suite, serve, replicas);
    validation::webhook_down(suite, &registrations, TEAM);
    check_webhook_down(suite, plane);
    status::engine_deleted_while_pods_run(suite, status::NAMESPACE, &replicas);
    status::handover(suite, &mut replicas);
    let errors = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("ERROR"))
        .count();
    println!("    errors logged by serve: {errors}");
    Ok(())
}

/// `kubectl create` of one object, which must succeed.
fn create(suite: &Suite, object: &Value) -> Result<(), String> {
    let out = suite.kubectl.with_object(&["create"], object);
    if out.success {
        Ok(())
    } else {
        Err(format!(
            "creating {} {}: {}",
            object["kind"],
            object["metadata"]["name"],
            out.both()
        ))
    }
}

/// Every object of the catalogs and of the workload and error inputs: the
/// namespaces they name and the RuntimeClasses they use are created first
/// (the apiserver's RuntimeClass admission refuses a pod naming a missing
/// one before any webhook sees it).
fn input_objects(suite: &Suite) -> Result<Vec<Value>, String> {
    let mut paths: Vec<PathBuf> = pods::CATALOGS.iter().map(|c| suite.root.join(c)).collect();
    paths.extend(workload_files(&suite.root));
    paths.push(suite.root.join("tests/golden/errors"));
    let mut objects = Vec::new();
    for path in paths {
        let files: Vec<PathBuf> = if path.is_dir() {
            std::fs::read_dir(&path)
                .map_err(|e| e.to_string())?
                .filter_map(|e| Some(e.ok()?.path()))
                .collect()
        } else {
            vec![path]
        };
        for file in files
            .into_iter()
            .filter(|f| f.extension().is_some_and(|e| e == "yaml"))
        {
            let text = std::fs::read_to_string(&file).map_err(|e| e.to_string())?;
            // Malformed inputs (an error golden) hold nothing to prepare.
            objects.extend(pods::documents(&text).unwrap_or_default());
        }
    }
    Ok(objects)
}

/// One Node object (no kubelet behind it), labelled as NVIDIA's GPU feature
/// discovery labels a MIG-capable node, with GPUs of both vendors and every
/// extended resource the inputs' engines name (MIG slices among them), for
/// the DaemonSet controller to place a pod on.
fn gpu_node(inputs: &[Value]) -> Value {
    let mut capacity = json!({"cpu": "64", "memory": "512Gi", "pods": "110", "nvidia.com/gpu": "8", "amd.com/gpu": "8"});
    for resource in inputs
        .iter()
        .filter_map(|o| o["spec"]["accelerator"]["resourceName"].as_str())
    {
        capacity[resource] = json!("8");
    }
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "e2e-gpu-node", "labels": {
            "kubernetes.io/hostname": "e2e-gpu-node",
            "nvidia.com/gpu.present": "true", "nvidia.com/gpu.count": "8",
            "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3", "nvidia.com/mig.strategy": "mixed",
        }},
        "status": {"capacity": capacity.clone(), "allocatable": capacity},
    })
}

/// Waits (up to 30 s) until the apiserver calls both webhooks: it loads new
/// webhook configurations a moment after they are created. A dry-run pod
/// asking for a model that does not exist must be denied by the mutating
/// webhook, and a dry-run LLMModel whose engine does not exist must come
/// back with the validating webhook's warning.
fn wait_for_webhooks(suite: &Suite) -> Result<(), String> {
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "probe", "namespace": TEAM, "annotations": {"llm.injector.dev/model": "no-such-model"}},
        "spec": {"containers": [{"name": "app", "image": "ghcr.io/example/app:1.0"}]},
    });
    let model = json!({
        "apiVersion": "llm.injector.dev/v1alpha1", "kind": "LLMModel",
        "metadata": {"name": "probe", "namespace": TEAM},
        "spec": {"model": "qwen3:0.6b", "engineRef": {"name": "no-such-engine"}},
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mutating = suite
            .kubectl
            .with_object(&["create", "--dry-run=server"], &pod);
        let validating = suite
            .kubectl
            .with_object(&["create", "--dry-run=server"], &model);
        let mutating_on = mutating.stderr.contains("denied the request")
            && mutating.stderr.contains("no-such-model");
        let validating_on = validating.success && validating.stderr.contains("no-such-engine");
        if mutating_on && validating_on {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the apiserver does not call the webhooks 30 s after their registration:\n{}\n{}",
                mutating.both(),
                validating.both()
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until serve's reflectors hold every LLMModel of the catalogs.
fn wait_for_catalog(suite: &mut Suite) -> Result<(), String> {
    let listed = suite
        .kubectl
        .run(&["get", "llmmodels", "-A", "-o", "name"], None);
    let models = listed.stdout.lines().count();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let known = suite.cached("LLMModel").unwrap_or(0);
        if known >= models {
            suite.report.check(
                &format!("serve's reflectors hold all {models} LLMModels"),
                Ok::<_, String>(String::new()),
            );
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "serve knows {known} of {models} LLMModels after 30 s"
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// examples/workloads/*.yaml and tests/golden/cases/*.yaml (not the
/// *.injected.yaml goldens).
fn workload_files(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in ["examples/workloads", "tests/golden/cases"] {
        let mut found: Vec<PathBuf> = std::fs::read_dir(root.join(dir))
            .map(|entries| entries.filter_map(|e| Some(e.ok()?.path())).collect())
            .unwrap_or_default();
        found.retain(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            name.ends_with(".yaml") && !name.ends_with(".injected.yaml")
        });
        found.sort();
        files.extend(found);
    }
    files
}

/// A pod that is already injected (inject's own output) is created as it is:
/// the webhook is not called for it and the stored pod is that output.
fn already_injected(suite: &mut Suite) -> Result<(), String> {
    let printed = pods::injected(suite, &suite.root.join("examples/workloads/cpu.yaml"))?;
    let mut pod = printed
        .into_iter()
        .find(|o| o["kind"] == "Pod")
        .ok_or("cpu.yaml prints no Pod")?;
    pod["metadata"]["name"] = json!("already-injected");
    let stored = suite
        .kubectl
        .with_object(&["create", "-o", "json"], &pod)
        .json();
    let result = stored.and_then(|stored| {
        let differences = pods::compare_pod(&pod, &stored);
        suite.kubectl.with_object(&["delete", "--wait=false"], &pod);
        if differences.wrong.is_empty() {
            Ok(String::new())
        } else {
            Err(differences.wrong.join("\n"))
        }
    });
    suite
        .report
        .check("an already injected pod is stored unchanged", result);
    Ok(())
}
