//! Test helpers shared by the rule tables of this module.

use serde_json::{Value, json};

use super::Report;
use crate::crd::{LLMEngine, LLMModel};

/// An object of `kind` named `name` in namespace `ns`, from its spec as JSON.
fn object<T: serde::de::DeserializeOwned>(kind: &str, name: &str, spec: Value) -> T {
    serde_json::from_value(json!({
        "apiVersion": "llm.injector.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": name, "namespace": "ns"},
        "spec": spec,
    }))
    .unwrap_or_else(|e| panic!("{kind} {name}: {e}"))
}

/// An LLMEngine named `name` in namespace `ns`.
pub fn engine(name: &str, spec: Value) -> LLMEngine {
    object("LLMEngine", name, spec)
}

/// An LLMModel named `name` in namespace `ns`.
pub fn model(name: &str, spec: Value) -> LLMModel {
    object("LLMModel", name, spec)
}

/// `base` with the fields of `extra` merged in, recursively.
pub fn merged(mut base: Value, extra: Value) -> Value {
    fn merge(base: &mut Value, extra: Value) {
        match (base, extra) {
            (Value::Object(base), Value::Object(extra)) => {
                for (key, value) in extra {
                    merge(base.entry(key).or_insert(Value::Null), value);
                }
            }
            (base, extra) => *base = extra,
        }
    }
    merge(&mut base, extra);
    base
}

impl Report {
    /// The rule ids of the errors and of the warnings.
    pub fn ids(&self) -> (Vec<&'static str>, Vec<&'static str>) {
        let ids = |v: &[super::Violation]| v.iter().map(|v| v.rule.id()).collect();
        (ids(&self.errors), ids(&self.warnings))
    }
}

/// Asserts that each input is rejected with a message containing its
/// fragment; `error` returns the error of parsing an input, if any.
pub fn assert_rejects(cases: &[(&str, &str)], error: impl Fn(&str) -> Option<String>) {
    for (input, fragment) in cases {
        match error(input) {
            None => panic!("{input:?} was accepted"),
            Some(error) => assert!(
                error.contains(fragment),
                "{input:?}: {error:?} lacks {fragment:?}"
            ),
        }
    }
}

/// A row of a rule table: the case, the input, the ids of the expected errors
/// and of the expected warnings.
pub type Row<T> = (
    &'static str,
    T,
    &'static [&'static str],
    &'static [&'static str],
);

/// Checks every row of a rule table against `validate`.
pub fn check_table<T>(rows: Vec<Row<T>>, validate: impl Fn(T) -> Report) {
    for (case, input, errors, warnings) in rows {
        let (got_errors, got_warnings) = validate(input).ids();
        assert_eq!(got_errors, errors, "{case}: errors");
        assert_eq!(got_warnings, warnings, "{case}: warnings");
    }
}
