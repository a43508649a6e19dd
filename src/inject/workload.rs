//! Injection of one Kubernetes object as written (JSON): a Pod, or a
//! workload whose pod template asks for a model. Shared by `inject` (the
//! CLI, which prints the object) and the webhook's `/validate` (which warns
//! when a workload is applied, since it sees only the pods a controller
//! creates from it later).

use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use serde::Deserialize;
use serde_json::Value;

use super::{InjectError, Injector, MODEL_VOLUME, Outcome, PodLike};
use crate::MODEL_ANNOTATION;
use crate::field_error::field_error_under;
use crate::lookup::ModelLookup;

/// Where a kind keeps its pod template, as a JSON pointer (`""` for a Pod itself).
pub fn pod_template_path(api_version: &str, kind: &str) -> Option<&'static str> {
    match (api_version, kind) {
        ("v1", "Pod") => Some(""),
        ("v1", "PodTemplate") => Some("/template"),
        ("v1", "ReplicationController") => Some("/spec/template"),
        ("apps/v1", "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet") => {
            Some("/spec/template")
        }
        ("batch/v1", "Job") => Some("/spec/template"),
        ("batch/v1", "CronJob") => Some("/spec/jobTemplate/spec/template"),
        _ => None,
    }
}

/// What injecting one object came to.
#[derive(Debug, Default)]
pub struct ObjectInjection {
    /// Whether its pod or pod template was injected.
    pub injected: bool,
    /// Advice that does not stop injection, each without the object's name.
    pub warnings: Vec<String>,
    /// Why it asked for injection and could not be injected.
    pub error: Option<ObjectError>,
}

/// Why an object that asked for injection could not be injected.
#[derive(Debug, Clone, PartialEq)]
pub enum ObjectError {
    /// The pod (template) does not decode as one.
    InvalidPod {
        /// `the pod`, or `the pod template at spec.template`.
        what: String,
        /// `Pod` or `PodTemplateSpec`.
        type_name: &'static str,
        /// The field from the object's root, its value and the type wanted.
        message: String,
    },
    /// Injection refused it.
    Inject(Box<InjectError>),
}

impl std::fmt::Display for ObjectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ObjectError::InvalidPod {
                what,
                type_name,
                message,
            } => write!(
                f,
                "{message}; {what} does not decode as a v1 {type_name}, so it cannot be injected: give that field a value of the type named"
            ),
            ObjectError::Inject(error) => error.fmt(f),
        }
    }
}

/// Injects, in place, the pod at `path` of `value` (a [`pod_template_path`])
/// if it asks for a model, applying the core's patch to the JSON as written
/// so fields the typed API does not know survive. Also warns about opt-in
/// mistakes, an annotation on the workload's own metadata, and several
/// replicas sharing a PersistentVolumeClaim model store.
pub fn inject_object<L: ModelLookup + ?Sized>(
    value: &mut Value,
    path: &str,
    namespace: &str,
    lookup: &L,
    injector: &Injector,
) -> ObjectInjection {
    let mut out = ObjectInjection::default();
    let dotted = path.trim_start_matches('/').replace('/', ".");
    if !path.is_empty() && has_model_annotation(value.get("metadata")) {
        out.warnings.push(format!(
            "its own metadata carries {MODEL_ANNOTATION}, which does not inject; put it on the pod template ({dotted}.metadata.annotations)"
        ));
    }
    let kind = value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let replicas = workload_replicas(&kind, value);
    let Some(pod_value) = value.pointer_mut(path) else {
        return out;
    };
    let metadata_at = if dotted.is_empty() {
        "metadata".to_owned()
    } else {
        format!("{dotted}.metadata")
    };
    let string_map = |key: &str| {
        pod_value
            .get("metadata")
            .and_then(|m| m.get(key))
            .and_then(|m| serde_json::from_value(m.clone()).ok())
    };
    let (annotations, labels) = (string_map("annotations"), string_map("labels"));
    out.warnings.extend(super::opt_in_mistakes(
        annotations.as_ref(),
        labels.as_ref(),
        &metadata_at,
    ));
    if !has_model_annotation(pod_value.get("metadata")) {
        return out;
    }
    let (result, type_name) = if path.is_empty() {
        let result = inject_typed::<Pod, L>(pod_value, "", namespace, lookup, injector);
        (result, "Pod")
    } else {
        let result =
            inject_typed::<PodTemplateSpec, L>(pod_value, &dotted, namespace, lookup, injector);
        (result, "PodTemplateSpec")
    };
    match result {
        Ok(Some(warnings)) => {
            out.injected = true;
            out.warnings.extend(warnings);
            if let (Some(claim), Some(replicas)) = (model_store_claim(pod_value), replicas) {
                out.warnings.push(format!(
                    "its {replicas} share the model store, PersistentVolumeClaim {claim:?}: with ReadWriteOnce, pods on other nodes cannot mount it (Multi-Attach error); with ReadWriteMany, every pod's llm-pull writes the same blob directory at once; give each pod its own store (the default emptyDir, or a StatefulSet's volumeClaimTemplates with a per-pod claim) or run one replica"
                ));
            }
        }
        Ok(None) => {}
        Err(TypedError::Invalid(message)) => {
            out.error = Some(ObjectError::InvalidPod {
                what: if dotted.is_empty() {
                    "the pod".to_owned()
                } else {
                    format!("the pod template at {dotted}")
                },
                type_name,
                message,
            });
        }
        Err(TypedError::Inject(error)) => out.error = Some(ObjectError::Inject(Box::new(error))),
    }
    out
}

/// Whether a metadata object carries the opt-in annotation.
pub fn has_model_annotation(metadata: Option<&Value>) -> bool {
    metadata
        .and_then(|m| m.get("annotations"))
        .and_then(|a| a.get(MODEL_ANNOTATION))
        .is_some()
}

/// How many pods a workload runs at once, when that can be more than one:
/// `spec.replicas` (Deployment, ReplicaSet, StatefulSet; absent is 1),
/// `spec.parallelism` (Job), every node (DaemonSet).
fn workload_replicas(kind: &str, value: &Value) -> Option<String> {
    let count = |pointer: &str| value.pointer(pointer).and_then(Value::as_i64).unwrap_or(1);
    let n = match kind {
        "Deployment" | "ReplicaSet" | "StatefulSet" => count("/spec/replicas"),
        "Job" => count("/spec/parallelism"),
        "CronJob" => count("/spec/jobTemplate/spec/parallelism"),
        "DaemonSet" => return Some("pods (one per node)".to_owned()),
        _ => 1,
    };
    (n > 1).then(|| format!("{n} replicas"))
}

/// The claim of the injected model store, when it is a PersistentVolumeClaim.
fn model_store_claim(pod: &Value) -> Option<String> {
    pod.pointer("/spec/volumes")?
        .as_array()?
        .iter()
        .find(|v| v.get("name").and_then(Value::as_str) == Some(MODEL_VOLUME))?
        .pointer("/persistentVolumeClaim/claimName")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

enum TypedError {
    Invalid(String),
    Inject(InjectError),
}

/// Injects the pod at `pod_value` in place, by applying the core's patch to
/// the JSON as written (`at` is where the pod is in its object, for
/// messages). Returns the injection's warnings if it injected.
fn inject_typed<P, L>(
    pod_value: &mut Value,
    at: &str,
    namespace: &str,
    lookup: &L,
    injector: &Injector,
) -> Result<Option<Vec<String>>, TypedError>
where
    P: PodLike + for<'de> Deserialize<'de>,
    L: ModelLookup + ?Sized,
{
    let typed: P = serde_json::from_value(pod_value.clone()).map_err(|e| {
        TypedError::Invalid(field_error_under::<P>(pod_value, at).unwrap_or_else(|| e.to_string()))
    })?;
    match injector
        .inject(&typed, namespace, lookup)
        .map_err(TypedError::Inject)?
    {
        Outcome::NotRequested | Outcome::AlreadyInjected => Ok(None),
        Outcome::Injected(injection) => {
            injection
                .apply_json(pod_value)
                .map_err(TypedError::Inject)?;
            Ok(Some(injection.warnings))
        }
    }
}
