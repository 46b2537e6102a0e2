//! gRPC adapters of the job service (public port) and the worker service (internal port).

use std::pin::Pin;

use futures::{Stream, StreamExt as _};
use gloss_proto::v1::*;
use tonic::{Request, Response, Status, Streaming};

use crate::access::actor_of;
use crate::grpc::{ok, Api};

type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl job_service_server::JobService for Api {
    async fn submit_job(&self, req: Request<SubmitJobRequest>) -> Reply<Job> {
        let actor = actor_of(&req);
        ok(self.service.submit_job(&actor, req.into_inner()).await)
    }

    async fn list_jobs(&self, req: Request<ListJobsRequest>) -> Reply<ListJobsResponse> {
        let r = req.into_inner();
        let states: Vec<JobState> = r
            .states
            .iter()
            .filter_map(|s| JobState::try_from(*s).ok())
            .collect();
        ok(self
            .service
            .list_jobs(&states, r.limit)
            .await
            .map(|jobs| ListJobsResponse { jobs }))
    }

    async fn get_job(&self, req: Request<GetJobRequest>) -> Reply<Job> {
        ok(self.service.get_job(&req.into_inner().id).await)
    }

    async fn cancel_job(&self, req: Request<CancelJobRequest>) -> Reply<Job> {
        let actor = actor_of(&req);
        ok(self.service.cancel_job(&actor, &req.into_inner().id).await)
    }

    async fn job_logs(&self, req: Request<JobLogsRequest>) -> Reply<JobLogsResponse> {
        let r = req.into_inner();
        ok(self
            .service
            .job_logs(&r.id, r.after)
            .await
            .map(|lines| JobLogsResponse { lines }))
    }

    async fn list_workers(&self, _: Request<ListWorkersRequest>) -> Reply<ListWorkersResponse> {
        ok(self
            .service
            .list_workers()
            .await
            .map(|workers| ListWorkersResponse { workers }))
    }
}

#[tonic::async_trait]
impl worker_service_server::WorkerService for Api {
    async fn register(&self, req: Request<RegisterWorkerRequest>) -> Reply<RegisterWorkerResponse> {
        let r = req.into_inner();
        let worker = r.worker.unwrap_or_default();
        ok(self
            .service
            .register_worker(&r.join_token, worker)
            .await
            .map(|w| RegisterWorkerResponse {
                worker_id: w.id,
                heartbeat_interval_ms: crate::jobs::HEARTBEAT_INTERVAL_MS,
            }))
    }

    async fn heartbeat(
        &self,
        req: Request<WorkerHeartbeatRequest>,
    ) -> Reply<WorkerHeartbeatResponse> {
        let r = req.into_inner();
        ok(self.service.worker_heartbeat(&r.worker_id, r.running).await)
    }

    async fn report_progress(&self, req: Request<JobProgressReport>) -> Reply<JobReportReply> {
        ok(self.service.report_job(Some(req.into_inner()), None).await)
    }

    async fn finish_job(&self, req: Request<JobFinishReport>) -> Reply<JobReportReply> {
        ok(self.service.report_job(None, Some(req.into_inner())).await)
    }

    async fn upload_model(&self, req: Request<Streaming<ArtifactChunk>>) -> Reply<Model> {
        let mut stream = req.into_inner();
        let mut chunks = Vec::new();
        let mut bytes = 0usize;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            bytes += chunk.data.len();
            if bytes as u64 > crate::models::MAX_ARTIFACT_BYTES {
                return Err(Status::invalid_argument(
                    "the artifact is larger than 256 MiB",
                ));
            }
            chunks.push(chunk);
        }
        ok(self.service.upload_model(chunks).await)
    }

    type DownloadModelStream = ArtifactStream;

    async fn download_model(&self, req: Request<GetModelRequest>) -> Reply<ArtifactStream> {
        artifact_stream(self, req.into_inner()).await
    }

    async fn record_evaluation(&self, req: Request<Evaluation>) -> Reply<Evaluation> {
        ok(self.service.record_evaluation(req.into_inner()).await)
    }
}

type ArtifactStream = Pin<Box<dyn Stream<Item = Result<ArtifactChunk, Status>> + Send>>;

async fn artifact_stream(api: &Api, req: GetModelRequest) -> Reply<ArtifactStream> {
    let (_, chunks) = api.service.model_chunks(&req.name, req.version).await?;
    let stream = futures::stream::iter(chunks.into_iter().map(Ok));
    Ok(Response::new(Box::pin(stream)))
}

#[tonic::async_trait]
impl model_service_server::ModelService for Api {
    async fn list_models(&self, req: Request<ListModelsRequest>) -> Reply<ListModelsResponse> {
        let r = req.into_inner();
        ok(self
            .service
            .list_models(&r.project, &r.task)
            .await
            .map(|models| ListModelsResponse { models }))
    }

    async fn get_model(&self, req: Request<GetModelRequest>) -> Reply<Model> {
        let r = req.into_inner();
        ok(self.service.get_model(&r.name, r.version).await)
    }

    async fn promote_model(&self, req: Request<PromoteModelRequest>) -> Reply<Model> {
        let actor = actor_of(&req);
        let r = req.into_inner();
        ok(self
            .service
            .promote_model(&actor, &r.name, r.version, r.force, &r.by)
            .await)
    }

    type ExportModelStream = ArtifactStream;

    async fn export_model(&self, req: Request<GetModelRequest>) -> Reply<ArtifactStream> {
        let actor = actor_of(&req);
        let r = req.into_inner();
        self.service
            .audit(
                &actor,
                "export_model",
                &format!("{}@{}", r.name, r.version),
                "",
            )
            .await?;
        artifact_stream(self, r).await
    }

    async fn list_evaluations(
        &self,
        req: Request<ListEvaluationsRequest>,
    ) -> Reply<ListEvaluationsResponse> {
        let r = req.into_inner();
        ok(self
            .service
            .list_evaluations(&r.project, &r.task)
            .await
            .map(|evaluations| ListEvaluationsResponse { evaluations }))
    }
}

#[tonic::async_trait]
impl audit_service_server::AuditService for Api {
    async fn list_audit(&self, req: Request<ListAuditRequest>) -> Reply<ListAuditResponse> {
        let r = req.into_inner();
        ok(self
            .service
            .list_audit(r.after_seq, r.limit)
            .await
            .map(|events| ListAuditResponse { events }))
    }
}
