//! The policy controller of `serve --injection-mode policy|both`: keeps, in
//! the cluster, the admission policies of [`crate::policy`] for every
//! LLMModel, so the apiserver injects pods itself (Kubernetes 1.36+).
//!
//! On every change of the server's LLMModel and LLMEngine caches (changes
//! within 500 ms are one) and every 5 minutes it renders the policies of
//! all models from those caches and makes the cluster hold exactly those: an object whose
//! rendering changed is applied (server-side, field manager
//! `llm-injector-policies`; a policy before its binding), one no namespace
//! needs any more is deleted (a binding before its policy). Policies are
//! cluster-scoped, so an owner reference to a namespaced LLMModel would
//! never collect them (the garbage collector refuses it): the set itself is
//! what follows the models. Each model's status gets a condition,
//! `InjectedByPolicy`, saying which policy injects its pods, or why none
//! does. With several replicas only the elected one runs it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

use super::ClusterCatalog;
use crate::crd::{API_VERSION, LLMModel};
use crate::inject::InjectOptions;
use crate::policy::{self, MANAGED_BY, ModelState, PolicyOptions, PolicySet};
use crate::status::next_condition;

/// The field manager of every policy and condition it writes.
pub const FIELD_MANAGER: &str = "llm-injector-policies";
/// The condition it writes on each LLMModel.
pub const CONDITION: &str = "InjectedByPolicy";
/// The annotation holding a hash of what was rendered, to skip unchanged objects.
const HASH_ANNOTATION: &str = "llm.injector.dev/rendered-hash";
/// How long the set stays unchecked without any event.
const RESYNC: Duration = Duration::from_secs(300);
/// Changes closer than this are one sync.
const DEBOUNCE: Duration = Duration::from_millis(500);
/// The wait after a failed sync.
const RETRY: Duration = Duration::from_secs(5);

/// The kinds it manages, policies before bindings.
const KINDS: [(&str, &str); 4] = [
    ("MutatingAdmissionPolicy", "mutatingadmissionpolicies"),
    ("ValidatingAdmissionPolicy", "validatingadmissionpolicies"),
    (
        "MutatingAdmissionPolicyBinding",
        "mutatingadmissionpolicybindings",
    ),
    (
        "ValidatingAdmissionPolicyBinding",
        "validatingadmissionpolicybindings",
    ),
];

fn api(client: &Client, kind: &str) -> Api<DynamicObject> {
    let plural = KINDS
        .iter()
        .find(|(k, _)| *k == kind)
        .map_or("", |(_, p)| *p);
    let resource = ApiResource {
        group: "admissionregistration.k8s.io".to_owned(),
        version: "v1".to_owned(),
        api_version: policy::API_VERSION.to_owned(),
        kind: kind.to_owned(),
        plural: plural.to_owned(),
    };
    Api::all_with(client.clone(), &resource)
}

/// Whether the apiserver serves MutatingAdmissionPolicy v1 (Kubernetes 1.36+).
async fn served(client: &Client) -> Result<bool, kube::Error> {
    let resources = client
        .list_api_group_resources("admissionregistration.k8s.io/v1")
        .await?;
    Ok(resources
        .resources
        .iter()
        .any(|r| r.name == "mutatingadmissionpolicies"))
}

/// Runs until aborted (leadership lost, shutdown), rendering from the
/// server's own caches of LLMModels and LLMEngines (`catalog`).
pub async fn run(
    client: Client,
    catalog: ClusterCatalog,
    inject_options: InjectOptions,
    options: PolicyOptions,
) {
    loop {
        let wait = match served(&client).await {
            Ok(true) => break,
            Ok(false) => {
                tracing::error!(
                    "the apiserver does not serve admissionregistration.k8s.io/v1 MutatingAdmissionPolicy (Kubernetes 1.36 and later do): --injection-mode policy cannot inject here; use --injection-mode webhook (checking again in 5 minutes)"
                );
                RESYNC
            }
            Err(error) => {
                tracing::warn!(%error, "cannot read the apiserver's admissionregistration.k8s.io/v1 resources; retrying");
                RETRY
            }
        };
        tokio::time::sleep(wait).await;
    }
    let mut changes = catalog.changes();
    if !catalog.synced().await {
        tracing::error!("the LLMModel and LLMEngine caches never listed: no policies rendered");
        return;
    }
    tracing::info!(
        field_manager = FIELD_MANAGER,
        "policy controller started: admission policies follow the LLMModels"
    );
    loop {
        changes.mark_unchanged();
        let wait = match sync(&client, &catalog, &inject_options, &options).await {
            Ok(summary) => {
                tracing::info!(%summary, "admission policies in sync");
                RESYNC
            }
            Err(error) => {
                tracing::warn!(%error, "admission policies not in sync; retrying");
                RETRY
            }
        };
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(wait) => {}
        }
        // Changes that follow within DEBOUNCE are the same sync.
        while let Ok(Ok(())) = tokio::time::timeout(DEBOUNCE, changes.changed()).await {}
    }
}

/// The hash of an object as rendered.
fn rendered_hash(object: &Value) -> String {
    let text = serde_json::to_string(object).unwrap_or_default();
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{hash:016x}")
}

/// Makes the cluster hold the policies of the cached models, and their
/// conditions; says what it did.
async fn sync(
    client: &Client,
    catalog: &ClusterCatalog,
    inject_options: &InjectOptions,
    options: &PolicyOptions,
) -> Result<String, SyncError> {
    let namespaced = catalog.models();
    let set = policy::policy_set(
        namespaced.iter().map(|(ns, m)| (ns.as_str(), &**m)),
        catalog,
        inject_options,
        options,
    );
    let mut existing: BTreeMap<(String, String), Option<String>> = BTreeMap::new();
    let selector = format!("{}={}", MANAGED_BY.0, MANAGED_BY.1);
    for (kind, _) in KINDS {
        for object in api(client, kind)
            .list(&ListParams::default().labels(&selector))
            .await?
        {
            let hash = object.annotations().get(HASH_ANNOTATION).cloned();
            existing.insert((kind.to_owned(), object.name_any()), hash);
        }
    }
    let (mut applied, mut deleted) = (0, 0);
    let mut wanted = BTreeSet::new();
    // What the apiserver refused, by the namespace the object is for (or
    // `cluster`): the other objects are still applied, and the models
    // concerned say why in their condition.
    let mut refused: BTreeMap<String, String> = BTreeMap::new();
    for object in set.objects() {
        let kind = object["kind"].as_str().unwrap_or_default().to_owned();
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let hash = rendered_hash(object);
        let key = (kind.clone(), name.clone());
        if existing.get(&key) != Some(&Some(hash.clone())) {
            let mut object = object.clone();
            object["metadata"]["annotations"][HASH_ANNOTATION] = Value::String(hash);
            let written = api(client, &kind)
                .patch(
                    &name,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&object),
                )
                .await;
            match written {
                Ok(_) => applied += 1,
                Err(kube::Error::Api(status)) => {
                    let scope = object["metadata"]["annotations"][policy::FOR_ANNOTATION]
                        .as_str()
                        .unwrap_or("cluster")
                        .to_owned();
                    tracing::error!(%kind, %name, error = %status.message, "the apiserver refused a policy");
                    refused
                        .entry(scope)
                        .or_insert(format!("{kind} {name}: {}", status.message));
                }
                Err(error) => return Err(error.into()),
            }
        }
        wanted.insert(key);
    }
    // Bindings before their policies.
    for (kind, _) in KINDS.iter().rev() {
        for (key, _) in existing.iter().filter(|(k, _)| k.0 == *kind) {
            if wanted.contains(key) {
                continue;
            }
            match api(client, kind)
                .delete(&key.1, &DeleteParams::default())
                .await
            {
                Ok(_) => deleted += 1,
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(error) => return Err(error.into()),
            }
        }
    }
    let written = write_conditions(client, &namespaced, &set, &refused).await?;
    let summary = format!(
        "{} model(s) served by policies, {} refused; {applied} object(s) applied, {deleted} deleted, {written} condition(s) written",
        set.served(),
        set.states.len() - set.served(),
    );
    match refused.into_iter().next() {
        None => Ok(summary),
        Some((_, error)) => Err(SyncError::Refused(format!(
            "{summary}; the apiserver refused {error}"
        ))),
    }
}

/// Why a sync did not finish.
#[derive(Debug, thiserror::Error)]
enum SyncError {
    #[error(transparent)]
    Kube(#[from] kube::Error),
    /// The apiserver refused an object (the rest was applied).
    #[error("{0}")]
    Refused(String),
}

/// The `InjectedByPolicy` condition of a model in `state`, `refused` being
/// why the apiserver refused its namespace's policies, if it did.
fn condition(
    model: &LLMModel,
    state: &ModelState,
    namespace: &str,
    refused: Option<&String>,
) -> Condition {
    let name = policy::policy_name(namespace);
    let (status, reason, message) = match state {
        ModelState::Served if refused.is_some() => (
            "False",
            "PolicyRefused",
            format!(
                "the apiserver refused this namespace's policy, so no policy injects this model's pods (they are refused as not injected): {}",
                refused.map_or("", String::as_str)
            ),
        ),
        ModelState::Served => (
            "True",
            "PolicyApplied",
            format!(
                "pods asking for this model are injected by MutatingAdmissionPolicy {name} (its namespace's), warned by ValidatingAdmissionPolicy {}, and refused where the webhook would refuse them by ValidatingAdmissionPolicy {} (each with its binding)",
                policy::warning_policy_name(&name),
                policy::CLUSTER_POLICY,
            ),
        ),
        ModelState::Refused(error) => (
            "False",
            "Refused",
            format!(
                "no policy injects this model: {error}; its pods are refused by ValidatingAdmissionPolicy {}",
                policy::CLUSTER_POLICY
            ),
        ),
    };
    Condition {
        type_: CONDITION.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message,
        observed_generation: model.metadata.generation,
        last_transition_time: Time(Timestamp::now()),
    }
}

/// Writes each model's condition where it changed; how many were written.
async fn write_conditions(
    client: &Client,
    models: &[(String, Arc<LLMModel>)],
    set: &PolicySet,
    refused: &BTreeMap<String, String>,
) -> Result<usize, kube::Error> {
    let mut written = 0;
    for (namespace, model) in models {
        let key = (namespace.clone(), model.name_any());
        let Some(state) = set.states.get(&key) else {
            continue;
        };
        let previous = model
            .status
            .as_ref()
            .map_or(&[][..], |s| s.conditions.as_slice());
        let next = next_condition(
            previous,
            condition(model, state, namespace, refused.get(namespace)),
        );
        if previous.contains(&next) {
            continue;
        }
        let patch = json!({
            "apiVersion": API_VERSION,
            "kind": "LLMModel",
            "status": {"conditions": [next]},
        });
        match Api::<LLMModel>::namespaced(client.clone(), namespace)
            .patch_status(
                &key.1,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await
        {
            Ok(_) => written += 1,
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(error) => return Err(error),
        }
    }
    Ok(written)
}
