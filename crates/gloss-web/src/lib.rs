//! The Gloss web app for annotators, reviewers and project leads: static files embedded in the
//! binary and the JSON API they call, mounted on every coordinator's HTTP port.
//!
//! Depends on `gloss-coordinator` for the service layer (the same one the gRPC API uses) and
//! `gloss-proto` for the messages. It must never hold business rules of its own, and never
//! reference anything outside the cluster (clusters are often air-gapped).

mod api;
mod assets;
pub mod json;

use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use gloss_coordinator::Service;

/// The web app's routes: `/`, the app's pages, `/assets/*` and `/api/*`.
pub fn router(service: Arc<Service>) -> Router {
    Router::new()
        .route("/", get(assets::index))
        .route("/app", get(assets::index))
        .route("/app/*path", get(assets::index))
        .route("/assets/*path", get(assets::asset))
        .merge(api::routes())
        .with_state(service)
}
