//! Injection without the webhook: admission policies that the apiserver
//! runs itself (admissionregistration.k8s.io/v1, Kubernetes 1.36+), rendered
//! from the same [`Prepared`](crate::inject::Prepared) injection as the
//! webhook's patch.
//!
//! For each LLMModel ([`model_policies`]):
//! - a MutatingAdmissionPolicy and its binding, whose one JSONPatch
//!   mutation adds what `llm-injector inject` adds (`mutating`);
//! - a ValidatingAdmissionPolicy and its binding that refuse, with the
//!   webhook's messages, the pods injection refuses (`refusal`).
//!
//! And one for the cluster ([`cluster_policies`]): pods asking for a model
//! that no policy injects are refused as the webhook refuses them.
//!
//! Policies are cluster-scoped: each is bound to its model's namespace by a
//! `namespaceSelector` on `kubernetes.io/metadata.name`, narrowed by the
//! namespaces injection is allowed in ([`PolicyOptions`]).
//! docs/design/admission-policies-research.md and
//! docs/design/prototypes/NOTES.md hold what a real kube-apiserver 1.36.3
//! taught the design.

mod cel;
mod message;
mod mutating;
mod refusal;
mod warning;

use std::collections::BTreeMap;

use serde_json::{Value, json};

pub use refusal::ModelState;

use crate::crd::{LLMEngine, LLMModel};
use crate::inject::{InjectError, InjectOptions, Prepared};
use crate::lookup::ModelLookup;

/// The API version of the policies.
pub const API_VERSION: &str = "admissionregistration.k8s.io/v1";
/// The label every generated policy and binding carries (`managed-by`).
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "llm-injector");
/// The annotation naming what a policy is for: `NAMESPACE/MODEL`, or
/// `cluster` for [`cluster_policies`].
pub const FOR_ANNOTATION: &str = "llm.injector.dev/policy-for";
/// The name of the cluster-wide policy and its binding.
pub const CLUSTER_POLICY: &str = "llm-injector.models-not-injected";

/// How policies are matched beyond the model's own namespace.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PolicyOptions {
    /// `matchExpressions` every namespace must meet too (the webhook's
    /// namespaceSelector: excluded namespaces, the opt-in label), as the
    /// JSON of a LabelSelector's `matchExpressions`.
    pub namespace_expressions: Vec<Value>,
}

/// The label a namespace opts in or out of injection with.
pub const NAMESPACE_INJECTION_LABEL: &str = "llm.injector.dev/injection";

impl PolicyOptions {
    /// The namespaces the chart's webhook injects in (its
    /// `llm-injector.namespaceSelector`): none of `excluded`, and labelled
    /// `llm.injector.dev/injection=enabled` with `opt_in`, else not
    /// `=disabled`.
    pub fn namespaces(excluded: &[String], opt_in: bool) -> Self {
        let mut expressions = Vec::new();
        if !excluded.is_empty() {
            expressions.push(json!({
                "key": "kubernetes.io/metadata.name",
                "operator": "NotIn",
                "values": excluded,
            }));
        }
        expressions.push(if opt_in {
            json!({"key": NAMESPACE_INJECTION_LABEL, "operator": "In", "values": ["enabled"]})
        } else {
            json!({"key": NAMESPACE_INJECTION_LABEL, "operator": "NotIn", "values": ["disabled"]})
        });
        PolicyOptions {
            namespace_expressions: expressions,
        }
    }
}

/// The objects that inject one model's pods, in the order they are to be
/// created (a binding after its policy).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelPolicies {
    /// The name of the mutating policy and of the refusing one, and of
    /// their bindings; the warning policy's is [`warning_policy_name`] of it.
    pub name: String,
    pub mutating: Value,
    pub mutating_binding: Value,
    /// Refuses what injection refuses (`validationActions: [Deny]`).
    pub validating: Value,
    pub validating_binding: Value,
    /// Warns where the webhook warns (`validationActions: [Warn]`).
    pub warning: Value,
    pub warning_binding: Value,
}

impl ModelPolicies {
    /// The objects, policies before their bindings.
    pub fn objects(&self) -> [&Value; 6] {
        [
            &self.mutating,
            &self.mutating_binding,
            &self.validating,
            &self.validating_binding,
            &self.warning,
            &self.warning_binding,
        ]
    }
}

/// The name of a model's warning policy, `name` being its other policies'.
pub fn warning_policy_name(name: &str) -> String {
    format!("{name}{WARNING_SUFFIX}")
}

const WARNING_SUFFIX: &str = ".warnings";

/// The name of the policies of `model` in `namespace`:
/// `llm-injector.NAMESPACE.MODEL` (a namespace has no dot, so no two models
/// share it); past 253 characters, cut and ended with a hash of the whole.
pub fn policy_name(namespace: &str, model: &str) -> String {
    let name = format!("llm-injector.{namespace}.{model}");
    if name.len() <= 253 {
        return name;
    }
    let hash = format!("{:016x}", fnv1a(name.as_bytes()));
    let mut cut = name[..253 - hash.len() - 1]
        .trim_end_matches(['.', '-'])
        .to_owned();
    cut.push('.');
    cut.push_str(&hash);
    cut
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The policies that inject `model` (served by `engine`) into the pods of
/// `namespace` that ask for it; the error injection gives for the pair when
/// it refuses it.
pub fn model_policies(
    model: &LLMModel,
    engine: &LLMEngine,
    namespace: &str,
    inject_options: &InjectOptions,
    options: &PolicyOptions,
) -> Result<ModelPolicies, InjectError> {
    let prepared = Prepared::new(model, engine, inject_options)?;
    let model_name = &prepared.plan.model_name;
    let name = policy_name(namespace, model_name);
    let matching = match_resources(options, Some(namespace));
    let metadata = metadata(&name, &format!("{namespace}/{model_name}"));
    let mutating = json!({
        "apiVersion": API_VERSION,
        "kind": "MutatingAdmissionPolicy",
        "metadata": metadata,
        "spec": mutating::spec(&prepared, namespace, &matching)?,
    });
    let validating = json!({
        "apiVersion": API_VERSION,
        "kind": "ValidatingAdmissionPolicy",
        "metadata": metadata,
        "spec": refusal::model_spec(&prepared, namespace, &name, &matching),
    });
    let warning_name = warning_policy_name(&name);
    let mut warning_metadata = metadata.clone();
    warning_metadata["name"] = Value::String(warning_name.clone());
    let warning = json!({
        "apiVersion": API_VERSION,
        "kind": "ValidatingAdmissionPolicy",
        "metadata": warning_metadata,
        "spec": warning::model_spec(&prepared, &matching),
    });
    let mut warning_binding = binding(
        "ValidatingAdmissionPolicyBinding",
        &warning_name,
        &warning_metadata,
        &matching,
    );
    warning_binding["spec"]["validationActions"] = json!(["Warn"]);
    Ok(ModelPolicies {
        mutating_binding: binding(
            "MutatingAdmissionPolicyBinding",
            &name,
            &metadata,
            &matching,
        ),
        validating_binding: binding(
            "ValidatingAdmissionPolicyBinding",
            &name,
            &metadata,
            &matching,
        ),
        mutating,
        validating,
        warning,
        warning_binding,
        name,
    })
}

/// The cluster-wide ValidatingAdmissionPolicy and its binding: pods asking
/// for a model that is not `Served` by its own policies are refused as the
/// webhook refuses them (`models` by namespace and name; an unknown name
/// gets the webhook's "not found", naming the namespace's models).
pub fn cluster_policies(
    models: &BTreeMap<(String, String), ModelState>,
    options: &PolicyOptions,
) -> [Value; 2] {
    let matching = match_resources(options, None);
    let metadata = metadata(CLUSTER_POLICY, "cluster");
    [
        json!({
            "apiVersion": API_VERSION,
            "kind": "ValidatingAdmissionPolicy",
            "metadata": metadata,
            "spec": refusal::cluster_spec(models, &matching),
        }),
        binding(
            "ValidatingAdmissionPolicyBinding",
            CLUSTER_POLICY,
            &metadata,
            &matching,
        ),
    ]
}

/// The policies of a set of models: each model's own, and the cluster's.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicySet {
    /// The models injection serves, in namespace then name order.
    pub models: Vec<ModelPolicies>,
    /// What became of every model: served, or refused and why.
    pub states: BTreeMap<(String, String), ModelState>,
    /// [`cluster_policies`] for them.
    pub cluster: [Value; 2],
}

impl PolicySet {
    /// Every object, each policy before its binding, the cluster's last.
    pub fn objects(&self) -> impl Iterator<Item = &Value> {
        self.models
            .iter()
            .flat_map(ModelPolicies::objects)
            .chain(self.cluster.iter())
    }
}

/// The policies of `models` (with their namespaces), their engines looked
/// up in `lookup`.
pub fn policy_set<'a, L: ModelLookup + ?Sized>(
    models: impl IntoIterator<Item = (&'a str, &'a LLMModel)>,
    lookup: &L,
    inject_options: &InjectOptions,
    options: &PolicyOptions,
) -> PolicySet {
    let mut set = PolicySet {
        models: Vec::new(),
        states: BTreeMap::new(),
        cluster: [Value::Null, Value::Null],
    };
    for (namespace, model) in models {
        let name = model.metadata.name.clone().unwrap_or_default();
        let engine_name = &model.spec.engine_ref.name;
        let rendered = match lookup.engine(namespace, engine_name) {
            None => Err(InjectError::MissingEngine {
                namespace: namespace.to_owned(),
                model: name.clone(),
                engine: engine_name.clone(),
            }),
            Some(engine) => model_policies(model, &engine, namespace, inject_options, options),
        };
        let state = match rendered {
            Ok(policies) => {
                set.models.push(policies);
                ModelState::Served
            }
            Err(error) => ModelState::Refused(error),
        };
        set.states.insert((namespace.to_owned(), name), state);
    }
    set.cluster = cluster_policies(&set.states, options);
    set
}

fn metadata(name: &str, for_what: &str) -> Value {
    json!({
        "name": name,
        "labels": {MANAGED_BY.0: MANAGED_BY.1},
        "annotations": {FOR_ANNOTATION: for_what},
    })
}

/// Pods being created in `namespace` (any, without one) among the
/// namespaces of `options`. Every field is written, defaults included, so
/// the stored object equals the rendered one.
fn match_resources(options: &PolicyOptions, namespace: Option<&str>) -> Value {
    let mut selector = serde_json::Map::new();
    if let Some(namespace) = namespace {
        selector.insert(
            "matchLabels".to_owned(),
            json!({"kubernetes.io/metadata.name": namespace}),
        );
    }
    if !options.namespace_expressions.is_empty() {
        selector.insert(
            "matchExpressions".to_owned(),
            Value::Array(options.namespace_expressions.clone()),
        );
    }
    json!({
        "matchPolicy": "Equivalent",
        "namespaceSelector": selector,
        "objectSelector": {},
        "resourceRules": [{
            "apiGroups": [""],
            "apiVersions": ["v1"],
            "operations": ["CREATE"],
            "resources": ["pods"],
            "scope": "Namespaced",
        }],
    })
}

fn binding(kind: &str, policy: &str, metadata: &Value, matching: &Value) -> Value {
    let mut spec = json!({"policyName": policy, "matchResources": matching});
    if kind == "ValidatingAdmissionPolicyBinding" {
        spec["validationActions"] = json!(["Deny"]);
    }
    json!({"apiVersion": API_VERSION, "kind": kind, "metadata": metadata, "spec": spec})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_names_table() {
        assert_eq!(policy_name("team-a", "qwen"), "llm-injector.team-a.qwen");
        assert_eq!(
            policy_name("team-a", "qwen.v2"),
            "llm-injector.team-a.qwen.v2"
        );
        let long = "m".repeat(253);
        let name = policy_name("team-a", &long);
        assert!(name.len() <= 253 - WARNING_SUFFIX.len(), "{name}");
        assert!(crate::validate::is_dns_subdomain(&warning_policy_name(
            &name
        )));
        assert!(crate::validate::is_dns_subdomain(&name), "{name}");
        assert_ne!(name, policy_name("team-a", &"m".repeat(252)));
    }
}
