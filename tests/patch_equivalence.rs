//! The patch of an injection is built from the shape of the pod only
//! (`inject::shape`) and remembered per shape and model; applied to the whole
//! pod it must give a pod of the same type, and apart from the env entries
//! put before a container's own it is exactly the `json_patch::diff` of the
//! whole pod before and after, both without `metadata.managedFields`.
//! The patch of one injector for every object (which remembers models and
//! shapes across them) must be the one made afresh for each. Checked on every
//! pod and pod template of the examples, the golden cases and errors, the
//! apiserver fixtures and a few hand-made edge cases.

mod support;

use support::root;

use std::path::PathBuf;
use std::sync::OnceLock;

use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use llm_injector::inject::{Injector, Outcome, PodLike, inject};
use llm_injector::manifest::{pod_template_path, read_documents};
use llm_injector::{Catalog, InjectOptions, ModelLookup};
use serde::Serialize;
use serde_json::{Value, json};

fn catalog() -> Catalog {
    support::server::golden_catalog()
}

/// One injector for every check of a test binary.
fn shared_injector() -> &'static Injector {
    static INJECTOR: OnceLock<Injector> = OnceLock::new();
    INJECTOR.get_or_init(Injector::default)
}

/// The whole object as JSON without `metadata.managedFields`.
fn full_json(value: &impl Serialize) -> Value {
    let mut json = serde_json::to_value(value).expect("serialise");
    if let Some(meta) = json.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    json
}

/// The containers' env lists of a pod's JSON, taken out of it.
fn take_env(object: &mut Value) -> Vec<Vec<Value>> {
    let Some(containers) = object
        .pointer_mut("/spec/containers")
        .and_then(Value::as_array_mut)
    else {
        return Vec::new();
    };
    containers
        .iter_mut()
        .map(|c| match c.as_object_mut().and_then(|m| m.remove("env")) {
            Some(Value::Array(env)) => env,
            _ => Vec::new(),
        })
        .collect()
}

/// Injects `object` (JSON of a Pod or PodTemplateSpec) if its annotation names a
/// model of the catalog; returns whether it did. Panics on a patch mismatch.
fn check<P: PodLike>(origin: &str, object: &Value, catalog: &Catalog) -> bool {
    let Ok(typed) = serde_json::from_value::<P>(object.clone()) else {
        return false;
    };
    let Some(meta) = typed.pod_metadata() else {
        return false;
    };
    let namespace = meta
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_owned());
    let Some(name) = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(llm_injector::MODEL_ANNOTATION))
    else {
        return false;
    };
    let Some(model) = catalog.model(&namespace, name) else {
        return false;
    };
    let Some(engine) = catalog.engine(&namespace, &model.spec.engine_ref.name) else {
        return false;
    };
    let (fresh, shared) = match (
        inject(&typed, &model, &engine, &InjectOptions::default()),
        shared_injector().inject(&typed, &namespace, catalog),
    ) {
        (Ok(fresh), Ok(Outcome::Injected(shared))) => (fresh, shared),
        (Err(a), Err(b)) => {
            assert_eq!(a.to_string(), b.to_string(), "{origin}: errors differ");
            eprintln!("{origin}: not injected: {a}");
            return false;
        }
        (a, b) => panic!(
            "{origin}: a fresh and the shared injection disagree: {:?} / {:?}",
            a.err(),
            b
        ),
    };
    assert_eq!(
        shared.patch.operations(),
        fresh.patch.operations(),
        "{origin}: the shared injector's patch"
    );
    assert_eq!(shared.warnings, fresh.warnings, "{origin}: warnings");
    assert_eq!(shared.status, fresh.status, "{origin}: status");

    let before = full_json(&typed);
    let mut after = before.clone();
    json_patch::patch(&mut after, shared.patch.operations())
        .unwrap_or_else(|e| panic!("{origin}: the patch does not apply: {e}"));
    let typed_after = shared
        .apply(&typed)
        .unwrap_or_else(|e| panic!("{origin}: the injected object does not decode: {e}"));
    assert_eq!(
        full_json(&typed_after),
        after,
        "{origin}: the injected object keeps every field through its type"
    );
    assert_eq!(
        typed.pod_metadata().and_then(|m| m.managed_fields.clone()),
        typed_after
            .pod_metadata()
            .and_then(|m| m.managed_fields.clone()),
        "{origin}: managedFields"
    );
    // Apart from the env entries put before a container's own (each an
    // `add` at its index, where a diff would replace the shifted entries),
    // the patch is the diff of the whole objects.
    let (mut without_env, mut after_without_env) = (before.clone(), after.clone());
    let (old_env, new_env) = (take_env(&mut without_env), take_env(&mut after_without_env));
    let expected = json_patch::diff(&without_env, &after_without_env);
    let not_env: Vec<_> = shared
        .patch
        .operations()
        .iter()
        .filter(|op| !op.path().to_string().contains("/env"))
        .cloned()
        .collect();
    assert_eq!(not_env, expected.0, "{origin}: the patch beyond env");
    // Env entries are only ever put first: the user's follow, unchanged.
    for (index, (old, new)) in old_env.iter().zip(&new_env).enumerate() {
        assert!(
            new.ends_with(old),
            "{origin}: container {index} keeps its env after the injected entries"
        );
    }
    true
}

/// Every pod or pod template in `value`, checked; returns how many injected.
fn check_document(origin: &str, value: &Value, catalog: &Catalog) -> usize {
    if value.get("kind").and_then(Value::as_str) == Some("List") {
        return value["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|item| check_document(origin, item, catalog))
            .sum();
    }
    let api_version = value
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let kind = value.get("kind").and_then(Value::as_str).unwrap_or("");
    match pod_template_path(api_version, kind) {
        Some("") => usize::from(check::<Pod>(origin, value, catalog)),
        Some(path) => value.pointer(path).map_or(0, |template| {
            usize::from(check::<PodTemplateSpec>(origin, template, catalog))
        }),
        None => 0,
    }
}

fn files(dir: &str, suffix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            name.ends_with(suffix) && !name.ends_with(".injected.yaml")
        })
        .collect();
    files.sort();
    files
}

#[test]
fn patch_is_the_diff_of_the_whole_objects_on_every_example_and_golden_input() {
    let catalog = catalog();
    let mut injected = 0;
    for dir in [
        "examples/workloads",
        "tests/golden/cases",
        "tests/golden/errors",
    ] {
        for path in files(dir, ".yaml") {
            let text = std::fs::read_to_string(&path).expect("read");
            let origin = path.display().to_string();
            let Ok(documents) = read_documents(&origin, &text) else {
                continue;
            };
            for doc in documents {
                injected += check_document(&origin, &doc.value, &catalog);
            }
        }
    }
    assert!(injected >= 10, "only {injected} objects injected");
}

#[test]
fn patch_is_the_diff_of_the_whole_objects_on_the_apiserver_fixtures() {
    // The fixtures' pods are in team-a, like the example catalog.
    let catalog = catalog();
    let mut injected = 0;
    for path in files("tests/fixtures/apiserver-1.36", ".json") {
        let review: Value =
            serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
        let Some(object) = review.pointer("/request/object") else {
            continue;
        };
        let namespace = review
            .pointer("/request/namespace")
            .and_then(Value::as_str)
            .unwrap_or("default");
        let mut object = object.clone();
        object["metadata"]["namespace"] = json!(namespace);
        injected += check_document(&path.display().to_string(), &object, &catalog);
    }
    assert!(injected >= 1, "no fixture injected");
}

#[test]
fn patch_is_the_diff_of_the_whole_objects_on_edge_cases() {
    let catalog = catalog();
    let container = |name: &str, env: Option<Value>| {
        let mut c = json!({"name": name, "image": "busybox"});
        if let Some(env) = env {
            c["env"] = env;
        }
        c
    };
    let annotations = |extra: &[(&str, &str)]| {
        let mut a = json!({"llm.injector.dev/model": "llama-cpu"});
        for (k, v) in extra {
            a[*k] = json!(v);
        }
        a
    };
    let pods = [
        // Empty lists, present: entries are added one by one.
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "team-a", "annotations": annotations(&[])},
            "spec": {"containers": [container("app", Some(json!([])))],
                "initContainers": [], "volumes": [], "resourceClaims": []}}),
        // Existing entries of every list, env set, other annotations.
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "team-a",
                "annotations": annotations(&[("a", "1"), ("z", "2")]),
                "labels": {"app": "x"},
                "managedFields": [{"manager": "kubectl", "operation": "Update",
                    "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {}}}]},
            "spec": {"containers": [
                    container("a", Some(json!([{"name": "OLLAMA_HOST", "value": "x"}]))),
                    container("b", None),
                    container("c", Some(json!([{"name": "X", "value": "1"}])))],
                "initContainers": [container("setup", None)],
                "volumes": [{"name": "data", "emptyDir": {}}],
                "resourceClaims": [{"name": "other", "resourceClaimName": "c"}],
                "runtimeClassName": "kata"},
            "status": {"phase": "Pending"}}),
        // Data over model parallelism (router, several engines) on a pod
        // with entries in every list.
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "team-a",
                "annotations": {"llm.injector.dev/model": "qwen-2x2"}},
            "spec": {"containers": [
                    container("a", Some(json!([{"name": "LLM_MODEL", "value": "x"}]))),
                    container("b", None)],
                "initContainers": [container("setup", None), container("other", None)],
                "volumes": [{"name": "data", "emptyDir": {}}],
                "resourceClaims": [{"name": "other", "resourceClaimName": "c"}]}}),
    ];
    for (i, pod) in pods.iter().enumerate() {
        assert!(
            check::<Pod>(&format!("edge pod {i}"), pod, &catalog),
            "edge pod {i} not injected"
        );
    }
    // A template without metadata cannot ask for injection; one whose
    // metadata has only the annotation gets `/metadata/annotations/...`.
    let template = json!({"metadata": {"namespace": "team-a", "annotations": annotations(&[])},
        "spec": {"containers": [container("app", None)]}});
    assert!(check::<PodTemplateSpec>(
        "edge template",
        &template,
        &catalog
    ));
}
