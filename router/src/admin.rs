//! The admin endpoint, plain HTTP: `/livez`, `/readyz` (200 while at least
//! one Ollama instance is in rotation and the router is not shutting down)
//! and `/metrics`. None of them changes state.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::metrics::Metrics;
use super::pool::Pool;
use super::proxy::OPENMETRICS;

/// What the admin routes read.
#[derive(Clone)]
pub struct AdminState {
    pub pool: Arc<Pool>,
    pub metrics: Arc<Metrics>,
    /// Set when the shutdown signal came: `/readyz` answers 503 from then on.
    pub shutting_down: Arc<AtomicBool>,
}

/// The admin routes.
pub fn admin_router(state: AdminState) -> axum::Router {
    axum::Router::new()
        .route("/livez", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn readyz(State(state): State<AdminState>) -> Response {
    if state.shutting_down.load(Ordering::Acquire) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: shutting down\n",
        )
            .into_response();
    }
    if state.pool.any_healthy() {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "not ready: no healthy Ollama instance: {}\n",
                state.pool.unhealthy_summary()
            ),
        )
            .into_response()
    }
}

async fn metrics(State(state): State<AdminState>) -> Response {
    (
        [(header::CONTENT_TYPE, OPENMETRICS)],
        state.metrics.encode(&state.pool),
    )
        .into_response()
}
