use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Vendor;

/// Observed state of an `LLMModel`: how it is served, whether it can be,
/// and the pods that use it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LLMModelStatus {
    /// The `metadata.generation` this status was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `EngineFound` (its LLMEngine exists), `Valid` (the validation rules
    /// against that engine pass; the message is the webhook's) and `Ready`
    /// (at least one pod using the model is ready), one per `type`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Engine instances in each pod: `parallelism.data`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances: Option<i32>,
    /// GPUs of each instance: `parallelism.model`, or its default (1 on a
    /// GPU engine, 0 on a CPU one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus_per_instance: Option<i32>,
    /// GPUs one injected pod uses for this model: `instances × gpusPerInstance`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus_per_pod: Option<i32>,
    /// The GPU vendor of its engine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<Vendor>,
    /// The loopback port user containers reach the model on: the engine's
    /// port, or the request router's with several instances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_port: Option<i32>,
    /// Pods that carry the model's injection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<PodCounts>,
}

/// How many pods use a model, and how many of them are ready.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodCounts {
    /// Pods injected with the model.
    pub injected: i32,
    /// Of those, pods whose `Ready` condition is true.
    pub ready: i32,
}

/// Observed state of an `LLMEngine`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LLMEngineStatus {
    /// The `metadata.generation` this status was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Valid` (the engine's validation rules pass), one per `type`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The most GPUs one instance may use: `accelerator.maxDevicesPerInstance`,
    /// or its default (8 on a GPU engine, 0 on a CPU one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_devices_per_instance: Option<i32>,
    /// The LLMModels of its namespace that name it, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
}
