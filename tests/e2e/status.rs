//! The status controller of `serve` on the real control plane: an LLMModel
//! whose engine is missing says so, then resolves its shape once the engine
//! exists; an injected pod is counted, and patched Ready (as a kubelet
//! would) makes the model Ready, which `kubectl wait` sees; `kubectl get`
//! shows the columns.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::Suite;

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

pub fn check(suite: &mut Suite, namespace: &str) {
    let (model, engine) = ("status-model", "status-engine");
    let object = json!({
        "apiVersion": "llm.injector.dev/v1alpha1", "kind": "LLMModel",
        "metadata": {"name": model, "namespace": namespace},
        "spec": {"model": "qwen3:0.6b", "engineRef": {"name": engine}, "parallelism": {"data": 2}},
    });
    let created = suite.kubectl.with_object(&["create"], &object);
    let result = if created.success {
        wait_for(suite, namespace, model, |s| is(s, "EngineFound", "False")).and_then(|s| {
            let message = condition(&s, "EngineFound")["message"]
                .as_str()
                .unwrap_or_default();
            if message.contains("does not exist") && is(&s, "Valid", "Unknown") {
                Ok(message.to_owned())
            } else {
                Err(s.to_string())
            }
        })
    } else {
        Err(created.both())
    };
    suite.report.check(
        "an LLMModel whose LLMEngine is missing gets EngineFound=False and Valid=Unknown, with the fix",
        result,
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
    for object in [
        "pod/status-pod",
        &format!("llmmodel/{model}"),
        &format!("llmengine/{engine}"),
    ] {
        let _ = suite
            .kubectl
            .run(&["delete", object, "-n", namespace, "--wait=false"], None);
    }
}

fn squash_message(status: &Value) -> String {
    condition(status, "Ready")["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}
