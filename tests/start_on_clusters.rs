//! What makes an injected pod start and work on common clusters (issue 13),
//! through the library: client env names and their order, proxy sidecars,
//! classic meshes, restricted defaults, and the warnings for the traps.

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use llm_injector::crd::{LLMEngine, LLMModel};
use llm_injector::{Catalog, Injector, Outcome};
use serde_json::{Value, json};

fn inject(engine: Value, model: Value, spec: Value) -> (PodSpec, Vec<String>) {
    let engine: LLMEngine = serde_json::from_value(json!({
        "apiVersion": "llm.injector.dev/v1alpha1", "kind": "LLMEngine",
        "metadata": {"name": "e", "namespace": "t"}, "spec": engine}))
    .unwrap();
    let mut model_spec = json!({"model": "qwen3:8b", "engineRef": {"name": "e"}});
    model_spec
        .as_object_mut()
        .unwrap()
        .extend(model.as_object().unwrap().clone());
    let model: LLMModel = serde_json::from_value(json!({
        "apiVersion": "llm.injector.dev/v1alpha1", "kind": "LLMModel",
        "metadata": {"name": "m", "namespace": "t"}, "spec": model_spec}))
    .unwrap();
    let pod: Pod = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "t", "annotations": {"llm.injector.dev/model": "m"}},
        "spec": spec}))
    .unwrap();
    let mut catalog = Catalog::new();
    catalog.insert_engine(engine);
    catalog.insert_model(model);
    match Injector::default().inject(&pod, "t", &catalog) {
        Ok(Outcome::Injected(i)) => (i.apply(&pod).unwrap().spec.unwrap(), i.warnings),
        other => panic!("not injected: {other:?}"),
    }
}

fn container<'a>(spec: &'a PodSpec, name: &str) -> &'a Container {
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no container {name}"))
}

fn env_names(c: &Container) -> Vec<(&str, &str)> {
    c.env
        .iter()
        .flatten()
        .map(|e| (e.name.as_str(), e.value.as_deref().unwrap_or("<from>")))
        .collect()
}

#[test]
fn client_env_comes_first_with_standard_names_and_client_env() {
    let (spec, warnings) = inject(
        json!({}),
        json!({"clientEnv": [
            {"name": "LITELLM_API_BASE", "value": "$(OPENAI_BASE_URL)"},
            {"name": "OPENAI_API_KEY", "valueFrom": {"secretKeyRef": {"name": "k", "key": "key"}}}]}),
        json!({"containers": [
            {"name": "app", "image": "a", "env": [{"name": "MY_URL", "value": "$(LLM_BASE_URL)/chat"}]},
            {"name": "istio-proxy", "image": "proxy", "securityContext": {"runAsUser": 1337}}]}),
    );
    assert_eq!(
        env_names(container(&spec, "app")),
        [
            ("OLLAMA_HOST", "http://127.0.0.1:11434"),
            ("OLLAMA_BASE_URL", "http://127.0.0.1:11434"),
            ("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1"),
            ("OPENAI_API_KEY", "<from>"),
            ("LLM_MODEL", "qwen3:8b"),
            ("LLM_BASE_URL", "http://127.0.0.1:11434/v1"),
            ("LLM_ENDPOINTS", "http://127.0.0.1:11434"),
            ("LITELLM_API_BASE", "$(OPENAI_BASE_URL)"),
            ("NVIDIA_VISIBLE_DEVICES", "void"),
            ("MY_URL", "$(LLM_BASE_URL)/chat"),
        ]
    );
    assert!(
        container(&spec, "istio-proxy").env.is_none(),
        "a mesh proxy gets no LLM env"
    );
    // A classic Istio sidecar: llm-pull runs as the proxy's uid.
    let pull = container(&spec, "llm-pull");
    assert_eq!(
        pull.security_context.as_ref().unwrap().run_as_user,
        Some(1337)
    );
    let engine = container(&spec, "llm-engine-0");
    assert_eq!(
        engine.security_context.as_ref().unwrap().run_as_user,
        Some(65532)
    );
    assert!(warnings.is_empty(), "{warnings:?}");
}

#[test]
fn restricted_defaults_and_engine_override() {
    let (spec, _) = inject(
        json!({}),
        json!({}),
        json!({"containers": [{"name": "app", "image": "a"}]}),
    );
    for name in ["llm-pull", "llm-engine-0"] {
        let sc = container(&spec, name).security_context.clone().unwrap();
        assert_eq!(sc.run_as_non_root, Some(true), "{name}");
        assert_eq!(sc.allow_privilege_escalation, Some(false), "{name}");
        assert_eq!(sc.read_only_root_filesystem, Some(true), "{name}");
        assert_eq!(
            sc.capabilities.unwrap().drop,
            Some(vec!["ALL".to_owned()]),
            "{name}"
        );
        assert_eq!(
            sc.seccomp_profile.unwrap().type_,
            "RuntimeDefault",
            "{name}"
        );
    }
    let (spec, _) = inject(
        json!({"securityContext": {"runAsNonRoot": true}}),
        json!({}),
        json!({"containers": [{"name": "app", "image": "a"}]}),
    );
    let sc = container(&spec, "llm-engine-0")
        .security_context
        .clone()
        .unwrap();
    assert_eq!(
        (sc.run_as_non_root, sc.run_as_user),
        (Some(true), None),
        "the engine's replaces the default"
    );
}

#[test]
fn traps_are_warned() {
    // (engine, pod spec, a phrase the warnings must contain)
    let cases = [
        (
            json!({}),
            json!({"containers": [{"name": "app", "image": "a", "env": [{"name": "OLLAMA_HOST", "value": "http://ollama.shared:11434"}]}]}),
            "does not use the engine the pod reserves",
        ),
        (
            json!({"accelerator": {"vendor": "AMD"}}),
            json!({"containers": [{"name": "app", "image": "a"}]}),
            "supplementalGroups",
        ),
        (
            json!({"modelStore": {"persistentVolumeClaim": {"claimName": "models"}}}),
            json!({"containers": [{"name": "app", "image": "a"}]}),
            "fsGroup",
        ),
    ];
    for (engine, spec, phrase) in cases {
        let (_, warnings) = inject(engine, json!({}), spec);
        assert!(
            warnings.iter().any(|w| w.contains(phrase)),
            "{phrase}: {warnings:?}"
        );
    }
    // Set as the injected engine's address: no warning.
    let (_, warnings) = inject(
        json!({}),
        json!({}),
        json!({"containers": [{"name": "app", "image": "a", "env": [{"name": "OPENAI_BASE_URL", "value": "http://localhost:11434/v1"}]}]}),
    );
    assert!(warnings.is_empty(), "{warnings:?}");
}

#[test]
fn env_from_that_injected_env_would_shadow_is_warned() {
    // (envFrom, the container's own env, names the warning lists, or None)
    let cases = [
        (
            json!([{"configMapRef": {"name": "settings"}}]),
            json!([]),
            Some("ConfigMap \"settings\" (envFrom[0])"),
        ),
        (
            json!([{"secretRef": {"name": "keys"}, "prefix": "OPENAI_"}]),
            json!([]),
            Some(
                "Secret \"keys\" (envFrom[0], prefix \"OPENAI_\"), and env entries win over envFrom: a key there that becomes OPENAI_BASE_URL, OPENAI_API_KEY is replaced",
            ),
        ),
        // Two sources in one warning, the names in injection's order.
        (
            json!([{"configMapRef": {"name": "llm"}, "prefix": "LLM_"},
                   {"secretRef": {"name": "keys"}, "prefix": "OPENAI_"}]),
            json!([]),
            Some(
                "ConfigMap \"llm\" (envFrom[0], prefix \"LLM_\") and Secret \"keys\" (envFrom[1], prefix \"OPENAI_\"), and env entries win over envFrom: a key there that becomes OPENAI_BASE_URL, OPENAI_API_KEY, LLM_MODEL, LLM_BASE_URL, LLM_ENDPOINTS is replaced",
            ),
        ),
        // Both OPENAI_ names set by the container itself: nothing is injected
        // under the prefix, so nothing can be shadowed.
        (
            json!([{"secretRef": {"name": "keys"}, "prefix": "OPENAI_"}]),
            json!([{"name": "OPENAI_BASE_URL", "value": "http://127.0.0.1:11434/v1"},
                   {"name": "OPENAI_API_KEY", "value": "x"}]),
            None,
        ),
        // A prefix no injected name starts with.
        (
            json!([{"configMapRef": {"name": "settings"}, "prefix": "APP_"}]),
            json!([]),
            None,
        ),
    ];
    for (env_from, env, want) in cases {
        let (_, warnings) = inject(
            json!({}),
            json!({}),
            json!({"containers": [{"name": "app", "image": "a", "envFrom": env_from, "env": env}]}),
        );
        match want {
            Some(phrase) => assert!(
                warnings.iter().any(|w| w.contains(phrase)),
                "{phrase}: {warnings:?}"
            ),
            None => assert!(warnings.is_empty(), "{env_from}: {warnings:?}"),
        }
    }
}
