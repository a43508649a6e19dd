//! What user containers get: the endpoint of the engine under the names
//! common clients read, and GPU isolation for containers that request no
//! GPU; and what to tell the user about their own settings.

use k8s_openapi::api::core::v1::{Container, EnvVar, PodSpec};

use super::containers::env;
use super::plan::Plan;
use crate::crd::STANDARD_CLIENT_ENV;

/// Names of the sidecars of the service meshes injection knows: they carry
/// the pod's traffic, not its LLM clients, so they get no LLM environment.
pub const PROXY_CONTAINERS: [&str; 2] = ["istio-proxy", "linkerd-proxy"];

/// The uid each of [`PROXY_CONTAINERS`] runs as when its container does not
/// say (Istio's `--proxy-uid` 1337, Linkerd's 2102).
pub(crate) const PROXY_DEFAULT_UIDS: [(&str, i64); 2] =
    [("istio-proxy", 1337), ("linkerd-proxy", 2102)];

/// The placeholder `OPENAI_API_KEY`: OpenAI SDKs refuse to start without a
/// key, and Ollama ignores it.
pub const PLACEHOLDER_API_KEY: &str = "ollama";

/// The environment every user container gets unless it sets the variable
/// itself: the standard names, then the model's `clientEnv` (an entry with a
/// standard name replaces that one in place).
pub fn endpoint_env(plan: &Plan) -> Vec<EnvVar> {
    let endpoint = plan.endpoint_url();
    let endpoints: Vec<String> = (0..plan.instances).map(|i| plan.instance_url(i)).collect();
    // In the order of STANDARD_CLIENT_ENV.
    let values = [
        // OLLAMA_HOST: the Ollama CLI and client libraries (ollama-python, ollama-js).
        endpoint.clone(),
        // OLLAMA_BASE_URL: Open WebUI and LangChain's Ollama integrations.
        endpoint.clone(),
        // OPENAI_BASE_URL and OPENAI_API_KEY: OpenAI SDKs and everything built on them.
        format!("{endpoint}/v1"),
        PLACEHOLDER_API_KEY.to_owned(),
        // LLM_MODEL, LLM_BASE_URL, LLM_ENDPOINTS.
        plan.ollama_model.to_owned(),
        format!("{endpoint}/v1"),
        endpoints.join(","),
    ];
    let mut vars: Vec<EnvVar> = STANDARD_CLIENT_ENV
        .iter()
        .zip(values)
        .map(|(name, value)| env(name, value))
        .collect();
    for extra in &plan.client_env {
        match vars.iter_mut().find(|v| v.name == extra.name) {
            Some(standard) => *standard = extra.clone(),
            None => vars.push(extra.clone()),
        }
    }
    vars
}

/// What injection puts before a user container's own env: each of the
/// `wanted` variables (by index) the container does not set yet, then
/// `NVIDIA_VISIBLE_DEVICES=void` when it neither sets that nor requests a
/// GPU. They go first because Kubernetes expands `$(VAR)` only against
/// variables defined earlier in the list, so the user's values can refer to
/// the injected ones; existing entries are never changed or reordered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct EnvAdditions {
    /// Indexes into the wanted variables, in their order.
    pub wanted: Vec<usize>,
    /// Whether `NVIDIA_VISIBLE_DEVICES=void` follows them.
    pub no_gpu: bool,
}

/// The device-visibility variable that `void` hides every GPU with.
pub const NO_GPU_ENV: (&str, &str) = ("NVIDIA_VISIBLE_DEVICES", "void");

impl EnvAdditions {
    /// What injection adds to `container`, given the `wanted` variables.
    pub fn of(container: &Container, wanted: &[EnvVar]) -> Self {
        let existing = container.env.as_deref().unwrap_or_default();
        let sets = |name: &str| existing.iter().any(|e| e.name == name);
        let indexes: Vec<usize> = (0..wanted.len())
            .filter(|&i| !sets(&wanted[i].name))
            .collect();
        let adds_visibility = indexes.iter().any(|&i| wanted[i].name == NO_GPU_ENV.0);
        EnvAdditions {
            no_gpu: !sets(NO_GPU_ENV.0) && !adds_visibility && !requests_gpu(container),
            wanted: indexes,
        }
    }

    /// Whether nothing is added.
    pub fn is_empty(&self) -> bool {
        self.wanted.is_empty() && !self.no_gpu
    }

    /// The variables added, in order.
    pub fn vars(&self, wanted: &[EnvVar]) -> Vec<EnvVar> {
        let mut vars: Vec<EnvVar> = self.wanted.iter().map(|&i| wanted[i].clone()).collect();
        if self.no_gpu {
            vars.push(env(NO_GPU_ENV.0, NO_GPU_ENV.1));
        }
        vars
    }
}

/// Whether a container is a known service-mesh proxy.
pub fn is_proxy(container: &Container) -> bool {
    PROXY_CONTAINERS.contains(&container.name.as_str())
}

/// The names whose value is the engine's address.
pub(crate) const ENDPOINT_NAMES: [&str; 4] = [
    "OLLAMA_HOST",
    "OLLAMA_BASE_URL",
    "OPENAI_BASE_URL",
    "LLM_BASE_URL",
];

/// The addresses (`host:port`) of the injected engines and router on the
/// pod's loopback: an endpoint value holding one of them is the injected
/// engine.
pub(crate) fn local_addresses(plan: &Plan) -> Vec<String> {
    (0..plan.instances)
        .map(|i| plan.instance_port(i))
        .chain(plan.router.as_ref().map(|r| r.port))
        .flat_map(|port| {
            ["127.0.0.1", "localhost", "[::1]"]
                .into_iter()
                .map(move |host| format!("{host}:{port}"))
        })
        .collect()
}

/// Warnings for user containers that set an endpoint name to an address
/// that is not one of the injected engine's: that container keeps its value
/// and does not use the engine whose GPUs the pod reserves.
pub fn endpoint_warnings(spec: &PodSpec, plan: &Plan) -> Vec<String> {
    let addresses = local_addresses(plan);
    let local = |value: &str| addresses.iter().any(|address| value.contains(address));
    let mut warnings = Vec::new();
    for container in spec.containers.iter().filter(|c| !is_proxy(c)) {
        for var in container.env.iter().flatten() {
            let Some(value) = var.value.as_deref() else {
                continue;
            };
            if ENDPOINT_NAMES.contains(&var.name.as_str()) && !value.contains("$(") && !local(value)
            {
                warnings.push(format!(
                    "container {:?} sets {}={value:?}, which is not the engine injected for LLMModel {:?} ({}), so that container keeps its value and does not use the engine the pod reserves {} for: remove that env entry to use the injected one, or remove the llm.injector.dev/model annotation",
                    container.name,
                    var.name,
                    plan.model_name,
                    plan.endpoint_url(),
                    reserved(plan),
                ));
            }
        }
    }
    warnings
}

/// Warnings for user containers that take env from a ConfigMap or Secret
/// (`envFrom`) whose keys could be names injection adds: Kubernetes gives
/// `env` entries precedence over `envFrom`, so such a key would be silently
/// replaced by the injected value. The keys are not known at admission, so
/// the warning says which names would win and how to keep one.
pub fn env_from_warnings(spec: &PodSpec, plan: &Plan, wanted: &[EnvVar]) -> Vec<String> {
    let mut warnings = Vec::new();
    for container in spec.containers.iter().filter(|c| !is_proxy(c)) {
        let additions = EnvAdditions::of(container, wanted).vars(wanted);
        let added: Vec<&str> = additions.iter().map(|v| v.name.as_str()).collect();
        let mut sources = Vec::new();
        let mut prefixes = Vec::new();
        for (index, source) in container.env_from.iter().flatten().enumerate() {
            let prefix = source.prefix.as_deref().unwrap_or_default();
            if !added.iter().any(|name| name.starts_with(prefix)) {
                continue;
            }
            let what = match (&source.config_map_ref, &source.secret_ref) {
                (Some(map), _) => format!("ConfigMap {:?}", map.name),
                (None, Some(secret)) => format!("Secret {:?}", secret.name),
                (None, None) => "a source".to_owned(),
            };
            sources.push(match prefix {
                "" => format!("{what} (envFrom[{index}])"),
                _ => format!("{what} (envFrom[{index}], prefix {prefix:?})"),
            });
            prefixes.push(prefix);
        }
        if !sources.is_empty() {
            let shadowed: Vec<&str> = added
                .iter()
                .copied()
                .filter(|name| prefixes.iter().any(|p| name.starts_with(p)))
                .collect();
            warnings.push(format!(
                "container {:?} takes env from {}, and env entries win over envFrom: a key there that becomes {} is replaced by the value injected for LLMModel {:?}; to keep yours, set it in the container's env, or in LLMModel spec.clientEnv for every pod of the model",
                container.name,
                sources.join(" and "),
                shadowed.join(", "),
                plan.model_name,
            ));
        }
    }
    warnings
}

/// What the engines of a plan hold on to, for messages.
fn reserved(plan: &Plan) -> String {
    match plan.gpus_per_instance * plan.instances {
        0 => "CPU and memory".to_owned(),
        1 => "1 GPU".to_owned(),
        n => format!("{n} GPUs"),
    }
}

/// The domains of the GPU vendors' extended resources.
pub(crate) const GPU_RESOURCE_PREFIXES: [&str; 3] = ["nvidia.com/", "amd.com/", "gpu.intel.com/"];
/// How any other domain names a GPU resource.
pub(crate) const GPU_RESOURCE_SUFFIX: &str = "/gpu";

/// Whether a container asks for a GPU: an extended resource of a GPU vendor
/// (`nvidia.com/...`, `amd.com/...`, `gpu.intel.com/...`), any `.../gpu`
/// resource, or a DRA claim.
pub fn requests_gpu(container: &Container) -> bool {
    let Some(resources) = &container.resources else {
        return false;
    };
    let gpu_key = |key: &String| {
        GPU_RESOURCE_PREFIXES
            .iter()
            .any(|prefix| key.starts_with(prefix))
            || key.ends_with(GPU_RESOURCE_SUFFIX)
    };
    resources
        .limits
        .iter()
        .chain(resources.requests.iter())
        .any(|m| m.keys().any(gpu_key))
        || resources.claims.as_ref().is_some_and(|c| !c.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ResourceClaim, ResourceRequirements};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use std::collections::BTreeMap;

    fn with_limit(key: &str) -> Container {
        Container {
            resources: Some(ResourceRequirements {
                limits: Some(BTreeMap::from([(key.to_owned(), Quantity("1".into()))])),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn requests_gpu_table() {
        let cases = [
            ("nvidia.com/gpu", true),
            ("nvidia.com/mig-1g.10gb", true),
            ("amd.com/gpu", true),
            ("gpu.intel.com/i915", true),
            ("example.com/gpu", true),
            ("cpu", false),
            ("memory", false),
            ("ephemeral-storage", false),
            ("example.com/fpga", false),
        ];
        for (key, expected) in cases {
            assert_eq!(requests_gpu(&with_limit(key)), expected, "{key}");
        }
        assert!(!requests_gpu(&Container::default()));
        let claimed = Container {
            resources: Some(ResourceRequirements {
                claims: Some(vec![ResourceClaim {
                    name: "gpu".into(),
                    request: None,
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(requests_gpu(&claimed));
    }

    #[test]
    fn user_env_goes_first_and_keeps_existing_values_and_order() {
        let container = Container {
            env: Some(vec![
                env("MODE", "chat"),
                env("OLLAMA_HOST", "http://elsewhere:1"),
            ]),
            ..Default::default()
        };
        let wanted = vec![
            env("OLLAMA_HOST", "http://127.0.0.1:11434"),
            env("LLM_MODEL", "m"),
        ];
        let mut env_vars = EnvAdditions::of(&container, &wanted).vars(&wanted);
        env_vars.extend(container.env.unwrap());
        let names: Vec<_> = env_vars
            .iter()
            .map(|e| (e.name.as_str(), e.value.as_deref().unwrap()))
            .collect();
        assert_eq!(
            names,
            [
                ("LLM_MODEL", "m"),
                ("NVIDIA_VISIBLE_DEVICES", "void"),
                ("MODE", "chat"),
                ("OLLAMA_HOST", "http://elsewhere:1"),
            ],
            "injected entries first (so the user's $(VAR) resolve), the user's kept in order"
        );
    }

    #[test]
    fn gpu_user_container_gets_no_void() {
        let container = with_limit("nvidia.com/gpu");
        assert!(EnvAdditions::of(&container, &[]).is_empty());
        assert!(!EnvAdditions::of(&Container::default(), &[]).is_empty());
    }
}
