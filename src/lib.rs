//! llm-injector: a Kubernetes admission webhook, and the library behind it,
//! that turns an ordinary pod into an LLM-serving pod.
//!
//! The core is pure: an [`Injector`] decides, for a typed pod (or pod
//! template), whether it asks for an `LLMModel` and returns the RFC 6902
//! patch that injects the model's `LLMEngine` ([`inject`]); [`validate`]
//! checks engines, models and their pairing with the same rules. The offline
//! CLI ([`manifest`]) and the webhook ([`server`]) share both.
#![forbid(unsafe_code)]

pub mod crd;
pub mod duration;
pub(crate) mod field_error;

/// The annotation a pod (or pod template) carries to ask for injection; its
/// value names an `LLMModel` in the pod's namespace.
pub const MODEL_ANNOTATION: &str = "llm.injector.dev/model";
/// The annotation the injector writes on an injected pod, describing what it added.
pub const STATUS_ANNOTATION: &str = "llm.injector.dev/status";
/// The label the injector puts on an injected pod: the LLMModel's name, so
/// that the pods of a model can be selected (`kubectl get pods -l`, a
/// controller's watch, an InferencePool).
pub const MODEL_LABEL: &str = "llm.injector.dev/model";

pub mod catalog;
pub mod estimate;
pub mod inject;
pub mod layout;
pub mod lookup;
pub mod manifest;
pub mod nodes;
pub mod policy;
pub mod quantity;
#[cfg(feature = "server")]
pub mod server;
pub mod status;
pub mod validate;
pub mod yaml;

pub use catalog::Catalog;
pub use inject::{InjectError, InjectOptions, Injector, Outcome};
pub use lookup::ModelLookup;
