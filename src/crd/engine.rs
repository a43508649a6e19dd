// `printcolumn(...)` repeats `type_ = ...` by design; clippy reads it as a duplicated attribute.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::api::core::v1::{
    EmptyDirVolumeSource, EnvVar, PersistentVolumeClaimVolumeSource, ResourceRequirements,
    SecurityContext,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::LLMEngineStatus;

/// The Ollama image used when an engine names none (CPU and NVIDIA).
pub const DEFAULT_CPU_IMAGE: &str = "ollama/ollama:0.12.6";
/// The Ollama image used for NVIDIA engines that name none.
pub const DEFAULT_NVIDIA_IMAGE: &str = DEFAULT_CPU_IMAGE;
/// The Ollama image used for AMD engines that name none (the ROCm build).
pub const DEFAULT_AMD_IMAGE: &str = "ollama/ollama:0.12.6-rocm";
/// The device-plugin resource of NVIDIA GPUs.
pub const DEFAULT_NVIDIA_RESOURCE: &str = "nvidia.com/gpu";
/// The device-plugin resource of AMD GPUs.
pub const DEFAULT_AMD_RESOURCE: &str = "amd.com/gpu";
/// Ollama's own default port; data-parallel instance `i` listens on `port + i`.
pub const DEFAULT_PORT: i32 = 11434;

/// An inference engine: which server runs, on which accelerators, with which
/// resources. Pods use it through an `LLMModel` that names it in `engineRef`.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "llm.injector.dev",
    version = "v1alpha1",
    kind = "LLMEngine",
    plural = "llmengines",
    singular = "llmengine",
    shortname = "llme",
    category = "llm",
    namespaced,
    cel,
    status = "LLMEngineStatus",
    doc = "An inference engine (Ollama) and how it runs: image, base port, accelerator vendor and allocation, resources of one instance, model store.",
    printcolumn(name = "Runtime", type_ = "string", json_path = ".spec.runtime"),
    printcolumn(
        name = "Vendor",
        type_ = "string",
        json_path = ".spec.accelerator.vendor"
    ),
    printcolumn(
        name = "Max-GPUs",
        type_ = "integer",
        json_path = ".status.maxDevicesPerInstance"
    ),
    printcolumn(
        name = "Valid",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Valid\")].status"
    ),
    printcolumn(name = "Port", type_ = "integer", json_path = ".spec.port"),
    printcolumn(
        name = "Image",
        type_ = "string",
        json_path = ".spec.image",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(
    validation = Rule::new("!has(self.image) || self.accelerator.vendor != 'NVIDIA' || !self.image.matches('(?i)rocm')").message("image is a ROCm (AMD) build, which has no CUDA libraries, so Ollama would run on CPU: an NVIDIA engine needs a CUDA build such as ollama/ollama:0.12.6; fix image or set accelerator.vendor AMD")
)]
#[serde(rename_all = "camelCase")]
pub struct LLMEngineSpec {
    /// The inference server. `Ollama` is the only runtime today.
    #[serde(default)]
    pub runtime: Runtime,

    /// The engine image. Default: `ollama/ollama:0.12.6`, or `ollama/ollama:0.12.6-rocm`
    /// for `accelerator.vendor: AMD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub image: Option<String>,

    /// Base port on the pod's loopback interface. Data-parallel instance `i`
    /// listens on `port + i`, so `port + parallelism.data - 1` must stay below 65536.
    #[serde(default = "default_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,

    /// Which accelerators one engine instance uses and how they are allocated.
    /// Default: none (CPU only).
    #[serde(default)]
    pub accelerator: Accelerator,

    /// CPU and memory requests and limits of one engine instance. GPU limits are
    /// added by the injector from the model's `parallelism.model`; do not set them here.
    /// Every injected container gets a request and a limit for cpu and memory, so
    /// a namespace's LimitRange never chooses them: a resource given only a
    /// request gets it as its limit too, one given neither gets requests
    /// cpu 1, memory 2Gi and limits cpu 8, memory 16Gi. Instance 0 also
    /// requests the emptyDir model store's `sizeLimit` as `ephemeral-storage`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// CPU and memory requests and limits of the `llm-pull` init container,
    /// completed as `resources` are. Default: requests cpu 100m, memory 128Mi;
    /// limits cpu 1, memory 1Gi.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_resources: Option<ResourceRequirements>,

    /// Where models are stored, shared by the puller and every engine instance of a pod.
    /// Default: an `emptyDir` with `sizeLimit: 50Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_store: Option<ModelStore>,

    /// Extra environment for the engine containers and `llm-pull` (for example
    /// `OLLAMA_FLASH_ATTENTION=1`, or `HTTPS_PROXY`, `NO_PROXY` and `SSL_CERT_FILE`
    /// for downloads). Variables the injector owns (`OLLAMA_HOST`, `OLLAMA_MODELS`,
    /// `HOME`, `TMPDIR`, device visibility) may not be set here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub env: Vec<EnvVar>,

    /// The securityContext of the injected containers (`llm-pull`, every
    /// `llm-engine-<i>` and `llm-router`), replacing the default as a whole.
    /// Default: what Pod Security "restricted" asks (`runAsNonRoot: true`,
    /// `runAsUser` and `runAsGroup` 65532, `allowPrivilegeEscalation: false`,
    /// `capabilities.drop: [ALL]`, `seccompProfile.type: RuntimeDefault`) and
    /// `readOnlyRootFilesystem: true`. Set it only for an engine that needs more,
    /// or on platforms that assign uids themselves (OpenShift: leave out
    /// `runAsUser` and `runAsGroup`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<SecurityContext>,
}

fn default_port() -> i32 {
    DEFAULT_PORT
}

/// The inference server an engine runs.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum Runtime {
    /// Ollama (<https://ollama.com>).
    #[default]
    Ollama,
}

/// The accelerator of one engine instance.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(
    validation = Rule::new("self.vendor != 'None' || (!has(self.resourceName) && !has(self.runtimeClassName) && !has(self.maxDevicesPerInstance) && self.allocation == 'DevicePlugin' && !has(self.dra))").message("a CPU engine (vendor None) takes no resourceName, runtimeClassName, maxDevicesPerInstance or DRA allocation: remove them or set vendor NVIDIA or AMD"),
    validation = Rule::new("self.allocation != 'DRA' || has(self.dra)").message("allocation DRA needs dra.resourceClaimTemplateName: name the ResourceClaimTemplate each engine instance claims"),
    validation = Rule::new("!has(self.dra) || self.allocation == 'DRA'").message("dra is only used with allocation DRA: set allocation DRA or remove dra"),
    validation = Rule::new("!has(self.resourceName) || self.allocation == 'DevicePlugin'").message("resourceName is a device-plugin resource: with allocation DRA the ResourceClaimTemplate chooses the devices, so remove resourceName"),
    validation = Rule::new("!has(self.resourceName) || !self.resourceName.matches('^([^/]*[.])?kubernetes[.]io/')").message("resourceName may not be in the kubernetes.io domain, which is reserved for native resources such as cpu and memory: use the device plugin's resource, such as nvidia.com/gpu"),
    validation = Rule::new("!has(self.resourceName) || !(self.vendor == 'AMD' && self.resourceName.startsWith('nvidia.com/') || self.vendor == 'NVIDIA' && self.resourceName.startsWith('amd.com/'))").message("resourceName is another vendor's GPU resource (nvidia.com/ with vendor AMD, or amd.com/ with vendor NVIDIA): fix the vendor or the resource name")
)]
#[serde(rename_all = "camelCase")]
pub struct Accelerator {
    /// `None` (CPU only), `NVIDIA` or `AMD`.
    #[serde(default)]
    pub vendor: Vendor,

    /// How GPUs reach an engine instance: `DevicePlugin` (extended-resource limits,
    /// the default) or `DRA` (a ResourceClaim per instance from `dra.resourceClaimTemplateName`).
    #[serde(default)]
    pub allocation: Allocation,

    /// Dynamic Resource Allocation settings, required with `allocation: DRA`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dra: Option<DraAllocation>,

    /// The extended resource that GPUs are requested by, as `domain/name`.
    /// Default: `nvidia.com/gpu` for NVIDIA, `amd.com/gpu` for AMD; may name
    /// another resource such as a MIG profile (`nvidia.com/mig-1g.10gb`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 253),
        regex(
            pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
        )
    )]
    pub resource_name: Option<String>,

    /// The most GPUs one engine instance may use; models asking for more
    /// (`parallelism.model`) are rejected. Default: 8 for GPU vendors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 64))]
    pub max_devices_per_instance: Option<i32>,

    /// Memory of each GPU an instance gets, for example `24Gi` (an NVIDIA L4)
    /// or `10Gi` (a MIG slice). With it, a model whose estimate does not fit
    /// its instance's GPUs is refused, and one that fits only by putting
    /// layers on the CPU gets a warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_per_device: Option<Quantity>,

    /// The RuntimeClass pods with this engine run under, for example `nvidia`
    /// where the NVIDIA runtime is not the node default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub runtime_class_name: Option<String>,
}

/// GPU vendor of an engine.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum Vendor {
    /// CPU only: no GPU is requested and `parallelism.model` must be 0.
    #[default]
    None,
    /// NVIDIA GPUs (CUDA); device visibility through `CUDA_VISIBLE_DEVICES`.
    #[serde(rename = "NVIDIA")]
    Nvidia,
    /// AMD GPUs (ROCm); device visibility through `ROCR_VISIBLE_DEVICES`.
    #[serde(rename = "AMD")]
    Amd,
}

impl Vendor {
    /// The Ollama image of engines of this vendor that name none.
    pub fn default_image(self) -> &'static str {
        match self {
            Vendor::None => DEFAULT_CPU_IMAGE,
            Vendor::Nvidia => DEFAULT_NVIDIA_IMAGE,
            Vendor::Amd => DEFAULT_AMD_IMAGE,
        }
    }

    /// The vendor as written in an LLMEngine: `None`, `NVIDIA` or `AMD`.
    pub fn as_str(self) -> &'static str {
        match self {
            Vendor::None => "None",
            Vendor::Nvidia => "NVIDIA",
            Vendor::Amd => "AMD",
        }
    }
}

/// How GPUs are allocated to an engine instance.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum Allocation {
    /// Extended-resource limits served by a device plugin (`nvidia.com/gpu: N`).
    #[default]
    DevicePlugin,
    /// Dynamic Resource Allocation: a ResourceClaim per engine instance.
    #[serde(rename = "DRA")]
    Dra,
}

/// Dynamic Resource Allocation settings of an engine.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DraAllocation {
    /// The ResourceClaimTemplate (in the pod's namespace) that each engine instance claims.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub resource_claim_template_name: String,
}

/// Where models are stored: exactly one of `emptyDir` or `persistentVolumeClaim`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(validation = Rule::new("has(self.emptyDir) != has(self.persistentVolumeClaim)").message("modelStore takes exactly one of emptyDir or persistentVolumeClaim"))]
#[serde(rename_all = "camelCase")]
pub struct ModelStore {
    /// A per-pod scratch store: models are pulled at every pod start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empty_dir: Option<EmptyDirVolumeSource>,
    /// A persistent store shared across pod restarts (and pods, with ReadWriteMany).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_volume_claim: Option<PersistentVolumeClaimVolumeSource>,
}

impl ModelStore {
    /// The default store: an `emptyDir` limited to 50Gi.
    pub fn default_empty_dir() -> Self {
        ModelStore {
            empty_dir: Some(EmptyDirVolumeSource {
                size_limit: Some(Quantity("50Gi".to_owned())),
                ..Default::default()
            }),
            persistent_volume_claim: None,
        }
    }
}

/// Default CPU and memory of one container: (resource, request, limit).
pub type DefaultResources = [(&'static str, &'static str, &'static str); 2];

/// An engine instance whose LLMEngine sets no `resources` for cpu or memory.
/// What a model needs is not known here (see validation's fit check), so
/// these are a floor for small models, said in the README.
pub const ENGINE_DEFAULT_RESOURCES: DefaultResources =
    [("cpu", "1", "8"), ("memory", "2Gi", "16Gi")];
/// `llm-pull` whose LLMEngine sets no `pullResources`: an Ollama server and
/// `ollama pull`, which streams the download to disk.
pub const PULL_DEFAULT_RESOURCES: DefaultResources =
    [("cpu", "100m", "1"), ("memory", "128Mi", "1Gi")];

impl LLMEngineSpec {
    /// The memory limit of each engine container as injection sets it:
    /// `resources.limits.memory`, else `resources.requests.memory` (a request
    /// alone is the limit too), else the default.
    pub fn effective_memory_limit(&self) -> &str {
        let resources = self.resources.as_ref();
        let limit = resources.and_then(|r| r.limits.as_ref()?.get("memory"));
        let request = resources.and_then(|r| r.requests.as_ref()?.get("memory"));
        limit
            .or(request)
            .map(|q| q.0.as_str())
            .unwrap_or(ENGINE_DEFAULT_RESOURCES[1].2)
    }

    /// The image to run: `image`, else the default for the vendor.
    pub fn effective_image(&self) -> &str {
        self.image
            .as_deref()
            .unwrap_or_else(|| self.accelerator.vendor.default_image())
    }

    /// The extended resource GPUs are requested by, `None` for CPU engines.
    pub fn effective_resource_name(&self) -> Option<&str> {
        match (&self.accelerator.resource_name, self.accelerator.vendor) {
            (_, Vendor::None) => None,
            (Some(name), _) => Some(name),
            (None, Vendor::Nvidia) => Some(DEFAULT_NVIDIA_RESOURCE),
            (None, Vendor::Amd) => Some(DEFAULT_AMD_RESOURCE),
        }
    }

    /// The most GPUs one instance may use: 0 for CPU engines, else the
    /// configured limit or 8.
    pub fn effective_max_devices(&self) -> i32 {
        match self.accelerator.vendor {
            Vendor::None => 0,
            _ => self.accelerator.max_devices_per_instance.unwrap_or(8),
        }
    }

    /// The model store: `modelStore`, else the default `emptyDir`.
    pub fn effective_model_store(&self) -> ModelStore {
        self.model_store
            .clone()
            .unwrap_or_else(ModelStore::default_empty_dir)
    }
}
