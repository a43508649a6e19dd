//! How a model fits its engine: GPUs per instance against the engine's vendor
//! and limit, instance ports against the engine's port. Validation of models,
//! of engine changes, and injection all check these same rules.

use super::report::{Report, Rule};
use crate::crd::{LLMEngine, LLMModelSpec, Vendor};
use crate::layout::last_injected_port;

/// Checks `spec` (a model's) against `engine`; model-only rules (ranges, the
/// device indices) are in `model.rs`.
pub(super) fn check_fit(spec: &LLMModelSpec, engine: &LLMEngine, report: &mut Report) {
    let engine_name = engine.metadata.name.as_deref().unwrap_or_default();
    let vendor = engine.spec.accelerator.vendor;
    let max = engine.spec.effective_max_devices();
    let field = "spec.parallelism.model";
    match (vendor, spec.parallelism.model) {
        (Vendor::None, Some(n)) if n > 0 => report.error(
            Rule::GpuOnCpuEngine,
            field,
            format!("{n} asks for GPUs, but LLMEngine {engine_name:?} is CPU-only (accelerator.vendor None); set parallelism.model to 0 or use a GPU engine"),
        ),
        (Vendor::None, _) => {}
        (_, Some(0)) => report.error(
            Rule::NoGpuOnGpuEngine,
            field,
            format!("0 means CPU only, but LLMEngine {engine_name:?} is an {} GPU engine; set parallelism.model to at least 1 or use a CPU engine", vendor.as_str()),
        ),
        (_, Some(n)) if n > max => report.error(
            Rule::TooManyDevices,
            field,
            format!("{n} exceeds LLMEngine {engine_name:?} accelerator.maxDevicesPerInstance {max}; lower it or raise the engine's limit"),
        ),
        _ => {}
    }
    if vendor == Vendor::None && spec.devices.as_ref().is_some_and(|d| !d.is_empty()) {
        report.error(
            Rule::GpuOnCpuEngine,
            "spec.devices",
            format!("lists GPU indices, but LLMEngine {engine_name:?} is CPU-only (accelerator.vendor None); remove devices or use a GPU engine"),
        );
    }

    let (port, data) = (engine.spec.port, spec.parallelism.data);
    let last = last_injected_port(port, data, spec.has_router());
    if (1..=65535).contains(&port) && data >= 1 && last > 65535 {
        let router = if spec.has_router() {
            " (the llm-router takes the two ports after the engines)"
        } else {
            ""
        };
        report.error(
            Rule::PortOverflow,
            "spec.parallelism.data",
            format!("{data} engine instances on LLMEngine {engine_name:?} port {port} need ports {port}..{last}{router}, past 65535; lower the engine's port or parallelism.data"),
        );
    }
    if let Some(exposed) = spec.exposed_port()
        && i64::from(exposed) >= i64::from(port)
        && i64::from(exposed) <= last
    {
        report.error(
            Rule::ExposedPort,
            "spec.routing.expose.port",
            format!("{exposed} is one of the ports {port}..{last} the engine instances and the llm-router take on LLMEngine {engine_name:?} port {port}; expose another port, such as 8000"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{EngineRef, Parallelism};
    use crate::validate::testing;
    use serde_json::json;

    fn engine(vendor: Vendor, max: Option<i32>, port: i32) -> LLMEngine {
        let accelerator = json!({"vendor": vendor.as_str(), "maxDevicesPerInstance": max});
        testing::engine("eng", json!({"accelerator": accelerator, "port": port}))
    }

    fn spec(gpus: Option<i32>, data: i32, devices: &[&str]) -> LLMModelSpec {
        LLMModelSpec {
            model: "qwen3:8b".into(),
            engine_ref: EngineRef { name: "eng".into() },
            parallelism: Parallelism { model: gpus, data },
            devices: (!devices.is_empty()).then(|| devices.iter().map(|d| (*d).into()).collect()),
            serving: None,
            client_env: Vec::new(),
            routing: None,
            facts: None,
        }
    }

    #[test]
    fn an_exposed_port_is_not_an_engine_port() {
        let cases = [
            // (engine port, data, exposed port, error)
            (11434, 1, 8000, false),
            (11434, 1, 11434, true),
            // The router's two ports after the engine's.
            (11434, 1, 11435, true),
            (11434, 1, 11436, true),
            (11434, 1, 11437, false),
            (11434, 4, 11439, true),
            (11434, 4, 11433, false),
        ];
        for (port, data, exposed, error) in cases {
            let mut model = spec(Some(1), data, &[]);
            model.routing = Some(crate::crd::Routing {
                expose: Some(crate::crd::Expose {
                    port: Some(exposed),
                }),
                ..Default::default()
            });
            let mut report = Report::default();
            check_fit(&model, &engine(Vendor::Nvidia, Some(4), port), &mut report);
            let rules: Vec<&str> = report.errors.iter().map(|v| v.rule.id()).collect();
            assert_eq!(
                rules.contains(&"exposed_port"),
                error,
                "{port} {data} {exposed}: {rules:?}"
            );
        }
    }

    #[test]
    fn fit_table() {
        // (vendor, maxDevicesPerInstance, port, parallelism.model, data, devices, errors)
        type Case<'a> = (
            Vendor,
            Option<i32>,
            i32,
            Option<i32>,
            i32,
            &'a [&'a str],
            &'a [&'a str],
        );
        let cases: Vec<Case> = vec![
            (Vendor::None, None, 11434, None, 1, &[], &[]),
            (Vendor::None, None, 11434, Some(0), 1, &[], &[]),
            (
                Vendor::None,
                None,
                11434,
                Some(1),
                1,
                &[],
                &["gpu_on_cpu_engine"],
            ),
            (
                Vendor::None,
                None,
                11434,
                None,
                1,
                &["0"],
                &["gpu_on_cpu_engine"],
            ),
            (Vendor::None, None, 11434, Some(-1), 1, &[], &[]),
            (Vendor::Nvidia, None, 11434, None, 1, &[], &[]),
            (Vendor::Nvidia, None, 11434, Some(8), 1, &[], &[]),
            (
                Vendor::Nvidia,
                None,
                11434,
                Some(9),
                1,
                &[],
                &["too_many_devices"],
            ),
            (Vendor::Nvidia, Some(2), 11434, Some(2), 1, &[], &[]),
            (
                Vendor::Nvidia,
                Some(2),
                11434,
                Some(3),
                1,
                &[],
                &["too_many_devices"],
            ),
            (
                Vendor::Amd,
                None,
                11434,
                Some(0),
                1,
                &[],
                &["no_gpu_on_gpu_engine"],
            ),
            (Vendor::Amd, None, 65535, None, 1, &[], &[]),
            (Vendor::Amd, None, 65534, None, 1, &[], &[]),
            (Vendor::Amd, None, 65532, None, 2, &[], &[]),
            (Vendor::Amd, None, 65533, None, 2, &[], &["port_overflow"]),
            (Vendor::Amd, None, 65534, None, 3, &[], &["port_overflow"]),
            (Vendor::Amd, None, 0, None, 3, &[], &[]),
            (
                Vendor::Nvidia,
                Some(1),
                65535,
                Some(2),
                2,
                &[],
                &["too_many_devices", "port_overflow"],
            ),
        ];
        for (vendor, max, port, gpus, data, devices, expected) in cases {
            let mut report = Report::default();
            check_fit(
                &spec(gpus, data, devices),
                &engine(vendor, max, port),
                &mut report,
            );
            let got: Vec<&str> = report.errors.iter().map(|v| v.rule.id()).collect();
            assert_eq!(
                got, expected,
                "{vendor:?} max {max:?} port {port} gpus {gpus:?} data {data} devices {devices:?}"
            );
        }
    }

    #[test]
    fn too_many_devices_message() {
        let mut report = Report::default();
        check_fit(
            &spec(Some(4), 1, &[]),
            &engine(Vendor::Nvidia, Some(2), 11434),
            &mut report,
        );
        assert_eq!(
            report.errors[0].to_string(),
            "spec.parallelism.model: 4 exceeds LLMEngine \"eng\" accelerator.maxDevicesPerInstance 2; lower it or raise the engine's limit"
        );
    }
}
