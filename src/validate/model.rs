//! The rules of an LLMModel: its own fields, and (when its engine exists) how
//! it fits that engine.

use std::collections::BTreeMap;

use super::client_env::check_client_env;
use super::fit::check_fit;
use super::memory::check_memory;
use super::names::{DNS_SUBDOMAIN_HINT, is_dns_subdomain};
use super::ollama::parse_ollama_name;
use super::report::{Report, Rule};
use crate::crd::{LLMEngine, LLMModel, LLMModelSpec, ModelFacts, Routing, Serving, Vendor};
use crate::duration::{KeepAlive, parse_keep_alive};
use crate::estimate::quantization::{bits_per_weight, known_quantizations, parse_parameters};
use crate::lookup::ModelLookup;
use crate::quantity;

/// Checks a model in `namespace` (the AdmissionRequest's: a new object may
/// carry none), with its engine looked up there. A missing engine is a
/// warning, not an error: applying a directory must not depend on file order.
pub fn validate_model<L: ModelLookup + ?Sized>(
    model: &LLMModel,
    namespace: &str,
    lookup: &L,
) -> Report {
    let engine_name = &model.spec.engine_ref.name;
    match lookup.engine(namespace, engine_name) {
        Some(engine) => validate_model_on(model, &engine),
        None => {
            let mut report = Report::default();
            check_model(&model.spec, None, &mut report);
            report.warn(
                Rule::MissingEngine,
                "spec.engineRef.name",
                format!("LLMEngine {engine_name:?} does not exist in namespace {namespace:?} (yet); pods asking for this model are rejected until it does: create the engine or fix engineRef"),
            );
            report
        }
    }
}

/// Checks a model on its engine: its own fields, and how it fits the engine.
/// Injection checks these same rules.
pub fn validate_model_on(model: &LLMModel, engine: &LLMEngine) -> Report {
    let mut report = Report::default();
    check_model(
        &model.spec,
        Some(engine.spec.accelerator.vendor),
        &mut report,
    );
    check_fit(&model.spec, engine, &mut report);
    // The memory of GPUs the model cannot have is beside the point.
    if report.is_allowed() {
        check_memory(&model.spec, engine, &mut report);
    }
    report
}

/// The model's own rules; `vendor` is its engine's, when known.
fn check_model(spec: &LLMModelSpec, vendor: Option<Vendor>, report: &mut Report) {
    check_ollama_model(&spec.model, report);
    let engine = &spec.engine_ref.name;
    if !is_dns_subdomain(engine) {
        report.error(
            Rule::EngineRefName,
            "spec.engineRef.name",
            format!("{engine:?} is not an LLMEngine name ({DNS_SUBDOMAIN_HINT}); name an LLMEngine in this namespace"),
        );
    }
    let data = spec.parallelism.data;
    if !(1..=64).contains(&data) {
        let problem = if data < 1 {
            "must be at least 1 (the number of engine instances)"
        } else {
            "exceeds 64, the most engine instances one pod runs; lower it"
        };
        report.error(
            Rule::DataParallelism,
            "spec.parallelism.data",
            format!("{data} {problem}"),
        );
    }
    if let Some(gpus) = spec.parallelism.model
        && !(0..=64).contains(&gpus)
    {
        let problem = if gpus < 0 {
            "is negative; set the number of GPUs per engine instance (0 on CPU)"
        } else {
            "exceeds 64 GPUs per engine instance; lower it"
        };
        report.error(
            Rule::ModelParallelism,
            "spec.parallelism.model",
            format!("{gpus} {problem}"),
        );
    }
    // The GPUs one instance sees: on a known engine what injection gives it;
    // otherwise what the CRD's rule assumes (parallelism.model, 1 when absent).
    // On a CPU engine devices are wrong altogether (see fit.rs).
    let gpus = match vendor {
        Some(Vendor::None) => None,
        Some(vendor) => Some(spec.effective_gpus(vendor)),
        None => Some(spec.parallelism.model.unwrap_or(1)),
    };
    check_devices(spec.devices.as_deref().unwrap_or_default(), gpus, report);
    if let Some(serving) = &spec.serving {
        check_serving(serving, report);
    }
    check_client_env(&spec.client_env, report);
    if let Some(routing) = &spec.routing {
        check_routing(routing, report);
    }
    if let Some(facts) = &spec.facts {
        check_facts(facts, report);
    }
}

/// The router's settings as its flags take them: an exposed port, one
/// affinity, a header name, a prefix length (the CRD's schema and CEL say
/// the same; checked here for `inject` and `validate` without a cluster).
fn check_routing(routing: &Routing, report: &mut Report) {
    if let Some(port) = routing.expose.as_ref().and_then(|e| e.port)
        && !(1..=65535).contains(&port)
    {
        report.error(
            Rule::Routing,
            "spec.routing.expose.port",
            format!("{port} is not a TCP port; use 1..65535, such as 8000"),
        );
    }
    let Some(affinity) = &routing.affinity else {
        return;
    };
    match (&affinity.header, affinity.prompt_prefix_bytes) {
        (Some(_), Some(_)) | (None, None) => report.error(
            Rule::Routing,
            "spec.routing.affinity",
            "takes exactly one of header (requests with the same value of this header go to one instance) and promptPrefixBytes (requests whose prompt begins the same go to one instance)",
        ),
        (Some(header), None) => {
            if header.is_empty()
                || header.len() > 128
                || !header.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+.^_`|~-".contains(&b))
            {
                report.error(
                    Rule::Routing,
                    "spec.routing.affinity.header",
                    format!("{header:?} is not an HTTP header name (letters, digits and !#$%&'*+.^_`|~-, at most 128); use a name such as X-Session-Id"),
                );
            }
        }
        (None, Some(bytes)) => {
            if !(1..=1_048_576).contains(&bytes) {
                report.error(
                    Rule::Routing,
                    "spec.routing.affinity.promptPrefixBytes",
                    format!("{bytes} is out of range; use 1..1048576 bytes, such as 1024"),
                );
            }
        }
    }
}

/// The facts the memory estimate reads as text: a size, a parameter count
/// and a quantization it knows (an unreadable one would leave the estimate
/// silently without them).
fn check_facts(facts: &ModelFacts, report: &mut Report) {
    if let Some(size) = &facts.weights_size
        && quantity::bytes(&size.0).is_none_or(|bytes| bytes == 0)
    {
        report.error(
            Rule::ModelFacts,
            "spec.facts.weightsSize",
            format!(
                "{:?} is not a size; write the model file's size as `ollama list` shows it, such as 5.2G or 4.9Gi",
                size.0
            ),
        );
    }
    if let Some(parameters) = &facts.parameters
        && parse_parameters(parameters).is_none()
    {
        report.error(
            Rule::ModelFacts,
            "spec.facts.parameters",
            format!("{parameters:?} is not a parameter count; write it as `ollama show` prints it, such as 8.0B or 596.05M"),
        );
    }
    if let Some(quantization) = &facts.quantization
        && bits_per_weight(quantization).is_none()
    {
        report.error(
            Rule::ModelFacts,
            "spec.facts.quantization",
            format!(
                "{quantization:?} is not a quantization the estimate knows ({}); give spec.facts.weightsSize instead",
                known_quantizations().collect::<Vec<_>>().join(", ")
            ),
        );
    }
}

fn check_ollama_model(model: &str, report: &mut Report) {
    match parse_ollama_name(model) {
        Err(why) => report.error(
            Rule::OllamaModel,
            "spec.model",
            format!("{model:?} is not an Ollama model reference: it {why}; write [host/][namespace/]name[:tag], such as qwen3:8b or hf.co/org/repo:Q4_K_M"),
        ),
        Ok(name) if name.tag.is_none_or(|t| t.eq_ignore_ascii_case("latest")) => report.warn(
            Rule::OllamaModelUnpinned,
            "spec.model",
            format!("{model:?} has no tag other than latest, and latest moves as the model is updated, so pods started at different times may serve different models; pin a tag such as qwen3:8b"),
        ),
        Ok(_) => {}
    }
}

/// Device indices: distinct, and (when the GPUs of one instance are known)
/// each an index below them, written without leading zeros, and all of them:
/// fewer devices than GPUs reserve GPUs that no engine uses.
fn check_devices(devices: &[String], gpus: Option<i32>, report: &mut Report) {
    let errors_before = report.errors.len();
    let mut first_seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (index, device) in devices.iter().enumerate() {
        let field = format!("spec.devices[{index}]");
        let first = *first_seen.entry(device).or_insert(index);
        if first != index {
            report.error(
                Rule::DuplicateDevice,
                field,
                format!("{device:?} is listed twice (first in spec.devices[{first}]); list each GPU once"),
            );
            continue;
        }
        let Some(gpus) = gpus else {
            continue;
        };
        let in_range = device
            .parse::<i32>()
            .is_ok_and(|i| (0..gpus).contains(&i) && i.to_string() == *device);
        if !in_range {
            let sees = match gpus {
                ..=0 => "no GPU".to_owned(),
                1 => "only GPU 0".to_owned(),
                _ => format!("GPUs 0..{}", gpus - 1),
            };
            report.error(
                Rule::BadDevice,
                field,
                format!("{device:?} is not a GPU index inside the engine container, which sees {sees}; device indices are container-relative: use values below parallelism.model ({gpus}) or remove devices"),
            );
        }
    }
    if let Some(gpus) = gpus
        && report.errors.len() == errors_before
        && !devices.is_empty()
        && devices.len() < gpus as usize
    {
        let listed = devices.len();
        report.error(
            Rule::DevicesLeaveGpusIdle,
            "spec.devices",
            format!("{devices:?} lists {listed} of the {gpus} GPUs that parallelism.model reserves for each engine instance, so {idle} reserved GPU(s) would stay idle: list all {gpus} (in the order Ollama should use them), lower parallelism.model to {listed}, or remove devices", idle = gpus as usize - listed),
        );
    }
}

fn check_serving(serving: &Serving, report: &mut Report) {
    let ranges = [
        (
            "contextLength",
            serving.context_length,
            256,
            1_048_576,
            "tokens",
        ),
        (
            "parallelRequests",
            serving.parallel_requests,
            1,
            512,
            "requests at once",
        ),
        ("maxQueue", serving.max_queue, 1, 65_536, "queued requests"),
    ];
    for (name, value, min, max, unit) in ranges {
        if let Some(value) = value
            && !(min..=max).contains(&value)
        {
            report.error(
                Rule::ServingRange,
                format!("spec.serving.{name}"),
                format!("{value} is out of range; use {min}..{max} {unit}"),
            );
        }
    }
    let Some(keep_alive) = &serving.keep_alive else {
        return;
    };
    match parse_keep_alive(keep_alive) {
        Err(why) => report.error(
            Rule::KeepAlive,
            "spec.serving.keepAlive",
            format!("{why}; Ollama would silently keep models for 5m instead"),
        ),
        Ok(KeepAlive::Nanos(0)) => report.warn(
            Rule::KeepAliveZero,
            "spec.serving.keepAlive",
            format!("{keep_alive:?} unloads the model after every request, so each request loads it again; use a duration such as 30m, or -1 to keep it loaded"),
        ),
        Ok(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use crate::validate::testing::{Row, check_table, engine, merged, model};
    use serde_json::{Value, json};

    /// Engines `cpu` and `gpu` (NVIDIA, at most 4 GPUs per instance) in namespace `ns`.
    fn catalog() -> Catalog {
        let mut catalog = Catalog::new();
        catalog.insert_engine(engine("cpu", json!({})));
        catalog.insert_engine(engine(
            "gpu",
            json!({"accelerator": {"vendor": "NVIDIA", "maxDevicesPerInstance": 4}}),
        ));
        catalog
    }

    #[test]
    fn model_rules_table() {
        // Each spec is merged into a valid model on the GPU engine.
        let rows: Vec<Row<Value>> = vec![
            ("minimal GPU model", json!({}), &[], &[]),
            (
                "hugging face",
                json!({"model": "hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M"}),
                &[],
                &[],
            ),
            (
                "untagged",
                json!({"model": "qwen3"}),
                &[],
                &["ollama_model_unpinned"],
            ),
            (
                "latest",
                json!({"model": "qwen3:latest"}),
                &[],
                &["ollama_model_unpinned"],
            ),
            (
                "digest",
                json!({"model": "qwen3@sha256:abc"}),
                &["ollama_model"],
                &[],
            ),
            (
                "dotted namespace",
                json!({"model": "my.team/qwen3:8b"}),
                &["ollama_model"],
                &[],
            ),
            (
                "bad engineRef",
                json!({"engineRef": {"name": "GPU"}}),
                &["engine_ref_name"],
                &["missing_engine"],
            ),
            (
                "missing engine",
                json!({"engineRef": {"name": "nope"}}),
                &[],
                &["missing_engine"],
            ),
            (
                "cpu model",
                json!({"engineRef": {"name": "cpu"}, "parallelism": {"model": 0}}),
                &[],
                &[],
            ),
            (
                "cpu default",
                json!({"engineRef": {"name": "cpu"}}),
                &[],
                &[],
            ),
            (
                "gpus on cpu",
                json!({"engineRef": {"name": "cpu"}, "parallelism": {"model": 2}}),
                &["gpu_on_cpu_engine"],
                &[],
            ),
            (
                "devices on cpu",
                json!({"engineRef": {"name": "cpu"}, "devices": ["0"]}),
                &["gpu_on_cpu_engine"],
                &[],
            ),
            (
                "no gpus on gpu",
                json!({"parallelism": {"model": 0}}),
                &["no_gpu_on_gpu_engine"],
                &[],
            ),
            (
                "too many",
                json!({"parallelism": {"model": 5}}),
                &["too_many_devices"],
                &[],
            ),
            (
                "negative gpus",
                json!({"parallelism": {"model": -1}}),
                &["model_parallelism"],
                &[],
            ),
            (
                "65 gpus",
                json!({"parallelism": {"model": 65}}),
                &["model_parallelism", "too_many_devices"],
                &[],
            ),
            (
                "data 0",
                json!({"parallelism": {"data": 0}}),
                &["data_parallelism"],
                &[],
            ),
            (
                "data 65",
                json!({"parallelism": {"data": 65}}),
                &["data_parallelism"],
                &[],
            ),
            (
                "2x2 with devices",
                json!({"parallelism": {"model": 2, "data": 2}, "devices": ["1", "0"]}),
                &[],
                &[],
            ),
            (
                "host index",
                json!({"devices": ["1"]}),
                &["bad_device"],
                &[],
            ),
            (
                "leading zero",
                json!({"parallelism": {"model": 2}, "devices": ["01"]}),
                &["bad_device"],
                &[],
            ),
            (
                "uuid",
                json!({"devices": ["GPU-0a1b"]}),
                &["bad_device"],
                &[],
            ),
            (
                "devices with no GPU",
                json!({"engineRef": {"name": "nope"}, "parallelism": {"model": 0}, "devices": ["0"]}),
                &["bad_device"],
                &["missing_engine"],
            ),
            (
                "devices on a GPU engine with parallelism.model 0",
                json!({"parallelism": {"model": 0}, "devices": ["0"]}),
                &["bad_device", "no_gpu_on_gpu_engine"],
                &[],
            ),
            (
                "duplicate",
                json!({"parallelism": {"model": 2}, "devices": ["0", "0"]}),
                &["duplicate_device"],
                &[],
            ),
            (
                "fewer devices than GPUs",
                json!({"parallelism": {"model": 2}, "devices": ["1"]}),
                &["devices_leave_gpus_idle"],
                &[],
            ),
            (
                "fewer devices than GPUs of 4",
                json!({"parallelism": {"model": 4}, "devices": ["3", "0"]}),
                &["devices_leave_gpus_idle"],
                &[],
            ),
            (
                "empty devices mean all GPUs",
                json!({"parallelism": {"model": 2}, "devices": []}),
                &[],
                &[],
            ),
            (
                "more devices than GPUs",
                json!({"parallelism": {"model": 1}, "devices": ["0", "1"]}),
                &["bad_device"],
                &[],
            ),
            (
                "devices without engine use parallelism.model",
                json!({"engineRef": {"name": "nope"}, "parallelism": {"model": 2}, "devices": ["1", "2"]}),
                &["bad_device"],
                &["missing_engine"],
            ),
            (
                "serving in range",
                json!({"serving": {"keepAlive": "30m", "contextLength": 8192, "parallelRequests": 4, "maxQueue": 512}}),
                &[],
                &[],
            ),
            (
                "context too short",
                json!({"serving": {"contextLength": 255}}),
                &["serving_range"],
                &[],
            ),
            (
                "no parallel requests",
                json!({"serving": {"parallelRequests": 0}}),
                &["serving_range"],
                &[],
            ),
            (
                "no queue",
                json!({"serving": {"maxQueue": 0}}),
                &["serving_range"],
                &[],
            ),
            (
                "queue too long",
                json!({"serving": {"maxQueue": 65537}}),
                &["serving_range"],
                &[],
            ),
            (
                "keep forever",
                json!({"serving": {"keepAlive": "-1"}}),
                &[],
                &[],
            ),
            (
                "seconds",
                json!({"serving": {"keepAlive": "3600"}}),
                &[],
                &[],
            ),
            (
                "bad keepAlive",
                json!({"serving": {"keepAlive": "30 min"}}),
                &["keep_alive"],
                &[],
            ),
            (
                "keepAlive 0",
                json!({"serving": {"keepAlive": "0"}}),
                &[],
                &["keep_alive_zero"],
            ),
            (
                "a router in front of one instance, exposed, with affinity",
                json!({"routing": {"router": "Always", "expose": {"port": 8000}, "clientKeepAlive": "Pass", "affinity": {"header": "X-Session-Id"}}}),
                &[],
                &[],
            ),
            (
                "prefix affinity",
                json!({"routing": {"affinity": {"promptPrefixBytes": 1024}}}),
                &[],
                &[],
            ),
            (
                "two affinities",
                json!({"routing": {"affinity": {"header": "X-Session-Id", "promptPrefixBytes": 1024}}}),
                &["routing"],
                &[],
            ),
            (
                "an empty affinity",
                json!({"routing": {"affinity": {}}}),
                &["routing"],
                &[],
            ),
            (
                "a header with a space",
                json!({"routing": {"affinity": {"header": "X Session"}}}),
                &["routing"],
                &[],
            ),
            (
                "no prefix",
                json!({"routing": {"affinity": {"promptPrefixBytes": 0}}}),
                &["routing"],
                &[],
            ),
            (
                "a port past 65535",
                json!({"routing": {"expose": {"port": 70000}}}),
                &["routing"],
                &[],
            ),
            (
                "exposed on an engine's port",
                json!({"routing": {"expose": {"port": 11434}}}),
                &["exposed_port"],
                &[],
            ),
        ];
        let base = json!({"model": "qwen3:8b", "engineRef": {"name": "gpu"}});
        check_table(rows, |extra| {
            let spec = merged(base.clone(), extra);
            validate_model(&model("m", spec), "ns", &catalog())
        });
    }

    #[test]
    fn messages_name_field_value_and_fix() {
        let spec = json!({"model": "qwen3:8b", "engineRef": {"name": "gpu"}, "devices": ["2"], "parallelism": {"data": 0}});
        let report = validate_model(&model("m", spec), "ns", &catalog());
        let messages: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            messages,
            [
                "spec.parallelism.data: 0 must be at least 1 (the number of engine instances)",
                "spec.devices[0]: \"2\" is not a GPU index inside the engine container, which sees only GPU 0; device indices are container-relative: use values below parallelism.model (1) or remove devices",
            ]
        );
        let missing = validate_model(
            &model(
                "m",
                json!({"model": "qwen3:8b", "engineRef": {"name": "later"}}),
            ),
            "team-a",
            &catalog(),
        );
        assert_eq!(
            missing.warnings[0].to_string(),
            "spec.engineRef.name: LLMEngine \"later\" does not exist in namespace \"team-a\" (yet); pods asking for this model are rejected until it does: create the engine or fix engineRef"
        );
    }

    #[test]
    fn facts_given_as_text_must_read() {
        let facts = |facts: serde_json::Value| {
            let spec = json!({"model": "qwen3:8b", "engineRef": {"name": "gpu"}, "facts": facts});
            validate_model(&model("m", spec), "ns", &catalog())
                .errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            facts(json!({"weightsSize": "5.2G", "parameters": "8.2B", "quantization": "q4_k_m"})),
            Vec::<String>::new()
        );
        let bad =
            facts(json!({"weightsSize": "big", "parameters": "eight", "quantization": "IQ9"}));
        assert_eq!(bad.len(), 3, "{bad:?}");
        assert_eq!(
            bad[0],
            "spec.facts.weightsSize: \"big\" is not a size; write the model file's size as `ollama list` shows it, such as 5.2G or 4.9Gi"
        );
        assert_eq!(
            bad[1],
            "spec.facts.parameters: \"eight\" is not a parameter count; write it as `ollama show` prints it, such as 8.0B or 596.05M"
        );
        assert!(
            bad[2].starts_with("spec.facts.quantization: \"IQ9\" is not a quantization the estimate knows (F32, F16, BF16, Q8_0,"),
            "{}",
            bad[2]
        );
        assert!(bad[2].ends_with("; give spec.facts.weightsSize instead"));
        assert_eq!(facts(json!({"weightsSize": "0"})).len(), 1);
    }
}
