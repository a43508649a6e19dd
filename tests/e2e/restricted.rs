//! Injected pods in a namespace as locked down as platform teams make them:
//! Pod Security "restricted" enforced, a LimitRange with only a per-container
//! `max` (which LimitRanger would hand as requests and limits to a container
//! that sets none) and a ResourceQuota on requests and limits (which refuses
//! a pod with a container that sets none). CPU, NVIDIA, AMD and
//! data-parallel pods whose own containers are restricted must be admitted,
//! and every `llm-*` container keep the requests and limits injection gave.

use serde_json::{Value, json};

use crate::Suite;

const NAMESPACE: &str = "llm-restricted";
/// The LimitRange's per-container max: what a container without its own
/// requests and limits would get.
const MAX_CPU: &str = "16";
const MAX_MEMORY: &str = "64Gi";

/// The LLMEngines and LLMModels of examples/catalog.
fn example_catalog(suite: &Suite) -> Vec<Value> {
    let mut objects = Vec::new();
    for file in ["engines.yaml", "models.yaml"] {
        let path = suite.root.join("examples/catalog").join(file);
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        for document in serde_yaml::Deserializer::from_str(&text) {
            if let Ok(value) = <Value as serde::Deserialize>::deserialize(document)
                && value.is_object()
            {
                objects.push(value);
            }
        }
    }
    objects
}

pub fn check(suite: &mut Suite) {
    let catalog = example_catalog(suite);
    let setup = [
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE, "labels": {
            "pod-security.kubernetes.io/enforce": "restricted",
            "pod-security.kubernetes.io/enforce-version": "latest"}}}),
        json!({"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "max-only", "namespace": NAMESPACE},
            "spec": {"limits": [{"type": "Container", "max": {"cpu": MAX_CPU, "memory": MAX_MEMORY}}]}}),
        json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "compute", "namespace": NAMESPACE},
            "spec": {"hard": {"requests.cpu": "1000", "requests.memory": "4Ti", "limits.cpu": "1000", "limits.memory": "4Ti"}}}),
    ];
    for object in &setup {
        let out = suite.kubectl.with_object(&["create"], object);
        if !out.success {
            suite.report.check(
                &format!("create {} {NAMESPACE}", object["kind"]),
                Err::<String, _>(out.both()),
            );
            return;
        }
    }
    for object in &catalog {
        let mut object = object.clone();
        object["metadata"]["namespace"] = json!(NAMESPACE);
        let out = suite.kubectl.with_object(&["create"], &object);
        if !out.success {
            suite.report.check(
                &format!(
                    "create {} {} in {NAMESPACE}",
                    object["kind"], object["metadata"]["name"]
                ),
                Err::<String, _>(out.both()),
            );
            return;
        }
    }
    if let Err(why) = crate::wait_for_catalog(suite) {
        suite.report.check(
            "serve sees the catalog of the restricted namespace",
            Err::<String, _>(why),
        );
        return;
    }
    for model in ["llama-cpu", "qwen-gpu1", "llama-amd", "qwen-2x2"] {
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("restricted-{model}"), "namespace": NAMESPACE,
                         "annotations": {"llm.injector.dev/model": model}},
            "spec": {
                "securityContext": {"runAsNonRoot": true, "runAsUser": 1000, "fsGroup": 65532,
                                    "supplementalGroups": [44, 110],
                                    "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [{"name": "app", "image": "busybox:1.36",
                    "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}},
                    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"},
                                  "limits": {"cpu": "100m", "memory": "64Mi"}}}]}});
        let stored = suite
            .kubectl
            .with_object(&["create", "-o", "json"], &pod)
            .json();
        let result = stored.and_then(|stored| kept_resources(&stored));
        suite.report.check(
            &format!("restricted + LimitRange max + ResourceQuota: {model} pod admitted, llm-* containers keep their own requests and limits"),
            result,
        );
    }
}

/// Every `llm-*` init container has cpu and memory requests and limits,
/// none of them the LimitRange's max.
fn kept_resources(pod: &Value) -> Result<String, String> {
    let mut seen = Vec::new();
    for container in pod["spec"]["initContainers"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let name = container["name"].as_str().unwrap_or_default();
        if !name.starts_with("llm-") {
            continue;
        }
        for kind in ["requests", "limits"] {
            for (resource, max) in [("cpu", MAX_CPU), ("memory", MAX_MEMORY)] {
                match container["resources"][kind][resource].as_str() {
                    None => return Err(format!("{name} has no {kind}.{resource}")),
                    Some(value) if value == max => {
                        return Err(format!(
                            "{name} got the LimitRange's max as {kind}.{resource}: {value}"
                        ));
                    }
                    Some(_) => {}
                }
            }
        }
        seen.push(format!(
            "{name} {}",
            crate::squash(&container["resources"].to_string())
        ));
    }
    if seen.is_empty() {
        return Err("no llm-* container".to_owned());
    }
    Ok(seen.join("\n"))
}
