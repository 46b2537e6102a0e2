//! The HTTP side of a coordinator: liveness, readiness and Prometheus metrics. (The web app
//! mounts here too.)

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::service::Service;

/// Routes served on the HTTP port.
pub fn router(service: Arc<Service>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(service)
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready when the Raft group has a leader and this node's state machine runs.
async fn readyz(State(service): State<Arc<Service>>) -> impl IntoResponse {
    let m = service.raft.metrics().borrow().clone();
    match (&m.running_state, m.current_leader) {
        (Ok(()), Some(leader)) => (StatusCode::OK, format!("ready (leader {leader})\n")),
        (Ok(()), None) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "no raft leader yet\n".to_string(),
        ),
        (Err(e), _) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("raft stopped: {e}\n"),
        ),
    }
}

async fn metrics(State(service): State<Arc<Service>>) -> impl IntoResponse {
    service.metrics.observe_raft(&service.raft);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        service.metrics.render(),
    )
}
