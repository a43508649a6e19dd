//! Kubernetes YAML in and out, for `llm-injector inject`: multi-document
//! streams, the pod templates of workload kinds, and injection applied as the
//! webhook would apply it (the core's JSON Patch on the object as written, so
//! fields the typed API does not know survive).

use serde_json::Value;
use thiserror::Error;

use crate::MODEL_ANNOTATION;
use crate::inject::Injector;
pub use crate::inject::workload::ObjectError;
pub use crate::inject::workload::pod_template_path;
use crate::inject::workload::{has_model_annotation, inject_object};
use crate::lookup::ModelLookup;
pub use crate::yaml::{
    MalformedYaml, SourceDocument, SourceFile, append_stream, flatten_lists, read_documents,
    yaml_files,
};

mod explain;
mod uninject;
mod validate;
pub use explain::explain_documents;
pub use uninject::{Uninjection, uninject_documents};
pub use validate::{DocumentsReport, Finding, Severity, validate_documents, validate_documents_on};

/// Why a manifest could not be read or injected.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum ManifestError {
    /// The YAML does not parse.
    #[error(transparent)]
    Yaml(#[from] MalformedYaml),
    /// A pod (template) asked for injection and it cannot be done: it does
    /// not decode as one, or injection refuses it.
    #[error("{origin}: {object}: {error}")]
    Object {
        origin: String,
        object: String,
        error: ObjectError,
    },
}

/// The result of injecting a stream of documents.
#[derive(Debug, Default)]
pub struct Injection {
    /// Every document, injected where asked, in input order.
    pub documents: Vec<Value>,
    /// How many pods or pod templates were injected.
    pub injected: usize,
    /// Advice that does not stop the run (for example an annotation in the wrong place).
    pub warnings: Vec<String>,
    /// Every document that could not be injected.
    pub errors: Vec<ManifestError>,
}

/// Injects every pod and pod template that asks for it. Objects without a
/// namespace use `default_namespace`. Errors are collected, not fatal, so one
/// run reports all of them.
pub fn inject_documents(
    documents: Vec<SourceDocument>,
    default_namespace: &str,
    lookup: &impl ModelLookup,
    injector: &Injector,
) -> Injection {
    let mut out = Injection::default();
    for doc in documents {
        let value = inject_document(&doc, default_namespace, lookup, injector, &mut out);
        out.documents.push(value);
    }
    out
}

fn inject_document(
    doc: &SourceDocument,
    default_namespace: &str,
    lookup: &impl ModelLookup,
    injector: &Injector,
    out: &mut Injection,
) -> Value {
    let mut value = doc.value.clone();
    let text = |pointer: &str| {
        value
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let (api_version, kind) = (text("/apiVersion"), text("/kind"));
    if kind == "List" {
        if let Some(items) = value.get_mut("items").and_then(Value::as_array_mut) {
            for (index, item) in items.iter_mut().enumerate() {
                *item = inject_document(
                    &doc.item(index, item.clone()),
                    default_namespace,
                    lookup,
                    injector,
                    out,
                );
            }
        }
        return value;
    }
    let Some(path) = pod_template_path(&api_version, &kind) else {
        let mut requests = Vec::new();
        find_model_annotations(&value, &mut String::new(), &mut requests);
        for at in requests {
            out.warnings.push(format!(
                "{}: {api_version} {kind} {} carries {MODEL_ANNOTATION} at {at}, but `inject` does not handle {api_version} {kind} and leaves it as written; in a cluster the webhook injects the pods created from it if they carry the annotation (it injects pods, whatever made them)",
                doc.origin(),
                value.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("<unnamed>"),
            ));
        }
        return value;
    };
    let namespace = value
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .filter(|ns| !ns.is_empty())
        .unwrap_or(default_namespace)
        .to_owned();
    let object = format!(
        "{kind} {namespace}/{}",
        value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("<unnamed>")
    );
    let result = inject_object(&mut value, path, &namespace, lookup, injector);
    if result.injected {
        out.injected += 1;
    }
    out.warnings.extend(
        result
            .warnings
            .into_iter()
            .map(|w| format!("{}: {object}: {w}", doc.origin())),
    );
    if let Some(error) = result.error {
        out.errors.push(ManifestError::Object {
            origin: doc.origin(),
            object,
            error,
        });
    }
    value
}

/// The paths (`spec.template.metadata.annotations`) of every
/// `metadata.annotations` in `value` that names a model.
fn find_model_annotations(value: &Value, path: &mut String, found: &mut Vec<String>) {
    let Value::Object(map) = value else {
        return;
    };
    if has_model_annotation(map.get("metadata")) {
        let at = if path.is_empty() {
            String::new()
        } else {
            format!("{path}.")
        };
        found.push(format!("{at}metadata.annotations"));
    }
    for (key, child) in map {
        if key == "metadata" {
            continue;
        }
        let before = path.len();
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(key);
        find_model_annotations(child, path, found);
        path.truncate(before);
    }
}
