//! The coordinator's error enum, its one [`ErrorCode`] ([`ServiceError::code`]) and from that
//! the one mapping to `tonic::Status` (the web API maps the same code to HTTP).

use gloss_proto::v1::{CommandError, ImportAnswersSummary, ImportSummary};
use gloss_proto::ErrorCode;
use gloss_raft::openraft::error::{
    CheckIsLeaderError, ClientWriteError, ForwardToLeader, RaftError,
};
use gloss_raft::{NodeId, NodeInfo};
use prost::Message;

/// Metadata key carrying the leader's public address on a NOT_LEADER answer.
pub const LEADER_METADATA: &str = "gloss-leader";

/// Everything a coordinator request can fail with.
#[derive(Clone, Debug, thiserror::Error)]
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
    /// An import of annotations was rejected; the summary lists the bad records.
    #[error("{message}")]
    AnswersRejected {
        message: String,
        summary: Box<ImportAnswersSummary>,
    },
    #[error("internal error: {0}")]
    Internal(String),
}

impl ServiceError {
    /// The error's code, from which every transport derives its status.
    pub fn code(&self) -> ErrorCode {
        match self {
            ServiceError::InvalidArgument(_)
            | ServiceError::ImportRejected { .. }
            | ServiceError::AnswersRejected { .. } => ErrorCode::InvalidArgument,
            ServiceError::NotFound(_) => ErrorCode::NotFound,
            ServiceError::AlreadyExists(_) => ErrorCode::AlreadyExists,
            ServiceError::FailedPrecondition(_) => ErrorCode::FailedPrecondition,
            ServiceError::PermissionDenied(_) => ErrorCode::PermissionDenied,
            ServiceError::Unauthenticated(_) => ErrorCode::Unauthenticated,
            ServiceError::NotLeader { .. } => ErrorCode::NotLeader,
            ServiceError::Unavailable(_) => ErrorCode::Unavailable,
            ServiceError::Internal(_) => ErrorCode::Internal,
        }
    }

    /// The error a code stands for, with `message`.
    pub fn with_code(code: ErrorCode, message: String) -> ServiceError {
        match code {
            ErrorCode::InvalidArgument => ServiceError::InvalidArgument(message),
            ErrorCode::NotFound => ServiceError::NotFound(message),
            ErrorCode::AlreadyExists => ServiceError::AlreadyExists(message),
            ErrorCode::FailedPrecondition => ServiceError::FailedPrecondition(message),
            ErrorCode::PermissionDenied => ServiceError::PermissionDenied(message),
            ErrorCode::Unauthenticated => ServiceError::Unauthenticated(message),
            ErrorCode::NotLeader => ServiceError::NotLeader { leader: None },
            ErrorCode::Unavailable => ServiceError::Unavailable(message),
            ErrorCode::Internal => ServiceError::Internal(message),
        }
    }
}

impl From<CommandError> for ServiceError {
    fn from(e: CommandError) -> Self {
        match ErrorCode::parse(&e.code) {
            Some(code) => ServiceError::with_code(code, e.message),
            None => ServiceError::Internal(format!("unknown rejection {}: {}", e.code, e.message)),
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
        let mut status = e.code().status(e.to_string());
        match e {
            ServiceError::NotLeader {
                leader: Some(leader),
            } => {
                if let Ok(value) = leader.parse() {
                    status.metadata_mut().insert(LEADER_METADATA, value);
                }
            }
            ServiceError::ImportRejected { summary, .. } => {
                status = with_details(status, summary.encode_to_vec());
            }
            ServiceError::AnswersRejected { summary, .. } => {
                status = with_details(status, summary.encode_to_vec());
            }
            _ => {}
        }
        status
    }
}

/// `status` carrying `details` (an encoded summary of the records at fault).
fn with_details(status: tonic::Status, details: Vec<u8>) -> tonic::Status {
    tonic::Status::with_details_and_metadata(
        status.code(),
        status.message().to_string(),
        details.into(),
        status.metadata().clone(),
    )
}
