//! AdmissionReview in, AdmissionReview out: decoding, the decision for pods,
//! and encoding, with the `kube::core::admission` types. Synchronous and pure:
//! the HTTP layer only moves bytes.

use base64::Engine as _;
use k8s_openapi::api::core::v1::Pod;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use serde::Serialize;
use thiserror::Error;

use crate::MODEL_ANNOTATION;
use crate::catalog::ModelLookup;
use crate::crd::{LLMEngine, LLMModel};
use crate::inject::{InjectOptions, Outcome, inject_requested};

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
            BadReview::NoRequest => "no_request",
            BadReview::NoUid => "no_uid",
        }
    }
}

/// The one decision type; [`Decision::into_response`] is the only place it
/// becomes an AdmissionResponse.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Allowed unchanged.
    Allow { warnings: Vec<String> },
    /// Allowed with a JSON Patch.
    Patch {
        patch: json_patch::Patch,
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
    /// `patch` is the documented base64 string (kube-core would write an array
    /// of byte values, more than twice the size).
    pub fn into_body(self) -> Vec<u8> {
        let mut response = self.response;
        let mut patch_b64 = None;
        match self.verdict {
            Verdict::Allow { warnings } => {
                response.warnings = (!warnings.is_empty()).then_some(warnings);
            }
            Verdict::Patch { patch, warnings } => {
                response.warnings = (!warnings.is_empty()).then_some(warnings);
                if !patch.is_empty() {
                    // Serialising a Patch of JSON values cannot fail.
                    if let Ok(with_patch) = response.clone().with_patch(patch) {
                        response = with_patch;
                        patch_b64 = response
                            .patch
                            .take()
                            .map(|bytes| base64::engine::general_purpose::STANDARD.encode(bytes));
                    }
                }
            }
            Verdict::Deny { message } => response = response.deny(message),
        }
        encode_review(response.into_review(), patch_b64)
    }
}

/// The review as the apiserver reads it, with `response.patch` as a base64
/// string: kube-core's own response, flattened, plus that one field.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReviewOut<'a> {
    api_version: &'a str,
    kind: &'a str,
    response: ResponseOut<'a>,
}

#[derive(Serialize)]
struct ResponseOut<'a> {
    #[serde(flatten)]
    response: &'a AdmissionResponse,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<&'a str>,
}

fn encode_review(review: AdmissionReview<DynamicObject>, patch_b64: Option<String>) -> Vec<u8> {
    let Some(response) = review.response.as_ref() else {
        return serde_json::to_vec(&review).unwrap_or_default();
    };
    let out = ReviewOut {
        api_version: &review.types.api_version,
        kind: &review.types.kind,
        response: ResponseOut {
            response,
            patch: patch_b64.as_deref(),
        },
    };
    serde_json::to_vec(&out).unwrap_or_default()
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
    if review.types.api_version != REVIEW_API_VERSION || review.types.kind != "AdmissionReview" {
        return Err(BadReview::WrongVersion(format!(
            "{}/{}",
            review.types.api_version, review.types.kind
        )));
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
    options: &InjectOptions,
) -> Result<Decision, BadReview> {
    match serde_json::from_slice::<AdmissionReview<Pod>>(body) {
        Ok(review) => Ok(mutate_pod(check_review(review)?, lookup, options)),
        Err(pod_error) => {
            // Not a pod review: decode generically to answer it anyway.
            let review: AdmissionReview<DynamicObject> = decode_generic(body, pod_error)?;
            let request = check_review(review)?;
            Ok(mutate_other(&request))
        }
    }
}

fn decode_generic<T: kube::Resource + for<'de> serde::Deserialize<'de>>(
    body: &[u8],
    typed_error: serde_json::Error,
) -> Result<AdmissionReview<T>, BadReview> {
    match serde_json::from_slice::<AdmissionReview<T>>(body) {
        Ok(review) => Ok(review),
        Err(_) if serde_json::from_slice::<serde::de::IgnoredAny>(body).is_err() => {
            Err(BadReview::NotJson(typed_error.to_string()))
        }
        Err(e) => Err(BadReview::NotReview(e.to_string())),
    }
}

fn mutate_pod<L: ModelLookup + ?Sized>(
    request: AdmissionRequest<Pod>,
    lookup: &L,
    options: &InjectOptions,
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
            match inject_requested(pod, namespace, lookup, options) {
                Ok(Outcome::Injected(injected)) => Verdict::Patch {
                    patch: injected.patch,
                    warnings: Vec::new(),
                },
                Ok(Outcome::NotRequested | Outcome::AlreadyInjected) => Verdict::Allow {
                    warnings: Vec::new(),
                },
                Err(error) => Verdict::Deny {
                    message: format!(
                        "llm-injector: pod {namespace}/{}: {error}",
                        display_name(&facts.name)
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

fn display_name(name: &str) -> &str {
    if name.is_empty() { "<unnamed>" } else { name }
}

/// A review of something that is not a Pod reached `/mutate`: allow it
/// untouched, but say so, since the webhook configuration is likely wrong.
fn mutate_other(request: &AdmissionRequest<DynamicObject>) -> Decision {
    let facts = facts(request, None);
    let asked = request
        .object
        .as_ref()
        .and_then(|o| o.metadata.annotations.as_ref())
        .is_some_and(|a| a.contains_key(MODEL_ANNOTATION));
    let verdict = if request.kind.kind == "Pod" && asked {
        // A pod that asked for injection but does not decode as a Pod.
        Verdict::Deny {
            message: format!(
                "llm-injector: pod {}/{}: the object does not decode as a v1 Pod, so it cannot be injected",
                facts.namespace,
                display_name(&facts.name)
            ),
        }
    } else {
        Verdict::Allow {
            warnings: vec![format!(
                "llm-injector mutates only pods; {} {} was allowed unchanged (check the webhook's rules)",
                request.kind.kind,
                display_name(&facts.name)
            )],
        }
    };
    Decision::new(request, facts, verdict)
}

/// Decides a review sent to `/validate`: LLMEngine and LLMModel changes are
/// checked with the rules of [`crate::validate`]; errors deny, warnings are
/// returned as admission warnings.
pub fn validate<L: ModelLookup + ?Sized>(body: &[u8], lookup: &L) -> Result<Decision, BadReview> {
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
    let report = match (kind, operation) {
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
        _ => {
            let verdict = Verdict::Allow {
                warnings: vec![format!(
                    "llm-injector validates only LLMEngine and LLMModel; {kind} {} was allowed unchecked (check the webhook's rules)",
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

/// The typed object of a review, or why it does not decode.
fn typed<T: serde::de::DeserializeOwned>(
    object: Option<&DynamicObject>,
    kind: &str,
) -> Result<T, String> {
    let object = object.ok_or_else(|| format!("the review carries no {kind} object"))?;
    let value = serde_json::to_value(object).map_err(|e| e.to_string())?;
    serde_json::from_value(value)
        .map_err(|e| format!("the object does not decode as a {kind}: {e}"))
}
