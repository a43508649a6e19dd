//! The two custom resources of llm-injector, `LLMEngine` and `LLMModel`
//! (group `llm.injector.dev`, version `v1alpha1`), and their CRD manifests.
//!
//! The Rust types are the source of truth: `crds/*.yaml` are generated from
//! them by [`crd_manifests`] and a test fails when the committed files drift.
//!
//! ```
//! use llm_injector::crd::{LLMModel, Vendor, crds};
//!
//! let model: LLMModel = serde_yaml::from_str(r#"
//! apiVersion: llm.injector.dev/v1alpha1
//! kind: LLMModel
//! metadata: {name: qwen-mp2, namespace: team-a}
//! spec:
//!   engineRef: {name: ollama-nvidia}
//!   model: qwen3:32b
//!   parallelism: {model: 2}
//! "#).unwrap();
//! // GPUs per instance: parallelism.model (when unset: 1 on a GPU engine, 0 on a CPU one).
//! assert_eq!(model.spec.effective_gpus(Vendor::Nvidia), 2);
//!
//! let names: Vec<String> = crds().into_iter().map(|(_, crd)| crd.metadata.name.unwrap()).collect();
//! assert_eq!(names, ["llmengines.llm.injector.dev", "llmmodels.llm.injector.dev"]);
//! ```

mod engine;
mod model;
mod status;

pub use engine::{
    Accelerator, Allocation, DEFAULT_AMD_IMAGE, DEFAULT_AMD_RESOURCE, DEFAULT_CPU_IMAGE,
    DEFAULT_NVIDIA_IMAGE, DEFAULT_NVIDIA_RESOURCE, DEFAULT_PORT, DefaultResources, DraAllocation,
    ENGINE_DEFAULT_RESOURCES, LLMEngine, LLMEngineSpec, ModelStore, PULL_DEFAULT_RESOURCES,
    Runtime, Vendor,
};
pub use model::{
    Affinity, ClientKeepAlive, DEFAULT_EXPOSED_PORT, DEVICE_VISIBILITY_ENV, EngineRef, Expose,
    LLMModel, LLMModelSpec, ModelArchitecture, ModelFacts, Parallelism, RouterMode, Routing,
    STANDARD_CLIENT_ENV, Serving,
};
pub use status::{LLMEngineStatus, LLMModelStatus, PodCounts};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// The API group of both custom resources.
pub const GROUP: &str = "llm.injector.dev";
/// The served and stored version of both custom resources.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` as written in manifests.
pub const API_VERSION: &str = "llm.injector.dev/v1alpha1";

/// Both CRDs, `LLMEngine` first, each paired with the file name it has under `crds/`.
pub fn crds() -> Vec<(&'static str, CustomResourceDefinition)> {
    vec![
        ("llm.injector.dev_llmengines.yaml", LLMEngine::crd()),
        ("llm.injector.dev_llmmodels.yaml", LLMModel::crd()),
    ]
}

/// Renders one CRD as a YAML document (without a leading `---`).
pub fn crd_yaml(crd: &CustomResourceDefinition) -> String {
    // Serialising a typed CRD cannot fail: it holds no maps with non-string keys.
    serde_yaml::to_string(crd).unwrap_or_default()
}

/// Both CRDs as one multi-document YAML stream, as `llm-injector crd` prints it.
pub fn crd_manifests() -> String {
    crds()
        .iter()
        .map(|(_, crd)| format!("---\n{}", crd_yaml(crd)))
        .collect()
}
