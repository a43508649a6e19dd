//! Validation of LLMEngines and LLMModels: pure functions over the typed
//! objects and a [`ModelLookup`](crate::ModelLookup), shared by the
//! validating webhook, `llm-injector validate` and injection.
//!
//! Each function returns a [`Report`]: errors deny the object, warnings are
//! shown and do not block. Nothing here touches HTTP, a client or a clock.
//!
//! | operation | function |
//! |---|---|
//! | create or update an LLMEngine | [`validate_engine`] (create), [`validate_engine_update`] (update) |
//! | delete an LLMEngine | [`validate_engine_delete`] |
//! | create or update an LLMModel | [`validate_model`] |
//! | a model on a known engine (injection) | [`validate_model_on`] |
//! | Kubernetes YAML documents (the CLI) | [`crate::manifest::validate_documents`] |
//!
//! Every rule is a [`Rule`]; the README's "Validation rules" table lists them.
//!
//! ```
//! use llm_injector::crd::{LLMEngine, LLMModel};
//! use llm_injector::validate::{Rule, validate_model_on};
//!
//! let engine: LLMEngine = serde_yaml::from_str(r#"
//! apiVersion: llm.injector.dev/v1alpha1
//! kind: LLMEngine
//! metadata: {name: ollama-nvidia}
//! spec: {runtime: Ollama, accelerator: {vendor: NVIDIA, maxDevicesPerInstance: 2}}
//! "#).unwrap();
//! let model: LLMModel = serde_yaml::from_str(r#"
//! apiVersion: llm.injector.dev/v1alpha1
//! kind: LLMModel
//! metadata: {name: too-wide}
//! spec: {engineRef: {name: ollama-nvidia}, model: "qwen3:32b", parallelism: {model: 4}}
//! "#).unwrap();
//!
//! let report = validate_model_on(&model, &engine);
//! assert!(!report.is_allowed());
//! let error = &report.errors[0];
//! assert_eq!(error.field, "spec.parallelism.model");
//! assert!(error.message.contains("maxDevicesPerInstance"), "{}", error.message);
//! ```

mod client_env;
mod engine;
mod fit;
mod image;
mod memory;
mod model;
mod names;
mod nodes;
mod ollama;
mod references;
mod report;
#[cfg(test)]
mod testing;

pub use crate::duration::{KeepAlive, parse_keep_alive};
pub use engine::validate_engine;
pub use image::{ImageRef, mentions_rocm, parse_image};
pub use memory::{MemoryFit, memory_fit};
pub use model::{validate_model, validate_model_on};
pub use names::{extended_resource_problem, is_dns_subdomain};
pub use nodes::node_advice;
pub use ollama::{OllamaName, parse_ollama_name};
pub use references::{validate_engine_delete, validate_engine_update};
pub use report::{Report, Rule, Violation};
