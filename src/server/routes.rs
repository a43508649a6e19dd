//! The HTTP routes: `/mutate` (and `/validate`) on the TLS port, `/livez`,
//! `/readyz` and `/metrics` on the plain admin port. Handlers only read the
//! body, open the review's span and call the synchronous decision code.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::Metrics;
use super::review::{self, BadReview, Decision, Verdict};
use crate::lookup::ModelLookup;

/// Where LLMEngines and LLMModels come from at run time.
pub trait CatalogSource: ModelLookup + Send + Sync + 'static {
    /// Numbers of engines and models known.
    fn sizes(&self) -> (usize, usize);
}

impl CatalogSource for crate::Catalog {
    fn sizes(&self) -> (usize, usize) {
        (self.engine_count(), self.model_count())
    }
}

impl CatalogSource for super::catalog_files::FileCatalog {
    fn sizes(&self) -> (usize, usize) {
        self.current().sizes()
    }
}

impl CatalogSource for super::cluster::ClusterCatalog {
    fn sizes(&self) -> (usize, usize) {
        super::cluster::ClusterCatalog::sizes(self)
    }
}

/// What `/readyz` reports: ready once TLS is bound and the catalog synced,
/// and no longer from the moment shutdown starts.
#[derive(Debug, Default)]
pub struct Health {
    pub tls_bound: AtomicBool,
    pub catalog_synced: AtomicBool,
    pub shutting_down: AtomicBool,
}

impl Health {
    /// Ready to serve reviews, or the reasons it is not.
    pub fn readiness(&self) -> Result<(), Vec<&'static str>> {
        let mut not = Vec::new();
        if self.shutting_down.load(Ordering::Acquire) {
            not.push("shutting down");
        }
        if !self.tls_bound.load(Ordering::Acquire) {
            not.push("TLS listener not bound");
        }
        if !self.catalog_synced.load(Ordering::Acquire) {
            not.push("LLMEngine/LLMModel caches not synced");
        }
        if not.is_empty() { Ok(()) } else { Err(not) }
    }
}

/// State shared by all handlers.
#[derive(Clone)]
pub struct AppState {
    pub source: Arc<dyn CatalogSource>,
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    pub body_limit: usize,
    /// Injection, with the deployment's settings (the router image).
    pub injector: Arc<crate::inject::Injector>,
}

/// The webhook routes, served over TLS.
pub fn webhook_router(state: AppState) -> Router {
    Router::new()
        .route("/mutate", post(mutate))
        .route("/validate", post(validate))
        .with_state(state)
}

/// The admin routes, served over plain HTTP; none of them changes state.
pub fn admin_router(state: AppState) -> Router {
    Router::new()
        .route("/livez", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn readyz(State(state): State<AppState>) -> Response {
    match state.health.readiness() {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(reasons) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", reasons.join(", ")),
        )
            .into_response(),
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let (engines, models) = state.source.sizes();
    state.metrics.catalog_sizes(engines, models);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
}

/// Reads the whole body up to the limit; `Err` is the 413 response.
async fn read_body(body: Body, limit: usize) -> Result<Bytes, String> {
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|e| format!("request body unreadable or over the {limit}-byte limit: {e}"))
}

fn bad_request(status: StatusCode, reason: String) -> Response {
    let body = serde_json::json!({"error": reason}).to_string();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn mutate(State(state): State<AppState>, body: Body) -> Response {
    handle("mutate", state, body, |bytes, state| {
        review::mutate(bytes, state.source.as_ref(), &state.injector)
    })
    .await
}

/// Waits before deciding a refused LLMEngine deletion again. `kubectl
/// delete -f` of a model and its engine sends the engine's deletion
/// milliseconds after the model's, before the watch has told the cache that
/// the model is gone: the cache is given up to a second to catch up.
const ENGINE_DELETE_SETTLE: [Duration; 4] = [
    Duration::from_millis(100),
    Duration::from_millis(200),
    Duration::from_millis(300),
    Duration::from_millis(400),
];

async fn validate(State(state): State<AppState>, body: Body) -> Response {
    let started = Instant::now();
    let bytes = match read_body(body, state.body_limit).await {
        Ok(bytes) => bytes,
        Err(reason) => return too_large("validate", &state, reason),
    };
    let decide = || review::validate(&bytes, state.source.as_ref(), &state.injector);
    let mut decided = decide();
    for wait in ENGINE_DELETE_SETTLE {
        let refused_delete = decided.as_ref().is_ok_and(|d| {
            d.facts.kind == "LLMEngine"
                && d.facts.operation == "DELETE"
                && matches!(d.verdict, Verdict::Deny { .. })
        });
        if !refused_delete {
            break;
        }
        tokio::time::sleep(wait).await;
        decided = decide();
    }
    answer("validate", decided, &state, started)
}

/// Reads the body, decides with `decide` and answers: the same for both webhooks.
async fn handle(
    webhook: &'static str,
    state: AppState,
    body: Body,
    decide: impl FnOnce(&[u8], &AppState) -> Result<Decision, BadReview>,
) -> Response {
    let started = Instant::now();
    let bytes = match read_body(body, state.body_limit).await {
        Ok(bytes) => bytes,
        Err(reason) => return too_large(webhook, &state, reason),
    };
    answer(webhook, decide(&bytes, &state), &state, started)
}

fn too_large(webhook: &'static str, state: &AppState, reason: String) -> Response {
    state.metrics.bad_request(webhook, "body_too_large");
    tracing::warn!(webhook, %reason, "request refused");
    bad_request(StatusCode::PAYLOAD_TOO_LARGE, reason)
}

fn answer(
    webhook: &'static str,
    decided: Result<Decision, BadReview>,
    state: &AppState,
    started: Instant,
) -> Response {
    match decided {
        Ok(decision) => respond(webhook, decision, state, started),
        Err(bad) => refuse(webhook, &bad, state),
    }
}

fn refuse(webhook: &'static str, bad: &BadReview, state: &AppState) -> Response {
    state.metrics.bad_request(webhook, bad.metric_label());
    tracing::warn!(webhook, reason = %bad, "request refused");
    bad_request(StatusCode::BAD_REQUEST, bad.to_string())
}

/// Logs the review in its own span, counts it and encodes the response.
fn respond(
    webhook: &'static str,
    decision: Decision,
    state: &AppState,
    started: Instant,
) -> Response {
    let facts = &decision.facts;
    let outcome = decision.verdict.outcome();
    let span = tracing::info_span!(
        "review",
        webhook,
        uid = %facts.uid,
        kind = %facts.kind,
        namespace = %facts.namespace,
        name = %facts.name,
        operation = facts.operation,
        dry_run = facts.dry_run,
        outcome,
    );
    let _entered = span.enter();
    match &decision.verdict {
        review::Verdict::Deny { message } => tracing::info!(%message, "review denied"),
        review::Verdict::Patch { patch, .. } => {
            tracing::info!(operations = patch.operations().len(), "review patched")
        }
        review::Verdict::Allow { warnings } => tracing::debug!(?warnings, "review allowed"),
    }
    let kind = facts.kind.clone();
    let operation = facts.operation;
    let body = match decision.into_body() {
        Ok(body) => body,
        Err(error) => {
            // A 500 fails the call: the webhook's failurePolicy decides, as
            // for any other webhook failure, instead of an allowed pod.
            state.metrics.bad_request(webhook, "encode_failed");
            tracing::error!(%error, "review not answered");
            return bad_request(StatusCode::INTERNAL_SERVER_ERROR, error.to_string());
        }
    };
    state.metrics.review(
        webhook,
        &kind,
        operation,
        outcome,
        started.elapsed().as_secs_f64(),
    );
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}
