//! Authorization, once for every transport: who may call what, and who a change is made for.
//!
//! - [`ROUTES`]: every public gRPC method with the roles that may call it and where its project
//!   is (a test checks them against the descriptor set, so a new method cannot be forgotten); a
//!   method that is not listed is refused. [`Auth`] authenticates the bearer token of every
//!   request, checks the route and hands the [`Caller`] to the handler.
//! - [`TaskAction`]: what a caller does with a task (annotate, review, manage) and the roles it
//!   takes; the feed and review routes and the web app's task routes use the same sets, and
//!   [`task_access`] answers "may this caller do this with this task" for both.
//! - [`act_as`]: annotators act only as themselves. The task's annotator pool is the state
//!   machine's to check (`gloss_state::feed::admit_annotator`), so it holds whichever way a
//!   request arrives.
//! - [`Actor`]: who a change is made for, passed explicitly into `Service::propose` and stamped
//!   into the command (the audit log records it).

use std::sync::Arc;

use gloss_core::stages::Stage;
use gloss_proto::v1::{Role, Task};
use tonic::body::BoxBody;

use crate::users::Caller;
use crate::{Service, ServiceError};

/// Who a change is made for: a signed-in user, or the cluster itself (workers on the internal
/// port, lease expiry, job placement, the first start), whose own reads are not audited.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor(String);

impl Actor {
    /// The cluster's own work.
    pub const SYSTEM: Actor = Actor(String::new());

    /// A signed-in user.
    pub fn user(name: impl Into<String>) -> Actor {
        Actor(name.into())
    }

    /// The user's name; empty for the cluster's own work.
    pub fn name(&self) -> &str {
        &self.0
    }

    /// Whether this is the cluster's own work.
    pub fn is_system(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<&Caller> for Actor {
    fn from(c: &Caller) -> Actor {
        Actor::user(c.user.name.clone())
    }
}

/// The actor of a request the [`Auth`] layer signed in; the cluster for requests without a
/// caller (the internal port).
pub fn actor_of<T>(req: &tonic::Request<T>) -> Actor {
    req.extensions()
        .get::<Caller>()
        .map_or(Actor::SYSTEM, Actor::from)
}

/// What a caller does with a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskAction {
    /// Take examples, answer, revise, undo (the feed).
    Annotate,
    /// See the review queue, progress and agreement; resolve disagreements.
    Review,
    /// Create, close and export tasks; suggestions; groups.
    Manage,
}

impl TaskAction {
    /// The roles that may do it (admins always may).
    pub const fn roles(self) -> &'static [Role] {
        match self {
            TaskAction::Annotate => &[AN],
            TaskAction::Review => READERS,
            TaskAction::Manage => LEADS,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            TaskAction::Annotate => "annotating",
            TaskAction::Review => "reviewing",
            TaskAction::Manage => "managing a task",
        }
    }
}

/// Fails unless `caller` may do `action` in `project`; for [`TaskAction::Annotate`], only as
/// `annotator` themselves (an admin may act for anyone).
pub fn require_task(
    caller: &Caller,
    action: TaskAction,
    project: &str,
    annotator: Option<&str>,
) -> Result<(), ServiceError> {
    caller.require_in(project, action.roles(), action.describe())?;
    match annotator {
        Some(name) => act_as(Some(caller), name),
        None => Ok(()),
    }
}

/// What `caller` may do with `task`, the pool included (for listing tasks and what the app
/// offers; every action is checked again when it is taken).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskAccess {
    pub annotate: bool,
    pub review: bool,
    pub manage: bool,
}

impl TaskAccess {
    /// Whether the caller may do anything with the task.
    pub fn any(self) -> bool {
        self.annotate || self.review || self.manage
    }
}

/// [`TaskAccess`] of `caller` to `task`.
pub fn task_access(
    service: &Service,
    caller: &Caller,
    task: &Task,
) -> Result<TaskAccess, ServiceError> {
    let may = |action: TaskAction| {
        action
            .roles()
            .iter()
            .any(|r| caller.has_in(&task.project, *r))
    };
    Ok(TaskAccess {
        annotate: may(TaskAction::Annotate) && service.pool_admits(task, &caller.user.name)?,
        review: may(TaskAction::Review),
        manage: may(TaskAction::Manage),
    })
}

/// Methods anyone may call without a token (health, reflection, signing in).
const OPEN: &[&str] = &[
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/gloss.v1.UserService/SignIn",
    "/gloss.v1.UserService/GetSignInOptions",
    "/gloss.v1.UserService/SignInWithOidc",
];

use Role::{Admin as AD, Annotator as AN, Manager as MG, Reviewer as RV};

const ANY: &[Role] = &[AD, MG, RV, AN];
const LEADS: &[Role] = &[MG];
const READERS: &[Role] = &[MG, RV];
const ANNOTATE: &[Role] = TaskAction::Annotate.roles();
const REVIEW: &[Role] = TaskAction::Review.roles();
const MANAGE: &[Role] = TaskAction::Manage.roles();

/// Where a method's project is, for users whose role is held in single projects
/// (`User.project_roles`). A cluster-wide role always suffices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Cluster-wide roles only (users, membership, backups, listings across projects).
    Cluster,
    /// The role in any project will do (the cluster's status, the list of projects).
    Anywhere,
    /// The request field (a dotted path in the first message) naming the project.
    Project(&'static str),
    /// The request field naming a model, `PROJECT/TASK/NAME`.
    Model(&'static str),
    /// The request field holding a job id; the job's project is looked up.
    Job(&'static str),
}

use Scope::{Anywhere, Cluster, Job, Model, Project};

/// Method (`Service/Method` under `gloss.v1`), the roles that may call it (admins always may),
/// and where its project is.
pub const ROUTES: &[(&str, &[Role], Scope)] = &[
    ("ClusterService/GetClusterStatus", ANY, Anywhere),
    ("ClusterService/AddLearner", &[AD], Cluster),
    ("ClusterService/PromoteMember", &[AD], Cluster),
    ("ClusterService/RemoveMember", &[AD], Cluster),
    ("ClusterService/GetStateDigest", &[AD], Cluster),
    ("ClusterService/CreateBackup", &[AD], Cluster),
    ("ClusterService/RestoreBackup", &[AD], Cluster),
    ("ProjectService/CreateProject", LEADS, Cluster),
    ("ProjectService/ListProjects", ANY, Anywhere),
    ("ProjectService/GetProject", ANY, Project("name")),
    ("ProjectService/DeleteProject", LEADS, Project("name")),
    ("DatasetService/CreateDataset", LEADS, Project("project")),
    ("DatasetService/ListDatasets", READERS, Project("project")),
    ("DatasetService/GetDataset", READERS, Project("project")),
    ("DatasetService/DeleteDataset", LEADS, Project("project")),
    (
        "DatasetService/ImportExamples",
        LEADS,
        Project("header.project"),
    ),
    ("DatasetService/ExportExamples", LEADS, Project("project")),
    ("DatasetService/ListExamples", READERS, Project("project")),
    ("TaskService/CreateTask", LEADS, Project("task.project")),
    ("TaskService/ListTasks", ANY, Project("project")),
    ("TaskService/GetTask", ANY, Project("project")),
    ("TaskService/CloseTask", MANAGE, Project("project")),
    ("TaskService/GetProgress", REVIEW, Project("project")),
    ("TaskService/GetAgreement", REVIEW, Project("project")),
    ("TaskService/SetSuggestions", MANAGE, Project("project")),
    ("TaskService/ExportAnswers", MANAGE, Project("project")),
    ("TaskService/SetGroup", LEADS, Project("group.project")),
    (
        "TaskService/ImportAnswers",
        MANAGE,
        Project("header.project"),
    ),
    ("FeedService/NextExamples", ANNOTATE, Project("project")),
    ("FeedService/Heartbeat", ANNOTATE, Project("project")),
    (
        "FeedService/SubmitAnswer",
        ANNOTATE,
        Project("answer.project"),
    ),
    (
        "FeedService/ReviseAnswer",
        ANNOTATE,
        Project("answer.project"),
    ),
    ("FeedService/UndoAnswer", ANNOTATE, Project("project")),
    ("ReviewService/ListReviewQueue", REVIEW, Project("project")),
    ("ReviewService/ResolveReview", REVIEW, Project("project")),
    ("UserService/CreateUser", &[AD], Cluster),
    ("UserService/ListUsers", &[AD], Cluster),
    ("UserService/UpdateUser", &[AD], Cluster),
    ("UserService/IssueToken", &[AD], Cluster),
    ("UserService/ListTokens", &[AD], Cluster),
    ("UserService/RevokeToken", &[AD], Cluster),
    ("UserService/SignOut", ANY, Anywhere),
    ("JobService/SubmitJob", LEADS, Project("spec.project")),
    ("JobService/ListJobs", READERS, Cluster),
    ("JobService/GetJob", READERS, Job("id")),
    ("JobService/CancelJob", LEADS, Job("id")),
    ("JobService/JobLogs", READERS, Job("id")),
    ("JobService/ListWorkers", READERS, Cluster),
    ("ModelService/ListModels", READERS, Project("project")),
    ("ModelService/GetModel", READERS, Model("name")),
    ("ModelService/PromoteModel", LEADS, Model("name")),
    ("ModelService/ExportModel", LEADS, Model("name")),
    ("ModelService/ListEvaluations", READERS, Project("project")),
    ("AuditService/ListAudit", &[AD], Cluster),
];

/// The roles that may call `path` (`/gloss.v1.Service/Method`) and where its project is;
/// `None` when it is not a route.
pub fn route(path: &str) -> Option<(&'static [Role], Scope)> {
    let method = path.strip_prefix("/gloss.v1.")?;
    ROUTES
        .iter()
        .find(|(m, _, _)| *m == method)
        .map(|(_, r, s)| (*r, *s))
}

/// What [`authorize`] decided.
pub enum Decision {
    /// An open method: no caller.
    Open,
    /// Allowed.
    Allowed(Caller),
    /// Allowed only if the caller holds the roles in the request's project: the first message
    /// must be read to tell.
    InProject(Caller, &'static [Role], Scope),
}

/// Who sends the request and whether they may call `path`; methods whose project is in the
/// request come back as [`Decision::InProject`] for a caller without a cluster-wide role.
pub async fn authorize(
    service: &Service,
    path: &str,
    authorization: Option<&str>,
) -> Result<Decision, ServiceError> {
    if OPEN.iter().any(|p| path.starts_with(p)) {
        return Ok(Decision::Open);
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
    let Some((roles, scope)) = route(path) else {
        return Err(ServiceError::PermissionDenied(format!(
            "{path} is not a Gloss method"
        )));
    };
    let action = path.trim_start_matches("/gloss.v1.");
    let Err(denied) = caller.require(roles, action) else {
        return Ok(Decision::Allowed(caller));
    };
    match scope {
        Anywhere if roles.iter().any(|r| caller.has_anywhere(*r)) => Ok(Decision::Allowed(caller)),
        Project(_) | Model(_) | Job(_) if !caller.user.project_roles.is_empty() => {
            Ok(Decision::InProject(caller, roles, scope))
        }
        _ => Err(denied),
    }
}

/// The descriptor pool of the public API, decoded once.
fn pool() -> &'static prost_reflect::DescriptorPool {
    static POOL: std::sync::OnceLock<prost_reflect::DescriptorPool> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        prost_reflect::DescriptorPool::decode(gloss_proto::FILE_DESCRIPTOR_SET)
            .expect("the built-in descriptor set decodes")
    })
}

/// The input message of `path` (`/gloss.v1.Service/Method`).
fn input_of(path: &str) -> Option<prost_reflect::MessageDescriptor> {
    let (service, method) = path.trim_start_matches('/').split_once('/')?;
    pool()
        .get_service_by_name(service)?
        .methods()
        .find(|m| m.name() == method)
        .map(|m| m.input())
}

/// The string at `field` (a dotted path) in `message`.
fn string_at(message: &prost_reflect::DynamicMessage, field: &str) -> Option<String> {
    let (head, rest) = match field.split_once('.') {
        Some((head, rest)) => (head, Some(rest)),
        None => (field, None),
    };
    let value = message.get_field_by_name(head)?;
    match (value.as_ref(), rest) {
        (prost_reflect::Value::String(s), None) => Some(s.clone()),
        (prost_reflect::Value::Message(m), Some(rest)) => string_at(m, rest),
        _ => None,
    }
}

/// The project a request of `path` is about, read from its first message (`encoded`).
pub fn project_of(
    service: &Service,
    path: &str,
    scope: Scope,
    encoded: &[u8],
) -> Result<String, ServiceError> {
    let invalid = |why: String| ServiceError::InvalidArgument(why);
    let descriptor = input_of(path).ok_or_else(|| invalid(format!("{path}: unknown method")))?;
    let message = prost_reflect::DynamicMessage::decode(descriptor, encoded)
        .map_err(|e| invalid(format!("{path}: undecodable request: {e}")))?;
    let field = match scope {
        Project(f) | Model(f) | Job(f) => f,
        Cluster | Anywhere => return Ok(String::new()),
    };
    let value = string_at(&message, field).unwrap_or_default();
    if value.is_empty() {
        return Err(invalid(format!("{field}: is required")));
    }
    match scope {
        Model(_) => Ok(value.split('/').next().unwrap_or_default().to_string()),
        Job(_) => {
            let job = gloss_state::jobs::job(&service.state_db(), &value)?
                .ok_or_else(|| ServiceError::NotFound(format!("job {value:?} not found")))?;
            Ok(job.spec.map(|s| s.project).unwrap_or_default())
        }
        _ => Ok(value),
    }
}

/// Reads `body` up to the end of its first gRPC message; returns that message and a body that
/// replays everything read, followed by the rest.
async fn first_message(mut body: BoxBody) -> Result<(bytes::Bytes, BoxBody), tonic::Status> {
    use http_body_util::BodyExt as _;
    const LIMIT: usize = 16 << 20;
    let mut buf = bytes::BytesMut::new();
    let mut ended = false;
    loop {
        if buf.len() >= 5 {
            let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
            if len > LIMIT {
                return Err(tonic::Status::resource_exhausted(format!(
                    "the first message is {len} bytes; at most {LIMIT}"
                )));
            }
            if buf.len() >= 5 + len {
                break;
            }
        }
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    buf.extend_from_slice(&data);
                }
            }
            Some(Err(status)) => return Err(status),
            None => {
                ended = true;
                break;
            }
        }
    }
    let read = buf.freeze();
    let message = if read.len() >= 5 && read[0] == 0 {
        let len = u32::from_be_bytes([read[1], read[2], read[3], read[4]]) as usize;
        read.slice(5..(5 + len).min(read.len()))
    } else if read.len() >= 5 {
        return Err(tonic::Status::invalid_argument(
            "compressed requests are not accepted",
        ));
    } else {
        bytes::Bytes::new()
    };
    let head = futures::stream::iter((!read.is_empty()).then(|| Ok(http_body::Frame::data(read))));
    let replay: BoxBody = if ended {
        tonic::body::BoxBody::new(http_body_util::StreamBody::new(head))
    } else {
        let rest = http_body_util::BodyStream::new(body);
        tonic::body::BoxBody::new(http_body_util::StreamBody::new(futures::StreamExt::chain(
            head, rest,
        )))
    };
    Ok((message, replay))
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

/// Wraps the public gRPC routes with [`authorize`]: `Around::new(Auth::new(service))`.
#[derive(Clone)]
pub struct Auth {
    service: Arc<Service>,
}

impl Auth {
    pub fn new(service: Arc<Service>) -> Auth {
        Auth { service }
    }
}

impl crate::around::Wrap for Auth {
    fn wrap<S>(
        &self,
        mut inner: S,
        mut req: http::Request<BoxBody>,
    ) -> crate::around::Reply<S::Error>
    where
        S: tower_service::Service<http::Request<BoxBody>, Response = http::Response<BoxBody>>
            + Send
            + 'static,
        S::Future: Send + 'static,
    {
        let service = self.service.clone();
        Box::pin(async move {
            let stages = service.stages().clone();
            let _request = stages.time(Stage::Request);
            let auth = stages.time(Stage::Auth);
            let path = req.uri().path().to_string();
            let header = req
                .headers()
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let decision = match authorize(&service, &path, header.as_deref()).await {
                Ok(Decision::InProject(caller, roles, scope)) => {
                    let (parts, body) = req.into_parts();
                    let (message, body) = match first_message(body).await {
                        Ok(read) => read,
                        Err(status) => return Ok(status.into_http()),
                    };
                    req = http::Request::from_parts(parts, body);
                    let action = path.trim_start_matches("/gloss.v1.");
                    project_of(&service, &path, scope, &message)
                        .and_then(|project| caller.require_in(&project, roles, action))
                        .map(|_| Decision::Allowed(caller))
                }
                other => other,
            };
            drop(auth);
            match decision {
                Ok(Decision::Allowed(c)) => {
                    req.extensions_mut().insert(c);
                    inner.call(req).await
                }
                Ok(_) => inner.call(req).await,
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
            let routed = ROUTES.iter().filter(|(r, _, _)| r == m).count();
            assert!(open || routed == 1, "{m}: {routed} routes (open: {open})");
        }
        for (r, _, _) in ROUTES {
            assert!(methods.iter().any(|m| m == r), "route {r} names no method");
        }
        assert_eq!(role_name(Role::Admin), "admin");
    }

    #[test]
    fn every_project_field_names_a_string_in_the_request() {
        for (method, _, scope) in ROUTES {
            let field = match scope {
                Project(f) | Model(f) | Job(f) => *f,
                Cluster | Anywhere => continue,
            };
            let mut message = input_of(&format!("/gloss.v1.{method}"))
                .unwrap_or_else(|| panic!("{method} has no input message"));
            let mut parts = field.split('.').peekable();
            while let Some(part) = parts.next() {
                let f = message
                    .get_field_by_name(part)
                    .unwrap_or_else(|| panic!("{method}: no field {part} in {field}"));
                match f.kind() {
                    prost_reflect::Kind::Message(m) if parts.peek().is_some() => message = m,
                    prost_reflect::Kind::String if parts.peek().is_none() => {}
                    other => panic!("{method}: {field} reaches {other:?}"),
                }
            }
        }
    }
}
