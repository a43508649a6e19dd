//! The size of a model's weights from its parameter count and quantization,
//! for models whose file size is not known: parameters x bits per weight.
//!
//! Bits per weight, from llama.cpp (tag `b4747`, commit c5d91a74006c), which
//! writes the GGUF files Ollama serves:
//!
//! - the file types Ollama names its tags by (`Q4_K_M`, `Q8_0` ...) mix
//!   block types per tensor, so their bits per weight are the sizes
//!   `llama-quantize` lists for Llama-3-8B (`examples/quantize/quantize.cpp:
//!   19-22, 31, 38-40, 44-50`, in GiB, as the loader prints them:
//!   `src/llama-model-loader.cpp:1120-1122`) x 8 / its 8.03e9 parameters.
//!   For `Q4_K_M` that is 4.58 GiB, 4.90 bits per weight, and Ollama's
//!   llama3.1:8b Q4_K_M file is 4.92e9 bytes: the same;
//! - `F16` and `BF16` are 16 bits and `F32` 32 (`ggml/src/ggml.c:599-608,
//!   790-793`).
//!
//! Other models spread their parameters differently over tensors (a large
//! vocabulary keeps more of them at higher precision), so the size is within
//! a few percent, and said to be estimated wherever it is used.

/// Bits per weight, in thousandths, of each quantization (upper case).
const BITS_PER_WEIGHT: &[(&str, u64)] = &[
    ("F32", 32_000),
    ("F16", 16_000),
    ("BF16", 16_000),
    // 7.96 GiB for Llama-3-8B (quantize.cpp:50).
    ("Q8_0", 8_515),
    // 6.14 GiB (quantize.cpp:49).
    ("Q6_K", 6_568),
    // 5.33 and 5.21 GiB (quantize.cpp:47-48).
    ("Q5_K_M", 5_702),
    ("Q5_K_S", 5_573),
    // 5.65 and 5.21 GiB (quantize.cpp:21-22).
    ("Q5_1", 6_044),
    ("Q5_0", 5_573),
    // 4.58 and 4.37 GiB (quantize.cpp:44-45).
    ("Q4_K_M", 4_899),
    ("Q4_K_S", 4_675),
    // 4.78 and 4.34 GiB (quantize.cpp:19-20).
    ("Q4_1", 5_113),
    ("Q4_0", 4_643),
    // 4.03, 3.74 and 3.41 GiB (quantize.cpp:38-40).
    ("Q3_K_L", 4_311),
    ("Q3_K_M", 4_001),
    ("Q3_K_S", 3_648),
    // 2.96 GiB (quantize.cpp:31).
    ("Q2_K", 3_166),
];

/// The quantizations this module knows, for messages.
pub fn known_quantizations() -> impl Iterator<Item = &'static str> {
    BITS_PER_WEIGHT.iter().map(|(name, _)| *name)
}

/// Bits per weight of `quantization` (any case), in thousandths.
pub fn bits_per_weight(quantization: &str) -> Option<u64> {
    BITS_PER_WEIGHT
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(quantization.trim()))
        .map(|(_, bits)| *bits)
}

/// The estimated size in bytes of `parameters` weights at `quantization`.
pub fn weights_bytes(parameters: u64, quantization: &str) -> Option<u64> {
    let bits = bits_per_weight(quantization)?;
    let bytes = u128::from(parameters) * u128::from(bits) / 8_000;
    u64::try_from(bytes).ok()
}

/// A parameter count as Ollama shows it (`8.0B`, `596.05M`, `137M`) or as
/// a plain number; `None` for anything else, or 0.
pub fn parse_parameters(text: &str) -> Option<u64> {
    let text = text.trim();
    let (number, scale) = match text.char_indices().last()? {
        (i, 'K' | 'k') => (&text[..i], 1e3),
        (i, 'M' | 'm') => (&text[..i], 1e6),
        (i, 'B' | 'b' | 'G' | 'g') => (&text[..i], 1e9),
        (i, 'T' | 't') => (&text[..i], 1e12),
        _ => (text, 1.0),
    };
    let number = number.trim();
    // Digits and one point only: no sign, exponent, inf or NaN.
    if number.is_empty()
        || !number.chars().all(|c| c.is_ascii_digit() || c == '.')
        || number.matches('.').count() > 1
    {
        return None;
    }
    let count = number.parse::<f64>().ok()? * scale;
    // Below 1e15 an f64 holds the count exactly enough, and it fits u64.
    (1.0..1e15).contains(&count).then(|| count.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_as_ollama_shows_them() {
        let cases = [
            ("8.0B", Some(8_000_000_000)),
            ("8.03B", Some(8_030_000_000)),
            ("596.05M", Some(596_050_000)),
            ("137M", Some(137_000_000)),
            ("22.6m", Some(22_600_000)),
            ("1.2T", Some(1_200_000_000_000)),
            ("7241732096", Some(7_241_732_096)),
            (" 14.8B ", Some(14_800_000_000)),
            ("", None),
            ("B", None),
            ("-8B", None),
            ("8e9", None),
            ("1.2.3B", None),
            ("NaNB", None),
            ("0", None),
            ("0.0001", None),
            ("99999T", None),
            ("eight billion", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_parameters(text), expected, "{text:?}");
        }
    }

    #[test]
    fn bits_per_weight_agree_with_llama_cpp_measurements() {
        // The bits/weight llama.cpp measured on meta-llama/Llama-3.1-8B
        // (ggml-org/llama.cpp, tools/quantize/README.md, commit f4a71e70, the
        // table "bits/weight | size (GiB)"): another source than the sizes
        // above, within 0.5%.
        let measured = [
            ("Q2_K", 3_159),
            ("Q3_K_S", 3_643),
            ("Q3_K_L", 4_298),
            ("Q4_K_S", 4_667),
            ("Q4_K_M", 4_894),
            ("Q5_K_S", 5_570),
            ("Q5_K_M", 5_704),
            ("Q6_K", 6_563),
            ("Q8_0", 8_501),
            ("F16", 16_000),
        ];
        for (quantization, bits) in measured {
            let ours = bits_per_weight(quantization).unwrap();
            assert!(
                ours.abs_diff(bits) * 1000 <= bits * 5,
                "{quantization}: {ours} vs {bits}"
            );
        }
        // llama3.1:8b (8,030,261,248 parameters) at Q4_K_M: 4.58 GiB, as that
        // table says; F16 two bytes a weight.
        let q4 = weights_bytes(8_030_261_248, "q4_k_m").unwrap();
        let table = 458 * (1 << 30) / 100;
        assert!(q4.abs_diff(table) * 1000 <= table * 5, "{q4} vs {table}");
        assert_eq!(weights_bytes(1_000, "F16"), Some(2_000));
        assert_eq!(weights_bytes(1_000, "IQ9_X"), None);
        assert_eq!(weights_bytes(u64::MAX, "F32"), None);
        assert!(known_quantizations().any(|q| q == "Q4_K_M"));
    }
}
