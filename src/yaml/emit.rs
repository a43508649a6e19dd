//! JSON values written as YAML that every Kubernetes YAML reader reads back
//! as the same value.
//!
//! serde_yaml writes the YAML and picks the quoting that YAML 1.2 needs; it
//! writes `off`, `yes`, `y` or `2001-12-14` unquoted, which kubectl (YAML
//! 1.1) reads as a boolean and PyYAML as a date (dtolnay/serde-yaml#319,
//! #380). The rule applied after it: every plain scalar of its output whose
//! text [`plain_is_string`] rejects while the value is a string (map keys
//! included) is written double-quoted instead, with JSON's escapes, which
//! YAML's double-quoted style shares. The result is read back and compared
//! with the value; if they ever differed, the value is written as JSON, which
//! is YAML too.

use serde_json::Value;

use super::load::{Node, Shape, load};
use super::resolve::plain_is_string;
use super::text::{Edit, apply};

/// `value` as a YAML document (no `---`), ending with a line break.
pub fn to_yaml(value: &Value) -> String {
    let Ok(text) = serde_yaml::to_string(value) else {
        return json(value);
    };
    let Ok(documents) = load(&text) else {
        return json(value);
    };
    let Some(document) = documents.first() else {
        return json(value);
    };
    let mut edits = Vec::new();
    quote_ambiguous(&document.root, value, &mut edits);
    let text = apply(&text, edits);
    let reads_back = load(&text)
        .ok()
        .is_some_and(|d| d.len() == 1 && d[0].root.value == *value);
    if reads_back { text } else { json(value) }
}

fn json(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".to_owned());
    text.push('\n');
    text
}

/// Edits that double-quote each plain scalar of `node` meant as a string
/// that some reader would take as something else.
fn quote_ambiguous(node: &Node, value: &Value, edits: &mut Vec<Edit>) {
    match (&node.shape, value) {
        (Shape::Scalar { plain: true }, Value::String(s)) if !plain_is_string(s) => {
            edits.push(Edit::replace(node.start..node.end, quoted(s)));
        }
        (Shape::Map { entries, .. }, Value::Object(map)) => {
            // serde_yaml writes the entries in the map's order; the keys as
            // read may differ (`on` reads as `true`), so walk side by side.
            for ((key, item), (name, v)) in entries.iter().zip(map) {
                if matches!(key.shape, Shape::Scalar { plain: true }) && !plain_is_string(name) {
                    edits.push(Edit::replace(key.start..key.end, quoted(name)));
                }
                quote_ambiguous(item, v, edits);
            }
        }
        (Shape::Seq { items, .. }, Value::Array(values)) => {
            for (item, v) in items.iter().zip(values) {
                quote_ambiguous(item, v, edits);
            }
        }
        _ => {}
    }
}

/// `text` as a double-quoted scalar.
pub fn quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strings_yaml_1_1_reads_otherwise_are_quoted() {
        let value = json!({
            "env": [{"name": "A", "value": "off"}, {"name": "B", "value": "0400"},
                    {"name": "C", "value": "1_000"}, {"name": "D", "value": "y"},
                    {"name": "E", "value": "2001-12-14"}, {"name": "F", "value": "plain"}],
            "on": "yes",
            "mode": 256,
            "text": "two\nlines\n",
        });
        let text = to_yaml(&value);
        for expected in [
            "value: \"off\"",
            "value: '0400'",
            "value: \"1_000\"",
            "value: \"y\"",
            "value: \"2001-12-14\"",
            "value: plain",
            "\"on\": \"yes\"",
            "mode: 256",
        ] {
            assert!(text.contains(expected), "{expected:?} in\n{text}");
        }
        assert_eq!(load(&text).unwrap()[0].root.value, value);
    }
}
