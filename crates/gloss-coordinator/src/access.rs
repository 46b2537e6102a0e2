//! Who may call what on the public gRPC port. Every method has an entry in [`ROUTES`] (a test
//! checks them against the descriptor set, so a new method cannot be forgotten); a method that
//! is not listed is refused. [`AuthLayer`] authenticates the bearer token of every request,
//! checks the caller's role for the method and hands the [`Caller`] to the handler (the feed
//! uses it: an annotator acts only as themselves).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use gloss_proto::v1::Role;
use tonic::body::BoxBody;

use crate::users::Caller;
use crate::{Service, ServiceError};

tokio::task_local! {
    /// The signed-in user a request runs for; the service stamps it into the commands it
    /// proposes (the audit log records it).
    pub static ACTOR: String;
}

/// The user the current request runs for; empty outside a signed request.
pub fn current_actor() -> String {
    ACTOR.try_with(|a| a.clone()).unwrap_or_default()
}

/// Methods anyone may call without a token (health, reflection, signing in).
const OPEN: &[&str] = &[
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/gloss.v1.UserService/SignIn",
];

use Role::{Admin as AD, Annotator as AN, Manager as MG, Reviewer as RV};

const ANY: &[Role] = &[AD, MG, RV, AN];
const LEADS: &[Role] = &[MG];
const READERS: &[Role] = &[MG, RV];

/// Method (`Service/Method` under `gloss.v1`) and the roles that may call it (admins always may).
pub const ROUTES: &[(&str, &[Role])] = &[
    ("ClusterService/GetClusterStatus", ANY),
    ("ClusterService/AddLearner", &[AD]),
    ("ClusterService/PromoteMember", &[AD]),
    ("ClusterService/RemoveMember", &[AD]),
    ("ClusterService/GetStateDigest", &[AD]),
    ("ClusterService/CreateBackup", &[AD]),
    ("ClusterService/RestoreBackup", &[AD]),
    ("ProjectService/CreateProject", LEADS),
    ("ProjectService/ListProjects", ANY),
    ("ProjectService/GetProject", ANY),
    ("ProjectService/DeleteProject", LEADS),
    ("DatasetService/CreateDataset", LEADS),
    ("DatasetService/ListDatasets", READERS),
    ("DatasetService/GetDataset", READERS),
    ("DatasetService/DeleteDataset", LEADS),
    ("DatasetService/ImportExamples", LEADS),
    ("DatasetService/ExportExamples", LEADS),
    ("DatasetService/ListExamples", READERS),
    ("TaskService/CreateTask", LEADS),
    ("TaskService/ListTasks", ANY),
    ("TaskService/GetTask", ANY),
    ("TaskService/CloseTask", LEADS),
    ("TaskService/GetProgress", READERS),
    ("TaskService/GetAgreement", READERS),
    ("TaskService/SetSuggestions", LEADS),
    ("TaskService/ExportAnswers", LEADS),
    ("TaskService/SetGroup", LEADS),
    ("FeedService/NextExamples", &[AN]),
    ("FeedService/Heartbeat", &[AN]),
    ("FeedService/SubmitAnswer", &[AN]),
    ("FeedService/ReviseAnswer", &[AN]),
    ("FeedService/UndoAnswer", &[AN]),
    ("ReviewService/ListReviewQueue", READERS),
    ("ReviewService/ResolveReview", READERS),
    ("UserService/CreateUser", &[AD]),
    ("UserService/ListUsers", &[AD]),
    ("UserService/UpdateUser", &[AD]),
    ("UserService/IssueToken", &[AD]),
    ("UserService/ListTokens", &[AD]),
    ("UserService/RevokeToken", &[AD]),
    ("JobService/SubmitJob", LEADS),
    ("JobService/ListJobs", READERS),
    ("JobService/GetJob", READERS),
    ("JobService/CancelJob", LEADS),
    ("JobService/JobLogs", READERS),
    ("JobService/ListWorkers", READERS),
    ("ModelService/ListModels", READERS),
    ("ModelService/GetModel", READERS),
    ("ModelService/PromoteModel", LEADS),
    ("ModelService/ExportModel", LEADS),
    ("ModelService/ListEvaluations", READERS),
    ("AuditService/ListAudit", &[AD]),
];

/// The roles that may call `path` (`/gloss.v1.Service/Method`); `None` when it is not a route.
pub fn roles_for(path: &str) -> Option<&'static [Role]> {
    let method = path.strip_prefix("/gloss.v1.")?;
    ROUTES.iter().find(|(m, _)| *m == method).map(|(_, r)| *r)
}

/// Who sends the request and whether they may call `path`; `Ok(None)` for open methods.
pub async fn authorize(
    service: &Service,
    path: &str,
    authorization: Option<&str>,
) -> Result<Option<Caller>, ServiceError> {
    if OPEN.iter().any(|p| path.starts_with(p)) {
        return Ok(None);
    }
    let token = authorization
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| {
            ServiceError::Unauthenticated(
                "send a token: `authorization: Bearer <token>` (glossctl --token or GLOSS_TOKEN)"
                    .into(),
            )
        })?;
    let caller = service.authenticate(token).await?;
    let Some(roles) = roles_for(path) else {
        return Err(ServiceError::PermissionDenied(format!(
            "{path} is not a Gloss method"
        )));
    };
    caller.require(roles, path.trim_start_matches("/gloss.v1."))?;
    Ok(Some(caller))
}

/// The feed's rule: annotators act as themselves; only an admin may act for someone else.
pub fn act_as(caller: Option<&Caller>, annotator: &str) -> Result<(), ServiceError> {
    match caller {
        Some(c) if c.user.name != annotator && !c.has(Role::Admin) => {
            Err(ServiceError::PermissionDenied(format!(
                "user {:?} cannot act as annotator {annotator:?}",
                c.user.name
            )))
        }
        _ => Ok(()),
    }
}

/// Wraps the public gRPC routes with [`authorize`].
#[derive(Clone)]
pub struct AuthLayer {
    service: Arc<Service>,
}

impl AuthLayer {
    pub fn new(service: Arc<Service>) -> AuthLayer {
        AuthLayer { service }
    }
}

impl<S> tower_layer::Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Auth<S> {
        Auth {
            inner,
            service: self.service.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Auth<S> {
    inner: S,
    service: Arc<Service>,
}

impl<S> tower_service::Service<http::Request<BoxBody>> for Auth<S>
where
    S: tower_service::Service<http::Request<BoxBody>, Response = http::Response<BoxBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<BoxBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<BoxBody>) -> Self::Future {
        // The clone that was polled ready is the one that serves this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let service = self.service.clone();
        Box::pin(async move {
            let path = req.uri().path().to_string();
            let header = req
                .headers()
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            match authorize(&service, &path, header.as_deref()).await {
                Ok(Some(c)) => {
                    let actor = c.user.name.clone();
                    req.extensions_mut().insert(c);
                    ACTOR.scope(actor, inner.call(req)).await
                }
                Ok(None) => inner.call(req).await,
                Err(e) => {
                    if matches!(e, ServiceError::PermissionDenied(_)) {
                        tracing::info!(%path, error = %e, "request denied");
                    }
                    Ok(tonic::Status::from(e).into_http())
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::users::role_name;

    #[test]
    fn every_public_method_has_exactly_one_route_and_routes_name_real_methods() {
        let fds = prost_types::FileDescriptorSet::decode(gloss_proto::FILE_DESCRIPTOR_SET).unwrap();
        let mut methods = Vec::new();
        for file in &fds.file {
            for svc in &file.service {
                let name = svc.name();
                // Internal services live on the internal port, which has its own protection.
                if name == "RaftService" || name == "WorkerService" {
                    continue;
                }
                for m in &svc.method {
                    methods.push(format!("{name}/{}", m.name()));
                }
            }
        }
        for m in &methods {
            let path = format!("/gloss.v1.{m}");
            let open = OPEN.iter().any(|p| path.starts_with(p));
            let routed = ROUTES.iter().filter(|(r, _)| r == m).count();
            assert!(open || routed == 1, "{m}: {routed} routes (open: {open})");
        }
        for (r, _) in ROUTES {
            assert!(methods.iter().any(|m| m == r), "route {r} names no method");
        }
        assert_eq!(role_name(Role::Admin), "admin");
    }
}
