//! Refusing, with the webhook's messages, what injection refuses: per
//! model, the checks against the pod (`inject_prepared`: name collisions,
//! ports, runtimeClassName, the model label) as CEL ([`refusals`]), which
//! the namespace's mutating policy evaluates and, instead of injecting,
//! writes the first of into `REFUSED_ANNOTATION`; and the cluster's
//! ValidatingAdmissionPolicy, which refuses every pod asking for a model
//! and left without a status annotation: with that message, or as the
//! webhook refuses a name that is not one, an unknown model or a model that
//! breaks a rule. (A validating policy sees the pod after mutation, and one
//! bound policy fewer per namespace is one conversion of the pod fewer per
//! create: docs/design/prototypes/NOTES.md, pitfall 9.)

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::REFUSED_ANNOTATION;
use super::cel;
use super::message::{MARK, quoted, shown, template};
use super::mutating::{model_variable, not_injected};
use crate::inject::{InjectError, Prepared, check_model_name, pod_denial};
use crate::layout::INJECTED_VOLUMES;
use crate::{MODEL_ANNOTATION, MODEL_LABEL};

/// A port no plan listens on, marking where the pod's port goes.
const PORT_MARK: i32 = 1_999_999_937;

/// CEL: the pod's name as the mutating webhook saw it: `<unnamed>` for a
/// name the apiserver generated from `generateName` (after mutating
/// admission; it cuts the prefix to 58 characters, apimachinery's
/// names.go).
const POD_NAME: &str = r#"(object.metadata.?generateName.orValue("") != "" && object.metadata.name.startsWith(size(object.metadata.generateName) > 58 ? object.metadata.generateName.substring(0, 58) : object.metadata.generateName) ? "<unnamed>" : object.metadata.name)"#;

/// The webhook's denial of a pod of `namespace` for `error`, as CEL, with
/// `holes` (written form, CEL expression) for the pod's values in it.
fn denial(namespace: &str, error: &InjectError, holes: &[(&str, &str)]) -> String {
    let name_mark = format!("{MARK}NAME");
    let text = pod_denial(namespace, &name_mark, error);
    let mut all = vec![(name_mark.as_str(), POD_NAME)];
    all.extend_from_slice(holes);
    template(&text, &all)
}

/// CEL: the messages of everything the webhook would refuse in the pod,
/// in the order it checks (the first is its message); empty when it would
/// inject.
pub fn refusals(prepared: &Prepared, namespace: &str) -> String {
    let plan = &prepared.plan;
    let model = &plan.model_name;
    let marked = format!("{MARK:?}");
    let collision = |what: &'static str, item: &str| {
        let error = InjectError::NameCollision {
            what,
            name: MARK.to_owned(),
            model: model.clone(),
        };
        denial(
            namespace,
            &error,
            &[(&marked, &shown(&format!("{item}.name")))],
        )
    };
    let init_names = cel::string_list(&prepared.init_names);
    let mut parts = vec![
        format!(
            "object.spec.containers.filter(c, c.name in {init_names}).map(c, {})",
            collision("a container", "c")
        ),
        format!(
            "(has(object.spec.initContainers) ? object.spec.initContainers.filter(c, c.name in {init_names}).map(c, {}) : [])",
            collision("an init container", "c")
        ),
        format!(
            "(has(object.spec.volumes) ? object.spec.volumes.filter(v, v.name in {}).map(v, {}) : [])",
            cel::string_list(INJECTED_VOLUMES),
            collision("a volume", "v")
        ),
    ];
    if !prepared.claim_names.is_empty() {
        parts.push(format!(
            "(has(object.spec.resourceClaims) ? object.spec.resourceClaims.filter(r, r.name in {}).map(r, {}) : [])",
            cel::string_list(&prepared.claim_names),
            collision("a resource claim", "r")
        ));
    }
    let listeners: BTreeMap<i32, String> = (plan.port..=plan.last_port())
        .filter_map(|port| plan.listener_on(port).map(|l| (port, l)))
        .collect();
    let listener_map = format!(
        "{{{}}}",
        listeners
            .iter()
            .map(|(port, l)| format!("{port}: {}", cel::string(l)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let port_error = InjectError::PortInUse {
        container: MARK.to_owned(),
        port: PORT_MARK,
        listener: format!("{MARK}LISTENER"),
        model: model.clone(),
        first: plan.port,
        last: plan.last_port(),
    };
    let listener_mark = format!("{MARK}LISTENER");
    let port_mark = PORT_MARK.to_string();
    let listener_of = format!("{listener_map}[p.containerPort]");
    parts.push(format!(
        "(object.spec.containers + (has(object.spec.initContainers) ? object.spec.initContainers : [])).map(c, has(c.ports) ? c.ports.filter(p, p.containerPort in {listener_map}).map(p, {}) : []).flatten()",
        denial(
            namespace,
            &port_error,
            &[
                (&marked, &shown("c.name")),
                (&listener_mark, &listener_of),
                (&port_mark, "string(p.containerPort)"),
            ]
        )
    ));
    if let Some(wanted) = &plan.runtime_class {
        let error = InjectError::RuntimeClassConflict {
            pod: MARK.to_owned(),
            engine: plan.engine_name.clone(),
            wanted: wanted.clone(),
        };
        parts.push(format!(
            "(has(object.spec.runtimeClassName) && object.spec.runtimeClassName != {} ? [{}] : [])",
            cel::string(wanted),
            denial(
                namespace,
                &error,
                &[(&marked, &shown("object.spec.runtimeClassName"))]
            )
        ));
    }
    let label = format!("object.metadata.labels[{}]", cel::string(MODEL_LABEL));
    let error = InjectError::LabelConflict {
        label: MODEL_LABEL,
        value: MARK.to_owned(),
        model: model.clone(),
    };
    let differs = match &prepared.model_label {
        Some(value) => format!(" && {label} != {}", cel::string(value)),
        None => String::new(),
    };
    parts.push(format!(
        "(has(object.metadata.labels) && {} in object.metadata.labels{differs} ? [{}] : [])",
        cel::string(MODEL_LABEL),
        denial(namespace, &error, &[(&marked, &shown(&label))])
    ));
    parts.join("\n+ ")
}

/// What the cluster-wide policy knows of one LLMModel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelState {
    /// Injected by its own policies.
    Served,
    /// Injection refuses it, with this error (its engine is missing, or the
    /// pair breaks a rule).
    Refused(InjectError),
}

/// The `spec` of the cluster-wide ValidatingAdmissionPolicy that refuses,
/// with the webhook's messages, pods asking for a model no policy serves:
/// `models` by namespace and name.
pub fn cluster_spec(
    models: &BTreeMap<(String, String), ModelState>,
    match_constraints: &Value,
) -> Value {
    let key = "request.namespace + \"/\" + variables.model";
    let served: Vec<String> = models
        .iter()
        .filter(|(_, state)| **state == ModelState::Served)
        .map(|((ns, name), _)| {
            format!(
                "{}: {}",
                cel::string(&format!("{ns}/{name}")),
                cel::string(&super::policy_name(ns))
            )
        })
        .collect();
    let refused: Vec<String> = models
        .iter()
        .filter_map(|((ns, name), state)| match state {
            ModelState::Refused(error) => Some(format!(
                "{}: {}",
                cel::string(&format!("{ns}/{name}")),
                denial(ns, error, &[])
            )),
            ModelState::Served => None,
        })
        .collect();
    let mut names: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (ns, name) in models.keys() {
        names.entry(ns).or_default().push(name.clone());
    }
    // One message per namespace with models (it names them), one for the
    // others.
    let by_namespace: Vec<String> = names
        .into_iter()
        .map(|(ns, list)| format!("{}: {}", cel::string(ns), unknown_model(list)))
        .collect();
    let invalid_name = invalid_name_message();
    json!({
        "failurePolicy": "Fail",
        "matchConstraints": match_constraints,
        "matchConditions": [
            {"name": "asks-for-a-model", "expression": format!("has(object.metadata.annotations) && {} in object.metadata.annotations", cel::string(MODEL_ANNOTATION))},
            {"name": "not-injected", "expression": not_injected()},
        ],
        "variables": [
            model_variable(),
            {"name": "served", "expression": format!("{{{}}}", served.join(", "))},
            {"name": "refused", "expression": format!("{{{}}}", refused.join(",\n "))},
            {"name": "unknown", "expression": format!("{{{}}}", by_namespace.join(",\n "))},
            {"name": "invalidName", "expression": invalid_name},
        ],
        "validations": [{
            // Not injected: refused by its namespace's mutating policy (the
            // webhook's message in REFUSED_ANNOTATION), or not served by one.
            "expression": "false",
            "messageExpression": format!(
                "({key}) in variables.served && {marked} ? string(object.metadata.annotations[{refused}]) : variables.invalidName != \"\" ? variables.invalidName : ({key}) in variables.refused ? string(variables.refused[{key}]) : ({key}) in variables.served ? {not_run} : request.namespace in variables.unknown ? string(variables.unknown[request.namespace]) : {}",
                unknown_model(Vec::new()),
                marked = format!("{} in object.metadata.annotations", cel::string(REFUSED_ANNOTATION)),
                refused = cel::string(REFUSED_ANNOTATION),
                not_run = not_run(&format!("string(variables.served[{key}])")),
            ),
            "reason": "Forbidden",
        }],
    })
}

/// CEL: the message for a pod its namespace's mutating policy (named by
/// `policy`, CEL) should have injected and did not: the apiserver had not
/// loaded the policy yet.
fn not_run(policy: &str) -> String {
    let text = format!(
        "llm-injector: pod {MARK}NS/{MARK}NAME: LLMModel {MARK:?} is injected by MutatingAdmissionPolicy {:?}, which did not inject this pod (the apiserver loads a new or changed policy within seconds): create the pod again, and if it persists check that the policy and its binding exist",
        format!("{MARK}POLICY")
    );
    let mut holes = request_holes();
    holes.push((format!("{:?}", format!("{MARK}POLICY")), quoted(policy)));
    template(&text, &holes)
}

/// The marks of a message about the annotation's value in the request's
/// namespace, and their CEL.
fn request_holes() -> Vec<(String, String)> {
    let namespace = format!("{MARK}NS");
    vec![
        (format!("{MARK:?}"), shown("variables.model")),
        (format!("{namespace:?}"), quoted("request.namespace")),
        (namespace, "request.namespace".to_owned()),
        (format!("{MARK}NAME"), POD_NAME.to_owned()),
    ]
}

/// `error`'s denial of a pod in the request's namespace, as CEL; `value` is
/// how it quotes the annotation's value.
fn request_denial(error: &InjectError, value: &str) -> String {
    let text = pod_denial(&format!("{MARK}NS"), &format!("{MARK}NAME"), error);
    let mut holes = request_holes();
    holes[0].0 = value.to_owned();
    template(&text, &holes)
}

/// CEL: the webhook's message for a model not found, `available` being the
/// models of the namespace.
fn unknown_model(available: Vec<String>) -> String {
    let error = InjectError::UnknownModel {
        name: MARK.to_owned(),
        namespace: format!("{MARK}NS"),
        available,
    };
    request_denial(&error, &format!("{MARK:?}"))
}

/// CEL: the webhook's message for an annotation value that is not a model
/// name (`check_model_name`), or "".
fn invalid_name_message() -> String {
    // A value of each kind `check_model_name` refuses, and the CEL test
    // for that kind, in its order.
    let kinds = [
        ("", "variables.model.trim() == \"\""),
        ("a/b", "variables.model.contains(\"/\")"),
        (&*"a".repeat(254), "size(variables.model) > 253"),
        (
            "A",
            "!variables.model.matches(\"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$\")",
        ),
    ];
    let mut expression = "\"\"".to_owned();
    for (sample, test) in kinds.iter().rev() {
        let Err(error) = check_model_name(sample, &format!("{MARK}NS")) else {
            unreachable!("check_model_name refuses {sample:?}");
        };
        let message = request_denial(&error, &crate::inject::shown(sample));
        expression = format!("{test} ? {message}\n  : {expression}");
    }
    expression
}
