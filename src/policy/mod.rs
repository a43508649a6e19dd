//! Injection without the webhook: admission policies that the apiserver
//! runs itself (admissionregistration.k8s.io/v1, Kubernetes 1.36+), rendered
//! from the same `Prepared` injection (`crate::inject`) as the
//! webhook's patch.
//!
//! For each namespace with LLMModels (`namespace_policies`):
//! - a MutatingAdmissionPolicy and its binding, whose one JSONPatch
//!   mutation adds what `llm-injector inject` adds for the model the pod
//!   asks for (`mutating`), or, for a pod the webhook would refuse, marks
//!   it with the webhook's message (`refusal`);
//! - a ValidatingAdmissionPolicy and its binding (`validationActions:
//!   [Warn]`) giving the webhook's warnings (`warning`).
//!
//! And one for the cluster ([`cluster_policies`]): a pod asking for a model
//! and not injected is refused as the webhook refuses it.
//!
//! One policy per namespace, not per model: the apiserver converts the pod
//! for every policy bound to its namespace, about 0.4 ms each, so policies
//! per model would make a pod's create slower with every model of its
//! namespace (docs/design/prototypes/NOTES.md, pitfall 9). Policies are
//! cluster-scoped: each is bound to its namespace by a `namespaceSelector`
//! on `kubernetes.io/metadata.name`, narrowed by the namespaces injection
//! is allowed in ([`PolicyOptions`]). docs/design/admission-policies-research.md
//! and docs/design/prototypes/NOTES.md hold what a real kube-apiserver 1.36.3
//! taught the design.

mod cel;
mod message;
mod mutating;
mod refusal;
mod warning;

use std::collections::BTreeMap;

use serde_json::{Value, json};

pub use refusal::ModelState;

use crate::crd::LLMModel;
use crate::inject::{InjectError, InjectOptions, Prepared, engine_of};
use crate::lookup::ModelLookup;

/// The API version of the policies.
pub const API_VERSION: &str = "admissionregistration.k8s.io/v1";
/// The label every generated policy and binding carries (`managed-by`).
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "llm-injector");
/// The annotation naming what a policy is for: its namespace, or `cluster`
/// for [`cluster_policies`].
pub const FOR_ANNOTATION: &str = "llm.injector.dev/policy-for";
/// The name of the cluster-wide policy and its binding (a dash where the
/// namespaces' have a dot, so no namespace's name can take it).
pub const CLUSTER_POLICY: &str = "llm-injector-models-not-injected";
/// The annotation a namespace's mutating policy puts, instead of injecting,
/// on a pod the webhook would refuse: the webhook's message, which the
/// cluster's policy refuses the pod with (so the pod is never stored).
pub const REFUSED_ANNOTATION: &str = "llm.injector.dev/refused";

/// `value` as a CEL literal that evaluates to the same JSON value, the way
/// the policies write what injection adds (maps and lists as `dyn`).
pub fn cel_literal(value: &Value) -> String {
    cel::literal(value)
}

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

/// The policies of one namespace, in the order they are to be created (a
/// binding after its policy).
#[derive(Debug, Clone, PartialEq)]
pub struct NamespacePolicies {
    pub namespace: String,
    /// The models they inject, sorted.
    pub models: Vec<String>,
    /// The name of the mutating policy and its binding ([`policy_name`]);
    /// the warning policy's is [`warning_policy_name`] of it.
    pub name: String,
    pub mutating: Value,
    pub mutating_binding: Value,
    /// Warns where the webhook warns (`validationActions: [Warn]`).
    pub warning: Value,
    pub warning_binding: Value,
}

impl NamespacePolicies {
    /// The objects, policies before their bindings.
    pub fn objects(&self) -> [&Value; 4] {
        [
            &self.mutating,
            &self.mutating_binding,
            &self.warning,
            &self.warning_binding,
        ]
    }
}

/// The name of the policies of `namespace`: `llm-injector.NAMESPACE`.
pub fn policy_name(namespace: &str) -> String {
    format!("llm-injector.{namespace}")
}

/// The name of a namespace's warning policy, `name` being its mutating one's.
pub fn warning_policy_name(name: &str) -> String {
    format!("{name}.warnings")
}

/// The policies that inject `models` (each prepared on its engine) into the
/// pods of `namespace` that ask for them; `models` is not empty.
pub(crate) fn namespace_policies(
    namespace: &str,
    models: &[Prepared],
    options: &PolicyOptions,
) -> Result<NamespacePolicies, InjectError> {
    let name = policy_name(namespace);
    let matching = match_resources(options, Some(namespace));
    let metadata = metadata(&name, namespace);
    let mutations = models
        .iter()
        .map(|prepared| mutating::model_mutation(prepared, namespace))
        .collect::<Result<Vec<_>, _>>()?;
    let mutating = json!({
        "apiVersion": API_VERSION,
        "kind": "MutatingAdmissionPolicy",
        "metadata": metadata,
        "spec": mutating::namespace_spec(&mutations, &matching),
    });
    let warning_name = warning_policy_name(&name);
    let warning_metadata = self::metadata(&warning_name, namespace);
    let warnings: Vec<warning::ModelWarnings> =
        models.iter().map(warning::ModelWarnings::of).collect();
    let warning = json!({
        "apiVersion": API_VERSION,
        "kind": "ValidatingAdmissionPolicy",
        "metadata": warning_metadata,
        "spec": warning::namespace_spec(&warnings, &matching),
    });
    let warning_binding = binding(
        "ValidatingAdmissionPolicyBinding",
        &warning_name,
        &warning_metadata,
        &matching,
        Some("Warn"),
    );
    Ok(NamespacePolicies {
        namespace: namespace.to_owned(),
        models: mutations.into_iter().map(|m| m.model).collect(),
        mutating_binding: binding(
            "MutatingAdmissionPolicyBinding",
            &name,
            &metadata,
            &matching,
            None,
        ),
        mutating,
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
            Some("Deny"),
        ),
    ]
}

/// The policies of a set of models: each namespace's, and the cluster's.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicySet {
    /// The namespaces with models injection serves, in name order.
    pub namespaces: Vec<NamespacePolicies>,
    /// What became of every model: served, or refused and why.
    pub states: BTreeMap<(String, String), ModelState>,
    /// [`cluster_policies`] for them.
    pub cluster: [Value; 2],
}

impl PolicySet {
    /// Every object, each policy before its binding, the cluster's first:
    /// it refuses the pods a namespace's policy marks as refused, so it must
    /// be there before them.
    pub fn objects(&self) -> impl Iterator<Item = &Value> {
        self.cluster
            .iter()
            .chain(self.namespaces.iter().flat_map(NamespacePolicies::objects))
    }

    /// How many models policies serve.
    pub fn served(&self) -> usize {
        self.namespaces.iter().map(|n| n.models.len()).sum()
    }
}

/// The policies of `models` (with their namespaces), their engines looked
/// up in `lookup`. A model injection refuses gets none: the cluster's
/// policy refuses its pods with the webhook's message.
pub fn policy_set<'a, L: ModelLookup + ?Sized>(
    models: impl IntoIterator<Item = (&'a str, &'a LLMModel)>,
    lookup: &L,
    inject_options: &InjectOptions,
    options: &PolicyOptions,
) -> PolicySet {
    let mut states = BTreeMap::new();
    let mut prepared: BTreeMap<String, Vec<Prepared>> = BTreeMap::new();
    for (namespace, model) in models {
        let name = model.metadata.name.clone().unwrap_or_default();
        let made = engine_of(lookup, namespace, &name, model)
            .and_then(|engine| Prepared::new(model, &engine, inject_options));
        let state = match made {
            Ok(made) => {
                prepared.entry(namespace.to_owned()).or_default().push(made);
                ModelState::Served
            }
            Err(error) => ModelState::Refused(error),
        };
        states.insert((namespace.to_owned(), name), state);
    }
    let mut namespaces = Vec::new();
    for (namespace, mut models) in prepared {
        models.sort_by(|a, b| a.plan.model_name.cmp(&b.plan.model_name));
        match namespace_policies(&namespace, &models, options) {
            Ok(policies) => namespaces.push(policies),
            // Not expected (the patch of a prepared injection serialises):
            // its models are refused with the reason rather than dropped.
            Err(error) => {
                for model in &models {
                    states.insert(
                        (namespace.clone(), model.plan.model_name.clone()),
                        ModelState::Refused(error.clone()),
                    );
                }
            }
        }
    }
    let cluster = cluster_policies(&states, options);
    PolicySet {
        namespaces,
        states,
        cluster,
    }
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

/// A binding of `kind` to `policy`; a validating one with its `action`.
fn binding(
    kind: &str,
    policy: &str,
    metadata: &Value,
    matching: &Value,
    action: Option<&str>,
) -> Value {
    let mut spec = json!({"policyName": policy, "matchResources": matching});
    if let Some(action) = action {
        spec["validationActions"] = json!([action]);
    }
    json!({"apiVersion": API_VERSION, "kind": kind, "metadata": metadata, "spec": spec})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_never_meet() {
        assert_eq!(policy_name("team-a"), "llm-injector.team-a");
        assert_eq!(
            warning_policy_name(&policy_name("team-a")),
            "llm-injector.team-a.warnings"
        );
        // The longest namespace name still makes a valid object name.
        let longest = "n".repeat(63);
        assert!(crate::validate::is_dns_subdomain(&warning_policy_name(
            &policy_name(&longest)
        )));
        // A namespace's names have a dot after the prefix; the cluster's has none.
        assert!(!CLUSTER_POLICY.starts_with("llm-injector."));
    }
}
