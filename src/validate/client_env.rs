//! The rules of an LLMModel's `clientEnv`: entries the apiserver takes in a
//! pod, and `$(VAR)` references that Kubernetes can expand.
//!
//! The apiserver checks a pod's env only when the pod is created, so a bad
//! entry here would pass `kubectl apply` of the model and then make every pod
//! that asks for it fail; these rules say so when the model is applied.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource};

use super::report::{Report, Rule};
use crate::crd::{DEVICE_VISIBILITY_ENV, STANDARD_CLIENT_ENV};

/// Checks `spec.clientEnv`.
pub(super) fn check_client_env(env: &[EnvVar], report: &mut Report) {
    let mut first_seen: BTreeMap<&str, usize> = BTreeMap::new();
    // Appended entries, in order: what an appended entry may refer to besides
    // all the standard names.
    let mut appended: Vec<&str> = Vec::new();
    for (index, var) in env.iter().enumerate() {
        let name = var.name.as_str();
        let field = format!("spec.clientEnv[{index}]");
        let first = *first_seen.entry(name).or_insert(index);
        if first != index {
            report.error(
                Rule::ClientEnv,
                format!("{field}.name"),
                format!("{name} is set twice (first in spec.clientEnv[{first}]); keep one"),
            );
            continue;
        }
        if let Err(why) = check_env_name(name) {
            report.error(
                Rule::ClientEnv,
                format!("{field}.name"),
                format!("{name:?} is not an environment variable name Kubernetes takes: {why}, so every pod asking for this model would be rejected; rename it"),
            );
        } else if DEVICE_VISIBILITY_ENV.contains(&name) {
            report.error(
                Rule::ClientEnv,
                format!("{field}.name"),
                format!("{name} decides which GPUs a process sees, which the injector sets itself (NVIDIA_VISIBLE_DEVICES=void on containers that request no GPU, so they cannot take the engine's); remove it from clientEnv, and set it in the one container that needs it"),
            );
        }
        if let Some(source) = &var.value_from {
            if var.value.as_deref().is_some_and(|v| !v.is_empty()) {
                report.error(
                    Rule::ClientEnv,
                    field.clone(),
                    format!("{name} sets both value and valueFrom, which the apiserver refuses in a pod, so every pod asking for this model would be rejected; keep one"),
                );
            }
            let sources = value_sources(source);
            if sources != 1 {
                report.error(
                    Rule::ClientEnv,
                    format!("{field}.valueFrom"),
                    format!("{name} names {sources} sources, but valueFrom takes exactly one of configMapKeyRef, fieldRef, resourceFieldRef or secretKeyRef; keep one"),
                );
            }
        }
        // Where the entry lands (see inject::user::endpoint_env): a standard
        // name replaces the standard entry in place, anything else is
        // appended after the standard names and the earlier appended entries.
        let defined_before: Vec<&str> = match STANDARD_CLIENT_ENV.iter().position(|s| *s == name) {
            Some(position) => STANDARD_CLIENT_ENV[..position].to_vec(),
            None => STANDARD_CLIENT_ENV
                .iter()
                .copied()
                .chain(appended.iter().copied())
                .collect(),
        };
        if !STANDARD_CLIENT_ENV.contains(&name) {
            appended.push(name);
        }
        let value = var.value.as_deref().unwrap_or_default();
        for reference in env_references(value) {
            if !defined_before.contains(&reference) {
                let defined = defined_before.join(", ");
                report.warn(
                    Rule::ClientEnvReference,
                    format!("{field}.value"),
                    format!("{value:?} refers to $({reference}), which is not defined before {name} (only {defined} are), so Kubernetes leaves it as written unless it is a Service variable; define {reference} earlier in clientEnv, or write $$({reference}) for the literal text"),
                );
            }
        }
    }
}

/// How many sources a `valueFrom` names.
fn value_sources(source: &EnvVarSource) -> usize {
    [
        source.config_map_key_ref.is_some(),
        source.field_ref.is_some(),
        source.resource_field_ref.is_some(),
        source.secret_key_ref.is_some(),
    ]
    .into_iter()
    .filter(|set| *set)
    .count()
}

/// A name Kubernetes 1.34+ takes for an environment variable: one or more
/// printable ASCII characters other than `=` (the relaxed validation, GA in
/// 1.34: k8s.io/kubernetes v1.36.3 pkg/apis/core/validation/validation.go,
/// `validateEnvVarName` with `AllowRelaxedEnvironmentVariableValidation`).
fn check_env_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("it is empty");
    }
    if name.contains('=') {
        return Err("it contains '='");
    }
    if !name.bytes().all(|b| (b' '..=b'~').contains(&b)) {
        return Err("it holds a character other than printable ASCII");
    }
    Ok(())
}

/// The variables `value` refers to as `$(NAME)`, as Kubernetes expands them
/// (k8s.io/kubernetes v1.36.3 third_party/forked/golang/expansion/expand.go):
/// `$$` is an escaped `$`, `$(` without a closing `)` and `$` before anything
/// else stay literal.
fn env_references(value: &str) -> Vec<&str> {
    let mut references = Vec::new();
    let mut rest = value;
    while let Some(dollar) = rest.find('$') {
        let after = &rest[dollar + 1..];
        if let Some(escaped) = after.strip_prefix('$') {
            rest = escaped;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(close) = inner.find(')')
        {
            references.push(&inner[..close]);
            rest = &inner[close + 1..];
        } else {
            rest = after;
        }
    }
    references
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn references_follow_kubernetes_expansion() {
        let cases: &[(&str, &[&str])] = &[
            ("plain", &[]),
            ("$(A)", &["A"]),
            ("$(A)/v1?k=$(B)", &["A", "B"]),
            ("$$(A)", &[]),
            ("$$$(A)", &["A"]),
            ("$(A", &[]),
            ("$A", &[]),
            ("cost $5 $(A)", &["A"]),
            ("$()", &[""]),
        ];
        for (value, expected) in cases {
            assert_eq!(env_references(value), *expected, "{value}");
        }
    }

    #[test]
    fn env_names() {
        let cases = [
            ("OPENAI_BASE_URL", true),
            ("my.app-url", true),
            ("1ST", true),
            ("", false),
            ("A=B", false),
            ("TAB\tNAME", false),
            ("ÜBER", false),
        ];
        for (name, ok) in cases {
            assert_eq!(check_env_name(name).is_ok(), ok, "{name:?}");
        }
    }

    #[test]
    fn client_env_rules_table() {
        let rows: Vec<(&str, Value, &[&str], &[&str])> = vec![
            ("empty", json!([]), &[], &[]),
            (
                "refers to a standard name",
                json!([{"name": "API_URL", "value": "$(OPENAI_BASE_URL)"}]),
                &[],
                &[],
            ),
            (
                "refers to an earlier entry",
                json!([{"name": "A", "value": "x"}, {"name": "B", "value": "$(A)/y"}]),
                &[],
                &[],
            ),
            (
                "refers to a later entry",
                json!([{"name": "B", "value": "$(A)"}, {"name": "A", "value": "x"}]),
                &[],
                &["client_env_reference"],
            ),
            (
                "a replaced standard name refers to a later standard one",
                json!([{"name": "OPENAI_API_KEY", "value": "$(LLM_MODEL)"}]),
                &[],
                &["client_env_reference"],
            ),
            (
                "a replaced standard name refers to an earlier one",
                json!([{"name": "OPENAI_BASE_URL", "value": "$(OLLAMA_HOST)/v1"}]),
                &[],
                &[],
            ),
            (
                "escaped",
                json!([{"name": "A", "value": "$$(NOPE)"}]),
                &[],
                &[],
            ),
            (
                "from a secret",
                json!([{"name": "OPENAI_API_KEY", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]),
                &[],
                &[],
            ),
            (
                "duplicate",
                json!([{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]),
                &["client_env"],
                &[],
            ),
            (
                "device visibility",
                json!([{"name": "NVIDIA_VISIBLE_DEVICES", "value": "all"}]),
                &["client_env"],
                &[],
            ),
            (
                "bad name",
                json!([{"name": "A=B", "value": "1"}]),
                &["client_env"],
                &[],
            ),
            (
                "value and valueFrom",
                json!([{"name": "A", "value": "1", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]),
                &["client_env"],
                &[],
            ),
            (
                "two sources",
                json!([{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}, "secretKeyRef": {"name": "s", "key": "k"}}}]),
                &["client_env"],
                &[],
            ),
            (
                "no source",
                json!([{"name": "A", "valueFrom": {}}]),
                &["client_env"],
                &[],
            ),
        ];
        for (case, env, errors, warnings) in rows {
            let env: Vec<EnvVar> = serde_json::from_value(env).expect(case);
            let mut report = Report::default();
            check_client_env(&env, &mut report);
            let (got_errors, got_warnings) = report.ids();
            assert_eq!(got_errors, errors, "{case}: errors");
            assert_eq!(got_warnings, warnings, "{case}: warnings");
        }
    }

    #[test]
    fn messages_name_the_entry_and_the_fix() {
        let env: Vec<EnvVar> = serde_json::from_value(json!([
            {"name": "B", "value": "$(A)"},
            {"name": "CUDA_VISIBLE_DEVICES", "value": "0"},
        ]))
        .unwrap();
        let mut report = Report::default();
        check_client_env(&env, &mut report);
        assert_eq!(
            report.errors[0].to_string(),
            "spec.clientEnv[1].name: CUDA_VISIBLE_DEVICES decides which GPUs a process sees, which the injector sets itself (NVIDIA_VISIBLE_DEVICES=void on containers that request no GPU, so they cannot take the engine's); remove it from clientEnv, and set it in the one container that needs it"
        );
        let warning = report.warnings[0].to_string();
        assert!(warning.starts_with("spec.clientEnv[0].value: \"$(A)\" refers to $(A), which is not defined before B (only OLLAMA_HOST, "), "{warning}");
        assert!(
            warning.ends_with("write $$(A) for the literal text"),
            "{warning}"
        );
    }
}
