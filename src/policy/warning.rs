//! The ValidatingAdmissionPolicy of one model that gives, as admission
//! warnings (`validationActions: [Warn]`), what the webhook warns about a
//! pod it injects (`injection_warnings`): hostNetwork, user containers that
//! set an endpoint name elsewhere, envFrom keys injection would shadow, the
//! ROCm groups, the model store's fsGroup, a model name too long for a
//! label. The texts come from the webhook's own functions: static ones as
//! they are, the others made for a pod of placeholders and templated.
//!
//! It runs on the injected pod, after mutation: the env entries injection
//! added are read back from the status annotation it wrote. One validation
//! gives at most one warning, so per-container warnings are one validation
//! per container (the first [`WARNED_CONTAINERS`]) and endpoint name.

use k8s_openapi::api::core::v1::{ConfigMapEnvSource, Container, EnvFromSource, PodSpec};
use serde_json::{Value, json};

use super::cel;
use super::message::template;
use super::mutating::asks_for;
use crate::STATUS_ANNOTATION;
use crate::inject::{
    ENDPOINT_NAMES, PROXY_CONTAINERS, Prepared, amd_groups_warning, container_env,
    endpoint_warnings, env_from_warnings, fs_group_warning, host_network_warning,
    long_name_warning,
};

/// How many user containers (by index) get per-container warnings.
pub const WARNED_CONTAINERS: usize = 10;

/// A name no pod has, marking where the pod's value goes.
const MARK: &str = "LLMINJECTORMARK";

/// CEL: `expression` quoted as `{:?}` quotes ordinary text.
fn quoted(expression: &str) -> String {
    format!(r#"("\"" + {expression} + "\"")"#)
}

/// The `spec` of the policy warning about `prepared`'s pods.
pub fn model_spec(prepared: &Prepared, match_constraints: &Value) -> Value {
    let plan = &prepared.plan;
    let mut validations = vec![json!({
        "expression": "!has(object.spec.hostNetwork) || !object.spec.hostNetwork",
        "message": host_network_warning(plan),
    })];
    for index in 0..WARNED_CONTAINERS {
        for name in ENDPOINT_NAMES {
            validations.push(endpoint_validation(prepared, index, name));
        }
    }
    for index in 0..WARNED_CONTAINERS {
        if let Some(validation) = env_from_validation(prepared, index) {
            validations.push(validation);
        }
    }
    if let Some(message) = amd_groups_warning(plan) {
        validations.push(json!({
            "expression": "has(object.spec.securityContext) && has(object.spec.securityContext.supplementalGroups) && size(object.spec.securityContext.supplementalGroups) > 0",
            "message": message,
        }));
    }
    if let Some(message) = fs_group_warning(plan) {
        validations.push(json!({
            "expression": "has(object.spec.securityContext) && has(object.spec.securityContext.fsGroup)",
            "message": message,
        }));
    }
    if prepared.model_label.is_none() {
        validations.push(json!({"expression": "false", "message": long_name_warning(plan)}));
    }
    json!({
        "failurePolicy": "Ignore",
        "matchConstraints": match_constraints,
        "matchConditions": [
            {"name": "asks-for-this-model", "expression": asks_for(&plan.model_name)},
            {"name": "injected", "expression": format!("has(object.metadata.annotations) && {} in object.metadata.annotations", cel::string(STATUS_ANNOTATION))},
        ],
        "variables": [{
            "name": "status",
            "expression": format!("object.metadata.annotations[{}]", cel::string(STATUS_ANNOTATION)),
        }],
        "validations": validations,
    })
}

/// CEL: container `index`, unless the pod has fewer or it is a mesh proxy
/// (`false` then).
fn user_container(index: usize) -> String {
    format!(
        "size(object.spec.containers) > {index} && !(object.spec.containers[{index}].name in {})",
        cel::string_list(PROXY_CONTAINERS)
    )
}

/// Container `index` setting `name` to an address that is not one of the
/// injected engine's (`endpoint_warnings`).
fn endpoint_validation(prepared: &Prepared, index: usize, name: &str) -> Value {
    let plan = &prepared.plan;
    let ports: Vec<i32> = (0..plan.instances)
        .map(|i| plan.instance_port(i))
        .chain(plan.router.as_ref().map(|r| r.port))
        .collect();
    let local: Vec<String> = ports
        .iter()
        .flat_map(|port| {
            ["127.0.0.1", "localhost", "[::1]"]
                .into_iter()
                .map(move |host| format!("{host}:{port}"))
        })
        .collect();
    let container = format!("object.spec.containers[{index}]");
    let elsewhere = format!(
        "e.name == {} && has(e.value) && !e.value.contains(\"$(\") && !{}.exists(h, e.value.contains(h))",
        cel::string(name),
        cel::string_list(&local)
    );
    let value_mark = format!("{MARK}VALUE");
    let spec = PodSpec {
        containers: vec![Container {
            name: MARK.to_owned(),
            env: Some(vec![container_env(name, value_mark.clone())]),
            ..Default::default()
        }],
        ..Default::default()
    };
    let text = endpoint_warnings(&spec, plan)
        .pop()
        .expect("a container pointing elsewhere is warned about");
    let value = format!("{container}.env.filter(e, {elsewhere})[0].value");
    let message = template(
        &text,
        &[
            (&format!("{MARK:?}"), &quoted(&format!("{container}.name"))),
            (&format!("{value_mark:?}"), &quoted(&value)),
        ],
    );
    json!({
        "expression": format!("!({} && has({container}.env) && {container}.env.exists(e, {elsewhere}))", user_container(index)),
        "messageExpression": message,
    })
}

/// Container `index` taking env from a ConfigMap or Secret whose keys could
/// be names injection added to it (`env_from_warnings`); the names added
/// are read from the status annotation.
fn env_from_validation(prepared: &Prepared, index: usize) -> Option<Value> {
    let source_mark = format!("{MARK}SOURCE");
    let spec = PodSpec {
        containers: vec![Container {
            name: MARK.to_owned(),
            env_from: Some(vec![EnvFromSource {
                config_map_ref: Some(ConfigMapEnvSource {
                    name: source_mark.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            }]),
            ..Default::default()
        }],
        ..Default::default()
    };
    let text = env_from_warnings(&spec, &prepared.plan, &prepared.user_env).pop()?;
    // The sources and the names, as the webhook writes them for this pod.
    let sources_written = format!("ConfigMap {source_mark:?} (envFrom[0])");
    let (_, after_sources) = text.split_once(&sources_written)?;
    let names_start = after_sources.find("becomes ")? + "becomes ".len();
    let names_end = after_sources.find(" is replaced")?;
    let names_written = &after_sources[names_start..names_end];
    let container = format!("object.spec.containers[{index}]");
    let marker = format!("{{\"container\":{index},\"names\":[");
    let added = format!(
        "(variables.status.contains({m}) ? variables.status.substring(variables.status.indexOf({m}) + {len}).split(\"]\")[0].split(\",\").map(n, n.substring(1, size(n) - 1)) : [])",
        m = cel::string(&marker),
        len = marker.len()
    );
    let shadowed = format!(
        "{added}.filter(n, {container}.envFrom.exists(s, n.startsWith(s.?prefix.orValue(\"\"))))"
    );
    let prefix = format!("{container}.envFrom[j].?prefix.orValue(\"\")");
    let source = format!(
        "(has({c}.envFrom[j].configMapRef) ? \"ConfigMap \" + {cm} : has({c}.envFrom[j].secretRef) ? \"Secret \" + {secret} : \"a source\") + ({prefix} == \"\" ? \" (envFrom[\" + string(j) + \"])\" : \" (envFrom[\" + string(j) + \"], prefix \" + {quoted_prefix} + \")\")",
        c = container,
        cm = quoted(&format!("{container}.envFrom[j].configMapRef.name")),
        secret = quoted(&format!("{container}.envFrom[j].secretRef.name")),
        quoted_prefix = quoted(&prefix),
    );
    let sources = format!(
        "lists.range(size({container}.envFrom)).filter(j, {added}.exists(n, n.startsWith({prefix}))).map(j, {source}).join(\" and \")"
    );
    let message = template(
        &text,
        &[
            (&format!("{MARK:?}"), &quoted(&format!("{container}.name"))),
            (&sources_written, &sources),
            (names_written, &format!("{shadowed}.join(\", \")")),
        ],
    );
    Some(json!({
        "expression": format!("!({} && has({container}.envFrom) && size({shadowed}) > 0)", user_container(index)),
        "messageExpression": message,
    }))
}
