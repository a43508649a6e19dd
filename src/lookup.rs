//! How injection and validation find LLMModels and LLMEngines: a read-only
//! view by namespace and name, implemented by the in-memory [`Catalog`]
//! (files), the server's reflectors (a cluster) and the file reloader.
//!
//! [`Catalog`]: crate::Catalog

use std::sync::Arc;

use crate::crd::{LLMEngine, LLMModel};

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
}
