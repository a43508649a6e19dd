//! llm-injector: a Kubernetes admission webhook, and the library behind it,
//! that turns an ordinary pod into an LLM-serving pod.
//!
//! The core is pure: [`inject()`](fn@inject) turns a typed pod (or pod template) plus an
//! `LLMModel` and its `LLMEngine` into the injected pod and the RFC 6902 patch
//! between the two. The offline CLI ([`manifest`]) and the webhook share it.
#![forbid(unsafe_code)]

pub mod crd;
pub mod duration;
pub(crate) mod field_error;

/// The annotation a pod (or pod template) carries to ask for injection; its
/// value names an `LLMModel` in the pod's namespace.
pub const MODEL_ANNOTATION: &str = "llm.injector.dev/model";
/// The annotation the injector writes on an injected pod, describing what it added.
pub const STATUS_ANNOTATION: &str = "llm.injector.dev/status";

pub mod catalog;
pub mod inject;
pub mod layout;
pub mod lookup;
pub mod manifest;
pub(crate) mod net;
pub mod router;
pub mod server;
pub mod validate;
pub mod yaml;

pub use catalog::Catalog;
pub use inject::{InjectError, InjectOptions, Injector, Outcome};
pub use lookup::ModelLookup;
