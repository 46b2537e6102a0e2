//! Raft over gRPC: the client side openraft uses to reach peers ([`GrpcNetworkFactory`]) and the
//! server side a coordinator mounts on its internal port ([`RaftGrpc`]). Openraft's messages
//! travel bincode-encoded inside a protobuf envelope.

use std::sync::Arc;
use std::time::Duration;

use gloss_core::stages::Stages;
use gloss_proto::v1::raft_service_client::RaftServiceClient;
use gloss_proto::v1::raft_service_server::RaftService;
use gloss_proto::v1::{
    ForwardRequest, ForwardResponse, RaftPayload, ReadIndexRequest, ReadIndexResponse,
};
use gloss_proto::ErrorCode;
use gloss_tls::ClientTls;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::transport::Channel;

use crate::faults::Faults;
use crate::log_store::{decode, encode};
use crate::membership::{ChangeError, MembershipChange};
use crate::{NodeId, NodeInfo, Raft, Request, TypeConfig};

/// Builds one [`GrpcNetwork`] per peer.
#[derive(Clone)]
pub struct GrpcNetworkFactory {
    from: NodeId,
    faults: Option<Faults>,
    tls: Option<ClientTls>,
    stages: Arc<Stages>,
}

impl GrpcNetworkFactory {
    /// Network of node `from`, with mutual TLS when `tls` is given, and injected faults in
    /// tests.
    pub fn new(from: NodeId, faults: Option<Faults>, tls: Option<ClientTls>) -> Self {
        GrpcNetworkFactory {
            from,
            faults,
            tls,
            stages: Arc::default(),
        }
    }

    /// Counts AppendEntries that were given up before their reply (timeouts) into `stages`.
    pub fn with_stages(mut self, stages: Arc<Stages>) -> Self {
        self.stages = stages;
        self
    }
}

impl RaftNetworkFactory<TypeConfig> for GrpcNetworkFactory {
    type Network = GrpcNetwork;

    async fn new_client(&mut self, target: NodeId, node: &NodeInfo) -> GrpcNetwork {
        GrpcNetwork {
            from: self.from,
            target,
            addr: node.raft_addr.clone(),
            client: None,
            faults: self.faults.clone(),
            tls: self.tls.clone(),
            stages: self.stages.clone(),
        }
    }
}

/// Connection to one peer, dialled lazily and re-dialled after transport failures.
pub struct GrpcNetwork {
    from: NodeId,
    faults: Option<Faults>,
    tls: Option<ClientTls>,
    target: NodeId,
    addr: String,
    client: Option<RaftServiceClient<Channel>>,
    stages: Arc<Stages>,
}

/// Counts an AppendEntries as given up when it is dropped before its reply came (openraft drops
/// the call when its timeout, the heartbeat interval, passes) or failed at that deadline.
struct Unanswered<'a> {
    stages: &'a Stages,
    answered: bool,
}

impl Drop for Unanswered<'_> {
    fn drop(&mut self) {
        if !self.answered {
            self.stages.count_replication_timeout();
        }
    }
}

type RpcError<E> = RPCError<NodeId, NodeInfo, E>;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct TransportError(String);

impl GrpcNetwork {
    fn client(&mut self) -> Result<RaftServiceClient<Channel>, TransportError> {
        if let Some(c) = &self.client {
            return Ok(c.clone());
        }
        let endpoint = gloss_tls::endpoint(&self.addr, self.tls.as_ref())
            .map_err(|e| TransportError(format!("peer {}: {e}", self.addr)))?
            .connect_timeout(Duration::from_secs(1));
        let client = RaftServiceClient::new(endpoint.connect_lazy())
            .max_decoding_message_size(256 << 20)
            .max_encoding_message_size(256 << 20);
        self.client = Some(client.clone());
        Ok(client)
    }

    async fn call<Req, Resp, E>(
        &mut self,
        rpc: Rpc,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RpcError<E>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        crate::faults::pass(&self.faults, self.from, self.target)
            .await
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
        let mut client = self
            .client()
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
        let mut request = tonic::Request::new(RaftPayload { data: encode(req) });
        request.set_timeout(option.hard_ttl());
        let reply = match rpc {
            Rpc::Append => client.append_entries(request).await,
            Rpc::Vote => client.vote(request).await,
            Rpc::Snapshot => client.install_snapshot(request).await,
        };
        let payload = match reply {
            Ok(r) => r.into_inner(),
            Err(status) => {
                let e = TransportError(format!(
                    "{} from node {}: {}",
                    status.code(),
                    self.target,
                    status.message()
                ));
                if status.code() == tonic::Code::Unavailable {
                    self.client = None;
                    return Err(RPCError::Unreachable(Unreachable::new(&e)));
                }
                return Err(RPCError::Network(NetworkError::new(&e)));
            }
        };
        let result: Result<Resp, E> =
            decode(&payload.data).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

#[derive(Clone, Copy)]
enum Rpc {
    Append,
    Vote,
    Snapshot,
}

impl RaftNetwork<TypeConfig> for GrpcNetwork {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RpcError<RaftError<NodeId>>> {
        let stages = self.stages.clone();
        let mut pending = Unanswered {
            stages: &stages,
            answered: false,
        };
        let started = std::time::Instant::now();
        let reply = self.call(Rpc::Append, &rpc, &option).await;
        // A failure at the deadline is the peer's side of the same timeout (grpc-timeout).
        pending.answered = reply.is_ok() || started.elapsed() < option.hard_ttl();
        reply
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RpcError<RaftError<NodeId, InstallSnapshotError>>>
    {
        self.call(Rpc::Snapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RpcError<RaftError<NodeId>>> {
        self.call(Rpc::Vote, &rpc, &option).await
    }
}

/// The internal Raft gRPC service of one coordinator.
pub struct RaftGrpc {
    raft: Raft,
    heard: crate::watchdog::Heard,
}

impl RaftGrpc {
    /// Serves `raft` to its peers, stamping `heard` whenever a leader's message arrives.
    pub fn new(raft: Raft, heard: crate::watchdog::Heard) -> Self {
        RaftGrpc { raft, heard }
    }
}

fn request<T: DeserializeOwned>(req: tonic::Request<RaftPayload>) -> Result<T, tonic::Status> {
    decode(&req.into_inner().data)
        .map_err(|e| tonic::Status::invalid_argument(format!("undecodable raft message: {e}")))
}

fn reply<T: Serialize>(result: &T) -> Result<tonic::Response<RaftPayload>, tonic::Status> {
    Ok(tonic::Response::new(RaftPayload {
        data: encode(result),
    }))
}

#[tonic::async_trait]
impl RaftService for RaftGrpc {
    async fn append_entries(
        &self,
        req: tonic::Request<RaftPayload>,
    ) -> Result<tonic::Response<RaftPayload>, tonic::Status> {
        let req: AppendEntriesRequest<TypeConfig> = request(req)?;
        self.heard.stamp();
        reply(&self.raft.append_entries(req).await)
    }

    async fn vote(
        &self,
        req: tonic::Request<RaftPayload>,
    ) -> Result<tonic::Response<RaftPayload>, tonic::Status> {
        let req: VoteRequest<NodeId> = request(req)?;
        reply(&self.raft.vote(req).await)
    }

    async fn install_snapshot(
        &self,
        req: tonic::Request<RaftPayload>,
    ) -> Result<tonic::Response<RaftPayload>, tonic::Status> {
        let req: InstallSnapshotRequest<TypeConfig> = request(req)?;
        self.heard.stamp();
        reply(&self.raft.install_snapshot(req).await)
    }

    async fn forward(
        &self,
        req: tonic::Request<ForwardRequest>,
    ) -> Result<tonic::Response<ForwardResponse>, tonic::Status> {
        let command = req.into_inner().command;
        match self.raft.client_write(Request { command }).await {
            Ok(r) => Ok(tonic::Response::new(ForwardResponse {
                result: r.data.result,
            })),
            Err(e) => Err(not_leader_status(e.forward_to_leader(), &e)),
        }
    }

    async fn change_membership(
        &self,
        req: tonic::Request<RaftPayload>,
    ) -> Result<tonic::Response<RaftPayload>, tonic::Status> {
        let change: MembershipChange = request(req)?;
        reply(&change.apply(&self.raft).await)
    }

    async fn last_log(
        &self,
        _: tonic::Request<RaftPayload>,
    ) -> Result<tonic::Response<RaftPayload>, tonic::Status> {
        let last: Option<u64> = self.raft.metrics().borrow().last_log_index;
        reply(&last)
    }

    async fn read_index(
        &self,
        _: tonic::Request<ReadIndexRequest>,
    ) -> Result<tonic::Response<ReadIndexResponse>, tonic::Status> {
        match self.raft.ensure_linearizable().await {
            Ok(index) => Ok(tonic::Response::new(ReadIndexResponse {
                index: index.map(|l| l.index).unwrap_or(0),
            })),
            Err(e) => Err(not_leader_status(e.forward_to_leader(), &e)),
        }
    }
}

/// Metadata key naming the leader's internal address when a node that is no longer leader
/// refuses a forwarded request.
pub const LEADER_RAFT_METADATA: &str = "gloss-leader-raft";

fn not_leader_status(
    forward: Option<&openraft::error::ForwardToLeader<NodeId, NodeInfo>>,
    e: &dyn std::fmt::Display,
) -> tonic::Status {
    let Some(f) = forward else {
        return tonic::Status::unavailable(e.to_string());
    };
    let mut status = ErrorCode::NotLeader.status(format!("not the leader: {e}"));
    if let Some(addr) = f
        .leader_node
        .as_ref()
        .and_then(|n| n.raft_addr.parse().ok())
    {
        status.metadata_mut().insert(LEADER_RAFT_METADATA, addr);
    }
    status
}

/// A request carrying the current span's trace context, so the leader's spans join the trace.
fn traced<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    gloss_core::telemetry::inject(request.metadata_mut());
    request
}

/// Client side of [`RaftGrpc`]'s `forward` and `read_index`: how a follower reaches the leader
/// on behalf of its clients. Channels are kept per address.
#[derive(Clone)]
pub struct Forwarder {
    from: NodeId,
    faults: Option<Faults>,
    tls: Option<ClientTls>,
    channels: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, Channel>>>,
}

/// Why a forwarded call failed.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The addressed node is not (or no longer) the leader; the leader it knows, if any.
    #[error("{addr} is not the leader")]
    NotLeader {
        addr: String,
        leader: Option<String>,
    },
    /// The leader could not be reached or failed.
    #[error("forwarding to {addr} failed: {message}")]
    Failed { addr: String, message: String },
}

impl Forwarder {
    /// Forwarder of node `from`, with mutual TLS when `tls` is given, and injected faults in
    /// tests.
    pub fn new(from: NodeId, faults: Option<Faults>, tls: Option<ClientTls>) -> Self {
        Forwarder {
            from,
            faults,
            tls,
            channels: Default::default(),
        }
    }

    /// A client for node `to` at `addr`, once the link to it lets the message through.
    async fn reach(
        &self,
        to: NodeId,
        addr: &str,
    ) -> Result<RaftServiceClient<Channel>, ForwardError> {
        crate::faults::pass(&self.faults, self.from, to)
            .await
            .map_err(|e| ForwardError::Failed {
                addr: addr.into(),
                message: e.to_string(),
            })?;
        self.client(addr)
    }

    fn client(&self, addr: &str) -> Result<RaftServiceClient<Channel>, ForwardError> {
        let mut channels = self.channels.lock().expect("forwarder lock poisoned");
        let channel = match channels.get(addr) {
            Some(c) => c.clone(),
            None => {
                let endpoint = gloss_tls::endpoint(addr, self.tls.as_ref()).map_err(|e| {
                    ForwardError::Failed {
                        addr: addr.into(),
                        message: e.to_string(),
                    }
                })?;
                let channel = endpoint
                    .connect_timeout(Duration::from_secs(1))
                    .connect_lazy();
                channels.insert(addr.into(), channel.clone());
                channel
            }
        };
        Ok(RaftServiceClient::new(channel)
            .max_decoding_message_size(256 << 20)
            .max_encoding_message_size(256 << 20))
    }

    fn error(&self, addr: &str, status: tonic::Status) -> ForwardError {
        if ErrorCode::of_status(&status) == Some(ErrorCode::NotLeader) {
            let leader = status
                .metadata()
                .get(LEADER_RAFT_METADATA)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            return ForwardError::NotLeader {
                addr: addr.into(),
                leader,
            };
        }
        if status.code() == tonic::Code::Unavailable {
            // The connection is broken (the node died or restarted): dial afresh next time.
            self.channels
                .lock()
                .expect("forwarder lock poisoned")
                .remove(addr);
        }
        ForwardError::Failed {
            addr: addr.into(),
            message: format!("{}: {}", status.code(), status.message()),
        }
    }

    /// Has the leader at `addr` replicate `command`; returns the encoded `CommandResult`.
    pub async fn forward(
        &self,
        to: NodeId,
        addr: &str,
        command: Vec<u8>,
    ) -> Result<Vec<u8>, ForwardError> {
        let mut client = self.reach(to, addr).await?;
        match client.forward(traced(ForwardRequest { command })).await {
            Ok(r) => Ok(r.into_inner().result),
            Err(status) => Err(self.error(addr, status)),
        }
    }

    /// Has the leader at `addr` apply a membership change; the leader's own refusal comes back
    /// as `Ok(Err(..))`.
    pub async fn change_membership(
        &self,
        to: NodeId,
        addr: &str,
        change: &MembershipChange,
    ) -> Result<Result<(), ChangeError>, ForwardError> {
        let mut client = self.reach(to, addr).await?;
        let payload = RaftPayload {
            data: encode(change),
        };
        let reply = client
            .change_membership(payload)
            .await
            .map_err(|s| self.error(addr, s))?;
        decode(&reply.into_inner().data).map_err(|e| ForwardError::Failed {
            addr: addr.into(),
            message: format!("undecodable answer: {e}"),
        })
    }

    /// The last log index of node `to` at `addr`.
    pub async fn last_log(&self, to: NodeId, addr: &str) -> Result<Option<u64>, ForwardError> {
        let mut client = self.reach(to, addr).await?;
        let reply = client
            .last_log(RaftPayload { data: Vec::new() })
            .await
            .map_err(|s| self.error(addr, s))?;
        decode(&reply.into_inner().data).map_err(|e| ForwardError::Failed {
            addr: addr.into(),
            message: format!("undecodable answer: {e}"),
        })
    }

    /// Asks the leader at `addr` for its current read index.
    pub async fn read_index(&self, to: NodeId, addr: &str) -> Result<u64, ForwardError> {
        let mut client = self.reach(to, addr).await?;
        match client.read_index(traced(ReadIndexRequest {})).await {
            Ok(r) => Ok(r.into_inner().index),
            Err(status) => Err(self.error(addr, status)),
        }
    }
}
