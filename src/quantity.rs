//! Kubernetes resource quantities (`24Gi`, `5.2G`, `1e9`) as bytes, for the
//! memory a model needs and a GPU has.

/// The bytes `quantity` stands for, or `None` when it is not a quantity
/// (or is negative, or beyond 2^64 bytes). Fractions of a byte round up, as
/// the apiserver rounds memory.
pub fn bytes(quantity: &str) -> Option<u64> {
    let quantity = quantity.trim();
    let split = quantity
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+'))
        .unwrap_or(quantity.len());
    let (number, suffix) = quantity.split_at(split);
    if number.is_empty() || number.starts_with('.') && number.len() == 1 {
        return None;
    }
    let number: f64 = number.parse().ok()?;
    let scale: f64 = match suffix {
        "" => 1.0,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        exponent if exponent.starts_with(['e', 'E']) => {
            10f64.powi(exponent[1..].parse::<i32>().ok()?)
        }
        _ => return None,
    };
    let value = (number * scale).ceil();
    (value.is_finite() && value >= 0.0 && value < u64::MAX as f64).then_some(value as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_as_bytes() {
        let cases = [
            ("24Gi", Some(24 << 30)),
            ("80Gi", Some(80 << 30)),
            ("5.2G", Some(5_200_000_000)),
            ("274M", Some(274_000_000)),
            ("512Mi", Some(512 << 20)),
            ("1e9", Some(1_000_000_000)),
            ("1.5Ki", Some(1536)),
            ("100", Some(100)),
            ("0.5", Some(1)),
            ("+1Gi", Some(1 << 30)),
            ("", None),
            ("Gi", None),
            ("-1Gi", None),
            ("24GB", None),
            ("24 Gi", None),
            ("1e400", None),
            ("twenty", None),
        ];
        for (quantity, expected) in cases {
            assert_eq!(bytes(quantity), expected, "{quantity:?}");
        }
    }
}
