//! The ValidatingAdmissionPolicy of a namespace that gives, as admission
//! warnings (`validationActions: [Warn]`), what the webhook warns about a
//! pod it injects (`injection_warnings`), in its order: hostNetwork, user
//! containers that set an endpoint name elsewhere, envFrom keys injection
//! shadows, the ROCm groups, the model store's fsGroup, a model name too
//! long for a label. The texts come from the webhook's own functions:
//! static ones as they are, the others made for a pod of placeholders and
//! templated; what is the model's own is in variables chosen by the model
//! the pod asks for, so the rest is one text for every model.
//!
//! It runs on the injected pod, after mutation: the env entries injection
//! added are read back from the status annotation it wrote. All warnings
//! are one list (`variables.warnings`), and one validation gives one
//! warning, so the first [`WARNINGS`] of them are given: a validation costs
//! the apiserver about 50 µs even when it only reads a list's size. A
//! matchCondition that reads the pod alone ([`may_be_warned`]) lets most
//! injected pods through before any of that is computed.

use k8s_openapi::api::core::v1::{ConfigMapEnvSource, Container, EnvFromSource, PodSpec};
use serde_json::{Value, json};

use super::cel;
use super::message::{MARK, quoted, template};
use super::mutating::{MODEL, asks_for_one_of, model_variable};
use crate::inject::{
    ENDPOINT_NAMES, PROXY_CONTAINERS, Prepared, amd_groups_warning, container_env,
    endpoint_warnings, env_from_warnings, fs_group_warning, host_network_warning, local_addresses,
    long_name_warning,
};
use crate::{MODEL_ANNOTATION, STATUS_ANNOTATION};

/// How many warnings a pod is given at most.
pub const WARNINGS: usize = 8;

/// One model's part of its namespace's warning policy: what its warnings
/// say that is its own, as CEL string (or list) expressions.
#[derive(Debug, Clone)]
pub struct ModelWarnings {
    pub model: String,
    pub variables: Vec<(&'static str, String)>,
    /// The endpoint warning up to the value ([`endpoint_text`]).
    endpoint_head: String,
    /// The envFrom warning up to the names, and the names ([`env_from_text`]).
    env_from_head: Option<(String, String)>,
    /// The addresses of the model's engines a user container may point at.
    local_addresses: Vec<String>,
    /// Whether the model has a warning of its own (ROCm groups, the model
    /// store's fsGroup, a long name), given whatever the pod is.
    has_own_warning: bool,
}

impl ModelWarnings {
    pub fn of(prepared: &Prepared) -> Self {
        let plan = &prepared.plan;
        let (endpoint_head, endpoint_rest) = endpoint_text(prepared, ENDPOINT_NAMES[0]);
        let env_from = env_from_text(prepared);
        let env_from_rest = env_from
            .as_ref()
            .map(|(_, _, rest)| rest.clone())
            .unwrap_or_default();
        let text = |warning: &Option<String>| cel::string(warning.as_deref().unwrap_or_default());
        let addresses = local_addresses(plan);
        let groups = amd_groups_warning(plan);
        let fs_group = fs_group_warning(plan);
        let long_name = prepared
            .model_label
            .is_none()
            .then(|| long_name_warning(plan));
        ModelWarnings {
            model: plan.model_name.clone(),
            variables: vec![
                ("localAddresses", cel::string_list(&addresses)),
                ("endpointRest", cel::string(&endpoint_rest)),
                ("envFromRest", cel::string(&env_from_rest)),
                (
                    "hostNetworkWarning",
                    text(&Some(host_network_warning(plan))),
                ),
                ("groupsWarning", text(&groups)),
                ("fsGroupWarning", text(&fs_group)),
                ("longNameWarning", text(&long_name)),
            ],
            endpoint_head,
            env_from_head: env_from.map(|(head, names, _)| (head, names)),
            local_addresses: addresses,
            has_own_warning: groups.is_some() || fs_group.is_some() || long_name.is_some(),
        }
    }
}

/// The `spec` of the policy warning about the pods of a namespace whose
/// models are `models` (at least one).
pub fn namespace_spec(models: &[ModelWarnings], match_constraints: &Value) -> Value {
    let names: Vec<String> = models.iter().map(|m| m.model.clone()).collect();
    let mut variables = vec![
        model_variable(),
        json!({
            "name": "status",
            "expression": format!("object.metadata.annotations[{}]", cel::string(STATUS_ANNOTATION)),
        }),
    ];
    for (index, (name, _)) in models[0].variables.iter().enumerate() {
        let branches: Vec<(&str, &str)> = models
            .iter()
            .map(|m| (m.model.as_str(), m.variables[index].1.as_str()))
            .collect();
        variables.push(json!({"name": name, "expression": cel::switch(MODEL, &branches)}));
    }
    // The heads are the same text for every model: the first one's.
    variables.push(json!({"name": "warnings", "expression": warnings(&models[0])}));
    let validations: Vec<Value> = (0..WARNINGS)
        .map(|k| {
            json!({
                "expression": format!("size(variables.warnings) <= {k}"),
                "messageExpression": format!("variables.warnings[{k}]"),
            })
        })
        .collect();
    json!({
        "failurePolicy": "Ignore",
        "matchConstraints": match_constraints,
        "matchConditions": [
            {"name": "asks-for-a-model-of-this-namespace", "expression": asks_for_one_of(&names)},
            {"name": "injected", "expression": format!("has(object.metadata.annotations) && {} in object.metadata.annotations", cel::string(STATUS_ANNOTATION))},
            {"name": "may-be-warned", "expression": may_be_warned(models)},
        ],
        "variables": variables,
        "validations": validations,
    })
}

/// CEL for a matchCondition: the pod may be warned about. It reads the pod
/// alone, no variable, and is true whenever `variables.warnings` is not
/// empty: hostNetwork, an endpoint name set to an address that is not the
/// engine of the pod's model, any envFrom, or a model with a warning of its
/// own. Most injected pods have none of these, and the apiserver then skips
/// the policy's variables, validations and messages, and the three
/// conversions of the pod they take: about 0.7 ms per pod
/// (docs/design/admission-policies-research.md, section 7).
fn may_be_warned(models: &[ModelWarnings]) -> String {
    let model = format!(
        "object.metadata.annotations[?{}].orValue(\"\")",
        cel::string(MODEL_ANNOTATION)
    );
    let lists: Vec<String> = models
        .iter()
        .map(|m| cel::string_list(&m.local_addresses))
        .collect();
    let branches: Vec<(&str, &str)> = models
        .iter()
        .zip(&lists)
        .map(|(m, list)| (m.model.as_str(), list.as_str()))
        .collect();
    let mut cases = vec![
        "has(object.spec.hostNetwork) && object.spec.hostNetwork".to_owned(),
        format!(
            "[{}].exists(addresses, object.spec.containers.exists(c, has(c.env) && c.env.exists(e, {})))",
            cel::switch(&model, &branches),
            elsewhere("addresses")
        ),
        "object.spec.containers.exists(c, has(c.envFrom))".to_owned(),
    ];
    let own: Vec<&str> = models
        .iter()
        .filter(|m| m.has_own_warning)
        .map(|m| m.model.as_str())
        .collect();
    if !own.is_empty() {
        cases.push(format!("{model} in {}", cel::string_list(own)));
    }
    cases.join("\n|| ")
}

/// CEL: every warning about the pod, in the webhook's order; `texts`
/// gives the heads of the per-container warnings.
fn warnings(texts: &ModelWarnings) -> String {
    let user = format!(
        "lists.range(size(object.spec.containers)).filter(i, !(object.spec.containers[i].name in {}))",
        cel::string_list(PROXY_CONTAINERS)
    );
    [
        "(has(object.spec.hostNetwork) && object.spec.hostNetwork ? [variables.hostNetworkWarning] : [])".to_owned(),
        format!(
            "{user}.map(i, has(object.spec.containers[i].env) ? object.spec.containers[i].env.filter(e, {elsewhere}).map(e, {message}) : []).flatten()",
            elsewhere = elsewhere("variables.localAddresses"),
            message = endpoint_message(&texts.endpoint_head),
        ),
        env_from_warnings_cel(&user, texts.env_from_head.as_ref()),
        "(variables.groupsWarning != \"\" && !(has(object.spec.securityContext) && has(object.spec.securityContext.supplementalGroups) && size(object.spec.securityContext.supplementalGroups) > 0) ? [variables.groupsWarning] : [])".to_owned(),
        "(variables.fsGroupWarning != \"\" && !(has(object.spec.securityContext) && has(object.spec.securityContext.fsGroup)) ? [variables.fsGroupWarning] : [])".to_owned(),
        "(variables.longNameWarning != \"\" ? [variables.longNameWarning] : [])".to_owned(),
    ]
    .join("\n+ ")
}

/// CEL, for env entry `e`: it sets an endpoint name to an address that is
/// not the injected engine's (`endpoint_warnings`), whose addresses are the
/// list `addresses`.
fn elsewhere(addresses: &str) -> String {
    format!(
        "e.name in {} && has(e.value) && !e.value.contains(\"$(\") && !{addresses}.exists(h, e.value.contains(h))",
        cel::string_list(ENDPOINT_NAMES)
    )
}

/// CEL: the endpoint warning for env entry `e` of container `i`, `head`
/// being [`endpoint_text`]'s for the first endpoint name (the text is the
/// same for every name but for the name itself).
fn endpoint_message(head: &str) -> String {
    let name = ENDPOINT_NAMES[0];
    let message = template(
        head,
        &[
            (
                &format!("{MARK:?}"),
                &quoted("object.spec.containers[i].name"),
            ),
            (
                &format!(" sets {name}="),
                &"(\" sets \" + e.name + \"=\")".to_owned(),
            ),
            (&format!("{:?}", format!("{MARK}VALUE")), &quoted("e.value")),
        ],
    );
    format!("{message} + variables.endpointRest")
}

/// CEL: the envFrom warning of each user container (`user`) whose envFrom
/// could hold a name injection added to it, read from the status annotation.
fn env_from_warnings_cel(user: &str, head: Option<&(String, String)>) -> String {
    let Some((head, names_written)) = head else {
        return "[]".to_owned();
    };
    let container = "object.spec.containers[i]";
    let marker = "('{\"container\":' + string(i) + ',\"names\":[')";
    let added = format!(
        "(variables.status.contains({marker}) ? variables.status.substring(variables.status.indexOf({marker}) + size({marker})).split(\"]\")[0].split(\",\").map(n, n.substring(1, size(n) - 1)) : [])"
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
    let sources_written = format!("ConfigMap {:?} (envFrom[0])", format!("{MARK}SOURCE"));
    let message = template(
        head,
        &[
            (&format!("{MARK:?}"), &quoted(&format!("{container}.name"))),
            (&sources_written, &sources),
            (names_written, &format!("{shadowed}.join(\", \")")),
        ],
    );
    format!(
        "{user}.filter(i, has({container}.envFrom) && size({shadowed}) > 0).map(i, {message} + variables.envFromRest)"
    )
}

/// The webhook's warning for a container setting `name` elsewhere, cut
/// after the value: the head names the pod's values (marked), the rest is
/// the model's own (a variable of [`ModelWarnings`]).
fn endpoint_text(prepared: &Prepared, name: &str) -> (String, String) {
    let value_mark = format!("{MARK}VALUE");
    let spec = PodSpec {
        containers: vec![Container {
            name: MARK.to_owned(),
            env: Some(vec![container_env(name, value_mark.clone())]),
            ..Default::default()
        }],
        ..Default::default()
    };
    let text = endpoint_warnings(&spec, &prepared.plan)
        .pop()
        .expect("a container pointing elsewhere is warned about");
    let written = format!("{value_mark:?}");
    let cut = text
        .find(&written)
        .map_or(text.len(), |at| at + written.len());
    (text[..cut].to_owned(), text[cut..].to_owned())
}

/// The webhook's envFrom warning for a container taking env from one
/// ConfigMap (marked), cut after the names it shadows: (head, the names as
/// written, the model's own rest); `None` when injection adds no env.
fn env_from_text(prepared: &Prepared) -> Option<(String, String, String)> {
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
    let becomes = "becomes ";
    let names_start = text.find(becomes)? + becomes.len();
    let names_end = names_start + text[names_start..].find(" is replaced")?;
    Some((
        text[..names_end].to_owned(),
        text[names_start..names_end].to_owned(),
        text[names_end..].to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(name: &str, port: u16, has_own_warning: bool) -> ModelWarnings {
        ModelWarnings {
            model: name.to_owned(),
            variables: Vec::new(),
            endpoint_head: String::new(),
            env_from_head: None,
            local_addresses: vec![format!("127.0.0.1:{port}")],
            has_own_warning,
        }
    }

    #[test]
    fn the_guard_reads_each_models_engines_and_lists_models_with_warnings_of_their_own() {
        let cases = [
            (
                vec![model("a", 11434, false), model("b", 11436, true)],
                Some(r#".orValue("") in ["b"]"#),
            ),
            (vec![model("a", 11434, false)], None),
        ];
        for (models, own) in cases {
            let guard = may_be_warned(&models);
            for m in &models {
                assert!(
                    guard.contains(&cel::string_list(&m.local_addresses)),
                    "{guard}"
                );
            }
            assert_eq!(
                guard.contains(r#".orValue("") in ["#),
                own.is_some(),
                "{guard}"
            );
            if let Some(own) = own {
                assert!(guard.contains(own), "{guard}");
            }
            for case in ["object.spec.hostNetwork", "has(c.envFrom)"] {
                assert!(guard.contains(case), "{guard}");
            }
        }
    }
}
