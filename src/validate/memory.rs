//! Whether one engine instance of a model fits the memory of its GPUs, by
//! [`crate::estimate`], when the engine says how much memory a GPU has
//! (`accelerator.memoryPerDevice`) or, without it, by the largest GPUs the
//! cluster's Nodes are labelled with. The facts come from the model's
//! `spec.facts` over the built-in table of Ollama library models; the
//! Ollama settings from the model's `serving` and the engine's `env`.

use super::report::{Report, Rule};
use crate::crd::{LLMEngine, LLMModelSpec, ModelArchitecture, Vendor};
use crate::estimate::quantization::{known_quantizations, parse_parameters, weights_bytes};
use crate::estimate::{
    self, Architecture, GPU_MINIMUM_MEMORY, Gpus, KvCacheType, ModelFacts, Placement, Serving, gib,
    library_model,
};
use crate::nodes::NodeGpus;
use crate::quantity;

/// What the memory check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemoryFit {
    /// Not checked: a CPU engine, or the GPUs' memory unknown.
    NotChecked(String),
    /// Facts the estimate needs are unknown (the message names them).
    Unknown(String),
    /// Everything fits the GPUs.
    Fits(String),
    /// Some layers would run on the CPU.
    Offloads(String),
    /// No layer fits a GPU: the model would run on the CPU, the GPUs idle.
    DoesNotFit(String),
}

/// The memory check of `spec` on `engine`: on GPUs of the engine's
/// `accelerator.memoryPerDevice`, else on the largest GPUs that `nodes`
/// (the cluster's, when known) are labelled with and offer as many of as
/// an instance asks for.
pub fn memory_fit(spec: &LLMModelSpec, engine: &LLMEngine, nodes: &[NodeGpus]) -> MemoryFit {
    let engine_name = engine.metadata.name.as_deref().unwrap_or_default();
    let accelerator = &engine.spec.accelerator;
    if accelerator.vendor == Vendor::None {
        return MemoryFit::NotChecked(format!(
            "LLMEngine {engine_name:?} is CPU-only: no GPU memory to check"
        ));
    }
    let count = u32::try_from(spec.effective_gpus(accelerator.vendor)).unwrap_or(0);
    if count == 0 {
        // On a GPU engine that is its own error (no_gpu_on_gpu_engine).
        return MemoryFit::NotChecked(
            "parallelism.model 0 asks for no GPU: no GPU memory to check".to_owned(),
        );
    }
    let (memory, whose) = match gpu_memory(engine, count, nodes) {
        Ok(found) => found,
        Err(why) => return MemoryFit::NotChecked(why),
    };
    let gpus = |count: u32| Gpus {
        count,
        memory,
        minimum: GPU_MINIMUM_MEMORY,
    };
    let KnownFacts {
        facts,
        name,
        estimated_weights,
    } = facts_of(spec);
    let serving = serving_of(spec, engine);
    let found = match estimate::estimate(&facts, &serving, count) {
        Ok(found) => found,
        Err(missing) => {
            let gemma_without_window = spec
                .facts
                .as_ref()
                .is_some_and(|f| f.architecture == Some(ModelArchitecture::Gemma3));
            let fields: Vec<String> = missing
                .iter()
                .map(|m| match m.0 {
                    // Gemma3 is known only with its window.
                    "architecture" if gemma_without_window => "spec.facts.slidingWindow".to_owned(),
                    // A size, or what estimates one.
                    "weightsSize" => {
                        "spec.facts.weightsSize (or parameters and quantization)".to_owned()
                    }
                    name => format!("spec.facts.{name}"),
                })
                .collect();
            let table = if library_model(&spec.model).is_some() {
                format!(
                    "the built-in table of Ollama library models knows {} but not that",
                    spec.model
                )
            } else {
                format!(
                    "{} is not in the built-in table of Ollama library models",
                    spec.model
                )
            };
            return MemoryFit::Unknown(format!(
                "cannot tell whether {name} fits {count} x {}: {} unknown ({table}); set {} from `ollama show --verbose` or the model's config.json",
                gib(memory),
                fields.join(", "),
                fields.join(", "),
            ));
        }
    };
    let approximate = if found.approximate {
        " (Ollama measures this model family's compute graph when loading; the graph here is the llama formula's)"
    } else {
        ""
    };
    let needs = format!(
        "{name} needs ~{} on {count} GPU(s) at a context of {} x {} request(s) ({} weights{}, {} KV cache ({}), {} compute graph and {} kept free per GPU){approximate}",
        gib(found.needed(&gpus(count))),
        found.context,
        found.parallel,
        gib(found.weights),
        estimated_weights.map_or(String::new(), |how| format!(" {how}")),
        gib(found.kv_cache),
        found.kv_cache_type.as_str(),
        gib(found.graph),
        gib(found.reserved + GPU_MINIMUM_MEMORY),
    );
    let has = format!("an instance has {count} x {}{whose}", gib(memory));
    match found.placement(&gpus(count)) {
        Placement::Gpu => MemoryFit::Fits(format!("{needs}; {has}")),
        Placement::Split { on_gpu, layers } => MemoryFit::Offloads(format!(
            "{needs}; {has}: Ollama puts {on_gpu} of its {layers} layers on the GPU(s) and runs the rest on the CPU, several times slower; {}",
            fix(engine, &facts, &serving, gpus, count)
        )),
        Placement::Cpu => MemoryFit::DoesNotFit(format!(
            "{needs}; {has}, where not one layer fits beside what each GPU keeps: Ollama would run the model on the CPU and leave the GPUs idle; {}",
            fix(engine, &facts, &serving, gpus, count)
        )),
    }
}

/// The memory of one GPU of an instance of `engine` with `count` GPUs, and
/// where that figure comes from when not from the engine; or why it is
/// unknown.
fn gpu_memory(engine: &LLMEngine, count: u32, nodes: &[NodeGpus]) -> Result<(u64, String), String> {
    let engine_name = engine.metadata.name.as_deref().unwrap_or_default();
    if let Some(size) = &engine.spec.accelerator.memory_per_device {
        return match quantity::bytes(&size.0) {
            Some(memory) => Ok((memory, String::new())),
            None => Err(format!(
                "LLMEngine {engine_name:?} accelerator.memoryPerDevice {:?} is not a quantity such as 24Gi",
                size.0
            )),
        };
    }
    let unknown = format!(
        "LLMEngine {engine_name:?} does not say how much memory its GPUs have: set accelerator.memoryPerDevice (for example 24Gi) to check that the model fits"
    );
    let resource = match engine.spec.effective_resource_name() {
        Some(resource) if !nodes.is_empty() => resource,
        _ => return Err(unknown),
    };
    let largest = nodes
        .iter()
        .filter(|n| {
            n.allocatable
                .get(resource)
                .is_some_and(|c| *c >= u64::from(count))
        })
        .filter_map(|n| Some((n.memory_for(resource)?, n)))
        .max_by(|(a, n), (b, m)| a.cmp(b).then_with(|| m.name.cmp(&n.name)));
    match largest {
        Some((memory, node)) => Ok((
            memory,
            format!(
                " at most (the largest GPUs of a Node offering {count} {resource}, as its labels say: Node {}{}; the engine sets no accelerator.memoryPerDevice)",
                node.name,
                node.product
                    .as_deref()
                    .map(|p| format!(", {p}"))
                    .unwrap_or_default()
            ),
        )),
        None => Err(format!(
            "{unknown}, and no Node offering {count} {resource} has a GPU memory label ({} or {})",
            crate::nodes::NVIDIA_MEMORY,
            crate::nodes::AMD_VRAM
        )),
    }
}

/// What an instance runs on the CPU (everything on a CPU engine; the layers
/// that do not fit the GPUs of `memoryPerDevice`), when it needs more than
/// the memory limit of the engine container: why, and the fix.
fn host_memory_excess(spec: &LLMModelSpec, engine: &LLMEngine) -> Option<String> {
    let engine_name = engine.metadata.name.as_deref().unwrap_or_default();
    let limit_text = engine.spec.effective_memory_limit();
    let limit = quantity::bytes(limit_text)?;
    let KnownFacts { facts, name, .. } = facts_of(spec);
    let serving = serving_of(spec, engine);
    let vendor = engine.spec.accelerator.vendor;
    let count = u32::try_from(spec.effective_gpus(vendor)).unwrap_or(0);
    let found = estimate::estimate(&facts, &serving, count.max(1)).ok()?;
    let (on_cpu, what) = if vendor == Vendor::None || count == 0 {
        let all = found.weights.saturating_add(found.kv_cache);
        (all, "the whole model runs on the CPU".to_owned())
    } else {
        let memory = quantity::bytes(&engine.spec.accelerator.memory_per_device.as_ref()?.0)?;
        let gpus = Gpus {
            count,
            memory,
            minimum: GPU_MINIMUM_MEMORY,
        };
        match found.placement(&gpus) {
            Placement::Split { on_gpu, layers } => {
                let rest = layers - on_gpu;
                (
                    found.layer.saturating_mul(u64::from(rest)),
                    format!("{rest} of its {layers} layers run on the CPU"),
                )
            }
            // Fits: little on the CPU. No layer on a GPU: refused anyway.
            Placement::Gpu | Placement::Cpu => return None,
        }
    };
    let needed = on_cpu.saturating_add(found.graph);
    (needed > limit).then(|| {
        format!(
            "{name} needs ~{} of memory outside the GPUs ({what}: their weights and KV cache at a context of {} x {}, and the compute graph), but LLMEngine {engine_name:?} limits its container to {limit_text} (resources.limits.memory): past the limit Ollama is OOM-killed or pages its weights from disk; raise the engine's resources.limits.memory to at least {}, or lower serving.contextLength or serving.parallelRequests",
            gib(needed),
            found.context,
            found.parallel,
            gib(needed),
        )
    })
}

/// How to make it fit: more GPUs per instance (up to the engine's limit),
/// a smaller context or fewer parallel requests, or larger GPUs.
fn fix(
    engine: &LLMEngine,
    facts: &ModelFacts,
    serving: &Serving,
    gpus: impl Fn(u32) -> Gpus,
    count: u32,
) -> String {
    let max = u32::try_from(engine.spec.effective_max_devices()).unwrap_or(0);
    let wider = (count + 1..=max).find(|&n| {
        estimate::estimate(facts, serving, n).is_ok_and(|e| e.placement(&gpus(n)) == Placement::Gpu)
    });
    let mut fixes = Vec::new();
    if let Some(n) = wider {
        fixes.push(format!("raise parallelism.model to {n}"));
    }
    let defaults = Serving {
        context_length: Some(2048),
        parallel_requests: Some(1),
        ..*serving
    };
    if estimate::estimate(facts, &defaults, count)
        .is_ok_and(|e| e.placement(&gpus(count)) == Placement::Gpu)
    {
        fixes.push("lower serving.contextLength or serving.parallelRequests".to_owned());
    }
    let needed = estimate::estimate(facts, serving, 1)
        .map(|e| e.needed(&gpus(1)))
        .unwrap_or_default();
    fixes.push(format!(
        "use GPUs with more memory (one GPU would need ~{})",
        gib(needed)
    ));
    match fixes.len() {
        1 => fixes.remove(0),
        _ => {
            let last = fixes.pop().unwrap_or_default();
            format!("{}, or {last}", fixes.join(", "))
        }
    }
}

/// What the estimate knows of a model, and how messages name it.
pub(super) struct KnownFacts {
    pub(super) facts: ModelFacts,
    /// `spec.model`, with its quantization when known.
    pub(super) name: String,
    /// How the weights were estimated, when no size was given or known.
    pub(super) estimated_weights: Option<String>,
}

/// The model's facts: `spec.facts` over the built-in table's. The weights
/// are `spec.facts.weightsSize`; else estimated from the parameters and
/// quantization when the spec gives either (the table the other); else the
/// table's size; else estimated from the table's parameters and quantization.
pub(super) fn facts_of(spec: &LLMModelSpec) -> KnownFacts {
    let known = library_model(&spec.model);
    let mut facts = known.map(|m| m.facts).unwrap_or_default();
    let given = spec.facts.clone().unwrap_or_default();
    let given_size = given
        .weights_size
        .as_ref()
        .and_then(|s| quantity::bytes(&s.0));
    // A user's size describes another file than the table's row.
    let table_quantization = known
        .and_then(|m| m.quantization)
        .filter(|_| given.weights_size.is_none());
    let quantization = given
        .quantization
        .as_deref()
        .and_then(|q| known_quantizations().find(|known| known.eq_ignore_ascii_case(q.trim())))
        .or(table_quantization);
    let given_parameters = given.parameters.as_deref().and_then(parse_parameters);
    let parameters = given_parameters.or(known.and_then(|m| m.parameters));
    let estimated = || {
        let (parameters, quantization) = (parameters?, quantization?);
        Some((
            weights_bytes(parameters, quantization)?,
            format!(
                "estimated from {:.1}B parameters at {quantization}",
                parameters as f64 / 1e9
            ),
        ))
    };
    let mut estimated_weights = None;
    if given.weights_size.is_some() {
        facts.weights = given_size;
    } else if given_parameters.is_some() || given.quantization.is_some() || facts.weights.is_none()
    {
        let found = estimated();
        facts.weights = found.as_ref().map(|(bytes, _)| *bytes);
        estimated_weights = found.map(|(_, how)| how);
    }
    facts.layers = positive(given.layers).or(facts.layers);
    facts.attention_heads = positive(given.attention_heads).or(facts.attention_heads);
    facts.kv_heads = positive(given.kv_heads).or(facts.kv_heads);
    facts.head_dim = positive(given.head_dim).or(facts.head_dim);
    facts.embedding_length = positive(given.embedding_length).or(facts.embedding_length);
    facts.vocabulary = positive(given.vocabulary).or(facts.vocabulary);
    facts.trained_context = positive(given.trained_context).or(facts.trained_context);
    if let Some(architecture) = given.architecture {
        let known_window = match facts.architecture {
            Some(Architecture::Gemma3 { sliding_window }) => Some(sliding_window),
            _ => None,
        };
        facts.architecture = match architecture {
            ModelArchitecture::Llama => Some(Architecture::Llama),
            ModelArchitecture::Phi3 => Some(Architecture::Phi3),
            ModelArchitecture::Qwen3 => Some(Architecture::Qwen3),
            ModelArchitecture::Bert => Some(Architecture::Bert),
            ModelArchitecture::Gemma3 => positive(given.sliding_window)
                .or(known_window)
                .map(|sliding_window| Architecture::Gemma3 { sliding_window }),
        };
    }
    let name = match quantization {
        Some(q) => format!("{} {q}", spec.model),
        None => spec.model.clone(),
    };
    KnownFacts {
        facts,
        name,
        estimated_weights,
    }
}

/// A count the CRD gives as `i32`, when it is above 0.
fn positive(n: Option<i32>) -> Option<u32> {
    n.and_then(|n| u32::try_from(n).ok()).filter(|n| *n > 0)
}

/// The Ollama settings that change memory: the model's `serving`, and the
/// engine's `env` for the rest.
pub(super) fn serving_of(spec: &LLMModelSpec, engine: &LLMEngine) -> Serving {
    let env = |name: &str| {
        engine
            .spec
            .env
            .iter()
            .find(|e| e.name == name)
            .and_then(|e| e.value.as_deref())
    };
    let number = |name: &str| env(name).and_then(|v| v.trim().parse::<u32>().ok());
    let serving = spec.serving.as_ref();
    Serving {
        context_length: positive(serving.and_then(|s| s.context_length))
            .or_else(|| number("OLLAMA_CONTEXT_LENGTH")),
        parallel_requests: positive(serving.and_then(|s| s.parallel_requests))
            .or_else(|| number("OLLAMA_NUM_PARALLEL")),
        kv_cache_type: match env("OLLAMA_KV_CACHE_TYPE")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("q8_0") => KvCacheType::Q8_0,
            Some("q4_0") => KvCacheType::Q4_0,
            _ => KvCacheType::F16,
        },
        // Go's strconv.ParseBool, as Ollama's envconfig.Bool reads it.
        flash_attention: env("OLLAMA_FLASH_ATTENTION").and_then(|v| match v.trim() {
            "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
            "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
            _ => None,
        }),
        gpu_overhead: env("OLLAMA_GPU_OVERHEAD")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0),
    }
}

/// The memory check as validation: no layer on a GPU is an error, some on
/// the CPU or unknown facts a warning.
pub(super) fn check_memory(spec: &LLMModelSpec, engine: &LLMEngine, report: &mut Report) {
    if let Some(message) = host_memory_excess(spec, engine) {
        report.warn(Rule::EngineMemoryLimit, "spec.engineRef.name", message);
    }
    // Rules hold the engine to what it says; Nodes come and go, so what
    // their labels say is advice (`node_advice`) and status, not a rule.
    match memory_fit(spec, engine, &[]) {
        MemoryFit::NotChecked(_) | MemoryFit::Fits(_) => {}
        MemoryFit::Unknown(message) => report.warn(Rule::MemoryUnknown, "spec.facts", message),
        MemoryFit::Offloads(message) => {
            report.warn(Rule::ModelOffloadsToCpu, "spec.parallelism.model", message)
        }
        MemoryFit::DoesNotFit(message) => report.error(
            Rule::ModelExceedsGpuMemory,
            "spec.parallelism.model",
            message,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::testing;
    use serde_json::json;

    fn engine(memory: Option<&str>, env: serde_json::Value) -> LLMEngine {
        testing::engine(
            "gpu",
            json!({"accelerator": {"vendor": "NVIDIA", "maxDevicesPerInstance": 4, "memoryPerDevice": memory}, "env": env}),
        )
    }

    fn spec(
        model: &str,
        gpus: i32,
        serving: serde_json::Value,
        facts: serde_json::Value,
    ) -> LLMModelSpec {
        serde_json::from_value(json!({
            "model": model, "engineRef": {"name": "gpu"},
            "parallelism": {"model": gpus}, "serving": serving, "facts": facts,
        }))
        .unwrap()
    }

    fn kind(fit: &MemoryFit) -> &'static str {
        match fit {
            MemoryFit::NotChecked(_) => "not checked",
            MemoryFit::Unknown(_) => "unknown",
            MemoryFit::Fits(_) => "fits",
            MemoryFit::Offloads(_) => "offloads",
            MemoryFit::DoesNotFit(_) => "does not fit",
        }
    }

    fn message(fit: &MemoryFit) -> &str {
        match fit {
            MemoryFit::NotChecked(m)
            | MemoryFit::Unknown(m)
            | MemoryFit::Fits(m)
            | MemoryFit::Offloads(m)
            | MemoryFit::DoesNotFit(m) => m,
        }
    }

    #[test]
    fn verdicts() {
        let none = json!(null);
        let long = json!({"contextLength": 32768, "parallelRequests": 4});
        // (what, model spec, engine, verdict, fragments of the message)
        type Case = (
            &'static str,
            LLMModelSpec,
            LLMEngine,
            &'static str,
            Vec<&'static str>,
        );
        let cases: Vec<Case> = vec![
            (
                "no memoryPerDevice",
                spec("llama3.1:8b", 1, none.clone(), none.clone()),
                engine(None, json!([])),
                "not checked",
                vec!["set accelerator.memoryPerDevice"],
            ),
            (
                "llama3.1:8b on a 24 GiB GPU",
                spec("llama3.1", 1, none.clone(), none.clone()),
                engine(Some("24Gi"), json!([])),
                "fits",
                vec![
                    "llama3.1 needs ~5.8 GiB on 1 GPU(s) at a context of 4096 x 1",
                    "an instance has 1 x 24.0 GiB",
                ],
            ),
            (
                "on a 4 GiB GPU: 20 of 33 layers",
                spec("llama3.1:8b", 1, none.clone(), none.clone()),
                engine(Some("4Gi"), json!([])),
                "offloads",
                vec![
                    "20 of its 33 layers",
                    "raise parallelism.model to 2",
                    "use GPUs with more memory (one GPU would need ~5.8 GiB)",
                ],
            ),
            (
                "32768 x 4 on 24 GiB: two GPUs hold it",
                spec("llama3.1:8b", 1, long.clone(), none.clone()),
                engine(Some("24Gi"), json!([])),
                "offloads",
                vec![
                    "at a context of 32768 x 4",
                    "16.0 GiB KV cache (f16)",
                    "raise parallelism.model to 2, lower serving.contextLength or serving.parallelRequests, or use GPUs with more memory",
                ],
            ),
            (
                "... and with q8_0 and flash attention from the engine's env",
                spec("llama3.1:8b", 2, long.clone(), none.clone()),
                engine(
                    Some("24Gi"),
                    json!([{"name": "OLLAMA_FLASH_ATTENTION", "value": "1"}, {"name": "OLLAMA_KV_CACHE_TYPE", "value": "q8_0"}]),
                ),
                "fits",
                vec!["8.0 GiB KV cache (q8_0)"],
            ),
            (
                "phi4 (a 1.2 GiB graph and reserve) on a 1 GiB slice: nothing fits",
                spec("phi4", 1, none.clone(), none.clone()),
                engine(Some("1Gi"), json!([])),
                "does not fit",
                vec!["not one layer fits", "leave the GPUs idle"],
            ),
            (
                "no GPU asked for",
                spec("llama3.1:8b", 0, none.clone(), none.clone()),
                engine(Some("24Gi"), json!([])),
                "not checked",
                vec!["asks for no GPU"],
            ),
            (
                "qwen3:8b: no size, estimated from the table's parameters and quantization",
                spec("qwen3:8b", 1, none.clone(), none.clone()),
                engine(Some("24Gi"), json!([])),
                "fits",
                vec![
                    "qwen3:8b Q4_K_M needs",
                    "4.7 GiB weights estimated from 8.2B parameters at Q4_K_M",
                ],
            ),
            (
                "qwen3:0.6b: no size, no parameters",
                spec("qwen3:0.6b", 1, none.clone(), none.clone()),
                engine(Some("24Gi"), json!([])),
                "unknown",
                vec!["spec.facts.weightsSize (or parameters and quantization) unknown"],
            ),
            (
                "the issue's example: qwen3:14b at 8192 x 4 on one 8 GiB GPU",
                spec(
                    "qwen3:14b",
                    1,
                    json!({"contextLength": 8192, "parallelRequests": 4}),
                    none.clone(),
                ),
                engine(Some("8Gi"), json!([])),
                "offloads",
                vec![
                    "qwen3:14b Q4_K_M needs ~",
                    "at a context of 8192 x 4",
                    "an instance has 1 x 8.0 GiB",
                    "raise parallelism.model to",
                ],
            ),
            (
                "a quantization of the user's own: the table's size no longer applies",
                spec(
                    "llama3.1:8b",
                    1,
                    none.clone(),
                    json!({"parameters": "8.0B", "quantization": "q8_0"}),
                ),
                engine(Some("24Gi"), json!([])),
                "fits",
                vec![
                    "llama3.1:8b Q8_0 needs",
                    "7.9 GiB weights estimated from 8.0B parameters at Q8_0",
                ],
            ),
            (
                "a quantization without parameters, where the table has none",
                spec(
                    "llama3.1:8b",
                    1,
                    none.clone(),
                    json!({"quantization": "Q8_0"}),
                ),
                engine(Some("24Gi"), json!([])),
                "unknown",
                vec![
                    "llama3.1:8b Q8_0",
                    "spec.facts.weightsSize (or parameters and quantization) unknown",
                ],
            ),
            (
                "qwen3 with its size: approximate",
                spec("qwen3:8b", 1, none.clone(), json!({"weightsSize": "5.2G"})),
                engine(Some("24Gi"), json!([])),
                "fits",
                vec!["measures this model family's compute graph"],
            ),
            (
                "a model of its own, described",
                spec(
                    "hf.co/someone/model:Q4_K_M",
                    1,
                    none.clone(),
                    json!({
                    "weightsSize": "4.9Gi", "architecture": "Llama", "layers": 32, "attentionHeads": 32,
                    "kvHeads": 8, "headDim": 128, "embeddingLength": 4096, "vocabulary": 128256, "trainedContext": 131072}),
                ),
                engine(Some("80Gi"), json!([])),
                "fits",
                vec!["hf.co/someone/model:Q4_K_M needs"],
            ),
            (
                "a model of its own, not described",
                spec(
                    "hf.co/someone/model:Q4_K_M",
                    1,
                    none.clone(),
                    json!({"weightsSize": "4.9Gi"}),
                ),
                engine(Some("80Gi"), json!([])),
                "unknown",
                vec!["spec.facts.layers", "spec.facts.architecture"],
            ),
            (
                "Gemma3 without its window",
                spec(
                    "hf.co/someone/gemma:Q4_K_M",
                    1,
                    none.clone(),
                    json!({
                    "weightsSize": "3Gi", "architecture": "Gemma3", "layers": 34, "attentionHeads": 8,
                    "kvHeads": 4, "headDim": 256, "embeddingLength": 2560, "vocabulary": 262208}),
                ),
                engine(Some("24Gi"), json!([])),
                "unknown",
                vec!["spec.facts.slidingWindow unknown"],
            ),
        ];
        for (what, spec, engine, expected, fragments) in cases {
            let fit = memory_fit(&spec, &engine, &[]);
            assert_eq!(kind(&fit), expected, "{what}: {}", message(&fit));
            for fragment in fragments {
                assert!(
                    message(&fit).contains(fragment),
                    "{what}: {:?} not in {}",
                    fragment,
                    message(&fit)
                );
            }
        }
    }

    #[test]
    fn without_memory_per_device_the_largest_labelled_gpu_of_a_node() {
        let node = |name: &str, gpus: u64, mib: Option<u64>| crate::nodes::NodeGpus {
            name: name.to_owned(),
            allocatable: [("nvidia.com/gpu".to_owned(), gpus)].into(),
            memory: mib.map(|m| m << 20),
            mig_memory: Default::default(),
            product: mib.map(|_| "NVIDIA-T4".to_owned()),
            replicas: 1,
        };
        let small = node("small", 4, Some(3072));
        let large = node("large", 1, Some(23028));
        let unlabelled = node("bare", 8, None);
        let one = spec("llama3.1:8b", 1, json!(null), json!(null));
        let two = spec("llama3.1:8b", 2, json!(null), json!(null));
        // (what, spec, nodes, verdict, fragment)
        let cases = [
            (
                "no Nodes known",
                &one,
                vec![],
                "not checked",
                "set accelerator.memoryPerDevice",
            ),
            (
                "the largest labelled GPU of a Node with one",
                &one,
                vec![small.clone(), large.clone(), unlabelled.clone()],
                "fits",
                "an instance has 1 x 22.5 GiB at most (the largest GPUs of a Node offering 1 nvidia.com/gpu, as its labels say: Node large, NVIDIA-T4;",
            ),
            (
                "two GPUs: only the small Node has two",
                &two,
                vec![small.clone(), large.clone()],
                "offloads",
                "an instance has 2 x 3.0 GiB at most (the largest GPUs of a Node offering 2 nvidia.com/gpu",
            ),
            (
                "no labels",
                &one,
                vec![unlabelled],
                "not checked",
                "no Node offering 1 nvidia.com/gpu has a GPU memory label (nvidia.com/gpu.memory or amd.com/gpu.vram)",
            ),
        ];
        for (what, spec, nodes, expected, fragment) in cases {
            let fit = memory_fit(spec, &engine(None, json!([])), &nodes);
            assert_eq!(kind(&fit), expected, "{what}: {}", message(&fit));
            assert!(
                message(&fit).contains(fragment),
                "{what}: {}",
                message(&fit)
            );
        }
        // The engine's own figure wins over the Nodes'.
        let fit = memory_fit(&one, &engine(Some("80Gi"), json!([])), &[small]);
        assert!(
            message(&fit).ends_with("an instance has 1 x 80.0 GiB"),
            "{}",
            message(&fit)
        );
    }

    #[test]
    fn what_runs_on_the_cpu_against_the_engine_memory_limit() {
        let cpu = |resources: serde_json::Value| {
            testing::engine(
                "cpu",
                json!({"accelerator": {"vendor": "None"}, "resources": resources}),
            )
        };
        let on_cpu = |model: &str, serving: serde_json::Value| -> LLMModelSpec {
            serde_json::from_value(json!({
                "model": model, "engineRef": {"name": "cpu"}, "serving": serving,
            }))
            .unwrap()
        };
        let none = json!(null);
        let long = json!({"contextLength": 131072, "parallelRequests": 2});
        // (what, model, engine, a fragment of the warning or None)
        let cases: Vec<(&str, LLMModelSpec, LLMEngine, Option<&str>)> = vec![
            (
                "llama3.1:8b at 4096 x 1 in the default 16Gi",
                on_cpu("llama3.1:8b", none.clone()),
                cpu(none.clone()),
                None,
            ),
            (
                "at 131072 x 2: 32 GiB of KV cache",
                on_cpu("llama3.1:8b", long.clone()),
                cpu(none.clone()),
                Some(
                    "llama3.1:8b needs ~52.9 GiB of memory outside the GPUs (the whole model runs on the CPU: their weights and KV cache at a context of 131072 x 2, and the compute graph), but LLMEngine \"cpu\" limits its container to 16Gi (resources.limits.memory)",
                ),
            ),
            (
                "... in a 64Gi limit",
                on_cpu("llama3.1:8b", long.clone()),
                cpu(json!({"limits": {"memory": "64Gi"}})),
                None,
            ),
            (
                "a request alone is the limit too",
                on_cpu("phi4", none.clone()),
                cpu(json!({"requests": {"memory": "4Gi"}})),
                Some("limits its container to 4Gi"),
            ),
            (
                "a model the estimate does not know",
                on_cpu("hf.co/x/y:Q4_K_M", long.clone()),
                cpu(none.clone()),
                None,
            ),
            (
                "13 of 33 layers of llama3.1:8b beside a 4 GiB GPU fit 16Gi",
                spec("llama3.1:8b", 1, none.clone(), none.clone()),
                engine(Some("4Gi"), json!([])),
                None,
            ),
        ];
        for (what, spec, engine, expected) in cases {
            let found = host_memory_excess(&spec, &engine);
            match expected {
                None => assert_eq!(found, None, "{what}"),
                Some(fragment) => {
                    let found = found.unwrap_or_else(|| panic!("{what}: no warning"));
                    assert!(found.contains(fragment), "{what}: {found}");
                }
            }
        }
    }

    #[test]
    fn validation_denies_only_what_cannot_use_a_gpu() {
        let rules = |model: &str, memory: &str| {
            let mut report = Report::default();
            check_memory(
                &spec(model, 1, json!(null), json!(null)),
                &engine(Some(memory), json!([])),
                &mut report,
            );
            (
                report
                    .errors
                    .iter()
                    .map(|v| v.rule.id())
                    .collect::<Vec<_>>(),
                report
                    .warnings
                    .iter()
                    .map(|v| v.rule.id())
                    .collect::<Vec<_>>(),
            )
        };
        assert_eq!(rules("llama3.1:8b", "24Gi"), (vec![], vec![]));
        assert_eq!(
            rules("llama3.1:8b", "4Gi"),
            (vec![], vec!["model_offloads_to_cpu"])
        );
        assert_eq!(
            rules("phi4", "1Gi"),
            (vec!["model_exceeds_gpu_memory"], vec![])
        );
        assert_eq!(
            rules("qwen3:0.6b", "24Gi"),
            (vec![], vec!["memory_unknown"])
        );
    }
}
