//! The Gloss web app for annotators, reviewers and project leads: static files embedded in the
//! binary and the JSON API they call, mounted on every coordinator's HTTP port.
//!
//! Depends on `gloss-coordinator` for the service layer (the same one the gRPC API uses) and
//! `gloss-proto` for the messages. It must never hold business rules of its own, and never
//! reference anything outside the cluster (clusters are often air-gapped).

mod api;
mod assets;
pub mod json;
mod sso;

use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use gloss_coordinator::Service;

/// The web app's routes: `/`, the app's pages, `/assets/*`, `/api/*` and the single sign-on
/// redirects under `/auth/oidc/`.
pub fn router(service: Arc<Service>) -> Router {
    Router::new()
        .route("/", get(assets::index))
        .route("/app", get(assets::index))
        .route("/app/*path", get(assets::index))
        .route("/assets/*path", get(assets::asset))
        .merge(api::routes())
        .merge(sso::routes())
        .layer(axum::middleware::from_fn_with_state(service.clone(), actor))
        .with_state(service)
}

/// Authenticates a signed request once and hands the caller to the handler, which checks the
/// role and passes the caller as the actor of the changes it makes (the audit log records it).
/// A request whose token is missing or refused reaches the handler, which answers with the
/// reason.
async fn actor(
    axum::extract::State(service): axum::extract::State<Arc<Service>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let token = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    let caller = match token {
        Some(t) => service.authenticate(&t).await.ok(),
        None => None,
    };
    match caller {
        // The handler finds the caller here instead of authenticating the token again.
        Some(c) => api::CALLER.scope(c, next.run(req)).await,
        None => next.run(req).await,
    }
}
