//! The checks behind the fuzz targets, shared with `tests/fuzz_regressions.rs`
//! (which includes this file with `#[path]`, so it may use only crates that
//! llm-injector itself depends on: serde_json, json-patch, base64, k8s-openapi).
//!
//! - [`check_mutate`]: any body sent to `/mutate` is either a 400
//!   ([`BadReview`]) or an `admission.k8s.io/v1` AdmissionReview response for
//!   the request's uid; a patch applies to the request's object, gives the
//!   injected pod, and that pod is left alone when reviewed again.
//! - [`check_validate`]: the same for `/validate`, which never patches.
//! - [`check_inject`]: a pod built from fuzz bytes, injected with the
//!   examples/catalog catalog: the patch applies and gives the injected
//!   object, injecting the result again is a no-op.
//!
//! Every failed check panics, which is what libFuzzer and the tests catch.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use base64::Engine as _;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use llm_injector::inject::{InjectionStatus, PodLike};
use llm_injector::server::review::{self, BadReview, Decision, REVIEW_API_VERSION, Verdict};
use llm_injector::{
    Catalog, InjectOptions, Injector, MODEL_ANNOTATION, ModelLookup, Outcome, STATUS_ANNOTATION,
};
use serde_json::{Value, json};

/// The namespace of every object in examples/catalog.
pub const NAMESPACE: &str = "team-a";

/// The repository root (this file is built both from `fuzz/` and from the root).
pub fn repo_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    if here.join("examples/catalog").is_dir() {
        here.to_owned()
    } else {
        here.parent().expect("fuzz/ has a parent").to_owned()
    }
}

/// examples/catalog, loaded once.
pub fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| {
        Catalog::load(&repo_root().join("examples/catalog"), "default")
            .expect("examples/catalog loads")
    })
}

/// The one injector of every check, as the webhook has one: what it
/// remembers must never change an answer.
fn injector() -> &'static Injector {
    static INJECTOR: OnceLock<Injector> = OnceLock::new();
    INJECTOR.get_or_init(Injector::default)
}

/// `object` injected by a new injector with nothing remembered.
fn fresh_injection<P: PodLike>(
    object: &P,
    namespace: &str,
) -> Option<llm_injector::inject::Injection> {
    let meta = object.pod_metadata()?;
    let name = meta.annotations.as_ref()?.get(MODEL_ANNOTATION)?;
    let model = catalog().model(namespace, name)?;
    let engine = catalog().engine(namespace, &model.spec.engine_ref.name)?;
    llm_injector::inject::inject(object, &model, &engine, &InjectOptions::default()).ok()
}

/// The captured review of a named, annotated pod (the base of [`check_inject`]).
pub fn captured_pod_review() -> &'static Value {
    static REVIEW: OnceLock<Value> = OnceLock::new();
    REVIEW.get_or_init(|| {
        let path = repo_root().join("tests/fixtures/apiserver-1.36/pod-create-named.json");
        let text = std::fs::read(&path).expect("the captured pod review");
        serde_json::from_slice(&text).expect("the captured pod review is JSON")
    })
}

/// A body that got a 400: the reason must print and have a metric label.
fn check_bad(bad: &BadReview) {
    assert!(!bad.to_string().is_empty());
    assert!(!bad.metric_label().is_empty());
}

/// The request of a body, read as plain JSON (duplicate keys: the last wins,
/// as in serde's own maps).
///
/// A body with invalid UTF-8 or a lone surrogate escape (`\ud800`) inside a
/// string that the typed decoding skips (an unknown field) is still decided:
/// serde_json checks those only in the strings it keeps. They are read here
/// as U+FFFD, which changes no value the decision used.
fn raw_request(body: &[u8]) -> Option<Value> {
    let mut review: Value = match serde_json::from_slice(body) {
        Ok(review) => review,
        Err(_) => {
            let text = replace_lone_surrogates(&String::from_utf8_lossy(body));
            serde_json::from_str(&text).ok()?
        }
    };
    Some(review.get_mut("request")?.take())
}

/// `text` with each `\uXXXX` escape of a lone UTF-16 surrogate made `\ufffd`.
pub fn replace_lone_surrogates(text: &str) -> String {
    fn surrogate(escape: &str) -> Option<u16> {
        let hex = escape.strip_prefix("\\u")?.get(..4)?;
        let unit = u16::from_str_radix(hex, 16).ok()?;
        (0xd800..=0xdfff).contains(&unit).then_some(unit)
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        match surrogate(rest) {
            Some(0xd800..=0xdbff) if surrogate(&rest[6..]).is_some_and(|low| low >= 0xdc00) => {
                out.push_str(&rest[..12]);
                rest = &rest[12..];
            }
            Some(_) => {
                out.push_str("\\ufffd");
                rest = &rest[6..];
            }
            None => {
                // Any other escape: copy the backslash and the character after it.
                let len = rest[1..].chars().next().map_or(0, char::len_utf8);
                out.push_str(&rest[..1 + len]);
                rest = &rest[1 + len..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Checks an encoded response; returns its `response` object.
fn check_response(out: &[u8], uid: &str, verdict: &Verdict) -> Value {
    let review: Value = serde_json::from_slice(out).unwrap_or_else(|e| {
        panic!(
            "the response body is not JSON ({e}): {}",
            String::from_utf8_lossy(out)
        )
    });
    assert_eq!(review["apiVersion"], REVIEW_API_VERSION, "{review}");
    assert_eq!(review["kind"], "AdmissionReview", "{review}");
    assert!(review.get("request").is_none(), "{review}");
    let response = review["response"].clone();
    assert!(response.is_object(), "no response: {review}");
    assert_eq!(response["uid"], uid, "{review}");
    let allowed = response["allowed"]
        .as_bool()
        .unwrap_or_else(|| panic!("allowed is not a bool: {review}"));
    match verdict {
        Verdict::Allow { warnings } => {
            assert!(allowed, "{review}");
            assert!(response.get("patch").is_none(), "{review}");
            check_warnings(&response, warnings);
        }
        Verdict::Patch { patch, warnings } => {
            assert!(allowed, "{review}");
            check_warnings(&response, warnings);
            if patch.operations().is_empty() {
                assert!(response.get("patch").is_none(), "{review}");
            } else {
                assert_eq!(response["patchType"], "JSONPatch", "{review}");
                let b64 = response["patch"]
                    .as_str()
                    .unwrap_or_else(|| panic!("patch is not a string: {review}"));
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .unwrap_or_else(|e| panic!("patch is not base64 ({e}): {review}"));
                let sent: json_patch::Patch = serde_json::from_slice(&bytes)
                    .unwrap_or_else(|e| panic!("patch is not a JSON Patch ({e}): {review}"));
                assert_eq!(&sent, patch.operations(), "{review}");
            }
        }
        Verdict::Deny { message } => {
            assert!(!allowed, "{review}");
            assert!(response.get("patch").is_none(), "{review}");
            assert!(!message.is_empty(), "{review}");
            assert_eq!(response["status"]["message"], message.as_str(), "{review}");
        }
    }
    response
}

fn check_warnings(response: &Value, warnings: &[String]) {
    if warnings.is_empty() {
        assert!(response.get("warnings").is_none(), "{response}");
    } else {
        assert_eq!(response["warnings"], json!(warnings), "{response}");
    }
}

/// The namespace `review::mutate` injects in: the request's, else the pod's,
/// else `default`.
fn review_namespace(request: &Value) -> String {
    request["namespace"]
        .as_str()
        .or(request["object"]["metadata"]["namespace"].as_str())
        .unwrap_or("default")
        .to_owned()
}

/// `/mutate` with any body: a 400, or a response for the request's uid; a
/// patch applies to the request's object and gives the injected pod, which
/// a second review leaves alone.
///
/// Returns what was decided: `bad` (a 400), `allowed`, `patched` or `denied`.
pub fn check_mutate(body: &[u8]) -> &'static str {
    let Some((request, verdict)) = decided(body, review::mutate(body, catalog(), injector()))
    else {
        return "bad";
    };
    let outcome = verdict.outcome();
    let Verdict::Patch { patch, .. } = verdict else {
        return outcome;
    };
    // Only pods being created are patched.
    assert_eq!(request["operation"], "CREATE", "{request}");
    let object = &request["object"];
    let mut patched = object.clone();
    json_patch::patch(&mut patched, patch.operations()).unwrap_or_else(|e| {
        panic!(
            "the patch does not apply to the request's object: {e}\npatch: {}\nobject: {object}",
            json!(patch.operations())
        )
    });
    // The apiserver's result is the pod a fresh injection of it gives.
    let pod: Pod = serde_json::from_value(object.clone()).expect("a patched object is a Pod");
    let namespace = review_namespace(&request);
    let Some(fresh) = fresh_injection(&pod, &namespace) else {
        panic!("patched, but injecting the pod alone does not inject it");
    };
    let result: Pod = serde_json::from_value(patched.clone())
        .unwrap_or_else(|e| panic!("the patched object is not a Pod ({e}): {patched}"));
    assert_eq!(
        result,
        fresh.apply(&pod).expect("the fresh patch applies"),
        "the patched object is not the injected pod"
    );
    // Reviewing the injected pod again changes nothing.
    let mut again = json!({
        "apiVersion": REVIEW_API_VERSION,
        "kind": "AdmissionReview",
        "request": request,
    });
    again["request"]["object"] = patched;
    let again = serde_json::to_vec(&again).expect("JSON");
    let decision = review::mutate(&again, catalog(), injector())
        .unwrap_or_else(|e| panic!("the injected pod's review is refused: {e}"));
    assert!(
        matches!(decision.verdict, Verdict::Allow { .. }),
        "the injected pod is not left alone: {:?}",
        decision.verdict
    );
    outcome
}

/// `/validate` with any body: a 400, or a response for the request's uid,
/// never a patch.
///
/// Returns what was decided: `bad` (a 400), `allowed` or `denied`.
pub fn check_validate(body: &[u8]) -> &'static str {
    let Some((request, verdict)) = decided(body, review::validate(body, catalog(), injector()))
    else {
        return "bad";
    };
    assert!(
        !matches!(verdict, Verdict::Patch { .. }),
        "/validate patched: {verdict:?}"
    );
    // Pods and workloads are only advised there: never refused.
    let kind = &request["kind"];
    let advised = matches!(
        (kind["group"].as_str(), kind["kind"].as_str()),
        (Some(""), Some("Pod"))
            | (
                Some("apps"),
                Some("Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet")
            )
            | (Some("batch"), Some("Job" | "CronJob"))
    ) && kind["version"] == "v1";
    assert!(
        !(advised && matches!(verdict, Verdict::Deny { .. })),
        "/validate refused a pod or workload: {verdict:?}"
    );
    verdict.outcome()
}

/// The checks every answer of either route passes: a 400 with a reason
/// (`None`), or a response for the request's uid as decided; then the raw
/// request and the verdict.
fn decided(body: &[u8], result: Result<Decision, BadReview>) -> Option<(Value, Verdict)> {
    let decision = match result {
        Ok(decision) => decision,
        Err(bad) => {
            check_bad(&bad);
            return None;
        }
    };
    let request = raw_request(body).expect("a decided review has a request");
    let uid = decision.facts.uid.clone();
    assert!(!uid.is_empty());
    assert_eq!(
        request["uid"],
        uid.as_str(),
        "the uid answered is not the request's"
    );
    let verdict = decision.verdict.clone();
    check_response(
        &decision.into_body().expect("a decided review encodes"),
        &uid,
        &verdict,
    );
    Some((request, verdict))
}

/// Fuzz bytes read as choices; an exhausted input reads as zeros.
pub struct Choices<'a> {
    data: &'a [u8],
}

impl<'a> Choices<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Choices { data }
    }

    fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// A number in `0..n` (`n` ≤ 256).
    fn below(&mut self, n: usize) -> usize {
        usize::from(self.byte()) % n
    }

    /// True one time in `n`.
    fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    fn i32(&mut self) -> i32 {
        i32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }

    /// Up to 24 raw bytes, as (lossy) UTF-8.
    fn raw_string(&mut self) -> String {
        let len = self.below(25).min(self.data.len());
        let (s, rest) = self.data.split_at(len);
        self.data = rest;
        String::from_utf8_lossy(s).into_owned()
    }

    /// One of `words`, mostly; sometimes raw bytes.
    fn word(&mut self, words: &[&str]) -> String {
        let i = self.below(words.len() + 1);
        match words.get(i) {
            Some(w) => (*w).to_owned(),
            None => self.raw_string(),
        }
    }
}

const MODELS: &[&str] = &[
    "qwen-mp2",
    "qwen-2x2",
    "qwen-gpu1",
    "llama-cpu",
    "llama-amd",
    "qwen-mp2",
    "qwen-2x2",
    "qwen-gpu1",
    "llama-cpu",
    "llama-amd",
    "unknown",
    "",
    " ",
    "Qwen-mp2",
    "team-a/qwen-mp2",
    "qwen-mp2.",
    "qwen..mp2",
];
const NAMESPACES: &[&str] = &[
    NAMESPACE, NAMESPACE, NAMESPACE, NAMESPACE, NAMESPACE, NAMESPACE, NAMESPACE, "default", "",
];
const CONTAINER_NAMES: &[&str] = &[
    "app",
    "app",
    "sidecar",
    "llm-pull",
    "llm-engine-0",
    "llm-engine-1",
    "llm-router",
    "llm-models",
];
const ENV_NAMES: &[&str] = &[
    "OLLAMA_HOST",
    "LLM_MODEL",
    "LLM_BASE_URL",
    "LLM_ENDPOINTS",
    "NVIDIA_VISIBLE_DEVICES",
    "MODE",
    "CUDA_VISIBLE_DEVICES",
];
const RESOURCE_NAMES: &[&str] = &[
    "cpu",
    "memory",
    "nvidia.com/gpu",
    "amd.com/gpu",
    "gpu.intel.com/i915",
    "example.com/gpu",
    "nvidia.com/mig-1g.10gb",
];
const QUANTITIES: &[&str] = &["1", "0", "2", "500m", "16Gi", "-1", "1e3", "abc", ""];
const PORTS: &[i32] = &[8080, 11434, 11435, 11436, 11437, 11438, 0, -1, 65535, 65536];
const VOLUME_NAMES: &[&str] = &["data", "llm-models", "cache"];
const CLAIM_NAMES: &[&str] = &["llm-gpu-0", "llm-gpu-1", "gpu", "llm-gpu-2"];
const RUNTIME_CLASSES: &[&str] = &["nvidia", "runc", "kata", ""];

fn container(c: &mut Choices, default_name: &str) -> Value {
    let name = if c.one_in(3) {
        c.word(CONTAINER_NAMES)
    } else {
        default_name.to_owned()
    };
    let mut container = json!({
        "name": name,
        "image": c.word(&["busybox:1.37", "ollama/ollama:0.12.6"]),
    });
    let env: Vec<Value> = (0..c.below(5))
        .map(|_| {
            let name = c.word(ENV_NAMES);
            match c.below(3) {
                0 => json!({"name": name}),
                1 => {
                    json!({"name": name, "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}})
                }
                _ => {
                    json!({"name": name, "value": c.word(&["x", "void", "http://127.0.0.1:11434"])})
                }
            }
        })
        .collect();
    if !env.is_empty() {
        container["env"] = json!(env);
    }
    if !c.one_in(3) {
        let mut resources = json!({});
        for field in ["requests", "limits"] {
            if c.one_in(2) {
                let map: serde_json::Map<String, Value> = (0..c.below(4))
                    .map(|_| (c.word(RESOURCE_NAMES), json!(c.word(QUANTITIES))))
                    .collect();
                resources[field] = Value::Object(map);
            }
        }
        if c.one_in(4) {
            resources["claims"] = json!([{"name": c.word(CLAIM_NAMES)}]);
        }
        container["resources"] = resources;
    }
    let ports: Vec<Value> = (0..c.below(3))
        .map(|_| {
            let port = if c.one_in(4) {
                c.i32()
            } else {
                PORTS[c.below(PORTS.len())]
            };
            json!({"containerPort": port})
        })
        .collect();
    if !ports.is_empty() {
        container["ports"] = json!(ports);
    }
    container
}

/// A pod from fuzz bytes: the captured pod with the fuzzer's choice of
/// annotations, containers, init containers, volumes, claims and runtime
/// class. Returns the pod's JSON and the namespace to inject in.
pub fn build_pod(data: &[u8]) -> (Value, String) {
    let mut c = Choices::new(data);
    let mut pod = captured_pod_review()["request"]["object"].clone();
    let namespace = c.word(NAMESPACES);
    let meta = &mut pod["metadata"];
    meta["namespace"] = json!(namespace);
    if c.one_in(4) {
        meta.as_object_mut()
            .expect("metadata")
            .remove("managedFields");
    }
    match c.below(8) {
        0 => {
            meta.as_object_mut()
                .expect("metadata")
                .remove("annotations");
        }
        1 => {
            meta["annotations"]
                .as_object_mut()
                .expect("annotations")
                .remove(MODEL_ANNOTATION);
        }
        _ => meta["annotations"][MODEL_ANNOTATION] = json!(c.word(MODELS)),
    }
    if c.one_in(8) {
        meta["annotations"][STATUS_ANNOTATION] = json!(c.word(&["{}", ""]));
    }
    if c.one_in(16) {
        pod.as_object_mut().expect("pod").remove("spec");
        return (pod, namespace);
    }
    let spec = &mut pod["spec"];
    let containers: Vec<Value> = (0..c.below(5))
        .map(|i| container(&mut c, &format!("app-{i}")))
        .collect();
    if containers.is_empty() && c.one_in(2) {
        spec.as_object_mut().expect("spec").remove("containers");
    } else if !(containers.is_empty() && c.one_in(2)) {
        spec["containers"] = json!(containers);
    }
    let init: Vec<Value> = (0..c.below(3))
        .map(|i| container(&mut c, &format!("init-{i}")))
        .collect();
    if !init.is_empty() {
        spec["initContainers"] = json!(init);
    }
    let volumes: Vec<Value> = (0..c.below(3))
        .map(|_| json!({"name": c.word(VOLUME_NAMES), "emptyDir": {}}))
        .collect();
    if !volumes.is_empty() {
        spec["volumes"] = json!(volumes);
    }
    let claims: Vec<Value> = (0..c.below(3))
        .map(|_| json!({"name": c.word(CLAIM_NAMES), "resourceClaimTemplateName": "gpu"}))
        .collect();
    if !claims.is_empty() {
        spec["resourceClaims"] = json!(claims);
    }
    if c.one_in(3) {
        spec["runtimeClassName"] = json!(c.word(RUNTIME_CLASSES));
    }
    (pod, namespace)
}

/// Injects `object` (a Pod or a PodTemplateSpec whose JSON is `raw`): the
/// patch applies to `raw` and to the typed object and gives the injected
/// object; the status annotation is the status returned; a second injection
/// is a no-op.
fn check_injected<P>(object: &P, raw: &Value, namespace: &str)
where
    P: PodLike + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let injected = match injector().inject(object, namespace, catalog()) {
        Err(error) => {
            assert!(!error.to_string().is_empty());
            return;
        }
        Ok(Outcome::NotRequested | Outcome::AlreadyInjected) => return,
        Ok(Outcome::Injected(injected)) => injected,
    };
    let fresh = fresh_injection(object, namespace).expect("a fresh injection injects too");
    assert_eq!(
        injected.patch.operations(),
        fresh.patch.operations(),
        "the remembered patch is not the fresh one"
    );
    let injected_object = injected.apply(object).expect("the patch applies");
    let after = serde_json::to_value(&injected_object).expect("JSON");
    for (what, before) in [
        (
            "the typed object",
            serde_json::to_value(object).expect("JSON"),
        ),
        ("the raw object", raw.clone()),
    ] {
        let mut patched = before.clone();
        json_patch::patch(&mut patched, injected.patch.operations()).unwrap_or_else(|e| {
            panic!(
                "the patch does not apply to {what}: {e}\npatch: {}\nobject: {before}",
                json!(injected.patch.operations())
            )
        });
        let patched: P = serde_json::from_value(patched)
            .unwrap_or_else(|e| panic!("{what}, patched, does not decode ({e})"));
        assert_eq!(
            serde_json::to_value(&patched).expect("JSON"),
            after,
            "{what}, patched, is not the injected object"
        );
    }
    let status = injected_object
        .pod_metadata()
        .and_then(|m| m.annotations.as_ref())
        .and_then(|a| a.get(STATUS_ANNOTATION))
        .expect("an injected object carries the status annotation");
    let status: InjectionStatus = serde_json::from_str(status).expect("the status is JSON");
    assert_eq!(status, *injected.status);
    // Uninjecting removes exactly what injection added.
    let mut undone = after.clone();
    llm_injector::inject::uninject::uninject_pod(&mut undone)
        .unwrap_or_else(|e| panic!("the injected object does not uninject: {e}"));
    assert_eq!(
        undone,
        serde_json::to_value(object).expect("JSON"),
        "uninjecting the injected object does not give the object back"
    );
    match injector().inject(&injected_object, namespace, catalog()) {
        Ok(Outcome::AlreadyInjected) => {}
        other => panic!("injecting the injected object again is not a no-op: {other:?}"),
    }
}

/// A pod from fuzz bytes ([`build_pod`]), injected as a Pod and as a pod
/// template, then sent through [`check_mutate`] in the captured review,
/// whose outcome it returns.
pub fn check_inject(data: &[u8]) -> &'static str {
    let (raw, namespace) = build_pod(data);
    let pod: Pod = serde_json::from_value(raw.clone()).expect("a built pod decodes");
    check_injected(&pod, &raw, &namespace);

    let mut template = json!({"metadata": raw["metadata"].clone()});
    if let Some(spec) = raw.get("spec") {
        template["spec"] = spec.clone();
    }
    let typed: PodTemplateSpec =
        serde_json::from_value(template.clone()).expect("a built template decodes");
    check_injected(&typed, &template, &namespace);

    let mut review = captured_pod_review().clone();
    review["request"]["namespace"] = json!(namespace);
    review["request"]["object"] = raw;
    check_mutate(&serde_json::to_vec(&review).expect("JSON"))
}
