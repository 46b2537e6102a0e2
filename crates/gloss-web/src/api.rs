//! The JSON API the web app talks to. Every handler authenticates the bearer token, checks the
//! caller with the same rules as the gRPC API (`gloss_coordinator::access`), then calls the
//! same service layer with the caller as the actor; nothing here decides a business rule of its
//! own (the task's annotator pool, for one, is the state machine's to check).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use gloss_coordinator::access::{require_task, task_access, Actor, TaskAccess, TaskAction};
use gloss_coordinator::users::{role_name, Caller};
use gloss_coordinator::{Service, ServiceError};
use gloss_proto::v1::{
    resolve_review_request::Resolution, Answer, NextRequest, ResolveReviewRequest, Role, Task, User,
};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::json::{from_json, to_json};

type Shared = State<Arc<Service>>;
type Reply = Result<Json<Value>, ApiError>;

/// A failed request: the HTTP status of the service error and its message.
pub struct ApiError(ServiceError);

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = self.0.code();
        let status =
            StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::warn!(error = %self.0, "web api request failed");
        }
        (
            status,
            Json(json!({"error": self.0.to_string(), "code": code.as_str()})),
        )
            .into_response()
    }
}

fn invalid(msg: impl Into<String>) -> ApiError {
    ApiError(ServiceError::InvalidArgument(msg.into()))
}

/// Routes under `/api`.
pub fn routes() -> Router<Arc<Service>> {
    Router::new()
        .route("/api/session", post(sign_in).delete(sign_out))
        .route("/api/me", get(me))
        .route("/api/tasks", get(my_tasks))
        .route("/api/tasks/:project/:task", get(task))
        .route("/api/tasks/:project/:task/next", post(next))
        .route(
            "/api/tasks/:project/:task/examples/:seq/image",
            get(example_image),
        )
        .route("/api/tasks/:project/:task/heartbeat", post(heartbeat))
        .route("/api/tasks/:project/:task/answers", post(submit))
        .route("/api/tasks/:project/:task/undo", post(undo))
        .route("/api/tasks/:project/:task/review", get(review_queue))
        .route("/api/tasks/:project/:task/review/:seq", post(resolve))
        .route("/api/tasks/:project/:task/progress", get(progress))
        .route("/api/tasks/:project/:task/agreement", get(agreement))
        .route("/api/dashboard", get(dashboard))
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

tokio::task_local! {
    /// The caller the router's middleware authenticated for this request.
    pub(crate) static CALLER: Caller;
}

/// The caller named by the `Authorization: Bearer` header.
async fn caller(service: &Service, headers: &HeaderMap) -> Result<Caller, ApiError> {
    if let Ok(c) = CALLER.try_with(Caller::clone) {
        return Ok(c);
    }
    let token = bearer(headers).ok_or_else(|| {
        ApiError(ServiceError::Unauthenticated(
            "sign in first: no bearer token in the Authorization header".into(),
        ))
    })?;
    Ok(service.authenticate(token).await?)
}

/// The user for the app: `roles` holds every role held anywhere (the app shows what they
/// unlock; the server checks each project), `project_roles` where each is held.
fn user_json(u: &User) -> Value {
    let mut roles: Vec<&str> = Vec::new();
    for r in u
        .roles
        .iter()
        .chain(u.project_roles.iter().flat_map(|p| p.roles.iter()))
    {
        if let Some(name) = Role::try_from(*r).ok().map(role_name) {
            if !roles.contains(&name) {
                roles.push(name);
            }
        }
    }
    let project_roles: Vec<Value> = u
        .project_roles
        .iter()
        .map(|p| {
            let names: Vec<&str> = p
                .roles
                .iter()
                .filter_map(|r| Role::try_from(*r).ok().map(role_name))
                .collect();
            json!({"project": p.project, "roles": names})
        })
        .collect();
    json!({
        "name": u.name,
        "display_name": if u.display_name.is_empty() { &u.name } else { &u.display_name },
        "roles": roles,
        "project_roles": project_roles,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    #[serde(default)]
    user: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    token: String,
}

/// Signs in with a user name and password (a new session token) or checks a given token.
async fn sign_in(State(s): Shared, Json(req): Json<SignIn>) -> Reply {
    let token = if req.token.is_empty() {
        if req.user.is_empty() || req.password.is_empty() {
            return Err(invalid("give a user name and password, or a token"));
        }
        s.sign_in(&req.user, &req.password).await?.token
    } else {
        req.token
    };
    let caller = s.authenticate(&token).await?;
    Ok(Json(
        json!({"token": token, "user": user_json(&caller.user)}),
    ))
}

/// Signs out: the session token is revoked on every coordinator.
async fn sign_out(State(s): Shared, headers: HeaderMap) -> Result<StatusCode, ApiError> {
    let c = caller(&s, &headers).await?;
    s.sign_out(&Actor::from(&c), bearer(&headers).unwrap_or_default())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn me(State(s): Shared, headers: HeaderMap) -> Reply {
    let c = caller(&s, &headers).await?;
    Ok(Json(user_json(&c.user)))
}

fn task_json(t: &Task, a: &TaskAccess) -> Value {
    let mut v = to_json(t);
    v["can_annotate"] = json!(a.annotate);
    v["can_review"] = json!(a.review);
    v["can_manage"] = json!(a.manage);
    v
}

/// Every task the caller may work on: annotators see the tasks whose pool admits them,
/// reviewers and managers see every task.
async fn my_tasks(State(s): Shared, headers: HeaderMap) -> Reply {
    let c = caller(&s, &headers).await?;
    let mut out = Vec::new();
    for project in s.list_projects().await? {
        for t in s.list_tasks(&project.name).await? {
            let a = task_access(&s, &c, &t)?;
            if !a.any() {
                continue;
            }
            let progress = s.task_progress(&t.project, &t.name).await?;
            let mine = progress
                .annotators
                .iter()
                .find(|p| p.annotator == c.user.name)
                .map(to_json);
            let mut v = task_json(&t, &a);
            v["progress"] = json!({
                "total": progress.total,
                "done": progress.done,
                "remaining": progress.remaining,
                "review_pending": progress.review_pending,
                "mine": mine,
            });
            out.push(v);
        }
    }
    Ok(Json(json!({"tasks": out})))
}

/// The caller, once they may annotate in `project` as themselves. The task itself (it exists,
/// it is open, its pool admits the caller) is checked by the state machine with the command,
/// so no read waits here before the write.
async fn annotator(s: &Service, headers: &HeaderMap, project: &str) -> Result<Caller, ApiError> {
    let c = caller(s, headers).await?;
    require_task(&c, TaskAction::Annotate, project, Some(&c.user.name))?;
    Ok(c)
}

/// The caller, once they may review in `project`, and the task.
async fn reviewer(
    s: &Service,
    headers: &HeaderMap,
    project: &str,
    task: &str,
) -> Result<(Caller, Task), ApiError> {
    let c = caller(s, headers).await?;
    require_task(&c, TaskAction::Review, project, None)?;
    let t = s.task_record(project, task).await?.task.unwrap_or_default();
    Ok((c, t))
}

/// The task, once the caller has some access to it (annotates, reviews or manages it).
async fn visible_task(
    s: &Service,
    headers: &HeaderMap,
    project: &str,
    name: &str,
) -> Result<(Task, TaskAccess), ApiError> {
    let c = caller(s, headers).await?;
    let t = s.task_record(project, name).await?.task.unwrap_or_default();
    let a = task_access(s, &c, &t)?;
    if !a.any() {
        return Err(ApiError(ServiceError::PermissionDenied(format!(
            "user {:?} has no access to task {project}/{name}",
            c.user.name
        ))));
    }
    Ok((t, a))
}

async fn task(
    State(s): Shared,
    headers: HeaderMap,
    Path((project, name)): Path<(String, String)>,
) -> Reply {
    let (t, a) = visible_task(&s, &headers, &project, &name).await?;
    Ok(Json(task_json(&t, &a)))
}

/// The image of one of a task's examples, for anyone with access to the task. Images are
/// stored by content, so the digest is a strong validator and the bytes never change.
async fn example_image(
    State(s): Shared,
    headers: HeaderMap,
    Path((project, name, seq)): Path<(String, String, u64)>,
) -> Result<Response, ApiError> {
    let (t, _) = visible_task(&s, &headers, &project, &name).await?;
    let (image, bytes) = s.example_image(&t, seq).await?;
    let etag = format!("\"{}\"", image.digest);
    if headers
        .get(axum::http::header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        return Ok(StatusCode::NOT_MODIFIED.into_response());
    }
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, image.media_type),
            (axum::http::header::ETAG, etag),
            (
                axum::http::header::CACHE_CONTROL,
                "private, max-age=31536000, immutable".to_string(),
            ),
            (
                axum::http::header::X_CONTENT_TYPE_OPTIONS,
                "nosniff".to_string(),
            ),
        ],
        bytes,
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Next {
    #[serde(default)]
    count: u32,
    #[serde(default)]
    session_id: String,
}

async fn next(
    State(s): Shared,
    headers: HeaderMap,
    Path((project, task)): Path<(String, String)>,
    Json(req): Json<Next>,
) -> Reply {
    let c = annotator(&s, &headers, &project).await?;
    let reply = s
        .next_examples(
            &Actor::from(&c),
            NextRequest {
                project,
                task,
                annotator: c.user.name,
                session_id: req.session_id,
                count: req.count,
            },
        )
        .await?;
    Ok(Json(to_json(&reply)))
}

async fn heartbeat(
    State(s): Shared,
    headers: HeaderMap,
    Path((project, task)): Path<(String, String)>,
) -> Reply {
    let c = annotator(&s, &headers, &project).await?;
    let g = s
        .heartbeat(&Actor::from(&c), &project, &task, &c.user.name)
        .await?;
    Ok(Json(json!({
        "lease_expires_at_ms": g.expires_at_ms,
        "leased": g.seqs.len(),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Submit {
    answer: Value,
    #[serde(default)]
    revise: bool,
}

/// Records an answer as the caller: the project, task and annotator come from the route and the
/// session, never from the body.
async fn submit(
    State(s): Shared,
    headers: HeaderMap,
    Path((project, task)): Path<(String, String)>,
    Json(req): Json<Submit>,
) -> Reply {
    let c = annotator(&s, &headers, &project).await?;
    let mut answer: Answer = from_json(req.answer).map_err(|e| invalid(format!("answer: {e}")))?;
    answer.project = project;
    answer.task = task;
    answer.annotator = c.user.name.clone();
    let (answer, duplicate) = s
        .submit_answer(&Actor::from(&c), answer, req.revise)
        .await?;
    Ok(Json(
        json!({"answer": to_json(&answer), "duplicate": duplicate}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Undo {
    seq: u64,
}

async fn undo(
    State(s): Shared,
    headers: HeaderMap,
    Path((project, task)): Path<(String, String)>,
    Json(req): Json<Undo>,
) -> Reply {
    let c = annotator(&s, &headers, &project).await?;
    let ex = s
        .undo_answer(&Actor::from(&c), &project, &task, &c.user.name, req.seq)
        .await?;
    Ok(Json(json!({"example": to_json(&ex)})))
}

#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    after: u64,
    #[serde(default)]
    limit: u32,
}

async fn review_queue(
    State(s): Shared,
    headers: HeaderMap,
    Path((project, task)): Path<(String, String)>,
    Query(page): Query<Page>,
) -> Reply {
    let (_, t) = reviewer(&s, &headers, &project, &task).await?;
    let (items, pending) = s
        .review_queue(&project, &task, page.limit, page.after)
        .await?;
    // The reviewer's editor needs the same tokens the annotators had.
    let items: Vec<Value> = items
        .iter()
        .map(|it| {
            let mut v = to_json(it);
            let tokens: Vec<Value> = gloss_annotate::tokenize(&it.text)
                .iter()
                .map(to_json)
                .collect();
            v["tokens"] = Value::Array(tokens);
            v
        })
        .collect();
    Ok(Json(json!({
        "task": to_json(&t),
        "items": items,
        "pending": pending,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Resolve {
    /// Pick one annotator's answer by id...
    #[serde(default)]
    answer_id: String,
    /// ...or send an edited answer.
    #[serde(default)]
    edited: Option<Value>,
}

async fn resolve(
    State(s): Shared,
    headers: HeaderMap,
    Path((project, task, seq)): Path<(String, String, u64)>,
    Json(req): Json<Resolve>,
) -> Reply {
    let (c, _) = reviewer(&s, &headers, &project, &task).await?;
    let resolution = match (req.answer_id.is_empty(), req.edited) {
        (false, None) => Resolution::PickAnswerId(req.answer_id),
        (true, Some(v)) => {
            let mut a: Answer = from_json(v).map_err(|e| invalid(format!("edited: {e}")))?;
            a.project = project.clone();
            a.task = task.clone();
            a.seq = seq;
            a.annotator = c.user.name.clone();
            Resolution::Edited(a)
        }
        _ => return Err(invalid("give exactly one of answer_id and edited")),
    };
    let actor = Actor::from(&c);
    let gold = s
        .resolve_review(
            &actor,
            ResolveReviewRequest {
                project,
                task,
                seq,
                reviewer: c.user.name,
                resolution: Some(resolution),
            },
        )
        .await?;
    Ok(Json(to_json(&gold)))
}

async fn progress(
    State(s): Shared,
    headers: HeaderMap,
    Path((project, task)): Path<(String, String)>,
) -> Reply {
    reviewer(&s, &headers, &project, &task).await?;
    Ok(Json(to_json(&s.task_progress(&project, &task).await?)))
}

async fn agreement(
    State(s): Shared,
    headers: HeaderMap,
    Path((project, task)): Path<(String, String)>,
) -> Reply {
    reviewer(&s, &headers, &project, &task).await?;
    Ok(Json(to_json(&s.task_agreement(&project, &task).await?)))
}

/// Projects with their tasks, progress per annotator, agreement per label, queue health, recent
/// jobs, and the models with teacher and student scores.
async fn dashboard(State(s): Shared, headers: HeaderMap) -> Reply {
    let c = caller(&s, &headers).await?;
    // Managers of single projects see those projects only.
    if !c.has_anywhere(Role::Manager) {
        c.require(&[Role::Manager], "the dashboard")?;
    }
    let recent_jobs = s.list_jobs(&[], 500).await?;
    let mut projects = Vec::new();
    for p in s.list_projects().await? {
        if !c.has_in(&p.name, Role::Manager) {
            continue;
        }
        let mut tasks = Vec::new();
        for t in s.list_tasks(&p.name).await? {
            let progress = s.task_progress(&t.project, &t.name).await?;
            let agreement = s.task_agreement(&t.project, &t.name).await?;
            let evaluations: Vec<Value> = s
                .list_evaluations(&t.project, &t.name)
                .await?
                .iter()
                .map(to_json)
                .collect();
            let models: Vec<Value> = s
                .list_models(&t.project, &t.name)
                .await?
                .iter()
                .map(to_json)
                .collect();
            let jobs: Vec<Value> = recent_jobs
                .iter()
                .filter(|j| {
                    j.spec
                        .as_ref()
                        .is_some_and(|sp| sp.project == t.project && sp.task == t.name)
                })
                .take(10)
                .map(to_json)
                .collect();
            // The newest learning curve (a succeeded `curve` job's result) of this task.
            let curve = recent_jobs
                .iter()
                .find(|j| {
                    j.state() == gloss_proto::v1::JobState::Succeeded
                        && j.spec.as_ref().is_some_and(|sp| {
                            sp.kind() == gloss_proto::v1::JobKind::Curve
                                && sp.project == t.project
                                && sp.task == t.name
                        })
                })
                .and_then(|j| serde_json::from_str::<Value>(&j.result_json).ok());
            tasks.push(json!({
                "task": to_json(&t),
                "curve": curve,
                "progress": to_json(&progress),
                "agreement": to_json(&agreement),
                "evaluations": evaluations,
                "models": models,
                "jobs": jobs,
            }));
        }
        projects.push(json!({"project": to_json(&p), "tasks": tasks}));
    }
    Ok(Json(json!({"projects": projects})))
}
