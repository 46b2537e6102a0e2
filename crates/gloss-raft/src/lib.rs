//! Raft for the Gloss coordinator group, built on openraft 0.9: the type configuration, the
//! RocksDB log store ([`LogStore`]), the state machine adaptor over `gloss-state`
//! ([`StateMachineStore`]) with snapshots made from RocksDB checkpoints and streamed as files,
//! and the gRPC transport ([`network`]).
//!
//! Depends on `gloss-state` for what commands mean and `gloss-store` for the on-disk layout.
//! It must never interpret commands itself, and never hold a whole snapshot or state in memory.

/// Returns an injected storage error from the enclosing function when the named failpoint is
/// configured (feature `failpoints` only; compiled out otherwise).
macro_rules! failpoint {
    ($name:literal) => {
        #[cfg(feature = "failpoints")]
        {
            if fail::eval($name, |_| ()).is_some() {
                return Err($crate::injected($name));
            }
        }
    };
}

#[cfg(feature = "failpoints")]
pub(crate) fn injected(point: &str) -> StorageError {
    let e = std::io::Error::other(format!("injected failure at {point}"));
    openraft::StorageIOError::write_state_machine(&e).into()
}

pub mod faults;
mod log_store;
pub mod membership;
pub mod network;
mod state_machine;
pub mod watchdog;

pub use log_store::LogStore;
pub use openraft;
use serde::{Deserialize, Serialize};
pub use state_machine::{StateHandle, StateMachineStore};

/// Application data of a log entry: one encoded `gloss.v1.Command`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Request {
    /// Protobuf-encoded `gloss.v1.Command`.
    #[serde(with = "serde_bytes")]
    pub command: Vec<u8>,
}

/// Result of applying an entry: one encoded `gloss.v1.CommandResult` (empty for blank and
/// membership entries).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Response {
    /// Protobuf-encoded `gloss.v1.CommandResult`.
    #[serde(with = "serde_bytes")]
    pub result: Vec<u8>,
}

/// Addresses of a coordinator, as stored in the Raft membership.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Internal address (Raft and workers).
    pub raft_addr: String,
    /// Public gRPC address.
    pub api_addr: String,
}

impl std::fmt::Display for NodeInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "raft={} api={}", self.raft_addr, self.api_addr)
    }
}

openraft::declare_raft_types!(
    /// Openraft type configuration of Gloss.
    pub TypeConfig:
        D = Request,
        R = Response,
        NodeId = u64,
        Node = NodeInfo,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = tokio::fs::File,
        AsyncRuntime = openraft::TokioRuntime,
);

/// The Raft handle of a Gloss coordinator.
pub type Raft = openraft::Raft<TypeConfig>;
/// Node id of a coordinator.
pub type NodeId = u64;
/// Storage error as openraft reports it.
pub type StorageError = openraft::StorageError<NodeId>;

/// Errors of opening and running the Raft storage.
#[derive(Debug, thiserror::Error)]
pub enum RaftError {
    /// Storage layer failure.
    #[error(transparent)]
    Store(#[from] gloss_store::StoreError),
    /// Filesystem failure on a data directory path.
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// Openraft rejected its configuration.
    #[error("invalid raft config: {0}")]
    Config(#[from] openraft::ConfigError),
    /// Openraft failed to start.
    #[error("raft: {0}")]
    Fatal(#[from] openraft::error::Fatal<NodeId>),
}

pub(crate) fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> RaftError + '_ {
    move |source| RaftError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Tunables of the Raft group.
#[derive(Clone, Debug)]
pub struct RaftSettings {
    /// Heartbeat interval in milliseconds.
    pub heartbeat_ms: u64,
    /// Election timeout lower bound in milliseconds (upper bound is twice this).
    pub election_timeout_ms: u64,
    /// Build a snapshot after this many entries since the last one.
    pub snapshot_every: u64,
    /// Bytes per snapshot chunk on the wire.
    pub snapshot_chunk_bytes: u64,
    /// Injected network faults (tests only).
    pub faults: Option<faults::Faults>,
    /// Mutual TLS towards peers (the node's certificate and the cluster CA).
    pub tls: Option<gloss_tls::ClientTls>,
    /// Most encoded bytes of entries in one AppendEntries (one larger entry still goes alone).
    pub max_append_bytes: usize,
    /// Where log appends, applies and replication timeouts are recorded.
    pub stages: std::sync::Arc<gloss_core::stages::Stages>,
}

impl RaftSettings {
    /// How long a follower refuses other candidates after hearing from the leader (openraft
    /// uses the maximum election timeout).
    pub fn leader_lease(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.election_timeout_ms * 2)
    }
}

impl Default for RaftSettings {
    fn default() -> Self {
        RaftSettings {
            heartbeat_ms: 50,
            election_timeout_ms: 300,
            snapshot_every: 20_000,
            snapshot_chunk_bytes: 4 << 20,
            faults: None,
            tls: None,
            max_append_bytes: log_store::MAX_APPEND_BYTES,
            stages: Default::default(),
        }
    }
}

impl RaftSettings {
    fn openraft_config(&self) -> Result<openraft::Config, RaftError> {
        let config = openraft::Config {
            cluster_name: "gloss".into(),
            heartbeat_interval: self.heartbeat_ms,
            election_timeout_min: self.election_timeout_ms,
            election_timeout_max: self.election_timeout_ms * 2,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_every),
            snapshot_max_chunk_size: self.snapshot_chunk_bytes,
            // Keep a tail of log behind each snapshot so a briefly lagging follower catches up
            // from the log rather than a whole snapshot.
            max_in_snapshot_log_to_keep: self.snapshot_every.min(1_000),
            max_payload_entries: 64,
            ..Default::default()
        };
        Ok(config.validate()?)
    }
}

/// Opens the storage under `data_dir` and starts the Raft node. The caller serves
/// [`network::RaftGrpc`] on the internal port and initialises the group when it is new.
pub async fn start(
    node_id: NodeId,
    data_dir: &std::path::Path,
    settings: &RaftSettings,
) -> Result<(Raft, StateHandle), RaftError> {
    let log = LogStore::open(&data_dir.join("raft-log"))?
        .with_stages(settings.stages.clone())
        .with_max_append_bytes(settings.max_append_bytes);
    let sm = StateMachineStore::open(data_dir)?.with_stages(settings.stages.clone());
    let handle = sm.handle();
    let config = std::sync::Arc::new(settings.openraft_config()?);
    let raft = Raft::new(
        node_id,
        config,
        network::GrpcNetworkFactory::new(node_id, settings.faults.clone(), settings.tls.clone())
            .with_stages(settings.stages.clone()),
        log,
        sm,
    )
    .await?;
    Ok((raft, handle))
}
