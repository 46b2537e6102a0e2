//! gRPC adapters of the task, feed and review services.

use gloss_proto::v1::*;
use tonic::{Request, Response, Status};

use crate::access::actor_of;
use crate::grpc::{ok, stream_chunks, Api, ExportStream};
use crate::users::Caller;

type Reply<T> = Result<Response<T>, Status>;

/// The signed-in caller the auth layer attached (none on the internal port).
fn caller<T>(req: &Request<T>) -> Option<Caller> {
    req.extensions().get::<Caller>().cloned()
}

fn act_as(caller: Option<&Caller>, annotator: &str) -> Result<(), Status> {
    crate::access::act_as(caller, annotator).map_err(Status::from)
}

fn require<T>(v: Option<T>, field: &str) -> Result<T, Status> {
    v.ok_or_else(|| Status::invalid_argument(format!("{field}: is required")))
}

#[tonic::async_trait]
impl task_service_server::TaskService for Api {
    async fn create_task(&self, req: Request<CreateTaskRequest>) -> Reply<Task> {
        let actor = actor_of(&req);
        let task = require(req.into_inner().task, "task")?;
        ok(self.service.create_task(&actor, task).await)
    }

    async fn list_tasks(&self, req: Request<ListTasksRequest>) -> Reply<ListTasksResponse> {
        let r = req.into_inner();
        ok(self
            .service
            .list_tasks(&r.project)
            .await
            .map(|tasks| ListTasksResponse { tasks }))
    }

    async fn get_task(&self, req: Request<GetTaskRequest>) -> Reply<Task> {
        let r = req.into_inner();
        ok(self
            .service
            .task_record(&r.project, &r.task)
            .await
            .map(|t| t.task.unwrap_or_default()))
    }

    async fn close_task(&self, req: Request<CloseTaskRequest>) -> Reply<Task> {
        let actor = actor_of(&req);
        let r = req.into_inner();
        ok(self.service.close_task(&actor, &r.project, &r.task).await)
    }

    async fn get_progress(&self, req: Request<GetProgressRequest>) -> Reply<TaskProgress> {
        let r = req.into_inner();
        ok(self.service.task_progress(&r.project, &r.task).await)
    }

    async fn get_agreement(&self, req: Request<GetAgreementRequest>) -> Reply<AgreementReport> {
        let r = req.into_inner();
        ok(self.service.task_agreement(&r.project, &r.task).await)
    }

    async fn set_suggestions(
        &self,
        req: Request<SetSuggestionsRequest>,
    ) -> Reply<SetSuggestionsResponse> {
        let actor = actor_of(&req);
        let r = req.into_inner();
        ok(self
            .service
            .set_suggestions(&actor, &r.project, &r.task, r.suggestions)
            .await
            .map(|stored| SetSuggestionsResponse { stored }))
    }

    type ExportAnswersStream = ExportStream;

    async fn export_answers(&self, req: Request<ExportAnswersRequest>) -> Reply<ExportStream> {
        let actor = actor_of(&req);
        let r = req.into_inner();
        let selection = match r.selection() {
            ExportSelection::Unspecified => ExportSelection::Answers,
            s => s,
        };
        let rx = self
            .service
            .export_answers(&actor, &r.project, &r.task, selection, r.format())
            .await?;
        Ok(stream_chunks(rx))
    }

    async fn import_answers(
        &self,
        req: Request<tonic::Streaming<ImportAnswersRequest>>,
    ) -> Reply<ImportAnswersSummary> {
        use futures::StreamExt as _;
        let actor = actor_of(&req);
        let mut stream = req.into_inner();
        let header = match stream.next().await {
            Some(Ok(ImportAnswersRequest {
                item: Some(import_answers_request::Item::Header(h)),
            })) => h,
            Some(Err(status)) => return Err(status),
            _ => {
                return Err(Status::invalid_argument(
                    "the first message of an import must be its header",
                ))
            }
        };
        let data = stream.map(|msg| match msg {
            Ok(ImportAnswersRequest {
                item: Some(import_answers_request::Item::Data(bytes)),
            }) => Ok(bytes::Bytes::from(bytes)),
            Ok(_) => Err(crate::ServiceError::InvalidArgument(
                "only the first message of an import may be a header".into(),
            )),
            Err(status) => Err(crate::ServiceError::Unavailable(format!(
                "import stream broke: {status}"
            ))),
        });
        ok(self
            .service
            .import_answers(&actor, header, Box::pin(data))
            .await)
    }

    async fn set_group(&self, req: Request<SetGroupRequest>) -> Reply<Group> {
        let actor = actor_of(&req);
        let group = require(req.into_inner().group, "group")?;
        ok(self.service.set_group(&actor, group).await)
    }
}

#[tonic::async_trait]
impl feed_service_server::FeedService for Api {
    async fn next_examples(&self, req: Request<NextRequest>) -> Reply<NextResponse> {
        let actor = actor_of(&req);
        let caller = caller(&req);
        let r = req.into_inner();
        act_as(caller.as_ref(), &r.annotator)?;
        ok(self.service.next_examples(&actor, r).await)
    }

    async fn heartbeat(&self, req: Request<HeartbeatRequest>) -> Reply<HeartbeatResponse> {
        let actor = actor_of(&req);
        let caller = caller(&req);
        let r = req.into_inner();
        act_as(caller.as_ref(), &r.annotator)?;
        ok(self
            .service
            .heartbeat(&actor, &r.project, &r.task, &r.annotator)
            .await
            .map(|g| HeartbeatResponse {
                lease_expires_at_ms: g.expires_at_ms,
                leased: g.seqs.len() as u64,
            }))
    }

    async fn submit_answer(&self, req: Request<SubmitRequest>) -> Reply<SubmitResponse> {
        let actor = actor_of(&req);
        let caller = caller(&req);
        let answer = require(req.into_inner().answer, "answer")?;
        act_as(caller.as_ref(), &answer.annotator)?;
        ok(self
            .service
            .submit_answer(&actor, answer, false)
            .await
            .map(|(answer, duplicate)| SubmitResponse {
                answer: Some(answer),
                duplicate,
            }))
    }

    async fn revise_answer(&self, req: Request<SubmitRequest>) -> Reply<SubmitResponse> {
        let actor = actor_of(&req);
        let caller = caller(&req);
        let answer = require(req.into_inner().answer, "answer")?;
        act_as(caller.as_ref(), &answer.annotator)?;
        ok(self
            .service
            .submit_answer(&actor, answer, true)
            .await
            .map(|(answer, duplicate)| SubmitResponse {
                answer: Some(answer),
                duplicate,
            }))
    }

    async fn undo_answer(&self, req: Request<UndoRequest>) -> Reply<UndoResponse> {
        let actor = actor_of(&req);
        let caller = caller(&req);
        let r = req.into_inner();
        act_as(caller.as_ref(), &r.annotator)?;
        ok(self
            .service
            .undo_answer(&actor, &r.project, &r.task, &r.annotator, r.seq)
            .await
            .map(|example| UndoResponse {
                example: Some(example),
            }))
    }
}

#[tonic::async_trait]
impl review_service_server::ReviewService for Api {
    async fn list_review_queue(
        &self,
        req: Request<ListReviewQueueRequest>,
    ) -> Reply<ListReviewQueueResponse> {
        let r = req.into_inner();
        ok(self
            .service
            .review_queue(&r.project, &r.task, r.page_size, r.after_seq)
            .await
            .map(|(items, pending)| ListReviewQueueResponse { items, pending }))
    }

    async fn resolve_review(&self, req: Request<ResolveReviewRequest>) -> Reply<GoldRecord> {
        let actor = actor_of(&req);
        let caller = caller(&req);
        let mut r = req.into_inner();
        // The reviewer on record is whoever signed the request.
        if let Some(c) = caller {
            r.reviewer = c.user.name;
        }
        ok(self.service.resolve_review(&actor, r).await)
    }
}
