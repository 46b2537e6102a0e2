//! The one error code every layer speaks: the state machine's rejections carry it, the service
//! layer's errors map to it, and gRPC statuses and HTTP answers are derived from it here, once.
//!
//! On the wire it travels as its snake_case name: in [`crate::v1::CommandError::code`] (the Raft
//! log and stored idempotent results keep those strings, so the names never change) and in the
//! `gloss-code` metadata of a gRPC status, which is how one node tells another's "not the
//! leader" from a broken connection without reading the message.

use std::fmt;

/// gRPC metadata key carrying the [`ErrorCode`] of a failed call.
pub const CODE_METADATA: &str = "gloss-code";

/// Why a request or a command failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The request is malformed or names something in a wrong way.
    InvalidArgument,
    /// What the request names does not exist.
    NotFound,
    /// What the request would create exists already.
    AlreadyExists,
    /// The request is valid but the state does not allow it now.
    FailedPrecondition,
    /// The caller may not do this.
    PermissionDenied,
    /// No valid credentials came with the request.
    Unauthenticated,
    /// This node does not lead the group; the leader may serve the request.
    NotLeader,
    /// The cluster cannot serve the request right now; a retry may succeed.
    Unavailable,
    /// A bug or a broken node.
    Internal,
}

impl ErrorCode {
    /// Every code, for tests and tables.
    pub const ALL: [ErrorCode; 9] = [
        ErrorCode::InvalidArgument,
        ErrorCode::NotFound,
        ErrorCode::AlreadyExists,
        ErrorCode::FailedPrecondition,
        ErrorCode::PermissionDenied,
        ErrorCode::Unauthenticated,
        ErrorCode::NotLeader,
        ErrorCode::Unavailable,
        ErrorCode::Internal,
    ];

    /// The code's stable wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidArgument => "invalid_argument",
            ErrorCode::NotFound => "not_found",
            ErrorCode::AlreadyExists => "already_exists",
            ErrorCode::FailedPrecondition => "failed_precondition",
            ErrorCode::PermissionDenied => "permission_denied",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::NotLeader => "not_leader",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }

    /// The code named `name`, if any.
    pub fn parse(name: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == name)
    }

    /// The gRPC status code clients see.
    pub fn grpc(self) -> tonic::Code {
        match self {
            ErrorCode::InvalidArgument => tonic::Code::InvalidArgument,
            ErrorCode::NotFound => tonic::Code::NotFound,
            ErrorCode::AlreadyExists => tonic::Code::AlreadyExists,
            ErrorCode::FailedPrecondition => tonic::Code::FailedPrecondition,
            ErrorCode::PermissionDenied => tonic::Code::PermissionDenied,
            ErrorCode::Unauthenticated => tonic::Code::Unauthenticated,
            // Clients retry UNAVAILABLE on another coordinator, which is right for both.
            ErrorCode::NotLeader | ErrorCode::Unavailable => tonic::Code::Unavailable,
            ErrorCode::Internal => tonic::Code::Internal,
        }
    }

    /// The HTTP status the web API answers with.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidArgument => 400,
            ErrorCode::NotFound => 404,
            ErrorCode::AlreadyExists | ErrorCode::FailedPrecondition => 409,
            ErrorCode::PermissionDenied => 403,
            ErrorCode::Unauthenticated => 401,
            ErrorCode::NotLeader | ErrorCode::Unavailable => 503,
            ErrorCode::Internal => 500,
        }
    }

    /// A gRPC status with this code, carrying the code's name in [`CODE_METADATA`].
    pub fn status(self, message: impl Into<String>) -> tonic::Status {
        let mut status = tonic::Status::new(self.grpc(), message);
        status.metadata_mut().insert(
            CODE_METADATA,
            tonic::metadata::MetadataValue::from_static(self.as_str()),
        );
        status
    }

    /// The code a status was built with by [`ErrorCode::status`]; `None` for statuses from
    /// elsewhere (a broken connection, a peer's transport).
    pub fn of_status(status: &tonic::Status) -> Option<ErrorCode> {
        status
            .metadata()
            .get(CODE_METADATA)
            .and_then(|v| v.to_str().ok())
            .and_then(ErrorCode::parse)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_its_name_and_a_status() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
            assert_eq!(ErrorCode::of_status(&code.status("x")), Some(code));
            assert_eq!(code.status("x").code(), code.grpc());
        }
        assert_eq!(ErrorCode::parse("no_such_code"), None);
        assert_eq!(ErrorCode::of_status(&tonic::Status::unavailable("x")), None);
    }

    #[test]
    fn the_names_stored_in_the_log_never_change() {
        // Stored idempotent results and applied logs hold these strings.
        let names: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(
            names,
            [
                "invalid_argument",
                "not_found",
                "already_exists",
                "failed_precondition",
                "permission_denied",
                "unauthenticated",
                "not_leader",
                "unavailable",
                "internal"
            ]
        );
    }
}
