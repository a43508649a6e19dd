//! Across pods (examples/gateway): the pods of one LLMModel as an
//! InferencePool of the Gateway API Inference Extension (GAIE). GAIE's CRDs,
//! from its Go module at the version tests/controlplane/gaie_crds.sh pins,
//! are installed on the apiserver; the example's InferencePool must pass
//! their schema and CEL rules, and broken pools must not. The example's
//! LLMEngine, LLMModel and Deployment go through the webhook, and the pool's
//! selector must select exactly the injected pods of the model, each with a
//! container port equal to the pool's target port on a router that listens
//! beyond loopback.
//!
//! `LLM_INJECTOR_GAIE_CRDS=DIR` names the CRDs' directory, as .ci/run sets
//! it; unset, gaie_crds.sh is run here (outside CI; in CI unset is a
//! failure).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::pods::documents;
use crate::{Suite, TEAM};

/// The environment variable naming the directory of GAIE's CRD YAMLs.
pub const CRDS_ENV: &str = "LLM_INJECTOR_GAIE_CRDS";

const EXAMPLE: &str = "examples/gateway";

pub fn check(suite: &mut Suite) {
    let dir = match crds_dir(suite) {
        Ok(dir) => dir,
        Err(why) => {
            suite
                .report
                .skip("the InferencePool of examples/gateway on GAIE's CRDs", &why);
            return;
        }
    };
    if install_crds(suite, &dir).is_err() {
        return;
    }
    let Some(pool) = example_pool(suite) else {
        return;
    };
    refused_pools(suite, &pool);
    let Some(pods) = model_pods(suite) else {
        cleanup(suite);
        return;
    };
    let decoys = decoy_pods(suite);
    selects_the_model_pods(suite, &pool, &pods);
    target_ports_are_served(suite, &pool, &pods);
    for decoy in &decoys {
        suite
            .kubectl
            .with_object(&["delete", "--wait=false", "--ignore-not-found"], decoy);
    }
    cleanup(suite);
}

/// The directory of GAIE's CRDs: `LLM_INJECTOR_GAIE_CRDS`, or what
/// gaie_crds.sh prints (not in CI, where .ci/run must have set it).
fn crds_dir(suite: &Suite) -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os(CRDS_ENV) {
        return Ok(PathBuf::from(dir));
    }
    if suite.report.ci {
        return Err(format!(
            "{CRDS_ENV} is unset: .ci/run exports it as the directory \
             tests/controlplane/gaie_crds.sh prints (GAIE's CRDs from its Go module)"
        ));
    }
    let script = suite.root.join("tests/controlplane/gaie_crds.sh");
    let out = Command::new(&script)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| {
            format!(
                "{CRDS_ENV} is unset and {} cannot run: {e}",
                script.display()
            )
        })?;
    if !out.status.success() {
        return Err(format!(
            "{CRDS_ENV} is unset and {} failed ({}); it needs Go and the Go module proxy",
            script.display(),
            out.status
        ));
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// `kubectl apply --server-side` of every CRD in `dir`, then Established.
fn install_crds(suite: &mut Suite, dir: &Path) -> Result<(), ()> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| Some(e.ok()?.path())).collect())
        .unwrap_or_default();
    files.retain(|f| f.extension().is_some_and(|e| e == "yaml"));
    files.sort();
    let mut crds = Vec::new();
    let mut bundle = BTreeSet::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for crd in documents(&text).unwrap_or_default() {
            if crd["kind"] == "CustomResourceDefinition"
                && let Some(name) = crd["metadata"]["name"].as_str()
            {
                crds.push(format!("crd/{name}"));
                if let Some(version) =
                    crd["metadata"]["annotations"]["inference.networking.k8s.io/bundle-version"]
                        .as_str()
                {
                    bundle.insert(version.to_owned());
                }
            }
        }
    }
    if !crds.contains(&"crd/inferencepools.inference.networking.k8s.io".to_owned()) {
        suite.report.check(
            "GAIE's CRDs are found",
            Err::<String, _>(format!(
                "{} holds no CRD inferencepools.inference.networking.k8s.io (files: {files:?})",
                dir.display()
            )),
        );
        return Err(());
    }
    let path = dir.to_str().expect("utf-8 path");
    let applied = suite.kubectl.run(
        &["apply", "--server-side", "--field-manager=e2e", "-f", path],
        None,
    );
    let ok = applied.success;
    suite.report.check(
        &format!(
            "GAIE's CRDs (bundle {}, Go module) are server-side applied",
            bundle.into_iter().collect::<Vec<_>>().join(", ")
        ),
        if ok {
            Ok(format!("from {path}\n{}", applied.stdout))
        } else {
            Err(applied.both())
        },
    );
    if !ok {
        return Err(());
    }
    let mut wait = vec!["wait", "--for=condition=Established", "--timeout=60s"];
    wait.extend(crds.iter().map(String::as_str));
    let out = suite.kubectl.run(&wait, None);
    let ok = out.success;
    suite.report.check(
        "GAIE's CRDs are Established",
        out.ok().ok_or("not Established"),
    );
    if ok { Ok(()) } else { Err(()) }
}

/// examples/gateway/inferencepool.yaml created (as stored, defaults in), or
/// None after reporting why not.
fn example_pool(suite: &mut Suite) -> Option<Value> {
    let file = suite.root.join(EXAMPLE).join("inferencepool.yaml");
    let path = file.to_str().expect("utf-8 path");
    let created = suite
        .kubectl
        .run(&["create", "-f", path, "-o", "json"], None)
        .json();
    let result = created.as_ref().map(|pool| {
        format!(
            "stored spec: {}",
            serde_json::to_string(&pool["spec"]).unwrap_or_default()
        )
    });
    suite.report.check(
        &format!(
            "{EXAMPLE}/inferencepool.yaml is accepted by GAIE's InferencePool CRD (schema and CEL)"
        ),
        result,
    );
    created.ok()
}

/// Pools that GAIE's CRD must refuse, each a change of the example's, sent
/// with `kubectl create --dry-run=server`: the refusal must name why.
fn refused_pools(suite: &mut Suite, pool: &Value) {
    let mut example = json!({
        "apiVersion": pool["apiVersion"], "kind": "InferencePool",
        "metadata": {"name": "broken", "namespace": pool["metadata"]["namespace"]},
        "spec": pool["spec"],
    });
    example["spec"]["endpointPickerRef"] =
        json!({"name": "qwen-chat-epp", "port": {"number": 9002}});
    type Change = fn(&mut Value);
    let cases: [(&str, Change, &str); 4] = [
        (
            "without targetPorts",
            |p| {
                p["spec"]
                    .as_object_mut()
                    .expect("spec")
                    .remove("targetPorts");
            },
            "spec.targetPorts: Required value",
        ),
        (
            "with target port 8000 twice",
            |p| p["spec"]["targetPorts"] = json!([{"number": 8000}, {"number": 8000}]),
            "port number must be unique",
        ),
        (
            "with target port 70000",
            |p| p["spec"]["targetPorts"] = json!([{"number": 70000}]),
            "less than or equal to 65535",
        ),
        (
            "with an endpoint picker Service without a port",
            |p| p["spec"]["endpointPickerRef"] = json!({"name": "qwen-chat-epp"}),
            "port is required when kind is 'Service'",
        ),
    ];
    for (what, change, message) in cases {
        let mut broken = example.clone();
        change(&mut broken);
        let out = suite
            .kubectl
            .with_object(&["create", "--dry-run=server"], &broken);
        let said = crate::squash(&out.stderr);
        let result = if !out.success && said.contains(message) {
            Ok(said)
        } else {
            Err(format!(
                "expected a refusal saying {message:?}, got: {}",
                out.both()
            ))
        };
        suite
            .report
            .check(&format!("an InferencePool {what} is refused"), result);
    }
}

/// Creates the example's LLMEngine and LLMModel (through /validate) and its
/// Deployment (whose pods go through /mutate); the Deployment's pods, or
/// None after reporting why not.
fn model_pods(suite: &mut Suite) -> Option<Vec<Value>> {
    let model = suite.root.join(EXAMPLE).join("model.yaml");
    let out = suite
        .kubectl
        .run(&["apply", "-f", model.to_str().expect("utf-8 path")], None);
    let ok = out.success;
    suite.report.check(
        &format!("{EXAMPLE}/model.yaml (routing.expose) is applied through /validate"),
        if ok { Ok(out.both()) } else { Err(out.both()) },
    );
    if !ok {
        return None;
    }
    if let Err(why) = crate::wait_for_catalog(suite) {
        suite.report.check(
            "serve sees the LLMModel of examples/gateway",
            Err::<String, _>(why),
        );
        return None;
    }
    let deployment = suite.root.join(EXAMPLE).join("deployment.yaml");
    let created = suite
        .kubectl
        .run(
            &[
                "create",
                "-f",
                deployment.to_str().expect("utf-8 path"),
                "-o",
                "json",
            ],
            None,
        )
        .json();
    let pods = created.and_then(|object| crate::pods::pods_of(suite, &object));
    let result = pods
        .as_ref()
        .map(|pods| pods.iter().map(pod_name).collect::<Vec<_>>().join(", "));
    suite.report.check(
        &format!(
            "{EXAMPLE}/deployment.yaml: the ReplicaSet's pods are created through the webhook"
        ),
        result,
    );
    pods.ok()
}

/// Two pods in the namespace the pool must not select: one of the same app
/// without the annotation, one of another model.
fn decoy_pods(suite: &mut Suite) -> Vec<Value> {
    let decoys = vec![
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "qwen-chat-not-injected", "namespace": TEAM, "labels": {"app": "qwen-chat"}},
            "spec": {"containers": [{"name": "app", "image": "ghcr.io/example/chat:1.0"}]}}),
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "other-model", "namespace": TEAM,
                "annotations": {"llm.injector.dev/model": "llama-cpu"}},
            "spec": {"containers": [{"name": "app", "image": "ghcr.io/example/chat:1.0"}]}}),
    ];
    let mut problems = Vec::new();
    for decoy in &decoys {
        let out = suite.kubectl.with_object(&["create"], decoy);
        if !out.success {
            problems.push(format!(
                "creating pod {}: {}",
                decoy["metadata"]["name"],
                out.both()
            ));
        }
    }
    suite.report.problems(
        "pods the pool must not select: one of the same app without the annotation, one of another model",
        problems,
    );
    decoys
}

/// `kubectl get pods -l <the pool's matchLabels>` lists exactly `pods`.
fn selects_the_model_pods(suite: &mut Suite, pool: &Value, pods: &[Value]) {
    let namespace = pool["metadata"]["namespace"].as_str().unwrap_or(TEAM);
    let selector: Vec<String> = pool["spec"]["selector"]["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(key, value)| format!("{key}={}", value.as_str().unwrap_or_default()))
        .collect();
    let selector = selector.join(",");
    let listed = suite
        .kubectl
        .run(
            &[
                "get", "pods", "-n", namespace, "-l", &selector, "-o", "json",
            ],
            None,
        )
        .json();
    let want: BTreeSet<&str> = pods.iter().map(pod_name).collect();
    let result = listed.and_then(|list| {
        let got: BTreeSet<String> = list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|pod| pod_name(pod).to_owned())
            .collect();
        let got: BTreeSet<&str> = got.iter().map(String::as_str).collect();
        if !selector.is_empty() && got == want {
            Ok(format!("-l {selector}: {got:?}"))
        } else {
            Err(format!(
                "-l {selector:?} lists {got:?}; the injected pods of the model are {want:?}"
            ))
        }
    });
    suite.report.check(
        &format!(
            "the pool's selector selects exactly the {} injected pods of the model",
            pods.len()
        ),
        result,
    );
}

/// Every pod has, for each of the pool's target ports, a container port of
/// that number on a container that listens on it beyond loopback.
fn target_ports_are_served(suite: &mut Suite, pool: &Value, pods: &[Value]) {
    let ports: Vec<u64> = pool["spec"]["targetPorts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["number"].as_u64())
        .collect();
    let mut problems = Vec::new();
    let mut found = Vec::new();
    if ports.is_empty() {
        problems.push(format!(
            "the stored pool has no targetPorts: {}",
            pool["spec"]
        ));
    }
    for pod in pods {
        if !pod["metadata"]["annotations"]["llm.injector.dev/status"].is_string() {
            problems.push(format!("pod {} is not injected", pod_name(pod)));
            continue;
        }
        for &port in &ports {
            match serving_container(pod, port) {
                Ok(what) => found.push(format!("{}: {what}", pod_name(pod))),
                Err(why) => problems.push(format!("pod {}: {why}", pod_name(pod))),
            }
        }
    }
    let result = if problems.is_empty() {
        Ok(found.join("\n"))
    } else {
        Err(problems.join("\n"))
    };
    suite.report.check(
        &format!("each selected pod has a container port {ports:?} (the pool's targetPorts) where its router listens beyond loopback"),
        result,
    );
}

/// The container (native sidecars included) declaring `port`, and where it
/// listens; an error when none does, or it listens elsewhere.
fn serving_container(pod: &Value, port: u64) -> Result<String, String> {
    let containers = ["initContainers", "containers"]
        .iter()
        .flat_map(|list| pod["spec"][list].as_array().cloned().unwrap_or_default());
    let mut declared = Vec::new();
    for container in containers {
        let name = container["name"].as_str().unwrap_or_default().to_owned();
        for declared_port in container["ports"].as_array().into_iter().flatten() {
            declared.push(format!("{name}:{}", declared_port["containerPort"]));
            if declared_port["containerPort"].as_u64() != Some(port) {
                continue;
            }
            let port_name = declared_port["name"].as_str().unwrap_or("(no name)");
            let listen = listen_address(&container).ok_or_else(|| {
                format!("container {name} declares port {port} but has no --listen argument or LLM_ROUTER_LISTEN")
            })?;
            return match listen.parse::<std::net::SocketAddr>() {
                Ok(addr) if addr.port() as u64 == port && !addr.ip().is_loopback() => Ok(format!(
                    "container {name}, port {port_name} {port}, listens on {listen}"
                )),
                _ => Err(format!(
                    "container {name} declares port {port} ({port_name}) but listens on {listen}, \
                     which the pod IP's port {port} does not reach"
                )),
            };
        }
    }
    Err(format!(
        "no container declares port {port}; declared: {declared:?}"
    ))
}

/// `--listen ADDR` or `--listen=ADDR` in a container's command and args, or
/// its `LLM_ROUTER_LISTEN`.
fn listen_address(container: &Value) -> Option<String> {
    let words: Vec<String> = ["command", "args"]
        .iter()
        .flat_map(|key| container[key].as_array().cloned().unwrap_or_default())
        .filter_map(|w| w.as_str().map(str::to_owned))
        .collect();
    for (i, word) in words.iter().enumerate() {
        if let Some(addr) = word.strip_prefix("--listen=") {
            return Some(addr.to_owned());
        }
        if word == "--listen" {
            return words.get(i + 1).cloned();
        }
    }
    container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["name"] == "LLM_ROUTER_LISTEN")
        .and_then(|e| e["value"].as_str().map(str::to_owned))
}

fn pod_name(pod: &Value) -> &str {
    pod["metadata"]["name"].as_str().unwrap_or_default()
}

/// Deletes what the check made: the Deployment (its pods with it), the
/// pool, the model and then its engine. The webhook judges an engine's
/// deletion by its cache, which sees the model go a moment later: retried.
fn cleanup(suite: &mut Suite) {
    let mut problems = Vec::new();
    for file in ["deployment.yaml", "inferencepool.yaml", "model.yaml"] {
        let path = suite.root.join(EXAMPLE).join(file);
        let path = path.to_str().expect("utf-8 path");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = suite.kubectl.delete_file(path);
            if out.success {
                break;
            }
            if Instant::now() > deadline {
                problems.push(format!("deleting {EXAMPLE}/{file}: {}", out.both()));
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    suite
        .report
        .problems(&format!("the objects of {EXAMPLE} are deleted"), problems);
}
