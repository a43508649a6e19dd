//! What one LLMModel on one LLMEngine means for a pod, checked once before
//! anything is built with the same rules as validation (`crate::validate`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{EnvVar, ResourceRequirements, SecurityContext};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::{InjectError, InjectOptions};
use crate::crd::{Allocation, LLMEngine, LLMModel, ModelStore, Vendor};
use crate::crd::{ClientKeepAlive, Routing};
pub use crate::crd::{DefaultResources, ENGINE_DEFAULT_RESOURCES, PULL_DEFAULT_RESOURCES};
use crate::layout::{OLLAMA_DEFAULT_MAX_QUEUE, OLLAMA_DEFAULT_NUM_PARALLEL, last_injected_port};
use crate::validate::{Report, validate_engine, validate_model_on};

/// `given` with a request and a limit for cpu and memory, so neither a
/// namespace's LimitRange nor a policy that requires them decides them: a
/// resource with only a request gets that as its limit, one with only a limit
/// gets it as its request (as Kubernetes would), one with neither gets the
/// defaults. Other resources are kept as given.
pub fn complete_resources(
    given: Option<&ResourceRequirements>,
    defaults: &DefaultResources,
) -> ResourceRequirements {
    let mut resources = given.cloned().unwrap_or_default();
    let requests = resources.requests.get_or_insert_with(BTreeMap::new);
    let limits = resources.limits.get_or_insert_with(BTreeMap::new);
    for (name, request, limit) in defaults {
        let name = (*name).to_owned();
        match (requests.get(&name).cloned(), limits.get(&name).cloned()) {
            (Some(_), Some(_)) => {}
            (Some(request), None) => {
                limits.insert(name, request);
            }
            (None, Some(limit)) => {
                requests.insert(name, limit);
            }
            (None, None) => {
                requests.insert(name.clone(), Quantity((*request).to_owned()));
                limits.insert(name, Quantity((*limit).to_owned()));
            }
        }
    }
    resources
}

/// The `ephemeral-storage` an emptyDir model store takes: its `sizeLimit`,
/// unless it lives in memory (then it counts against memory limits).
fn model_store_request(store: &ModelStore) -> Option<Quantity> {
    let empty_dir = store.empty_dir.as_ref()?;
    if empty_dir.medium.as_deref() == Some("Memory") {
        return None;
    }
    empty_dir.size_limit.clone()
}

/// The `llm-router` sidecar (with data parallelism, or asked for by the
/// model's `routing`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterPlan {
    pub image: String,
    /// Where user containers reach the model: the router's port.
    pub port: i32,
    /// The router's loopback admin port (`/readyz`, `/livez`, `/metrics`).
    pub admin_port: i32,
    /// `port` is served on every address of the pod (`routing.expose`), not
    /// only on loopback, and declared as the container port `llm-http`.
    pub exposed: bool,
    /// Inference requests per instance at once: `serving.parallelRequests`,
    /// else Ollama's default.
    pub max_in_flight: i32,
    /// Inference requests waiting when every instance is full:
    /// `serving.maxQueue`, else Ollama's default.
    pub max_queue: i32,
    /// A request's shorter `keep_alive` is raised to this (`serving.keepAlive`),
    /// unless `routing.clientKeepAlive` is `Pass`.
    pub keep_alive_floor: Option<String>,
    /// The router's `--affinity` (`header:NAME`, `prefix:BYTES`), if any.
    pub affinity: Option<String>,
}

/// Everything the builders need, derived from a model and its engine.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Name of the LLMModel object.
    pub model_name: String,
    /// Name of the LLMEngine object.
    pub engine_name: String,
    /// The Ollama model reference (`spec.model`).
    pub ollama_model: String,
    pub image: String,
    /// Base port; instance `i` listens on `port + i`.
    pub port: i32,
    /// Number of engine instances (data parallelism).
    pub instances: i32,
    /// GPUs per instance (model parallelism); 0 on CPU.
    pub gpus_per_instance: i32,
    pub vendor: Vendor,
    pub allocation: Allocation,
    /// Extended resource for device-plugin allocation.
    pub resource_name: Option<String>,
    /// ResourceClaimTemplate for DRA allocation.
    pub claim_template: Option<String>,
    pub devices: Option<Vec<String>>,
    pub runtime_class: Option<String>,
    pub keep_alive: String,
    pub context_length: Option<i32>,
    pub parallel_requests: Option<i32>,
    pub max_queue: Option<i32>,
    /// Requests and limits of each engine instance (without GPUs): the
    /// engine's `resources` completed by [`complete_resources`].
    pub engine_resources: ResourceRequirements,
    /// Requests and limits of `llm-pull`.
    pub pull_resources: ResourceRequirements,
    pub model_store: ModelStore,
    /// The `ephemeral-storage` the model store takes on the node: the
    /// `sizeLimit` of an emptyDir on disk.
    pub model_store_request: Option<Quantity>,
    pub engine_env: Vec<EnvVar>,
    /// The securityContext of every injected container: the engine's, else
    /// [`restricted_security_context`](super::containers::restricted_security_context).
    pub security_context: SecurityContext,
    /// The uid `llm-pull` runs as instead, when a classic service-mesh
    /// sidecar would otherwise redirect its downloads (set by injection,
    /// which sees the pod).
    pub pull_uid: Option<i64>,
    /// Extra environment for user containers (the model's `clientEnv`).
    pub client_env: Vec<EnvVar>,
    /// The request router in front of the instances, when there are several.
    pub router: Option<RouterPlan>,
}

impl Plan {
    /// Checks the pair with the validation rules (the engine's, then the
    /// model's on that engine) and derives the plan. The error names the
    /// object, the field and the fix.
    pub fn new(
        model: &LLMModel,
        engine: &LLMEngine,
        options: &InjectOptions,
    ) -> Result<Self, InjectError> {
        let model_name = model.metadata.name.as_deref().unwrap_or_default();
        let engine_name = engine.metadata.name.as_deref().unwrap_or_default();
        let first_error = |kind, name: &str, report: Report| {
            report
                .errors
                .into_iter()
                .next()
                .map(|violation| InjectError::Invalid {
                    kind,
                    name: name.to_owned(),
                    violation,
                })
        };
        if let Some(error) = first_error("LLMEngine", engine_name, validate_engine(engine)) {
            return Err(error);
        }
        if let Some(error) = first_error("LLMModel", model_name, validate_model_on(model, engine)) {
            return Err(error);
        }

        let spec = &model.spec;
        let engine_spec = &engine.spec;
        let accelerator = &engine_spec.accelerator;
        let (port, instances) = (engine_spec.port, spec.parallelism.data);
        let serving = spec.serving.as_ref();
        let model_store = engine_spec.effective_model_store();
        let claim_template = match accelerator.allocation {
            Allocation::Dra => accelerator
                .dra
                .as_ref()
                .map(|d| d.resource_claim_template_name.as_str()),
            Allocation::DevicePlugin => None,
        };
        Ok(Plan {
            model_name: model_name.to_owned(),
            engine_name: engine_name.to_owned(),
            ollama_model: spec.model.clone(),
            image: engine_spec.effective_image().to_owned(),
            port,
            instances,
            gpus_per_instance: spec.effective_gpus(accelerator.vendor),
            vendor: accelerator.vendor,
            allocation: accelerator.allocation,
            resource_name: engine_spec.effective_resource_name().map(str::to_owned),
            claim_template: claim_template.map(str::to_owned),
            devices: spec.devices.clone().filter(|d| !d.is_empty()),
            runtime_class: accelerator.runtime_class_name.clone(),
            keep_alive: serving
                .and_then(|s| s.keep_alive.as_deref())
                .unwrap_or("-1")
                .to_owned(),
            context_length: serving.and_then(|s| s.context_length),
            parallel_requests: serving.and_then(|s| s.parallel_requests),
            max_queue: serving.and_then(|s| s.max_queue),
            engine_resources: complete_resources(
                engine_spec.resources.as_ref(),
                &ENGINE_DEFAULT_RESOURCES,
            ),
            pull_resources: complete_resources(
                engine_spec.pull_resources.as_ref(),
                &PULL_DEFAULT_RESOURCES,
            ),
            model_store_request: model_store_request(&model_store),
            model_store,
            engine_env: engine_spec.env.clone(),
            security_context: engine_spec
                .security_context
                .clone()
                .unwrap_or_else(super::containers::restricted_security_context),
            pull_uid: None,
            client_env: spec.client_env.clone(),
            router: spec.has_router().then(|| {
                let routing = spec.routing.clone().unwrap_or_default();
                let keep_alive = serving
                    .and_then(|s| s.keep_alive.as_deref())
                    .unwrap_or("-1");
                RouterPlan {
                    image: options.router_image.clone(),
                    port: spec.endpoint_port(port),
                    admin_port: port + instances + 1,
                    exposed: spec.exposed_port().is_some(),
                    max_in_flight: engine_env_number(&engine_spec.env, "OLLAMA_NUM_PARALLEL")
                        .or(serving.and_then(|s| s.parallel_requests))
                        .unwrap_or(OLLAMA_DEFAULT_NUM_PARALLEL),
                    max_queue: engine_env_number(&engine_spec.env, "OLLAMA_MAX_QUEUE")
                        .or(serving.and_then(|s| s.max_queue))
                        .unwrap_or(OLLAMA_DEFAULT_MAX_QUEUE),
                    keep_alive_floor: (routing.client_keep_alive != Some(ClientKeepAlive::Pass))
                        .then(|| keep_alive.to_owned()),
                    affinity: router_affinity(&routing),
                }
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

    /// Whether the pod gets the `llm-router`.
    pub fn has_router(&self) -> bool {
        self.router.is_some()
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
        // Validation keeps it below 65536.
        i32::try_from(last_injected_port(
            self.port,
            self.instances,
            self.has_router(),
        ))
        .unwrap_or(i32::MAX)
    }

    /// What listens on a loopback port of this plan, if anything.
    pub fn listener_on(&self, port: i32) -> Option<String> {
        // Any i32 may come from a user's container (admission runs before
        // validation), so no plain subtraction.
        let instance = port
            .checked_sub(self.port)
            .filter(|i| (0..self.instances).contains(i));
        match (&self.router, instance) {
            (_, Some(instance)) => Some(format!("engine instance {instance}")),
            (Some(router), None) if port == router.port => Some("the llm-router".to_owned()),
            (Some(router), None) if port == router.admin_port => {
                Some("the llm-router's admin endpoint".to_owned())
            }
            _ => None,
        }
    }
}

/// A positive number the engine's `env` sets `name` to. It comes after the
/// model's `serving` in the engine container, so it is what Ollama uses
/// (validation warns: `engine_env_overrides_serving`). A value from a
/// Secret or ConfigMap cannot be read here.
fn engine_env_number(env: &[EnvVar], name: &str) -> Option<i32> {
    env.iter()
        .rev()
        .find(|var| var.name == name)?
        .value
        .as_deref()?
        .trim()
        .parse()
        .ok()
        .filter(|n: &i32| *n > 0)
}

/// The router's `--affinity` for the model's `routing.affinity`.
fn router_affinity(routing: &Routing) -> Option<String> {
    let affinity = routing.affinity.as_ref()?;
    match (&affinity.header, affinity.prompt_prefix_bytes) {
        (Some(header), _) => Some(format!("header:{header}")),
        (None, Some(bytes)) => Some(format!("prefix:{bytes}")),
        (None, None) => None,
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
                pull_resources: None,
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
                client_env: Vec::new(),
                routing: None,
                facts: None,
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
            (Vendor::Amd, Some(-1), Err("model_parallelism")),
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
            (Some(2), &["1"], Err("devices_leave_gpus_idle")),
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
            (11434, 0, Err("data_parallelism")),
            (0, 1, Err("engine_port")),
            (70000, 1, Err("engine_port")),
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
    fn dra_needs_a_template() {
        let m = model(Some(2), 1, None);
        let mut e = engine(Vendor::Nvidia);
        e.spec.accelerator.allocation = Allocation::Dra;
        assert_eq!(
            Plan::new(&m, &e, &InjectOptions::default())
                .unwrap_err()
                .metric_label(),
            "dra_template"
        );
        e.spec.accelerator.dra = Some(DraAllocation {
            resource_claim_template_name: "gpus".into(),
        });
        let options = InjectOptions::default();
        let plan = Plan::new(&m, &e, &options).unwrap();
        assert_eq!(plan.claim_template, Some("gpus".to_owned()));
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
        // Ports from a user's container are any i32 (found by fuzzing).
        for port in [i32::MIN, -1, 0, i32::MAX] {
            assert_eq!(plan.listener_on(port), None, "{port}");
        }

        let double = model(Some(2), 2, None);
        let plan = Plan::new(&double, &e, &options).unwrap();
        assert_eq!(
            plan.router,
            Some(RouterPlan {
                image: "example.com/injector:1".to_owned(),
                port: 11436,
                admin_port: 11437,
                exposed: false,
                max_in_flight: 1,
                max_queue: 512,
                keep_alive_floor: Some("-1".to_owned()),
                affinity: None,
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
    fn routing_asks_for_the_router_and_sets_it_up() {
        use crate::crd::{Affinity, ClientKeepAlive, Expose, RouterMode, Routing, Serving};
        let e = engine(Vendor::Nvidia);
        let options = InjectOptions::default();
        let routed = |data: i32, routing: Routing, serving: Option<Serving>| {
            let mut m = model(Some(1), data, None);
            m.spec.routing = Some(routing);
            m.spec.serving = serving;
            Plan::new(&m, &e, &options).unwrap()
        };
        // Always: one instance behind the router, on the port after it.
        let always = Routing {
            router: Some(RouterMode::Always),
            ..Routing::default()
        };
        let plan = routed(1, always.clone(), None);
        let router = plan.router.clone().expect("a router");
        assert_eq!((router.port, router.admin_port), (11435, 11436));
        assert!(!router.exposed);
        assert_eq!(plan.endpoint_url(), "http://127.0.0.1:11435");
        assert_eq!(plan.last_port(), 11436);
        // Auto without data parallelism or expose: none.
        let auto = Routing {
            router: Some(RouterMode::Auto),
            ..Routing::default()
        };
        assert_eq!(routed(1, auto, None).router, None);
        // Exposed: on its own port, which the pod's containers use too.
        let exposed = Routing {
            expose: Some(Expose { port: None }),
            affinity: Some(Affinity {
                header: Some("X-Session-Id".to_owned()),
                prompt_prefix_bytes: None,
            }),
            ..Routing::default()
        };
        let plan = routed(1, exposed, None);
        let router = plan.router.clone().expect("a router");
        assert_eq!(
            (router.port, router.admin_port, router.exposed),
            (8000, 11436, true)
        );
        assert_eq!(router.affinity.as_deref(), Some("header:X-Session-Id"));
        assert_eq!(plan.endpoint_url(), "http://127.0.0.1:8000");
        assert_eq!(plan.listener_on(8000).as_deref(), Some("the llm-router"));
        // The model's serving settings are the router's limits and floor.
        let serving = Serving {
            keep_alive: Some("30m".to_owned()),
            parallel_requests: Some(4),
            max_queue: Some(16),
            ..Serving::default()
        };
        let prefix = Routing {
            affinity: Some(Affinity {
                header: None,
                prompt_prefix_bytes: Some(2048),
            }),
            ..always.clone()
        };
        let router = routed(2, prefix, Some(serving.clone())).router.unwrap();
        assert_eq!(
            (
                router.max_in_flight,
                router.max_queue,
                router.keep_alive_floor.as_deref()
            ),
            (4, 16, Some("30m"))
        );
        assert_eq!(router.affinity.as_deref(), Some("prefix:2048"));
        let pass = Routing {
            client_keep_alive: Some(ClientKeepAlive::Pass),
            ..always
        };
        assert_eq!(
            routed(1, pass, Some(serving))
                .router
                .unwrap()
                .keep_alive_floor,
            None
        );
    }

    #[test]
    fn message_names_object_field_value_and_fix() {
        let (m, mut e) = (model(Some(5), 1, None), engine(Vendor::Nvidia));
        assert_eq!(
            Plan::new(&m, &e, &InjectOptions::default())
                .unwrap_err()
                .to_string(),
            "LLMModel \"mod\": spec.parallelism.model: 5 exceeds LLMEngine \"eng\" accelerator.maxDevicesPerInstance 4; lower it or raise the engine's limit"
        );
        // The engine's own errors come first, named after the engine.
        e.spec.env = vec![EnvVar {
            name: "OLLAMA_HOST".into(),
            value: Some("x".into()),
            value_from: None,
        }];
        let error = Plan::new(&m, &e, &InjectOptions::default()).unwrap_err();
        assert_eq!(error.metric_label(), "reserved_engine_env");
        assert!(
            error.to_string().starts_with(
                "LLMEngine \"eng\": spec.env[0].name: OLLAMA_HOST is set by the injector"
            ),
            "{error}"
        );
    }
}

#[cfg(test)]
mod reserved_env_tests {
    use crate::crd::DEVICE_VISIBILITY_ENV;
    use crate::layout::RESERVED_ENGINE_ENV;

    #[test]
    fn device_visibility_is_reserved_on_engines() {
        for name in DEVICE_VISIBILITY_ENV {
            assert!(RESERVED_ENGINE_ENV.contains(&name), "{name}");
        }
    }
}

#[cfg(test)]
mod resource_tests {
    use super::*;

    fn requirements(requests: &[(&str, &str)], limits: &[(&str, &str)]) -> ResourceRequirements {
        let map = |pairs: &[(&str, &str)]| {
            (!pairs.is_empty()).then(|| {
                pairs
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), Quantity((*v).to_owned())))
                    .collect::<BTreeMap<_, _>>()
            })
        };
        ResourceRequirements {
            requests: map(requests),
            limits: map(limits),
            ..Default::default()
        }
    }

    #[test]
    fn complete_resources_table() {
        // (given requests, given limits, expected requests, expected limits)
        type Pairs = &'static [(&'static str, &'static str)];
        let cases: [(Pairs, Pairs, Pairs, Pairs); 4] = [
            (
                &[],
                &[],
                &[("cpu", "100m"), ("memory", "128Mi")],
                &[("cpu", "1"), ("memory", "1Gi")],
            ),
            (
                &[("cpu", "2")],
                &[("memory", "8Gi")],
                &[("cpu", "2"), ("memory", "8Gi")],
                &[("cpu", "2"), ("memory", "8Gi")],
            ),
            (
                &[("cpu", "500m"), ("memory", "1Gi")],
                &[("cpu", "4"), ("memory", "2Gi")],
                &[("cpu", "500m"), ("memory", "1Gi")],
                &[("cpu", "4"), ("memory", "2Gi")],
            ),
            (
                &[("example.com/fpga", "1")],
                &[],
                &[
                    ("cpu", "100m"),
                    ("example.com/fpga", "1"),
                    ("memory", "128Mi"),
                ],
                &[("cpu", "1"), ("memory", "1Gi")],
            ),
        ];
        for (requests, limits, want_requests, want_limits) in cases {
            let given = requirements(requests, limits);
            let got = complete_resources(Some(&given), &PULL_DEFAULT_RESOURCES);
            assert_eq!(
                got,
                requirements(want_requests, want_limits),
                "{requests:?} {limits:?}"
            );
        }
        assert_eq!(
            complete_resources(None, &PULL_DEFAULT_RESOURCES),
            requirements(
                &[("cpu", "100m"), ("memory", "128Mi")],
                &[("cpu", "1"), ("memory", "1Gi")]
            )
        );
    }
}
