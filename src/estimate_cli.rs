//! `llm-injector estimate`: what one engine instance of a library model needs
//! in GPU memory, and on which GPU sizes it loads whole (the estimate of
//! `llm_injector::estimate`, the one the webhook checks with).

use clap::Args;

use llm_injector::estimate::quantization::{known_quantizations, parse_parameters, weights_bytes};
use llm_injector::estimate::{
    self, GIB, GPU_MINIMUM_MEMORY, Gpus, KvCacheType, Placement, Serving, gib, library_model,
};
use llm_injector::quantity;

/// GPU memory sizes the table is printed for: common data-centre and
/// consumer cards (and MIG slices of them).
const SIZES: [u64; 8] = [4, 8, 12, 16, 24, 40, 48, 80];

#[derive(Args, Debug)]
pub struct EstimateArgs {
    /// An Ollama library model, e.g. `llama3.1:8b`; `--list` shows the known ones.
    #[arg(required_unless_present = "list")]
    model: Option<String>,
    /// List the models the estimate knows, with their sources.
    #[arg(long)]
    list: bool,
    /// GPUs of one instance (`parallelism.model`).
    #[arg(long, default_value_t = 1)]
    gpus: u32,
    /// Memory of each GPU (e.g. 24Gi); without it, a table of common sizes.
    #[arg(long)]
    memory: Option<String>,
    /// Context length (`serving.contextLength`); default Ollama's 4096.
    #[arg(long)]
    context: Option<u32>,
    /// Requests at once (`serving.parallelRequests`); default 1.
    #[arg(long)]
    parallel: Option<u32>,
    /// `OLLAMA_KV_CACHE_TYPE` (applies with flash attention).
    #[arg(long, value_parser = ["f16", "q8_0", "q4_0"], default_value = "f16")]
    kv_cache_type: String,
    /// `OLLAMA_FLASH_ATTENTION`; default the model family's.
    #[arg(long)]
    flash_attention: Option<bool>,
    /// Model weights size, when the table does not know it (e.g. 5.2G).
    #[arg(long)]
    weights_size: Option<String>,
    /// Parameters (e.g. 8.0B): without --weights-size, the weights are
    /// estimated from them and the quantization.
    #[arg(long)]
    parameters: Option<String>,
    /// Quantization (e.g. Q8_0), for the estimate from the parameters.
    #[arg(long)]
    quantization: Option<String>,
}

pub fn run(args: &EstimateArgs) -> Result<String, String> {
    if args.list {
        return Ok(list());
    }
    let reference = args.model.as_deref().unwrap_or_default();
    let known = library_model(reference).ok_or_else(|| {
        format!(
            "{reference:?} is not in the built-in table of Ollama library models (`llm-injector estimate --list`); give an LLMModel spec.facts to the webhook or `llm-injector validate` instead"
        )
    })?;
    let mut facts = known.facts;
    let parameters = match &args.parameters {
        Some(text) => Some(parse_parameters(text).ok_or_else(|| {
            format!("--parameters {text:?} is not a parameter count such as 8.0B")
        })?),
        None => known.parameters,
    };
    let quantization = match &args.quantization {
        Some(text) => Some(
            known_quantizations()
                .find(|q| q.eq_ignore_ascii_case(text.trim()))
                .ok_or_else(|| {
                    format!(
                        "--quantization {text:?} is not one the estimate knows ({})",
                        known_quantizations().collect::<Vec<_>>().join(", ")
                    )
                })?,
        ),
        None => known.quantization,
    };
    let mut estimated = None;
    if let Some(size) = &args.weights_size {
        facts.weights =
            Some(quantity::bytes(size).ok_or_else(|| {
                format!("--weights-size {size:?} is not a quantity such as 5.2G")
            })?);
    } else if args.parameters.is_some() || args.quantization.is_some() || facts.weights.is_none() {
        facts.weights = parameters.zip(quantization).and_then(|(p, q)| {
            estimated = Some(format!(
                " (estimated from {:.1}B parameters at {q})",
                p as f64 / 1e9
            ));
            weights_bytes(p, q)
        });
    }
    let serving = Serving {
        context_length: args.context,
        parallel_requests: args.parallel,
        kv_cache_type: match args.kv_cache_type.as_str() {
            "q8_0" => KvCacheType::Q8_0,
            "q4_0" => KvCacheType::Q4_0,
            _ => KvCacheType::F16,
        },
        flash_attention: args.flash_attention,
        gpu_overhead: 0,
    };
    let count = args.gpus.max(1);
    let found = estimate::estimate(&facts, &serving, count).map_err(|missing| {
        let names: Vec<&str> = missing.iter().map(|m| m.0).collect();
        format!(
            "the estimate of {} needs {} ({}); pass --weights-size, or --parameters and --quantization",
            known.reference,
            names.join(", "),
            known.source
        )
    })?;
    let gpus = |memory: u64| Gpus {
        count,
        memory,
        minimum: GPU_MINIMUM_MEMORY,
    };
    let mut out = String::new();
    let mut row = |name: &str, value: String| out.push_str(&format!("{name:<22}{value}\n"));
    row(
        "model",
        format!(
            "{}{}",
            known.reference,
            quantization.map(|q| format!(" {q}")).unwrap_or_default()
        ),
    );
    row(
        "context",
        format!("{} tokens x {} request(s)", found.context, found.parallel),
    );
    row(
        "weights",
        format!("{}{}", gib(found.weights), estimated.unwrap_or_default()),
    );
    row(
        &format!("KV cache ({})", found.kv_cache_type.as_str()),
        gib(found.kv_cache),
    );
    row("compute graph", format!("{} per GPU", gib(found.graph)));
    row(
        "kept free",
        format!(
            "{} per GPU (457 MiB, one layer{})",
            gib(found.reserved + GPU_MINIMUM_MEMORY),
            if serving.gpu_overhead > 0 {
                ", OLLAMA_GPU_OVERHEAD"
            } else {
                ""
            }
        ),
    );
    row(
        "total",
        format!("{} on {count} GPU(s)", gib(found.needed(&gpus(0)))),
    );
    if found.approximate {
        out.push_str("(approximate: Ollama 0.12.6 measures this family's compute graph when it loads the model)\n");
    }
    out.push('\n');
    let sizes: Vec<u64> = match &args.memory {
        Some(memory) => vec![
            quantity::bytes(memory)
                .ok_or_else(|| format!("--memory {memory:?} is not a quantity such as 24Gi"))?,
        ],
        None => SIZES.iter().map(|g| g * GIB).collect(),
    };
    out.push_str(&format!(
        "{:<22}on {count} GPU(s) of that size\n",
        "GPU memory"
    ));
    for memory in sizes {
        let placement = match found.placement(&gpus(memory)) {
            Placement::Gpu => "fits".to_owned(),
            Placement::Split { on_gpu, layers } => {
                format!("{on_gpu} of {layers} layers on the GPU, the rest on the CPU")
            }
            Placement::Cpu => "no layer fits: on the CPU".to_owned(),
        };
        out.push_str(&format!("{:<22}{placement}\n", gib(memory)));
    }
    Ok(out)
}

fn list() -> String {
    let mut out = format!("{:<24}{:<10}{:<10}SOURCE\n", "MODEL", "WEIGHTS", "QUANT");
    for model in estimate::library_models() {
        out.push_str(&format!(
            "{:<24}{:<10}{:<10}{}\n",
            model.reference,
            match (
                model.facts.weights,
                model.parameters.zip(model.quantization)
            ) {
                (Some(w), _) if w >= 1_000_000_000 => format!("{:.1}G", w as f64 / 1e9),
                (Some(w), _) => format!("{}M", w / 1_000_000),
                (None, Some((p, q))) => weights_bytes(p, q)
                    .map_or("unknown".to_owned(), |w| format!("~{:.1}G", w as f64 / 1e9)),
                (None, None) => "unknown".to_owned(),
            },
            model.quantization.unwrap_or("-"),
            model.source
        ));
    }
    out
}
