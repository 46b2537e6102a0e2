//! The replicated state of a Gloss cluster: how each [`Command`] changes RocksDB ([`apply`]) and
//! how that state is read back.
//!
//! One module per domain, each holding that domain's commands and its reads: `datasets` and
//! `imports` (projects, datasets, atomic imports), `tasks` (tasks, groups, progress), `feed`
//! (leases; `feed::answers` for answers, revisions and undo), `review` (disagreements and gold),
//! `users`, `jobs`, `models`, `audit`, `backup`; `read` holds the cross-domain reads and the
//! state digest.
//!
//! Depends on `gloss-store` for the layout and `gloss-proto` for the command and record types.
//! `apply` is deterministic: it never reads a clock, a random source or anything but the database
//! and the command, so every coordinator that applies the same log holds the same bytes. It must
//! never know about Raft, networks or async runtimes.

mod apply;
pub mod audit;
pub mod backup;
mod datasets;
pub mod feed;
pub mod images;
mod imports;
pub mod jobs;
pub mod models;
mod overlay;
pub mod read;
pub mod review;
pub mod tasks;
pub mod users;

pub use apply::apply;
use gloss_proto::v1::{command_result, CommandError, CommandResult};
use gloss_proto::ErrorCode;

/// Failures that stop the state machine (storage broken, log written by a newer binary).
/// Rejected commands are not errors: they produce a [`CommandResult`] holding a [`CommandError`].
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The storage layer failed.
    #[error(transparent)]
    Store(#[from] gloss_store::StoreError),
    /// RocksDB failed.
    #[error("rocksdb: {0}")]
    Rocks(#[from] gloss_store::rocksdb::Error),
    /// A stored record could not be decoded.
    #[error("corrupt {what}: {source}")]
    Corrupt {
        what: &'static str,
        source: prost::DecodeError,
    },
    /// The command was encoded by a newer Gloss than this one.
    #[error("command version {found} is newer than this binary supports ({supported}); upgrade this node")]
    UnsupportedVersion { found: u32, supported: u32 },
}

/// Builds an accepted command's result.
pub(crate) fn ok(result: command_result::Result) -> CommandResult {
    CommandResult {
        result: Some(result),
    }
}

/// Builds a rejected command's result.
pub fn rejected(code: ErrorCode, message: impl Into<String>) -> CommandResult {
    CommandResult {
        result: Some(command_result::Result::Error(CommandError {
            code: code.as_str().into(),
            message: message.into(),
        })),
    }
}

/// Import states stored in [`gloss_proto::v1::ImportRecord::state`].
pub mod import_state {
    pub const OPEN: u32 = 0;
    pub const COMMITTED: u32 = 1;
    pub const ABORTED: u32 = 2;
}

/// Checks a project or dataset name: 1-64 characters of `a-z`, `0-9`, `-`, `_`, starting with a
/// letter or digit. Returns the reason it is not valid.
pub fn check_name(kind: &str, name: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
    if name.is_empty() || name.len() > 64 {
        return Err(format!(
            "{kind} name must be 1-64 characters, got {}",
            name.len()
        ));
    }
    if !name.chars().all(ok_char) {
        return Err(format!(
            "{kind} name {name:?} may only contain lowercase letters, digits, '-' and '_'"
        ));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(format!(
            "{kind} name {name:?} must start with a letter or digit"
        ));
    }
    Ok(())
}

/// Input hash as 32 lowercase hex digits.
pub fn hash_hex(hash: &[u8]) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
