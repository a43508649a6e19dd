//! The rules of one LLMEngine on its own.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::EnvVar;

use super::image::{mentions_rocm, parse_image};
use super::names::{DNS_SUBDOMAIN_HINT, extended_resource_problem, is_dns_subdomain};
use super::report::{Report, Rule};
use crate::crd::{
    Accelerator, Allocation, DEFAULT_AMD_IMAGE, DEFAULT_NVIDIA_IMAGE, LLMEngine, LLMEngineSpec,
    Vendor,
};
use crate::layout::RESERVED_ENGINE_ENV;

/// Checks one engine: image, port, accelerator, env, resources, model store.
pub fn validate_engine(engine: &LLMEngine) -> Report {
    let spec = &engine.spec;
    let mut report = Report::default();
    check_image(spec, &mut report);
    if !(1..=65535).contains(&spec.port) {
        report.error(
            Rule::EnginePort,
            "spec.port",
            format!("{} is not a TCP port; use 1..65535", spec.port),
        );
    }
    check_accelerator(&spec.accelerator, &mut report);
    check_env(&spec.env, &mut report);
    check_resources(spec, &mut report);
    check_model_store(spec, &mut report);
    report
}

fn check_image(spec: &LLMEngineSpec, report: &mut Report) {
    let vendor = spec.accelerator.vendor;
    let image = spec.effective_image();
    let parsed = match parse_image(image) {
        Ok(parsed) => parsed,
        Err(why) => {
            report.error(
                Rule::ImageReference,
                "spec.image",
                format!(
                    "{image:?} is not a valid image reference: it {why}; fix it, or remove image to use {}",
                    vendor.default_image()
                ),
            );
            return;
        }
    };
    if !parsed.is_pinned() {
        report.warn(
            Rule::ImageUnpinned,
            "spec.image",
            format!(
                "{image:?} is not pinned: without a tag, or with :latest, nodes pull whatever is newest and pods run different Ollama versions; pin a version such as {}",
                vendor.default_image()
            ),
        );
    }
    match vendor {
        Vendor::Nvidia if mentions_rocm(image) => report.error(
            Rule::RocmImageOnNvidia,
            "spec.image",
            format!(
                "{image:?} is a ROCm (AMD) build, which has no CUDA libraries: on NVIDIA GPUs Ollama would silently run on CPU; use a CUDA build such as {DEFAULT_NVIDIA_IMAGE}, or set accelerator.vendor AMD"
            ),
        ),
        // A digest alone says nothing about the build: no advice.
        Vendor::Amd if !mentions_rocm(image) && (parsed.tag.is_some() || parsed.digest.is_none()) => {
            report.warn(
                Rule::NonRocmImageOnAmd,
                "spec.image",
                format!(
                    "{image:?} does not look like a ROCm build (it does not mention rocm): without ROCm, Ollama runs on CPU on AMD GPUs; use a ROCm build such as {DEFAULT_AMD_IMAGE}, or ignore this if the image has ROCm"
                ),
            );
        }
        _ => {}
    }
}

fn check_accelerator(accelerator: &Accelerator, report: &mut Report) {
    let field = |name: &str| format!("spec.accelerator.{name}");
    if accelerator.vendor == Vendor::None {
        let gpu_settings = [
            (
                "resourceName",
                accelerator.resource_name.as_ref().map(|r| format!("{r:?}")),
            ),
            (
                "runtimeClassName",
                accelerator
                    .runtime_class_name
                    .as_ref()
                    .map(|r| format!("{r:?}")),
            ),
            (
                "maxDevicesPerInstance",
                accelerator.max_devices_per_instance.map(|n| n.to_string()),
            ),
            (
                "allocation",
                (accelerator.allocation == Allocation::Dra).then(|| "DRA".to_owned()),
            ),
            (
                "dra",
                accelerator.dra.as_ref().map(|_| "a DRA setting".to_owned()),
            ),
        ];
        for (name, value) in gpu_settings {
            if let Some(value) = value {
                report.error(
                    Rule::CpuEngineGpuSettings,
                    field(name),
                    format!(
                        "{value} is a GPU setting, but accelerator.vendor None is a CPU engine; remove {name} or set vendor NVIDIA or AMD"
                    ),
                );
            }
        }
        return;
    }

    if let Some(max) = accelerator.max_devices_per_instance
        && !(1..=64).contains(&max)
    {
        report.error(
            Rule::MaxDevices,
            field("maxDevicesPerInstance"),
            format!("{max} is out of range: one engine instance uses 1..64 GPUs; set it in that range or remove it (default 8)"),
        );
    }
    if let Some(memory) = &accelerator.memory_per_device
        && crate::quantity::bytes(&memory.0).is_none_or(|bytes| bytes == 0)
    {
        report.error(
            Rule::MemoryPerDevice,
            field("memoryPerDevice"),
            format!("{:?} is not an amount of memory; write the memory of one GPU as a quantity such as 24Gi or 80Gi, or remove it", memory.0),
        );
    }
    if let Some(resource) = &accelerator.resource_name {
        check_resource_name(resource, accelerator, report);
    }
    match (accelerator.allocation, &accelerator.dra) {
        (Allocation::Dra, None) => report.error(
            Rule::DraTemplate,
            field("dra.resourceClaimTemplateName"),
            "is missing; allocation DRA needs the ResourceClaimTemplate each engine instance claims",
        ),
        (Allocation::Dra, Some(dra)) if !is_dns_subdomain(&dra.resource_claim_template_name) => {
            report.error(
                Rule::DraTemplate,
                field("dra.resourceClaimTemplateName"),
                format!(
                    "{:?} is not a ResourceClaimTemplate name ({DNS_SUBDOMAIN_HINT}); name the template each engine instance claims",
                    dra.resource_claim_template_name
                ),
            );
        }
        (Allocation::DevicePlugin, Some(_)) => report.error(
            Rule::DraWithoutDra,
            field("dra"),
            "is only used with allocation DRA, but allocation is DevicePlugin; set allocation DRA or remove dra",
        ),
        _ => {}
    }
    if let Some(class) = &accelerator.runtime_class_name
        && !is_dns_subdomain(class)
    {
        report.error(
            Rule::RuntimeClassName,
            field("runtimeClassName"),
            format!("{class:?} is not a RuntimeClass name ({DNS_SUBDOMAIN_HINT}); use the name of a RuntimeClass such as nvidia"),
        );
    }
}

fn check_resource_name(resource: &str, accelerator: &Accelerator, report: &mut Report) {
    let field = "spec.accelerator.resourceName";
    if accelerator.allocation == Allocation::Dra {
        report.error(
            Rule::ResourceNameWithDra,
            field,
            format!("{resource:?} is a device-plugin resource, but with allocation DRA the ResourceClaimTemplate chooses the devices; remove resourceName"),
        );
        return;
    }
    if let Some(why) = extended_resource_problem(resource) {
        report.error(
            Rule::ResourceName,
            field,
            format!("{resource:?} is not an extended resource name: it {why}; use the device plugin's resource, such as nvidia.com/gpu or amd.com/gpu"),
        );
        return;
    }
    let owner = match resource.split_once('/').map(|(domain, _)| domain) {
        Some("nvidia.com") => Vendor::Nvidia,
        Some("amd.com") => Vendor::Amd,
        _ => return,
    };
    if owner != accelerator.vendor {
        let (theirs, ours) = (owner.as_str(), accelerator.vendor.as_str());
        report.error(
            Rule::ResourceNameVendor,
            field,
            format!("{resource:?} is a resource of {theirs} GPUs, but accelerator.vendor is {ours}: the engine would get {theirs} GPUs with {ours} settings; fix the vendor or the resource name"),
        );
    }
}

/// Engine env that sets what a model's `serving` sets: it comes after the
/// model's values in the container, so it wins.
const SERVING_ENV: &[(&str, &str)] = &[
    ("OLLAMA_CONTEXT_LENGTH", "contextLength"),
    ("OLLAMA_NUM_PARALLEL", "parallelRequests"),
    ("OLLAMA_MAX_QUEUE", "maxQueue"),
];

fn check_env(env: &[EnvVar], report: &mut Report) {
    let mut first_seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (index, var) in env.iter().enumerate() {
        let name = var.name.as_str();
        let field = format!("spec.env[{index}].name");
        let first = *first_seen.entry(name).or_insert(index);
        if first != index {
            report.error(
                Rule::DuplicateEngineEnv,
                field,
                format!("{name} is set twice (first in spec.env[{first}]); keep one"),
            );
        } else if RESERVED_ENGINE_ENV.contains(&name) {
            report.error(
                Rule::ReservedEngineEnv,
                field,
                format!("{name} is set by the injector itself for every engine instance (from the engine's port, the model store and the LLMModel); remove it from the engine"),
            );
        } else if let Some((_, serving)) = SERVING_ENV.iter().find(|(n, _)| *n == name) {
            report.warn(
                Rule::EngineEnvOverridesServing,
                field,
                format!("{name} applies to every LLMModel on this engine and overrides their serving.{serving}; prefer serving.{serving} in the LLMModels"),
            );
        }
    }
}

/// GPU resources of the well-known device plugins, whatever the engine's vendor.
fn is_gpu_resource(name: &str, engine_resource: Option<&str>) -> bool {
    Some(name) == engine_resource || name.starts_with("nvidia.com/") || name.starts_with("amd.com/")
}

fn check_resources(spec: &LLMEngineSpec, report: &mut Report) {
    let Some(resources) = &spec.resources else {
        return;
    };
    let engine_resource = spec.effective_resource_name();
    for (kind, map) in [
        ("limits", &resources.limits),
        ("requests", &resources.requests),
    ] {
        for name in map.iter().flat_map(|m| m.keys()) {
            if is_gpu_resource(name, engine_resource) {
                report.error(
                    Rule::EngineResources,
                    format!("spec.resources.{kind}[{name}]"),
                    format!("{name} is a GPU resource, which the injector adds to each engine instance from the LLMModel's parallelism.model; remove it from the engine's resources"),
                );
            }
        }
    }
    if resources.claims.as_ref().is_some_and(|c| !c.is_empty()) {
        report.error(
            Rule::EngineResources,
            "spec.resources.claims",
            "names resource claims, but the pod has none for the engine: the injector adds one claim per instance with allocation DRA; remove claims and set accelerator.allocation DRA",
        );
    }
}

fn check_model_store(spec: &LLMEngineSpec, report: &mut Report) {
    let Some(store) = &spec.model_store else {
        return;
    };
    if store.empty_dir.is_some() == store.persistent_volume_claim.is_some() {
        report.error(
            Rule::ModelStore,
            "spec.modelStore",
            "takes exactly one of emptyDir or persistentVolumeClaim; keep one",
        );
    }
    if let Some(claim) = &store.persistent_volume_claim
        && !is_dns_subdomain(&claim.claim_name)
    {
        report.error(
            Rule::ModelStore,
            "spec.modelStore.persistentVolumeClaim.claimName",
            format!(
                "{:?} is not a PersistentVolumeClaim name ({DNS_SUBDOMAIN_HINT})",
                claim.claim_name
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::testing::{Row, check_table, engine, merged};
    use serde_json::{Value, json};

    const SHA: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

    #[test]
    fn engine_rules_table() {
        let nvidia = |extra| merged(json!({"accelerator": {"vendor": "NVIDIA"}}), extra);
        let amd = |extra| merged(json!({"accelerator": {"vendor": "AMD"}}), extra);
        let rows: Vec<Row<Value>> = vec![
            ("empty spec: CPU engine with defaults", json!({}), &[], &[]),
            ("nvidia defaults", nvidia(json!({})), &[], &[]),
            ("amd defaults", amd(json!({})), &[], &[]),
            (
                "pinned image",
                nvidia(json!({"image": "ollama/ollama:0.12.6"})),
                &[],
                &[],
            ),
            (
                "digest image",
                nvidia(json!({"image": format!("ollama/ollama@{SHA}")})),
                &[],
                &[],
            ),
            (
                "bad image",
                json!({"image": "Ollama/Ollama:1"}),
                &["image_reference"],
                &[],
            ),
            (
                "empty image",
                json!({"image": ""}),
                &["image_reference"],
                &[],
            ),
            (
                "latest image",
                json!({"image": "ollama/ollama:latest"}),
                &[],
                &["image_unpinned"],
            ),
            (
                "untagged image",
                json!({"image": "ollama/ollama"}),
                &[],
                &["image_unpinned"],
            ),
            (
                "rocm on nvidia",
                nvidia(json!({"image": "ollama/ollama:0.12.6-rocm"})),
                &["rocm_image_on_nvidia"],
                &[],
            ),
            (
                "rocm on cpu is fine",
                json!({"image": "ollama/ollama:0.12.6-rocm"}),
                &[],
                &[],
            ),
            (
                "cuda on amd",
                amd(json!({"image": "ollama/ollama:0.12.6"})),
                &[],
                &["non_rocm_image_on_amd"],
            ),
            (
                "rocm on amd",
                amd(json!({"image": "example.com/rocm/ollama:1"})),
                &[],
                &[],
            ),
            (
                "digest-only on amd",
                amd(json!({"image": format!("ollama/ollama@{SHA}")})),
                &[],
                &[],
            ),
            ("port 0", json!({"port": 0}), &["engine_port"], &[]),
            ("port 65536", json!({"port": 65536}), &["engine_port"], &[]),
            ("port 65535", json!({"port": 65535}), &[], &[]),
            (
                "cpu with every GPU setting",
                json!({"accelerator": {"vendor": "None", "resourceName": "nvidia.com/gpu", "runtimeClassName": "nvidia", "maxDevicesPerInstance": 2, "allocation": "DRA", "dra": {"resourceClaimTemplateName": "x"}}}),
                &["cpu_engine_gpu_settings"; 5],
                &[],
            ),
            (
                "max devices 0",
                nvidia(json!({"accelerator": {"maxDevicesPerInstance": 0}})),
                &["max_devices"],
                &[],
            ),
            (
                "max devices 65",
                nvidia(json!({"accelerator": {"maxDevicesPerInstance": 65}})),
                &["max_devices"],
                &[],
            ),
            (
                "mig resource",
                nvidia(json!({"accelerator": {"resourceName": "nvidia.com/mig-1g.10gb"}})),
                &[],
                &[],
            ),
            (
                "resource without domain",
                nvidia(json!({"accelerator": {"resourceName": "gpu"}})),
                &["resource_name"],
                &[],
            ),
            (
                "amd resource on nvidia",
                nvidia(json!({"accelerator": {"resourceName": "amd.com/gpu"}})),
                &["resource_name_vendor"],
                &[],
            ),
            (
                "nvidia resource on amd",
                amd(json!({"accelerator": {"resourceName": "nvidia.com/gpu"}})),
                &["resource_name_vendor"],
                &[],
            ),
            (
                "other vendor's plugin",
                amd(json!({"accelerator": {"resourceName": "example.com/gpu"}})),
                &[],
                &[],
            ),
            (
                "dra",
                nvidia(
                    json!({"accelerator": {"allocation": "DRA", "dra": {"resourceClaimTemplateName": "two-gpus"}}}),
                ),
                &[],
                &[],
            ),
            (
                "dra without template",
                nvidia(json!({"accelerator": {"allocation": "DRA"}})),
                &["dra_template"],
                &[],
            ),
            (
                "dra with bad template",
                nvidia(
                    json!({"accelerator": {"allocation": "DRA", "dra": {"resourceClaimTemplateName": "Two_GPUs"}}}),
                ),
                &["dra_template"],
                &[],
            ),
            (
                "dra settings without dra",
                nvidia(json!({"accelerator": {"dra": {"resourceClaimTemplateName": "x"}}})),
                &["dra_without_dra"],
                &[],
            ),
            (
                "resourceName with dra",
                nvidia(
                    json!({"accelerator": {"allocation": "DRA", "resourceName": "nvidia.com/gpu", "dra": {"resourceClaimTemplateName": "x"}}}),
                ),
                &["resource_name_with_dra"],
                &[],
            ),
            (
                "runtime class",
                nvidia(json!({"accelerator": {"runtimeClassName": "nvidia"}})),
                &[],
                &[],
            ),
            (
                "bad runtime class",
                nvidia(json!({"accelerator": {"runtimeClassName": "NVIDIA"}})),
                &["runtime_class_name"],
                &[],
            ),
            (
                "own env",
                json!({"env": [{"name": "OLLAMA_FLASH_ATTENTION", "value": "1"}]}),
                &[],
                &[],
            ),
            (
                "reserved env",
                json!({"env": [{"name": "OLLAMA_HOST", "value": "x"}]}),
                &["reserved_engine_env"],
                &[],
            ),
            (
                "duplicate env",
                json!({"env": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]}),
                &["duplicate_engine_env"],
                &[],
            ),
            (
                "serving env",
                json!({"env": [{"name": "OLLAMA_NUM_PARALLEL", "value": "4"}]}),
                &[],
                &["engine_env_overrides_serving"],
            ),
            (
                "cpu and memory",
                json!({"resources": {"requests": {"cpu": "2"}, "limits": {"memory": "8Gi", "example.com/fpga": "1"}}}),
                &[],
                &[],
            ),
            (
                "gpu limit",
                nvidia(json!({"resources": {"limits": {"nvidia.com/gpu": "1"}}})),
                &["engine_resources"],
                &[],
            ),
            (
                "gpu request on cpu",
                json!({"resources": {"requests": {"amd.com/gpu": "1"}}}),
                &["engine_resources"],
                &[],
            ),
            (
                "custom resource is the engine's",
                amd(
                    json!({"accelerator": {"resourceName": "example.com/gpu"}, "resources": {"limits": {"example.com/gpu": "1"}}}),
                ),
                &["engine_resources"],
                &[],
            ),
            (
                "claims",
                nvidia(json!({"resources": {"claims": [{"name": "gpu"}]}})),
                &["engine_resources"],
                &[],
            ),
            (
                "pvc store",
                json!({"modelStore": {"persistentVolumeClaim": {"claimName": "models"}}}),
                &[],
                &[],
            ),
            (
                "bad pvc name",
                json!({"modelStore": {"persistentVolumeClaim": {"claimName": "Models"}}}),
                &["model_store"],
                &[],
            ),
            (
                "two stores",
                json!({"modelStore": {"emptyDir": {}, "persistentVolumeClaim": {"claimName": "m"}}}),
                &["model_store"],
                &[],
            ),
            ("no store", json!({"modelStore": {}}), &["model_store"], &[]),
        ];
        check_table(rows, |spec| validate_engine(&engine("e", spec)));
    }

    #[test]
    fn every_reserved_variable_is_denied() {
        for name in RESERVED_ENGINE_ENV {
            let spec = json!({"env": [{"name": name, "value": "x"}]});
            let (errors, _) = validate_engine(&engine("e", spec)).ids();
            assert_eq!(errors, ["reserved_engine_env"], "{name}");
        }
    }

    #[test]
    fn messages_name_field_value_and_fix() {
        let engine = engine(
            "e",
            json!({"accelerator": {"vendor": "NVIDIA"}, "image": "ollama/ollama:0.12.6-rocm", "port": 0}),
        );
        let messages: Vec<String> = validate_engine(&engine)
            .errors
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            messages,
            [
                "spec.image: \"ollama/ollama:0.12.6-rocm\" is a ROCm (AMD) build, which has no CUDA libraries: on NVIDIA GPUs Ollama would silently run on CPU; use a CUDA build such as ollama/ollama:0.12.6, or set accelerator.vendor AMD",
                "spec.port: 0 is not a TCP port; use 1..65535",
            ]
        );
    }
}
