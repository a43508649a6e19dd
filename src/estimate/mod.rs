//! What one engine instance of a model needs in GPU memory, estimated the
//! way Ollama 0.12.6 (the version the engine image pins) estimates it before
//! loading a model, and whether that fits the instance's GPUs.
//!
//! Every term follows Ollama's source at tag `v0.12.6` (commit 1813ff85a027):
//!
//! - context: the model's own `num_ctx`, else `OLLAMA_CONTEXT_LENGTH`, else
//!   4096 (`server/routes.go:101-112`, `envconfig/config.go:206`), cut to
//!   the model's trained context (`llm/server.go:172-176`);
//!   parallel requests: `OLLAMA_NUM_PARALLEL`, else 1
//!   (`envconfig/config.go:244`), always 1 for embedding models
//!   (`server/sched.go:397-409`);
//! - KV cache, per layer: context x parallel x (key + value head dimension)
//!   x KV heads x bytes per element (`fs/ggml/ggml.go:551, 588`); 2 bytes
//!   (f16) unless flash attention is on, when `OLLAMA_KV_CACHE_TYPE` q8_0
//!   gives 1 and q4_0 0.5 (`llm/memory.go:198-208`,
//!   `fs/ggml/ggml.go:904-915`); flash attention is on by default for qwen3
//!   and gemma3 (`fs/ggml/ggml.go:894-901`), never for embedding models
//!   (`fs/ggml/ggml.go:877-881`). Gemma 3 keeps the whole context on every
//!   6th layer and a sliding window (parallel x window + batch) on the
//!   others (`fs/ggml/ggml.go:696-706`);
//! - compute graph: the `llama` formulas (`fs/ggml/ggml.go:614-624`), with a
//!   batch of min(context, 512) (`api/types.go:851`, `llm/memory.go:210`);
//!   the full-offload graph on one GPU, the partial one on each of several
//!   (`llm/memory.go:233-238`); architectures without a formula (phi3,
//!   bert) take GQA x KV total / 6 (`llm/memory.go:221-231`);
//! - per GPU: 457 MiB on CUDA and ROCm (`discover/gpu.go:67-69`),
//!   `OLLAMA_GPU_OVERHEAD` (`envconfig/config.go:266`), and one layer and
//!   its KV cache kept free as a buffer (`llm/memory.go:190-196, 212-214,
//!   294`).
//!
//! Where this is an approximation: Ollama sums the tensors of each layer and
//! leaves the token embedding in host memory; here the weights are the whole
//! file and a layer is the weights divided by the layers, so the estimate
//! is a little high. qwen3 and gemma3 run on Ollama's new engine at 0.12.6
//! (`fs/ggml/ggml.go:241-253`), which measures its graph when it loads the
//! model (`llm/server.go:654-994`); for them the `llama` graph formula
//! stands in and [`Estimate::approximate`] says so.

mod library;
pub mod quantization;

pub use library::{LibraryModel, library_model, library_models};

/// A mebibyte.
pub const MIB: u64 = 1 << 20;
/// A gibibyte.
pub const GIB: u64 = 1 << 30;

/// Ollama's context length when `OLLAMA_CONTEXT_LENGTH` is not set.
pub const DEFAULT_CONTEXT: u32 = 4096;
/// What Ollama keeps free on each CUDA or ROCm GPU.
pub const GPU_MINIMUM_MEMORY: u64 = 457 * MIB;
/// Ollama's default batch (`num_batch`).
const BATCH: u64 = 512;

/// The model families whose memory Ollama 0.12.6 computes differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    /// `llama` (Llama 3.x, Mistral): the `llama` graph formula, exactly.
    Llama,
    /// `phi3` (Phi-3, Phi-4): no graph formula of its own.
    Phi3,
    /// `qwen3` (Qwen 3, DeepSeek-R1 8B): the new engine, flash attention by default.
    Qwen3,
    /// `gemma3`: the new engine, flash attention by default, sliding-window
    /// layers of `sliding_window` tokens.
    Gemma3 { sliding_window: u32 },
    /// `bert`, `nomic-bert`: embedding models (one request at a time, no
    /// flash attention).
    Bert,
}

impl Architecture {
    fn flash_attention_by_default(self) -> bool {
        matches!(self, Architecture::Qwen3 | Architecture::Gemma3 { .. })
    }

    fn embedding_only(self) -> bool {
        self == Architecture::Bert
    }

    /// Ollama measures this architecture when loading instead of estimating it.
    fn measured_at_load(self) -> bool {
        matches!(self, Architecture::Qwen3 | Architecture::Gemma3 { .. })
    }

    fn has_graph_formula(self) -> bool {
        !matches!(self, Architecture::Phi3 | Architecture::Bert)
    }
}

/// What the estimate needs of a model. A field left `None` is not guessed:
/// [`estimate`] names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ModelFacts {
    /// Bytes of the weights (the GGUF file).
    pub weights: Option<u64>,
    /// Transformer blocks (`block_count`).
    pub layers: Option<u32>,
    /// Attention heads (`attention.head_count`).
    pub attention_heads: Option<u32>,
    /// Key/value heads (`attention.head_count_kv`).
    pub kv_heads: Option<u32>,
    /// Dimension of one head (`attention.key_length`, equal to the value's).
    pub head_dim: Option<u32>,
    /// Hidden size (`embedding_length`).
    pub embedding_length: Option<u32>,
    /// Tokens in the vocabulary.
    pub vocabulary: Option<u32>,
    /// The context the model was trained for (`context_length`).
    pub trained_context: Option<u32>,
    /// The model's own `num_ctx` parameter (its Modelfile's), which replaces
    /// `OLLAMA_CONTEXT_LENGTH` (`server/routes.go:101-112`).
    pub context_parameter: Option<u32>,
    /// Its family.
    pub architecture: Option<Architecture>,
}

/// Ollama's KV cache types (`OLLAMA_KV_CACHE_TYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KvCacheType {
    #[default]
    F16,
    Q8_0,
    Q4_0,
}

impl KvCacheType {
    /// Bytes per element, as Ollama's estimate counts them.
    fn bytes_per_element(self) -> f64 {
        match self {
            KvCacheType::F16 => 2.0,
            KvCacheType::Q8_0 => 1.0,
            KvCacheType::Q4_0 => 0.5,
        }
    }

    /// The value of `OLLAMA_KV_CACHE_TYPE`.
    pub fn as_str(self) -> &'static str {
        match self {
            KvCacheType::F16 => "f16",
            KvCacheType::Q8_0 => "q8_0",
            KvCacheType::Q4_0 => "q4_0",
        }
    }
}

/// How an instance serves the model: the Ollama settings that change memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Serving {
    /// `OLLAMA_CONTEXT_LENGTH`.
    pub context_length: Option<u32>,
    /// `OLLAMA_NUM_PARALLEL`.
    pub parallel_requests: Option<u32>,
    /// `OLLAMA_KV_CACHE_TYPE` (used only with flash attention).
    pub kv_cache_type: KvCacheType,
    /// `OLLAMA_FLASH_ATTENTION`; `None`: the model family's default.
    pub flash_attention: Option<bool>,
    /// `OLLAMA_GPU_OVERHEAD`, bytes kept free on each GPU.
    pub gpu_overhead: u64,
}

/// The GPUs of one engine instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gpus {
    /// How many (`parallelism.model`).
    pub count: u32,
    /// Memory of each.
    pub memory: u64,
    /// What Ollama keeps free on each ([`GPU_MINIMUM_MEMORY`] on NVIDIA and AMD).
    pub minimum: u64,
}

/// What one instance needs, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estimate {
    /// The context Ollama will use.
    pub context: u32,
    /// Requests served at once.
    pub parallel: u32,
    /// Whether flash attention is on.
    pub flash_attention: bool,
    /// The KV cache type in effect.
    pub kv_cache_type: KvCacheType,
    /// The model's weights.
    pub weights: u64,
    /// The KV cache for `context` x `parallel`.
    pub kv_cache: u64,
    /// The compute graph, on each GPU.
    pub graph: u64,
    /// Kept free on each GPU: the GPU minimum, `OLLAMA_GPU_OVERHEAD` and one
    /// layer with its KV cache.
    pub reserved: u64,
    /// One layer's weights and KV cache.
    pub layer: u64,
    /// Layers, the output layer counted as one more (Ollama's count).
    pub layers: u32,
    /// On all the instance's GPUs together.
    pub total: u64,
    /// Ollama measures this model's graph when loading it: the graph here
    /// is the `llama` formula's.
    pub approximate: bool,
}

/// How the model loads on the instance's GPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Everything on the GPUs.
    Gpu,
    /// `on_gpu` of `layers` layers on the GPUs, the rest on the CPU (slow).
    Split { on_gpu: u32, layers: u32 },
    /// No layer fits a GPU: all on the CPU.
    Cpu,
}

/// A fact the estimate needs but the model does not give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Missing(pub &'static str);

/// What one instance of the model needs, served as `serving` on `gpus`
/// GPUs; every fact it needs and lacks is named.
pub fn estimate(
    facts: &ModelFacts,
    serving: &Serving,
    gpus: u32,
) -> Result<Estimate, Vec<Missing>> {
    let mut missing = Vec::new();
    let mut need = |value: Option<u32>, name: &'static str| {
        value.map(u64::from).unwrap_or_else(|| {
            missing.push(Missing(name));
            0
        })
    };
    let layers = need(facts.layers, "layers");
    let heads = need(facts.attention_heads, "attentionHeads");
    let kv_heads = need(facts.kv_heads, "kvHeads");
    let head_dim = need(facts.head_dim, "headDim");
    let embedding = need(facts.embedding_length, "embeddingLength");
    let vocabulary = need(facts.vocabulary, "vocabulary");
    let weights = facts.weights.unwrap_or_else(|| {
        missing.push(Missing("weightsSize"));
        0
    });
    let architecture = facts.architecture.unwrap_or_else(|| {
        missing.push(Missing("architecture"));
        Architecture::Llama
    });
    if !missing.is_empty() {
        return Err(missing);
    }
    let requested = facts
        .context_parameter
        .or(serving.context_length)
        .unwrap_or(DEFAULT_CONTEXT);
    let context = match facts.trained_context {
        Some(trained) if trained > 0 => requested.min(trained),
        _ => requested,
    }
    .max(1);
    let parallel = if architecture.embedding_only() {
        1
    } else {
        serving.parallel_requests.unwrap_or(1).max(1)
    };
    let flash_attention = !architecture.embedding_only()
        && serving
            .flash_attention
            .unwrap_or(architecture.flash_attention_by_default());
    let kv_cache_type = if flash_attention {
        serving.kv_cache_type
    } else {
        KvCacheType::F16
    };
    let batch = u64::from(context).min(BATCH);
    let tokens = u64::from(context) * u64::from(parallel);
    // Bytes as f64 and back: a cast to u64 saturates, so no input overflows.
    let per_token = 2.0 * head_dim as f64 * kv_heads as f64 * kv_cache_type.bytes_per_element();
    let full_layer = (tokens as f64 * per_token) as u64;
    let (kv_cache, first_layer_kv) = match architecture {
        // Every 6th layer (i + 1 = 6, 12, ...) holds the whole context.
        Architecture::Gemma3 { sliding_window } => {
            let window = u64::from(parallel) * u64::from(sliding_window) + batch;
            let window_layer = (window as f64 * per_token) as u64;
            let global = layers / 6;
            let total = (global as f64 * full_layer as f64
                + (layers - global) as f64 * window_layer as f64) as u64;
            // Layer 0, the buffer Ollama keeps, is a sliding-window layer.
            (total, window_layer)
        }
        _ => ((layers as f64 * full_layer as f64) as u64, full_layer),
    };
    let graph = if architecture.has_graph_formula() {
        let (full, partial) = llama_graph(tokens, batch, embedding, heads, kv_heads, vocabulary);
        if gpus > 1 { partial } else { full }
    } else {
        ((heads / kv_heads.max(1)) as f64 * kv_cache as f64 / 6.0) as u64
    };
    let layer = (weights / layers.max(1)).saturating_add(first_layer_kv);
    let reserved_without_minimum = serving.gpu_overhead.saturating_add(layer);
    let total = weights.saturating_add(kv_cache).saturating_add(
        u64::from(gpus).saturating_mul(graph.saturating_add(reserved_without_minimum)),
    );
    Ok(Estimate {
        context,
        parallel,
        flash_attention,
        kv_cache_type,
        weights,
        kv_cache,
        graph,
        reserved: reserved_without_minimum,
        layer,
        layers: u32::try_from(layers).unwrap_or(u32::MAX).saturating_add(1),
        total,
        approximate: architecture.measured_at_load(),
    })
}

/// The `llama` compute graphs (full offload, partial offload) of
/// `fs/ggml/ggml.go:614-624`, for `tokens` (context x parallel) and `batch`.
fn llama_graph(
    tokens: u64,
    batch: u64,
    embedding: u64,
    heads: u64,
    kv_heads: u64,
    vocabulary: u64,
) -> (u64, u64) {
    // In u128: no input the API takes overflows, and the result saturates.
    let [tokens, batch, embedding, heads, kv_heads, vocabulary] =
        [tokens, batch, embedding, heads, kv_heads, vocabulary].map(u128::from);
    let embedding_heads = embedding / heads.max(1);
    let full = (4 * batch * (1 + 4 * embedding + tokens * (1 + heads)))
        .max(4 * batch * (embedding + vocabulary));
    let partial = 4 * batch * embedding
        + (4 * batch * (1 + embedding + tokens.max(embedding))
            + embedding * embedding * 9 / 16
            + 4 * tokens * (batch * heads + embedding_heads * kv_heads))
            .max(4 * batch * (embedding + vocabulary) + embedding * vocabulary * 105 / 128);
    let saturate = |bytes: u128| u64::try_from(bytes).unwrap_or(u64::MAX);
    (saturate(full), saturate(partial))
}

impl Estimate {
    /// What each GPU must hold beyond its share of layers: the GPU minimum,
    /// the reserve and the graph.
    fn fixed_per_gpu(&self, gpus: &Gpus) -> u64 {
        gpus.minimum
            .saturating_add(self.reserved)
            .saturating_add(self.graph)
    }

    /// What all of `gpus` must have for the whole model (the estimate plus
    /// the GPU minimum on each).
    pub fn needed(&self, gpus: &Gpus) -> u64 {
        self.total
            .saturating_add(u64::from(gpus.count).saturating_mul(gpus.minimum))
    }

    /// How the model loads on `gpus`: whole when everything fits, else as
    /// many layers as fit the room each GPU has left after its fixed share,
    /// as Ollama fills GPUs layer by layer (`llm/memory.go:306-337`).
    pub fn placement(&self, gpus: &Gpus) -> Placement {
        let count = u64::from(gpus.count.max(1));
        let fixed = self.fixed_per_gpu(gpus);
        let share = self.weights.saturating_add(self.kv_cache).div_ceil(count);
        if gpus.count > 0 && fixed.saturating_add(share) <= gpus.memory {
            return Placement::Gpu;
        }
        // Layers go on a GPU while they fit beside its fixed share
        // (`llm/memory.go:268, 323-324`).
        let room = gpus.memory.saturating_sub(fixed);
        let per_gpu = room / self.layer.max(1);
        let on_gpu = (per_gpu * u64::from(gpus.count)).min(u64::from(self.layers));
        match u32::try_from(on_gpu).unwrap_or(u32::MAX) {
            0 => Placement::Cpu,
            on_gpu if on_gpu >= self.layers => Placement::Gpu,
            on_gpu => Placement::Split {
                on_gpu,
                layers: self.layers,
            },
        }
    }
}

/// Bytes as GiB with one decimal, as the verdicts print them.
pub fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / GIB as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// llama3.1:8b's GGUF facts (Meta-Llama-3.1-8B config.json; Ollama's
    /// README at v0.12.6 lists 4.7GB).
    fn llama31_8b() -> ModelFacts {
        library_model("llama3.1:8b").expect("in the library").facts
    }

    fn nvidia(count: u32, gib_each: u64) -> Gpus {
        Gpus {
            count,
            memory: gib_each * GIB,
            minimum: GPU_MINIMUM_MEMORY,
        }
    }

    #[test]
    fn the_terms_match_ollamas_formulas() {
        let estimate = estimate(&llama31_8b(), &Serving::default(), 1).unwrap();
        // Defaults: envconfig/config.go:206 and :244.
        assert_eq!((estimate.context, estimate.parallel), (4096, 1));
        // KV: 32 layers x 4096 x (128 + 128) x 8 x 2 bytes = 512 MiB.
        assert_eq!(estimate.kv_cache, 512 * MIB);
        // Full-offload graph (fs/ggml/ggml.go:614-618), vocabulary 128256,
        // batch 512: 310,380,544 bytes.
        assert_eq!(estimate.graph, 310_380_544);
        assert!(!estimate.flash_attention && !estimate.approximate);
        // On two GPUs, the partial graph (llm/memory.go:236-238):
        // 710,385,664 bytes.
        let split = super::estimate(&llama31_8b(), &Serving::default(), 2).unwrap();
        assert_eq!(split.graph, 710_385_664);
    }

    #[test]
    fn context_and_parallel_multiply_the_kv_cache() {
        let facts = llama31_8b();
        // (serving, context, parallel, KV cache)
        let cases = [
            (Serving::default(), 4096, 1, 512 * MIB),
            (
                Serving {
                    context_length: Some(8192),
                    parallel_requests: Some(4),
                    ..Serving::default()
                },
                8192,
                4,
                4096 * MIB,
            ),
            // Beyond the trained context (131072): cut to it.
            (
                Serving {
                    context_length: Some(1 << 20),
                    ..Serving::default()
                },
                131_072,
                1,
                16 * GIB,
            ),
            // q8_0 without flash attention (llama's default) stays f16.
            (
                Serving {
                    kv_cache_type: KvCacheType::Q8_0,
                    ..Serving::default()
                },
                4096,
                1,
                512 * MIB,
            ),
            // ... and with it, half.
            (
                Serving {
                    kv_cache_type: KvCacheType::Q8_0,
                    flash_attention: Some(true),
                    ..Serving::default()
                },
                4096,
                1,
                256 * MIB,
            ),
            (
                Serving {
                    kv_cache_type: KvCacheType::Q4_0,
                    flash_attention: Some(true),
                    ..Serving::default()
                },
                4096,
                1,
                128 * MIB,
            ),
        ];
        for (serving, context, parallel, kv) in cases {
            let estimate = estimate(&facts, &serving, 1).unwrap();
            assert_eq!(
                (estimate.context, estimate.parallel, estimate.kv_cache),
                (context, parallel, kv),
                "{serving:?}"
            );
        }
    }

    #[test]
    fn families_differ_where_ollama_does() {
        // qwen3 (deepseek-r1:8b): flash attention by default, so q8_0 applies;
        // the new engine measures its graph.
        let qwen = library_model("deepseek-r1:8b").unwrap().facts;
        let serving = Serving {
            kv_cache_type: KvCacheType::Q8_0,
            ..Serving::default()
        };
        let estimate = estimate(&qwen, &serving, 1).unwrap();
        assert!(estimate.flash_attention && estimate.approximate);
        // 36 layers x 4096 x 256 x 8 x 1 byte = 288 MiB.
        assert_eq!(estimate.kv_cache, 288 * MIB);

        // gemma3:4b: 5 of 34 layers hold the whole context, 29 a window of
        // 1024 + batch 512 tokens; per token 2 x 256 x 4 x 2 bytes = 4 KiB.
        let gemma = library_model("gemma3:4b").unwrap().facts;
        let estimate = super::estimate(&gemma, &Serving::default(), 1).unwrap();
        assert_eq!(estimate.kv_cache, (5 * 4096 + 29 * 1536) * 4096);

        // An embedding model serves one request at a time, without flash attention.
        let nomic = library_model("nomic-embed-text").unwrap().facts;
        let serving = Serving {
            parallel_requests: Some(8),
            flash_attention: Some(true),
            ..Serving::default()
        };
        let estimate = super::estimate(&nomic, &serving, 1).unwrap();
        assert_eq!((estimate.parallel, estimate.flash_attention), (1, false));
        // Its trained context (2048) caps the default 4096.
        assert_eq!(estimate.context, 2048);
        // No graph formula (bert): GQA x KV / 6.
        assert_eq!(estimate.graph, 12 * estimate.kv_cache / 6);
    }

    #[test]
    fn unknown_facts_are_named_not_guessed() {
        let facts = ModelFacts {
            weights: None,
            layers: Some(36),
            attention_heads: Some(32),
            kv_heads: None,
            head_dim: Some(128),
            embedding_length: Some(4096),
            vocabulary: Some(151_936),
            trained_context: Some(40_960),
            context_parameter: None,
            architecture: None,
        };
        assert_eq!(
            estimate(&facts, &Serving::default(), 1),
            Err(vec![
                Missing("kvHeads"),
                Missing("weightsSize"),
                Missing("architecture")
            ])
        );
    }

    #[test]
    fn placement_on_gpus() {
        let facts = llama31_8b();
        let long = Serving {
            context_length: Some(32_768),
            parallel_requests: Some(4),
            ..Serving::default()
        };
        // (serving, GPUs, placement)
        let cases = [
            (Serving::default(), nvidia(1, 8), Placement::Gpu),
            (Serving::default(), nvidia(1, 24), Placement::Gpu),
            // 4.7 GB of weights and 512 MiB of cache do not fit 4 GiB: a
            // layer is 4.7e9 / 32 + 16 MiB of cache = 163,652,216 bytes; the
            // GPU keeps 457 MiB, one layer and the 310,380,544-byte graph
            // (953,231,992 bytes); 20 layers fill the remaining 3.1 GiB.
            (
                Serving::default(),
                nvidia(1, 4),
                Placement::Split {
                    on_gpu: 20,
                    layers: 33,
                },
            ),
            (Serving::default(), nvidia(1, 1), Placement::Cpu),
            (Serving::default(), nvidia(0, 80), Placement::Cpu),
            // 16 GiB of KV cache at 32768 x 4 (512 MiB a layer), and the
            // full graph for 131072 tokens is 8,891,926,528 bytes: one 24 GiB
            // GPU holds 22 layers of 683,745,912 bytes beside its fixed
            // 10,054,871,672; two hold everything (each 10,939,934,592 of
            // weights and cache beside a 9,421,457,408-byte partial graph).
            (
                long,
                nvidia(1, 24),
                Placement::Split {
                    on_gpu: 22,
                    layers: 33,
                },
            ),
            (long, nvidia(2, 24), Placement::Gpu),
        ];
        for (serving, gpus, expected) in cases {
            let estimate = estimate(&facts, &serving, gpus.count).unwrap();
            assert_eq!(
                estimate.placement(&gpus),
                expected,
                "{serving:?} on {} x {}: needs {}",
                gpus.count,
                gib(gpus.memory),
                gib(estimate.needed(&gpus))
            );
        }
    }

    #[test]
    fn every_library_model_has_an_estimate_or_says_what_it_lacks() {
        for model in library::MODELS {
            match estimate(&model.facts, &Serving::default(), 1) {
                Ok(estimate) => {
                    assert!(estimate.total > estimate.weights, "{}", model.reference);
                    assert!(estimate.context >= 256, "{}", model.reference);
                }
                Err(missing) => {
                    assert_eq!(missing, [Missing("weightsSize")], "{}", model.reference)
                }
            }
            assert!(model.source.starts_with("https://"), "{}", model.reference);
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 2000, ..Default::default() })]

        /// Any facts and settings, however large: no panic, no wrapped sum
        /// (the total holds its parts), and more memory per GPU never puts
        /// fewer layers on the GPUs.
        #[test]
        fn estimates_hold_for_any_input(
            numbers in proptest::array::uniform8(proptest::prelude::any::<u32>()),
            weights in proptest::prelude::any::<u64>(),
            window in proptest::prelude::any::<u32>(),
            family in 0..5usize,
            context in proptest::option::of(proptest::prelude::any::<u32>()),
            parallel in proptest::option::of(proptest::prelude::any::<u32>()),
            gpus in 0..9u32,
            memory in proptest::prelude::any::<u64>(),
        ) {
            let architecture = [
                Architecture::Llama,
                Architecture::Phi3,
                Architecture::Qwen3,
                Architecture::Gemma3 { sliding_window: window },
                Architecture::Bert,
            ][family];
            let facts = ModelFacts {
                weights: Some(weights),
                layers: Some(numbers[0]),
                attention_heads: Some(numbers[1]),
                kv_heads: Some(numbers[2]),
                head_dim: Some(numbers[3]),
                embedding_length: Some(numbers[4]),
                vocabulary: Some(numbers[5]),
                trained_context: Some(numbers[6]),
                context_parameter: (numbers[7] % 2 == 0).then_some(numbers[7]),
                architecture: Some(architecture),
            };
            let serving = Serving {
                context_length: context,
                parallel_requests: parallel,
                ..Serving::default()
            };
            let estimate = estimate(&facts, &serving, gpus).unwrap();
            proptest::prop_assert!(estimate.total >= estimate.weights);
            proptest::prop_assert!(estimate.total >= estimate.kv_cache);
            let on_gpu = |placement: Placement| match placement {
                Placement::Gpu => u64::MAX,
                Placement::Split { on_gpu, .. } => u64::from(on_gpu),
                Placement::Cpu => 0,
            };
            let smaller = Gpus { count: gpus, memory: memory / 2, minimum: GPU_MINIMUM_MEMORY };
            let larger = Gpus { memory, ..smaller };
            proptest::prop_assert!(
                on_gpu(estimate.placement(&smaller)) <= on_gpu(estimate.placement(&larger))
            );
        }
    }
}
