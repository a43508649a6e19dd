//! The status controller of `serve` in cluster mode: two `kube::runtime`
//! controllers that write the status of LLMModels and LLMEngines, as
//! [`crate::status`] computes it, with server-side apply under one field
//! manager, and a Kubernetes Event for each condition that changes. They
//! never change a pod.
//!
//! A model is reconciled when its spec changes, when an LLMEngine of its
//! namespace changes or goes, when the GPUs of the cluster's Nodes change
//! (the webhook's Node cache: `Fits` may read their memory labels), and
//! when what the status reads of a pod carrying its label changes (`server/triggers.rs`: our own status writes
//! wake nothing); an engine when it or a model of its namespace changes.
//! Each reconcile reads the engine and the models of the namespace from the
//! apiserver, and the pods from the cache of the watch that triggers on
//! them (updated before the trigger fires; pods are many, and a list per
//! reconcile would load the apiserver with every pod created), and writes
//! only a status that differs from the stored one. Triggers for one object
//! within 500 ms are one reconcile, so a burst of pods is a few reconciles,
//! not one per pod. A failed reconcile is retried after 1 s, doubling per failure
//! of that object up to 5 minutes; every object is checked again every 5
//! minutes anyway.
//!
//! With several replicas, only the holder of a Lease runs these controllers
//! ([`super::leader`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, Patch, PatchParams};
use kube::core::NamespaceResourceScope;
use kube::runtime::controller::{Action, Config, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use thiserror::Error;

use super::triggers::{changes, generation, pod_facts};
use super::{Metrics, NodeSnapshots};
use crate::MODEL_LABEL;
use crate::crd::{API_VERSION, LLMEngine, LLMModel};
use crate::nodes::NodeSnapshot;
use crate::status::{PodFacts, engine_status, model_status, noteworthy};

/// The field manager of every status write.
pub const FIELD_MANAGER: &str = "llm-injector-status";

/// How long a status stays unchecked without any event (a safety net).
const RESYNC: Duration = Duration::from_secs(300);
/// The first wait before retrying a failed reconcile; doubled per failure.
const RETRY_FIRST: Duration = Duration::from_secs(1);
/// The longest wait before retrying a failed reconcile.
const RETRY_MAX: Duration = Duration::from_secs(300);
/// Triggers of one object closer than this are one reconcile.
const DEBOUNCE: Duration = Duration::from_millis(500);

/// Why a reconcile failed.
#[derive(Debug, Error)]
#[error("{0}")]
pub struct ReconcileError(#[from] kube::Error);

struct Context {
    client: Client,
    /// The pods carrying the model label, as the trigger watch last saw them
    /// (metadata and conditions only: [`slim`]).
    pods: Store<Pod>,
    metrics: Arc<Metrics>,
    events: Recorder,
    /// The cluster's Nodes, for the `Fits` condition of models whose engine
    /// does not say how much memory its GPUs have.
    nodes: NodeSnapshots,
    /// Consecutive failures per object (`kind/namespace/name`), for the backoff.
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    /// Records a finished reconcile of `kind` and turns its result into the
    /// controller's next action.
    fn finish(
        &self,
        kind: &'static str,
        key: String,
        started: Instant,
        result: Result<&'static str, kube::Error>,
    ) -> Result<Action, ReconcileError> {
        let label = *result.as_ref().unwrap_or(&"error");
        self.metrics
            .reconcile(kind, label, started.elapsed().as_secs_f64());
        if result.is_ok() {
            self.failures
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&key);
        }
        result.map(|_| Action::requeue(RESYNC)).map_err(Into::into)
    }

    /// The wait before retrying `key`, which just failed once more.
    fn backoff(&self, key: String) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let failed = failures.entry(key).or_insert(0);
        *failed = failed.saturating_add(1);
        retry_delay(*failed)
    }
}

/// The wait before the retry that follows the `failures`-th failure in a
/// row: 1 s, 2 s, 4 s ... at most 5 minutes.
fn retry_delay(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    RETRY_FIRST.saturating_mul(1 << doublings).min(RETRY_MAX)
}

fn key_of<K: Resource>(kind: &str, object: &K) -> String {
    let meta = object.meta();
    format!(
        "{kind}/{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}

/// Runs both controllers until the process ends (or the task is aborted:
/// leadership lost). `identity` names this replica in the Events it writes;
/// every model is checked again when the Nodes' GPUs change (`nodes`).
pub async fn run(client: Client, metrics: Arc<Metrics>, identity: String, nodes: NodeSnapshots) {
    let reporter = Reporter {
        controller: "llm-injector".to_owned(),
        instance: Some(identity),
    };
    let (pod_store, pod_writer) = reflector::store();
    let context = Arc::new(Context {
        client: client.clone(),
        pods: pod_store,
        metrics,
        events: Recorder::new(client.clone(), reporter),
        failures: Mutex::default(),
        nodes: nodes.clone(),
    });
    let node_changes = futures::stream::unfold(nodes, |mut nodes| async move {
        nodes.changed().await.ok()?;
        Some(((), nodes))
    });
    let all = watcher::Config::default;
    let config = || Config::default().debounce(DEBOUNCE);

    let (model_store, model_writer) = reflector::store();
    let model_events = watcher(Api::<LLMModel>::all(client.clone()), all())
        .default_backoff()
        .reflect(model_writer);
    let engine_events = watcher(Api::<LLMEngine>::all(client.clone()), all()).default_backoff();
    let pod_events = watcher(Api::<Pod>::all(client.clone()), all().labels(MODEL_LABEL))
        .default_backoff()
        .modify(slim)
        .reflect(pod_writer);
    let models_naming = model_store.clone();
    let models = Controller::for_stream(changes(model_events, generation), model_store)
        .with_config(config())
        .watches_stream(
            changes(engine_events, generation),
            move |engine: LLMEngine| {
                let namespace = engine.namespace();
                let name = engine.name_any();
                models_naming
                    .state()
                    .into_iter()
                    .filter(|m| m.namespace() == namespace && m.spec.engine_ref.name == name)
                    .map(|m| ObjectRef::from_obj(&*m))
                    .collect::<Vec<_>>()
            },
        )
        .watches_stream(changes(pod_events, pod_facts), |pod: Pod| {
            let namespace = pod.namespace()?;
            let model = pod.labels().get(MODEL_LABEL)?.clone();
            Some(ObjectRef::<LLMModel>::new(&model).within(&namespace))
        })
        .reconcile_all_on(node_changes)
        .run(reconcile_model, retry_model, context.clone())
        .for_each(|_| async {});

    let (engine_store, engine_writer) = reflector::store();
    let engine_events = watcher(Api::<LLMEngine>::all(client.clone()), all())
        .default_backoff()
        .reflect(engine_writer);
    let model_events = watcher(Api::<LLMModel>::all(client), all()).default_backoff();
    let engines_beside = engine_store.clone();
    // A model changes the engines of its namespace: the one it names now and
    // the one it named before (which the event no longer says).
    let engines = Controller::for_stream(changes(engine_events, generation), engine_store)
        .with_config(config())
        .watches_stream(changes(model_events, generation), move |model: LLMModel| {
            let namespace = model.namespace();
            engines_beside
                .state()
                .into_iter()
                .filter(|e| e.namespace() == namespace)
                .map(|e| ObjectRef::from_obj(&*e))
                .collect::<Vec<_>>()
        })
        .run(reconcile_engine, retry_engine, context)
        .for_each(|_| async {});
    tracing::info!(
        field_manager = FIELD_MANAGER,
        "status controllers started for LLMModels and LLMEngines"
    );
    tokio::join!(models, engines);
}

/// What the cache keeps of a pod: the metadata the status reads (its
/// managed fields dropped) and the conditions; not the spec.
fn slim(pod: &mut Pod) {
    pod.spec = None;
    pod.metadata.managed_fields = None;
    if let Some(status) = pod.status.as_mut() {
        *status = k8s_openapi::api::core::v1::PodStatus {
            conditions: status.conditions.take(),
            ..Default::default()
        };
    }
}

fn now() -> Time {
    Time(Timestamp::now())
}

/// Writes `status` to the status subresource of `object` with server-side
/// apply, unless it equals `previous`, and publishes the Events of what
/// changed: `unchanged`, `written`, or `gone` when the object was deleted
/// meanwhile (nothing to write to, and nothing wrong).
async fn write_status<K, S>(
    context: &Context,
    object: &K,
    previous: Option<&S>,
    status: &S,
    conditions: fn(&S) -> &[Condition],
) -> Result<&'static str, kube::Error>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    S: serde::Serialize + PartialEq,
{
    if previous == Some(status) {
        return Ok("unchanged");
    }
    let namespace = object.namespace().unwrap_or_default();
    let name = object.name_any();
    let kind = K::kind(&());
    let patch = json!({"apiVersion": API_VERSION, "kind": kind, "status": status});
    let written = Api::<K>::namespaced(context.client.clone(), &namespace)
        .patch_status(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await;
    match written {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 404 => return Ok("gone"),
        Err(error) => return Err(error),
    }
    tracing::info!(%namespace, %name, %kind, "status written");
    let before = previous.map_or(&[][..], conditions);
    publish_transitions(context, object, before, conditions(status)).await;
    Ok("written")
}

async fn reconcile_model(
    model: Arc<LLMModel>,
    context: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let started = Instant::now();
    let result = write_model_status(&model, &context).await;
    context.finish("LLMModel", key_of("LLMModel", &*model), started, result)
}

/// Computes and, when it changed, writes the status of `model`
/// ([`write_status`]).
async fn write_model_status(
    model: &LLMModel,
    context: &Context,
) -> Result<&'static str, kube::Error> {
    let namespace = model.namespace().unwrap_or_default();
    let name = model.name_any();
    let client = &context.client;
    let engine_name = &model.spec.engine_ref.name;
    let engine = Api::<LLMEngine>::namespaced(client.clone(), &namespace)
        .get_opt(engine_name)
        .await?;
    // Only when it is missing: where else an engine of that name lives.
    let elsewhere: Vec<String> = match engine {
        Some(_) => Vec::new(),
        None => Api::<LLMEngine>::all(client.clone())
            .list(&ListParams::default().fields(&format!("metadata.name={engine_name}")))
            .await?
            .items
            .iter()
            .filter_map(|e| e.namespace())
            .collect(),
    };
    // The first reconciles wait for the pod cache's first list: a status
    // counting no pods meanwhile would be wrong, and flap.
    if context.pods.wait_until_ready().await.is_err() {
        tracing::warn!("the pod watch is gone: pods are not counted");
    }
    let pods: Vec<PodFacts> = context
        .pods
        .state()
        .iter()
        .filter(|pod| {
            pod.metadata.namespace.as_deref() == Some(namespace.as_str())
                && pod.labels().get(MODEL_LABEL) == Some(&name)
        })
        .filter_map(|pod| PodFacts::of(pod, &name))
        .collect();
    let nodes = context.nodes.borrow().clone();
    let status = model_status(
        model,
        engine.as_ref(),
        &elsewhere,
        &pods,
        model.status.as_ref(),
        &now(),
        nodes.as_deref().map_or(&[], NodeSnapshot::nodes),
    );
    // The policy controller's condition is its own (another field manager):
    // not part of what is compared here.
    let previous = model.status.clone().map(|mut previous| {
        previous
            .conditions
            .retain(|c| c.type_ != super::policy_controller::CONDITION);
        previous
    });
    write_status(context, model, previous.as_ref(), &status, |s| {
        &s.conditions
    })
    .await
}

async fn reconcile_engine(
    engine: Arc<LLMEngine>,
    context: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let started = Instant::now();
    let result = write_engine_status(&engine, &context).await;
    context.finish("LLMEngine", key_of("LLMEngine", &*engine), started, result)
}

/// Computes and, when it changed, writes the status of `engine`
/// ([`write_status`]).
async fn write_engine_status(
    engine: &LLMEngine,
    context: &Context,
) -> Result<&'static str, kube::Error> {
    let namespace = engine.namespace().unwrap_or_default();
    let name = engine.name_any();
    let client = &context.client;
    let models: Vec<String> = Api::<LLMModel>::namespaced(client.clone(), &namespace)
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|m| m.spec.engine_ref.name == name)
        .map(|m| m.name_any())
        .collect();
    let status = engine_status(engine, &models, engine.status.as_ref(), &now());
    write_status(context, engine, engine.status.as_ref(), &status, |s| {
        &s.conditions
    })
    .await
}

/// A Kubernetes Event for each condition change that deserves one
/// ([`noteworthy`]): `Normal` when it became true, `Warning` otherwise. An
/// Event that cannot be written is logged: it never fails the reconcile.
async fn publish_transitions<K: Resource<DynamicType = ()>>(
    context: &Context,
    object: &K,
    before: &[Condition],
    after: &[Condition],
) {
    for condition in noteworthy(before, after) {
        let event = Event {
            type_: if condition.status == "True" {
                EventType::Normal
            } else {
                EventType::Warning
            },
            reason: condition.reason.clone(),
            note: Some(event_note(condition)),
            action: "StatusChanged".to_owned(),
            secondary: None,
        };
        if let Err(error) = context
            .events
            .publish(&event, &object.object_ref(&()))
            .await
        {
            tracing::warn!(%error, reason = %condition.reason, "cannot write an Event");
        }
    }
}

/// The note of a condition's Event: within the 1 kB the API accepts, cut
/// at a character boundary.
fn event_note(condition: &Condition) -> String {
    let mut note = format!(
        "{} is {}: {}",
        condition.type_, condition.status, condition.message
    );
    if note.len() > 1000 {
        let cut = (0..=1000)
            .rev()
            .find(|&i| note.is_char_boundary(i))
            .unwrap_or(0);
        note.truncate(cut);
    }
    note
}

fn retry<K: Resource>(
    kind: &'static str,
    object: &K,
    error: &ReconcileError,
    context: &Context,
) -> Action {
    let key = key_of(kind, object);
    let wait = context.backoff(key.clone());
    tracing::warn!(object = %key, %error, retry_in = ?wait, "status reconcile failed");
    Action::requeue(wait)
}

fn retry_model(model: Arc<LLMModel>, error: &ReconcileError, context: Arc<Context>) -> Action {
    retry("LLMModel", &*model, error, &context)
}

fn retry_engine(engine: Arc<LLMEngine>, error: &ReconcileError, context: Arc<Context>) -> Action {
    retry("LLMEngine", &*engine, error, &context)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_notes_fit_the_api() {
        let condition = |message: String| Condition {
            type_: "Valid".to_owned(),
            status: "False".to_owned(),
            reason: "Invalid".to_owned(),
            message,
            observed_generation: None,
            last_transition_time: now(),
        };
        let short = event_note(&condition("too many GPUs".to_owned()));
        assert_eq!(short, "Valid is False: too many GPUs");
        // 3-byte characters across the cut.
        let long = event_note(&condition("é€".repeat(400)));
        assert!(long.len() <= 1000 && long.len() > 990, "{}", long.len());
        assert!(long.starts_with("Valid is False: é€"));
    }

    #[test]
    fn retries_back_off_per_failure() {
        let cases = [
            (0, 1),
            (1, 1),
            (2, 2),
            (3, 4),
            (8, 128),
            (9, 256),
            (10, 300),
            (u32::MAX, 300),
        ];
        for (failures, seconds) in cases {
            assert_eq!(
                retry_delay(failures),
                Duration::from_secs(seconds),
                "{failures}"
            );
        }
    }
}
