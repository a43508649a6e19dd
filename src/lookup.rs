//! How injection and validation find LLMModels and LLMEngines: a read-only
//! view by namespace and name, implemented by the in-memory [`Catalog`]
//! (files), the server's reflectors (a cluster) and the file reloader.
//!
//! [`Catalog`]: crate::Catalog
//!
//! ```
//! use std::sync::Arc;
//! use llm_injector::crd::{LLMEngine, LLMModel};
//! use llm_injector::ModelLookup;
//!
//! /// One model and its engine, whatever is asked.
//! struct Fixed(Arc<LLMModel>, Arc<LLMEngine>);
//!
//! impl ModelLookup for Fixed {
//!     fn model(&self, _namespace: &str, name: &str) -> Option<Arc<LLMModel>> {
//!         (self.0.metadata.name.as_deref() == Some(name)).then(|| self.0.clone())
//!     }
//!     fn engine(&self, _namespace: &str, name: &str) -> Option<Arc<LLMEngine>> {
//!         (self.1.metadata.name.as_deref() == Some(name)).then(|| self.1.clone())
//!     }
//!     fn model_names(&self, _namespace: &str) -> Vec<String> {
//!         self.0.metadata.name.iter().cloned().collect()
//!     }
//! }
//!
//! let model: LLMModel = serde_yaml::from_str(
//!     "metadata: {name: m}\nspec: {engineRef: {name: e}, model: 'qwen3:0.6b'}",
//! ).unwrap();
//! let engine: LLMEngine = serde_yaml::from_str(
//!     "metadata: {name: e}\nspec: {runtime: Ollama, accelerator: {vendor: None}}",
//! ).unwrap();
//! let lookup = Fixed(Arc::new(model), Arc::new(engine));
//! // The default method, from `model_names` and `model`:
//! assert_eq!(lookup.models_using_engine("default", "e").len(), 1);
//! ```

use std::sync::Arc;

use crate::crd::{LLMEngine, LLMModel};
use crate::nodes::NodeSnapshot;

/// Read access to models and engines by namespace and name.
pub trait ModelLookup {
    /// The LLMModel `name` in `namespace`.
    fn model(&self, namespace: &str, name: &str) -> Option<Arc<LLMModel>>;
    /// The LLMEngine `name` in `namespace`.
    fn engine(&self, namespace: &str, name: &str) -> Option<Arc<LLMEngine>>;
    /// The names of all LLMModels in `namespace`, sorted (for error messages).
    fn model_names(&self, namespace: &str) -> Vec<String>;
    /// The LLMModels in `namespace` whose `engineRef` names `engine`, sorted by
    /// name (for validating changes to an engine). The default asks
    /// [`model_names`](Self::model_names) and [`model`](Self::model).
    fn models_using_engine(&self, namespace: &str, engine: &str) -> Vec<Arc<LLMModel>> {
        self.model_names(namespace)
            .iter()
            .filter_map(|name| self.model(namespace, name))
            .filter(|model| model.spec.engine_ref.name == engine)
            .collect()
    }
    /// The GPUs of the cluster's Nodes, when known (the webhook's Node
    /// cache): injection then warns when no Node has what a pod asks for.
    /// The default knows none.
    fn nodes(&self) -> Option<Arc<NodeSnapshot>> {
        None
    }
}
