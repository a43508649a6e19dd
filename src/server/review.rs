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
use crate::crd::{LLMEngine, LLMModel};
use crate::inject::{InjectOptions, PatchOutcome, inject_requested_patch};
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
        match self.verdict {
            Verdict::Allow { warnings } => {
                response.warnings = (!warnings.is_empty()).then_some(warnings);
            }
            Verdict::Patch {
                patch: operations,
                warnings,
            } => {
                response.warnings = (!warnings.is_empty()).then_some(warnings);
                if !operations.is_empty() {
                    let json = serde_json::to_vec(&operations)
                        .map_err(|e| EncodeError(format!("the patch: {e}")))?;
                    patch = Some(base64::engine::general_purpose::STANDARD.encode(json));
                }
            }
            Verdict::Deny { message } => response = response.deny(message),
        }
        let out = ReviewOut {
            api_version: REVIEW_API_VERSION,
            kind: "AdmissionReview",
            response: ResponseOut {
                response: &response,
                patch_type: patch.as_ref().map(|_| "JSONPatch"),
                patch: patch.as_deref(),
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
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<&'a str>,
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
    options: &InjectOptions,
) -> Result<Decision, BadReview> {
    // A LeanPod decodes exactly when a Pod does (see `lean`).
    if let Ok(review) = serde_json::from_slice::<AdmissionReview<lean::LeanPod>>(body) {
        let request = check_review(review)?;
        // An object without apiVersion and kind decodes as a Pod whatever it
        // is: the request says what it is.
        if is_core_v1(&request.kind, "Pod") {
            return Ok(mutate_pod(request, lookup, options));
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
    request: AdmissionRequest<lean::LeanPod>,
    lookup: &L,
    options: &InjectOptions,
) -> Decision {
    let pod = request.object.as_ref().map(|lean| &lean.0);
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
            match inject_requested_patch(pod, namespace, lookup, options) {
                Ok(PatchOutcome::Patched(patched)) => {
                    // As `inject` warns: opt-in mistakes first (a typo'd key
                    // beside the right one), then the injection's own.
                    let mut warnings = crate::inject::opt_in_mistakes(
                        pod.metadata.annotations.as_ref(),
                        pod.metadata.labels.as_ref(),
                        "metadata",
                    );
                    warnings.extend(patched.warnings);
                    Verdict::Patch {
                        warnings,
                        patch: patched.patch,
                    }
                }
                Ok(PatchOutcome::NotRequested | PatchOutcome::AlreadyInjected) => Verdict::Allow {
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
    options: &InjectOptions,
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
        _ if workload_template_path(&request.kind).is_some() => {
            let verdict = Verdict::Allow {
                warnings: advise_workload(&request, &namespace, lookup, options),
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
    namespace: &str,
    lookup: &L,
    options: &InjectOptions,
) -> Vec<String> {
    let Some(path) = workload_template_path(&request.kind) else {
        return Vec::new();
    };
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
        crate::inject::workload::inject_object(&mut object, path, namespace, lookup, options);
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

/// Pods for `/mutate`, decoded without keeping
/// `metadata.managedFields[*].fieldsV1`, the largest part of most pods and one
/// the review never reads (it is no part of the patch).
///
/// [`LeanPod`] decodes with `Pod`'s own `Deserialize` through a
/// `Deserializer` that forwards every call to serde_json's, except below
/// those paths: each `fieldsV1` value is still parsed and checked exactly as
/// `FieldsV1` (a `serde_json::Value`) would be, so a body decodes (or fails,
/// with the same error) exactly when it does as a `Pod`, but the value is not
/// built: the decoded `fieldsV1` is `null`.
mod lean {
    use std::fmt;

    use k8s_openapi::api::core::v1::Pod;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use serde::Deserialize;
    use serde::de::value::UnitDeserializer;
    use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

    /// A `Pod` whose managedFields entries have a `null` `fieldsV1`.
    #[derive(Clone, Debug)]
    pub struct LeanPod(pub Pod);

    impl k8s_openapi::Resource for LeanPod {
        const API_VERSION: &'static str = <Pod as k8s_openapi::Resource>::API_VERSION;
        const GROUP: &'static str = <Pod as k8s_openapi::Resource>::GROUP;
        const KIND: &'static str = <Pod as k8s_openapi::Resource>::KIND;
        const VERSION: &'static str = <Pod as k8s_openapi::Resource>::VERSION;
        const URL_PATH_SEGMENT: &'static str = <Pod as k8s_openapi::Resource>::URL_PATH_SEGMENT;
        type Scope = <Pod as k8s_openapi::Resource>::Scope;
    }

    impl k8s_openapi::Metadata for LeanPod {
        type Ty = ObjectMeta;
        fn metadata(&self) -> &ObjectMeta {
            &self.0.metadata
        }
        fn metadata_mut(&mut self) -> &mut ObjectMeta {
            &mut self.0.metadata
        }
    }

    impl<'de> Deserialize<'de> for LeanPod {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            Pod::deserialize(Lean {
                inner: deserializer,
                at: At::Pod,
            })
            .map(LeanPod)
        }
    }

    /// Where a [`Lean`] deserializer is on the path to `fieldsV1`.
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum At {
        /// The pod: its `metadata` is followed.
        Pod,
        /// `metadata`: its `managedFields` is followed.
        Meta,
        /// `metadata.managedFields`, an `Option<Vec<_>>`.
        ManagedFields,
        /// `metadata.managedFields` when not null: the list.
        ManagedFieldsList,
        /// One entry: its `fieldsV1` is followed.
        Entry,
        /// `fieldsV1`, an `Option<FieldsV1>`.
        FieldsV1,
        /// `fieldsV1` when not null: a newtype of a JSON value.
        FieldsV1Value,
    }

    impl At {
        /// The field followed in a struct, and where it leads.
        fn field(self) -> Option<(&'static str, At)> {
            match self {
                At::Pod => Some(("metadata", At::Meta)),
                At::Meta => Some(("managedFields", At::ManagedFields)),
                At::Entry => Some(("fieldsV1", At::FieldsV1)),
                _ => None,
            }
        }
    }

    macro_rules! forward {
        ($($method:ident($($arg:ident: $ty:ty),*);)*) => {
            $(fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, Self::Error> {
                self.inner.$method($($arg,)* visitor)
            })*
        };
    }

    /// serde_json's deserializer, with the calls on the path to `fieldsV1`
    /// wrapped.
    struct Lean<D> {
        inner: D,
        at: At,
    }

    impl<'de, D: Deserializer<'de>> Deserializer<'de> for Lean<D> {
        type Error = D::Error;

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            name: &'static str,
            fields: &'static [&'static str],
            visitor: V,
        ) -> Result<V::Value, Self::Error> {
            match self.at.field() {
                Some(followed) => {
                    self.inner
                        .deserialize_struct(name, fields, StructVisitor { visitor, followed })
                }
                None => self.inner.deserialize_struct(name, fields, visitor),
            }
        }

        fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
            let some = match self.at {
                At::ManagedFields => At::ManagedFieldsList,
                At::FieldsV1 => At::FieldsV1Value,
                // k8s-openapi reads a struct field into an Option, even a
                // required one (`metadata`): the struct is inside.
                At::Pod | At::Meta | At::Entry => self.at,
                At::ManagedFieldsList | At::FieldsV1Value => {
                    return self.inner.deserialize_option(visitor);
                }
            };
            self.inner
                .deserialize_option(OptionVisitor { visitor, some })
        }

        fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
            if self.at == At::ManagedFieldsList {
                self.inner.deserialize_seq(SeqVisitor { visitor })
            } else {
                self.inner.deserialize_seq(visitor)
            }
        }

        fn deserialize_newtype_struct<V: Visitor<'de>>(
            self,
            name: &'static str,
            visitor: V,
        ) -> Result<V::Value, Self::Error> {
            if self.at == At::FieldsV1Value {
                self.inner
                    .deserialize_newtype_struct(name, FieldsV1Visitor { visitor })
            } else {
                self.inner.deserialize_newtype_struct(name, visitor)
            }
        }

        fn is_human_readable(&self) -> bool {
            self.inner.is_human_readable()
        }

        forward! {
            deserialize_any(); deserialize_bool(); deserialize_i8(); deserialize_i16();
            deserialize_i32(); deserialize_i64(); deserialize_i128(); deserialize_u8();
            deserialize_u16(); deserialize_u32(); deserialize_u64(); deserialize_u128();
            deserialize_f32(); deserialize_f64(); deserialize_char(); deserialize_str();
            deserialize_string(); deserialize_bytes(); deserialize_byte_buf();
            deserialize_unit(); deserialize_unit_struct(name: &'static str);
            deserialize_tuple(len: usize);
            deserialize_tuple_struct(name: &'static str, len: usize);
            deserialize_map();
            deserialize_enum(name: &'static str, variants: &'static [&'static str]);
            deserialize_identifier(); deserialize_ignored_any();
        }
    }

    /// A struct on the path: its map is wrapped.
    struct StructVisitor<V> {
        visitor: V,
        followed: (&'static str, At),
    }

    impl<'de, V: Visitor<'de>> Visitor<'de> for StructVisitor<V> {
        type Value = V::Value;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            self.visitor.expecting(f)
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
            self.visitor.visit_map(StructMap {
                inner: map,
                followed: self.followed,
                matched: false,
            })
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
            self.visitor.visit_seq(seq)
        }
    }

    /// The entries of a struct on the path: the value of the followed key is
    /// wrapped.
    struct StructMap<A> {
        inner: A,
        followed: (&'static str, At),
        matched: bool,
    }

    impl<'de, A: MapAccess<'de>> MapAccess<'de> for StructMap<A> {
        type Error = A::Error;
        fn next_key_seed<K: DeserializeSeed<'de>>(
            &mut self,
            seed: K,
        ) -> Result<Option<K::Value>, A::Error> {
            self.matched = false;
            self.inner.next_key_seed(KeySeed {
                seed,
                name: self.followed.0,
                matched: &mut self.matched,
            })
        }
        fn next_value_seed<S: DeserializeSeed<'de>>(
            &mut self,
            seed: S,
        ) -> Result<S::Value, A::Error> {
            if std::mem::take(&mut self.matched) {
                self.inner.next_value_seed(At::seed(self.followed.1, seed))
            } else {
                self.inner.next_value_seed(seed)
            }
        }
        fn size_hint(&self) -> Option<usize> {
            self.inner.size_hint()
        }
    }

    impl At {
        fn seed<S>(self, seed: S) -> LeanSeed<S> {
            LeanSeed { seed, at: self }
        }
    }

    /// A value on the path, decoded through [`Lean`].
    struct LeanSeed<S> {
        seed: S,
        at: At,
    }

    impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for LeanSeed<S> {
        type Value = S::Value;
        fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<S::Value, D::Error> {
            self.seed.deserialize(Lean {
                inner: deserializer,
                at: self.at,
            })
        }
    }

    /// A struct's key: notes whether it is `name`, and decodes it unchanged.
    struct KeySeed<'a, K> {
        seed: K,
        name: &'static str,
        matched: &'a mut bool,
    }

    impl<'de, K: DeserializeSeed<'de>> DeserializeSeed<'de> for KeySeed<'_, K> {
        type Value = K::Value;
        fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<K::Value, D::Error> {
            self.seed.deserialize(KeyDeserializer {
                inner: deserializer,
                name: self.name,
                matched: self.matched,
            })
        }
    }

    struct KeyDeserializer<'a, D> {
        inner: D,
        name: &'static str,
        matched: &'a mut bool,
    }

    impl<'de, D: Deserializer<'de>> Deserializer<'de> for KeyDeserializer<'_, D> {
        type Error = D::Error;

        fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
            self.inner.deserialize_identifier(KeyVisitor {
                visitor,
                name: self.name,
                matched: self.matched,
            })
        }

        fn is_human_readable(&self) -> bool {
            self.inner.is_human_readable()
        }

        forward! {
            deserialize_any(); deserialize_bool(); deserialize_i8(); deserialize_i16();
            deserialize_i32(); deserialize_i64(); deserialize_i128(); deserialize_u8();
            deserialize_u16(); deserialize_u32(); deserialize_u64(); deserialize_u128();
            deserialize_f32(); deserialize_f64(); deserialize_char(); deserialize_str();
            deserialize_string(); deserialize_bytes(); deserialize_byte_buf();
            deserialize_option(); deserialize_unit(); deserialize_unit_struct(name: &'static str);
            deserialize_newtype_struct(name: &'static str); deserialize_seq();
            deserialize_tuple(len: usize);
            deserialize_tuple_struct(name: &'static str, len: usize);
            deserialize_map();
            deserialize_struct(name: &'static str, fields: &'static [&'static str]);
            deserialize_enum(name: &'static str, variants: &'static [&'static str]);
            deserialize_ignored_any();
        }
    }

    /// Passes every kind of identifier on to the field visitor unchanged.
    struct KeyVisitor<'a, V> {
        visitor: V,
        name: &'static str,
        matched: &'a mut bool,
    }

    impl<'de, V: Visitor<'de>> Visitor<'de> for KeyVisitor<'_, V> {
        type Value = V::Value;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            self.visitor.expecting(f)
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<V::Value, E> {
            *self.matched = v == self.name;
            self.visitor.visit_str(v)
        }
        fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<V::Value, E> {
            *self.matched = v == self.name;
            self.visitor.visit_borrowed_str(v)
        }
        fn visit_string<E: serde::de::Error>(self, v: String) -> Result<V::Value, E> {
            *self.matched = v == self.name;
            self.visitor.visit_string(v)
        }
        fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<V::Value, E> {
            self.visitor.visit_bytes(v)
        }
        fn visit_borrowed_bytes<E: serde::de::Error>(self, v: &'de [u8]) -> Result<V::Value, E> {
            self.visitor.visit_borrowed_bytes(v)
        }
        fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<V::Value, E> {
            self.visitor.visit_byte_buf(v)
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<V::Value, E> {
            self.visitor.visit_u64(v)
        }
    }

    /// An `Option` on the path: its value, when not null, is wrapped.
    struct OptionVisitor<V> {
        visitor: V,
        some: At,
    }

    impl<'de, V: Visitor<'de>> Visitor<'de> for OptionVisitor<V> {
        type Value = V::Value;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            self.visitor.expecting(f)
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<V::Value, E> {
            self.visitor.visit_none()
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<V::Value, E> {
            self.visitor.visit_unit()
        }
        fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<V::Value, D::Error> {
            self.visitor.visit_some(Lean {
                inner: deserializer,
                at: self.some,
            })
        }
    }

    /// The managedFields list: every entry is wrapped.
    struct SeqVisitor<V> {
        visitor: V,
    }

    impl<'de, V: Visitor<'de>> Visitor<'de> for SeqVisitor<V> {
        type Value = V::Value;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            self.visitor.expecting(f)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
            self.visitor.visit_seq(EntrySeq { inner: seq })
        }
    }

    struct EntrySeq<A> {
        inner: A,
    }

    impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for EntrySeq<A> {
        type Error = A::Error;
        fn next_element_seed<S: DeserializeSeed<'de>>(
            &mut self,
            seed: S,
        ) -> Result<Option<S::Value>, A::Error> {
            self.inner.next_element_seed(At::Entry.seed(seed))
        }
        fn size_hint(&self) -> Option<usize> {
            self.inner.size_hint()
        }
    }

    /// The `FieldsV1` newtype: its JSON value is checked, then given as `null`.
    struct FieldsV1Visitor<V> {
        visitor: V,
    }

    impl<'de, V: Visitor<'de>> Visitor<'de> for FieldsV1Visitor<V> {
        type Value = V::Value;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            self.visitor.expecting(f)
        }
        fn visit_newtype_struct<D: Deserializer<'de>>(
            self,
            deserializer: D,
        ) -> Result<V::Value, D::Error> {
            AnyJson::deserialize(deserializer)?;
            self.visitor
                .visit_newtype_struct(UnitDeserializer::<D::Error>::new())
        }
    }

    /// Any JSON value, read as `serde_json::Value` reads it (the same calls,
    /// so the same values are accepted and the same errors raised) but kept
    /// nowhere.
    pub(super) struct AnyJson;

    impl<'de> Deserialize<'de> for AnyJson {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer.deserialize_any(AnyJson)
        }
    }

    impl<'de> Visitor<'de> for AnyJson {
        type Value = AnyJson;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("any valid JSON value")
        }
        fn visit_bool<E>(self, _: bool) -> Result<AnyJson, E> {
            Ok(AnyJson)
        }
        fn visit_i64<E>(self, _: i64) -> Result<AnyJson, E> {
            Ok(AnyJson)
        }
        fn visit_u64<E>(self, _: u64) -> Result<AnyJson, E> {
            Ok(AnyJson)
        }
        fn visit_f64<E>(self, _: f64) -> Result<AnyJson, E> {
            Ok(AnyJson)
        }
        fn visit_str<E>(self, _: &str) -> Result<AnyJson, E> {
            Ok(AnyJson)
        }
        fn visit_none<E>(self) -> Result<AnyJson, E> {
            Ok(AnyJson)
        }
        fn visit_unit<E>(self) -> Result<AnyJson, E> {
            Ok(AnyJson)
        }
        fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<AnyJson, D::Error> {
            AnyJson::deserialize(deserializer)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<AnyJson, A::Error> {
            while seq.next_element::<AnyJson>()?.is_some() {}
            Ok(AnyJson)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AnyJson, A::Error> {
            // serde_json::Value reads its keys with deserialize_str (the first)
            // and as Strings (the others): both parse the string alike.
            while map.next_key::<AnyKey>()?.is_some() {
                map.next_value::<AnyJson>()?;
            }
            Ok(AnyJson)
        }
    }

    struct AnyKey;

    impl<'de> Deserialize<'de> for AnyKey {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer.deserialize_str(AnyKey)
        }
    }

    impl<'de> Visitor<'de> for AnyKey {
        type Value = AnyKey;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string key")
        }
        fn visit_str<E>(self, _: &str) -> Result<AnyKey, E> {
            Ok(AnyKey)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::lean::LeanPod;
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::FieldsV1;

    type Decoded<T> = Result<AdmissionReview<T>, serde_json::Error>;

    /// The pods of a review (object, oldObject), `fieldsV1` set to null.
    fn pods(review: AdmissionReview<Pod>) -> Vec<Option<Pod>> {
        let request = review.request.expect("request");
        let mut pods = vec![request.object, request.old_object];
        for pod in pods.iter_mut().flatten() {
            for entry in pod.metadata.managed_fields.iter_mut().flatten() {
                if entry.fields_v1.is_some() {
                    entry.fields_v1 = Some(FieldsV1(serde_json::Value::Null));
                }
            }
        }
        pods
    }

    fn lean_pods(review: AdmissionReview<LeanPod>) -> Vec<Option<Pod>> {
        let request = review.request.expect("request");
        vec![request.object.map(|p| p.0), request.old_object.map(|p| p.0)]
    }

    /// Decodes `body` both ways: same success, same pods, or the same error.
    fn same_decode(what: &str, body: &[u8]) -> bool {
        let pod: Decoded<Pod> = serde_json::from_slice(body);
        let lean: Decoded<LeanPod> = serde_json::from_slice(body);
        match (pod, lean) {
            (Ok(pod), Ok(lean)) => {
                assert_eq!(pod.types, lean.types, "{what}");
                assert_eq!(pods(pod), lean_pods(lean), "{what}");
                true
            }
            (Err(a), Err(b)) => {
                assert_eq!(a.to_string(), b.to_string(), "{what}");
                false
            }
            (a, b) => panic!("{what}: Pod decodes {}, LeanPod {}", a.is_ok(), b.is_ok()),
        }
    }

    fn fixture(name: &str) -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/apiserver-1.36")
            .join(name);
        std::fs::read_to_string(path).expect("fixture")
    }

    const POD_FIXTURES: [&str; 3] = [
        "pod-create-named.json",
        "pod-create-generatename.json",
        "pod-create-dryrun.json",
    ];

    #[test]
    fn lean_pods_decode_as_pods_on_the_fixtures_and_every_truncation() {
        for name in POD_FIXTURES {
            let body = fixture(name);
            assert!(same_decode(name, body.as_bytes()), "{name} decodes");
            // Non-pod reviews fail both ways alike.
            for other in ["llmmodel-create.json", "llmmodel-update.json"] {
                same_decode(other, fixture(other).as_bytes());
            }
            for end in 0..body.len() {
                same_decode(&format!("{name}[..{end}]"), &body.as_bytes()[..end]);
            }
        }
    }

    #[test]
    fn lean_pods_decode_as_pods_whatever_the_managed_fields() {
        let body = fixture("pod-create-named.json");
        let start = body.find("\"fieldsV1\": ").expect("fieldsV1") + "\"fieldsV1\": ".len();
        let nested = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        let replacements: Vec<String> = [
            "null",
            "1",
            "-1.5e3",
            "1e999",
            "18446744073709551616",
            "true",
            "\"s\"",
            "\"\\ud800\"",
            "\"\\ud83d\\ude00\"",
            "\"\\x\"",
            "\"\u{1}\"",
            "[]",
            "[1, {\"a\": [null]}]",
            "{\"a\": 1, \"a\": 2}",
            "{1: 2}",
            "{\"f:x\": {}",
            nested.as_str(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for replacement in &replacements {
            // Replace the first value (an object) of `fieldsV1`: find its end.
            let rest = &body[start..];
            let mut depth = 0;
            let mut end = 0;
            for (i, c) in rest.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = i + 1;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let changed = format!("{}{}{}", &body[..start], replacement, &rest[end..]);
            same_decode(replacement, changed.as_bytes());
        }
        // Invalid UTF-8 inside fieldsV1.
        let mut bytes = body.clone().into_bytes();
        bytes.splice(start..start, b"\"\xff\", \"x\": ".iter().copied());
        same_decode("invalid UTF-8", &bytes);
        let at = |from: &str, to: &str| body.replacen(from, to, 1);
        for (what, changed) in [
            (
                "managedFields null",
                at("\"managedFields\": [", "\"managedFields\": null, \"x\": ["),
            ),
            (
                "managedFields a string",
                at("\"managedFields\": [", "\"managedFields\": \"m\", \"x\": ["),
            ),
            (
                "managedFields twice",
                at(
                    "\"managedFields\": [",
                    "\"managedFields\": [], \"managedFields\": [",
                ),
            ),
            (
                "an entry not an object",
                at("\"managedFields\": [", "\"managedFields\": [1, "),
            ),
            (
                "fieldsV1 twice",
                at("\"fieldsV1\": ", "\"fieldsV1\": {}, \"fieldsV1\": "),
            ),
            (
                "a bad time",
                at("\"fieldsType\"", "\"time\": \"yesterday\", \"fieldsType\""),
            ),
            (
                "metadata not an object",
                at("\"metadata\": {", "\"metadata\": [], \"x\": {"),
            ),
        ] {
            same_decode(what, changed.as_bytes());
        }
    }
}
