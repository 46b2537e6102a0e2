//! The public gRPC services: thin adapters from protobuf requests to [`Service`] calls.

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use gloss_proto::v1::*;
use tonic::{Request, Response, Status, Streaming};

use gloss_raft::membership::MembershipChange;

use crate::access::actor_of;
use crate::error::ServiceError;
use crate::service::Service;

type Reply<T> = Result<Response<T>, Status>;

/// gRPC adapter over the shared service layer.
#[derive(Clone)]
pub struct Api {
    pub(crate) service: Arc<Service>,
}

impl Api {
    /// Serves `service` over gRPC.
    pub fn new(service: Arc<Service>) -> Self {
        Api { service }
    }
}

/// An export's chunks as a gRPC response stream.
pub(crate) fn stream_chunks(
    rx: tokio::sync::mpsc::Receiver<Result<ExportChunk, ServiceError>>,
) -> Response<ExportStream> {
    let stream =
        tokio_stream::wrappers::ReceiverStream::new(rx).map(|item| item.map_err(Status::from));
    Response::new(Box::pin(stream))
}

pub(crate) fn ok<T>(r: Result<T, ServiceError>) -> Reply<T> {
    r.map(Response::new).map_err(Status::from)
}

#[tonic::async_trait]
impl cluster_service_server::ClusterService for Api {
    async fn get_cluster_status(
        &self,
        _: Request<GetClusterStatusRequest>,
    ) -> Reply<ClusterStatus> {
        ok(self.service.cluster_status().await)
    }

    async fn add_learner(&self, req: Request<AddLearnerRequest>) -> Reply<ClusterStatus> {
        let actor = actor_of(&req);
        let r = req.into_inner();
        if r.node_id == 0 || r.raft_address.is_empty() {
            return Err(Status::invalid_argument(
                "add_learner needs a node_id >= 1 and a raft_address",
            ));
        }
        let change = MembershipChange::AddLearner {
            node_id: r.node_id,
            node: gloss_raft::NodeInfo {
                raft_addr: r.raft_address,
                api_addr: r.api_address,
            },
        };
        ok(self.service.change_membership(&actor, change).await)
    }

    async fn promote_member(&self, req: Request<PromoteMemberRequest>) -> Reply<ClusterStatus> {
        let actor = actor_of(&req);
        let node_id = req.into_inner().node_id;
        ok(self
            .service
            .change_membership(&actor, MembershipChange::Promote { node_id })
            .await)
    }

    type CreateBackupStream = Pin<Box<dyn Stream<Item = Result<BackupChunk, Status>> + Send>>;

    async fn create_backup(
        &self,
        req: Request<CreateBackupRequest>,
    ) -> Reply<Self::CreateBackupStream> {
        let actor = actor_of(&req);
        let rx = self.service.backup(&actor).await?;
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx).map(|item| {
            item.map(|data| BackupChunk {
                data: data.to_vec(),
            })
            .map_err(Status::from)
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn restore_backup(
        &self,
        req: Request<tonic::Streaming<BackupChunk>>,
    ) -> Reply<RestoreSummary> {
        let actor = actor_of(&req);
        let stream = req.into_inner().map(|c| {
            c.map(|c| bytes::Bytes::from(c.data))
                .map_err(|s| ServiceError::InvalidArgument(format!("upload: {}", s.message())))
        });
        ok(self.service.restore(&actor, Box::pin(stream)).await)
    }

    async fn get_state_digest(&self, _: Request<GetStateDigestRequest>) -> Reply<StateDigest> {
        ok(self.service.state_digest_report().await)
    }

    async fn remove_member(&self, req: Request<RemoveMemberRequest>) -> Reply<ClusterStatus> {
        let actor = actor_of(&req);
        let node_id = req.into_inner().node_id;
        ok(self
            .service
            .change_membership(&actor, MembershipChange::Remove { node_id })
            .await)
    }
}

#[tonic::async_trait]
impl project_service_server::ProjectService for Api {
    async fn create_project(&self, req: Request<CreateProjectRequest>) -> Reply<Project> {
        let actor = actor_of(&req);
        let r = req.into_inner();
        ok(self
            .service
            .create_project(&actor, &r.name, &r.description, r.idempotency_key)
            .await)
    }

    async fn list_projects(
        &self,
        req: Request<ListProjectsRequest>,
    ) -> Reply<ListProjectsResponse> {
        // A user whose roles are held in single projects sees those projects only.
        let scoped = req
            .extensions()
            .get::<crate::users::Caller>()
            .filter(|c| c.user.roles.is_empty())
            .map(|c| c.user.project_roles.clone());
        ok(self.service.list_projects().await.map(|projects| {
            let projects = match scoped {
                Some(grants) => projects
                    .into_iter()
                    .filter(|p| grants.iter().any(|g| g.project == p.name))
                    .collect(),
                None => projects,
            };
            ListProjectsResponse { projects }
        }))
    }

    async fn get_project(&self, req: Request<GetProjectRequest>) -> Reply<Project> {
        ok(self.service.get_project(&req.into_inner().name).await)
    }

    async fn delete_project(
        &self,
        req: Request<DeleteProjectRequest>,
    ) -> Reply<DeleteProjectResponse> {
        let actor = actor_of(&req);
        let r = req.into_inner();
        ok(self
            .service
            .delete_project(&actor, &r.name, r.force)
            .await
            .map(|_| DeleteProjectResponse {}))
    }
}

pub(crate) type ExportStream = Pin<Box<dyn Stream<Item = Result<ExportChunk, Status>> + Send>>;

#[tonic::async_trait]
impl dataset_service_server::DatasetService for Api {
    async fn create_dataset(&self, req: Request<CreateDatasetRequest>) -> Reply<Dataset> {
        let actor = actor_of(&req);
        let r = req.into_inner();
        let create = gloss_proto::v1::CreateDataset {
            project: r.project,
            name: r.name,
            kind: r.kind,
            description: r.description,
        };
        ok(self.service.create_dataset(&actor, create).await)
    }

    async fn list_datasets(
        &self,
        req: Request<ListDatasetsRequest>,
    ) -> Reply<ListDatasetsResponse> {
        let r = req.into_inner();
        ok(self
            .service
            .list_datasets(&r.project)
            .await
            .map(|datasets| ListDatasetsResponse { datasets }))
    }

    async fn get_dataset(&self, req: Request<GetDatasetRequest>) -> Reply<Dataset> {
        let r = req.into_inner();
        ok(self.service.get_dataset(&r.project, &r.name).await)
    }

    async fn delete_dataset(
        &self,
        req: Request<DeleteDatasetRequest>,
    ) -> Reply<DeleteDatasetResponse> {
        let actor = actor_of(&req);
        let r = req.into_inner();
        ok(self
            .service
            .delete_dataset(&actor, &r.project, &r.name)
            .await
            .map(|_| DeleteDatasetResponse {}))
    }

    async fn import_examples(
        &self,
        req: Request<Streaming<ImportRequest>>,
    ) -> Reply<ImportSummary> {
        let actor = actor_of(&req);
        let mut stream = req.into_inner();
        let header = match stream.next().await {
            Some(Ok(ImportRequest {
                item: Some(import_request::Item::Header(h)),
            })) => h,
            Some(Err(status)) => return Err(status),
            _ => {
                return Err(Status::invalid_argument(
                    "the first message of an import must be its header",
                ))
            }
        };
        let data = stream.map(|msg| match msg {
            Ok(ImportRequest {
                item: Some(import_request::Item::Data(bytes)),
            }) => Ok(bytes::Bytes::from(bytes)),
            Ok(_) => Err(ServiceError::InvalidArgument(
                "only the first message of an import may be a header".into(),
            )),
            Err(status) => Err(ServiceError::Unavailable(format!(
                "import stream broke: {status}"
            ))),
        });
        // Run the import in its own task: if the client goes away and tonic drops this handler,
        // the import still sees the broken stream and aborts instead of staying open.
        let service = self.service.clone();
        // It keeps the request's span.
        let import = tokio::spawn(tracing::Instrument::in_current_span(async move {
            service.import(&actor, header, data.boxed()).await
        }));
        match import.await {
            Ok(result) => ok(result),
            Err(e) => Err(Status::internal(format!("import task failed: {e}"))),
        }
    }

    type ExportExamplesStream = ExportStream;

    async fn export_examples(&self, req: Request<ExportRequest>) -> Reply<ExportStream> {
        let actor = actor_of(&req);
        let r = req.into_inner();
        Ok(stream_chunks(
            self.service.export(&actor, &r.project, &r.dataset).await?,
        ))
    }

    async fn list_examples(
        &self,
        req: Request<ListExamplesRequest>,
    ) -> Reply<ListExamplesResponse> {
        let r = req.into_inner();
        let page = self
            .service
            .list_examples(&r.project, &r.dataset, r.page_size, &r.page_token)
            .await;
        ok(
            page.map(|(examples, next_page_token)| ListExamplesResponse {
                examples,
                next_page_token,
            }),
        )
    }
}
