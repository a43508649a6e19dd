//! What one LLMModel on one LLMEngine means for a pod, checked once before
//! anything is built: ports, GPU counts, device indices, engine environment.

use k8s_openapi::api::core::v1::{EnvVar, ResourceRequirements, SecurityContext};

use super::{InjectError, InjectOptions};
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

/// The `llm-router` sidecar of a pod with data parallelism.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterPlan<'a> {
    pub image: &'a str,
    /// Where user containers reach the model: the router's loopback port.
    pub port: i32,
    /// The router's loopback admin port (`/readyz`, `/livez`, `/metrics`).
    pub admin_port: i32,
}

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
    /// The request router in front of the instances, when there are several.
    pub router: Option<RouterPlan<'a>>,
}

impl<'a> Plan<'a> {
    /// Checks the pair and derives the plan. Errors name the field and the fix.
    pub fn new(
        model: &'a LLMModel,
        engine: &'a LLMEngine,
        options: &'a InjectOptions,
    ) -> Result<Self, InjectError> {
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
        // Engines on port..port+data-1; with data > 1 the router and its admin
        // endpoint take the next two ports.
        let router_ports = if instances > 1 { 2 } else { 0 };
        let last = i64::from(port) + i64::from(instances) - 1 + router_ports;
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
            router: (instances > 1).then(|| RouterPlan {
                image: &options.router_image,
                port: port + instances,
                admin_port: port + instances + 1,
            }),
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

    /// The one endpoint user containers use: the router when there is one,
    /// else the only engine instance.
    pub fn endpoint_url(&self) -> String {
        match &self.router {
            Some(router) => format!("http://127.0.0.1:{}", router.port),
            None => self.instance_url(0),
        }
    }

    /// The last loopback port the injected containers listen on.
    pub fn last_port(&self) -> i32 {
        match &self.router {
            Some(router) => router.admin_port,
            None => self.instance_port(self.instances - 1),
        }
    }

    /// What listens on a loopback port of this plan, if anything.
    pub fn listener_on(&self, port: i32) -> Option<String> {
        let instance = port - self.port;
        match &self.router {
            _ if (0..self.instances).contains(&instance) => {
                Some(format!("engine instance {instance}"))
            }
            Some(router) if port == router.port => Some("the llm-router".to_owned()),
            Some(router) if port == router.admin_port => {
                Some("the llm-router's admin endpoint".to_owned())
            }
            _ => None,
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{
        Accelerator, DraAllocation, EngineRef, LLMEngineSpec, LLMModelSpec, Parallelism,
    };
    use k8s_openapi::api::core::v1::EnvVar;

    fn engine(vendor: Vendor) -> LLMEngine {
        let mut engine = LLMEngine::new(
            "eng",
            LLMEngineSpec {
                runtime: Default::default(),
                image: None,
                port: 11434,
                accelerator: Accelerator {
                    vendor,
                    max_devices_per_instance: (vendor != Vendor::None).then_some(4),
                    ..Default::default()
                },
                resources: None,
                model_store: None,
                env: Vec::new(),
                security_context: None,
            },
        );
        engine.metadata.namespace = Some("ns".into());
        engine
    }

    fn model(gpus: Option<i32>, data: i32, devices: Option<&[&str]>) -> LLMModel {
        LLMModel::new(
            "mod",
            LLMModelSpec {
                model: "qwen3:8b".into(),
                engine_ref: EngineRef { name: "eng".into() },
                parallelism: Parallelism { model: gpus, data },
                devices: devices.map(|d| d.iter().map(|s| (*s).to_owned()).collect()),
                serving: None,
            },
        )
    }

    #[test]
    fn gpu_counts_by_vendor() {
        // (vendor, parallelism.model, expected GPUs per instance or error label)
        let cases = [
            (Vendor::None, None, Ok(0)),
            (Vendor::None, Some(0), Ok(0)),
            (Vendor::None, Some(1), Err("gpu_on_cpu_engine")),
            (Vendor::Nvidia, None, Ok(1)),
            (Vendor::Nvidia, Some(2), Ok(2)),
            (Vendor::Nvidia, Some(4), Ok(4)),
            (Vendor::Nvidia, Some(5), Err("too_many_devices")),
            (Vendor::Nvidia, Some(0), Err("no_gpu_on_gpu_engine")),
            (Vendor::Amd, Some(-1), Err("out_of_range")),
            (Vendor::Amd, None, Ok(1)),
        ];
        for (vendor, gpus, expected) in cases {
            let (m, e) = (model(gpus, 1, None), engine(vendor));
            let got = Plan::new(&m, &e, &InjectOptions::default())
                .map(|p| p.gpus_per_instance)
                .map_err(|e| e.metric_label());
            assert_eq!(got, expected, "{vendor:?} {gpus:?}");
        }
    }

    #[test]
    fn devices_are_container_relative() {
        /// (parallelism.model, devices, expected error label)
        type Case<'a> = (Option<i32>, &'a [&'a str], Result<(), &'a str>);
        let cases: [Case; 7] = [
            (Some(1), &["0"], Ok(())),
            (Some(2), &["0", "1"], Ok(())),
            (Some(2), &["1"], Ok(())),
            (Some(1), &["1"], Err("bad_device")),
            (Some(2), &["2"], Err("bad_device")),
            (Some(2), &["01"], Err("bad_device")),
            (Some(2), &["GPU-0a1b"], Err("bad_device")),
        ];
        for (gpus, devices, expected) in cases {
            let (m, e) = (model(gpus, 1, Some(devices)), engine(Vendor::Nvidia));
            let got = Plan::new(&m, &e, &InjectOptions::default())
                .map(|_| ())
                .map_err(|e| e.metric_label());
            assert_eq!(got, expected, "{gpus:?} {devices:?}");
        }
        let (m, e) = (model(None, 1, Some(&["0"])), engine(Vendor::None));
        assert_eq!(
            Plan::new(&m, &e, &InjectOptions::default())
                .unwrap_err()
                .metric_label(),
            "gpu_on_cpu_engine"
        );
    }

    #[test]
    fn ports_and_data_parallelism() {
        let cases = [
            (11434, 1, Ok(11434)),
            (11434, 4, Ok(11439)),
            (65535, 1, Ok(65535)),
            (65532, 2, Ok(65535)),
            (65533, 2, Err("port_overflow")),
            (65534, 3, Err("port_overflow")),
            (11434, 0, Err("out_of_range")),
            (0, 1, Err("engine_field")),
            (70000, 1, Err("engine_field")),
        ];
        for (port, data, expected) in cases {
            let m = model(None, data, None);
            let mut e = engine(Vendor::Nvidia);
            e.spec.port = port;
            let got = Plan::new(&m, &e, &InjectOptions::default())
                .map(|p| p.last_port())
                .map_err(|e| e.metric_label());
            assert_eq!(got, expected, "port {port} data {data}");
        }
    }

    #[test]
    fn engine_env_may_not_override_injected_variables() {
        for name in RESERVED_ENGINE_ENV {
            let m = model(None, 1, None);
            let mut e = engine(Vendor::Nvidia);
            e.spec.env = vec![EnvVar {
                name: (*name).to_owned(),
                value: Some("x".into()),
                value_from: None,
            }];
            let err = Plan::new(&m, &e, &InjectOptions::default()).unwrap_err();
            assert_eq!(err.metric_label(), "reserved_engine_env", "{name}");
            assert!(err.to_string().contains(name));
        }
    }

    #[test]
    fn dra_needs_a_template() {
        let m = model(Some(2), 1, None);
        let mut e = engine(Vendor::Nvidia);
        e.spec.accelerator.allocation = Allocation::Dra;
        assert_eq!(
            Plan::new(&m, &e, &InjectOptions::default())
                .unwrap_err()
                .metric_label(),
            "engine_field"
        );
        e.spec.accelerator.dra = Some(DraAllocation {
            resource_claim_template_name: "gpus".into(),
        });
        let options = InjectOptions::default();
        let plan = Plan::new(&m, &e, &options).unwrap();
        assert_eq!(plan.claim_template, Some("gpus"));
    }

    #[test]
    fn router_only_with_data_parallelism() {
        let options = InjectOptions {
            router_image: "example.com/injector:1".into(),
        };
        let e = engine(Vendor::Nvidia);
        let single = model(Some(2), 1, None);
        let plan = Plan::new(&single, &e, &options).unwrap();
        assert_eq!(plan.router, None);
        assert_eq!(plan.endpoint_url(), "http://127.0.0.1:11434");
        assert_eq!(
            plan.listener_on(11434).as_deref(),
            Some("engine instance 0")
        );
        assert_eq!(plan.listener_on(11435), None);

        let double = model(Some(2), 2, None);
        let plan = Plan::new(&double, &e, &options).unwrap();
        assert_eq!(
            plan.router,
            Some(RouterPlan {
                image: "example.com/injector:1",
                port: 11436,
                admin_port: 11437,
            })
        );
        assert_eq!(plan.endpoint_url(), "http://127.0.0.1:11436");
        assert_eq!(plan.last_port(), 11437);
        let listeners: Vec<Option<String>> = (11433..=11438).map(|p| plan.listener_on(p)).collect();
        assert_eq!(
            listeners,
            [
                None,
                Some("engine instance 0".to_owned()),
                Some("engine instance 1".to_owned()),
                Some("the llm-router".to_owned()),
                Some("the llm-router's admin endpoint".to_owned()),
                None,
            ]
        );
    }

    #[test]
    fn message_names_field_value_and_fix() {
        let (m, e) = (model(Some(5), 1, None), engine(Vendor::Nvidia));
        assert_eq!(
            Plan::new(&m, &e, &InjectOptions::default())
                .unwrap_err()
                .to_string(),
            "LLMModel \"mod\": spec.parallelism.model: 5 exceeds LLMEngine \"eng\" accelerator.maxDevicesPerInstance 4; lower it or raise the engine's limit"
        );
    }
}
