//! JSON values and strings written as CEL source, for the expressions of
//! generated admission policies.
//!
//! Objects become schema-free map literals whose values are all wrapped in
//! `dyn(...)`: admission CEL requires homogeneous aggregate literals
//! (`cel.HomogeneousAggregateLiterals`, k8s.io/apiserver v0.36.3
//! pkg/cel/environment/base.go:66), and a container mixes strings, lists
//! and maps. `Object.spec...{}` literals would need the schema's map fields
//! and, in a list, panic the apiserver (kubernetes/kubernetes#142181; see
//! docs/design/prototypes/NOTES.md, pitfall 1); `dyn` maps do neither and
//! are decoded as strictly (unknown fields are refused when the patched pod
//! is decoded).

use serde_json::Value;

/// `text` as a CEL string literal. A JSON string is one: CEL knows the
/// escapes `\" \\ \n \t \r \b \f \uXXXX` JSON writes, and serde_json never
/// writes `\/` or surrogate pairs (other characters stay as they are).
pub fn string(text: &str) -> String {
    serde_json::to_string(text).expect("a string serialises")
}

/// `value` as a CEL literal that evaluates to the same JSON value.
pub fn literal(value: &Value) -> String {
    let mut out = String::new();
    write_literal(value, &mut out);
    out
}

fn write_literal(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        // Pod specs hold integers only (quantities are strings); a float
        // keeps its JSON form, which is also a CEL double.
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => out.push_str(&string(s)),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str("dyn(");
                write_literal(item, out);
                out.push(')');
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&string(key));
                out.push_str(": dyn(");
                write_literal(item, out);
                out.push(')');
            }
            out.push('}');
        }
    }
}

/// A CEL list literal of string literals.
pub fn string_list<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> String {
    let items: Vec<String> = items.into_iter().map(|s| string(s.as_ref())).collect();
    format!("[{}]", items.join(", "))
}

/// A CEL expression for the JSON Pointer `path` (its fixed tokens escaped
/// here) followed by `dynamic`, a CEL string expression appended as is.
pub fn pointer(tokens: &[&str]) -> String {
    let escaped: Vec<String> = tokens
        .iter()
        .map(|t| t.replace('~', "~0").replace('/', "~1"))
        .collect();
    string(&format!("/{}", escaped.join("/")))
}

/// CEL choosing by `selector` (a string expression) among `branches`
/// (value, expression): the expression of the branch whose value it
/// equals, the last one's otherwise; one expression when all are the same.
pub fn switch(selector: &str, branches: &[(&str, &str)]) -> String {
    let Some(((_, last), init)) = branches.split_last() else {
        return "null".to_owned();
    };
    if branches.iter().all(|(_, expression)| expression == last) {
        return (*last).to_owned();
    }
    init.iter()
        .rev()
        .fold(format!("({last})"), |otherwise, (value, expression)| {
            format!(
                "{selector} == {} ? ({expression})\n: {otherwise}",
                string(value)
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn literals_table() {
        let cases = [
            (json!(null), "null"),
            (json!(true), "true"),
            (json!(65532), "65532"),
            (json!(-1), "-1"),
            (json!("a\"b\\c\nd\te"), r#""a\"b\\c\nd\te""#),
            (json!("\u{1}é"), "\"\\u0001é\""),
            (json!([]), "[]"),
            (json!({}), "{}"),
            (json!(["a", 1]), r#"[dyn("a"), dyn(1)]"#),
            (
                json!({"name": "x", "ports": [{"containerPort": 1}]}),
                r#"{"name": dyn("x"), "ports": dyn([dyn({"containerPort": dyn(1)})])}"#,
            ),
            (
                json!({"limits": {"nvidia.com/gpu": "1"}}),
                r#"{"limits": dyn({"nvidia.com/gpu": dyn("1")})}"#,
            ),
        ];
        for (value, expected) in cases {
            assert_eq!(literal(&value), expected, "{value}");
        }
    }

    #[test]
    fn pointers_escape_their_tokens() {
        assert_eq!(
            pointer(&["metadata", "annotations", "llm.injector.dev/status"]),
            r#""/metadata/annotations/llm.injector.dev~1status""#
        );
        assert_eq!(pointer(&["a~b"]), r#""/a~0b""#);
    }

    #[test]
    fn switches_table() {
        assert_eq!(switch("m", &[("a", "1")]), "1");
        assert_eq!(switch("m", &[("a", "1"), ("b", "1")]), "1");
        assert_eq!(
            switch("m", &[("a", "1"), ("b", "2")]),
            "m == \"a\" ? (1)\n: (2)"
        );
        assert_eq!(
            switch("m", &[("a", "1"), ("b", "2"), ("c", "3")]),
            "m == \"a\" ? (1)\n: m == \"b\" ? (2)\n: (3)"
        );
    }

    #[test]
    fn string_lists() {
        assert_eq!(string_list(["a", "b\""]), r#"["a", "b\""]"#);
        assert_eq!(string_list(Vec::<String>::new()), "[]");
    }
}
