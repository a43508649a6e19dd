//! What a plain (unquoted) YAML scalar means, the way `kubectl` reads it, and
//! whether a string may be written plain so that every Kubernetes YAML reader
//! reads it back as the same string.
//!
//! kubectl and Helm read YAML with `sigs.k8s.io/yaml`, which decodes with its
//! fork of go-yaml v2 (`go.yaml.in/yaml/v2` v2.4.3, `resolve.go`, function
//! `resolve`): YAML 1.1 booleans (`yes`, `off`, `y`, ...), octal `0400`,
//! `1_000`, and timestamps kept as strings. [`resolve_plain`] follows that
//! function branch by branch. Python tools (kubernetes-validate, Ansible)
//! read with PyYAML, which implements the regular expressions of the YAML 1.1
//! type repository (yaml.org/type/{bool,int,float,null,timestamp,merge,value}.html,
//! as in PyYAML's `resolver.py`); [`plain_is_string`] quotes what either reader,
//! or a YAML 1.2 reader, would not take as a string.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Number, Value};

/// What a plain scalar resolves to.
#[derive(Debug, Clone, PartialEq)]
pub enum Plain {
    /// A JSON value (null, boolean, number or string).
    Value(Value),
    /// The merge key `<<`.
    Merge,
    /// A float JSON cannot carry (`.nan`, `.inf`); kubectl refuses these too.
    NotJson(&'static str),
}

/// Resolves a plain scalar as go-yaml v2's `resolve("", in)` does, then as
/// sigs.k8s.io/yaml turns the result into JSON: timestamps stay strings
/// (go-yaml v2 decodes them into `interface{}` as the original text), and a
/// float with no fraction becomes an integer, because kubectl sends
/// `json.Marshal`'s output, which writes `8.0` as `8`.
pub fn resolve_plain(text: &str) -> Plain {
    let Some(&first) = text.as_bytes().first() else {
        return Plain::Value(Value::Null);
    };
    match text {
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return Plain::Value(Value::Bool(true));
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Plain::Value(Value::Bool(false));
        }
        "~" | "null" | "Null" | "NULL" => return Plain::Value(Value::Null),
        ".nan" | ".NaN" | ".NAN" => return Plain::NotJson("NaN"),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => return Plain::NotJson("+Inf"),
        "-.inf" | "-.Inf" | "-.INF" => return Plain::NotJson("-Inf"),
        "<<" => return Plain::Merge,
        _ => {}
    }
    let string = || Plain::Value(Value::String(text.to_owned()));
    match first {
        b'.' => go_parse_float(text).map_or_else(string, float),
        b'0'..=b'9' | b'+' | b'-' => {
            // go-yaml v2 tries timestamps first, but decodes them into
            // `interface{}` as their text: the same as falling through.
            let plain = text.replace('_', "");
            if let Some(n) = go_parse_int(&plain) {
                return Plain::Value(n);
            }
            if YAML_STYLE_FLOAT.is_match(&plain)
                && let Some(f) = go_parse_float(&plain)
            {
                return float(f);
            }
            string()
        }
        _ => string(),
    }
}

/// Whether `text`, written as a plain scalar, reads back as this same string
/// in go-yaml v2 (kubectl, Helm), in YAML 1.1 as PyYAML implements it, and in
/// YAML 1.2's core schema (serde_yaml and most other readers). Writers quote
/// every string for which this is false.
pub fn plain_is_string(text: &str) -> bool {
    resolve_plain(text) == Plain::Value(Value::String(text.to_owned()))
        && !YAML_1_1_NOT_STRING.iter().any(|re| re.is_match(text))
}

/// go-yaml v2 `yamlStyleFloat`.
static YAML_STYLE_FLOAT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$").expect("valid regex")
});

/// The implicit types of the YAML 1.1 type repository, as PyYAML's
/// `resolver.py` writes them: bool, float (with base 60), int (with base 60),
/// merge, null, timestamp, value. Also YAML 1.2 core's `0o` octal and
/// `.inf`/`.nan` spellings, which go-yaml v2 and PyYAML leave as strings.
static YAML_1_1_NOT_STRING: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    [
        r"^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$",
        r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9_]+(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$",
        r"^(?:<<)$",
        r"^(?:~|null|Null|NULL|)$",
        r"^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]|[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?(?:[Tt]|[ \t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$",
        r"^(?:=)$",
        r"^[-+]?0o[0-7]+$",
        r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$",
    ]
    .iter()
    .map(|re| Regex::new(re).expect("valid regex"))
    .collect()
});

/// Go's `strconv.ParseInt(s, 0, 64)`, then `ParseUint(s, 0, 64)`: an optional
/// sign (ParseInt only), then `0x`/`0o`/`0b` or a leading `0` for octal.
fn go_parse_int(text: &str) -> Option<Value> {
    let (negative, unsigned) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (radix, digits) = if let Some(rest) = unsigned
        .strip_prefix("0x")
        .or_else(|| unsigned.strip_prefix("0X"))
    {
        (16, rest)
    } else if let Some(rest) = unsigned
        .strip_prefix("0o")
        .or_else(|| unsigned.strip_prefix("0O"))
    {
        (8, rest)
    } else if let Some(rest) = unsigned
        .strip_prefix("0b")
        .or_else(|| unsigned.strip_prefix("0B"))
    {
        (2, rest)
    } else if unsigned.len() > 1 && unsigned.starts_with('0') {
        (8, &unsigned[1..])
    } else {
        (10, unsigned)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = u64::from_str_radix(digits, radix).ok()?;
    if negative {
        let value = 0i64.checked_sub_unsigned(magnitude)?;
        Some(Value::Number(value.into()))
    } else if let Ok(value) = i64::try_from(magnitude) {
        Some(Value::Number(value.into()))
    } else if text.starts_with('+') {
        // ParseUint takes no sign.
        None
    } else {
        Some(Value::Number(magnitude.into()))
    }
}

/// Go's `strconv.ParseFloat(s, 64)` for the decimal forms YAML reaches it with.
fn go_parse_float(text: &str) -> Option<f64> {
    if !YAML_STYLE_FLOAT.is_match(text) {
        return None;
    }
    text.parse::<f64>().ok()
}

/// A float as kubectl sends it: `json.Marshal` writes a float64 with no
/// fraction below 1e21 without a decimal point, so the apiserver reads an integer.
fn float(f: f64) -> Plain {
    if !f.is_finite() {
        return Plain::NotJson(if f.is_nan() { "NaN" } else { "Inf" });
    }
    if f.fract() == 0.0 && f.abs() < 1e21 {
        #[allow(clippy::cast_possible_truncation)]
        if f.abs() < 9.2e18 {
            return Plain::Value(Value::Number((f as i64).into()));
        }
    }
    Number::from_f64(f).map_or(Plain::NotJson("Inf"), |n| Plain::Value(Value::Number(n)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Expected values are go-yaml v2.4.3's `resolve` (resolve.go), through
    /// sigs.k8s.io/yaml's conversion to JSON.
    #[test]
    fn plain_scalars_mean_what_kubectl_reads() {
        let cases: &[(&str, Value)] = &[
            ("", Value::Null),
            ("~", Value::Null),
            ("null", Value::Null),
            ("NULL", Value::Null),
            ("yes", json!(true)),
            ("Y", json!(true)),
            ("on", json!(true)),
            ("off", json!(false)),
            ("n", json!(false)),
            ("NO", json!(false)),
            ("True", json!(true)),
            ("0400", json!(256)),
            ("0o17", json!(15)),
            ("0x1F", json!(31)),
            ("-0x10", json!(-16)),
            ("0b101", json!(5)),
            ("1_000", json!(1000)),
            ("+5", json!(5)),
            ("-0", json!(0)),
            ("08", json!(8)),
            ("1.0", json!(1)),
            ("1.5", json!(1.5)),
            (".5", json!(0.5)),
            ("1e3", json!(1000)),
            ("18446744073709551615", json!(18446744073709551615u64)),
            ("-9223372036854775808", json!(i64::MIN)),
            ("2001-12-14", json!("2001-12-14")),
            (
                "2001-12-14t21:59:43.10-05:00",
                json!("2001-12-14t21:59:43.10-05:00"),
            ),
            ("1:20", json!("1:20")),
            ("0x", json!("0x")),
            ("1.2.3", json!("1.2.3")),
            ("500m", json!("500m")),
            ("1Gi", json!("1Gi")),
            ("Yes please", json!("Yes please")),
            ("ollama/ollama:0.9.0", json!("ollama/ollama:0.9.0")),
            ("=", json!("=")),
        ];
        for (text, expected) in cases {
            assert_eq!(
                resolve_plain(text),
                Plain::Value(expected.clone()),
                "{text:?}"
            );
        }
        assert_eq!(resolve_plain("<<"), Plain::Merge);
        assert_eq!(resolve_plain(".nan"), Plain::NotJson("NaN"));
        assert_eq!(resolve_plain("-.inf"), Plain::NotJson("-Inf"));
    }

    #[test]
    fn strings_that_some_reader_takes_otherwise_are_not_plain() {
        for text in [
            "",
            "~",
            "null",
            "yes",
            "Off",
            "y",
            "N",
            "0400",
            "1_000",
            "12",
            "1.5",
            "1e3",
            "0o17",
            "0x1F",
            "2001-12-14",
            "2001-12-14 21:59:43.10 -5",
            "1:20",
            "190:20:30.15",
            "<<",
            "=",
            ".inf",
            ".NaN",
            "-.5",
        ] {
            assert!(!plain_is_string(text), "{text:?} must be quoted");
        }
        for text in [
            "app",
            "500m",
            "1Gi",
            "Yes please",
            "v1",
            "http://127.0.0.1:11434",
            "0x",
            "1.2.3",
            "llama3.2:1b",
            "ollama/ollama:0.9.0",
        ] {
            assert!(plain_is_string(text), "{text:?} may stay plain");
        }
    }
}
