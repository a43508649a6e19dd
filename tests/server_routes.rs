//! The webhook and admin routers, driven with `oneshot` on AdmissionReviews
//! captured from a real kube-apiserver 1.36 (no network, no TLS).

mod support;

use std::sync::atomic::Ordering;

use axum::http::StatusCode;
use llm_injector::manifest::{SourceDocument, inject_documents};
use llm_injector::server::{AppState, admin_router, webhook_router};
use llm_injector::{Catalog, Injector};
use serde_json::{Value, json};
use support::server::{fixture, fixture_json, oneshot, patch_of, ready_state, root};

fn state() -> AppState {
    let catalog = Catalog::load(&root().join("examples/catalog"), "default").expect("catalog");
    ready_state(catalog, 4 * 1024 * 1024)
}

async fn mutate(state: &AppState, body: Vec<u8>) -> (StatusCode, Value) {
    let (status, bytes) = oneshot(
        webhook_router(state.clone()),
        "POST",
        "/mutate?timeout=5s",
        body,
    )
    .await;
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| json!({"raw": String::from_utf8_lossy(&bytes)}));
    (status, value)
}

/// The pod the CLI path gives for the same object and namespace.
fn cli_pod(object: &Value, namespace: &str) -> Value {
    let catalog = Catalog::load(&root().join("examples/catalog"), "default").expect("catalog");
    let doc = SourceDocument {
        source: "review".into(),
        document: 1,
        item: None,
        value: object.clone(),
    };
    let out = inject_documents(vec![doc], namespace, &catalog, &Injector::default());
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    out.documents[0].clone()
}

#[tokio::test]
async fn pod_create_is_patched_like_the_cli() {
    let state = state();
    for name in [
        "pod-create-generatename.json",
        "pod-create-named.json",
        "pod-create-dryrun.json",
    ] {
        let request = fixture_json(name);
        let (status, review) = mutate(&state, fixture(name)).await;
        assert_eq!(status, StatusCode::OK, "{name}");
        assert_eq!(review["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(review["kind"], "AdmissionReview");
        assert_eq!(
            review["response"]["uid"], request["request"]["uid"],
            "{name}: uid echoed"
        );
        assert_eq!(review["response"]["allowed"], true);
        assert_eq!(review["response"]["patchType"], "JSONPatch");
        assert!(
            review["response"]["patch"].is_string(),
            "{name}: patch is base64, not a byte array"
        );
        let patch = patch_of(&review).expect("patch");
        let mut object = request["request"]["object"].clone();
        json_patch::patch(&mut object, &patch).expect("patch applies to the request object");
        let namespace = request["request"]["namespace"].as_str().unwrap();
        assert_eq!(
            object,
            cli_pod(&request["request"]["object"], namespace),
            "{name}: webhook and CLI agree"
        );
        let init: Vec<&str> = object["spec"]["initContainers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(init, ["llm-pull", "llm-engine-0"]);
    }
}

#[tokio::test]
async fn namespace_comes_from_the_request() {
    let state = state();
    let mut request = fixture_json("pod-create-generatename.json");
    // The object names no namespace (as often when a pod is created); the request does.
    request["request"]["object"]["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("namespace");
    let (_, review) = mutate(&state, serde_json::to_vec(&request).unwrap()).await;
    assert_eq!(review["response"]["allowed"], true);
    assert!(patch_of(&review).is_some());
    // In another namespace the model does not exist: denied, naming it.
    request["request"]["namespace"] = json!("team-b");
    let (status, review) = mutate(&state, serde_json::to_vec(&request).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(review["response"]["allowed"], false);
    let message = review["response"]["status"]["message"].as_str().unwrap();
    assert!(message.contains("pod team-b/chat-*"), "{message}");
    assert!(message.contains("LLMModel \"qwen-mp2\""), "{message}");
    assert!(
        message.contains("no LLMModels in namespace \"team-b\""),
        "{message}"
    );
}

#[tokio::test]
async fn unknown_model_is_denied_with_the_models_that_exist() {
    let state = state();
    let mut request = fixture_json("pod-create-named.json");
    request["request"]["object"]["metadata"]["annotations"]["llm.injector.dev/model"] =
        json!("nope");
    let (status, review) = mutate(&state, serde_json::to_vec(&request).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(review["response"]["allowed"], false);
    assert_eq!(review["response"]["uid"], request["request"]["uid"]);
    let message = review["response"]["status"]["message"].as_str().unwrap();
    assert!(message.contains("pod team-a/chat-array"), "{message}");
    assert!(
        message.contains("llama-amd, llama-cpu, qwen-2x2, qwen-gpu1, qwen-mp2"),
        "{message}"
    );
    assert!(review["response"].get("patch").is_none());
}

#[tokio::test]
async fn pods_that_do_not_ask_and_updates_are_allowed_untouched() {
    let state = state();
    let mut plain = fixture_json("pod-create-named.json");
    plain["request"]["object"]["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("annotations");
    let mut update = fixture_json("pod-create-named.json");
    update["request"]["operation"] = json!("UPDATE");
    update["request"]["oldObject"] = update["request"]["object"].clone();
    let mut injected = fixture_json("pod-create-named.json");
    injected["request"]["object"]["metadata"]["annotations"]["llm.injector.dev/status"] =
        json!("{}");
    for (case, request) in [
        ("no annotation", plain),
        ("UPDATE", update),
        ("already injected", injected),
    ] {
        let (status, review) = mutate(&state, serde_json::to_vec(&request).unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{case}");
        assert_eq!(review["response"]["allowed"], true, "{case}");
        assert!(
            review["response"].get("patch").is_none(),
            "{case}: no patch"
        );
        assert!(
            review["response"].get("patchType").is_none(),
            "{case}: no patchType"
        );
    }
}

#[tokio::test]
async fn other_kinds_are_allowed_with_a_warning() {
    let state = state();
    let (status, review) = mutate(&state, fixture("llmmodel-create.json")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(review["response"]["allowed"], true);
    let warning = review["response"]["warnings"][0].as_str().unwrap();
    assert!(warning.contains("mutates only pods"), "{warning}");
    // DELETE of an LLMModel has a null object: still answered.
    let (status, review) = mutate(&state, fixture("llmmodel-delete.json")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(review["response"]["allowed"], true);
}

#[tokio::test]
async fn bad_bodies_get_a_4xx_with_a_reason() {
    let state = state();
    let mut no_uid = fixture_json("pod-create-named.json");
    no_uid["request"]["uid"] = json!("");
    let mut missing_uid = fixture_json("pod-create-named.json");
    missing_uid["request"]
        .as_object_mut()
        .unwrap()
        .remove("uid");
    let mut v1beta1 = fixture_json("pod-create-named.json");
    v1beta1["apiVersion"] = json!("admission.k8s.io/v1beta1");
    let cases: Vec<(&str, Vec<u8>, StatusCode, &str)> = vec![
        ("empty", Vec::new(), StatusCode::BAD_REQUEST, "not JSON"),
        (
            "not JSON",
            b"{not json".to_vec(),
            StatusCode::BAD_REQUEST,
            "not JSON",
        ),
        (
            "truncated",
            fixture("pod-create-named.json")[..200].to_vec(),
            StatusCode::BAD_REQUEST,
            "not JSON",
        ),
        (
            "JSON array",
            b"[1,2]".to_vec(),
            StatusCode::BAD_REQUEST,
            "not an AdmissionReview",
        ),
        (
            "no request",
            br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "no request",
        ),
        (
            "empty uid",
            serde_json::to_vec(&no_uid).unwrap(),
            StatusCode::BAD_REQUEST,
            "empty uid",
        ),
        (
            "missing uid",
            serde_json::to_vec(&missing_uid).unwrap(),
            StatusCode::BAD_REQUEST,
            "uid",
        ),
        (
            "v1beta1",
            serde_json::to_vec(&v1beta1).unwrap(),
            StatusCode::BAD_REQUEST,
            "only admission.k8s.io/v1",
        ),
    ];
    for (case, body, want_status, reason) in cases {
        let (status, answer) = mutate(&state, body).await;
        assert_eq!(status, want_status, "{case}: {answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(error.contains(reason), "{case}: {error:?} lacks {reason:?}");
    }
    let mut small = state.clone();
    small.body_limit = 1024;
    let (status, answer) = mutate(&small, fixture("pod-create-named.json")).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    // The server still answers afterwards.
    let (status, _) = mutate(&state, fixture("pod-create-named.json")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn admin_routes() {
    let state = state();
    let (status, _) = mutate(&state, fixture("pod-create-named.json")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = mutate(&state, b"nope".to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let admin = admin_router(state.clone());
    let (status, body) = oneshot(admin.clone(), "GET", "/livez", Vec::new()).await;
    assert_eq!(
        (status, body.as_slice()),
        (StatusCode::OK, b"ok\n".as_slice())
    );
    let (status, _) = oneshot(admin.clone(), "GET", "/readyz", Vec::new()).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = oneshot(admin.clone(), "GET", "/metrics", Vec::new()).await;
    assert_eq!(status, StatusCode::OK);
    let text = String::from_utf8(body).unwrap();
    for line in [
        r#"llm_injector_admission_reviews_total{webhook="mutate",kind="Pod",operation="CREATE",outcome="patched"} 1"#,
        r#"llm_injector_admission_bad_requests_total{webhook="mutate",reason="not_json"} 1"#,
        r#"llm_injector_catalog_objects{kind="LLMModel"} 5"#,
        r#"llm_injector_catalog_objects{kind="LLMEngine"} 3"#,
        "llm_injector_admission_review_duration_seconds_count{webhook=\"mutate\"} 1",
    ] {
        assert!(text.contains(line), "metrics lack {line:?}:\n{text}");
    }
    // The admin port changes nothing: no write routes.
    let (status, _) = oneshot(admin.clone(), "POST", "/metrics", Vec::new()).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let (status, _) = oneshot(
        admin.clone(),
        "POST",
        "/mutate",
        fixture("pod-create-named.json"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    state.health.shutting_down.store(true, Ordering::Release);
    let (status, body) = oneshot(admin, "GET", "/readyz", Vec::new()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(String::from_utf8_lossy(&body).contains("shutting down"));
}

async fn validate(state: &AppState, body: Vec<u8>) -> (StatusCode, Value) {
    let (status, bytes) = oneshot(
        webhook_router(state.clone()),
        "POST",
        "/validate?timeout=5s",
        body,
    )
    .await;
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| json!({"raw": String::from_utf8_lossy(&bytes)}));
    (status, value)
}

#[tokio::test]
async fn validate_llmmodel_changes() {
    let state = state();
    for name in [
        "llmmodel-create.json",
        "llmmodel-update.json",
        "llmmodel-delete.json",
    ] {
        let request = fixture_json(name);
        let (status, review) = validate(&state, fixture(name)).await;
        assert_eq!(status, StatusCode::OK, "{name}");
        assert_eq!(
            review["response"]["uid"], request["request"]["uid"],
            "{name}"
        );
        assert_eq!(review["response"]["allowed"], true, "{name}: {review}");
        assert!(review["response"].get("patch").is_none());
    }
    // Too many GPUs for the engine: denied, naming field, value and fix.
    let mut request = fixture_json("llmmodel-update.json");
    request["request"]["object"]["spec"]["parallelism"]["model"] = json!(8);
    let (_, review) = validate(&state, serde_json::to_vec(&request).unwrap()).await;
    assert_eq!(review["response"]["allowed"], false);
    let message = review["response"]["status"]["message"].as_str().unwrap();
    assert!(message.contains("LLMModel team-a/qwen-mp2"), "{message}");
    assert!(
        message.contains("spec.parallelism.model: 8 exceeds"),
        "{message}"
    );
    assert!(message.contains("maxDevicesPerInstance 4"), "{message}");
    // An engine that does not exist yet: allowed, with a warning.
    let mut request = fixture_json("llmmodel-create.json");
    request["request"]["object"]["spec"]["engineRef"]["name"] = json!("later");
    let (_, review) = validate(&state, serde_json::to_vec(&request).unwrap()).await;
    assert_eq!(review["response"]["allowed"], true);
    let warning = review["response"]["warnings"][0].as_str().unwrap();
    assert!(warning.contains("\"later\" does not exist"), "{warning}");
}

/// The captured DELETE review, made a deletion of `engine`.
fn engine_delete_request(engine: &llm_injector::crd::LLMEngine) -> Value {
    let mut request = fixture_json("llmmodel-delete.json");
    request["request"]["kind"]["kind"] = json!("LLMEngine");
    request["request"]["requestKind"]["kind"] = json!("LLMEngine");
    request["request"]["resource"]["resource"] = json!("llmengines");
    request["request"]["name"] = json!(engine.metadata.name);
    request["request"]["oldObject"] = serde_json::to_value(engine).unwrap();
    request
}

/// A catalog whose models can vanish while a review waits, as the webhook's
/// cache does a moment after `kubectl delete` of a model.
struct Lagging(std::sync::Mutex<Catalog>);

impl llm_injector::ModelLookup for Lagging {
    fn model(
        &self,
        namespace: &str,
        name: &str,
    ) -> Option<std::sync::Arc<llm_injector::crd::LLMModel>> {
        self.0.lock().unwrap().model(namespace, name)
    }
    fn engine(
        &self,
        namespace: &str,
        name: &str,
    ) -> Option<std::sync::Arc<llm_injector::crd::LLMEngine>> {
        self.0.lock().unwrap().engine(namespace, name)
    }
    fn model_names(&self, namespace: &str) -> Vec<String> {
        self.0.lock().unwrap().model_names(namespace)
    }
}

impl llm_injector::server::CatalogSource for Lagging {
    fn sizes(&self) -> (usize, usize) {
        let catalog = self.0.lock().unwrap();
        (catalog.engine_count(), catalog.model_count())
    }
}

#[tokio::test]
async fn an_engine_deletion_waits_for_the_cache_to_see_its_models_go() {
    let catalog = Catalog::load(&root().join("examples/catalog"), "default").unwrap();
    let engine = llm_injector::ModelLookup::engine(&catalog, "team-a", "ollama-nvidia").unwrap();
    let lagging = std::sync::Arc::new(Lagging(std::sync::Mutex::new(catalog)));
    let mut state = state();
    state.source = lagging.clone();
    let request = engine_delete_request(&engine);
    // The models that use the engine were deleted; the cache learns it
    // 150 ms after the engine's deletion arrives.
    let forget = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        let mut without_models = Catalog::new();
        without_models.insert_engine(llm_injector::crd::LLMEngine::clone(&engine));
        *lagging.0.lock().unwrap() = without_models;
    });
    let (status, review) = validate(&state, serde_json::to_vec(&request).unwrap()).await;
    forget.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(review["response"]["allowed"], true, "{review}");
}

#[tokio::test]
async fn deleting_an_engine_in_use_is_denied_naming_the_models() {
    let state = state();
    let catalog = Catalog::load(&root().join("examples/catalog"), "default").unwrap();
    let engine = llm_injector::ModelLookup::engine(&catalog, "team-a", "ollama-nvidia").unwrap();
    let mut request = engine_delete_request(&engine);
    let (status, review) = validate(&state, serde_json::to_vec(&request).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(review["response"]["allowed"], false, "{review}");
    let message = review["response"]["status"]["message"].as_str().unwrap();
    for model in ["qwen-2x2", "qwen-gpu1", "qwen-mp2"] {
        assert!(message.contains(model), "{message} lacks {model}");
    }
    // An unused engine may go.
    request["request"]["name"] = json!("spare");
    let mut spare = serde_json::to_value(&*engine).unwrap();
    spare["metadata"]["name"] = json!("spare");
    request["request"]["oldObject"] = spare;
    let (_, review) = validate(&state, serde_json::to_vec(&request).unwrap()).await;
    assert_eq!(review["response"]["allowed"], true, "{review}");
    // Bad bodies get 400 on /validate too.
    let (status, _) = validate(&state, b"{".to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
