use thiserror::Error;

/// Why a pod that asked for injection cannot be injected. Every message names
/// the object, the field, the value and the fix; the caller adds which pod.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum InjectError {
    /// The annotation is empty or is not a plain object name.
    #[error(
        "annotation {annotation}: {value:?} is not an LLMModel name{why}; set it to the name of an LLMModel in namespace {namespace:?}"
    )]
    InvalidModelName {
        annotation: &'static str,
        value: String,
        namespace: String,
        why: &'static str,
    },

    /// No LLMModel of that name in the pod's namespace.
    #[error(
        "LLMModel {name:?} (annotation llm.injector.dev/model) not found in namespace {namespace:?}; {}",
        available_hint(available, namespace)
    )]
    UnknownModel {
        name: String,
        namespace: String,
        available: Vec<String>,
    },

    /// The model names an engine that does not exist.
    #[error(
        "LLMModel {namespace}/{model}: spec.engineRef.name {engine:?} does not exist in namespace {namespace:?}; create the LLMEngine or point engineRef at an existing one"
    )]
    MissingEngine {
        namespace: String,
        model: String,
        engine: String,
    },

    /// The pod already has a container, volume or claim with a name the injector adds.
    #[error(
        "the pod already has {what} named {name:?}, a name the injector adds for LLMModel {model:?}; rename it (names starting with llm- are reserved for injection)"
    )]
    NameCollision {
        what: &'static str,
        name: String,
        model: String,
    },

    /// A GPU count on a CPU-only engine.
    #[error(
        "LLMModel {model:?}: spec.parallelism.model: {requested} asks for GPUs, but LLMEngine {engine:?} is CPU-only (accelerator.vendor None); set parallelism.model to 0 or use a GPU engine"
    )]
    GpuOnCpuEngine {
        model: String,
        engine: String,
        requested: i32,
    },

    /// `parallelism.model: 0` on a GPU engine.
    #[error(
        "LLMModel {model:?}: spec.parallelism.model: 0 means CPU only, but LLMEngine {engine:?} is a {vendor} GPU engine; set parallelism.model to at least 1 or use a CPU engine"
    )]
    NoGpuOnGpuEngine {
        model: String,
        engine: String,
        vendor: &'static str,
    },

    /// More GPUs per instance than the engine allows.
    #[error(
        "LLMModel {model:?}: spec.parallelism.model: {requested} exceeds LLMEngine {engine:?} accelerator.maxDevicesPerInstance {max}; lower it or raise the engine's limit"
    )]
    TooManyDevices {
        model: String,
        engine: String,
        requested: i32,
        max: i32,
    },

    /// A number out of its range (data parallelism, GPUs).
    #[error("LLMModel {model:?}: {field}: {value} {problem}")]
    OutOfRange {
        model: String,
        field: &'static str,
        value: i64,
        problem: &'static str,
    },

    /// An LLMEngine field that makes injection impossible.
    #[error("LLMEngine {engine:?}: {field}: {problem}")]
    EngineField {
        engine: String,
        field: &'static str,
        problem: String,
    },

    /// A device index that does not exist inside the engine container.
    #[error(
        "LLMModel {model:?}: spec.devices: {device:?} is not a GPU index inside the engine container, which sees GPUs 0..{last}; device indices are container-relative: use values below parallelism.model ({gpus}) or remove devices"
    )]
    BadDevice {
        model: String,
        device: String,
        gpus: i32,
        last: i32,
    },

    /// Instance ports past 65535.
    #[error(
        "LLMModel {model:?}: spec.parallelism.data: {data} engine instances on LLMEngine {engine:?} port {port} need ports {port}..{last} (with data > 1 the llm-router takes the two ports after the engines), past 65535; lower the engine's port or parallelism.data"
    )]
    PortOverflow {
        model: String,
        engine: String,
        port: i32,
        data: i32,
        last: i64,
    },

    /// A user container already uses a port an engine instance needs.
    #[error(
        "container {container:?} declares port {port}, which {listener} of LLMModel {model:?} listens on (injected ports {first}..{last} on the pod's loopback); change the container's port or the engine's spec.port"
    )]
    PortInUse {
        container: String,
        port: i32,
        listener: String,
        model: String,
        first: i32,
        last: i32,
    },

    /// The engine's env sets a variable the injector owns.
    #[error(
        "LLMEngine {engine:?}: spec.env sets {name}, which the injector sets itself for every engine instance; remove it from the engine (use the LLMModel's fields instead)"
    )]
    ReservedEngineEnv { engine: String, name: String },

    /// The pod asks for a different RuntimeClass than the engine needs.
    #[error(
        "the pod sets spec.runtimeClassName {pod:?}, but LLMEngine {engine:?} needs accelerator.runtimeClassName {wanted:?}; remove the pod's runtimeClassName or use the same value"
    )]
    RuntimeClassConflict {
        pod: String,
        engine: String,
        wanted: String,
    },

    /// The object has no pod spec to inject into.
    #[error("the object has no pod spec (spec is missing); nothing to inject into")]
    NoPodSpec,

    /// The existing status annotation could not be produced (internal).
    #[error("could not serialise the injected pod: {0}")]
    Serialize(String),
}

fn available_hint(available: &[String], namespace: &str) -> String {
    if available.is_empty() {
        format!(
            "there are no LLMModels in namespace {namespace:?}: create one, or fix the annotation"
        )
    } else {
        format!(
            "models in that namespace: {}; fix the annotation or create the model",
            available.join(", ")
        )
    }
}

impl InjectError {
    /// A short, stable label for metrics and logs.
    pub fn metric_label(&self) -> &'static str {
        match self {
            InjectError::InvalidModelName { .. } => "invalid_model_name",
            InjectError::UnknownModel { .. } => "unknown_model",
            InjectError::MissingEngine { .. } => "missing_engine",
            InjectError::NameCollision { .. } => "name_collision",
            InjectError::GpuOnCpuEngine { .. } => "gpu_on_cpu_engine",
            InjectError::NoGpuOnGpuEngine { .. } => "no_gpu_on_gpu_engine",
            InjectError::TooManyDevices { .. } => "too_many_devices",
            InjectError::OutOfRange { .. } => "out_of_range",
            InjectError::EngineField { .. } => "engine_field",
            InjectError::BadDevice { .. } => "bad_device",
            InjectError::PortOverflow { .. } => "port_overflow",
            InjectError::PortInUse { .. } => "port_in_use",
            InjectError::ReservedEngineEnv { .. } => "reserved_engine_env",
            InjectError::RuntimeClassConflict { .. } => "runtime_class_conflict",
            InjectError::NoPodSpec => "no_pod_spec",
            InjectError::Serialize(_) => "internal",
        }
    }
}
