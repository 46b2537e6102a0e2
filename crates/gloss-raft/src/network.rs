//! Raft over gRPC: the client side openraft uses to reach peers ([`GrpcNetworkFactory`]) and the
//! server side a coordinator mounts on its internal port ([`RaftGrpc`]). Openraft's messages
//! travel bincode-encoded inside a protobuf envelope.

use std::time::Duration;

use gloss_proto::v1::raft_service_client::RaftServiceClient;
use gloss_proto::v1::raft_service_server::RaftService;
use gloss_proto::v1::RaftPayload;
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
use tonic::transport::{Channel, Endpoint};

use crate::log_store::{decode, encode};
use crate::{NodeId, NodeInfo, Raft, TypeConfig};

/// Builds one [`GrpcNetwork`] per peer.
#[derive(Clone, Default)]
pub struct GrpcNetworkFactory {}

impl RaftNetworkFactory<TypeConfig> for GrpcNetworkFactory {
    type Network = GrpcNetwork;

    async fn new_client(&mut self, target: NodeId, node: &NodeInfo) -> GrpcNetwork {
        GrpcNetwork {
            target,
            addr: node.raft_addr.clone(),
            client: None,
        }
    }
}

/// Connection to one peer, dialled lazily and re-dialled after transport failures.
pub struct GrpcNetwork {
    target: NodeId,
    addr: String,
    client: Option<RaftServiceClient<Channel>>,
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
        let endpoint = Endpoint::from_shared(format!("http://{}", self.addr))
            .map_err(|e| TransportError(format!("bad peer address {}: {e}", self.addr)))?
            .connect_timeout(Duration::from_secs(1))
            .tcp_nodelay(true);
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
        self.call(Rpc::Append, &rpc, &option).await
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
}

impl RaftGrpc {
    /// Serves `raft` to its peers.
    pub fn new(raft: Raft) -> Self {
        RaftGrpc { raft }
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
        reply(&self.raft.install_snapshot(req).await)
    }
}
