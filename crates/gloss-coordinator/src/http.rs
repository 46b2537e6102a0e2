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
    match crate::metrics::state_view(&service.state_db()) {
        Ok(view) => service.metrics.observe_state(&view),
        Err(e) => {
            tracing::warn!(error = %e, "metrics: cannot read the state; gauges left as they were")
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        service.metrics.render(),
    )
}

/// Serves `router` over TLS on `listener` until `stop` resolves, then lets open connections
/// finish. A failed handshake ends that connection only.
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    router: Router,
    stop: impl std::future::Future<Output = ()>,
) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto;
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut stop = std::pin::pin!(stop);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "http: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, router) = (acceptor.clone(), router.clone());
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(tls) => tls,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "http: TLS handshake failed");
                    return;
                }
            };
            let service = hyper_util::service::TowerToHyperService::new(router);
            let builder = auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(%peer, error = %e, "http: connection ended");
            }
        });
    }
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
    }
}
