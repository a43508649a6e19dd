//! The committed CRDs match the Rust types, and their CEL rules accept good
//! objects and reject bad ones (evaluated by kube's CEL interpreter, with the
//! schema defaults applied first, as the apiserver does).

use kube::core::cel::Validator;
use llm_injector::Catalog;
use llm_injector::crd::{LLMEngine, LLMModel, crd_yaml, crds};
use llm_injector::validate::{validate_engine, validate_model};
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
    let columns = |crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition| -> Vec<String> {
        crd.spec.versions[0]
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| c.name.to_uppercase())
            .collect()
    };
    // What a model resolves to comes from its status, so a defaulted field
    // shows its value instead of an empty column.
    assert_eq!(
        columns(model),
        [
            "MODEL",
            "ENGINE",
            "INSTANCES",
            "GPUS-PER-INSTANCE",
            "GPUS",
            "READY-PODS",
            "VALID",
            "READY",
            "FITS",
            "AGE"
        ]
    );
    assert_eq!(
        columns(engine),
        [
            "RUNTIME", "VENDOR", "MAX-GPUS", "VALID", "PORT", "IMAGE", "AGE"
        ]
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

/// One object of `tests/crds/cel-cases.yaml` and the answer it must get.
#[derive(serde::Deserialize)]
struct CelCase {
    kind: String,
    case: String,
    spec: Value,
    /// A fragment of the expected message; none: the object is valid.
    rejects: Option<String>,
}

/// The CEL rules of both CRDs give every case of `tests/crds/cel-cases.yaml`
/// its answer (the same table tests/e2e checks against a real kube-apiserver).
#[test]
fn cel_rules_answer_the_case_table() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/crds/cel-cases.yaml");
    let cases: Vec<CelCase> =
        serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for kind in ["LLMModel", "LLMEngine"] {
        assert!(
            cases.iter().any(|c| c.kind == kind && c.rejects.is_some())
                && cases.iter().any(|c| c.kind == kind && c.rejects.is_none()),
            "{kind} needs valid and invalid cases"
        );
    }
    for CelCase {
        kind,
        case,
        spec,
        rejects,
    } in cases
    {
        let messages = cel_messages(&kind, spec);
        match rejects {
            None => assert!(
                messages.is_empty(),
                "{kind} {case}: unexpected {messages:?}"
            ),
            Some(fragment) => assert!(
                messages.iter().any(|m| m.contains(&fragment)),
                "{kind} {case}: want {fragment:?}, got {messages:?}"
            ),
        }
    }
}

/// The catalogs pass their own CRDs' CEL rules, except objects that
/// `validate` refuses too (the golden catalog holds some on purpose): CEL
/// never refuses what the validator accepts.
#[test]
fn catalogs_pass_cel_unless_validate_refuses() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = [
        "examples/catalog/engines.yaml",
        "examples/catalog/models.yaml",
        "tests/golden/catalog.yaml",
    ];
    let catalog = Catalog::load_all(&files.map(|f| root.join(f)), "default").unwrap();
    let mut failures = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        for doc in llm_injector::manifest::read_documents(file, &text).unwrap() {
            let kind = doc.value["kind"].as_str().unwrap().to_owned();
            let Err(errors) = Validator::new().validate(&schema(&kind), &doc.value, None) else {
                continue;
            };
            let namespace = doc.value["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default");
            let allowed = match kind.as_str() {
                "LLMModel" => {
                    let model: LLMModel = serde_json::from_value(doc.value.clone()).unwrap();
                    validate_model(&model, namespace, &catalog).is_allowed()
                }
                _ => {
                    let engine: LLMEngine = serde_json::from_value(doc.value.clone()).unwrap();
                    validate_engine(&engine).is_allowed()
                }
            };
            if allowed {
                failures.push(format!(
                    "{}: CEL refuses, validate allows: {errors:?}",
                    doc.origin()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every CEL rule of both CRDs stays within the apiserver's cost budget and
/// has bounds on what it iterates (kube's static cost analysis; the apiserver
/// rejects a CRD whose rules may cost too much). Its scope check is left out:
/// it mistakes comprehension variables (`d` in `all(d, ...)`) for unknown ones.
#[test]
fn cel_rules_are_cost_safe() {
    use kube::core::cel::{ScopeContext, WarningKind, analyze_rule, compile_schema};
    fn walk(path: &str, schema: &Value, found: &mut Vec<String>) {
        for rule in schema["x-kubernetes-validations"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let rule = rule["rule"].as_str().unwrap_or_default();
            let compiled = compile_schema(schema);
            let warnings = analyze_rule(rule, &compiled, ScopeContext::CrdValidation);
            for warning in warnings
                .iter()
                .filter(|w| w.kind != WarningKind::WrongScope)
            {
                found.push(format!("{path}: {rule}: {}", warning.message));
            }
        }
        for (name, prop) in schema["properties"].as_object().into_iter().flatten() {
            walk(&format!("{path}.{name}"), prop, found);
        }
        if let Some(items) = schema.get("items") {
            walk(&format!("{path}[]"), items, found);
        }
    }
    let mut found = Vec::new();
    for kind in ["LLMEngine", "LLMModel"] {
        walk(kind, &schema(kind), &mut found);
    }
    assert!(found.is_empty(), "{found:#?}");
}

/// Does `value` match the schema `pattern` of a CRD field? Evaluated by the CEL
/// interpreter's `matches` (RE2 syntax, as the apiserver's patterns).
fn pattern_matches(pattern: &str, value: &str) -> bool {
    assert!(!pattern.contains(['\'', '\\']), "quote {pattern} for CEL");
    let schema = json!({
        "type": "object",
        "properties": {"v": {"type": "string"}},
        "x-kubernetes-validations": [{"rule": format!("self.v.matches('{pattern}')")}],
    });
    Validator::new()
        .validate(&schema, &json!({ "v": value }), None)
        .is_ok()
}

fn field_pattern(kind: &str, pointer: &str) -> String {
    schema(kind)
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{kind} has no pattern at {pointer}"))
        .to_owned()
}

/// The CRD's patterns for `spec.model` and `spec.serving.keepAlive` accept
/// what the webhook's parsers accept (Ollama's name grammar, Go durations).
#[test]
fn schema_patterns_agree_with_the_webhook() {
    use llm_injector::validate::{parse_keep_alive, parse_ollama_name};
    let model = field_pattern("LLMModel", "/properties/spec/properties/model/pattern");
    for reference in [
        "qwen3:8b",
        "qwen3",
        "library/llama3.2:1b",
        "hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M",
        "localhost:5000/team/m:v1",
        "https://ollama.com/library/qwen3:8b",
        "_x/_y:_z",
        "qwen3@sha256:abc",
        "my.team/qwen3:8b",
        "a/b/c/d",
        "-qwen3",
        "qwen3:",
        "qwen3:8b:x",
        "http://example.com/a/b",
        "team/m:t/x",
        &"m".repeat(81),
    ] {
        assert_eq!(
            pattern_matches(&model, reference),
            parse_ollama_name(reference).is_ok(),
            "spec.model {reference:?}"
        );
    }
    let keep_alive = field_pattern(
        "LLMModel",
        "/properties/spec/properties/serving/properties/keepAlive/pattern",
    );
    for value in [
        "-1", "0", "3600", "+10", "30m", "1h30m", "1.5h", ".5m", "1.m", "3µs", "3μs", "-5m",
        "30 min", "5M", "1d", "1h-30m", ".s", "h", "", "-",
    ] {
        assert_eq!(
            pattern_matches(&keep_alive, value),
            parse_keep_alive(value).is_ok(),
            "spec.serving.keepAlive {value:?}"
        );
    }
    // A pattern cannot see overflow: the webhook alone rejects durations past ~292 years.
    assert!(pattern_matches(&keep_alive, "2562048h") && parse_keep_alive("2562048h").is_err());
}

/// An object of `kind` with `spec`, as the apiserver sees it.
fn object(kind: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "llm.injector.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": "x", "namespace": "team-a"},
        "spec": spec,
    })
}

/// Sets `key` of a JSON object to `value`, unless `value` is absent.
fn put(spec: &mut Value, key: &str, value: Option<Value>) {
    if let Some(value) = value {
        spec[key] = value;
    }
}

fn engine_spec() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let pick = |values: Vec<Value>| prop::option::of(prop::sample::select(values));
    (
        pick(vec![json!("None"), json!("NVIDIA"), json!("AMD")]),
        pick(vec![json!("DevicePlugin"), json!("DRA")]),
        pick(vec![json!({"resourceClaimTemplateName": "gpus"})]),
        pick(vec![
            json!("nvidia.com/gpu"),
            json!("amd.com/gpu"),
            json!("kubernetes.io/gpu"),
            json!("example.com/gpu"),
        ]),
        pick(vec![json!("nvidia")]),
        pick(vec![json!(1), json!(4)]),
        pick(vec![
            json!("ollama/ollama:0.12.6"),
            json!("ollama/ollama:0.12.6-rocm"),
            json!("example.com/ROCm/ollama:1"),
        ]),
        pick(vec![
            json!({"emptyDir": {}}),
            json!({"persistentVolumeClaim": {"claimName": "models"}}),
            json!({"emptyDir": {}, "persistentVolumeClaim": {"claimName": "models"}}),
            json!({}),
        ]),
    )
        .prop_map(
            |(vendor, allocation, dra, resource, class, max, image, store)| {
                let mut accelerator = json!({});
                put(&mut accelerator, "vendor", vendor);
                put(&mut accelerator, "allocation", allocation);
                put(&mut accelerator, "dra", dra);
                put(&mut accelerator, "resourceName", resource);
                put(&mut accelerator, "runtimeClassName", class);
                put(&mut accelerator, "maxDevicesPerInstance", max);
                let mut spec = json!({"accelerator": accelerator});
                put(&mut spec, "image", image);
                put(&mut spec, "modelStore", store);
                spec
            },
        )
}

fn model_spec() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let pick = |values: Vec<Value>| prop::option::of(prop::sample::select(values));
    (
        pick(vec![json!(0), json!(1), json!(2)]),
        pick(vec![json!(-1), json!(0), json!(1), json!(3)]),
        pick(vec![
            json!([]),
            json!(["0"]),
            json!(["1"]),
            json!(["0", "1"]),
            json!(["2", "0", "1"]),
        ]),
        prop::sample::select(vec!["gpu", "cpu", "missing"]),
    )
        .prop_map(|(model, data, devices, engine)| {
            let mut parallelism = json!({});
            put(&mut parallelism, "model", model);
            put(&mut parallelism, "data", data);
            let mut spec = json!({"model": "qwen3:8b", "engineRef": {"name": engine}, "parallelism": parallelism});
            put(&mut spec, "devices", devices);
            spec
        })
}

proptest::proptest! {
    /// The webhook (and `llm-injector validate`) deny every LLMEngine the
    /// CRD's CEL rules deny, so the offline check is never weaker.
    #[test]
    fn validate_denies_every_engine_cel_denies(spec in engine_spec()) {
        let object = object("LLMEngine", spec);
        if Validator::new().validate(&schema("LLMEngine"), &object, None).is_err() {
            let engine: LLMEngine = serde_json::from_value(object.clone()).unwrap();
            proptest::prop_assert!(!validate_engine(&engine).is_allowed(), "{object}");
        }
    }

    /// The same for LLMModels, whatever their engine: a GPU engine, a CPU
    /// engine, or none yet.
    #[test]
    fn validate_denies_every_model_cel_denies(spec in model_spec()) {
        let object = object("LLMModel", spec);
        if Validator::new().validate(&schema("LLMModel"), &object, None).is_err() {
            let mut catalog = Catalog::new();
            for (name, vendor) in [("gpu", "NVIDIA"), ("cpu", "None")] {
                let engine = object_of_kind("LLMEngine", name, json!({"accelerator": {"vendor": vendor}}));
                catalog.insert_engine(serde_json::from_value(engine).unwrap());
            }
            let model: LLMModel = serde_json::from_value(object.clone()).unwrap();
            proptest::prop_assert!(!validate_model(&model, "team-a", &catalog).is_allowed(), "{object}");
        }
    }
}

fn object_of_kind(kind: &str, name: &str, spec: Value) -> Value {
    let mut object = object(kind, spec);
    object["metadata"]["name"] = json!(name);
    object
}
