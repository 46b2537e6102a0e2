//! The coordinator's service layer: every business operation once, used by the gRPC API (and
//! later the web app's JSON API). Writes go through Raft; reads wait for a linearizable barrier
//! and then read the local state machine.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use gloss_core::stages::{Stage, Stages};
use gloss_proto::v1::{
    command, command_result, ClusterStatus, Command, CommandResult, Dataset, ImportRecord, Member,
    Project,
};
use gloss_proto::COMMAND_VERSION;
use gloss_raft::membership::MembershipChange;
use gloss_raft::network::Forwarder;
use gloss_raft::openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use gloss_raft::openraft::ServerState;
use gloss_raft::{NodeInfo, Raft, StateHandle};
use prost::Message;
use tracing::Instrument as _;

use crate::access::Actor;
use crate::error::ServiceError;
use crate::metrics::Metrics;
use crate::proposer::{via_leader, Proposer, Redirect, LEADER_WAIT};

/// Settings the service layer needs.
#[derive(Clone, Debug)]
pub struct ServiceSettings {
    pub node_id: u64,
    pub max_record_bytes: usize,
    pub max_image_bytes: usize,
    /// Where records' relative image paths are read from (none: only inline images).
    pub image_dir: Option<std::path::PathBuf>,
    pub import_batch: usize,
    pub data_dir: String,
    /// Token workers must present to register (none: registration is refused).
    pub join_token: Option<gloss_core::config::Secret>,
    /// First administrator's token, registered instead of a generated one.
    pub admin_token: Option<gloss_core::config::Secret>,
    /// Single sign-on, when configured.
    pub oidc: Option<Arc<crate::oidc::Oidc>>,
    /// Where the time of each request stage is recorded (shared with the Raft storage).
    pub stages: Arc<Stages>,
}

/// Shared state of one coordinator's request handlers.
pub struct Service {
    pub(crate) raft: Raft,
    pub(crate) state: StateHandle,
    pub(crate) settings: ServiceSettings,
    pub(crate) metrics: Arc<Metrics>,
    proposer: Proposer,
    /// Start time of this process, stamped on the imports it owns.
    boot: i64,
}

/// Milliseconds since the Unix epoch, stamped into commands by the proposer.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn role(state: ServerState) -> &'static str {
    match state {
        ServerState::Leader => "leader",
        ServerState::Follower => "follower",
        ServerState::Candidate => "candidate",
        ServerState::Learner => "learner",
        ServerState::Shutdown => "shutdown",
    }
}

impl Service {
    /// Builds the service layer over a started Raft node.
    pub fn new(
        raft: Raft,
        state: StateHandle,
        settings: ServiceSettings,
        metrics: Arc<Metrics>,
        forwarder: Forwarder,
    ) -> Self {
        Service {
            proposer: Proposer::new(raft.clone(), forwarder, settings.stages.clone()),
            raft,
            state,
            settings,
            metrics,
            boot: now_ms(),
        }
    }

    /// Latency histograms of this coordinator's request stages.
    pub fn stages(&self) -> &Arc<Stages> {
        &self.settings.stages
    }

    /// Single sign-on, when configured.
    pub fn sso(&self) -> Option<&Arc<crate::oidc::Oidc>> {
        self.settings.oidc.as_ref()
    }

    /// This node's state database (tests compare restored state through it).
    pub fn state_db(&self) -> std::sync::Arc<gloss_store::rocksdb::DB> {
        self.state.db()
    }

    /// Digest of this node's whole state machine (equal on replicas that applied the same log).
    pub fn state_digest(&self) -> Result<Vec<(&'static str, u128)>, ServiceError> {
        Ok(gloss_state::read::digest(&self.state.db())?)
    }

    /// [`Service::state_digest`] with the applied index it reflects, for the API. The index is
    /// read before and after; the digest is retried until both agree.
    pub async fn state_digest_report(&self) -> Result<gloss_proto::v1::StateDigest, ServiceError> {
        let applied = || {
            self.raft
                .metrics()
                .borrow()
                .last_applied
                .map(|l| l.index)
                .unwrap_or(0)
        };
        loop {
            let before = applied();
            let db = self.state.db();
            let digests = tokio::task::spawn_blocking(move || gloss_state::read::digest(&db))
                .await
                .map_err(|e| ServiceError::Internal(e.to_string()))??;
            if applied() == before {
                return Ok(gloss_proto::v1::StateDigest {
                    node_id: self.settings.node_id,
                    applied_index: before,
                    column_families: digests
                        .into_iter()
                        .map(|(name, d)| gloss_proto::v1::ColumnFamilyDigest {
                            name: name.into(),
                            digest: format!("{d:032x}"),
                        })
                        .collect(),
                });
            }
        }
    }

    /// This coordinator's node id.
    pub fn node_id(&self) -> u64 {
        self.settings.node_id
    }

    /// Start time of this process, as stamped on the imports it owns.
    pub fn boot(&self) -> i64 {
        self.boot
    }

    /// Replicates a command and returns its result, or the state machine's rejection as an error.
    pub async fn propose(
        &self,
        actor: &Actor,
        body: command::Body,
        idempotency_key: String,
    ) -> Result<command_result::Result, ServiceError> {
        let retry_safe = !idempotency_key.is_empty();
        self.propose_with(actor, body, idempotency_key, retry_safe)
            .await
    }

    /// [`Service::propose`] for commands whose repetition is harmless even without a key
    /// (`retry_safe`): they may be resent after a leader change.
    pub(crate) async fn propose_with(
        &self,
        actor: &Actor,
        body: command::Body,
        idempotency_key: String,
        retry_safe: bool,
    ) -> Result<command_result::Result, ServiceError> {
        let cmd = Command {
            version: COMMAND_VERSION,
            at_ms: now_ms(),
            idempotency_key,
            body: Some(body),
            actor: actor.name().to_string(),
        };
        let bytes = cmd.encoded_len();
        // A span only inside a traced request: background proposals (the scheduler's, lease
        // expiry) would each start a trace of their own.
        let span = if tracing::Span::current().is_none() {
            tracing::Span::none()
        } else {
            tracing::info_span!(
                "raft write",
                otel.name = "raft.write",
                command.bytes = bytes,
                raft.node = self.settings.node_id,
            )
        };
        let reply = self
            .proposer
            .replicate(cmd, retry_safe)
            .instrument(span)
            .await?;
        let result = CommandResult::decode(reply.as_slice())
            .map_err(|e| ServiceError::Internal(format!("undecodable command result: {e}")))?;
        match result.result {
            Some(command_result::Result::Error(e)) => Err(e.into()),
            Some(r) => Ok(r),
            None => Err(ServiceError::Internal("empty command result".into())),
        }
    }

    /// Waits until this node's state machine reflects every write acknowledged before the call.
    pub async fn read_barrier(&self) -> Result<(), ServiceError> {
        let _timer = self.stages().time(Stage::ReadBarrier);
        let index = via_leader(
            true,
            || async {
                self.raft
                    .ensure_linearizable()
                    .await
                    .map(|_| None)
                    .map_err(Redirect::from)
            },
            |id, addr| async move {
                self.proposer
                    .forwarder()
                    .read_index(id, &addr)
                    .await
                    .map(Some)
            },
        )
        .await?;
        if let Some(index) = index {
            // On a follower: read once this node has applied what the leader had.
            self.raft
                .wait(Some(LEADER_WAIT))
                .applied_index_at_least(Some(index), "read index applied")
                .await
                .map_err(|e| {
                    ServiceError::Unavailable(format!("catching up to the leader: {e}"))
                })?;
        }
        Ok(())
    }

    /// Creates a project.
    pub async fn create_project(
        &self,
        actor: &Actor,
        name: &str,
        description: &str,
        key: String,
    ) -> Result<Project, ServiceError> {
        gloss_state::check_name("project", name).map_err(ServiceError::InvalidArgument)?;
        let body = command::Body::CreateProject(gloss_proto::v1::CreateProject {
            name: name.into(),
            description: description.into(),
        });
        match self.propose(actor, body, key).await? {
            command_result::Result::Project(p) => Ok(p),
            other => Err(unexpected(other)),
        }
    }

    /// Deletes a project (and, with `force`, its datasets).
    pub async fn delete_project(
        &self,
        actor: &Actor,
        name: &str,
        force: bool,
    ) -> Result<(), ServiceError> {
        let body = command::Body::DeleteProject(gloss_proto::v1::DeleteProject {
            name: name.into(),
            force,
        });
        self.propose(actor, body, String::new()).await.map(|_| ())
    }

    /// All projects.
    pub async fn list_projects(&self) -> Result<Vec<Project>, ServiceError> {
        self.read_barrier().await?;
        Ok(gloss_state::read::projects(&self.state.db())?)
    }

    /// One project.
    pub async fn get_project(&self, name: &str) -> Result<Project, ServiceError> {
        self.read_barrier().await?;
        gloss_state::read::project(&self.state.db(), name)?
            .ok_or_else(|| ServiceError::NotFound(format!("project {name:?} not found")))
    }

    /// Creates a dataset.
    pub async fn create_dataset(
        &self,
        actor: &Actor,
        req: gloss_proto::v1::CreateDataset,
    ) -> Result<Dataset, ServiceError> {
        gloss_state::check_name("dataset", &req.name).map_err(ServiceError::InvalidArgument)?;
        match self
            .propose(actor, command::Body::CreateDataset(req), String::new())
            .await?
        {
            command_result::Result::Dataset(d) => Ok(d),
            other => Err(unexpected(other)),
        }
    }

    /// Deletes a dataset.
    pub async fn delete_dataset(
        &self,
        actor: &Actor,
        project: &str,
        name: &str,
    ) -> Result<(), ServiceError> {
        let body = command::Body::DeleteDataset(gloss_proto::v1::DeleteDataset {
            project: project.into(),
            name: name.into(),
        });
        self.propose(actor, body, String::new()).await.map(|_| ())
    }

    /// A project's datasets.
    pub async fn list_datasets(&self, project: &str) -> Result<Vec<Dataset>, ServiceError> {
        self.read_barrier().await?;
        let db = self.state.db();
        if gloss_state::read::project(&db, project)?.is_none() {
            return Err(ServiceError::NotFound(format!(
                "project {project:?} not found"
            )));
        }
        Ok(gloss_state::read::datasets(&db, project)?)
    }

    /// One dataset.
    pub async fn get_dataset(&self, project: &str, name: &str) -> Result<Dataset, ServiceError> {
        self.read_barrier().await?;
        gloss_state::read::dataset(&self.state.db(), project, name)?
            .and_then(|r| r.dataset)
            .ok_or_else(|| ServiceError::NotFound(format!("dataset {project}/{name} not found")))
    }

    /// Aborts imports this node was streaming before it restarted: their clients are gone.
    pub async fn abort_orphaned_imports(&self) -> Result<usize, ServiceError> {
        self.read_barrier().await?;
        let open = gloss_state::read::open_imports(&self.state.db())?;
        let mine: Vec<ImportRecord> = open
            .into_iter()
            .filter(|i| i.owner_node == self.settings.node_id && i.owner_boot != self.boot)
            .collect();
        for import in &mine {
            let body = command::Body::AbortImport(gloss_proto::v1::AbortImport {
                import_id: import.import_id,
                reason: "the coordinator streaming it restarted".into(),
            });
            self.propose(&Actor::SYSTEM, body, String::new()).await?;
            tracing::info!(import_id = import.import_id, dataset = %import.dataset, "aborted orphaned import");
        }
        Ok(mine.len())
    }

    /// Applies a membership change on the leader (forwarding it there from a follower) and
    /// returns the status afterwards.
    pub async fn change_membership(
        &self,
        actor: &Actor,
        change: MembershipChange,
    ) -> Result<ClusterStatus, ServiceError> {
        tracing::info!(?change, "membership change requested");
        // Adding, promoting and removing are harmless to repeat, so retries are safe.
        let outcome = via_leader(
            true,
            || async {
                match change.apply(&self.raft).await {
                    Err(e) if e.forward_to_leader::<NodeInfo>().is_some() => Err(Redirect::from(e)),
                    Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(
                        ChangeMembershipError::InProgress(p),
                    ))) => Err(Redirect::Wait(p.to_string())),
                    other => Ok(other),
                }
            },
            |id, addr| {
                let change = change.clone();
                async move {
                    self.proposer
                        .forwarder()
                        .change_membership(id, &addr, &change)
                        .await
                }
            },
        )
        .await?;
        outcome.map_err(|e| match e {
            RaftError::APIError(ClientWriteError::ChangeMembershipError(c)) => {
                ServiceError::FailedPrecondition(c.to_string())
            }
            other => ServiceError::from(other),
        })?;
        let (action, node) = match &change {
            MembershipChange::AddLearner { node_id, .. } => ("add_learner", node_id),
            MembershipChange::Promote { node_id } => ("promote_member", node_id),
            MembershipChange::Remove { node_id } => ("remove_member", node_id),
            MembershipChange::SetApiAddress { node_id, .. } => ("set_api_address", node_id),
        };
        self.audit(actor, action, &format!("node {node}"), "")
            .await?;
        self.cluster_status().await
    }

    /// Raft status of this node and the members it knows.
    pub async fn cluster_status(&self) -> Result<ClusterStatus, ServiceError> {
        let m = self.raft.metrics().borrow().clone();
        let committed = self
            .raft
            .with_raft_state(|st| st.committed.as_ref().map(|c| c.index))
            .await
            .map_err(|e| ServiceError::Unavailable(e.to_string()))?;
        let last_log = m.last_log_index.unwrap_or(0);
        let membership = m.membership_config.membership();
        let voters: std::collections::BTreeSet<u64> = membership.voter_ids().collect();
        let members = membership
            .nodes()
            .map(|(id, node)| {
                let matched = m
                    .replication
                    .as_ref()
                    .and_then(|r| r.get(id))
                    .map(|l| l.as_ref().map(|l| l.index).unwrap_or(0));
                let role = if Some(*id) == m.current_leader {
                    "leader"
                } else if !voters.contains(id) {
                    "learner"
                } else if *id == m.id {
                    role(m.state)
                } else if m.current_leader.is_some() {
                    "follower"
                } else {
                    "unknown"
                };
                Member {
                    node_id: *id,
                    raft_address: node.raft_addr.clone(),
                    api_address: node.api_addr.clone(),
                    role: role.into(),
                    voter: voters.contains(id),
                    matched_index: matched,
                    lag: matched.map(|x| last_log.saturating_sub(x)),
                }
            })
            .collect();
        Ok(ClusterStatus {
            node_id: m.id,
            role: role(m.state).into(),
            term: m.current_term,
            leader_id: m.current_leader,
            last_log_index: last_log,
            commit_index: committed.unwrap_or(0),
            applied_index: m.last_applied.map(|l| l.index).unwrap_or(0),
            snapshot_index: m.snapshot.map(|l| l.index).unwrap_or(0),
            purged_index: m.purged.map(|l| l.index).unwrap_or(0),
            members,
            version: gloss_core::VERSION.into(),
            data_dir: self.settings.data_dir.clone(),
        })
    }
}

pub(crate) fn unexpected(r: command_result::Result) -> ServiceError {
    ServiceError::Internal(format!("unexpected command result {r:?}"))
}
