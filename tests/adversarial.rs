//! An adversarial corpus for the webhook routes (issue 7): malformed,
//! hostile and odd AdmissionReviews, each with the outcome a careful
//! Kubernetes user expects asserted, not just "does not panic".
//!
//! Driven like `tests/server_routes.rs`: `webhook_router` called with
//! `oneshot`, no network, no TLS, no timing. Cases start from the reviews
//! captured from kube-apiserver 1.36 (`tests/fixtures/apiserver-1.36/`) and
//! are changed with serde_json here. The catalog is `examples/catalog`
//! (namespace team-a) plus `tests/adversarial/catalog.yaml` (namespace adv:
//! engines whose image has a digest, a model with a missing engine, ...).
//!
//! Every patched answer is decoded, applied to the request's object with
//! json_patch, checked to still be a v1 Pod whose user containers, metadata
//! and spec are untouched except the documented additions, and sent again,
//! which must be allowed without a patch (idempotence).
//!
//! Each row of `cases()` names its route, builds its body and states the
//! expected answer (HTTP status and error, or allowed / denied / patched with
//! the substrings its message or warning must hold). Rows whose answer is
//! wrong today carry `.bug(why)`: `adversarial_corpus` skips them and each has
//! its own `#[ignore = "BUG: ..."]` test at the end, written as the answer
//! should be (`cargo test --release --test adversarial -- --ignored` shows them
//! failing). `ADV_DUMP=1 ... -- --nocapture` prints every answer.

mod support;

use std::collections::BTreeSet;

use axum::http::StatusCode;
use k8s_openapi::api::core::v1::Pod;
use llm_injector::server::{AppState, webhook_router};
use llm_injector::{Catalog, MODEL_ANNOTATION, ModelLookup, STATUS_ANNOTATION};
use serde_json::{Value, json};
use support::server::{catalog_with, fixture_json, oneshot, patch_of, ready_state};

/// The body limit of `serve` (and of these tests).
const BODY_LIMIT: usize = 4 * 1024 * 1024;

/// Variables the injector may add to a user container.
const USER_ENV: &[&str] = &[
    "OLLAMA_HOST",
    "OLLAMA_BASE_URL",
    "OPENAI_BASE_URL",
    "OPENAI_API_KEY",
    "LLM_MODEL",
    "LLM_BASE_URL",
    "LLM_ENDPOINTS",
    "NVIDIA_VISIBLE_DEVICES",
];

/// A valid sha256 digest (64 hex digits).
const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

// ---------------------------------------------------------------------------
// State and HTTP
// ---------------------------------------------------------------------------

fn catalog() -> Catalog {
    catalog_with("tests/adversarial/catalog.yaml")
}

fn state() -> AppState {
    ready_state(catalog(), BODY_LIMIT)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Mutate,
    Validate,
}

impl Route {
    fn path(self) -> &'static str {
        match self {
            Route::Mutate => "/mutate?timeout=10s",
            Route::Validate => "/validate?timeout=10s",
        }
    }
}

/// POSTs `body` to the route: (status, raw answer).
async fn call(state: &AppState, route: Route, body: Vec<u8>) -> (StatusCode, Vec<u8>) {
    oneshot(webhook_router(state.clone()), "POST", route.path(), body).await
}

// ---------------------------------------------------------------------------
// Building inputs
// ---------------------------------------------------------------------------

/// The named pod CREATE (pod team-a/chat-array asking for qwen-mp2) after `f`.
fn pod(f: impl FnOnce(&mut Value)) -> Vec<u8> {
    review("pod-create-named.json", f)
}

/// Any captured review after `f`.
fn review(name: &str, f: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut review = fixture_json(name);
    f(&mut review);
    serde_json::to_vec(&review).expect("serialise")
}

/// The review's `request.object`.
fn object(review: &mut Value) -> &mut Value {
    &mut review["request"]["object"]
}

fn set_model(review: &mut Value, model: &str) {
    object(review)["metadata"]["annotations"][MODEL_ANNOTATION] = json!(model);
}

/// Moves a review into namespace adv (the catalog of tests/adversarial).
fn to_adv(review: &mut Value, model: &str) {
    review["request"]["namespace"] = json!("adv");
    object(review)["metadata"]["namespace"] = json!("adv");
    set_model(review, model);
}

fn containers(review: &mut Value) -> &mut Vec<Value> {
    object(review)["spec"]["containers"]
        .as_array_mut()
        .expect("containers")
}

fn app(review: &mut Value) -> &mut Value {
    &mut containers(review)[0]
}

/// A user container like the fixture's `app`, named `name`.
fn user_container(name: &str) -> Value {
    json!({
        "name": name,
        "image": "ghcr.io/example/chat:1.0",
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "imagePullPolicy": "IfNotPresent"
    })
}

/// Replaces the string `"__HOLE__"` in the serialised review with `raw`
/// (for bodies no `serde_json::Value` should hold, such as 10k nested arrays).
fn with_raw(review: &Value, raw: &str) -> Vec<u8> {
    let text = serde_json::to_string(review).expect("serialise");
    assert!(text.contains("\"__HOLE__\""));
    text.replacen("\"__HOLE__\"", raw, 1).into_bytes()
}

/// `depth` nested arrays: `[[[...]]]`.
fn nested_arrays(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

/// `text` with every run of 100 or more `[` (and the `]` closing it) cut to `[]`.
fn collapse_nesting(text: &str) -> String {
    let deep = "[".repeat(100);
    let Some(start) = text.find(&deep) else {
        return text.to_owned();
    };
    let opened = text[start..].bytes().take_while(|b| *b == b'[').count();
    let closed = start + opened + "]".repeat(opened).len();
    if text.get(start + opened..closed) != Some(&"]".repeat(opened)) {
        return text.to_owned();
    }
    collapse_nesting(&format!("{}[]{}", &text[..start], &text[closed..]))
}

/// `depth` nested objects: `{"a":{"a":...{}}}`.
fn nested_objects(depth: usize) -> String {
    format!("{}{{}}{}", "{\"a\":".repeat(depth), "}".repeat(depth))
}

/// An LLMEngine of the catalog as JSON (as the apiserver would send it).
fn engine_json(namespace: &str, name: &str) -> Value {
    let engine = catalog().engine(namespace, name).expect("engine");
    let mut value = serde_json::to_value(&*engine).expect("engine json");
    value["apiVersion"] = json!("llm.injector.dev/v1alpha1");
    value["kind"] = json!("LLMEngine");
    value
}

/// An LLMEngine review on /validate (from the captured LLMModel review):
/// `object` for CREATE, `old` and `object` for UPDATE.
fn engine_review(operation: &str, old: Option<Value>, object: Option<Value>) -> Vec<u8> {
    let fixture = match operation {
        "CREATE" => "llmmodel-create.json",
        "UPDATE" => "llmmodel-update.json",
        _ => "llmmodel-delete.json",
    };
    review(fixture, |r| {
        let name = object
            .as_ref()
            .or(old.as_ref())
            .and_then(|o| o["metadata"]["name"].as_str())
            .unwrap_or_default()
            .to_owned();
        let request = &mut r["request"];
        request["kind"]["kind"] = json!("LLMEngine");
        request["requestKind"]["kind"] = json!("LLMEngine");
        request["resource"]["resource"] = json!("llmengines");
        request["requestResource"]["resource"] = json!("llmengines");
        request["name"] = json!(name);
        request["object"] = object.unwrap_or(Value::Null);
        request["oldObject"] = old.unwrap_or(Value::Null);
    })
}

/// The LLMModel CREATE (team-a/qwen-mp2 on ollama-nvidia) after `f` on its object.
fn model_create(f: impl FnOnce(&mut Value)) -> Vec<u8> {
    review("llmmodel-create.json", |r| f(object(r)))
}

// ---------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------

/// What a case must answer.
enum Expect {
    /// An HTTP error status (no AdmissionReview), whose `{"error": ...}`
    /// contains every string.
    Http(StatusCode, &'static [&'static str]),
    /// 200, allowed, no patch; a warning containing the string when `Some`,
    /// none at all when `None`.
    Allowed(Option<&'static str>),
    /// 200, allowed, no patch, and no warning contains the string.
    AllowedWithout(&'static str),
    /// 200, denied, no patch; the message contains every string.
    Denied(&'static [&'static str]),
    /// 200, allowed with a patch that passes the generic checks, then
    /// `check(original object, patched object)`.
    Patched(fn(&Value, &Value)),
    /// As `Patched`, with a warning containing the string.
    PatchedWarning(&'static str),
}

struct Case {
    name: &'static str,
    route: Route,
    body: fn() -> Vec<u8>,
    expect: Expect,
    /// Why today's answer is wrong: the case then runs only in its own
    /// `#[ignore]` test.
    bug: Option<&'static str>,
}

fn case(name: &'static str, route: Route, body: fn() -> Vec<u8>, expect: Expect) -> Case {
    Case {
        name,
        route,
        body,
        expect,
        bug: None,
    }
}

fn mutate(name: &'static str, body: fn() -> Vec<u8>, expect: Expect) -> Case {
    case(name, Route::Mutate, body, expect)
}

fn validate(name: &'static str, body: fn() -> Vec<u8>, expect: Expect) -> Case {
    case(name, Route::Validate, body, expect)
}

impl Case {
    /// Marks a known bug (none is open now); the case then needs its own
    /// `#[ignore = "BUG: ..."]` test calling [`run_named`].
    #[allow(dead_code)]
    fn bug(mut self, why: &'static str) -> Self {
        self.bug = Some(why);
        self
    }
}

/// No extra check beyond the generic ones.
fn plain(_: &Value, _: &Value) {}

use Expect::{Allowed, AllowedWithout, Denied, Http, Patched, PatchedWarning};

fn cases() -> Vec<Case> {
    vec![
        // --- Bodies that are not AdmissionReviews: 400/413 with a reason ---
        mutate(
            "empty body",
            Vec::new,
            Http(StatusCode::BAD_REQUEST, &["not JSON", "EOF"]),
        ),
        mutate(
            "JSON null",
            || b"null".to_vec(),
            Http(StatusCode::BAD_REQUEST, &["not an AdmissionReview"]),
        ),
        mutate(
            "JSON string",
            || br#""AdmissionReview""#.to_vec(),
            Http(StatusCode::BAD_REQUEST, &["not an AdmissionReview"]),
        ),
        mutate(
            "truncated in the middle of the object",
            || {
                let body = pod(|_| {});
                body[..body.len() / 2].to_vec()
            },
            Http(StatusCode::BAD_REQUEST, &["not JSON", "EOF"]),
        ),
        mutate(
            "truncated by one byte",
            || {
                let body = pod(|_| {});
                body[..body.len() - 1].to_vec()
            },
            Http(StatusCode::BAD_REQUEST, &["not JSON"]),
        ),
        mutate(
            "trailing garbage after the review",
            || {
                let mut body = pod(|_| {});
                body.extend_from_slice(b"}{");
                body
            },
            Http(StatusCode::BAD_REQUEST, &["trailing characters"]),
        ),
        mutate(
            "invalid UTF-8 inside a string",
            || {
                let mut body = pod(|r| set_model(r, "qwen-mp2-XX"));
                let at = body
                    .windows(6)
                    .position(|w| w == b"mp2-XX")
                    .expect("marker");
                body[at + 4] = 0xff;
                body[at + 5] = 0xfe;
                body
            },
            Http(StatusCode::BAD_REQUEST, &["invalid unicode code point"]),
        ),
        mutate(
            "10k nested arrays inside a typed field (container args)",
            || {
                let mut r = fixture_json("pod-create-named.json");
                app(&mut r)["args"] = json!("__HOLE__");
                with_raw(&r, &nested_arrays(10_000))
            },
            Http(StatusCode::BAD_REQUEST, &["recursion limit exceeded"]),
        ),
        mutate(
            "10k nested arrays inside an unknown pod field",
            || {
                let mut r = fixture_json("pod-create-named.json");
                object(&mut r)["spec"]["deep"] = json!("__HOLE__");
                with_raw(&r, &nested_arrays(10_000))
            },
            // The apiserver's own decoder accepts nesting up to depth 10000,
            // so such a pod can reach the webhook; an unknown field is skipped
            // without recursion (no stack overflow) and the pod is served.
            Patched(plain),
        ),
        mutate(
            "10k nested objects inside an annotation",
            || {
                let mut r = fixture_json("pod-create-named.json");
                object(&mut r)["metadata"]["annotations"]["deep"] = json!("__HOLE__");
                with_raw(&r, &nested_objects(10_000))
            },
            Http(
                StatusCode::BAD_REQUEST,
                &["invalid type: map, expected a string"],
            ),
        ),
        mutate(
            "100k nested arrays as the whole body",
            || nested_arrays(100_000).into_bytes(),
            Http(
                StatusCode::BAD_REQUEST,
                &["not an AdmissionReview", "sequence"],
            ),
        ),
        mutate(
            "body one byte over the 4 MiB limit",
            || {
                let mut body = pod(|_| {});
                body.resize(BODY_LIMIT + 1, b' ');
                body
            },
            Http(StatusCode::PAYLOAD_TOO_LARGE, &["4194304-byte limit"]),
        ),
        mutate(
            "body of exactly the 4 MiB limit (whitespace padded) is served",
            || {
                let mut body = pod(|_| {});
                body.resize(BODY_LIMIT, b' ');
                body
            },
            Patched(plain),
        ),
        validate(
            "body over the limit on /validate",
            || vec![b' '; 5 * 1024 * 1024],
            Http(StatusCode::PAYLOAD_TOO_LARGE, &["limit"]),
        ),
        // --- The AdmissionReview envelope ---
        mutate(
            "apiVersion admission.k8s.io/v1beta1",
            || pod(|r| r["apiVersion"] = json!("admission.k8s.io/v1beta1")),
            Http(
                StatusCode::BAD_REQUEST,
                &[
                    "apiVersion \"admission.k8s.io/v1beta1\" is not served",
                    "only admission.k8s.io/v1",
                ],
            ),
        ),
        mutate(
            "kind is not AdmissionReview",
            || pod(|r| r["kind"] = json!("Pod")),
            Http(
                StatusCode::BAD_REQUEST,
                &["kind \"Pod\"", "only admission.k8s.io/v1 AdmissionReviews"],
            ),
        ),
        mutate(
            "no request",
            || pod(|r| drop(r.as_object_mut().unwrap().remove("request"))),
            Http(StatusCode::BAD_REQUEST, &["no request"]),
        ),
        mutate(
            "request is null",
            || pod(|r| r["request"] = Value::Null),
            Http(StatusCode::BAD_REQUEST, &["no request"]),
        ),
        mutate(
            "request without uid",
            || pod(|r| drop(r["request"].as_object_mut().unwrap().remove("uid"))),
            Http(StatusCode::BAD_REQUEST, &["uid"]),
        ),
        mutate(
            "uid is a number",
            || pod(|r| r["request"]["uid"] = json!(42)),
            Http(
                StatusCode::BAD_REQUEST,
                &["not an AdmissionReview", "invalid type"],
            ),
        ),
        mutate(
            "operation is not one Kubernetes has",
            || pod(|r| r["request"]["operation"] = json!("PATCH")),
            Http(
                StatusCode::BAD_REQUEST,
                &["not an AdmissionReview", "PATCH"],
            ),
        ),
        mutate(
            "unknown fields everywhere in the envelope are ignored",
            || {
                pod(|r| {
                    r["future"] = json!({"x": 1});
                    r["request"]["futureField"] = json!([1, 2, 3]);
                    r["request"]["userInfo"]["futureField"] = json!("x");
                })
            },
            Patched(plain),
        ),
        // --- Operations and dry run ---
        mutate(
            "dryRun: true is injected like a real create",
            || review("pod-create-dryrun.json", |_| {}),
            Patched(plain),
        ),
        mutate(
            "generateName pod is injected",
            || review("pod-create-generatename.json", |_| {}),
            Patched(plain),
        ),
        mutate(
            "UPDATE of an annotated pod is not injected",
            || {
                pod(|r| {
                    r["request"]["operation"] = json!("UPDATE");
                    r["request"]["oldObject"] = r["request"]["object"].clone();
                    r["request"]["options"]["kind"] = json!("UpdateOptions");
                })
            },
            Allowed(None),
        ),
        mutate(
            "DELETE of a pod (object null, oldObject set)",
            || {
                pod(|r| {
                    r["request"]["operation"] = json!("DELETE");
                    r["request"]["oldObject"] = r["request"]["object"].take();
                    r["request"]["options"]["kind"] = json!("DeleteOptions");
                })
            },
            Allowed(None),
        ),
        mutate(
            "CONNECT pods/exec (a PodExecOptions object)",
            || {
                pod(|r| {
                    let request = &mut r["request"];
                    request["operation"] = json!("CONNECT");
                    request["kind"]["kind"] = json!("PodExecOptions");
                    request["subResource"] = json!("exec");
                    request["object"] = json!({
                        "kind": "PodExecOptions", "apiVersion": "v1",
                        "stdin": true, "command": ["sh"], "container": "app"
                    });
                })
            },
            Allowed(Some("PodExecOptions")),
        ),
        mutate(
            "CREATE with a null object",
            || pod(|r| r["request"]["object"] = Value::Null),
            Allowed(None),
        ),
        mutate(
            "an already injected pod sent again gets no patch",
            || {
                // The fixture after its own patch (what the apiserver stores).
                let mut r = fixture_json("pod-create-named.json");
                let injected = injected_object(&r);
                r["request"]["object"] = injected;
                serde_json::to_vec(&r).unwrap()
            },
            Allowed(None),
        ),
        mutate(
            "an injected pod whose status annotation was stripped collides",
            || {
                let mut r = fixture_json("pod-create-named.json");
                let mut injected = injected_object(&r);
                injected["metadata"]["annotations"]
                    .as_object_mut()
                    .unwrap()
                    .remove(STATUS_ANNOTATION);
                r["request"]["object"] = injected;
                serde_json::to_vec(&r).unwrap()
            },
            Denied(&["an init container named \"llm-pull\"", "rename it"]),
        ),
        // --- Other kinds on /mutate ---
        mutate(
            "an LLMModel review on /mutate",
            || review("llmmodel-create.json", |_| {}),
            Allowed(Some("mutates only pods")),
        ),
        mutate(
            "a Deployment with an annotated template is left to its pods",
            || {
                pod(|r| {
                    let pod = r["request"]["object"].take();
                    let request = &mut r["request"];
                    request["kind"] =
                        json!({"group": "apps", "version": "v1", "kind": "Deployment"});
                    request["name"] = json!("chat");
                    request["resource"] =
                        json!({"group": "apps", "version": "v1", "resource": "deployments"});
                    request["object"] = json!({
                        "apiVersion": "apps/v1", "kind": "Deployment",
                        "metadata": {"name": "chat", "namespace": "team-a"},
                        "spec": {"selector": {"matchLabels": {"app": "chat"}},
                                 "template": {"metadata": pod["metadata"], "spec": pod["spec"]}}
                    });
                })
            },
            Allowed(Some("Deployment chat was allowed unchanged")),
        ),
        mutate(
            "a ConfigMap whose object lacks apiVersion/kind but carries the annotation",
            || {
                pod(|r| {
                    let request = &mut r["request"];
                    request["kind"] = json!({"group": "", "version": "v1", "kind": "ConfigMap"});
                    request["resource"] =
                        json!({"group": "", "version": "v1", "resource": "configmaps"});
                    request["name"] = json!("settings");
                    request["object"] = json!({
                        "metadata": {"name": "settings", "namespace": "team-a",
                                     "annotations": {MODEL_ANNOTATION: "qwen-mp2"}},
                        "data": {"a": "b"}
                    });
                })
            },
            Allowed(Some("mutates only pods")),
        ),
        // --- The annotation's value ---
        mutate(
            "annotation: empty",
            || pod(|r| set_model(r, "")),
            Denied(&[
                "pod team-a/chat-array",
                "annotation llm.injector.dev/model",
                "\"\" is not an LLMModel name (it is empty)",
                "set it to the name of an LLMModel in namespace \"team-a\"",
            ]),
        ),
        mutate(
            "annotation: whitespace only",
            || pod(|r| set_model(r, " \t ")),
            Denied(&["\" \\t \" is not an LLMModel name (it is empty)"]),
        ),
        mutate(
            "annotation: surrounding spaces are not trimmed",
            || pod(|r| set_model(r, " qwen-mp2 ")),
            Denied(&[
                "\" qwen-mp2 \" is not an LLMModel name",
                "lowercase letters",
            ]),
        ),
        mutate(
            "annotation: trailing newline (a YAML block scalar)",
            || pod(|r| set_model(r, "qwen-mp2\n")),
            Denied(&["\"qwen-mp2\\n\" is not an LLMModel name"]),
        ),
        mutate(
            "annotation: upper case",
            || pod(|r| set_model(r, "QWEN-MP2")),
            Denied(&["\"QWEN-MP2\" is not an LLMModel name", "lowercase letters"]),
        ),
        mutate(
            "annotation: Unicode look-alike (fullwidth q)",
            || pod(|r| set_model(r, "ｑwen-mp2")),
            Denied(&["\"ｑwen-mp2\" is not an LLMModel name", "lowercase letters"]),
        ),
        mutate(
            "annotation: emoji",
            || pod(|r| set_model(r, "🦙")),
            Denied(&["\"🦙\" is not an LLMModel name"]),
        ),
        mutate(
            "annotation: NUL byte",
            || pod(|r| set_model(r, "qwen-mp2\u{0}")),
            Denied(&["\"qwen-mp2\\0\" is not an LLMModel name"]),
        ),
        mutate(
            "annotation: ../ path",
            || pod(|r| set_model(r, "../qwen-mp2")),
            Denied(&["\"../qwen-mp2\"", "contains '/'", "no namespace or path"]),
        ),
        mutate(
            "annotation: other-ns/model",
            || pod(|r| set_model(r, "other-ns/model")),
            Denied(&["\"other-ns/model\"", "contains '/'"]),
        ),
        mutate(
            "annotation: namespace-qualified model of another namespace that exists",
            || {
                // Pod in adv asks for team-a's qwen-mp2, which exists there.
                pod(|r| {
                    r["request"]["namespace"] = json!("adv");
                    object(r)["metadata"]["namespace"] = json!("adv");
                    set_model(r, "team-a/qwen-mp2");
                })
            },
            Denied(&[
                "pod adv/chat-array",
                "\"team-a/qwen-mp2\"",
                "a pod may only use LLMModels of its own namespace",
            ]),
        ),
        mutate(
            "annotation: a model of another namespace by plain name is not found",
            || {
                pod(|r| {
                    r["request"]["namespace"] = json!("adv");
                    object(r)["metadata"]["namespace"] = json!("adv");
                })
            },
            Denied(&[
                "LLMModel \"qwen-mp2\"",
                "not found in namespace \"adv\"",
                "models in that namespace: ",
                "digest-gpu",
            ]),
        ),
        mutate(
            "annotation: 254 characters",
            || pod(|r| set_model(r, &"a".repeat(254))),
            Denied(&["longer than 253 characters"]),
        ),
        mutate(
            "annotation: 253 characters, the longest name, is served",
            || pod(|r| to_adv(r, &"a".repeat(253))),
            Patched(plain),
        ),
        mutate(
            "annotation: a 3 MiB value is denied with a bounded message",
            || pod(|r| set_model(r, &"a".repeat(3 * 1024 * 1024))),
            Denied(&[
                "longer than 253 characters",
                "annotation llm.injector.dev/model",
            ]),
        ),
        mutate(
            "annotation key in another case is not the opt-in",
            || {
                pod(|r| {
                    let annotations = object(r)["metadata"]["annotations"]
                        .as_object_mut()
                        .unwrap();
                    let value = annotations.remove(MODEL_ANNOTATION).unwrap();
                    annotations.insert("LLM.injector.dev/Model".into(), value);
                })
            },
            Allowed(None),
        ),
        mutate(
            "the opt-in as a label, not an annotation, is not the opt-in",
            || {
                pod(|r| {
                    let meta = &mut object(r)["metadata"];
                    let value = meta["annotations"]
                        .as_object_mut()
                        .unwrap()
                        .remove(MODEL_ANNOTATION)
                        .unwrap();
                    meta["labels"][MODEL_ANNOTATION] = value;
                })
            },
            Allowed(None),
        ),
        mutate(
            "annotations: null",
            || pod(|r| object(r)["metadata"]["annotations"] = Value::Null),
            Allowed(None),
        ),
        mutate(
            "annotation value is a number",
            || pod(|r| object(r)["metadata"]["annotations"][MODEL_ANNOTATION] = json!(2)),
            Http(
                StatusCode::BAD_REQUEST,
                &["invalid type: integer `2`, expected a string"],
            ),
        ),
        mutate(
            "a 3 MiB unrelated annotation next to a good model: patched, small answer",
            || {
                pod(|r| {
                    object(r)["metadata"]["annotations"]["blob"] =
                        json!("x".repeat(3 * 1024 * 1024));
                })
            },
            Patched(plain),
        ),
        // --- Unknown model, engine, invalid catalog objects ---
        mutate(
            "a model whose engine does not exist",
            || pod(|r| to_adv(r, "orphan")),
            Denied(&[
                "LLMModel adv/orphan: spec.engineRef.name \"missing-engine\" does not exist",
                "create the LLMEngine",
            ]),
        ),
        mutate(
            "a model that does not fit its engine",
            || pod(|r| to_adv(r, "too-wide")),
            Denied(&[
                "LLMModel \"too-wide\": spec.parallelism.model: 8 exceeds LLMEngine \"digest\"",
                "maxDevicesPerInstance 4",
            ]),
        ),
        // --- Engine images with a digest ---
        mutate(
            "engine image pinned by digest only",
            || pod(|r| to_adv(r, "digest-gpu")),
            Patched(|_, pod| {
                let want = format!("ollama/ollama@{DIGEST}");
                for name in ["llm-pull", "llm-engine-0"] {
                    assert_eq!(init(pod, name)["image"], json!(want), "{name}");
                }
            }),
        ),
        mutate(
            "engine image with registry port, tag and digest",
            || pod(|r| to_adv(r, "tag-digest-cpu")),
            Patched(|_, pod| {
                let want = format!("registry.example.com:5000/mirror/ollama:0.12.6@{DIGEST}");
                for name in ["llm-pull", "llm-engine-0"] {
                    assert_eq!(init(pod, name)["image"], json!(want), "{name}");
                }
            }),
        ),
        // --- Big and odd pods ---
        mutate(
            "a pod with 500 containers",
            || {
                pod(|r| {
                    let list = containers(r);
                    for i in 1..500 {
                        list.push(user_container(&format!("worker-{i}")));
                    }
                })
            },
            Patched(|_, pod| {
                let list = pod["spec"]["containers"].as_array().unwrap();
                assert_eq!(list.len(), 500);
                for c in list {
                    assert_eq!(env_of(c, "OLLAMA_HOST"), Some("http://127.0.0.1:11434"));
                    assert_eq!(env_of(c, "NVIDIA_VISIBLE_DEVICES"), Some("void"));
                }
            }),
        ),
        mutate(
            "64 engine instances (the most) and a router",
            || pod(|r| to_adv(r, "data-64")),
            Patched(|_, pod| {
                let init = pod["spec"]["initContainers"].as_array().unwrap();
                assert_eq!(init.len(), 1 + 64 + 1);
                assert_eq!(init[64]["name"], "llm-engine-63");
                assert_eq!(init[65]["name"], "llm-router");
                let app = &pod["spec"]["containers"][0];
                assert_eq!(env_of(app, "OLLAMA_HOST"), Some("http://127.0.0.1:11498"));
            }),
        ),
        mutate(
            "duplicate user container names are left to the apiserver",
            || pod(|r| containers(r).push(user_container("app"))),
            Patched(|_, pod| {
                let list = pod["spec"]["containers"].as_array().unwrap();
                assert_eq!(list.len(), 2);
                for c in list {
                    assert_eq!(env_of(c, "LLM_MODEL"), Some("qwen3:14b"));
                }
            }),
        ),
        mutate(
            "Unicode pod and container names",
            || {
                pod(|r| {
                    r["request"]["name"] = json!("chat-ünïcödé-🦙");
                    object(r)["metadata"]["name"] = json!("chat-ünïcödé-🦙");
                    app(r)["name"] = json!("äpp-名前");
                    object(r)["metadata"]["labels"]["ラベル"] = json!("値");
                })
            },
            Patched(|_, pod| {
                assert_eq!(pod["metadata"]["name"], "chat-ünïcödé-🦙");
                assert_eq!(pod["spec"]["containers"][0]["name"], "äpp-名前");
            }),
        ),
        mutate(
            "Unicode name in a deny message",
            || {
                pod(|r| {
                    r["request"]["name"] = json!("chat-🦙");
                    object(r)["metadata"]["name"] = json!("chat-🦙");
                    set_model(r, "nope");
                })
            },
            Denied(&["pod team-a/chat-🦙: LLMModel \"nope\""]),
        ),
        mutate(
            "fields from a newer Kubernetes are kept by the patch",
            || {
                pod(|r| {
                    object(r)["spec"]["futurePodField"] = json!({"x": [1, 2]});
                    app(r)["futureContainerField"] = json!(true);
                    app(r)["env"][0]["futureEnvField"] = json!("y");
                    object(r)["spec"]["initContainers"] = json!([
                        {"name": "setup", "image": "busybox:1.36", "futureField": 1}
                    ]);
                })
            },
            Patched(|_, pod| {
                assert_eq!(pod["spec"]["futurePodField"], json!({"x": [1, 2]}));
                let app = &pod["spec"]["containers"][0];
                assert_eq!(app["futureContainerField"], true);
                let env = app["env"].as_array().unwrap();
                assert_eq!(env.last().unwrap()["futureEnvField"], "y");
                assert_eq!(pod["spec"]["initContainers"][0]["futureField"], 1);
                assert_eq!(pod["spec"]["initContainers"][1]["name"], "llm-pull");
            }),
        ),
        mutate(
            "explicit nulls for lists the injector appends to",
            || {
                pod(|r| {
                    let spec = &mut object(r)["spec"];
                    spec["initContainers"] = Value::Null;
                    spec["volumes"] = Value::Null;
                    app(r)["env"] = Value::Null;
                })
            },
            Patched(|_, pod| {
                assert_eq!(pod["spec"]["initContainers"][0]["name"], "llm-pull");
                assert_eq!(pod["spec"]["volumes"][0]["name"], "llm-models");
                assert_eq!(
                    env_of(&pod["spec"]["containers"][0], "LLM_MODEL"),
                    Some("qwen3:14b")
                );
            }),
        ),
        mutate(
            "spec: null on an annotated pod",
            || pod(|r| object(r)["spec"] = Value::Null),
            Denied(&["pod team-a/chat-array", "has no pod spec"]),
        ),
        mutate(
            "metadata: null (no annotation, so nothing asked)",
            || pod(|r| object(r)["metadata"] = Value::Null),
            Allowed(None),
        ),
        mutate(
            "a number where the image string is expected, annotated",
            || pod(|r| app(r)["image"] = json!(123)),
            Denied(&[
                "pod team-a/chat-array",
                "does not decode as a v1 Pod",
                "123",
                "string",
            ]),
        ),
        mutate(
            "a number where a string is expected, not annotated",
            || {
                pod(|r| {
                    app(r)["image"] = json!(123);
                    object(r)["metadata"]["annotations"]
                        .as_object_mut()
                        .unwrap()
                        .remove(MODEL_ANNOTATION);
                })
            },
            AllowedWithout("mutates only pods"),
        ),
        mutate(
            "the object's apiVersion is not v1, annotated",
            || pod(|r| object(r)["apiVersion"] = json!("v2")),
            Denied(&["does not decode as a v1 Pod"]),
        ),
        // --- GPUs and device visibility on user containers ---
        mutate(
            "a user container that already has a GPU limit",
            || {
                pod(|r| {
                    app(r)["resources"]["limits"] = json!({"nvidia.com/gpu": "1"});
                    containers(r).push(user_container("sidecar"));
                })
            },
            Patched(|_, pod| {
                let list = pod["spec"]["containers"].as_array().unwrap();
                // The GPU container sees its GPU; the other sees none.
                assert_eq!(env_of(&list[0], "NVIDIA_VISIBLE_DEVICES"), None);
                assert_eq!(
                    env_of(&list[0], "OLLAMA_HOST"),
                    Some("http://127.0.0.1:11434")
                );
                assert_eq!(env_of(&list[1], "NVIDIA_VISIBLE_DEVICES"), Some("void"));
                assert_eq!(list[0]["resources"]["limits"]["nvidia.com/gpu"], "1");
            }),
        ),
        mutate(
            "CUDA_VISIBLE_DEVICES and NVIDIA_VISIBLE_DEVICES set by the user are kept",
            || {
                pod(|r| {
                    app(r)["env"] = json!([
                        {"name": "CUDA_VISIBLE_DEVICES", "value": "0"},
                        {"name": "NVIDIA_VISIBLE_DEVICES", "value": "all"},
                        {"name": "OLLAMA_HOST", "valueFrom":
                            {"configMapKeyRef": {"name": "llm", "key": "host"}}}
                    ]);
                })
            },
            Patched(|before, pod| {
                let app = &pod["spec"]["containers"][0];
                let env = app["env"].as_array().unwrap();
                assert_eq!(
                    &env[env.len() - 3..],
                    before["spec"]["containers"][0]["env"]
                        .as_array()
                        .unwrap()
                        .as_slice()
                );
                let names: Vec<&str> = env.iter().map(|e| e["name"].as_str().unwrap()).collect();
                assert_eq!(
                    names,
                    [
                        "OLLAMA_BASE_URL",
                        "OPENAI_BASE_URL",
                        "OPENAI_API_KEY",
                        "LLM_MODEL",
                        "LLM_BASE_URL",
                        "LLM_ENDPOINTS",
                        "CUDA_VISIBLE_DEVICES",
                        "NVIDIA_VISIBLE_DEVICES",
                        "OLLAMA_HOST",
                    ]
                );
            }),
        ),
        mutate(
            "a pod that already has an engine-style GPU env on an init container",
            || {
                pod(|r| {
                    object(r)["spec"]["initContainers"] = json!([{
                        "name": "warmup", "image": "busybox:1.36",
                        "env": [{"name": "CUDA_VISIBLE_DEVICES", "value": "0,1"}],
                        "resources": {"limits": {"nvidia.com/gpu": "2"}}
                    }]);
                })
            },
            Patched(|before, pod| {
                // User init containers are never touched, not even their env.
                assert_eq!(
                    pod["spec"]["initContainers"][0],
                    before["spec"]["initContainers"][0]
                );
            }),
        ),
        // --- Names and ports the injector needs ---
        mutate(
            "a user container named llm-engine-0",
            || pod(|r| containers(r).push(user_container("llm-engine-0"))),
            Denied(&[
                "already has a container named \"llm-engine-0\"",
                "LLMModel \"qwen-mp2\"",
                "rename it",
            ]),
        ),
        mutate(
            "a user init container named llm-pull",
            || {
                pod(|r| {
                    object(r)["spec"]["initContainers"] = json!([user_container("llm-pull")]);
                })
            },
            Denied(&[
                "already has an init container named \"llm-pull\"",
                "rename it",
            ]),
        ),
        mutate(
            "a user container named llm-router on a pod with a router",
            || {
                pod(|r| {
                    set_model(r, "qwen-2x2");
                    containers(r).push(user_container("llm-router"));
                })
            },
            Denied(&[
                "already has a container named \"llm-router\"",
                "LLMModel \"qwen-2x2\"",
            ]),
        ),
        mutate(
            "a user volume named llm-models",
            || {
                pod(|r| {
                    object(r)["spec"]["volumes"] = json!([{"name": "llm-models", "emptyDir": {}}]);
                })
            },
            Denied(&["already has a volume named \"llm-models\"", "rename it"]),
        ),
        mutate(
            "a user container port on the engine's port",
            || pod(|r| app(r)["ports"] = json!([{"containerPort": 11434, "protocol": "TCP"}])),
            Denied(&[
                "container \"app\" declares port 11434",
                "engine instance 0",
                "change the container's port or the engine's spec.port",
            ]),
        ),
        mutate(
            "a user container port on the router's port",
            || {
                pod(|r| {
                    set_model(r, "qwen-2x2");
                    app(r)["ports"] = json!([{"containerPort": 11436}]);
                })
            },
            Denied(&["declares port 11436", "the llm-router"]),
        ),
        mutate(
            "a user port next to the engine's is fine",
            || {
                pod(|r| {
                    app(r)["ports"] = json!([{"containerPort": 11435}, {"containerPort": 8080}])
                })
            },
            Patched(plain),
        ),
        mutate(
            "a pod runtimeClassName other than the engine's",
            || pod(|r| object(r)["spec"]["runtimeClassName"] = json!("kata")),
            Denied(&[
                "spec.runtimeClassName \"kata\"",
                "LLMEngine \"ollama-nvidia\" needs accelerator.runtimeClassName \"nvidia\"",
            ]),
        ),
        mutate(
            "a pod runtimeClassName equal to the engine's is kept",
            || pod(|r| object(r)["spec"]["runtimeClassName"] = json!("nvidia")),
            Patched(|_, pod| assert_eq!(pod["spec"]["runtimeClassName"], "nvidia")),
        ),
        // --- More envelope and namespace oddities ---
        mutate(
            "a UTF-8 byte order mark before the JSON",
            || {
                let mut body = b"\xef\xbb\xbf".to_vec();
                body.extend(pod(|_| {}));
                body
            },
            Http(StatusCode::BAD_REQUEST, &["not JSON"]),
        ),
        mutate(
            "request given twice",
            || {
                let text = String::from_utf8(pod(|_| {})).unwrap();
                let request = text
                    .split_once("\"request\":")
                    .map(|(_, rest)| rest[..rest.len() - 1].to_owned())
                    .unwrap();
                format!("{},\"request\":{request}}}", &text[..text.len() - 1]).into_bytes()
            },
            Http(StatusCode::BAD_REQUEST, &["duplicate field `request`"]),
        ),
        mutate(
            "no namespace anywhere: looked up in default",
            || {
                pod(|r| {
                    r["request"].as_object_mut().unwrap().remove("namespace");
                    object(r)["metadata"]
                        .as_object_mut()
                        .unwrap()
                        .remove("namespace");
                })
            },
            Denied(&[
                "pod default/chat-array",
                "not found in namespace \"default\"",
            ]),
        ),
        mutate(
            "the request's namespace wins over the object's",
            || pod(|r| object(r)["metadata"]["namespace"] = json!("adv")),
            Patched(|_, pod| {
                let status: Value = serde_json::from_str(
                    pod["metadata"]["annotations"][STATUS_ANNOTATION]
                        .as_str()
                        .unwrap(),
                )
                .unwrap();
                assert_eq!(status["engine"], "ollama-nvidia", "team-a's model");
            }),
        ),
        mutate(
            "a status annotation without the opt-in is not a request",
            || {
                pod(|r| {
                    let annotations = object(r)["metadata"]["annotations"]
                        .as_object_mut()
                        .unwrap();
                    annotations.remove(MODEL_ANNOTATION);
                    annotations.insert(STATUS_ANNOTATION.into(), json!("{}"));
                })
            },
            Allowed(None),
        ),
        // --- DRA, host network, init container ports ---
        mutate(
            "DRA engine next to the user's own resource claims",
            || {
                pod(|r| {
                    to_adv(r, "dra-1x2");
                    object(r)["spec"]["resourceClaims"] =
                        json!([{"name": "mine", "resourceClaimTemplateName": "fpga"}]);
                    app(r)["resources"]["claims"] = json!([{"name": "mine"}]);
                })
            },
            Patched(|_, pod| {
                let claims: Vec<&str> = pod["spec"]["resourceClaims"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c["name"].as_str().unwrap())
                    .collect();
                assert_eq!(claims, ["mine", "llm-gpu-0", "llm-gpu-1"]);
                assert_eq!(
                    init(pod, "llm-engine-1")["resources"]["claims"],
                    json!([{"name": "llm-gpu-1"}])
                );
                // The user container asked for a device through DRA: no void.
                let app = &pod["spec"]["containers"][0];
                assert_eq!(env_of(app, "NVIDIA_VISIBLE_DEVICES"), None);
            }),
        ),
        mutate(
            "a user resource claim named llm-gpu-1",
            || {
                pod(|r| {
                    to_adv(r, "dra-1x2");
                    object(r)["spec"]["resourceClaims"] =
                        json!([{"name": "llm-gpu-1", "resourceClaimTemplateName": "gpus"}]);
                })
            },
            Denied(&[
                "already has a resource claim named \"llm-gpu-1\"",
                "rename it",
            ]),
        ),
        mutate(
            "a user init container declaring the engine's port",
            || {
                pod(|r| {
                    let mut setup = user_container("setup");
                    setup["restartPolicy"] = json!("Always");
                    setup["ports"] = json!([{"containerPort": 11434}]);
                    object(r)["spec"]["initContainers"] = json!([setup]);
                })
            },
            Denied(&[
                "container \"setup\" declares port 11434",
                "engine instance 0",
            ]),
        ),
        mutate(
            "a hostNetwork pod is injected, with a warning",
            || pod(|r| object(r)["spec"]["hostNetwork"] = json!(true)),
            PatchedWarning("hostNetwork"),
        ),
        // --- /validate: LLMModel and LLMEngine with bad fields ---
        validate(
            "LLMModel: parallelism.data 0",
            || model_create(|m| m["spec"]["parallelism"]["data"] = json!(0)),
            Denied(&[
                "LLMModel team-a/qwen-mp2",
                "spec.parallelism.data",
                "0 must be at least 1",
            ]),
        ),
        validate(
            "LLMModel: engineRef with ../",
            || model_create(|m| m["spec"]["engineRef"]["name"] = json!("../ollama-nvidia")),
            Denied(&[
                "spec.engineRef.name",
                "\"../ollama-nvidia\" is not an LLMEngine name",
            ]),
        ),
        validate(
            "LLMModel: duplicate and out-of-range devices",
            || model_create(|m| m["spec"]["devices"] = json!(["0", "0", "7"])),
            Denied(&[
                "spec.devices[1]",
                "listed twice",
                "spec.devices[2]",
                "\"7\"",
            ]),
        ),
        validate(
            "LLMModel: Ollama model with a digest",
            || model_create(|m| m["spec"]["model"] = json!("qwen3@sha256:abc")),
            Denied(&[
                "spec.model",
                "\"qwen3@sha256:abc\" is not an Ollama model reference",
            ]),
        ),
        validate(
            "LLMModel: spec null",
            || model_create(|m| m["spec"] = Value::Null),
            Denied(&[
                "LLMModel team-a/qwen-mp2",
                "does not decode as a LLMModel",
                "null",
            ]),
        ),
        validate(
            "LLMModel: a string where the number parallelism.model is expected",
            || model_create(|m| m["spec"]["parallelism"]["model"] = json!("2")),
            Denied(&[
                "does not decode as a LLMModel",
                "spec.parallelism.model",
                "invalid type: string \"2\"",
            ]),
        ),
        validate(
            "LLMModel: unknown fields are ignored (the apiserver prunes them)",
            || {
                model_create(|m| {
                    m["spec"]["futureField"] = json!({"a": 1});
                    m["spec"]["serving"] = json!({"futureKnob": true});
                })
            },
            Allowed(None),
        ),
        validate(
            "LLMModel: CREATE without an object",
            || {
                review("llmmodel-create.json", |r| {
                    r["request"]["object"] = Value::Null
                })
            },
            Denied(&["the review carries no LLMModel object"]),
        ),
        validate(
            "LLMModel: 10k nested arrays in the spec",
            || {
                let mut r = fixture_json("llmmodel-create.json");
                object(&mut r)["spec"]["deep"] = json!("__HOLE__");
                with_raw(&r, &nested_arrays(10_000))
            },
            Http(StatusCode::BAD_REQUEST, &["recursion limit"]),
        ),
        validate(
            "LLMEngine: image pinned by digest is accepted without warnings",
            || {
                let mut engine = engine_json("team-a", "ollama-nvidia");
                engine["metadata"]["name"] = json!("pinned");
                engine["spec"]["image"] = json!(format!("ollama/ollama@{DIGEST}"));
                engine_review("CREATE", None, Some(engine))
            },
            Allowed(None),
        ),
        validate(
            "LLMEngine: a truncated digest",
            || {
                let mut engine = engine_json("team-a", "ollama-nvidia");
                engine["spec"]["image"] = json!("ollama/ollama@sha256:0123");
                engine_review("CREATE", None, Some(engine))
            },
            Denied(&[
                "LLMEngine team-a/ollama-nvidia",
                "spec.image",
                "ollama/ollama@sha256:0123",
            ]),
        ),
        validate(
            "LLMEngine: port 70000 and a reserved env",
            || {
                let mut engine = engine_json("team-a", "ollama-nvidia");
                engine["spec"]["port"] = json!(70000);
                engine["spec"]["env"] = json!([{"name": "CUDA_VISIBLE_DEVICES", "value": "0"}]);
                engine_review("CREATE", None, Some(engine))
            },
            Denied(&["spec.port", "70000", "spec.env[0]", "CUDA_VISIBLE_DEVICES"]),
        ),
        validate(
            "LLMEngine: vendor in the wrong case",
            || {
                let mut engine = engine_json("team-a", "ollama-nvidia");
                engine["spec"]["accelerator"]["vendor"] = json!("nvidia");
                engine_review("CREATE", None, Some(engine))
            },
            Denied(&[
                "does not decode as a LLMEngine",
                "spec.accelerator.vendor",
                "unknown variant `nvidia`",
                "NVIDIA",
            ]),
        ),
        validate(
            "LLMEngine: null accelerator",
            || {
                let mut engine = engine_json("team-a", "ollama-nvidia");
                engine["spec"]["accelerator"] = Value::Null;
                engine_review("CREATE", None, Some(engine))
            },
            Denied(&["does not decode as a LLMEngine", "null"]),
        ),
        validate(
            "LLMEngine: UPDATE that breaks the models using it",
            || {
                let old = engine_json("team-a", "ollama-nvidia");
                let mut new = old.clone();
                new["spec"]["accelerator"]["maxDevicesPerInstance"] = json!(1);
                engine_review("UPDATE", Some(old), Some(new))
            },
            Denied(&["LLMEngine team-a/ollama-nvidia", "qwen-mp2", "qwen-2x2"]),
        ),
        validate(
            "LLMEngine: DELETE of an engine in use",
            || engine_review("DELETE", Some(engine_json("team-a", "ollama-cpu")), None),
            Denied(&["llama-cpu"]),
        ),
        validate(
            "LLMModel: DELETE (object null) is allowed",
            || review("llmmodel-delete.json", |_| {}),
            Allowed(None),
        ),
        validate(
            "LLMEngine: UPDATE without an oldObject",
            || engine_review("UPDATE", None, Some(engine_json("team-a", "ollama-nvidia"))),
            Denied(&[
                "LLMEngine team-a/ollama-nvidia",
                "the review carries no LLMEngine object",
            ]),
        ),
        validate(
            "a Pod that asks for a model, on /validate: advice only, nothing to say",
            || pod(|_| {}),
            Allowed(None),
        ),
        validate(
            "a Pod with a typo'd opt-in key, on /validate: warned",
            || {
                pod(|r| {
                    let annotations = &mut object(r)["metadata"]["annotations"];
                    let model = annotations[MODEL_ANNOTATION].take();
                    annotations
                        .as_object_mut()
                        .unwrap()
                        .remove(MODEL_ANNOTATION);
                    annotations["llm.injector.dev/models"] = model;
                })
            },
            Allowed(Some(
                "\"llm.injector.dev/models\", which the injector does not read",
            )),
        ),
        validate(
            "an LLMModel of another API group on /validate: not ours, not checked",
            || {
                review("llmmodel-create.json", |r| {
                    r["request"]["kind"]["group"] = json!("models.example.com");
                    r["request"]["object"]["spec"] = json!({"model": "NOT A MODEL"});
                })
            },
            Allowed(Some("validates only LLMEngine and LLMModel")),
        ),
        validate(
            "a ConfigMap review on /validate",
            || {
                pod(|r| {
                    r["request"]["kind"] =
                        json!({"group": "", "version": "v1", "kind": "ConfigMap"});
                })
            },
            Allowed(Some(
                "validates only LLMEngine and LLMModel, and advises on pods and workloads; ConfigMap chat-array",
            )),
        ),
        validate(
            "JSON null on /validate",
            || b"null".to_vec(),
            Http(StatusCode::BAD_REQUEST, &["not an AdmissionReview"]),
        ),
        validate(
            "wrong apiVersion on /validate",
            || review("llmmodel-create.json", |r| r["apiVersion"] = json!("v1")),
            Http(StatusCode::BAD_REQUEST, &["only admission.k8s.io/v1"]),
        ),
    ]
}

// ---------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------

fn env_of<'a>(container: &'a Value, name: &str) -> Option<&'a str> {
    container["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)
        .and_then(|e| e["value"].as_str())
}

fn init<'a>(pod: &'a Value, name: &str) -> &'a Value {
    pod["spec"]["initContainers"]
        .as_array()
        .and_then(|list| list.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no init container {name}"))
}

/// The fixture's object after its own patch, as the apiserver stores it.
fn injected_object(review: &Value) -> Value {
    let decision = llm_injector::server::review::mutate(
        &serde_json::to_vec(review).unwrap(),
        &catalog(),
        &llm_injector::Injector::default(),
    )
    .expect("decision");
    let answer: Value = serde_json::from_slice(&decision.into_body().unwrap()).unwrap();
    let patch = patch_of(&answer).expect("patch");
    let mut object = review["request"]["object"].clone();
    json_patch::patch(&mut object, &patch).expect("patch applies");
    object
}

/// Asserts `list` starts with `prefix` unchanged, and returns what was appended.
fn appended<'a>(what: &str, before: &Value, after: &'a Value) -> &'a [Value] {
    let old = before.as_array().map(Vec::as_slice).unwrap_or_default();
    let new = after.as_array().map(Vec::as_slice).unwrap_or_default();
    assert!(new.len() >= old.len(), "{what}: items removed");
    assert_eq!(&new[..old.len()], old, "{what}: existing items changed");
    &new[old.len()..]
}

/// Asserts `list` ends with `suffix` unchanged (env: injected entries go
/// first so the user's `$(VAR)` resolve), and returns what was put before it.
fn prepended<'a>(what: &str, before: &Value, after: &'a Value) -> &'a [Value] {
    let old = before.as_array().map(Vec::as_slice).unwrap_or_default();
    let new = after.as_array().map(Vec::as_slice).unwrap_or_default();
    assert!(new.len() >= old.len(), "{what}: items removed");
    let added = new.len() - old.len();
    assert_eq!(&new[added..], old, "{what}: existing items changed");
    &new[..added]
}

/// The generic checks of a patched answer; returns the patched object.
fn check_patched(request: &Value, answer: &Value) -> Value {
    let response = &answer["response"];
    assert_eq!(response["patchType"], "JSONPatch");
    assert!(response["patch"].is_string(), "patch is base64");
    let patch = patch_of(answer).expect("patch");
    let ops = serde_json::to_value(&patch).unwrap();
    for op in ops.as_array().unwrap() {
        assert_eq!(op["op"], "add", "the patch is add-only: {op}");
        let path = op["path"].as_str().unwrap();
        assert!(
            !path.starts_with("/metadata/managedFields"),
            "managedFields never change: {path}"
        );
    }
    let before = &request["request"]["object"];
    let mut after = before.clone();
    json_patch::patch(&mut after, &patch).expect("the patch applies to the request's object");
    let typed: Pod =
        serde_json::from_value(after.clone()).expect("the patched object is still a v1 Pod");
    assert!(typed.spec.is_some());

    // Metadata: only the status annotation and the model label are added.
    let mut meta = after["metadata"].clone();
    let status = meta["annotations"]
        .as_object_mut()
        .and_then(|a| a.remove(STATUS_ANNOTATION))
        .expect("status annotation");
    // The label holds the model's name, unless it is too long for a label value.
    let model = before["metadata"]["annotations"][MODEL_ANNOTATION].clone();
    let expected = model.as_str().filter(|m| m.len() <= 63).map(Value::from);
    if let Some(labels) = meta.get_mut("labels").and_then(Value::as_object_mut) {
        assert_eq!(
            labels.remove(llm_injector::MODEL_LABEL),
            expected,
            "the model label names the model"
        );
        if labels.is_empty() && before["metadata"].get("labels").is_none() {
            meta.as_object_mut().unwrap().remove("labels");
        }
    } else {
        assert_eq!(expected, None, "the model label names the model");
    }
    if before["metadata"]["annotations"].is_object() {
        assert_eq!(
            meta, before["metadata"],
            "metadata changed beyond the status"
        );
    }
    let status: Value =
        serde_json::from_str(status.as_str().expect("status is a string")).expect("status JSON");
    assert_eq!(
        status["model"], before["metadata"]["annotations"][MODEL_ANNOTATION],
        "status names the model asked for"
    );

    // Everything but the top-level metadata/spec is unchanged.
    for (key, value) in before.as_object().unwrap() {
        if key != "metadata" && key != "spec" {
            assert_eq!(&after[key], value, "{key} changed");
        }
    }
    // The spec: only appended lists, env of user containers, runtimeClassName.
    let (old_spec, new_spec) = (&before["spec"], &after["spec"]);
    let touched = [
        "initContainers",
        "volumes",
        "containers",
        "runtimeClassName",
        "resourceClaims",
    ];
    for (key, value) in old_spec.as_object().unwrap() {
        if !touched.contains(&key.as_str()) {
            assert_eq!(&new_spec[key], value, "spec.{key} changed");
        }
    }
    if old_spec["runtimeClassName"].is_string() {
        assert_eq!(new_spec["runtimeClassName"], old_spec["runtimeClassName"]);
    }
    let added_init = appended(
        "initContainers",
        &old_spec["initContainers"],
        &new_spec["initContainers"],
    );
    let names: Vec<&str> = added_init
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        status["initContainers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap())
            .collect::<Vec<_>>(),
        "the added init containers are the ones the status lists"
    );
    assert_eq!(names[0], "llm-pull");
    let added_volumes = appended("volumes", &old_spec["volumes"], &new_spec["volumes"]);
    assert_eq!(
        added_volumes
            .iter()
            .map(|v| v["name"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["llm-models", "llm-no-api-token"],
        "the model store and the empty directory over the API token path"
    );
    assert_eq!(
        status["volumes"],
        serde_json::json!(["llm-models", "llm-no-api-token"])
    );
    appended(
        "resourceClaims",
        &old_spec["resourceClaims"],
        &new_spec["resourceClaims"],
    );

    // User containers: same containers, same fields; env only appended to.
    let (old_list, new_list) = (
        old_spec["containers"].as_array().unwrap(),
        new_spec["containers"].as_array().unwrap(),
    );
    assert_eq!(
        old_list.len(),
        new_list.len(),
        "containers added or removed"
    );
    for (old, new) in old_list.iter().zip(new_list) {
        let name = &old["name"];
        let (mut old_rest, mut new_rest) = (old.clone(), new.clone());
        let old_env = old_rest
            .as_object_mut()
            .unwrap()
            .remove("env")
            .unwrap_or(Value::Null);
        let new_env = new_rest
            .as_object_mut()
            .unwrap()
            .remove("env")
            .unwrap_or(Value::Null);
        assert_eq!(old_rest, new_rest, "container {name}: changed beyond env");
        let added = prepended(&format!("container {name} env"), &old_env, &new_env);
        let old_names: BTreeSet<&str> = old_env
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| e["name"].as_str().unwrap())
            .collect();
        for e in added {
            let var = e["name"].as_str().unwrap();
            assert!(USER_ENV.contains(&var), "container {name}: added {var}");
            assert!(
                !old_names.contains(var),
                "container {name}: {var} set twice"
            );
            if var == "NVIDIA_VISIBLE_DEVICES" {
                assert_eq!(e["value"], "void");
            }
        }
        for var in &USER_ENV[..4] {
            assert!(
                old_names.contains(var) || added.iter().any(|e| e["name"] == *var),
                "container {name}: {var} missing"
            );
        }
    }
    after
}

/// Runs one case; panics with the case's name on a wrong answer.
async fn run(state: &AppState, case: &Case) {
    let name = case.name;
    let body = (case.body)();
    // The test's own decoder stops at depth 128: a request nested deeper is
    // checked against the same request with that nesting cut to `[]`.
    let request: Option<Value> = serde_json::from_slice(&body)
        .or_else(|_| serde_json::from_str(&collapse_nesting(&String::from_utf8_lossy(&body))))
        .ok();
    let (status, bytes) = call(state, case.route, body).await;
    let answer: Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
        panic!(
            "{name}: answer is not JSON ({status}): {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    // ADV_DUMP=1 (with --nocapture) prints every answer, to review the corpus.
    if std::env::var_os("ADV_DUMP").is_some() {
        let text = String::from_utf8_lossy(&bytes);
        let text: String = text.chars().take(700).collect();
        eprintln!("### {name}: {status}\n{text}\n");
    }
    let short = || {
        let text = answer.to_string();
        text.chars().take(2000).collect::<String>()
    };
    match &case.expect {
        Http(want, reasons) => {
            assert_eq!(status, *want, "{name}: {}", short());
            let error = answer["error"]
                .as_str()
                .unwrap_or_else(|| panic!("{name}: no error string: {}", short()));
            for reason in *reasons {
                assert!(error.contains(reason), "{name}: {error:?} lacks {reason:?}");
            }
            assert!(error.len() < 4096, "{name}: error of {} bytes", error.len());
            return;
        }
        _ => assert_eq!(status, StatusCode::OK, "{name}: {}", short()),
    }
    // A review answer: v1, the request's uid.
    assert_eq!(answer["apiVersion"], "admission.k8s.io/v1", "{name}");
    assert_eq!(answer["kind"], "AdmissionReview", "{name}");
    let request = request.unwrap_or_else(|| panic!("{name}: a 200 for a body that is not JSON"));
    let response = &answer["response"];
    assert_eq!(response["uid"], request["request"]["uid"], "{name}: uid");
    let allowed = response["allowed"].as_bool();
    match &case.expect {
        Http(..) => unreachable!(),
        Allowed(_) | AllowedWithout(_) => {
            assert_eq!(allowed, Some(true), "{name}: {}", short());
            assert!(response.get("patch").is_none(), "{name}: patched");
            assert!(response.get("patchType").is_none(), "{name}: patchType");
            let warnings: Vec<&str> = response["warnings"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            match &case.expect {
                Allowed(None) => assert!(warnings.is_empty(), "{name}: warnings {warnings:?}"),
                Allowed(Some(want)) => assert!(
                    warnings.iter().any(|w| w.contains(want)),
                    "{name}: warnings {warnings:?} lack {want:?}"
                ),
                AllowedWithout(wrong) => assert!(
                    !warnings.iter().any(|w| w.contains(wrong)),
                    "{name}: warnings {warnings:?} say {wrong:?}"
                ),
                _ => unreachable!(),
            }
        }
        Denied(parts) => {
            assert_eq!(allowed, Some(false), "{name}: {}", short());
            assert!(
                response.get("patch").is_none(),
                "{name}: a denial with a patch"
            );
            let message = response["status"]["message"]
                .as_str()
                .unwrap_or_else(|| panic!("{name}: no message: {}", short()));
            assert!(
                message.starts_with("llm-injector: "),
                "{name}: {message:?} does not say who denied"
            );
            let shown: String = message.chars().take(1000).collect();
            for part in *parts {
                assert!(message.contains(part), "{name}: {shown:?} lacks {part:?}");
            }
            // A message is for a person: never megabytes.
            assert!(
                message.len() < 8192,
                "{name}: a message of {} bytes: {shown:?}...",
                message.len()
            );
        }
        Patched(_) | PatchedWarning(_) => {
            assert_eq!(allowed, Some(true), "{name}: {}", short());
            if let PatchedWarning(want) = &case.expect {
                let warnings = response["warnings"].to_string();
                assert!(
                    warnings.contains(want),
                    "{name}: warnings {warnings} lack {want:?}"
                );
            }
            assert!(
                bytes.len() < 512 * 1024,
                "{name}: answer of {} bytes",
                bytes.len()
            );
            let before = &request["request"]["object"];
            let after = check_patched(&request, &answer);
            if let Patched(check) = &case.expect {
                check(before, &after);
            }
            // Idempotence: the injected pod sent again gets no patch.
            let mut again = request.clone();
            again["request"]["object"] = after;
            let (status, bytes) =
                call(state, case.route, serde_json::to_vec(&again).unwrap()).await;
            assert_eq!(status, StatusCode::OK, "{name}: second round");
            let answer: Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(answer["response"]["allowed"], true, "{name}: second round");
            assert!(
                answer["response"].get("patch").is_none(),
                "{name}: the injected pod was patched again"
            );
        }
    }
}

/// Runs the case named `name` (for the `#[ignore]` bug tests).
#[allow(dead_code)]
async fn run_named(name: &str) {
    let cases = cases();
    let case = cases
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no case {name:?}"));
    assert!(case.bug.is_some(), "{name} is not marked as a bug");
    run(&state(), case).await;
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[test]
fn the_corpus_has_at_least_40_distinct_cases() {
    let cases = cases();
    assert!(cases.len() >= 40, "only {} cases", cases.len());
    let names: BTreeSet<&str> = cases.iter().map(|c| c.name).collect();
    assert_eq!(names.len(), cases.len(), "case names are unique");
    // Each known bug has its own ignored test below.
    let bugs: Vec<&str> = cases
        .iter()
        .filter(|c| c.bug.is_some())
        .map(|c| c.name)
        .collect();
    assert_eq!(bugs, BUG_CASES, "BUG_CASES lists the cases marked bug");
}

/// Every case not marked as a bug, each on its own task so that one failure
/// does not hide the others.
#[tokio::test]
async fn adversarial_corpus() {
    let state = state();
    let count = cases().len();
    let mut failures = Vec::new();
    let mut ran = 0;
    for index in 0..count {
        if cases()[index].bug.is_some() {
            continue;
        }
        ran += 1;
        let state = state.clone();
        let outcome = tokio::spawn(async move {
            let cases = cases();
            run(&state, &cases[index]).await;
        })
        .await;
        if let Err(error) = outcome {
            let message = error
                .try_into_panic()
                .ok()
                .and_then(|p| {
                    p.downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                })
                .unwrap_or_else(|| "cancelled".to_owned());
            failures.push(format!("{}: {message}", cases()[index].name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {ran} cases failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// The cases marked `bug`, in table order; each has an ignored test below.
const BUG_CASES: &[&str] = &[];
