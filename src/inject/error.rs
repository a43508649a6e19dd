use thiserror::Error;

use crate::validate::Violation;

/// Why a pod that asked for injection cannot be injected. Every message names
/// the object, the field, the value and the fix; the caller adds which pod.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum InjectError {
    /// The annotation is empty or is not a plain object name.
    #[error(
        "annotation {annotation}: {} is not an LLMModel name{why}; set it to the name of an LLMModel in namespace {namespace:?}",
        shown(value)
    )]
    InvalidModelName {
        annotation: &'static str,
        value: String,
        namespace: String,
        why: &'static str,
    },

    /// No LLMModel of that name in the pod's namespace.
    #[error(
        "LLMModel {name:?} (annotation llm.injector.dev/model) not found in namespace {namespace:?}; {}",
        available_hint(available, namespace)
    )]
    UnknownModel {
        name: String,
        namespace: String,
        available: Vec<String>,
    },

    /// The model names an engine that does not exist.
    #[error(
        "LLMModel {namespace}/{model}: spec.engineRef.name {engine:?} does not exist in namespace {namespace:?}; create the LLMEngine or point engineRef at an existing one"
    )]
    MissingEngine {
        namespace: String,
        model: String,
        engine: String,
    },

    /// The pod already has a container, volume or claim with a name the injector adds.
    #[error(
        "the pod already has {what} named {}, a name the injector adds for LLMModel {model:?}; rename it (names starting with llm- are reserved for injection)",
        shown(name)
    )]
    NameCollision {
        what: &'static str,
        name: String,
        model: String,
    },

    /// The LLMModel, or its LLMEngine, breaks a validation rule: the same
    /// rules the validating webhook enforces (`crate::validate`).
    #[error("{kind} {name:?}: {violation}")]
    Invalid {
        /// `LLMModel` or `LLMEngine`.
        kind: &'static str,
        name: String,
        violation: Violation,
    },

    /// A user container already uses a port an engine instance needs.
    #[error(
        "container {} declares port {port}, which {listener} of LLMModel {model:?} listens on (injected ports {first}..{last} on the pod's loopback); change the container's port or the engine's spec.port",
        shown(container)
    )]
    PortInUse {
        container: String,
        port: i32,
        listener: String,
        model: String,
        first: i32,
        last: i32,
    },

    /// The pod asks for a different RuntimeClass than the engine needs.
    #[error(
        "the pod sets spec.runtimeClassName {}, but LLMEngine {engine:?} needs accelerator.runtimeClassName {wanted:?}; remove the pod's runtimeClassName or use the same value",
        shown(pod)
    )]
    RuntimeClassConflict {
        pod: String,
        engine: String,
        wanted: String,
    },

    /// The pod sets the model label to another model's name.
    #[error(
        "the pod sets label {label} to {}, but it is injected with LLMModel {model:?}, whose name injection puts in that label; remove the label or set it to {model:?}",
        shown(value)
    )]
    LabelConflict {
        label: &'static str,
        value: String,
        model: String,
    },

    /// The object has no pod spec to inject into.
    #[error("the object has no pod spec (spec is missing); nothing to inject into")]
    NoPodSpec,

    /// The existing status annotation could not be produced (internal).
    #[error("could not serialise the injected pod: {0}")]
    Serialize(String),
}

/// How the webhook denies a pod, `name` being `<unnamed>` for a pod whose
/// name is generated (`generateName`: the name is made after mutating
/// admission).
pub fn pod_denial(namespace: &str, name: &str, error: &impl std::fmt::Display) -> String {
    format!("llm-injector: pod {namespace}/{name}: {error}")
}

/// Longest part of a value from the pod quoted in a message: the apiserver
/// calls mutating webhooks before it validates the object, so a field may be
/// megabytes long, and a message (and the log line) must not be.
pub(crate) const SHOWN_CHARS: usize = 80;

/// `value` quoted as by `{:?}`, cut after [`SHOWN_CHARS`] characters with its length.
pub(crate) fn shown(value: &str) -> String {
    match value.char_indices().nth(SHOWN_CHARS) {
        None => format!("{value:?}"),
        Some((cut, _)) => format!("{:?}... ({} bytes)", &value[..cut], value.len()),
    }
}

fn available_hint(available: &[String], namespace: &str) -> String {
    if available.is_empty() {
        format!(
            "there are no LLMModels in namespace {namespace:?}: create one, or fix the annotation"
        )
    } else {
        format!(
            "models in that namespace: {}; fix the annotation or create the model",
            available.join(", ")
        )
    }
}

impl InjectError {
    /// A short, stable label for metrics and logs.
    pub fn metric_label(&self) -> &'static str {
        match self {
            InjectError::InvalidModelName { .. } => "invalid_model_name",
            InjectError::UnknownModel { .. } => "unknown_model",
            InjectError::MissingEngine { .. } => "missing_engine",
            InjectError::NameCollision { .. } => "name_collision",
            InjectError::Invalid { violation, .. } => violation.rule.id(),
            InjectError::PortInUse { .. } => "port_in_use",
            InjectError::RuntimeClassConflict { .. } => "runtime_class_conflict",
            InjectError::LabelConflict { .. } => "label_conflict",
            InjectError::NoPodSpec => "no_pod_spec",
            InjectError::Serialize(_) => "internal",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::shown;

    #[test]
    fn shown_quotes_and_bounds_values() {
        for (value, expected) in [
            ("qwen", "\"qwen\"".to_owned()),
            ("", "\"\"".to_owned()),
            ("a\0b", "\"a\\0b\"".to_owned()),
            (&"é".repeat(80), format!("{:?}", "é".repeat(80))),
            (
                &"é".repeat(81),
                format!("{:?}... (162 bytes)", "é".repeat(80)),
            ),
        ] {
            assert_eq!(shown(value), expected, "{value:?}");
        }
        let huge = "a".repeat(3 << 20);
        assert!(shown(&huge).len() < 120);
        assert!(shown(&huge).ends_with("... (3145728 bytes)"));
    }
}
