//! The coordinator's error enum and its one mapping to `tonic::Status`.

use gloss_proto::v1::{CommandError, ImportSummary};
use gloss_raft::openraft::error::{
    CheckIsLeaderError, ClientWriteError, ForwardToLeader, RaftError,
};
use gloss_raft::{NodeId, NodeInfo};
use prost::Message;

/// Metadata key carrying the leader's public address on a NOT_LEADER answer.
pub const LEADER_METADATA: &str = "gloss-leader";

/// Everything a coordinator request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    PermissionDenied(String),
    /// No valid credentials came with the request.
    #[error("{0}")]
    Unauthenticated(String),
    /// This node cannot serve the request; the leader may.
    #[error("this coordinator is not the leader{}", leader.as_ref().map(|l| format!("; the leader is at {l}")).unwrap_or_default())]
    NotLeader { leader: Option<String> },
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// An import was rejected; the summary lists the bad records.
    #[error("{message}")]
    ImportRejected {
        message: String,
        summary: Box<ImportSummary>,
    },
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<CommandError> for ServiceError {
    fn from(e: CommandError) -> Self {
        use gloss_state::code;
        match e.code.as_str() {
            code::NOT_FOUND => ServiceError::NotFound(e.message),
            code::ALREADY_EXISTS => ServiceError::AlreadyExists(e.message),
            code::FAILED_PRECONDITION => ServiceError::FailedPrecondition(e.message),
            code::INVALID_ARGUMENT => ServiceError::InvalidArgument(e.message),
            code::PERMISSION_DENIED => ServiceError::PermissionDenied(e.message),
            other => ServiceError::Internal(format!("unknown rejection {other}: {}", e.message)),
        }
    }
}

impl From<gloss_state::StateError> for ServiceError {
    fn from(e: gloss_state::StateError) -> Self {
        ServiceError::Internal(e.to_string())
    }
}

impl From<gloss_store::StoreError> for ServiceError {
    fn from(e: gloss_store::StoreError) -> Self {
        ServiceError::Internal(e.to_string())
    }
}

fn not_leader(f: ForwardToLeader<NodeId, NodeInfo>) -> ServiceError {
    ServiceError::NotLeader {
        leader: f.leader_node.map(|n| n.api_addr),
    }
}

impl From<RaftError<NodeId, ClientWriteError<NodeId, NodeInfo>>> for ServiceError {
    fn from(e: RaftError<NodeId, ClientWriteError<NodeId, NodeInfo>>) -> Self {
        match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => not_leader(f),
            RaftError::APIError(other) => ServiceError::Internal(other.to_string()),
            RaftError::Fatal(f) => ServiceError::Unavailable(f.to_string()),
        }
    }
}

impl From<RaftError<NodeId, CheckIsLeaderError<NodeId, NodeInfo>>> for ServiceError {
    fn from(e: RaftError<NodeId, CheckIsLeaderError<NodeId, NodeInfo>>) -> Self {
        match e {
            RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f)) => not_leader(f),
            RaftError::APIError(other) => ServiceError::Unavailable(other.to_string()),
            RaftError::Fatal(f) => ServiceError::Unavailable(f.to_string()),
        }
    }
}

impl From<ServiceError> for tonic::Status {
    fn from(e: ServiceError) -> Self {
        use tonic::Code;
        let message = e.to_string();
        match e {
            ServiceError::InvalidArgument(_) => tonic::Status::new(Code::InvalidArgument, message),
            ServiceError::NotFound(_) => tonic::Status::new(Code::NotFound, message),
            ServiceError::AlreadyExists(_) => tonic::Status::new(Code::AlreadyExists, message),
            ServiceError::FailedPrecondition(_) => {
                tonic::Status::new(Code::FailedPrecondition, message)
            }
            ServiceError::PermissionDenied(_) => {
                tonic::Status::new(Code::PermissionDenied, message)
            }
            ServiceError::Unauthenticated(_) => tonic::Status::new(Code::Unauthenticated, message),
            ServiceError::NotLeader { leader } => {
                let mut status = tonic::Status::new(Code::Unavailable, message);
                if let Some(value) = leader.and_then(|l| l.parse().ok()) {
                    status.metadata_mut().insert(LEADER_METADATA, value);
                }
                status
            }
            ServiceError::Unavailable(_) => tonic::Status::new(Code::Unavailable, message),
            ServiceError::ImportRejected { summary, .. } => tonic::Status::with_details(
                Code::InvalidArgument,
                message,
                summary.encode_to_vec().into(),
            ),
            ServiceError::Internal(_) => tonic::Status::new(Code::Internal, message),
        }
    }
}
