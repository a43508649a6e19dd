//! AdmissionReview in, AdmissionReview out: decoding, the decision for pods,
//! and encoding, with the `kube::core::admission` types. Synchronous and pure:
//! the HTTP layer only moves bytes.

use k8s_openapi::api::core::v1::Pod;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use std::sync::Arc;

use serde::Serialize;
use thiserror::Error;

use crate::MODEL_ANNOTATION;
use crate::crd::{LLMEngine, LLMModel};
use crate::inject::{Injector, Outcome, PodPatch};
use crate::lookup::ModelLookup;

/// The only AdmissionReview version served.
pub const REVIEW_API_VERSION: &str = "admission.k8s.io/v1";

/// A body that cannot be answered with an AdmissionReview: HTTP 400.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum BadReview {
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    #[error("the body is not an AdmissionReview: {0}")]
    NotReview(String),
    #[error("apiVersion {0:?} is not served; only admission.k8s.io/v1 AdmissionReviews are")]
    WrongVersion(String),
    #[error("kind {0:?} is not served; only admission.k8s.io/v1 AdmissionReviews are")]
    WrongKind(String),
    #[error("the AdmissionReview has no request")]
    NoRequest,
    #[error("the AdmissionReview request has an empty uid")]
    NoUid,
}

impl BadReview {
    /// A short, stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            BadReview::NotJson(_) => "not_json",
            BadReview::NotReview(_) => "not_review",
            BadReview::WrongVersion(_) => "wrong_version",
            BadReview::WrongKind(_) => "wrong_kind",
            BadReview::NoRequest => "no_request",
            BadReview::NoUid => "no_uid",
        }
    }
}

/// The one decision type; [`Decision::into_body`] is the only place it
/// becomes an AdmissionResponse.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Allowed unchanged.
    Allow { warnings: Vec<String> },
    /// Allowed with a JSON Patch.
    Patch {
        patch: Arc<PodPatch>,
        warnings: Vec<String>,
    },
    /// Denied, with a message for the user.
    Deny { message: String },
}

impl Verdict {
    /// `allowed`, `patched` or `denied`, for metrics and logs.
    pub fn outcome(&self) -> &'static str {
        match self {
            Verdict::Allow { .. } => "allowed",
            Verdict::Patch { .. } => "patched",
            Verdict::Deny { .. } => "denied",
        }
    }
}

/// What a review was about, for the tracing span and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReviewFacts {
    pub uid: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub operation: &'static str,
    pub dry_run: bool,
}

/// A decided review, ready to encode.
#[derive(Debug)]
pub struct Decision {
    pub facts: ReviewFacts,
    pub verdict: Verdict,
    response: AdmissionResponse,
}

impl Decision {
    fn new<T: kube::Resource>(
        req: &AdmissionRequest<T>,
        facts: ReviewFacts,
        verdict: Verdict,
    ) -> Self {
        Decision {
            facts,
            verdict,
            response: AdmissionResponse::from(req),
        }
    }

    /// The response body: an `admission.k8s.io/v1` AdmissionReview whose
    /// `patch` is the documented base64 string. kube-core's own
    /// `AdmissionResponse` serialises the patch as an array of byte values
    /// (kube-rs#1781), more than twice the size, so the patch and its
    /// `patchType` are written beside the flattened response instead.
    ///
    /// An error (a patch or response that does not serialise) is the
    /// caller's to answer as a server error: never a pod allowed uninjected.
    pub fn into_body(self) -> Result<Vec<u8>, EncodeError> {
        let mut response = self.response;
        let mut patch = None;
        match &self.verdict {
            Verdict::Allow { warnings } | Verdict::Patch { warnings, .. } => {
                response.warnings = (!warnings.is_empty()).then(|| warnings.clone());
            }
            Verdict::Deny { message } => response = response.deny(message),
        }
        if let Verdict::Patch {
            patch: pod_patch, ..
        } = &self.verdict
            && !pod_patch.operations().is_empty()
        {
            let value = pod_patch
                .admission_value()
                .map_err(|e| EncodeError(format!("the patch: {e}")))?;
            patch = Some(value);
        }
        let out = ReviewOut {
            api_version: REVIEW_API_VERSION,
            kind: "AdmissionReview",
            response: ResponseOut {
                response: &response,
                patch_type: patch.map(|_| "JSONPatch"),
                patch,
            },
        };
        serde_json::to_vec(&out).map_err(|e| EncodeError(format!("the response: {e}")))
    }
}

/// A decided review that cannot be encoded (answered with HTTP 500).
#[derive(Debug, Error)]
#[error("the AdmissionReview answer cannot be encoded: {0}")]
pub struct EncodeError(String);

/// The review as the apiserver reads it: kube-core's response, flattened,
/// with `patchType` and `patch` (base64) beside it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReviewOut<'a> {
    api_version: &'a str,
    kind: &'a str,
    response: ResponseOut<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResponseOut<'a> {
    #[serde(flatten)]
    response: &'a AdmissionResponse,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch_type: Option<&'a str>,
    /// The base64 string, serialised once per patch.
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<&'a serde_json::value::RawValue>,
}

fn operation_name(op: &Operation) -> &'static str {
    match op {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
        Operation::Connect => "CONNECT",
    }
}

fn facts<T: kube::Resource>(req: &AdmissionRequest<T>, fallback_name: Option<&str>) -> ReviewFacts {
    ReviewFacts {
        uid: req.uid.clone(),
        kind: req.kind.kind.clone(),
        namespace: req.namespace.clone().unwrap_or_default(),
        name: if req.name.is_empty() {
            fallback_name.unwrap_or_default().to_owned()
        } else {
            req.name.clone()
        },
        operation: operation_name(&req.operation),
        dry_run: req.dry_run,
    }
}

fn check_review<T: kube::Resource>(
    review: AdmissionReview<T>,
) -> Result<AdmissionRequest<T>, BadReview> {
    if review.types.api_version != REVIEW_API_VERSION {
        return Err(BadReview::WrongVersion(review.types.api_version));
    }
    if review.types.kind != "AdmissionReview" {
        return Err(BadReview::WrongKind(review.types.kind));
    }
    let request: AdmissionRequest<T> = review.try_into().map_err(|_| BadReview::NoRequest)?;
    if request.uid.is_empty() {
        return Err(BadReview::NoUid);
    }
    Ok(request)
}

/// Decides a review sent to `/mutate`: injects pods that ask for it on CREATE.
pub fn mutate<L: ModelLookup + ?Sized>(
    body: &[u8],
    lookup: &L,
    injector: &Injector,
) -> Result<Decision, BadReview> {
    if let Ok(review) = serde_json::from_slice::<AdmissionReview<Pod>>(body) {
        let request = check_review(review)?;
        // An object without apiVersion and kind decodes as a Pod whatever it
        // is: the request says what it is.
        if is_core_v1(&request.kind, "Pod") {
            return Ok(mutate_pod(request, lookup, injector));
        }
    }
    // Not a pod review, or a pod that does not decode: answer it anyway.
    let review: AdmissionReview<DynamicObject> = decode_generic(body, || {
        // The error of the typed decode, for a body that is not JSON.
        serde_json::from_slice::<AdmissionReview<Pod>>(body)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    })?;
    let request = check_review(review)?;
    Ok(mutate_other(&request, body))
}

fn is_core_v1(kind: &kube::core::GroupVersionKind, name: &str) -> bool {
    kind.group.is_empty() && kind.version == "v1" && kind.kind == name
}

fn decode_generic<T: kube::Resource + for<'de> serde::Deserialize<'de>>(
    body: &[u8],
    typed_error: impl FnOnce() -> String,
) -> Result<AdmissionReview<T>, BadReview> {
    match serde_json::from_slice::<AdmissionReview<T>>(body) {
        Ok(review) => Ok(review),
        Err(_) if serde_json::from_slice::<serde::de::IgnoredAny>(body).is_err() => {
            Err(BadReview::NotJson(typed_error()))
        }
        Err(e) => Err(BadReview::NotReview(e.to_string())),
    }
}

fn mutate_pod<L: ModelLookup + ?Sized>(
    request: AdmissionRequest<Pod>,
    lookup: &L,
    injector: &Injector,
) -> Decision {
    let pod = request.object.as_ref();
    let generated = pod
        .and_then(|p| p.metadata.generate_name.as_deref())
        .map(|g| format!("{g}*"));
    let facts = facts(&request, generated.as_deref());
    let verdict = match (&request.operation, pod) {
        (Operation::Create, Some(pod)) => {
            // The namespace of a pod being created is the request's: the
            // object often has none.
            let namespace = request
                .namespace
                .as_deref()
                .or(pod.metadata.namespace.as_deref())
                .unwrap_or("default");
            match injector.inject(pod, namespace, lookup) {
                Ok(Outcome::Injected(injection)) => {
                    // As `inject` warns: opt-in mistakes first (a typo'd key
                    // beside the right one), then the injection's own.
                    let mut warnings = crate::inject::opt_in_mistakes(
                        pod.metadata.annotations.as_ref(),
                        pod.metadata.labels.as_ref(),
                        "metadata",
                    );
                    warnings.extend(injection.warnings);
                    warnings.extend(node_warnings(pod, namespace, lookup));
                    Verdict::Patch {
                        warnings,
                        patch: injection.patch,
                    }
                }
                Ok(Outcome::NotRequested | Outcome::AlreadyInjected) => Verdict::Allow {
                    warnings: Vec::new(),
                },
                Err(error) => Verdict::Deny {
                    message: crate::inject::pod_denial(
                        namespace,
                        display_name(&facts.name),
                        &error,
                    ),
                },
            }
        }
        // Pods are injected when created; other operations pass untouched.
        _ => Verdict::Allow {
            warnings: Vec::new(),
        },
    };
    Decision::new(&request, facts, verdict)
}

/// Advice on the cluster's Nodes for the model an injected pod asks for,
/// when the lookup knows the Nodes (the cluster catalog's Node cache).
fn node_warnings<L: ModelLookup + ?Sized>(pod: &Pod, namespace: &str, lookup: &L) -> Vec<String> {
    let Some(nodes) = lookup.nodes() else {
        return Vec::new();
    };
    let model = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(crate::MODEL_ANNOTATION))
        .and_then(|name| lookup.model(namespace, name));
    let engine = model
        .as_ref()
        .and_then(|m| lookup.engine(namespace, &m.spec.engine_ref.name));
    match (model, engine) {
        (Some(model), Some(engine)) => nodes
            .advice(&model, &engine, crate::validate::node_advice)
            .to_vec(),
        _ => Vec::new(),
    }
}

fn display_name(name: &str) -> &str {
    if name.is_empty() { "<unnamed>" } else { name }
}

/// A review of something that is not a Pod reached `/mutate` (allow it
/// untouched, but say so, since the webhook configuration is likely wrong), or
/// of a pod that does not decode as a v1 Pod (deny it if it asked for
/// injection, naming the field; allow it untouched if it did not).
fn mutate_other(request: &AdmissionRequest<DynamicObject>, body: &[u8]) -> Decision {
    let facts = facts(request, None);
    let asked = request
        .object
        .as_ref()
        .and_then(|o| o.metadata.annotations.as_ref())
        .is_some_and(|a| a.contains_key(MODEL_ANNOTATION));
    let verdict = match (is_core_v1(&request.kind, "Pod"), asked) {
        (true, true) => {
            let why =
                crate::field_error::field_error_in::<AdmissionReview<Pod>>(body, "request.object.")
                    .unwrap_or_else(|| "it does not decode".to_owned());
            Verdict::Deny {
                message: format!(
                    "llm-injector: pod {}/{}: {why}; the object does not decode as a v1 Pod, so it cannot be injected: fix that field",
                    facts.namespace,
                    display_name(&facts.name)
                ),
            }
        }
        (true, false) => Verdict::Allow {
            warnings: Vec::new(),
        },
        (false, _) => Verdict::Allow {
            warnings: vec![format!(
                "llm-injector mutates only pods; {} {} was allowed unchanged (check the webhook's rules)",
                request.kind.kind,
                display_name(&facts.name)
            )],
        },
    };
    Decision::new(request, facts, verdict)
}

/// Decides a review sent to `/validate`: LLMEngine and LLMModel changes are
/// checked with the rules of [`crate::validate`]; errors deny, warnings are
/// returned as admission warnings. Pods and workloads are only advised
/// (`advise_workload`).
pub fn validate<L: ModelLookup + ?Sized>(
    body: &[u8],
    lookup: &L,
    injector: &Injector,
) -> Result<Decision, BadReview> {
    let review: AdmissionReview<DynamicObject> = match serde_json::from_slice(body) {
        Ok(review) => review,
        Err(error) if serde_json::from_slice::<serde::de::IgnoredAny>(body).is_err() => {
            return Err(BadReview::NotJson(error.to_string()));
        }
        Err(error) => return Err(BadReview::NotReview(error.to_string())),
    };
    let request = check_review(review)?;
    let facts = facts(&request, None);
    let namespace = facts.namespace.clone();
    let kind = request.kind.kind.as_str();
    let operation = &request.operation;
    // Ours by group and version, not by the kind's name alone: another
    // group's `LLMModel` is not checked with these rules.
    let ours =
        request.kind.group == crate::crd::GROUP && request.kind.version == crate::crd::VERSION;
    let ours_kind = if ours { kind } else { "" };
    let report = match (ours_kind, operation) {
        ("LLMModel", Operation::Create | Operation::Update) => {
            typed::<LLMModel>(request.object.as_ref(), kind)
                .map(|model| crate::validate::validate_model(&model, &namespace, lookup))
        }
        ("LLMEngine", Operation::Create) => typed::<LLMEngine>(request.object.as_ref(), kind)
            .map(|engine| crate::validate::validate_engine(&engine)),
        ("LLMEngine", Operation::Update) => typed::<LLMEngine>(request.old_object.as_ref(), kind)
            .and_then(|old| {
                typed::<LLMEngine>(request.object.as_ref(), kind).map(|new| {
                    crate::validate::validate_engine_update(&old, &new, &namespace, lookup)
                })
            }),
        ("LLMEngine", Operation::Delete) => typed::<LLMEngine>(request.old_object.as_ref(), kind)
            .map(|old| crate::validate::validate_engine_delete(&old, &namespace, lookup)),
        ("LLMModel" | "LLMEngine", _) => Ok(crate::validate::Report::default()),
        _ if let Some(path) = workload_template_path(&request.kind) => {
            let verdict = Verdict::Allow {
                warnings: advise_workload(&request, path, &namespace, lookup, injector),
            };
            return Ok(Decision::new(&request, facts, verdict));
        }
        _ => {
            let verdict = Verdict::Allow {
                warnings: vec![format!(
                    "llm-injector validates only LLMEngine and LLMModel, and advises on pods and workloads; {kind} {} was allowed unchecked (check the webhook's rules)",
                    display_name(&facts.name)
                )],
            };
            return Ok(Decision::new(&request, facts, verdict));
        }
    };
    let subject = format!("{kind} {namespace}/{}", display_name(&facts.name));
    let verdict = match report {
        Err(message) => Verdict::Deny {
            message: format!("llm-injector: {subject}: {message}"),
        },
        Ok(report) if !report.errors.is_empty() => Verdict::Deny {
            message: format!(
                "llm-injector: {subject}: {}",
                report
                    .errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        },
        Ok(report) => Verdict::Allow {
            warnings: report
                .warnings
                .iter()
                .map(|w| format!("{subject}: {w}"))
                .collect(),
        },
    };
    Ok(Decision::new(&request, facts, verdict))
}

/// Where the kind of a review keeps its pod template, if it is a Pod or a
/// workload kind `inject` handles.
fn workload_template_path(kind: &kube::core::GroupVersionKind) -> Option<&'static str> {
    let api_version = match kind.group.as_str() {
        "" => kind.version.clone(),
        group => format!("{group}/{}", kind.version),
    };
    crate::inject::workload::pod_template_path(&api_version, &kind.kind)
}

/// The warnings `llm-injector inject` gives for the same object, as
/// admission warnings (never a denial: the object is advice-only here).
///
/// A Pod that asks for a model is advised by `/mutate`; here it only gets the
/// opt-in mistakes (a typo'd key, a label), which mean nothing was asked for.
/// A workload is where a user can see advice at all: the webhook injects the
/// pods a controller creates from it later, and their warnings reach no
/// kubectl. So the workload's template is injected here as `inject` would,
/// and what would refuse its pods becomes a warning naming the fix.
fn advise_workload<L: ModelLookup + ?Sized>(
    request: &AdmissionRequest<DynamicObject>,
    path: &str,
    namespace: &str,
    lookup: &L,
    injector: &Injector,
) -> Vec<String> {
    let Some(given) = request.object.as_ref() else {
        return Vec::new();
    };
    if path.is_empty() {
        return crate::inject::opt_in_mistakes(
            given.metadata.annotations.as_ref(),
            given.metadata.labels.as_ref(),
            "metadata",
        );
    }
    let Ok(mut object) = serde_json::to_value(given) else {
        return Vec::new();
    };
    // The kind decides how many replicas share a model store; the object
    // may come without it.
    object["kind"] = serde_json::Value::from(request.kind.kind.as_str());
    let result =
        crate::inject::workload::inject_object(&mut object, path, namespace, lookup, injector);
    let mut warnings = result.warnings;
    if let Some(error) = result.error {
        warnings.push(format!("the pods it creates will be refused: {error}"));
    }
    warnings
}

/// The typed object of a review, or why it does not decode.
fn typed<T: serde::de::DeserializeOwned>(
    object: Option<&DynamicObject>,
    kind: &str,
) -> Result<T, String> {
    let object = object.ok_or_else(|| format!("the review carries no {kind} object"))?;
    let value = serde_json::to_value(object).map_err(|e| e.to_string())?;
    serde_json::from_value(value.clone()).map_err(|e| {
        let why = crate::field_error::field_error::<T>(&value).unwrap_or_else(|| e.to_string());
        format!("the object does not decode as a {kind}: {why}")
    })
}
