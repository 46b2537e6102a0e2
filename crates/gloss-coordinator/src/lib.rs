//! The Gloss coordinator: one member of the Raft group that holds all durable state. It serves
//! the public gRPC API (with health and reflection), the internal Raft service, and the HTTP
//! endpoints, and runs the import/export pipelines.
//!
//! Depends on `gloss-raft` for replication, `gloss-state` for what the state means and
//! `gloss-import` for parsing. Business rules live once, in [`service::Service`]; the gRPC and HTTP
//! layers only translate. It must never link ML or GPU code.

pub mod access;
mod answer_import;
mod around;
mod audit;
pub mod backup;
pub mod demo;
pub mod error;
mod export;
mod grpc;
mod grpc_jobs;
mod grpc_tasks;
mod grpc_users;
mod http;
pub mod import;
pub mod jobs;
pub mod metrics;
pub mod models;
pub mod oidc;
mod proposer;
pub mod service;
mod task_export;
pub mod tasks;
mod trace;
pub mod users;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::access::Actor;
use gloss_core::config::Config;
use gloss_proto::v1::{
    audit_service_server::AuditServiceServer, cluster_service_server::ClusterServiceServer,
    dataset_service_server::DatasetServiceServer, feed_service_server::FeedServiceServer,
    job_service_server::JobServiceServer, model_service_server::ModelServiceServer,
    project_service_server::ProjectServiceServer, raft_service_server::RaftServiceServer,
    review_service_server::ReviewServiceServer, task_service_server::TaskServiceServer,
    user_service_server::UserServiceServer, worker_service_server::WorkerServiceServer,
};
#[cfg(feature = "testsuite")]
pub use gloss_raft::faults::{Faults, Link};
use gloss_raft::{NodeInfo, Raft, RaftSettings};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_stream::StreamExt as _;

/// Connections accepted on `listener`, with Nagle's algorithm off: a reply written as headers
/// plus a data frame must not wait for the peer's delayed ACK (40 ms on Linux).
fn accepted(
    listener: TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    TcpListenerStream::new(listener).map(|conn| {
        let conn = conn?;
        conn.set_nodelay(true)?;
        Ok(conn)
    })
}

pub use error::ServiceError;
pub use service::Service;

/// Errors starting or running a coordinator.
#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Raft(#[from] gloss_raft::RaftError),
    #[error("raft: {0}")]
    RaftInit(String),
    #[error("{what} server failed: {message}")]
    Serve { what: &'static str, message: String },
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error("TLS: {0}")]
    Tls(#[from] gloss_tls::TlsError),
}

/// Addresses a running coordinator actually listens on (port 0 resolved).
#[derive(Clone, Copy, Debug)]
pub struct BoundAddrs {
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    pub raft: SocketAddr,
}

/// A running coordinator.
pub struct Coordinator {
    service: Arc<Service>,
    raft: Raft,
    addrs: BoundAddrs,
    shutdown: watch::Sender<bool>,
    servers: Vec<(&'static str, JoinHandle<Result<(), String>>)>,
}

/// A gRPC server builder, with TLS from `tls` (mutual on the internal port).
fn server_builder(
    what: &'static str,
    tls: Option<&gloss_tls::TlsDir>,
    mutual: bool,
) -> Result<tonic::transport::Server, CoordinatorError> {
    let builder = tonic::transport::Server::builder();
    match tls {
        Some(tls) => {
            builder
                .tls_config(tls.grpc_server(mutual))
                .map_err(|e| CoordinatorError::Serve {
                    what,
                    message: format!("TLS from {}: {e}", tls.dir().display()),
                })
        }
        None => Ok(builder),
    }
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, CoordinatorError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| CoordinatorError::Bind { what, addr, source })
}

fn resolve(configured: &str, bound: SocketAddr, listen: SocketAddr) -> String {
    if listen.port() == 0 && configured == listen.to_string() {
        bound.to_string()
    } else {
        configured.to_string()
    }
}

/// Routes another crate mounts on the HTTP port (the web app lives in `gloss-web`, which
/// depends on this crate, not the other way round).
pub type HttpRoutes = fn(Arc<Service>) -> axum::Router;

/// How [`Coordinator::start_with`] starts a coordinator.
#[derive(Default)]
pub struct StartOptions {
    /// Network faults injected on outgoing internal traffic (cluster sandbox tests).
    #[cfg(feature = "testsuite")]
    pub faults: Option<Faults>,
    /// Extra HTTP routes, merged with `/healthz`, `/readyz` and `/metrics`.
    pub http_routes: Option<HttpRoutes>,
}

impl Coordinator {
    /// Opens the data directory, starts Raft and every server. On first start the group is
    /// formed from `initial_members` (or as a single-node group); restarts reuse what is on
    /// disk. Returns without waiting for a leader: see [`Coordinator::wait_for_leader`].
    pub async fn start(config: &Config) -> Result<Coordinator, CoordinatorError> {
        Self::start_with(config, StartOptions::default()).await
    }

    /// [`Coordinator::start`] with injected network faults on its outgoing internal traffic
    /// (cluster sandbox tests).
    #[cfg(feature = "testsuite")]
    pub async fn start_with_faults(
        config: &Config,
        faults: Option<Faults>,
    ) -> Result<Coordinator, CoordinatorError> {
        Self::start_with(
            config,
            StartOptions {
                faults,
                ..StartOptions::default()
            },
        )
        .await
    }

    /// [`Coordinator::start`] with options: routes mounted on the HTTP port, injected faults
    /// (feature `testsuite`).
    pub async fn start_with(
        config: &Config,
        options: StartOptions,
    ) -> Result<Coordinator, CoordinatorError> {
        #[cfg(feature = "testsuite")]
        let faults = options.faults;
        #[cfg(not(feature = "testsuite"))]
        let faults: Option<gloss_raft::faults::Faults> = None;
        let http_routes = options.http_routes;
        std::fs::create_dir_all(&config.data_dir).map_err(|source| {
            CoordinatorError::RaftInit(format!(
                "cannot create data dir {}: {source}",
                config.data_dir.display()
            ))
        })?;
        let tls = match &config.tls_dir {
            Some(dir) => Some(gloss_tls::TlsDir::load(dir)?),
            None => None,
        };
        let peer_tls = tls.as_ref().map(gloss_tls::TlsDir::internal_client);
        let raft_listener = bind("raft", config.raft_listen).await?;
        let grpc_listener = bind("grpc", config.listen).await?;
        let http_listener = bind("http", config.http).await?;
        let local = |l: &TcpListener| l.local_addr().expect("bound listener has an address");
        let addrs = BoundAddrs {
            grpc: local(&grpc_listener),
            http: local(&http_listener),
            raft: local(&raft_listener),
        };
        let stages = Arc::new(gloss_core::stages::Stages::default());
        let settings = RaftSettings {
            snapshot_every: config.snapshot_every,
            stages: stages.clone(),
            faults: faults.clone(),
            tls: peer_tls.clone(),
            ..RaftSettings::default()
        };
        let (raft, state) = gloss_raft::start(config.node_id, &config.data_dir, &settings).await?;
        let metrics = Arc::new(metrics::Metrics::default());
        let service = Arc::new(Service::new(
            raft.clone(),
            state,
            service::ServiceSettings {
                node_id: config.node_id,
                max_record_bytes: config.max_record_bytes,
                max_image_bytes: config.max_image_bytes,
                image_dir: config.image_dir.clone(),
                import_batch: config.import_batch,
                data_dir: config.data_dir.display().to_string(),
                join_token: config.join_token.clone(),
                admin_token: config.admin_token.clone(),
                oidc: match &config.oidc {
                    Some(c) => Some(oidc::Oidc::new(c.clone())?),
                    None => None,
                },
                stages,
            },
            metrics,
            gloss_raft::network::Forwarder::new(config.node_id, faults.clone(), peer_tls.clone()),
        ));
        let (shutdown, _) = watch::channel(false);
        let mut servers = Vec::new();
        let stop = |rx: watch::Receiver<bool>| async move {
            let mut rx = rx;
            let _ = rx.wait_for(|s| *s).await;
        };

        let heard = gloss_raft::watchdog::Heard::default();
        servers.push((
            "leader watchdog",
            tokio::spawn({
                let (raft, stopped) = (raft.clone(), stop(shutdown.subscribe()));
                let (heard, node_id) = (heard.clone(), config.node_id);
                let peers = gloss_raft::network::Forwarder::new(
                    config.node_id,
                    faults.clone(),
                    peer_tls.clone(),
                );
                let tick = Duration::from_millis(settings.heartbeat_ms);
                let lease = settings.leader_lease();
                async move {
                    gloss_raft::watchdog::run(raft, node_id, peers, heard, tick, lease, stopped)
                        .await;
                    Ok(())
                }
            }),
        ));
        let raft_server = server_builder("raft", tls.as_ref(), true)?
            .layer(around::Around::new(trace::Trace::new(trace::Spans::Traced)))
            .add_service(
                RaftServiceServer::new(gloss_raft::network::RaftGrpc::new(raft.clone(), heard))
                    .max_decoding_message_size(256 << 20),
            )
            .add_service(
                WorkerServiceServer::new(grpc::Api::new(service.clone()))
                    .max_decoding_message_size(4 << 20),
            )
            // Workers read tasks, examples and gold records, and write suggestions, over the
            // internal port too.
            .add_service(TaskServiceServer::new(grpc::Api::new(service.clone())))
            .add_service(DatasetServiceServer::new(grpc::Api::new(service.clone())))
            .add_service(ModelServiceServer::new(grpc::Api::new(service.clone())))
            .serve_with_incoming_shutdown(accepted(raft_listener), stop(shutdown.subscribe()));
        servers.push((
            "raft",
            tokio::spawn(async move { raft_server.await.map_err(|e| e.to_string()) }),
        ));

        let api = grpc::Api::new(service.clone());
        let (mut health, health_service) = tonic_health::server::health_reporter();
        health
            .set_serving::<ClusterServiceServer<grpc::Api>>()
            .await;
        health
            .set_serving::<ProjectServiceServer<grpc::Api>>()
            .await;
        health
            .set_serving::<DatasetServiceServer<grpc::Api>>()
            .await;
        health.set_serving::<TaskServiceServer<grpc::Api>>().await;
        health.set_serving::<FeedServiceServer<grpc::Api>>().await;
        health.set_serving::<ReviewServiceServer<grpc::Api>>().await;
        health.set_serving::<UserServiceServer<grpc::Api>>().await;
        health.set_serving::<JobServiceServer<grpc::Api>>().await;
        health.set_serving::<ModelServiceServer<grpc::Api>>().await;
        health.set_serving::<AuditServiceServer<grpc::Api>>().await;
        fn reflection(
            b: tonic_reflection::server::Builder<'static>,
        ) -> tonic_reflection::server::Builder<'static> {
            b.register_encoded_file_descriptor_set(gloss_proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        }
        let reflection_v1 = reflection(tonic_reflection::server::Builder::configure())
            .build_v1()
            .map_err(|e| CoordinatorError::Serve {
                what: "reflection",
                message: e.to_string(),
            })?;
        let reflection_v1alpha = reflection(tonic_reflection::server::Builder::configure())
            .build_v1alpha()
            .map_err(|e| CoordinatorError::Serve {
                what: "reflection",
                message: e.to_string(),
            })?;
        let public = server_builder("grpc", tls.as_ref(), false)?
            .layer(around::Around::new(trace::Trace::new(trace::Spans::All)))
            .layer(around::Around::new(access::Auth::new(service.clone())))
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(ClusterServiceServer::new(api.clone()))
            .add_service(ProjectServiceServer::new(api.clone()))
            .add_service(TaskServiceServer::new(api.clone()))
            .add_service(FeedServiceServer::new(api.clone()))
            .add_service(ReviewServiceServer::new(api.clone()))
            .add_service(UserServiceServer::new(api.clone()))
            .add_service(JobServiceServer::new(api.clone()))
            .add_service(ModelServiceServer::new(api.clone()))
            .add_service(AuditServiceServer::new(api.clone()))
            .add_service(DatasetServiceServer::new(api).max_decoding_message_size(16 << 20))
            .serve_with_incoming_shutdown(accepted(grpc_listener), stop(shutdown.subscribe()));
        servers.push((
            "grpc",
            tokio::spawn(async move { public.await.map_err(|e| e.to_string()) }),
        ));

        let mut router = http::router(service.clone());
        if let Some(routes) = http_routes {
            router = router.merge(routes(service.clone()));
        }
        let http_stop = stop(shutdown.subscribe());
        let http_tls = match &tls {
            Some(tls) => Some(tls.http_server()?),
            None => None,
        };
        servers.push((
            "http",
            tokio::spawn(async move {
                match http_tls {
                    Some(acceptor) => {
                        http::serve_tls(http_listener, acceptor, router, http_stop).await;
                        Ok(())
                    }
                    None => axum::serve(http_listener, router)
                        .with_graceful_shutdown(http_stop)
                        .await
                        .map_err(|e| e.to_string()),
                }
            }),
        ));

        let mut coordinator = Coordinator {
            service,
            raft,
            addrs,
            shutdown,
            servers,
        };
        let me = NodeInfo {
            raft_addr: resolve(&config.advertise, addrs.raft, config.raft_listen),
            api_addr: resolve(&config.advertise_api, addrs.grpc, config.listen),
        };
        coordinator.initialize(config, me.clone()).await?;
        coordinator.spawn_orphan_cleanup();
        coordinator.spawn_api_address_record(me.api_addr);
        coordinator.spawn_scheduler();
        Ok(coordinator)
    }

    /// Forms the group on first start. Every member calls this with the same member list; openraft
    /// accepts it only on a node whose log is empty, so the group forms exactly once whatever the
    /// start order, and a restarted node keeps the membership it has on disk.
    async fn initialize(&self, config: &Config, me: NodeInfo) -> Result<(), CoordinatorError> {
        let initialized = self
            .raft
            .is_initialized()
            .await
            .map_err(|e| CoordinatorError::RaftInit(e.to_string()))?;
        if initialized {
            return Ok(());
        }
        if config.join {
            tracing::info!(
                node_id = config.node_id,
                "waiting to be added to a group (--join)"
            );
            return Ok(());
        }
        let members: BTreeMap<u64, NodeInfo> = if config.initial_members.is_empty() {
            BTreeMap::from([(config.node_id, me)])
        } else {
            config
                .initial_members
                .iter()
                // Every member must propose exactly the same membership: it becomes log entry 0
                // on each of them. Public addresses are not known for the others, so none is
                // recorded here.
                .map(|(id, raft_addr)| {
                    let node = NodeInfo {
                        raft_addr: raft_addr.clone(),
                        api_addr: String::new(),
                    };
                    (*id, node)
                })
                .collect()
        };
        tracing::info!(
            node_id = config.node_id,
            members = members.len(),
            "initialising a new group"
        );
        match self.raft.initialize(members).await {
            Ok(()) => Ok(()),
            Err(gloss_raft::openraft::error::RaftError::APIError(
                gloss_raft::openraft::error::InitializeError::NotAllowed(_),
            )) => Ok(()), // another member's initialisation reached us first
            Err(e) => Err(CoordinatorError::RaftInit(e.to_string())),
        }
    }

    /// Records this node's public address in the membership once a leader is known, when the
    /// membership lacks it or holds an old one (groups formed from `--initial-members`), so
    /// `cluster status` and NOT_LEADER redirects can name it.
    fn spawn_api_address_record(&mut self, api_addr: String) {
        let (service, raft) = (self.service.clone(), self.raft.clone());
        let mut shutdown = self.shutdown.subscribe();
        let node_id = service.node_id();
        let task = tokio::spawn(async move {
            loop {
                let (recorded, is_member) = {
                    let m = raft.metrics().borrow().clone();
                    // Not a member (yet) is a learner being added, or a --join node.
                    match m.membership_config.membership().get_node(&node_id) {
                        Some(n) => (n.api_addr == api_addr, true),
                        None => (false, false),
                    }
                };
                if recorded {
                    return Ok(());
                }
                if is_member && raft.metrics().borrow().current_leader.is_some() {
                    let change = gloss_raft::membership::MembershipChange::SetApiAddress {
                        node_id,
                        api_addr: api_addr.clone(),
                    };
                    match service.change_membership(&Actor::SYSTEM, change).await {
                        Ok(_) => {
                            tracing::info!(%api_addr, "public address recorded in the membership")
                        }
                        Err(e) => tracing::debug!(error = %e, "public address not recorded yet"),
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = shutdown.wait_for(|s| *s) => return Ok(()),
                }
            }
        });
        self.servers.push(("public address record", task));
    }

    /// Places queued jobs and expires lost workers while this node leads.
    fn spawn_scheduler(&mut self) {
        let service = self.service.clone();
        let stop = self.shutdown.subscribe();
        let task = tokio::spawn(async move {
            service
                .run_scheduler(Duration::from_millis(500), stop)
                .await;
            Ok(())
        });
        self.servers.push(("scheduler", task));
    }

    /// Aborts, once a leader is known, the imports an earlier run of this node left open.
    fn spawn_orphan_cleanup(&self) {
        let service = self.service.clone();
        let mut shutdown = self.shutdown.subscribe();
        tokio::spawn(async move {
            loop {
                match service.abort_orphaned_imports().await {
                    Ok(0) => return,
                    Ok(aborted) => {
                        tracing::info!(
                            aborted,
                            "cleaned up imports interrupted by the last shutdown"
                        );
                        return;
                    }
                    Err(e) => tracing::debug!(error = %e, "orphaned import cleanup will retry"),
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown.wait_for(|s| *s) => return,
                }
            }
        });
    }

    /// Waits for a leader, then creates the first administrator when none exists (with the
    /// configured admin token, or a generated one, which is returned: it is shown only once).
    pub async fn ensure_admin(
        &self,
        timeout: Duration,
    ) -> Result<Option<gloss_proto::v1::IssuedToken>, CoordinatorError> {
        self.wait_for_leader(timeout).await?;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match self.service.bootstrap_admin(users::FIRST_ADMIN).await {
                Ok(t) => return Ok(t),
                Err(e) if tokio::time::Instant::now() < deadline => {
                    tracing::debug!(error = %e, "first administrator not created yet");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => {
                    return Err(CoordinatorError::RaftInit(format!(
                        "creating the first administrator: {e}"
                    )))
                }
            }
        }
    }

    /// Waits until the group has a leader.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<u64, CoordinatorError> {
        let m = self
            .raft
            .wait(Some(timeout))
            .metrics(|m| m.current_leader.is_some(), "a leader is elected")
            .await
            .map_err(|e| CoordinatorError::RaftInit(format!("no leader: {e}")))?;
        Ok(m.current_leader.unwrap_or_default())
    }

    /// Raft view of this node: (term, whether it is the leader, last applied index).
    pub fn raft_view(&self) -> (u64, bool, u64) {
        let m = self.raft.metrics().borrow().clone();
        let applied = m.last_applied.map(|l| l.index).unwrap_or(0);
        (
            m.current_term,
            m.state == gloss_raft::openraft::ServerState::Leader,
            applied,
        )
    }

    /// A live view of this node's Raft metrics.
    pub fn raft_metrics(
        &self,
    ) -> tokio::sync::watch::Receiver<gloss_raft::openraft::RaftMetrics<u64, NodeInfo>> {
        self.raft.metrics()
    }

    /// The leader this node currently knows, if any.
    pub fn current_leader(&self) -> Option<u64> {
        self.raft.metrics().borrow().current_leader
    }

    /// The shared service layer.
    pub fn service(&self) -> &Arc<Service> {
        &self.service
    }

    /// Where the servers listen.
    pub fn addrs(&self) -> BoundAddrs {
        self.addrs
    }

    /// Stops accepting requests, lets in-flight ones finish, and stops Raft cleanly.
    pub async fn shutdown(self) -> Result<(), CoordinatorError> {
        let _ = self.shutdown.send(true);
        let mut first_error = None;
        for (what, handle) in self.servers {
            match tokio::time::timeout(Duration::from_secs(10), handle).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(message))) => {
                    first_error.get_or_insert(CoordinatorError::Serve { what, message });
                }
                Ok(Err(e)) => {
                    first_error.get_or_insert(CoordinatorError::Serve {
                        what,
                        message: e.to_string(),
                    });
                }
                Err(_) => tracing::warn!(server = what, "did not stop within 10s"),
            }
        }
        if let Err(e) = self.raft.shutdown().await {
            first_error.get_or_insert(CoordinatorError::RaftInit(format!("raft shutdown: {e}")));
        }
        // Connection tasks of the servers may still hold the service (and with it the state
        // database) for a moment; a restart in the same process needs the database closed.
        let service = self.service;
        for _ in 0..200 {
            if Arc::strong_count(&service) == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        drop(service);
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
