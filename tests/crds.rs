//! The committed CRDs match the Rust types, and their CEL rules accept good
//! objects and reject bad ones (evaluated by kube's CEL interpreter, with the
//! schema defaults applied first, as the apiserver does).

use kube::core::cel::Validator;
use llm_injector::crd::{crd_yaml, crds};
use serde_json::{Value, json};

#[test]
fn committed_crds_match_generated() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for dir in ["crds", "charts/llm-injector/crds"] {
        let dir = root.join(dir);
        if dir != root.join("crds") && !dir.exists() {
            continue;
        }
        for (file, crd) in crds() {
            let path = dir.join(file);
            let generated = crd_yaml(&crd);
            if std::env::var_os("UPDATE_GOLDEN").is_some() {
                std::fs::write(&path, &generated).expect("write CRD");
                continue;
            }
            let committed = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                committed == generated,
                "{} is stale: run `UPDATE_GOLDEN=1 cargo test --release --test crds` (or `llm-injector crd`)",
                path.display()
            );
        }
    }
}

#[test]
fn crd_names_and_columns() {
    let all = crds();
    let engine = &all[0].1;
    let model = &all[1].1;
    assert_eq!(engine.spec.names.short_names, Some(vec!["llme".to_owned()]));
    assert_eq!(model.spec.names.short_names, Some(vec!["llmm".to_owned()]));
    for (_, crd) in &all {
        assert_eq!(crd.spec.group, "llm.injector.dev");
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(crd.spec.names.categories, Some(vec!["llm".to_owned()]));
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, "v1alpha1");
        assert!(
            version
                .subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some()
        );
    }
    let columns: Vec<String> = model.spec.versions[0]
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.to_uppercase())
        .collect();
    assert_eq!(
        columns,
        ["MODEL", "ENGINE", "DATA", "MODEL-PAR", "GPUS", "AGE"]
    );
}

/// Every property of both CRD schemas carries a description (`kubectl explain`).
#[test]
fn every_field_is_documented() {
    fn walk(path: &str, schema: &Value, missing: &mut Vec<String>) {
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            for (name, prop) in props {
                let here = format!("{path}.{name}");
                if prop.get("description").is_none()
                    && !matches!(name.as_str(), "apiVersion" | "kind" | "metadata")
                {
                    missing.push(here.clone());
                }
                walk(&here, prop, missing);
            }
        }
        if let Some(items) = schema.get("items") {
            walk(&format!("{path}[]"), items, missing);
        }
    }
    let mut missing = Vec::new();
    for (_, crd) in crds() {
        let schema = serde_json::to_value(&crd.spec.versions[0].schema).unwrap();
        walk(
            &crd.spec.names.kind,
            &schema["openAPIV3Schema"],
            &mut missing,
        );
    }
    assert!(
        missing.is_empty(),
        "fields without a description: {missing:?}"
    );
}

fn schema(kind: &str) -> Value {
    let crd = crds()
        .into_iter()
        .map(|(_, c)| c)
        .find(|c| c.spec.names.kind == kind)
        .unwrap();
    serde_json::to_value(&crd.spec.versions[0].schema).unwrap()["openAPIV3Schema"].clone()
}

/// Runs the CEL rules of `kind` on an object with `spec`; returns the messages.
fn cel_messages(kind: &str, spec: Value) -> Vec<String> {
    let object = json!({
        "apiVersion": "llm.injector.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": "x", "namespace": "team-a"},
        "spec": spec,
    });
    match Validator::new().validate(&schema(kind), &object, None) {
        Ok(()) => Vec::new(),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn llmmodel_cel_rules() {
    let base = || json!({"model": "qwen3:8b", "engineRef": {"name": "ollama-nvidia"}});
    let with = |patch: Value| {
        let mut spec = base();
        spec.as_object_mut()
            .unwrap()
            .extend(patch.as_object().unwrap().clone());
        spec
    };
    // (case, spec, expected message fragment or None for valid)
    let cases: Vec<(&str, Value, Option<&str>)> = vec![
        ("minimal", base(), None),
        ("cpu", with(json!({"parallelism": {"model": 0}})), None),
        (
            "2x2 with devices",
            with(json!({"parallelism": {"model": 2, "data": 2}, "devices": ["0", "1"]})),
            None,
        ),
        (
            "device default one GPU",
            with(json!({"devices": ["0"]})),
            None,
        ),
        (
            "data 0",
            with(json!({"parallelism": {"data": 0}})),
            Some("parallelism.data is the number of engine instances and must be at least 1"),
        ),
        (
            "data negative",
            with(json!({"parallelism": {"model": 1, "data": -3}})),
            Some("must be at least 1"),
        ),
        (
            "host index",
            with(json!({"parallelism": {"model": 1}, "devices": ["2"]})),
            Some("devices are indices inside the engine container"),
        ),
        (
            "device equal to count",
            with(json!({"parallelism": {"model": 2}, "devices": ["2"]})),
            Some("indices below parallelism.model"),
        ),
        (
            "device with default model 1",
            with(json!({"devices": ["1"]})),
            Some("indices below parallelism.model"),
        ),
        (
            "more devices than GPUs",
            with(json!({"parallelism": {"model": 1}, "devices": ["0", "0"]})),
            Some("devices lists more GPUs than parallelism.model"),
        ),
    ];
    for (case, spec, expected) in cases {
        let messages = cel_messages("LLMModel", spec);
        match expected {
            None => assert!(messages.is_empty(), "{case}: unexpected {messages:?}"),
            Some(fragment) => assert!(
                messages.iter().any(|m| m.contains(fragment)),
                "{case}: want {fragment:?}, got {messages:?}"
            ),
        }
    }
}

#[test]
fn llmengine_cel_rules() {
    let cases: Vec<(&str, Value, Option<&str>)> = vec![
        ("empty spec is a CPU engine", json!({}), None),
        (
            "nvidia",
            json!({"accelerator": {"vendor": "NVIDIA", "maxDevicesPerInstance": 8, "runtimeClassName": "nvidia"}}),
            None,
        ),
        (
            "dra",
            json!({"accelerator": {"vendor": "NVIDIA", "allocation": "DRA", "dra": {"resourceClaimTemplateName": "gpus"}}}),
            None,
        ),
        (
            "pvc store",
            json!({"modelStore": {"persistentVolumeClaim": {"claimName": "models"}}}),
            None,
        ),
        (
            "cpu with resourceName",
            json!({"accelerator": {"vendor": "None", "resourceName": "nvidia.com/gpu"}}),
            Some("a CPU engine (vendor None) takes no resourceName"),
        ),
        (
            "cpu with runtimeClass",
            json!({"accelerator": {"runtimeClassName": "nvidia"}}),
            Some("a CPU engine"),
        ),
        (
            "cpu with max devices",
            json!({"accelerator": {"maxDevicesPerInstance": 2}}),
            Some("a CPU engine"),
        ),
        (
            "cpu with DRA",
            json!({"accelerator": {"allocation": "DRA", "dra": {"resourceClaimTemplateName": "x"}}}),
            Some("a CPU engine"),
        ),
        (
            "DRA without template",
            json!({"accelerator": {"vendor": "AMD", "allocation": "DRA"}}),
            Some("allocation DRA needs dra.resourceClaimTemplateName"),
        ),
        (
            "dra block without DRA",
            json!({"accelerator": {"vendor": "AMD", "dra": {"resourceClaimTemplateName": "x"}}}),
            Some("dra is only used with allocation DRA"),
        ),
        (
            "resourceName with DRA",
            json!({"accelerator": {"vendor": "NVIDIA", "allocation": "DRA", "resourceName": "nvidia.com/gpu", "dra": {"resourceClaimTemplateName": "x"}}}),
            Some("resourceName is a device-plugin resource"),
        ),
        (
            "two stores",
            json!({"modelStore": {"emptyDir": {}, "persistentVolumeClaim": {"claimName": "m"}}}),
            Some("exactly one of emptyDir or persistentVolumeClaim"),
        ),
        (
            "no store source",
            json!({"modelStore": {}}),
            Some("exactly one of emptyDir or persistentVolumeClaim"),
        ),
    ];
    for (case, spec, expected) in cases {
        let messages = cel_messages("LLMEngine", spec);
        match expected {
            None => assert!(messages.is_empty(), "{case}: unexpected {messages:?}"),
            Some(fragment) => assert!(
                messages.iter().any(|m| m.contains(fragment)),
                "{case}: want {fragment:?}, got {messages:?}"
            ),
        }
    }
}

/// The example catalog passes its own CRDs' CEL rules.
#[test]
fn example_catalog_passes_cel() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in [
        "examples/catalog/engines.yaml",
        "examples/catalog/models.yaml",
        "tests/golden/catalog.yaml",
    ] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        for doc in llm_injector::manifest::read_documents(file, &text).unwrap() {
            let kind = doc.value["kind"].as_str().unwrap().to_owned();
            if let Err(errors) = Validator::new().validate(&schema(&kind), &doc.value, None) {
                panic!("{}: {errors:?}", doc.origin());
            }
        }
    }
}
