//! `llm-injector explain`: why each pod or workload of some documents is
//! (or is not) injected, and what injection would add, in words. It runs
//! the same injection as `inject` on a copy and reads the result.

use serde_json::Value;

use crate::inject::Injector;
use crate::inject::workload::{has_model_annotation, inject_object, pod_template_path};
use crate::layout::ROUTER_CONTAINER;
use crate::lookup::ModelLookup;
use crate::yaml::{SourceDocument, flatten_lists};
use crate::{MODEL_ANNOTATION, STATUS_ANNOTATION};

/// The explanation of every document, one block each, in input order.
pub fn explain_documents<L: ModelLookup + ?Sized>(
    documents: &[SourceDocument],
    default_namespace: &str,
    lookup: &L,
    injector: &Injector,
) -> String {
    flatten_lists(documents)
        .iter()
        .map(|doc| explain_document(doc, default_namespace, lookup, injector))
        .collect::<Vec<_>>()
        .join("\n")
}

fn explain_document<L: ModelLookup + ?Sized>(
    doc: &SourceDocument,
    default_namespace: &str,
    lookup: &L,
    injector: &Injector,
) -> String {
    let value = &doc.value;
    let text = |pointer: &str| value.pointer(pointer).and_then(Value::as_str);
    let (api_version, kind) = (
        text("/apiVersion").unwrap_or_default(),
        text("/kind").unwrap_or_default(),
    );
    let namespace = text("/metadata/namespace").unwrap_or(default_namespace);
    let name = text("/metadata/name")
        .or(text("/metadata/generateName"))
        .unwrap_or("<unnamed>");
    let heading = format!("{} {kind} {namespace}/{name}", doc.origin());
    let Some(path) = pod_template_path(api_version, kind) else {
        return format!("{heading}: not a pod or a workload with a pod template: never injected\n");
    };
    let dotted = path.trim_start_matches('/').replace('/', ".");
    let metadata_at = if dotted.is_empty() {
        "metadata".to_owned()
    } else {
        format!("{dotted}.metadata")
    };
    let pod_metadata = value.pointer(path).and_then(|p| p.get("metadata"));
    let annotation = |key: &str| {
        pod_metadata
            .and_then(|m| m.get("annotations"))
            .and_then(|a| a.get(key))
            .and_then(Value::as_str)
    };
    let mut injected = value.clone();
    let outcome = inject_object(&mut injected, path, namespace, lookup, injector);
    let mut lines = Vec::new();
    if let Some(error) = &outcome.error {
        lines.push(format!("{heading}: refused"));
        if let Some(model) = annotation(MODEL_ANNOTATION) {
            lines.push(format!(
                "  asks for:  LLMModel {model:?} ({MODEL_ANNOTATION} on {metadata_at})"
            ));
        }
        lines.push(format!("  because:   {error}"));
    } else if outcome.injected {
        lines.push(format!("{heading}: injected"));
        let pod = injected.pointer(path).unwrap_or(&Value::Null);
        lines.extend(additions(
            value.pointer(path).unwrap_or(&Value::Null),
            pod,
            &metadata_at,
        ));
    } else if annotation(STATUS_ANNOTATION).is_some() && has_model_annotation(pod_metadata) {
        lines.push(format!(
            "{heading}: already injected ({STATUS_ANNOTATION} on {metadata_at} says what was added); left alone"
        ));
    } else {
        lines.push(format!(
            "{heading}: not selected: no {MODEL_ANNOTATION} annotation on {metadata_at}"
        ));
    }
    lines.extend(
        outcome
            .warnings
            .iter()
            .map(|warning| format!("  warning:   {warning}")),
    );
    lines.join("\n") + "\n"
}

/// What injection added to `before` to make `after`, read from the status
/// annotation and the containers.
fn additions(before: &Value, after: &Value, metadata_at: &str) -> Vec<String> {
    let status: Value = after
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(STATUS_ANNOTATION))
        .and_then(Value::as_str)
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or(Value::Null);
    let field = |key: &str| status.get(key).cloned().unwrap_or(Value::Null);
    let names = |key: &str| {
        field(key)
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut lines = vec![
        format!(
            "  asks for:  LLMModel {} ({MODEL_ANNOTATION} on {metadata_at})",
            field("model")
        ),
        format!(
            "  serves:    {} on LLMEngine {}: {} instance(s) x {} GPU(s), at {}",
            field("ollamaModel").as_str().unwrap_or_default(),
            field("engine"),
            field("instances"),
            field("gpusPerInstance"),
            field("endpoint").as_str().unwrap_or_default(),
        ),
        format!(
            "  adds:      init containers {} (the engines run as native sidecars); volumes {}",
            names("initContainers"),
            names("volumes")
        ),
    ];
    let containers = |pod: &Value, list: &str| -> Vec<Value> {
        pod.pointer(&format!("/spec/{list}"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    for container in containers(after, "initContainers") {
        let limits = container
            .pointer("/resources/limits")
            .and_then(Value::as_object)
            .map(|limits| {
                limits
                    .iter()
                    .filter(|(resource, _)| resource.contains('/'))
                    .map(|(resource, count)| format!("{resource} {}", count_text(count)))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        if !limits.is_empty() {
            lines.push(format!(
                "  devices:   {}: {}",
                container["name"].as_str().unwrap_or_default(),
                limits.join(", ")
            ));
        }
    }
    if let Some(router) = containers(after, "initContainers")
        .iter()
        .find(|c| c["name"] == ROUTER_CONTAINER)
    {
        lines.push(format!("  routes:    {}", router_summary(router)));
    }
    let before_env = |name: &str| -> Vec<String> {
        containers(before, "containers")
            .iter()
            .find(|c| c["name"] == name)
            .and_then(|c| c["env"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|e| e["name"].as_str().map(str::to_owned))
            .collect()
    };
    for container in containers(after, "containers") {
        let name = container["name"].as_str().unwrap_or_default();
        let had = before_env(name);
        let added: Vec<&str> = container["env"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["name"].as_str())
            .filter(|env| !had.iter().any(|h| h == env))
            .collect();
        if !added.is_empty() {
            lines.push(format!(
                "  env:       container {name}: {}",
                added.join(", ")
            ));
        }
    }
    lines
}

/// What the `llm-router` container does, from its arguments: where it
/// listens, the limits, the keep-alive floor and the affinity.
fn router_summary(router: &Value) -> String {
    let args: Vec<&str> = router["args"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    // `--flag value` or `--flag=value`.
    let flag = |name: &str| -> Option<&str> {
        args.iter().enumerate().find_map(|(i, arg)| {
            let rest = arg.strip_prefix(name)?;
            match rest.strip_prefix('=') {
                Some(value) => Some(value),
                None if rest.is_empty() => args.get(i + 1).copied(),
                None => None,
            }
        })
    };
    let listen = flag("--listen").unwrap_or_default();
    let mut parts = vec![if listen.starts_with("0.0.0.0:") {
        format!(
            "llm-router on {listen} (the pod's IP: container port llm-http, metrics at /metrics)"
        )
    } else {
        format!("llm-router on {listen}")
    }];
    let backends = args.iter().filter(|a| **a == "--backend").count();
    parts.push(format!("{backends} instance(s)"));
    match flag("--max-in-flight") {
        Some("0") | None => parts.push("no limit per instance".to_owned()),
        Some(n) => parts.push(format!(
            "at most {n} request(s) per instance, {} waiting",
            flag("--max-queue").unwrap_or("512")
        )),
    }
    if let Some(floor) = flag("--keep-alive-floor") {
        parts.push(format!("a shorter keep_alive raised to {floor}"));
    }
    if let Some(affinity) = flag("--affinity") {
        parts.push(format!("affinity {affinity}"));
    }
    parts.join(", ")
}

fn count_text(count: &Value) -> String {
    match count {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
