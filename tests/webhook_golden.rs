//! The golden cases through the webhook: every Pod and workload of
//! `examples/workloads`, `tests/golden/cases` and `tests/golden/errors` is
//! sent as an AdmissionReview to the routers `serve` runs, as the apiserver
//! sends it (a Pod that asks for a model to `/mutate`; workloads, and pods
//! that did not ask, to `/validate` for advice), and the answer must be what
//! `inject` gives for the same document: the same pod, the same warnings,
//! the same error. tests/golden.rs checks that `inject` gives the golden
//! files; tests/e2e does the same through a real kube-apiserver.

mod support;

use llm_injector::MODEL_ANNOTATION;
use llm_injector::manifest::{SourceDocument, flatten_lists, inject_documents, read_documents};
use llm_injector::server::{AppState, webhook_router};
use serde_json::{Value, json};
use support::server::{golden_catalog, oneshot, patch_of, ready_state, root};

fn state() -> AppState {
    ready_state(golden_catalog(), 4 * 1024 * 1024)
}

/// The group, version and plural resource of a kind the webhooks receive.
fn resource_of(kind: &str) -> Option<(&'static str, &'static str)> {
    Some(match kind {
        "Pod" => ("", "pods"),
        "Deployment" => ("apps", "deployments"),
        "StatefulSet" => ("apps", "statefulsets"),
        "DaemonSet" => ("apps", "daemonsets"),
        "ReplicaSet" => ("apps", "replicasets"),
        "Job" => ("batch", "jobs"),
        "CronJob" => ("batch", "cronjobs"),
        _ => return None,
    })
}

/// A CREATE review of `object` in `namespace`, as kube-apiserver 1.36 sends
/// it (see tests/fixtures/apiserver-1.36).
fn review(object: &Value, namespace: &str) -> Option<Value> {
    let kind = object["kind"].as_str()?;
    let (group, resource) = resource_of(kind)?;
    let gvk = json!({"group": group, "version": "v1", "kind": kind});
    let gvr = json!({"group": group, "version": "v1", "resource": resource});
    Some(json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "0b6d2c9e-4a2f-4c7e-9d65-golden",
            "kind": gvk, "resource": gvr, "requestKind": gvk, "requestResource": gvr,
            "name": object["metadata"]["name"],
            "namespace": namespace,
            "operation": "CREATE",
            "userInfo": {"username": "kubernetes-admin", "groups": ["system:masters"]},
            "object": object,
            "oldObject": null,
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
        }
    }))
}

/// What `inject` gives for one document: the object, its warnings without
/// the `FILE document N: Kind ns/name: ` prefix, and its error message.
fn cli(doc: &SourceDocument) -> (Value, Vec<String>, Option<String>) {
    let out = inject_documents(
        vec![doc.clone()],
        "default",
        &golden_catalog(),
        &Default::default(),
    );
    let strip = |line: String| {
        // `origin: Kind ns/name: message`
        let rest = line
            .strip_prefix(&format!("{}: ", doc.origin()))
            .unwrap_or(&line);
        rest.split_once(": ")
            .map(|(_, message)| message.to_owned())
            .unwrap_or(line.clone())
    };
    let warnings = out.warnings.into_iter().map(strip).collect();
    let error = out.errors.first().map(|e| strip(e.to_string()));
    (out.documents[0].clone(), warnings, error)
}

fn warnings_of(answer: &Value) -> Vec<String> {
    answer["response"]["warnings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|w| w.as_str().map(str::to_owned))
        .collect()
}

/// Every object of the golden inputs, `kind: List` items flattened.
fn golden_documents() -> Vec<SourceDocument> {
    let mut documents = Vec::new();
    for dir in [
        "examples/workloads",
        "tests/golden/cases",
        "tests/golden/errors",
    ] {
        let mut files: Vec<_> = std::fs::read_dir(root().join(dir))
            .expect(dir)
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                name.ends_with(".yaml") && !name.ends_with(".injected.yaml")
            })
            .collect();
        files.sort();
        for path in files {
            let text = std::fs::read_to_string(&path).unwrap();
            let source = path.strip_prefix(root()).unwrap().display().to_string();
            let Ok(docs) = read_documents(&source, &text) else {
                continue; // malformed YAML never reaches a webhook
            };
            documents.extend(flatten_lists(&docs));
        }
    }
    documents
}

#[tokio::test]
async fn golden_cases_through_the_webhook_match_inject() {
    let state = state();
    let mut failures = Vec::new();
    let mut checked = (0, 0, 0); // (mutated, denied, advised)
    for doc in golden_documents() {
        let object = &doc.value;
        let namespace = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default");
        let Some(body) = review(object, namespace) else {
            continue;
        };
        let (printed, want_warnings, want_error) = cli(&doc);
        let asks = object["kind"] == "Pod"
            && object["metadata"]["annotations"][MODEL_ANNOTATION].is_string();
        let path = if asks { "/mutate" } else { "/validate" };
        let (status, bytes) = oneshot(
            webhook_router(state.clone()),
            "POST",
            path,
            serde_json::to_vec(&body).unwrap(),
        )
        .await;
        let origin = doc.origin();
        let answer: Value = match serde_json::from_slice(&bytes) {
            Ok(answer) if status.is_success() => answer,
            _ => {
                failures.push(format!("{origin}: {path} answered {status}"));
                continue;
            }
        };
        let response = &answer["response"];
        let got_warnings = warnings_of(&answer);
        match (asks, &want_error) {
            // A pod that asks and cannot be injected: denied with inject's error.
            (true, Some(error)) => {
                checked.1 += 1;
                let message = response["status"]["message"].as_str().unwrap_or_default();
                if response["allowed"] != false || !message.ends_with(error.as_str()) {
                    failures.push(format!(
                        "{origin}: inject fails with {error:?}, /mutate answered {response}"
                    ));
                }
            }
            (true, None) => {
                checked.0 += 1;
                let mut patched = object.clone();
                if let Some(patch) = patch_of(&answer) {
                    json_patch::patch(&mut patched, &patch).expect("patch applies");
                }
                if patched != printed {
                    failures.push(format!("{origin}: /mutate made another pod than inject"));
                }
                if got_warnings != want_warnings {
                    failures.push(format!(
                        "{origin}: warnings differ\n  inject: {want_warnings:?}\n  /mutate: {got_warnings:?}"
                    ));
                }
            }
            // Advice: never a denial; inject's error becomes a warning.
            (false, error) => {
                checked.2 += 1;
                let mut want = want_warnings.clone();
                if let Some(error) = error {
                    want.push(format!("the pods it creates will be refused: {error}"));
                }
                if response["allowed"] != true || response.get("patch").is_some() {
                    failures.push(format!(
                        "{origin}: /validate did not just allow: {response}"
                    ));
                }
                if got_warnings != want {
                    failures.push(format!(
                        "{origin}: warnings differ\n  inject: {want:?}\n  /validate: {got_warnings:?}"
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let (mutated, denied, advised) = checked;
    // Every kind of answer was seen: the test cannot pass by finding nothing.
    assert!(
        mutated >= 10 && denied >= 10 && advised >= 10,
        "{checked:?}"
    );
}
