//! What the estimate needs of popular Ollama library models, each row with
//! its source. Sizes are as Ollama lists them (decimal GB, rounded); the
//! architecture numbers are the models' own `config.json` or GGUF metadata.
//! A size no source here confirms is estimated from the parameter count and
//! quantization where both are known (and said to be estimated), else left
//! unknown (the estimate then asks for it) rather than guessed.

use super::{Architecture, ModelFacts};

/// One model of Ollama's library.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LibraryModel {
    /// The reference, `name:tag`.
    pub reference: &'static str,
    /// Other references that pull the same model (the default tag).
    pub aliases: &'static [&'static str],
    /// The quantization of the weights, when a source says it.
    pub quantization: Option<&'static str>,
    /// Parameters, for a row whose file size no source confirms: the
    /// weights are then estimated from them and the quantization
    /// ([`super::quantization`]).
    pub parameters: Option<u64>,
    /// The facts.
    pub facts: ModelFacts,
    /// Where they come from.
    pub source: &'static str,
}

/// The model `reference` names (`library/` prefix and `:latest` allowed).
pub fn library_model(reference: &str) -> Option<&'static LibraryModel> {
    let reference = reference.strip_prefix("library/").unwrap_or(reference);
    MODELS
        .iter()
        .find(|m| m.reference == reference || m.aliases.contains(&reference))
}

/// Every model of the table.
pub fn library_models() -> &'static [LibraryModel] {
    MODELS
}

#[allow(clippy::too_many_arguments)]
const fn facts(
    weights: Option<u64>,
    layers: u32,
    attention_heads: u32,
    kv_heads: u32,
    head_dim: u32,
    embedding_length: u32,
    vocabulary: u32,
    trained_context: u32,
    architecture: Architecture,
) -> ModelFacts {
    ModelFacts {
        weights,
        layers: Some(layers),
        attention_heads: Some(attention_heads),
        kv_heads: Some(kv_heads),
        head_dim: Some(head_dim),
        embedding_length: Some(embedding_length),
        vocabulary: Some(vocabulary),
        trained_context: Some(trained_context),
        context_parameter: None,
        architecture: Some(architecture),
    }
}

/// The table.
pub(super) const MODELS: &[LibraryModel] = &[
    LibraryModel {
        reference: "qwen3:8b",
        aliases: &["qwen3", "qwen3:latest"],
        quantization: Some("Q4_K_M"),
        parameters: Some(8_200_000_000),
        facts: facts(
            None,
            36,
            32,
            8,
            128,
            4096,
            151_936,
            40_960,
            Architecture::Qwen3,
        ),
        source: "https://huggingface.co/Qwen/Qwen3-8B/blob/main/config.json; parameters: the model card https://huggingface.co/Qwen/Qwen3-8B (8.2B); quantization: https://ollama.com/library/qwen3:8b",
    },
    LibraryModel {
        reference: "qwen3:0.6b",
        aliases: &[],
        quantization: None,
        parameters: None,
        facts: facts(
            None,
            28,
            16,
            8,
            128,
            1024,
            151_936,
            40_960,
            Architecture::Qwen3,
        ),
        source: "https://huggingface.co/Qwen/Qwen3-0.6B/blob/main/config.json",
    },
    LibraryModel {
        reference: "qwen3:14b",
        aliases: &[],
        quantization: Some("Q4_K_M"),
        parameters: Some(14_800_000_000),
        facts: facts(
            None,
            40,
            40,
            8,
            128,
            5120,
            151_936,
            40_960,
            Architecture::Qwen3,
        ),
        source: "https://huggingface.co/Qwen/Qwen3-14B/blob/main/config.json; parameters: the model card https://huggingface.co/Qwen/Qwen3-14B (14.8B); quantization: https://ollama.com/library/qwen3:14b",
    },
    LibraryModel {
        reference: "llama3.1:8b",
        aliases: &["llama3.1", "llama3.1:latest"],
        quantization: None,
        parameters: None,
        facts: facts(
            Some(4_700_000_000),
            32,
            32,
            8,
            128,
            4096,
            128_256,
            131_072,
            Architecture::Llama,
        ),
        source: "https://huggingface.co/meta-llama/Llama-3.1-8B/blob/main/config.json; size: https://github.com/ollama/ollama/blob/v0.12.6/README.md#model-library",
    },
    LibraryModel {
        reference: "llama3.2:3b",
        aliases: &["llama3.2", "llama3.2:latest"],
        quantization: None,
        parameters: None,
        facts: facts(
            Some(2_000_000_000),
            28,
            24,
            8,
            128,
            3072,
            128_256,
            131_072,
            Architecture::Llama,
        ),
        source: "https://huggingface.co/meta-llama/Llama-3.2-3B/blob/main/config.json; size: https://github.com/ollama/ollama/blob/v0.12.6/README.md#model-library",
    },
    LibraryModel {
        reference: "llama3.2:1b",
        aliases: &[],
        quantization: None,
        parameters: None,
        facts: facts(
            Some(1_300_000_000),
            16,
            32,
            8,
            64,
            2048,
            128_256,
            131_072,
            Architecture::Llama,
        ),
        source: "https://huggingface.co/meta-llama/Llama-3.2-1B/blob/main/config.json; size: https://github.com/ollama/ollama/blob/v0.12.6/README.md#model-library",
    },
    LibraryModel {
        reference: "gemma3:4b",
        aliases: &["gemma3", "gemma3:latest"],
        quantization: None,
        parameters: None,
        facts: facts(
            Some(3_300_000_000),
            34,
            8,
            4,
            256,
            2560,
            262_208,
            131_072,
            Architecture::Gemma3 {
                sliding_window: 1024,
            },
        ),
        source: "https://huggingface.co/google/gemma-3-4b-pt/blob/main/config.json; size: https://github.com/ollama/ollama/blob/v0.12.6/README.md#model-library",
    },
    LibraryModel {
        reference: "gemma3:12b",
        aliases: &[],
        quantization: None,
        parameters: None,
        facts: facts(
            Some(8_100_000_000),
            48,
            16,
            8,
            256,
            3840,
            262_208,
            131_072,
            Architecture::Gemma3 {
                sliding_window: 1024,
            },
        ),
        source: "https://huggingface.co/google/gemma-3-12b-pt/blob/main/config.json; size: https://github.com/ollama/ollama/blob/v0.12.6/README.md#model-library",
    },
    LibraryModel {
        reference: "mistral:7b",
        aliases: &["mistral", "mistral:latest"],
        quantization: None,
        parameters: None,
        facts: facts(
            Some(4_100_000_000),
            32,
            32,
            8,
            128,
            4096,
            32_768,
            32_768,
            Architecture::Llama,
        ),
        source: "https://huggingface.co/mistralai/Mistral-7B-Instruct-v0.3/blob/main/config.json; size: https://github.com/ollama/ollama/blob/v0.12.6/README.md#model-library",
    },
    LibraryModel {
        reference: "phi4:14b",
        aliases: &["phi4", "phi4:latest"],
        quantization: None,
        parameters: None,
        facts: facts(
            Some(9_100_000_000),
            40,
            40,
            10,
            128,
            5120,
            100_352,
            16_384,
            Architecture::Phi3,
        ),
        source: "https://huggingface.co/microsoft/phi-4/blob/main/config.json; size: https://github.com/ollama/ollama/blob/v0.12.6/README.md#model-library",
    },
    LibraryModel {
        reference: "deepseek-r1:8b",
        aliases: &["deepseek-r1", "deepseek-r1:latest"],
        quantization: Some("Q4_K_M"),
        parameters: None,
        facts: facts(
            Some(5_200_000_000),
            36,
            32,
            8,
            128,
            4096,
            151_936,
            131_072,
            Architecture::Qwen3,
        ),
        source: "https://ollama.com/library/deepseek-r1:8b/blobs/e6a7edc1a4d7",
    },
    LibraryModel {
        reference: "nomic-embed-text:v1.5",
        aliases: &["nomic-embed-text", "nomic-embed-text:latest"],
        quantization: Some("F16"),
        parameters: None,
        // No head_count_kv in its GGUF: Ollama counts 1 (fs/ggml/ggml.go:89-91).
        facts: ModelFacts {
            context_parameter: Some(8192),
            ..facts(
                Some(274_000_000),
                12,
                12,
                1,
                64,
                768,
                30_522,
                2048,
                Architecture::Bert,
            )
        },
        source: "https://ollama.com/library/nomic-embed-text:latest; https://ollama.com/library/nomic-embed-text:137m-v1.5-fp16/blobs/970aa74c0a90",
    },
    LibraryModel {
        reference: "all-minilm:l6-v2",
        aliases: &["all-minilm", "all-minilm:latest", "all-minilm:22m"],
        quantization: Some("F16"),
        parameters: None,
        facts: ModelFacts {
            context_parameter: Some(256),
            ..facts(
                Some(46_000_000),
                6,
                12,
                1,
                32,
                384,
                30_522,
                512,
                Architecture::Bert,
            )
        },
        source: "https://ollama.com/library/all-minilm:l6-v2; https://ollama.com/library/all-minilm:l12-v2/blobs/cb39eaabff82",
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_and_aliases_find_one_row() {
        let cases = [
            ("qwen3", Some("qwen3:8b")),
            ("library/qwen3:latest", Some("qwen3:8b")),
            ("llama3.2:1b", Some("llama3.2:1b")),
            ("deepseek-r1", Some("deepseek-r1:8b")),
            ("all-minilm", Some("all-minilm:l6-v2")),
            ("qwen3:32b", None),
            ("hf.co/someone/model:Q4_K_M", None),
        ];
        for (reference, expected) in cases {
            assert_eq!(
                library_model(reference).map(|m| m.reference),
                expected,
                "{reference}"
            );
        }
        let mut names: Vec<&str> = MODELS
            .iter()
            .flat_map(|m| std::iter::once(m.reference).chain(m.aliases.iter().copied()))
            .collect();
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count, "a reference names two rows");
    }

    #[test]
    fn head_dimensions_agree_with_the_hidden_size_where_they_should() {
        // Llama and Mistral: head_dim = hidden / heads; Qwen3, Gemma 3 set
        // their own (qwen3:0.6b: 128, not 1024 / 16).
        for model in MODELS {
            let f = model.facts;
            if f.architecture == Some(Architecture::Llama) {
                assert_eq!(
                    f.head_dim.unwrap() * f.attention_heads.unwrap(),
                    f.embedding_length.unwrap(),
                    "{}",
                    model.reference
                );
            }
            assert_eq!(
                f.attention_heads.unwrap() % f.kv_heads.unwrap(),
                0,
                "{}: heads are grouped over KV heads",
                model.reference
            );
        }
    }
}
