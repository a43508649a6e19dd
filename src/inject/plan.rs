//! What one LLMModel on one LLMEngine means for a pod, checked once before
//! anything is built: ports, GPU counts, device indices, engine environment.

use k8s_openapi::api::core::v1::{EnvVar, ResourceRequirements, SecurityContext};

use super::InjectError;
use crate::crd::{Allocation, LLMEngine, LLMModel, ModelStore, Vendor};

/// Environment variables the injector sets on engine containers itself; an
/// engine's `spec.env` may not override them.
pub const RESERVED_ENGINE_ENV: &[&str] = &[
    "OLLAMA_HOST",
    "OLLAMA_MODELS",
    "OLLAMA_NOPRUNE",
    "OLLAMA_SCHED_SPREAD",
    "LLM_MODEL",
    "CUDA_VISIBLE_DEVICES",
    "ROCR_VISIBLE_DEVICES",
    "HIP_VISIBLE_DEVICES",
    "GPU_DEVICE_ORDINAL",
    "NVIDIA_VISIBLE_DEVICES",
];

/// Everything the builders need, derived from a model and its engine.
#[derive(Debug, Clone)]
pub struct Plan<'a> {
    /// Name of the LLMModel object.
    pub model_name: &'a str,
    /// Name of the LLMEngine object.
    pub engine_name: &'a str,
    /// The Ollama model reference (`spec.model`).
    pub ollama_model: &'a str,
    pub image: &'a str,
    /// Base port; instance `i` listens on `port + i`.
    pub port: i32,
    /// Number of engine instances (data parallelism).
    pub instances: i32,
    /// GPUs per instance (model parallelism); 0 on CPU.
    pub gpus_per_instance: i32,
    pub vendor: Vendor,
    pub allocation: Allocation,
    /// Extended resource for device-plugin allocation.
    pub resource_name: Option<&'a str>,
    /// ResourceClaimTemplate for DRA allocation.
    pub claim_template: Option<&'a str>,
    pub devices: Option<&'a [String]>,
    pub runtime_class: Option<&'a str>,
    pub keep_alive: &'a str,
    pub context_length: Option<i32>,
    pub parallel_requests: Option<i32>,
    pub max_queue: Option<i32>,
    pub resources: Option<&'a ResourceRequirements>,
    pub model_store: ModelStore,
    pub engine_env: &'a [EnvVar],
    pub security_context: Option<&'a SecurityContext>,
}

impl<'a> Plan<'a> {
    /// Checks the pair and derives the plan. Errors name the field and the fix.
    pub fn new(model: &'a LLMModel, engine: &'a LLMEngine) -> Result<Self, InjectError> {
        let model_name = model.metadata.name.as_deref().unwrap_or_default();
        let engine_name = engine.metadata.name.as_deref().unwrap_or_default();
        let spec = &model.spec;
        let engine_spec = &engine.spec;
        let vendor = engine_spec.accelerator.vendor;

        let gpus_per_instance = match (vendor, spec.parallelism.model) {
            (Vendor::None, None | Some(0)) => 0,
            (Vendor::None, Some(requested)) => {
                return Err(InjectError::GpuOnCpuEngine {
                    model: model_name.to_owned(),
                    engine: engine_name.to_owned(),
                    requested,
                });
            }
            (_, None) => 1,
            (_, Some(0)) => {
                return Err(InjectError::NoGpuOnGpuEngine {
                    model: model_name.to_owned(),
                    engine: engine_name.to_owned(),
                    vendor: vendor_name(vendor),
                });
            }
            (_, Some(n)) if n < 0 => {
                return Err(InjectError::OutOfRange {
                    model: model_name.to_owned(),
                    field: "spec.parallelism.model",
                    value: n.into(),
                    problem: "is negative; set the number of GPUs per engine instance (0 on CPU)",
                });
            }
            (_, Some(n)) => n,
        };
        let max = engine_spec.effective_max_devices();
        if vendor != Vendor::None && gpus_per_instance > max {
            return Err(InjectError::TooManyDevices {
                model: model_name.to_owned(),
                engine: engine_name.to_owned(),
                requested: gpus_per_instance,
                max,
            });
        }

        let instances = spec.parallelism.data;
        if instances < 1 {
            return Err(InjectError::OutOfRange {
                model: model_name.to_owned(),
                field: "spec.parallelism.data",
                value: instances.into(),
                problem: "must be at least 1 (the number of engine instances)",
            });
        }
        let port = engine_spec.port;
        if !(1..=65535).contains(&port) {
            return Err(InjectError::EngineField {
                engine: engine_name.to_owned(),
                field: "spec.port",
                problem: format!("{port} is not a TCP port; use 1..65535"),
            });
        }
        let last = i64::from(port) + i64::from(instances) - 1;
        if last > 65535 {
            return Err(InjectError::PortOverflow {
                model: model_name.to_owned(),
                engine: engine_name.to_owned(),
                port,
                data: instances,
                last,
            });
        }

        if let Some(devices) = &spec.devices {
            if vendor == Vendor::None && !devices.is_empty() {
                return Err(InjectError::GpuOnCpuEngine {
                    model: model_name.to_owned(),
                    engine: engine_name.to_owned(),
                    requested: devices.len() as i32,
                });
            }
            for device in devices {
                let index_ok = device
                    .parse::<i32>()
                    .is_ok_and(|i| (0..gpus_per_instance).contains(&i) && i.to_string() == *device);
                if !index_ok {
                    return Err(InjectError::BadDevice {
                        model: model_name.to_owned(),
                        device: device.clone(),
                        gpus: gpus_per_instance,
                        last: gpus_per_instance - 1,
                    });
                }
            }
        }

        if let Some(reserved) = engine_spec
            .env
            .iter()
            .find(|e| RESERVED_ENGINE_ENV.contains(&e.name.as_str()))
        {
            return Err(InjectError::ReservedEngineEnv {
                engine: engine_name.to_owned(),
                name: reserved.name.clone(),
            });
        }

        let serving = spec.serving.as_ref();
        let (allocation, claim_template) = match engine_spec.accelerator.allocation {
            Allocation::Dra if vendor != Vendor::None => (
                Allocation::Dra,
                engine_spec
                    .accelerator
                    .dra
                    .as_ref()
                    .map(|d| d.resource_claim_template_name.as_str()),
            ),
            _ => (Allocation::DevicePlugin, None),
        };
        if allocation == Allocation::Dra && claim_template.is_none_or(str::is_empty) {
            return Err(InjectError::EngineField {
                engine: engine_name.to_owned(),
                field: "spec.accelerator.dra.resourceClaimTemplateName",
                problem: "is missing; allocation DRA needs the ResourceClaimTemplate each engine instance claims".to_owned(),
            });
        }

        Ok(Plan {
            model_name,
            engine_name,
            ollama_model: &spec.model,
            image: engine_spec.effective_image(),
            port,
            instances,
            gpus_per_instance,
            vendor,
            allocation,
            resource_name: engine_spec.effective_resource_name(),
            claim_template,
            devices: spec.devices.as_deref().filter(|d| !d.is_empty()),
            runtime_class: engine_spec.accelerator.runtime_class_name.as_deref(),
            keep_alive: serving
                .and_then(|s| s.keep_alive.as_deref())
                .unwrap_or("-1"),
            context_length: serving.and_then(|s| s.context_length),
            parallel_requests: serving.and_then(|s| s.parallel_requests),
            max_queue: serving.and_then(|s| s.max_queue),
            resources: engine_spec.resources.as_ref(),
            model_store: engine_spec.effective_model_store(),
            engine_env: &engine_spec.env,
            security_context: engine_spec.security_context.as_ref(),
        })
    }

    /// The loopback port of engine instance `i`.
    pub fn instance_port(&self, instance: i32) -> i32 {
        self.port + instance
    }

    /// The base URL of engine instance `i`, as user containers reach it.
    pub fn instance_url(&self, instance: i32) -> String {
        format!("http://127.0.0.1:{}", self.instance_port(instance))
    }
}

/// The vendor as written in an LLMEngine.
pub fn vendor_name(vendor: Vendor) -> &'static str {
    match vendor {
        Vendor::None => "None",
        Vendor::Nvidia => "NVIDIA",
        Vendor::Amd => "AMD",
    }
}
