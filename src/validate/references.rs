//! Rules across objects: an engine that models use may not be deleted, nor
//! changed so that they no longer fit it.

use super::engine::validate_engine;
use super::fit::check_fit;
use super::report::{Report, Rule, Violation};
use crate::crd::LLMEngine;
use crate::lookup::ModelLookup;

/// The most model names a message lists before "and N more".
const NAMES_SHOWN: usize = 10;

/// Denies deleting an engine that LLMModels in `namespace` still use, naming them.
pub fn validate_engine_delete<L: ModelLookup + ?Sized>(
    engine: &LLMEngine,
    namespace: &str,
    lookup: &L,
) -> Report {
    let name = engine.metadata.name.as_deref().unwrap_or_default();
    let models = lookup.models_using_engine(namespace, name);
    let mut report = Report::default();
    if !models.is_empty() {
        let names: Vec<&str> = models
            .iter()
            .filter_map(|m| m.metadata.name.as_deref())
            .collect();
        report.error(
            Rule::EngineInUse,
            "metadata.name",
            format!(
                "LLMEngine {name:?} is used by {} in namespace {namespace:?}; pods asking for them would be rejected: delete those models or point their spec.engineRef at another engine first",
                list_models(&names)
            ),
        );
    }
    report
}

/// Checks a change of an engine: the new engine's own rules, and every model
/// in `namespace` that uses it and fitted the old engine must still fit the
/// new one (an error naming the model). Models that did not fit before get a
/// warning, so an unrelated fix of the engine is not blocked by them.
pub fn validate_engine_update<L: ModelLookup + ?Sized>(
    old: &LLMEngine,
    new: &LLMEngine,
    namespace: &str,
    lookup: &L,
) -> Report {
    let mut report = validate_engine(new);
    let name = new.metadata.name.as_deref().unwrap_or_default();
    for model in lookup.models_using_engine(namespace, name) {
        let model_name = model.metadata.name.as_deref().unwrap_or_default();
        let fit = |engine: &LLMEngine| {
            let mut fit = Report::default();
            check_fit(&model.spec, engine, &mut fit);
            fit.errors
        };
        let (before, after) = (fit(old), fit(new));
        for broken in &after {
            if before.is_empty() {
                report.error(
                    Rule::EngineChangeBreaksModel,
                    engine_field(broken),
                    format!("this change breaks LLMModel {model_name:?}, which uses this engine ({broken}); change or delete the model first, or keep the engine's current value"),
                );
            } else {
                report.warn(
                    Rule::ModelDoesNotFit,
                    engine_field(broken),
                    format!("LLMModel {model_name:?} uses this engine but does not fit it ({broken}); fix the model"),
                );
            }
        }
    }
    report
}

/// The engine field that decides a fit rule.
fn engine_field(violation: &Violation) -> &'static str {
    match violation.rule {
        Rule::TooManyDevices => "spec.accelerator.maxDevicesPerInstance",
        Rule::PortOverflow | Rule::ExposedPort => "spec.port",
        _ => "spec.accelerator.vendor",
    }
}

fn list_models(names: &[&str]) -> String {
    let shown: Vec<String> = names
        .iter()
        .take(NAMES_SHOWN)
        .map(|n| format!("{n:?}"))
        .collect();
    let noun = if names.len() == 1 {
        "LLMModel"
    } else {
        "LLMModels"
    };
    match names.len().checked_sub(NAMES_SHOWN) {
        Some(more) if more > 0 => format!("{noun} {} and {more} more", shown.join(", ")),
        _ => format!("{noun} {}", shown.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use crate::validate::testing::{Row, check_table, engine, merged, model};
    use serde_json::{Value, json};

    /// Engine `gpu` (NVIDIA, limit 4, port 11434) used by `mp2` (2 GPUs) and
    /// `dp3` (3 instances); `cpu` used by nothing; `old` used by `broken` (5 GPUs).
    fn catalog() -> Catalog {
        let mut catalog = Catalog::new();
        catalog.insert_engine(engine(
            "gpu",
            json!({"accelerator": {"vendor": "NVIDIA", "maxDevicesPerInstance": 4}}),
        ));
        for (name, engine, parallelism) in [
            ("mp2", "gpu", json!({"model": 2})),
            ("dp3", "gpu", json!({"data": 3})),
            ("broken", "old", json!({"model": 5})),
            ("elsewhere", "other", json!({})),
        ] {
            let spec = json!({"model": "qwen3:8b", "engineRef": {"name": engine}, "parallelism": parallelism});
            catalog.insert_model(model(name, spec));
        }
        catalog
    }

    #[test]
    fn deleting_a_used_engine_is_denied_naming_the_models() {
        let gpu = engine("gpu", json!({}));
        let report = validate_engine_delete(&gpu, "ns", &catalog());
        assert_eq!(
            report.errors[0].to_string(),
            "metadata.name: LLMEngine \"gpu\" is used by LLMModels \"dp3\", \"mp2\" in namespace \"ns\"; pods asking for them would be rejected: delete those models or point their spec.engineRef at another engine first"
        );
        assert!(validate_engine_delete(&engine("cpu", json!({})), "ns", &catalog()).is_allowed());
        assert!(validate_engine_delete(&gpu, "other-ns", &catalog()).is_allowed());
    }

    #[test]
    fn long_lists_are_cut() {
        let names: Vec<String> = (0..12).map(|i| format!("m{i}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        assert!(list_models(&names).ends_with("\"m9\" and 2 more"));
        assert_eq!(list_models(&["a"]), "LLMModel \"a\"");
    }

    #[test]
    fn engine_updates_table() {
        let limit =
            |n: i32| json!({"accelerator": {"vendor": "NVIDIA", "maxDevicesPerInstance": n}});
        // The input: (engine name, old spec, new spec).
        let rows: Vec<Row<(&str, Value, Value)>> = vec![
            ("raising the limit", ("gpu", limit(4), limit(8)), &[], &[]),
            (
                "lowering the limit below a model",
                ("gpu", limit(4), limit(1)),
                &["engine_change_breaks_model"],
                &[],
            ),
            (
                "vendor None under GPU models",
                ("gpu", limit(4), json!({"accelerator": {"vendor": "None"}})),
                &["engine_change_breaks_model"],
                &[],
            ),
            (
                "port so high the instances overflow",
                ("gpu", limit(4), merged(limit(4), json!({"port": 65534}))),
                &["engine_change_breaks_model"],
                &[],
            ),
            (
                "the new engine's own rules still apply",
                ("gpu", limit(4), merged(limit(4), json!({"port": 0}))),
                &["engine_port"],
                &[],
            ),
            (
                "a model that did not fit before only warns",
                ("old", limit(4), limit(3)),
                &[],
                &["model_does_not_fit"],
            ),
        ];
        check_table(rows, |(name, old, new)| {
            validate_engine_update(&engine(name, old), &engine(name, new), "ns", &catalog())
        });
    }

    #[test]
    fn breaking_update_names_model_field_and_fix() {
        let limit =
            |n: i32| json!({"accelerator": {"vendor": "NVIDIA", "maxDevicesPerInstance": n}});
        let (old, new) = (engine("gpu", limit(4)), engine("gpu", limit(1)));
        let report = validate_engine_update(&old, &new, "ns", &catalog());
        assert_eq!(
            report.errors[0].to_string(),
            "spec.accelerator.maxDevicesPerInstance: this change breaks LLMModel \"mp2\", which uses this engine (spec.parallelism.model: 2 exceeds LLMEngine \"gpu\" accelerator.maxDevicesPerInstance 1; lower it or raise the engine's limit); change or delete the model first, or keep the engine's current value"
        );
    }
}
