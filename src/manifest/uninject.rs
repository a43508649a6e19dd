//! `llm-injector uninject`: every injected pod and pod template of a stream
//! of documents back to what it was before injection, as far as its status
//! annotation records (see [`crate::inject::uninject`]).

use serde_json::Value;

use super::{SourceDocument, pod_template_path};
use crate::inject::uninject::{Uninjected, uninject_pod};

/// The result of uninjecting a stream of documents.
#[derive(Debug, Default)]
pub struct Uninjection {
    /// Every document, uninjected where it was injected, in input order.
    pub documents: Vec<Value>,
    /// How many pods or pod templates were uninjected.
    pub uninjected: usize,
    /// The objects that could not be uninjected (left as they were).
    pub errors: Vec<String>,
}

/// Uninjects every injected pod and pod template.
pub fn uninject_documents(documents: &[SourceDocument], default_namespace: &str) -> Uninjection {
    let mut out = Uninjection::default();
    for doc in documents {
        let value = uninject_document(doc, default_namespace, &mut out);
        out.documents.push(value);
    }
    out
}

fn uninject_document(
    doc: &SourceDocument,
    default_namespace: &str,
    out: &mut Uninjection,
) -> Value {
    let mut value = doc.value.clone();
    let text = |value: &Value, pointer: &str| {
        value
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let (api_version, kind) = (text(&value, "/apiVersion"), text(&value, "/kind"));
    if kind == "List" {
        if let Some(items) = value.get_mut("items").and_then(Value::as_array_mut) {
            for (index, item) in items.iter_mut().enumerate() {
                *item = uninject_document(&doc.item(index, item.clone()), default_namespace, out);
            }
        }
        return value;
    }
    let Some(path) = pod_template_path(&api_version, &kind) else {
        return value;
    };
    let namespace = Some(text(&value, "/metadata/namespace"))
        .filter(|ns| !ns.is_empty())
        .unwrap_or_else(|| default_namespace.to_owned());
    let name = Some(text(&value, "/metadata/name"))
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "<unnamed>".to_owned());
    let Some(pod) = value.pointer_mut(path) else {
        return value;
    };
    match uninject_pod(pod) {
        Ok(Uninjected::Removed { .. }) => out.uninjected += 1,
        Ok(Uninjected::NotInjected) => {}
        Err(error) => out.errors.push(format!(
            "{}: {kind} {namespace}/{name}: {error}",
            doc.origin()
        )),
    }
    value
}
