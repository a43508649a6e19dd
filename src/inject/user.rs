//! What user containers get: the endpoint of the engine, and GPU isolation
//! for containers that request no GPU.

use k8s_openapi::api::core::v1::{Container, EnvVar};

use super::containers::env;
use super::plan::Plan;

/// The environment every user container gets unless it sets the variable itself.
pub fn endpoint_env(plan: &Plan) -> Vec<EnvVar> {
    let endpoint = plan.endpoint_url();
    let endpoints: Vec<String> = (0..plan.instances).map(|i| plan.instance_url(i)).collect();
    vec![
        env("OLLAMA_HOST", endpoint.clone()),
        env("LLM_MODEL", plan.ollama_model),
        env("LLM_BASE_URL", format!("{endpoint}/v1")),
        env("LLM_ENDPOINTS", endpoints.join(",")),
    ]
}

/// Appends each of `wanted` the container does not set yet, plus
/// `NVIDIA_VISIBLE_DEVICES=void` when it requests no GPU. Existing entries are
/// never changed or reordered.
pub fn add_user_env(container: &mut Container, wanted: &[EnvVar]) {
    let existing = container.env.as_deref().unwrap_or_default();
    let sets = |name: &str| existing.iter().any(|e| e.name == name);
    let mut additions: Vec<EnvVar> = wanted.iter().filter(|v| !sets(&v.name)).cloned().collect();
    if !sets("NVIDIA_VISIBLE_DEVICES") && !requests_gpu(container) {
        additions.push(env("NVIDIA_VISIBLE_DEVICES", "void"));
    }
    if !additions.is_empty() {
        container.env.get_or_insert_with(Vec::new).extend(additions);
    }
}

/// Whether a container asks for a GPU: an extended resource of a GPU vendor
/// (`nvidia.com/...`, `amd.com/...`, `gpu.intel.com/...`), any `.../gpu`
/// resource, or a DRA claim.
pub fn requests_gpu(container: &Container) -> bool {
    let Some(resources) = &container.resources else {
        return false;
    };
    let gpu_key = |key: &String| {
        let key = key.as_str();
        key.starts_with("nvidia.com/")
            || key.starts_with("amd.com/")
            || key.starts_with("gpu.intel.com/")
            || key.ends_with("/gpu")
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
    fn user_env_keeps_existing_values_and_order() {
        let mut container = Container {
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
        add_user_env(&mut container, &wanted);
        let names: Vec<_> = container
            .env
            .as_ref()
            .unwrap()
            .iter()
            .map(|e| (e.name.as_str(), e.value.as_deref().unwrap()))
            .collect();
        assert_eq!(
            names,
            [
                ("MODE", "chat"),
                ("OLLAMA_HOST", "http://elsewhere:1"),
                ("LLM_MODEL", "m"),
                ("NVIDIA_VISIBLE_DEVICES", "void"),
            ]
        );
    }

    #[test]
    fn gpu_user_container_gets_no_void() {
        let mut container = with_limit("nvidia.com/gpu");
        add_user_env(&mut container, &[]);
        assert_eq!(container.env, None, "nothing to add leaves env absent");
    }
}
