// `printcolumn(...)` repeats `type_ = ...` by design; clippy reads it as a duplicated attribute.
#![allow(clippy::duplicated_attributes)]

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::{LLMModelStatus, Vendor};

/// One model and how it is served: which engine, how many GPUs per engine
/// instance (model parallelism) and how many instances (data parallelism).
/// Pods ask for it with the annotation `llm.injector.dev/model: <name>`.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "llm.injector.dev",
    version = "v1alpha1",
    kind = "LLMModel",
    plural = "llmmodels",
    singular = "llmmodel",
    shortname = "llmm",
    category = "llm",
    namespaced,
    cel,
    status = "LLMModelStatus",
    doc = "A model served by an LLMEngine, with its model and data parallelism. Pods ask for it with the annotation llm.injector.dev/model.",
    printcolumn(name = "Model", type_ = "string", json_path = ".spec.model"),
    printcolumn(name = "Engine", type_ = "string", json_path = ".spec.engineRef.name"),
    printcolumn(name = "Instances", type_ = "integer", json_path = ".status.instances"),
    printcolumn(
        name = "GPUs-Per-Instance",
        type_ = "integer",
        json_path = ".status.gpusPerInstance",
        priority = 1
    ),
    printcolumn(name = "GPUs", type_ = "integer", json_path = ".status.gpusPerPod"),
    printcolumn(
        name = "Ready-Pods",
        type_ = "integer",
        json_path = ".status.pods.ready"
    ),
    printcolumn(
        name = "Valid",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Valid\")].status"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Fits",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Fits\")].status",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(
    validation = Rule::new("!has(self.devices) || self.devices.all(d, int(d) < (has(self.parallelism.model) ? self.parallelism.model : 1))").message("devices are indices inside the engine container, numbered 0..parallelism.model-1 (a device plugin renumbers the GPUs it gives a container): use indices below parallelism.model, or remove devices"),
    validation = Rule::new("!has(self.devices) || size(self.devices) == 0 || size(self.devices) == (has(self.parallelism.model) ? self.parallelism.model : 1)").message("devices lists a number of GPUs other than parallelism.model: one engine instance sees exactly parallelism.model GPUs, and fewer devices leave reserved GPUs idle; list each of them once, in the order Ollama should use them, or remove devices")
)]
#[serde(rename_all = "camelCase")]
pub struct LLMModelSpec {
    /// The Ollama model reference, `[host/][namespace/]name[:tag]` as `ollama pull`
    /// takes it, for example `qwen3:8b`, `library/llama3.2:1b` or
    /// `hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M`. No digest: Ollama
    /// does not pull by digest; pin a tag.
    #[schemars(
        length(min = 1, max = 256),
        regex(
            pattern = r"^(((https://)?[A-Za-z0-9_][A-Za-z0-9_.:-]*/)?[A-Za-z0-9_][A-Za-z0-9_-]{0,79}/)?[A-Za-z0-9_][A-Za-z0-9_.-]{0,79}(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,79})?$"
        )
    )]
    pub model: String,

    /// The LLMEngine (in the same namespace) that serves this model.
    pub engine_ref: EngineRef,

    /// Model parallelism (GPUs per engine instance) and data parallelism (engine instances).
    #[serde(default)]
    pub parallelism: Parallelism,

    /// Optional GPU indices inside each engine container, exported as
    /// `CUDA_VISIBLE_DEVICES` (NVIDIA) or `ROCR_VISIBLE_DEVICES` (AMD).
    /// A device plugin numbers the GPUs it gives a container 0..n-1, so these are
    /// container-relative: each must be below `parallelism.model`, and when set
    /// the list names all of them (fewer would leave reserved GPUs idle), so it
    /// only chooses their order. Choosing a
    /// particular physical GPU is a scheduling matter (node labels, MIG resources, DRA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16), inner(regex(pattern = r"^(0|[1-9][0-9]?)$")), extend("x-kubernetes-list-type" = "set"))]
    pub devices: Option<Vec<String>>,

    /// Ollama serving settings of every engine instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving: Option<Serving>,

    /// More environment for the pod's own containers, after the standard names
    /// (`OLLAMA_HOST`, `OLLAMA_BASE_URL`, `OPENAI_BASE_URL`, `OPENAI_API_KEY`,
    /// `LLM_MODEL`, `LLM_BASE_URL`, `LLM_ENDPOINTS`), so values can refer to them
    /// as `$(OPENAI_BASE_URL)`. An entry with a standard name replaces it (for
    /// example `OPENAI_API_KEY` from a Secret). A container that sets a name
    /// itself keeps its own value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub client_env: Vec<k8s_openapi::api::core::v1::EnvVar>,

    /// The `llm-router` sidecar in front of the engine instances: when the
    /// pod gets it, whether other pods reach it, what it does with a
    /// request's `keep_alive`, and which requests it keeps on one instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing: Option<Routing>,

    /// What the model needs in memory, for the check that one engine instance
    /// fits its GPUs (the engine's `accelerator.memoryPerDevice`). Popular
    /// Ollama library models are known without it; a fact given here replaces
    /// the known one. The numbers are the model's GGUF metadata (`ollama show
    /// --verbose` prints them) or its `config.json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facts: Option<ModelFacts>,
}

/// What the memory estimate needs of a model (its GGUF metadata).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelFacts {
    /// Size of the weights: the model file as `ollama list` shows it, for
    /// example `5.2G` (decimal) or `4.9Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights_size: Option<k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    /// Parameters, as `ollama show` prints them (for example `8.0B`,
    /// `596.05M`) or as a number: without weightsSize, the weights are
    /// estimated from them and the quantization (within a few percent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub parameters: Option<String>,
    /// Quantization of the weights, as `ollama show` prints it: `Q4_K_M`,
    /// `Q4_K_S`, `Q5_K_M`, `Q5_K_S`, `Q6_K`, `Q8_0`, `Q4_0`, `Q4_1`, `Q5_0`,
    /// `Q5_1`, `Q3_K_L`, `Q3_K_M`, `Q3_K_S`, `Q2_K`, `F16`, `BF16` or `F32`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub quantization: Option<String>,
    /// Family, which decides how Ollama 0.12.6 computes the KV cache and the
    /// compute graph: `Llama` (Llama, Mistral and most dense transformers),
    /// `Phi3`, `Qwen3`, `Gemma3` or `Bert` (embedding models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<ModelArchitecture>,
    /// Transformer blocks (`block_count`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1024))]
    pub layers: Option<i32>,
    /// Attention heads (`attention.head_count`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1024))]
    pub attention_heads: Option<i32>,
    /// Key/value heads (`attention.head_count_kv`; equal to attentionHeads
    /// without grouped-query attention).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1024))]
    pub kv_heads: Option<i32>,
    /// Dimension of one attention head (`attention.key_length`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 4096))]
    pub head_dim: Option<i32>,
    /// Hidden size (`embedding_length`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1048576))]
    pub embedding_length: Option<i32>,
    /// Tokens in the vocabulary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 16777216))]
    pub vocabulary: Option<i32>,
    /// The context the model was trained for (`context_length`): Ollama
    /// never uses more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 16777216))]
    pub trained_context: Option<i32>,
    /// Tokens of a sliding-window layer (`attention.sliding_window`), for `Gemma3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 16777216))]
    pub sliding_window: Option<i32>,
}

/// Model families whose memory Ollama computes differently.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum ModelArchitecture {
    Llama,
    Phi3,
    Qwen3,
    Gemma3,
    Bert,
}

/// The environment every container of the pod's own gets, in this order,
/// before `clientEnv` (see [`LLMModelSpec::client_env`]).
pub const STANDARD_CLIENT_ENV: [&str; 7] = [
    "OLLAMA_HOST",
    "OLLAMA_BASE_URL",
    "OPENAI_BASE_URL",
    "OPENAI_API_KEY",
    "LLM_MODEL",
    "LLM_BASE_URL",
    "LLM_ENDPOINTS",
];

/// The variables that decide which GPUs a process sees: the injector sets
/// them (on engines from `devices`, `NVIDIA_VISIBLE_DEVICES=void` on
/// containers that request no GPU), so neither an engine's `env` nor a
/// model's `clientEnv` may set them.
pub const DEVICE_VISIBILITY_ENV: [&str; 5] = [
    "CUDA_VISIBLE_DEVICES",
    "ROCR_VISIBLE_DEVICES",
    "HIP_VISIBLE_DEVICES",
    "GPU_DEVICE_ORDINAL",
    "NVIDIA_VISIBLE_DEVICES",
];

impl LLMModelSpec {
    /// GPUs per engine instance on an engine of `vendor`: `parallelism.model`,
    /// else 0 on a CPU engine and 1 on a GPU engine.
    pub fn effective_gpus(&self, vendor: Vendor) -> i32 {
        let default = if vendor == Vendor::None { 0 } else { 1 };
        self.parallelism.model.unwrap_or(default)
    }

    /// Whether pods get the `llm-router`: with several engine instances,
    /// when it is exposed, or when `routing.router` is `Always`.
    pub fn has_router(&self) -> bool {
        let routing = self.routing.as_ref();
        self.parallelism.data > 1
            || routing.is_some_and(|r| r.expose.is_some() || r.router == Some(RouterMode::Always))
    }

    /// The port exposed on the pod's IP, if any (`routing.expose.port`).
    pub fn exposed_port(&self) -> Option<i32> {
        let expose = self.routing.as_ref()?.expose.as_ref()?;
        Some(expose.port.unwrap_or(DEFAULT_EXPOSED_PORT))
    }

    /// The port the pod's containers reach the model on, for an engine on
    /// `engine_port`: the router's (the exposed port, else the one after the
    /// engines'), else the only engine instance's.
    pub fn endpoint_port(&self, engine_port: i32) -> i32 {
        match (self.has_router(), self.exposed_port()) {
            (true, Some(exposed)) => exposed,
            (true, None) => engine_port.saturating_add(self.parallelism.data),
            (false, _) => engine_port,
        }
    }
}

/// The port `routing.expose` serves on when it names none: vLLM's, which
/// inference gateways' examples use.
pub const DEFAULT_EXPOSED_PORT: i32 = 8000;

/// The `llm-router` sidecar: one endpoint in front of the engine instances
/// that passes every request on (least busy instance, streaming, health
/// checks, failover), holds at most `serving.parallelRequests` inference
/// requests per instance with a queue of `serving.maxQueue` behind them
/// (503 with Retry-After beyond), and serves metrics under vLLM's names.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Routing {
    /// When pods get the router. `Auto` (the default): with several engine
    /// instances (`parallelism.data` above 1) or when `expose` is set.
    /// `Always`: in front of a single instance too, for its metrics,
    /// backpressure and keep-alive rule, at the cost of one small sidecar
    /// (50m CPU, 32Mi) and tens of microseconds per request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router: Option<RouterMode>,

    /// Serve the router on the pod's IP, not only on loopback, at this port
    /// (a container port named `llm-http`), with its metrics at `/metrics`
    /// on the same port: for a Service, or an inference gateway (a Gateway
    /// API Inference Extension InferencePool selecting the pods by their
    /// `llm.injector.dev/model` label) in front of several pods. The pod's
    /// own containers use this port too. Implies the router.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expose: Option<Expose>,

    /// What the router does with a request's `keep_alive` (Ollama's
    /// `/api/generate`, `/api/chat`, `/api/embed`, `/api/embeddings`; the
    /// OpenAI-compatible API has none). `Clamp` (the default): one shorter
    /// than `serving.keepAlive` is raised to it, so no client unloads a model
    /// the platform keeps loaded (`keep_alive: 0` with the default `-1`).
    /// `Pass`: sent on as the client wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_keep_alive: Option<ClientKeepAlive>,

    /// Keep related inference requests on one engine instance, so Ollama's
    /// prompt cache (the KV cache of a prompt that begins the same) serves
    /// them. Bounded: an instance serving 1.25 times the average takes no
    /// more of them, and they go to the least busy. Without it, every
    /// request goes to the least busy instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
}

/// When pods get the `llm-router`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum RouterMode {
    /// With several engine instances or when exposed.
    Auto,
    /// Always, in front of a single instance too.
    Always,
}

/// The router on the pod's IP.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Expose {
    /// The port, on every address of the pod. Default 8000. It must not be
    /// one of the engine instances' ports (the engine's `port` and the ones
    /// after it) or a port of the pod's own containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
}

/// What the router does with a request's `keep_alive`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum ClientKeepAlive {
    /// A shorter `keep_alive` is raised to `serving.keepAlive`.
    Clamp,
    /// Sent on as the client wrote it.
    Pass,
}

/// Which inference requests go to the same engine instance: one of `header`
/// or `promptPrefixBytes`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(validation = Rule::new("has(self.header) != has(self.promptPrefixBytes)").message("affinity takes exactly one of header (requests with the same value of this header go to one instance) and promptPrefixBytes (requests whose prompt begins the same go to one instance)"))]
#[serde(rename_all = "camelCase")]
pub struct Affinity {
    /// Requests with the same value of this HTTP header (a session or user
    /// id the application sends, such as `X-Session-Id`) go to one instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 128),
        regex(pattern = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
    )]
    pub header: Option<String>,

    /// Requests whose prompt (system prompt, then the prompt or the
    /// messages with their roles) begins with the same this many bytes go to
    /// one instance: a shared system prompt and a conversation's first turns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1048576))]
    pub prompt_prefix_bytes: Option<i32>,
}

/// A reference to an LLMEngine in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EngineRef {
    /// Name of the LLMEngine.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub name: String,
}

/// How a model is spread over GPUs and engine instances.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("self.data >= 1").message("parallelism.data is the number of engine instances and must be at least 1"))]
#[serde(rename_all = "camelCase")]
pub struct Parallelism {
    /// GPUs per engine instance (Ollama splits the model's layers over them).
    /// 0 on a CPU engine. Default: 0 on a CPU engine, 1 on a GPU engine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 64))]
    pub model: Option<i32>,

    /// Number of engine instances, each with its own GPUs and port. Default 1.
    #[serde(default = "default_data")]
    #[schemars(range(max = 64))]
    pub data: i32,
}

impl Default for Parallelism {
    fn default() -> Self {
        Parallelism {
            model: None,
            data: default_data(),
        }
    }
}

fn default_data() -> i32 {
    1
}

/// Ollama serving settings of every engine instance.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Serving {
    /// How long a loaded model stays in memory after its last request
    /// (`OLLAMA_KEEP_ALIVE`): a Go duration such as `30m` or `1h30m`, a whole
    /// number of seconds, or `-1` (any negative value) for forever. Default `-1`:
    /// the engine exists to serve this one model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        regex(
            pattern = r"^[-+]?([0-9]+|(([0-9]+([.][0-9]*)?|[.][0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$"
        ),
        length(max = 32)
    )]
    pub keep_alive: Option<String>,

    /// Context window in tokens (`OLLAMA_CONTEXT_LENGTH`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 256, max = 1048576))]
    pub context_length: Option<i32>,

    /// Requests one instance serves at once (`OLLAMA_NUM_PARALLEL`): 1 serves
    /// in sequence, more batches requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 512))]
    pub parallel_requests: Option<i32>,

    /// Requests one instance queues before answering 503 (`OLLAMA_MAX_QUEUE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65536))]
    pub max_queue: Option<i32>,
}
