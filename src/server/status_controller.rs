//! The status controller of `serve` in cluster mode: two `kube::runtime`
//! controllers that write the status of LLMModels and LLMEngines, as
//! [`crate::status`] computes it, with server-side apply under one field
//! manager. They never change a pod.
//!
//! A model is reconciled when it changes, when an LLMEngine changes (the
//! models of its namespace that name it), and when a pod carrying its label
//! changes; an engine when it or a model naming it changes. Each reconcile
//! reads what it needs from the apiserver (the engine, the pods by label, the
//! models of the namespace), so it never acts on a cache that lags its
//! trigger, and writes only a status that differs from the stored one: the
//! write's own watch event finds nothing to change.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use thiserror::Error;

use super::Metrics;
use crate::MODEL_LABEL;
use crate::crd::{API_VERSION, LLMEngine, LLMModel};
use crate::status::{PodFacts, engine_status, model_status};

/// The field manager of every status write.
pub const FIELD_MANAGER: &str = "llm-injector-status";

/// How long a status stays unchecked without any event (a safety net).
const RESYNC: Duration = Duration::from_secs(300);
/// The wait before retrying a reconcile that failed.
const RETRY: Duration = Duration::from_secs(10);

/// Why a reconcile failed (retried after 10 s).
#[derive(Debug, Error)]
#[error("{0}")]
pub struct ReconcileError(#[from] kube::Error);

struct Context {
    client: Client,
    metrics: Arc<Metrics>,
}

/// Runs both controllers until the process ends.
pub async fn run(client: Client, metrics: Arc<Metrics>) {
    let context = Arc::new(Context {
        client: client.clone(),
        metrics,
    });
    let models = Controller::new(
        Api::<LLMModel>::all(client.clone()),
        watcher::Config::default(),
    );
    let model_store = models.store();
    let models = models
        .watches(
            Api::<LLMEngine>::all(client.clone()),
            watcher::Config::default(),
            move |engine: LLMEngine| {
                let namespace = engine.namespace().unwrap_or_default();
                let name = engine.name_any();
                model_store
                    .state()
                    .into_iter()
                    .filter(|m| {
                        m.namespace().as_deref() == Some(namespace.as_str())
                            && m.spec.engine_ref.name == name
                    })
                    .map(|m| ObjectRef::from_obj(&*m))
                    .collect::<Vec<_>>()
            },
        )
        .watches(
            Api::<Pod>::all(client.clone()),
            watcher::Config::default().labels(MODEL_LABEL),
            |pod: Pod| {
                let namespace = pod.namespace()?;
                let model = pod.labels().get(MODEL_LABEL)?.clone();
                Some(ObjectRef::<LLMModel>::new(&model).within(&namespace))
            },
        )
        .run(reconcile_model, retry_model, context.clone())
        .for_each(|_| async {});
    let engines = Controller::new(
        Api::<LLMEngine>::all(client.clone()),
        watcher::Config::default(),
    )
    .watches(
        Api::<LLMModel>::all(client),
        watcher::Config::default(),
        |model: LLMModel| {
            let namespace = model.namespace()?;
            Some(ObjectRef::<LLMEngine>::new(&model.spec.engine_ref.name).within(&namespace))
        },
    )
    .run(reconcile_engine, retry_engine, context)
    .for_each(|_| async {});
    tracing::info!(
        field_manager = FIELD_MANAGER,
        "status controllers started for LLMModels and LLMEngines"
    );
    tokio::join!(models, engines);
}

fn now() -> Time {
    Time(Timestamp::now())
}

/// Writes `status` to the status subresource of `name` with server-side apply.
async fn apply_status<K>(
    api: &Api<K>,
    kind: &str,
    name: &str,
    status: impl serde::Serialize,
) -> Result<(), kube::Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let patch = json!({"apiVersion": API_VERSION, "kind": kind, "status": status});
    api.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map(|_| ())
}

async fn reconcile_model(
    model: Arc<LLMModel>,
    context: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let started = Instant::now();
    let namespace = model.namespace().unwrap_or_default();
    let name = model.name_any();
    let client = &context.client;
    let engine = Api::<LLMEngine>::namespaced(client.clone(), &namespace)
        .get_opt(&model.spec.engine_ref.name)
        .await?;
    let selector = format!("{MODEL_LABEL}={name}");
    let pods: Vec<PodFacts> = Api::<Pod>::namespaced(client.clone(), &namespace)
        .list(&ListParams::default().labels(&selector))
        .await?
        .items
        .iter()
        .filter_map(|pod| PodFacts::of(pod, &name))
        .collect();
    let status = model_status(
        &model,
        engine.as_ref(),
        &pods,
        model.status.as_ref(),
        &now(),
    );
    let result = if model.status.as_ref() == Some(&status) {
        "unchanged"
    } else {
        let api = Api::<LLMModel>::namespaced(client.clone(), &namespace);
        apply_status(&api, "LLMModel", &name, &status).await?;
        tracing::info!(%namespace, model = %name, "LLMModel status written");
        "written"
    };
    context
        .metrics
        .reconcile("LLMModel", result, started.elapsed().as_secs_f64());
    Ok(Action::requeue(RESYNC))
}

async fn reconcile_engine(
    engine: Arc<LLMEngine>,
    context: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let started = Instant::now();
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
    let status = engine_status(&engine, &models, engine.status.as_ref(), &now());
    let result = if engine.status.as_ref() == Some(&status) {
        "unchanged"
    } else {
        let api = Api::<LLMEngine>::namespaced(client.clone(), &namespace);
        apply_status(&api, "LLMEngine", &name, &status).await?;
        tracing::info!(%namespace, engine = %name, "LLMEngine status written");
        "written"
    };
    context
        .metrics
        .reconcile("LLMEngine", result, started.elapsed().as_secs_f64());
    Ok(Action::requeue(RESYNC))
}

fn retry(kind: &'static str, name: &str, error: &ReconcileError, context: &Context) -> Action {
    tracing::warn!(kind, name, %error, "status reconcile failed; retrying");
    context.metrics.reconcile(kind, "error", 0.0);
    Action::requeue(RETRY)
}

fn retry_model(model: Arc<LLMModel>, error: &ReconcileError, context: Arc<Context>) -> Action {
    retry("LLMModel", &model.name_any(), error, &context)
}

fn retry_engine(engine: Arc<LLMEngine>, error: &ReconcileError, context: Arc<Context>) -> Action {
    retry("LLMEngine", &engine.name_any(), error, &context)
}
