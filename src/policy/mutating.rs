//! The MutatingAdmissionPolicy of a namespace: one JSONPatch mutation, in
//! CEL, that adds to a pod exactly what `llm-injector inject` adds for the
//! model it asks for (`crate::inject::Prepared::build_patch`). What does not depend on the
//! pod (the injected containers, volumes, claims, the env user containers
//! get, the status fields) is taken from the same [`Prepared`] injection
//! and written as literals; what does (which containers get which env, the
//! lists the pod lacks, the uid of `llm-pull` under a classic mesh proxy,
//! the status annotation's `env`, `labels`, `runtimeClassName` and
//! `created`) is CEL over `object`, mirroring `PodShape::of` and
//! `Prepared::status_for`.

use serde_json::{Value, json};

use super::{REFUSED_ANNOTATION, cel, refusal};
use crate::inject::{
    GPU_RESOURCE_PREFIXES, GPU_RESOURCE_SUFFIX, InjectError, NO_GPU_ENV, PROXY_CONTAINERS,
    PROXY_DEFAULT_UIDS, Prepared, container_env,
};
use crate::{MODEL_ANNOTATION, MODEL_LABEL, STATUS_ANNOTATION};

/// A uid no pull container has, marking where the proxy's uid goes.
const UID_MARK: i64 = 1_999_999_937;

/// One model's part of its namespace's MutatingAdmissionPolicy.
#[derive(Debug, Clone)]
pub struct ModelMutation {
    /// The LLMModel's name.
    pub model: String,
    /// Its variables (the same names, in the same order, for every model).
    pub variables: Vec<(&'static str, String)>,
    /// The JSON Patch that injects it, as a CEL list of `JSONPatch`.
    pub patch: String,
    /// What the webhook would refuse in the pod (`refusal::refusals`).
    pub refusals: String,
}

/// The CEL of injecting `prepared`'s model into a pod of `namespace`.
pub fn model_mutation(prepared: &Prepared, namespace: &str) -> Result<ModelMutation, InjectError> {
    let mut variables = vec![
        ("wanted", wanted(prepared)),
        ("relevant", relevant(prepared)),
        // Per container, the names of `relevant` it sets itself (a
        // variable stands in for cel.bind, which admission CEL lacks).
        (
            "sets",
            "object.spec.containers.map(c, has(c.env) ? c.env.filter(e, e.name in variables.relevant).map(e, e.name) : [])".to_owned(),
        ),
        ("adds", adds(prepared)),
        ("proxyUids", proxy_uids()),
        (
            "hasModelLabel",
            format!(
                "has(object.metadata.labels) && {} in object.metadata.labels",
                cel::string(MODEL_LABEL)
            ),
        ),
        ("jsonNames", json_names(prepared)),
        ("created", created(prepared)),
    ];
    variables.push(("status", status(prepared)?));
    // What injection appends to the pod's lists, once each, for the patch
    // to read.
    let literals = |items: &[Value]| items.iter().map(cel::literal).collect::<Vec<_>>();
    variables.extend([
        ("initContainers", list(&init_container_literals(prepared)?)),
        ("volumes", list(&literals(&prepared.volumes))),
        ("resourceClaims", list(&literals(&prepared.claims))),
    ]);
    let patch = [
        metadata_operations(prepared),
        env_operations(),
        append_operations("initContainers"),
        append_operations("volumes"),
        if prepared.claims.is_empty() {
            "[]".to_owned()
        } else {
            append_operations("resourceClaims")
        },
        runtime_class_operation(prepared),
    ]
    .into_iter()
    .filter(|part| part != "[]")
    .map(|part| format!("({part})"))
    .collect::<Vec<_>>()
    .join("\n+ ");
    Ok(ModelMutation {
        model: prepared.plan.model_name.clone(),
        variables,
        patch,
        refusals: refusal::refusals(prepared, namespace),
    })
}

/// CEL: the model the pod asks for (the matchConditions make sure it has
/// the annotation).
pub const MODEL: &str = "variables.model";

/// The `variables` entry of [`MODEL`].
pub fn model_variable() -> Value {
    json!({
        "name": "model",
        "expression": format!("object.metadata.annotations[{}]", cel::string(MODEL_ANNOTATION)),
    })
}

/// CEL: the pod's annotation names one of `models`.
pub fn asks_for_one_of(models: &[String]) -> String {
    format!(
        "has(object.metadata.annotations) && object.metadata.annotations[?{}].orValue(\"\") in {}",
        cel::string(MODEL_ANNOTATION),
        cel::string_list(models)
    )
}

/// The `spec` of the MutatingAdmissionPolicy of a namespace whose models
/// are `models` (at least one), matching pods with `match_constraints`:
/// each variable and the patch chosen by the model the pod asks for. A pod
/// the webhook would refuse is not injected but marked with
/// [`REFUSED_ANNOTATION`] and the webhook's message, which the cluster's
/// validating policy refuses it with.
pub fn namespace_spec(models: &[ModelMutation], match_constraints: &Value) -> Value {
    let names: Vec<String> = models.iter().map(|m| m.model.clone()).collect();
    let mut variables = vec![model_variable()];
    let first = &models[0];
    for (index, (name, _)) in first.variables.iter().enumerate() {
        let branches: Vec<(&str, &str)> = models
            .iter()
            .map(|m| (m.model.as_str(), m.variables[index].1.as_str()))
            .collect();
        variables.push(json!({"name": name, "expression": cel::switch(MODEL, &branches)}));
    }
    let refusals: Vec<(&str, &str)> = models
        .iter()
        .map(|m| (m.model.as_str(), m.refusals.as_str()))
        .collect();
    variables.push(json!({"name": "refusals", "expression": cel::switch(MODEL, &refusals)}));
    let patches: Vec<(&str, &str)> = models
        .iter()
        .map(|m| (m.model.as_str(), m.patch.as_str()))
        .collect();
    let expression = format!(
        "size(variables.refusals) > 0\n? [JSONPatch{{op: \"add\", path: {}, value: variables.refusals[0]}}]\n: {}",
        cel::pointer(&["metadata", "annotations", REFUSED_ANNOTATION]),
        cel::switch(MODEL, &patches)
    );
    json!({
        "failurePolicy": "Fail",
        // The not-injected-yet condition makes a second run a no-op.
        "reinvocationPolicy": "Never",
        "matchConstraints": match_constraints,
        "matchConditions": [
            {"name": "asks-for-a-model-of-this-namespace", "expression": asks_for_one_of(&names)},
            {"name": "not-injected-yet", "expression": not_injected()},
        ],
        "variables": variables,
        "mutations": [{"patchType": "JSONPatch", "jsonPatch": {"expression": expression}}],
    })
}

/// CEL: the pod carries no status annotation.
pub fn not_injected() -> String {
    format!(
        "!has(object.metadata.annotations) || !({} in object.metadata.annotations)",
        cel::string(STATUS_ANNOTATION)
    )
}

/// The env every user container gets unless it sets the name.
fn wanted(prepared: &Prepared) -> String {
    let items: Vec<String> = prepared.user_env_json.iter().map(cel::literal).collect();
    format!("[{}]", items.join(", "))
}

/// Whether injection adds `NVIDIA_VISIBLE_DEVICES=void` to containers that
/// request no GPU: not when the model's own env sets that name
/// (`EnvAdditions::of`).
fn adds_no_gpu(prepared: &Prepared) -> bool {
    !prepared.user_env.iter().any(|v| v.name == NO_GPU_ENV.0)
}

/// The env names a container's own entries are looked up in: one map
/// lookup per entry (a nested `exists` per wanted name ran out of the
/// per-expression cost limit at about 15,000 entries: NOTES.md, pitfall 6).
fn relevant(prepared: &Prepared) -> String {
    let names: Vec<String> = env_names(prepared)
        .iter()
        .map(|name| format!("{}: true", cel::string(name)))
        .collect();
    format!("{{{}}}", names.join(", "))
}

fn env_names(prepared: &Prepared) -> Vec<String> {
    let mut names: Vec<String> = prepared.user_env.iter().map(|v| v.name.clone()).collect();
    if adds_no_gpu(prepared) {
        names.push(NO_GPU_ENV.0.to_owned());
    }
    names
}

/// Per user container (by index), the entries put before its own: the
/// wanted ones it does not set, then `NVIDIA_VISIBLE_DEVICES=void` unless it
/// sets that or requests a GPU (`requests_gpu`); none for a mesh proxy.
fn adds(prepared: &Prepared) -> String {
    // `requests_gpu`'s test of a resource name, in CEL.
    let gpu_key = GPU_RESOURCE_PREFIXES
        .iter()
        .map(|prefix| format!("k.startsWith({})", cel::string(prefix)))
        .chain([format!("k.endsWith({})", cel::string(GPU_RESOURCE_SUFFIX))])
        .collect::<Vec<_>>()
        .join(" || ");
    let no_gpu = if adds_no_gpu(prepared) {
        let void = serde_json::to_value(container_env(NO_GPU_ENV.0, NO_GPU_ENV.1))
            .expect("an EnvVar serialises");
        let void = cel::literal(&void);
        format!(
            r#"
  + ({name} in variables.sets[i]
     || (has(object.spec.containers[i].resources) && (
          (has(object.spec.containers[i].resources.limits) && object.spec.containers[i].resources.limits.exists(k, {gpu_key}))
       || (has(object.spec.containers[i].resources.requests) && object.spec.containers[i].resources.requests.exists(k, {gpu_key}))
       || (has(object.spec.containers[i].resources.claims) && size(object.spec.containers[i].resources.claims) > 0)))
     ? [] : [{void}])"#,
            name = cel::string(NO_GPU_ENV.0),
        )
    } else {
        String::new()
    };
    format!(
        "lists.range(size(object.spec.containers)).map(i,\n  object.spec.containers[i].name in {proxies} ? [] :\n  variables.wanted.filter(w, !(w.name in variables.sets[i])){no_gpu})",
        proxies = cel::string_list(PROXY_CONTAINERS),
    )
}

/// The uids of the pod's classic mesh proxies, in container order
/// (`classic_mesh_proxy_uid` takes the first).
fn proxy_uids() -> String {
    let default = PROXY_DEFAULT_UIDS
        .iter()
        .rev()
        .fold(String::new(), |otherwise, (name, uid)| {
            if otherwise.is_empty() {
                uid.to_string()
            } else {
                format!("(p.name == {} ? {uid} : {otherwise})", cel::string(name))
            }
        });
    format!(
        "object.spec.containers.filter(c, c.name in {}).map(p, has(p.securityContext) && has(p.securityContext.runAsUser) ? p.securityContext.runAsUser : {default})",
        cel::string_list(PROXY_CONTAINERS)
    )
}

/// Each env name as a JSON string, for the status annotation (CEL has no
/// JSON encoder, and `strings.quote` is not JSON).
fn json_names(prepared: &Prepared) -> String {
    let names: Vec<String> = env_names(prepared)
        .iter()
        .map(|name| format!("{}: {}", cel::string(name), cel::string(&json_string(name))))
        .collect();
    format!("{{{}}}", names.join(", "))
}

/// The lists and maps injection creates, as JSON strings (`status_for`'s
/// `created`; a pod always has metadata and the model annotation here).
fn created(prepared: &Prepared) -> String {
    let mut items = Vec::new();
    if prepared.model_label.is_some() {
        items.push(format!(
            "variables.hasModelLabel || has(object.metadata.labels) ? '' : {}",
            cel::string("\"metadata.labels\"")
        ));
    }
    for list in ["initContainers", "volumes"] {
        items.push(format!(
            "has(object.spec.{list}) ? '' : {}",
            cel::string(&format!("\"{list}\""))
        ));
    }
    if !prepared.claims.is_empty() {
        items.push(format!(
            "has(object.spec.resourceClaims) ? '' : {}",
            cel::string("\"resourceClaims\"")
        ));
    }
    format!("[\n  {}\n].filter(x, x != '')", items.join(",\n  "))
}

/// The status annotation: the fields that do not depend on the pod as
/// serde writes them, then `env`, `labels`, `runtimeClassName` and
/// `created` in `InjectionStatus`'s field order and omission rules.
fn status(prepared: &Prepared) -> Result<String, InjectError> {
    let head = serde_json::to_string(&*prepared.status)
        .map_err(|e| InjectError::Serialize(e.to_string()))?;
    let head = head
        .strip_suffix('}')
        .expect("a JSON object ends with }")
        .to_owned();
    let labels = match prepared.model_label {
        Some(_) => format!(
            "\n+ (variables.hasModelLabel ? '' : {})",
            cel::string(&format!(",\"labels\":[{}]", json_string(MODEL_LABEL)))
        ),
        None => String::new(),
    };
    let runtime_class = match &prepared.plan.runtime_class {
        Some(class) => format!(
            "\n+ (has(object.spec.runtimeClassName) ? '' : {})",
            cel::string(&format!(",\"runtimeClassName\":{}", json_string(class)))
        ),
        None => String::new(),
    };
    Ok(format!(
        r#"{head}
+ ',"env":[' + lists.range(size(object.spec.containers))
    .filter(i, size(variables.adds[i]) > 0)
    .map(i, '{{"container":' + string(i) + ',"names":['
      + variables.adds[i].map(e, variables.jsonNames[e.name]).join(',') + ']'
      + (has(object.spec.containers[i].env) ? '' : ',"createdList":true') + '}}')
    .join(',') + ']'{labels}{runtime_class}
+ (size(variables.created) > 0 ? ',"created":[' + variables.created.join(',') + ']' : '')
+ '}}'"#,
        head = cel::string(&head),
    ))
}

fn json_string(text: &str) -> String {
    serde_json::to_string(text).expect("a string serialises")
}

/// The status annotation and the model label.
fn metadata_operations(prepared: &Prepared) -> String {
    let status = format!(
        "[JSONPatch{{op: \"add\", path: {}, value: variables.status}}]",
        cel::pointer(&["metadata", "annotations", STATUS_ANNOTATION])
    );
    let Some(label) = &prepared.model_label else {
        return status;
    };
    format!(
        "{status}\n+ (variables.hasModelLabel ? [] : has(object.metadata.labels)\n  ? [JSONPatch{{op: \"add\", path: {}, value: {}}}]\n  : [JSONPatch{{op: \"add\", path: \"/metadata/labels\", value: {{{}: {}}}}}])",
        cel::pointer(&["metadata", "labels", MODEL_LABEL]),
        cel::string(label),
        cel::string(MODEL_LABEL),
        cel::string(label),
    )
}

/// Each user container's additions, before its own entries (one `add` per
/// entry at positions 0, 1, ...), or as a new list.
fn env_operations() -> String {
    r#"lists.range(size(object.spec.containers))
  .filter(i, size(variables.adds[i]) > 0)
  .map(i, has(object.spec.containers[i].env)
    ? lists.range(size(variables.adds[i])).map(k, JSONPatch{op: "add",
        path: "/spec/containers/" + string(i) + "/env/" + string(k), value: variables.adds[i][k]})
    : [JSONPatch{op: "add", path: "/spec/containers/" + string(i) + "/env", value: variables.adds[i]}])
  .flatten()"#
        .to_owned()
}

/// The items of variable `field` appended to the pod's list `field`, one
/// `add` each, or the list added whole where the pod has none: one
/// operation fewer per item, and the apiserver pays per operation
/// (converting each value to JSON). A list of CEL maps is a safe value; a
/// list of `Object.…{}` literals would panic the request
/// (kubernetes/kubernetes#142181, docs/design/prototypes/NOTES.md pitfall 1).
fn append_operations(field: &str) -> String {
    format!(
        "has(object.spec.{field})\n  ? variables.{field}.map(x, JSONPatch{{op: \"add\", path: {}, value: x}})\n  : [JSONPatch{{op: \"add\", path: {}, value: variables.{field}}}]",
        cel::pointer(&["spec", field, "-"]),
        cel::pointer(&["spec", field]),
    )
}

/// CEL: a list of `items` (CEL expressions), one per line.
fn list(items: &[String]) -> String {
    if items.is_empty() {
        return "[]".to_owned();
    }
    format!("[\n  {}\n]", items.join(",\n  "))
}

/// The init containers: `llm-pull` as the first classic mesh proxy's uid
/// when the pod has one (`classic_mesh_proxy_uid`), then the engines and
/// the router.
fn init_container_literals(prepared: &Prepared) -> Result<Vec<String>, InjectError> {
    let mut literals: Vec<String> = prepared.init_containers.iter().map(cel::literal).collect();
    let marked = cel::literal(&prepared.pull_container_as(UID_MARK)?);
    let mark = format!("dyn({UID_MARK})");
    if marked.matches(&mark).count() != 1 {
        return Err(InjectError::Serialize(
            "llm-pull's runAsUser could not be located in its container".to_owned(),
        ));
    }
    let as_proxy = marked.replace(&mark, "dyn(variables.proxyUids[0])");
    literals[0] = format!(
        "size(variables.proxyUids) == 0\n    ? {}\n    : {as_proxy}",
        literals[0]
    );
    Ok(literals)
}

/// `runtimeClassName`, set where the pod has none (a different one is refused).
fn runtime_class_operation(prepared: &Prepared) -> String {
    match &prepared.plan.runtime_class {
        Some(class) => format!(
            "has(object.spec.runtimeClassName) ? [] : [JSONPatch{{op: \"add\", path: \"/spec/runtimeClassName\", value: {}}}]",
            cel::string(class)
        ),
        None => "[]".to_owned(),
    }
}
