//! Go's `time.ParseDuration`: the durations Ollama reads (`OLLAMA_KEEP_ALIVE`,
//! a request's `keep_alive` string) and the flags of every command. A crate
//! of its own, without dependencies, so that llm-injector's core library
//! and its request router (which the core does not depend on) share it.

#![forbid(unsafe_code)]

/// Go's `time.ParseDuration`, in nanoseconds; `None` where Go returns an error.
pub fn go_duration(value: &str) -> Option<i64> {
    let (negative, mut rest) = match value.as_bytes().first() {
        Some(b'-') => (true, &value[1..]),
        Some(b'+') => (false, &value[1..]),
        _ => (false, value),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int, after) = rest.split_at(int_len);
        let (fraction, after) = match after.strip_prefix('.') {
            Some(after) => {
                let len = after.bytes().take_while(u8::is_ascii_digit).count();
                after.split_at(len)
            }
            None => ("", after),
        };
        if int.is_empty() && fraction.is_empty() {
            return None;
        }
        let unit_len = after
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        let whole: u128 = if int.is_empty() { 0 } else { int.parse().ok()? };
        let mut nanos = whole.checked_mul(scale)?;
        // The fraction, truncated to whole nanoseconds as Go does.
        let mut place = scale;
        for digit in fraction.bytes().map(|b| u128::from(b - b'0')) {
            place /= 10;
            nanos += digit * place;
        }
        total = total.checked_add(nanos)?;
        rest = after;
    }
    let limit = if negative {
        1u128 << 63
    } else {
        (1u128 << 63) - 1
    };
    if total > limit {
        return None;
    }
    // In range: |total| <= 2^63, so the negation fits.
    let signed = i128::try_from(total).ok()?;
    i64::try_from(if negative { -signed } else { signed }).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        let cases = [
            ("0", Some(0)),
            ("-0", Some(0)),
            ("1s", Some(1_000_000_000)),
            ("1.5h", Some(5_400_000_000_000)),
            ("1h30m", Some(5_400_000_000_000)),
            ("-5m", Some(-300_000_000_000)),
            (".5s", Some(500_000_000)),
            ("1µs", Some(1_000)),
            ("2562047h", Some(2_562_047 * 3_600_000_000_000)),
            ("2562048h", None),
            ("5", None),
            ("", None),
            ("s", None),
            ("1d", None),
            ("1.s", Some(1_000_000_000)),
            (".s", None),
        ];
        for (text, want) in cases {
            assert_eq!(go_duration(text), want, "{text:?}");
        }
    }
}
