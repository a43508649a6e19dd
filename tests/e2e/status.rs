//! The status controller of `serve` on the real control plane: an LLMModel
//! whose engine is missing says so, then resolves its shape once the engine
//! exists; an injected pod is counted, and patched Ready (as a kubelet
//! would) makes the model Ready, which `kubectl wait` sees; `kubectl get`
//! shows the columns; one trigger is one reconcile; Events mark what
//! changed; an engine made after its model that the model does not fit
//! gives the webhook's message; an engine in another namespace is named.
//! Then, with more replicas: one writes, a killed leader is replaced within
//! the Lease's duration, an engine deleted while the webhook is down (and
//! its pods run) is reported by the new leader, and a stopped replica
//! releases the Lease.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::Suite;
use crate::controlplane::ControlPlane;
use crate::webhooks::{LEASE, SERVICE_ACCOUNT, Serve};

/// The namespace of the status checks.
pub const NAMESPACE: &str = "status-e2e";
/// serve's default `--leader-election-lease-duration`.
const LEASE_SECONDS: u64 = 15;
const RECONCILES: &str = "llm_injector_status_reconciles_total";
const LEADER: &str = "llm_injector_status_leader";

/// The model's status once `done` holds for it (polled for up to 30 s), or
/// the last one seen.
fn wait_for(
    suite: &Suite,
    namespace: &str,
    name: &str,
    done: impl Fn(&Value) -> bool,
) -> Result<Value, String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = suite.kubectl.run(
            &["get", "llmmodel", name, "-n", namespace, "-o", "json"],
            None,
        );
        let status = serde_json::from_str::<Value>(&out.stdout)
            .map(|m| m["status"].clone())
            .unwrap_or(Value::Null);
        if done(&status) {
            return Ok(status);
        }
        if Instant::now() > deadline {
            return Err(format!("status after 30 s: {status}"));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == type_))
        .unwrap_or(&Value::Null)
}

fn is(status: &Value, type_: &str, value: &str) -> bool {
    condition(status, type_)["status"] == value
}

/// Waits until the model's condition `type_` is `state`, then gives its
/// message if `judge` accepts it with the whole status (else the status).
fn condition_becomes(
    suite: &Suite,
    (namespace, model): (&str, &str),
    (type_, state): (&str, &str),
    judge: impl Fn(&Value, &str) -> bool,
) -> Result<String, String> {
    let status = wait_for(suite, namespace, model, |s| is(s, type_, state))?;
    let message = condition(&status, type_)["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if judge(&status, &message) {
        Ok(message)
    } else {
        Err(status.to_string())
    }
}

/// The Events of `kind`/`name` as (type, reason, note, reporting instance).
fn events(
    suite: &Suite,
    namespace: &str,
    kind: &str,
    name: &str,
) -> Vec<(String, String, String, String)> {
    let out = suite
        .kubectl
        .run(&["get", "events", "-n", namespace, "-o", "json"], None);
    let list = out.json().unwrap_or(Value::Null);
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["involvedObject"]["kind"] == kind && e["involvedObject"]["name"] == name)
        .map(|e| {
            let text = |field: &str| e[field].as_str().unwrap_or_default().to_owned();
            (
                text("type"),
                text("reason"),
                text("message"),
                text("reportingInstance"),
            )
        })
        .collect()
}

/// The Event of `kind`/`name` with `type_` and `reason`, waited for (10 s):
/// its note and reporting instance.
fn wait_for_event(
    suite: &Suite,
    namespace: &str,
    object: (&str, &str),
    type_: &str,
    reason: &str,
) -> Result<(String, String), String> {
    wait_for_event_where(suite, namespace, object, |(t, r, _, _)| {
        t == type_ && r == reason
    })
}

/// The first Event of `kind`/`name` that `wanted` accepts (type, reason,
/// note, reporting instance), waited for (10 s): its note and instance.
fn wait_for_event_where(
    suite: &Suite,
    namespace: &str,
    (kind, name): (&str, &str),
    wanted: impl Fn(&(String, String, String, String)) -> bool,
) -> Result<(String, String), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let all = events(suite, namespace, kind, name);
        if let Some((_, _, note, instance)) = all.iter().find(|e| wanted(e)) {
            return Ok((note.clone(), instance.clone()));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "no such Event for {kind} {name} after 10 s; its Events: {all:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// `metric` of `serve` once it stopped moving for 2 s (at most 20 s).
fn settled(serve: &Serve, metric: &str, labels: &[&str]) -> Result<f64, String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = serve.metric(metric, labels)?;
    loop {
        std::thread::sleep(Duration::from_secs(2));
        let now = serve.metric(metric, labels)?;
        if now == last {
            return Ok(now);
        }
        if Instant::now() > deadline {
            return Err(format!("{metric} still moving after 20 s: {now}"));
        }
        last = now;
    }
}

pub fn check(suite: &mut Suite, namespace: &str, serve: &Serve) {
    let (model, engine) = ("status-model", "status-engine");
    let object = json!({
        "apiVersion": "llm.injector.dev/v1alpha1", "kind": "LLMModel",
        "metadata": {"name": model, "namespace": namespace},
        "spec": {"model": "qwen3:0.6b", "engineRef": {"name": engine}, "parallelism": {"data": 2}},
    });
    let created = suite.kubectl.with_object(&["create"], &object);
    let result = if created.success {
        condition_becomes(
            suite,
            (namespace, model),
            ("EngineFound", "False"),
            |s, message| message.contains("does not exist") && is(s, "Valid", "Unknown"),
        )
    } else {
        Err(created.both())
    };
    suite.report.check(
        "an LLMModel whose LLMEngine is missing gets EngineFound=False and Valid=Unknown, with the fix",
        result,
    );
    suite.report.check(
        "... and a Warning Event EngineNotFound",
        wait_for_event(
            suite,
            namespace,
            ("LLMModel", model),
            "Warning",
            "EngineNotFound",
        )
        .map(|(note, _)| note),
    );

    let engine_object = json!({
        "apiVersion": "llm.injector.dev/v1alpha1", "kind": "LLMEngine",
        "metadata": {"name": engine, "namespace": namespace}, "spec": {},
    });
    let created = suite.kubectl.with_object(&["create"], &engine_object);
    let result = if created.success {
        wait_for(suite, namespace, model, |s| {
            is(s, "EngineFound", "True") && is(s, "Valid", "True")
        })
        .and_then(|s| {
            let shape = (
                &s["instances"],
                &s["gpusPerInstance"],
                &s["gpusPerPod"],
                &s["endpointPort"],
            );
            if shape == (&json!(2), &json!(0), &json!(0), &json!(11436)) && is(&s, "Ready", "False")
            {
                Ok(format!(
                    "instances 2, GPUs 0, endpoint port {}",
                    s["endpointPort"]
                ))
            } else {
                Err(s.to_string())
            }
        })
    } else {
        Err(created.both())
    };
    suite.report.check(
        "once the LLMEngine exists, the model is Valid with its resolved shape (2 instances, router port 11436)",
        result,
    );
    let out = suite.kubectl.run(
        &[
            "get",
            "llmengine",
            engine,
            "-n",
            namespace,
            "-o",
            "jsonpath={.status.models}",
        ],
        None,
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut models = out.stdout;
    while !models.contains(model) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        models = suite
            .kubectl
            .run(
                &[
                    "get",
                    "llmengine",
                    engine,
                    "-n",
                    namespace,
                    "-o",
                    "jsonpath={.status.models}",
                ],
                None,
            )
            .stdout;
    }
    suite.report.check(
        "the LLMEngine's status lists the model that uses it",
        if models.contains(model) {
            Ok(models)
        } else {
            Err(format!("status.models: {models:?}"))
        },
    );

    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "status-pod", "namespace": namespace,
            "annotations": {"llm.injector.dev/model": model}},
        "spec": {"containers": [{"name": "app", "image": "busybox"}]},
    });
    let created = suite.kubectl.with_object(&["create"], &pod);
    let counted = created.success
        && wait_for(suite, namespace, model, |s| s["pods"]["injected"] == 1).is_ok();
    let model_reconciles = [r#"kind="LLMModel""#];
    let before = settled(serve, RECONCILES, &model_reconciles);
    // What a kubelet does when the pod's containers are ready.
    let patched = suite.kubectl.run(
        &[
            "patch",
            "pod",
            "status-pod",
            "-n",
            namespace,
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"conditions":[{"type":"Ready","status":"True"}]}}"#,
        ],
        None,
    );
    let waited = suite.kubectl.run(
        &[
            "wait",
            "--for=condition=Ready",
            &format!("llmmodel/{model}"),
            "-n",
            namespace,
            "--timeout=30s",
        ],
        None,
    );
    let result = match (counted, patched.success, waited.success) {
        (true, true, true) => wait_for(suite, namespace, model, |s| s["pods"]["ready"] == 1)
            .map(|s| format!("{}; pods {}", squash_message(&s), s["pods"])),
        _ => Err(format!(
            "counted {counted}; patch: {}; wait: {}",
            patched.both(),
            waited.both()
        )),
    };
    suite.report.check(
        "an injected pod is counted, and once Ready, `kubectl wait --for=condition=Ready llmm/NAME` returns",
        result,
    );
    let after = settled(serve, RECONCILES, &model_reconciles);
    suite.report.check(
        "the pod turning Ready is one LLMModel reconcile: the status it writes wakes no other",
        match (before, after) {
            (Ok(before), Ok(after)) if after - before == 1.0 => {
                Ok(format!("LLMModel reconciles {before} -> {after}"))
            }
            (before, after) => Err(format!(
                "LLMModel reconciles before {before:?}, after {after:?} (expected one more)"
            )),
        },
    );
    let listing = suite
        .kubectl
        .run(&["get", "llmm", model, "-n", namespace], None);
    println!("{}", listing.both());
    let header = listing.stdout.lines().next().unwrap_or_default().to_owned();
    let row = listing.stdout.lines().nth(1).unwrap_or_default().to_owned();
    let columns_ok = ["INSTANCES", "GPUS", "READY-PODS", "VALID", "READY"]
        .iter()
        .all(|c| header.contains(c))
        && row.split_whitespace().filter(|w| *w == "True").count() == 2;
    suite.report.check(
        "`kubectl get llmm` shows instances, GPUs, ready pods, Valid and Ready from the status",
        if columns_ok {
            Ok(row)
        } else {
            Err(listing.both())
        },
    );
    let described = suite
        .kubectl
        .run(&["describe", "llmm", model, "-n", namespace], None);
    println!("{}", described.both());
    hand_edited_annotation(suite, namespace, model);
    engine_made_after_the_model(suite, namespace);
    engine_in_another_namespace(suite, namespace);
    memory_on_gpus(suite, namespace);
    node_advice(suite, namespace);
    let errors = serve.metric(RECONCILES, &[r#"result="error""#]);
    suite.report.check(
        "no status reconcile failed (serve runs with webhook-config/'s RBAC only)",
        match errors {
            Ok(0.0) => Ok(String::new()),
            other => Err(format!("errors: {other:?}; see serve's log")),
        },
    );
    // status-model, its engine and pod stay for engine_deleted_while_pods_run.
}

/// A pod whose status annotation was edited by hand is still counted, and
/// nothing fails.
fn hand_edited_annotation(suite: &mut Suite, namespace: &str, model: &str) {
    let edited = suite.kubectl.run(
        &[
            "annotate",
            "pod",
            "status-pod",
            "-n",
            namespace,
            "--overwrite",
            "llm.injector.dev/status={not json, edited by hand",
        ],
        None,
    );
    std::thread::sleep(Duration::from_secs(1));
    let result = if edited.success {
        wait_for(suite, namespace, model, |s| {
            s["pods"] == json!({"injected": 1, "ready": 1}) && is(s, "Ready", "True")
        })
        .map(|s| format!("pods {}", s["pods"]))
    } else {
        Err(edited.both())
    };
    suite.report.check(
        "a pod whose llm.injector.dev/status was edited by hand still counts, and Ready holds",
        result,
    );
}

/// An engine created after its model, which the model does not fit: the
/// model is Valid=False with the message the webhook gives a pod asking for
/// it, and a Warning Event; fixing the engine makes it Valid with a Normal
/// Event; breaking it again is refused by the webhook, naming the model.
fn engine_made_after_the_model(suite: &mut Suite, namespace: &str) {
    let (model, engine) = ("status-gpu-model", "status-gpu");
    let model_object = json!({
        "apiVersion": "llm.injector.dev/v1alpha1", "kind": "LLMModel",
        "metadata": {"name": model, "namespace": namespace},
        "spec": {"model": "qwen3:14b", "engineRef": {"name": engine}, "parallelism": {"model": 2}},
    });
    let engine_with = |max: u32| {
        json!({
            "apiVersion": "llm.injector.dev/v1alpha1", "kind": "LLMEngine",
            "metadata": {"name": engine, "namespace": namespace},
            "spec": {"accelerator": {"vendor": "NVIDIA", "maxDevicesPerInstance": max}},
        })
    };
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "status-gpu-pod", "namespace": namespace,
            "annotations": {"llm.injector.dev/model": model}},
        "spec": {"containers": [{"name": "app", "image": "busybox"}]},
    });
    let made = suite.kubectl.with_object(&["create"], &model_object);
    let made_engine = suite.kubectl.with_object(&["create"], &engine_with(1));
    let result = if made.success && made_engine.success {
        condition_becomes(suite, (namespace, model), ("Valid", "False"), |_, _| true).and_then(
            |message| {
                let webhook = suite
                    .kubectl
                    .with_object(&["create", "--dry-run=server"], &pod);
                let denial = crate::squash(&webhook.stderr);
                let own = message
                    .strip_suffix(" (pods asking for this model are refused)")
                    .unwrap_or(&message);
                if !webhook.success && denial.contains(own) {
                    Ok(format!("status: {message}\nwebhook: {denial}"))
                } else {
                    Err(format!("status: {message}\nwebhook: {}", webhook.both()))
                }
            },
        )
    } else {
        Err(format!("{}\n{}", made.both(), made_engine.both()))
    };
    suite.report.check(
        "an LLMEngine made after its model, too small for it: Valid=False with the webhook's own message",
        result,
    );
    suite.report.check(
        "... and a Warning Event Invalid",
        wait_for_event(suite, namespace, ("LLMModel", model), "Warning", "Invalid")
            .map(|(note, _)| note),
    );
    let fixed = suite.kubectl.with_object(&["apply"], &engine_with(2));
    let result = if fixed.success {
        wait_for(suite, namespace, model, |s| is(s, "Valid", "True"))
            .and_then(|_| wait_for_event(suite, namespace, ("LLMModel", model), "Normal", "Valid"))
            .map(|(note, _)| note)
    } else {
        Err(fixed.both())
    };
    suite.report.check(
        "the engine raised to 2 GPUs per instance: Valid=True and a Normal Event Valid",
        result,
    );
    let broken = suite.kubectl.with_object(&["apply"], &engine_with(1));
    let still = wait_for(suite, namespace, model, |s| is(s, "Valid", "True"));
    suite.report.check(
        "lowering it again is refused by the webhook, naming the model, and the model stays Valid",
        if !broken.success && broken.stderr.contains(model) && still.is_ok() {
            Ok(crate::squash(&broken.stderr))
        } else {
            Err(format!("{}; status {still:?}", broken.both()))
        },
    );
    for object in [format!("llmmodel/{model}"), format!("llmengine/{engine}")] {
        suite
            .kubectl
            .run(&["delete", &object, "-n", namespace, "--wait=false"], None);
    }
}

/// A model whose engine exists only in another namespace is told so.
fn engine_in_another_namespace(suite: &mut Suite, namespace: &str) {
    let (model, engine, elsewhere) = ("status-elsewhere", "status-shared-engine", "default");
    let engine_object = json!({
        "apiVersion": "llm.injector.dev/v1alpha1", "kind": "LLMEngine",
        "metadata": {"name": engine, "namespace": elsewhere}, "spec": {},
    });
    let model_object = json!({
        "apiVersion": "llm.injector.dev/v1alpha1", "kind": "LLMModel",
        "metadata": {"name": model, "namespace": namespace},
        "spec": {"model": "qwen3:0.6b", "engineRef": {"name": engine}},
    });
    let made = suite.kubectl.with_object(&["create"], &engine_object);
    let made_model = suite.kubectl.with_object(&["create"], &model_object);
    let result = if made.success && made_model.success {
        condition_becomes(
            suite,
            (namespace, model),
            ("EngineFound", "False"),
            |s, message| {
                condition(s, "EngineFound")["reason"] == "EngineInOtherNamespace"
                    && message.contains(&format!("namespace \"{elsewhere}\""))
            },
        )
    } else {
        Err(format!("{}\n{}", made.both(), made_model.both()))
    };
    suite.report.check(
        "a model naming an LLMEngine of another namespace: EngineFound=False, reason EngineInOtherNamespace, naming it",
        result,
    );
    suite
        .kubectl
        .run(&["delete", "llmmodel", model, "-n", namespace], None);
    suite
        .kubectl
        .run(&["delete", "llmengine", engine, "-n", elsewhere], None);
}

/// With the engine's memoryPerDevice: llama3.1:8b on 4 GiB GPUs is accepted
/// with the offload warning and reads Fits=False with the numbers; phi4 on a
/// 1 GiB slice is refused by the webhook (no layer fits).
fn memory_on_gpus(suite: &mut Suite, namespace: &str) {
    let engine = |name: &str, memory: &str| {
        json!({
            "apiVersion": "llm.injector.dev/v1alpha1", "kind": "LLMEngine",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"accelerator": {"vendor": "NVIDIA", "memoryPerDevice": memory}},
        })
    };
    let model = |name: &str, reference: &str, engine: &str| {
        json!({
            "apiVersion": "llm.injector.dev/v1alpha1", "kind": "LLMModel",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"model": reference, "engineRef": {"name": engine}},
        })
    };
    let small = suite
        .kubectl
        .with_object(&["create"], &engine("gpu-4gi", "4Gi"));
    let slice = suite
        .kubectl
        .with_object(&["create"], &engine("gpu-1gi", "1Gi"));
    if !(small.success && slice.success) {
        suite.report.check(
            "LLMEngines with memoryPerDevice are created",
            Err::<String, _>(format!("{}\n{}", small.both(), slice.both())),
        );
        return;
    }
    // The webhook judges by its cache: wait until it holds every engine.
    let engines = suite
        .kubectl
        .run(&["get", "llmengines", "-A", "-o", "name"], None)
        .stdout
        .lines()
        .count();
    suite.wait_for_cache("LLMEngine", engines);
    let llama = suite
        .kubectl
        .with_object(&["create"], &model("llama-4gi", "llama3.1:8b", "gpu-4gi"));
    let result = if llama.success && llama.stderr.contains("20 of its 33 layers") {
        condition_becomes(
            suite,
            (namespace, "llama-4gi"),
            ("Fits", "False"),
            |s, message| {
                condition(s, "Fits")["reason"] == "OffloadsToCpu"
                    && message.contains("needs ~5.8 GiB")
                    && is(s, "Valid", "True")
            },
        )
        .map(|message| format!("warning: {}\nFits: {message}", crate::squash(&llama.stderr)))
    } else {
        Err(llama.both())
    };
    suite.report.check(
        "llama3.1:8b on 4 GiB GPUs: created with the offload warning, Fits=False (OffloadsToCpu) with the numbers",
        result,
    );
    let phi = suite
        .kubectl
        .with_object(&["create"], &model("phi4-1gi", "phi4", "gpu-1gi"));
    suite.report.check(
        "phi4 on a 1 GiB slice: refused by the webhook, no layer fits",
        if !phi.success && phi.stderr.contains("not one layer fits") {
            Ok(crate::squash(&phi.stderr))
        } else {
            Err(phi.both())
        },
    );
    for object in [
        "llmmodel/llama-4gi",
        "llmengine/gpu-4gi",
        "llmengine/gpu-1gi",
    ] {
        suite
            .kubectl
            .run(&["delete", object, "-n", namespace, "--wait=false"], None);
    }
}

/// A Node labelled by GPU Feature Discovery with two 4 GiB GPUs of its own
/// resource: a pod whose model needs more memory per instance, or more GPUs
/// than it has, is injected with serve's warning naming the Node.
fn node_advice(suite: &mut Suite, namespace: &str) {
    let node = json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "e2e-small-gpu-node", "labels": {
            "nvidia.com/gpu.memory": "4096", "nvidia.com/gpu.product": "NVIDIA-T4-e2e",
            "nvidia.com/gpu.count": "2"}},
        "status": {
            "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110", "example.com/small-gpu": "2"},
            "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110", "example.com/small-gpu": "2"},
        },
    });
    let engine = json!({
        "apiVersion": "llm.injector.dev/v1alpha1", "kind": "LLMEngine",
        "metadata": {"name": "small-gpu", "namespace": namespace},
        "spec": {"accelerator": {"vendor": "NVIDIA", "resourceName": "example.com/small-gpu"}},
    });
    let model = |name: &str, parallelism: Value| {
        json!({
            "apiVersion": "llm.injector.dev/v1alpha1", "kind": "LLMModel",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"model": "llama3.1:8b", "engineRef": {"name": "small-gpu"}, "parallelism": parallelism},
        })
    };
    let pod = |model: &str| {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("{model}-pod"), "namespace": namespace,
                "annotations": {"llm.injector.dev/model": model}},
            "spec": {"containers": [{"name": "app", "image": "busybox"}]},
        })
    };
    // Before any Node changes: serve knows the Nodes from its first list, so
    // a model that e2e-gpu-node (8 nvidia.com/gpu) holds gets no advice.
    let fits = json!({
        "apiVersion": "llm.injector.dev/v1alpha1", "kind": "LLMModel",
        "metadata": {"name": "node-fits", "namespace": namespace},
        "spec": {"model": "llama3.1:8b", "engineRef": {"name": "node-gpu"}, "parallelism": {"model": 2}},
    });
    let fits_engine = json!({
        "apiVersion": "llm.injector.dev/v1alpha1", "kind": "LLMEngine",
        "metadata": {"name": "node-gpu", "namespace": namespace},
        "spec": {"accelerator": {"vendor": "NVIDIA"}},
    });
    let made = [
        suite.kubectl.with_object(&["create"], &fits_engine),
        suite.kubectl.with_object(&["create"], &fits),
    ];
    let result = if made.iter().all(|o| o.success) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let out = suite
                .kubectl
                .with_object(&["create", "--dry-run=server"], &pod("node-fits"));
            // Injected (the status annotation in the answer) once serve's
            // cache holds the model; then no word about Nodes.
            if out.success && out.stdout.contains("created") {
                break if out.stderr.contains("Node") {
                    Err(out.both())
                } else {
                    Ok(crate::squash(&out.both()))
                };
            }
            if Instant::now() > deadline {
                break Err(out.both());
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    } else {
        Err(made.iter().map(|o| o.both()).collect::<Vec<_>>().join("\n"))
    };
    suite.report.check(
        "a pod whose model a Node holds (2 of e2e-gpu-node's 8 GPUs) gets no advice: serve knows the Nodes from its first list",
        result,
    );
    for object in ["llmmodel/node-fits", "llmengine/node-gpu"] {
        suite
            .kubectl
            .run(&["delete", object, "-n", namespace, "--wait=false"], None);
    }
    let created = [
        suite.kubectl.with_object(&["create"], &node),
        suite.kubectl.with_object(&["create"], &engine),
        suite
            .kubectl
            .with_object(&["create"], &model("small-llama", json!({"model": 1}))),
        suite.kubectl.with_object(
            &["create"],
            &model("wide-llama", json!({"model": 2, "data": 2})),
        ),
    ];
    let failed: Vec<String> = created
        .iter()
        .filter(|o| !o.success)
        .map(|o| o.both())
        .collect();
    if !failed.is_empty() {
        suite.report.check(
            "a GFD-labelled Node, an engine of its resource and two models are created",
            Err::<String, _>(failed.join("\n")),
        );
        return;
    }
    // serve's Node cache follows the apiserver a moment behind.
    let warned = |model: &str, fragment: &str| {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let out = suite
                .kubectl
                .with_object(&["create", "--dry-run=server"], &pod(model));
            let warning = crate::squash(&out.stderr);
            if out.success && warning.contains(fragment) {
                return Ok(warning);
            }
            if Instant::now() > deadline {
                return Err(out.both());
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    };
    suite.report.check(
        "a pod whose model needs ~5.8 GiB a GPU, where the only Node of its resource has 4 GiB GPUs: injected, with a warning naming the Node",
        warned(
            "small-llama",
            "no Node with 1 example.com/small-gpu has GPUs large enough for an instance of LLMModel \"small-llama\" (~5.8 GiB on 1 GPU(s) at 4096 x 1); the largest is Node e2e-small-gpu-node with 4.0 GiB per GPU (NVIDIA-T4-e2e)",
        ),
    );
    suite.report.check(
        "a pod asking for 4 GPUs where Nodes have at most 2: injected, with a warning naming the Node",
        warned(
            "wide-llama",
            "no Node has the 4 example.com/small-gpu a pod of LLMModel \"wide-llama\" requests (the most is 2, on Node e2e-small-gpu-node)",
        ),
    );
    // The engine says nothing of its GPUs' memory: the status reads the
    // Node's GFD label.
    suite.report.check(
        "an engine without memoryPerDevice: the model's Fits condition reads the GPU memory from the Node's GFD label (False, OffloadsToCpu, naming the Node)",
        condition_becomes(suite, (namespace, "small-llama"), ("Fits", "False"), |s, message| {
            condition(s, "Fits")["reason"] == "OffloadsToCpu"
                && message.contains("an instance has 1 x 4.0 GiB at most (the largest GPUs of a Node offering 1 example.com/small-gpu, as its labels say: Node e2e-small-gpu-node, NVIDIA-T4-e2e")
        }),
    );
    // Gone before the DaemonSets of later sections look for Nodes.
    suite
        .kubectl
        .run(&["delete", "node", "e2e-small-gpu-node"], None);
    suite.report.check(
        "the Node deleted: every model is checked again, and Fits no longer knows the GPUs' memory (Unknown, NotChecked)",
        condition_becomes(suite, (namespace, "small-llama"), ("Fits", "Unknown"), |s, message| {
            condition(s, "Fits")["reason"] == "NotChecked"
                && message.contains("no Node offering 1 example.com/small-gpu has a GPU memory label")
        }),
    );
    for object in [
        "llmmodel/small-llama",
        "llmmodel/wide-llama",
        "llmengine/small-gpu",
    ] {
        suite
            .kubectl
            .run(&["delete", object, "-n", namespace, "--wait=false"], None);
    }
}

/// The Lease's holder identity.
fn holder(suite: &Suite) -> String {
    let (namespace, _) = SERVICE_ACCOUNT;
    suite
        .kubectl
        .run(
            &[
                "get",
                "lease",
                LEASE,
                "-n",
                namespace,
                "-o",
                "jsonpath={.spec.holderIdentity}",
            ],
            None,
        )
        .stdout
}

/// Whether `serve` leads, by its own metric.
fn leads(serve: &Serve) -> bool {
    serve.metric(LEADER, &[]) == Ok(1.0)
}

/// Two more replicas of serve with the same Lease: the first one holds it
/// and writes status, they wait and write nothing.
pub fn standbys(
    suite: &mut Suite,
    plane: &ControlPlane,
    leader: &Serve,
) -> Result<Vec<Serve>, String> {
    let replicas = vec![
        Serve::start(&suite.injector, plane, "llm-injector-serve-2")?,
        Serve::start(&suite.injector, plane, "llm-injector-serve-3")?,
    ];
    std::thread::sleep(Duration::from_secs(3));
    let holder = holder(suite);
    let writes: Vec<f64> = replicas
        .iter()
        .map(|r| r.metric(RECONCILES, &[]).unwrap_or(-1.0))
        .collect();
    let result = if holder.ends_with(&format!("-{}", leader.process.pid()))
        && leads(leader)
        && replicas.iter().all(|r| !leads(r))
        && writes.iter().all(|w| *w == 0.0)
        && leader.metric(RECONCILES, &[]).unwrap_or(0.0) > 0.0
    {
        Ok(format!(
            "Lease holder {holder}; the standbys reconciled {writes:?}"
        ))
    } else {
        Err(format!(
            "Lease holder {holder:?} (first replica pid {}); leading {:?}; standby reconciles {writes:?}",
            leader.process.pid(),
            [leader]
                .into_iter()
                .chain(&replicas)
                .map(leads)
                .collect::<Vec<_>>()
        ))
    };
    suite.report.check(
        "three replicas: the first holds the Lease and writes status, the two others serve and write nothing",
        result,
    );
    Ok(replicas)
}

/// Kills the leader (SIGKILL: it releases nothing); a standby takes the
/// Lease within its duration (plus the second of jitter kube-lease-manager
/// adds). Returns the replicas left.
pub fn kill_leader(suite: &mut Suite, mut leader: Serve, replicas: Vec<Serve>) -> Vec<Serve> {
    let killed = Instant::now();
    leader.process.kill();
    let deadline = killed + Duration::from_secs(LEASE_SECONDS * 2);
    let taken = loop {
        if let Some(new) = replicas.iter().find(|r| leads(r)) {
            break Some((killed.elapsed(), new.process.pid()));
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let holder = holder(suite);
    let result = match taken {
        Some((after, pid))
            if after <= Duration::from_secs(LEASE_SECONDS + 2)
                && holder.ends_with(&format!("-{pid}")) =>
        {
            suite.report.figure(&format!(
                "a killed leader replaced after {:.1} s (Lease duration {LEASE_SECONDS} s)",
                after.as_secs_f64()
            ));
            Ok(format!("new holder {holder}"))
        }
        other => Err(format!("taken over: {other:?}; Lease holder {holder:?}")),
    };
    suite.report.check(
        "a killed leader is replaced within the Lease duration",
        result,
    );
    replicas
}

/// With the webhook down (the DELETE webhook ignores failures), the engine
/// of status-model is deleted while its pod runs: the new leader reports
/// EngineFound=False, keeps Ready, and writes a Warning Event.
pub fn engine_deleted_while_pods_run(suite: &mut Suite, namespace: &str, replicas: &[Serve]) {
    let (model, engine) = ("status-model", "status-engine");
    let deleted = suite
        .kubectl
        .run(&["delete", "llmengine", engine, "-n", namespace], None);
    let result = if deleted.success {
        condition_becomes(
            suite,
            (namespace, model),
            ("EngineFound", "False"),
            |s, message| {
                message.contains("the 1 pod(s) already injected keep running")
                    && is(s, "Ready", "True")
            },
        )
    } else {
        Err(deleted.both())
    };
    suite.report.check(
        "an engine deleted while its pods run (webhook down): EngineFound=False saying the pods keep running, Ready holds",
        result,
    );
    let leader = replicas.iter().find(|r| leads(r)).map(|r| r.process.pid());
    // The first EngineNotFound Event came from the first leader; this one
    // must come from the one leading now.
    let event = wait_for_event_where(suite, namespace, ("LLMModel", model), |event| {
        let (type_, reason, note, instance) = event;
        type_ == "Warning"
            && reason == "EngineNotFound"
            && note.contains("keep running")
            && leader.is_some_and(|pid| instance.ends_with(&format!("-{pid}")))
    })
    .map(|(note, instance)| format!("{instance}: {note}"));
    suite.report.check(
        "... and the new leader writes a Warning Event EngineNotFound",
        event,
    );
    for object in ["pod/status-pod", &format!("llmmodel/{model}")] {
        let _ = suite
            .kubectl
            .run(&["delete", object, "-n", namespace, "--wait=false"], None);
    }
}

/// The leader stopped with SIGTERM releases the Lease at once; the last
/// replica takes it within the Lease duration.
pub fn handover(suite: &mut Suite, replicas: &mut [Serve]) {
    let Some(index) = replicas.iter().position(leads) else {
        suite.report.check(
            "a stopped leader hands over",
            Err::<String, _>("no replica leads"),
        );
        return;
    };
    let stopped = Instant::now();
    replicas[index].process.stop();
    let released = holder(suite);
    let deadline = stopped + Duration::from_secs(LEASE_SECONDS * 2);
    let other = replicas
        .iter()
        .enumerate()
        .find(|(i, _)| *i != index)
        .map(|(_, r)| r);
    let taken = loop {
        if other.is_some_and(leads) {
            break Some(stopped.elapsed());
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // Released (no holder), or already taken by the other replica.
    let next = other.map(|r| format!("-{}", r.process.pid()));
    let handed = released.is_empty() || next.is_some_and(|pid| released.ends_with(&pid));
    let result = match taken {
        Some(after) if handed => {
            suite.report.figure(&format!(
                "a leader stopped with SIGTERM released the Lease; the next took it after {:.1} s",
                after.as_secs_f64()
            ));
            Ok(String::new())
        }
        other => Err(format!(
            "holder right after SIGTERM: {released:?}; taken over: {other:?}"
        )),
    };
    suite.report.check(
        "a leader stopped with SIGTERM releases the Lease and the last replica takes it",
        result,
    );
}

fn squash_message(status: &Value) -> String {
    condition(status, "Ready")["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}
