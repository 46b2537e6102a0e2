//! Group commit at the proposal: commands that arrive while earlier proposals are in flight are
//! proposed together, as one Raft entry holding a `CommandBatch`, and each caller gets its own
//! command's result.
//!
//! A command proposed while a slot is free goes alone at once, so a single client waits no
//! longer than before. Under load the queue fills while [`IN_FLIGHT`] proposals are out, and the
//! next free slot takes everything queued: one log append, one fsync per replica, one
//! AppendEntries and (on a follower) one forward to the leader for many commands. The state
//! machine applies a batch's commands in order, each exactly once (`gloss-raft`).
//!
//! One proposal out at a time measured best (`gloss bench feed` and `bench raft`, BENCH.md):
//! with more slots the same load goes out in smaller batches, and the per-entry costs (append,
//! fsync, AppendEntries, forward) come back.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gloss_core::stages::{Stage, Stages};
use gloss_proto::v1::{command, command_result, Command, CommandBatch, CommandResult};
use gloss_proto::BATCH_VERSION;
use gloss_raft::network::{ForwardError, Forwarder};
use gloss_raft::{NodeInfo, Raft, Request};
use prost::Message;
use tokio::sync::{oneshot, Semaphore};
use tracing::Instrument as _;

use crate::error::ServiceError;

/// Proposals out at once; a command arriving when all are out waits for the next batch. With
/// two, four or eight, `bench feed` answered less in smaller batches; with four, `bench raft`
/// committed less at 16 and 64 clients and about the same at 1 and 256.
pub(crate) const IN_FLIGHT: usize = 1;
/// Most commands in one batch.
const MAX_BATCH: usize = 256;
/// Most encoded bytes of commands in one batch.
const MAX_BATCH_BYTES: usize = 1 << 20;
/// A command larger than this (an import chunk, a model chunk) is always proposed alone.
const ALONE_BYTES: usize = 64 << 10;

/// How long a request waits for a leader (during an election) before giving up.
pub(crate) const LEADER_WAIT: Duration = Duration::from_secs(10);

/// Why a leader-only operation did not run on this node.
pub(crate) enum Redirect {
    /// Another node leads (when known): try there.
    To(Option<(u64, NodeInfo)>),
    /// Not possible yet (an earlier change is still settling): try again shortly.
    Wait(String),
    /// It failed for another reason.
    Fail(ServiceError),
}

impl<E> From<gloss_raft::openraft::error::RaftError<u64, E>> for Redirect
where
    E: gloss_raft::openraft::TryAsRef<gloss_raft::openraft::error::ForwardToLeader<u64, NodeInfo>>
        + std::error::Error,
    ServiceError: From<gloss_raft::openraft::error::RaftError<u64, E>>,
{
    fn from(e: gloss_raft::openraft::error::RaftError<u64, E>) -> Self {
        match e.forward_to_leader::<NodeInfo>() {
            Some(f) => Redirect::To(f.leader_id.zip(f.leader_node.clone())),
            None => Redirect::Fail(e.into()),
        }
    }
}

/// Runs `local` on this node; when it answers that another node leads, runs `remote` against
/// the leader's internal address instead. Retries while an election settles, for at most
/// [`LEADER_WAIT`]. A refusal by a non-leader proves nothing was done, so it is always retried;
/// other failures of `remote` are retried only when `retry_safe`.
pub(crate) async fn via_leader<T, L, LF, R, RF>(
    retry_safe: bool,
    mut local: L,
    mut remote: R,
) -> Result<T, ServiceError>
where
    L: FnMut() -> LF,
    LF: std::future::Future<Output = Result<T, Redirect>>,
    R: FnMut(u64, String) -> RF,
    RF: std::future::Future<Output = Result<T, ForwardError>>,
{
    let deadline = Instant::now() + LEADER_WAIT;
    loop {
        let why = match local().await {
            Ok(v) => return Ok(v),
            Err(Redirect::Fail(e)) => return Err(e),
            Err(Redirect::To(None)) => "election in progress".to_string(),
            Err(Redirect::Wait(why)) => why,
            Err(Redirect::To(Some((id, leader)))) => match remote(id, leader.raft_addr).await {
                Ok(v) => return Ok(v),
                Err(e @ ForwardError::NotLeader { .. }) => e.to_string(),
                Err(e) if retry_safe => e.to_string(),
                Err(e) => {
                    return Err(ServiceError::Unavailable(format!(
                        "{e}; retry with an idempotency key"
                    )))
                }
            },
        };
        if Instant::now() >= deadline {
            return Err(ServiceError::Unavailable(format!("no raft leader: {why}")));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A command waiting for a proposal slot.
struct Pending {
    command: Command,
    retry_safe: bool,
    /// The caller's span, so a command proposed alone keeps its trace across a forward.
    span: tracing::Span,
    reply: oneshot::Sender<Result<Vec<u8>, ServiceError>>,
}

struct Inner {
    raft: Raft,
    forwarder: Forwarder,
    stages: Arc<Stages>,
    queue: Mutex<Vec<Pending>>,
    slots: Arc<Semaphore>,
}

/// Replicates commands, batching those that arrive while others are in flight.
#[derive(Clone)]
pub(crate) struct Proposer {
    inner: Arc<Inner>,
}

impl Proposer {
    pub(crate) fn new(raft: Raft, forwarder: Forwarder, stages: Arc<Stages>) -> Self {
        Proposer {
            inner: Arc::new(Inner {
                raft,
                forwarder,
                stages,
                queue: Mutex::new(Vec::new()),
                slots: Arc::new(Semaphore::new(IN_FLIGHT)),
            }),
        }
    }

    /// The leader-forwarding client of this node.
    pub(crate) fn forwarder(&self) -> &Forwarder {
        &self.inner.forwarder
    }

    /// Replicates `command` (alone or in a batch) and returns its encoded `CommandResult`.
    pub(crate) async fn replicate(
        &self,
        command: Command,
        retry_safe: bool,
    ) -> Result<Vec<u8>, ServiceError> {
        let _timer = self.inner.stages.time(Stage::Commit);
        if command.encoded_len() > ALONE_BYTES {
            let encoded = command.encode_to_vec();
            return self.inner.replicate_one(encoded, retry_safe, 1).await;
        }
        let (reply, answer) = oneshot::channel();
        self.inner.queue.lock().expect("queue lock").push(Pending {
            command,
            retry_safe,
            span: tracing::Span::current(),
            reply,
        });
        self.inner.clone().pump();
        answer
            .await
            .map_err(|_| ServiceError::Internal("the proposal was dropped".into()))?
    }
}

impl Inner {
    /// Starts a proposal of everything queued for each free slot.
    fn pump(self: Arc<Self>) {
        loop {
            let Ok(slot) = self.slots.clone().try_acquire_owned() else {
                return;
            };
            let group = {
                let mut queue = self.queue.lock().expect("queue lock");
                let mut bytes = 0;
                let take = queue
                    .iter()
                    .take_while(|p| {
                        bytes += p.command.encoded_len();
                        bytes <= MAX_BATCH_BYTES
                    })
                    .count()
                    .clamp(1, MAX_BATCH)
                    .min(queue.len());
                queue.drain(..take).collect::<Vec<_>>()
            };
            if group.is_empty() {
                return;
            }
            let inner = self.clone();
            tokio::spawn(async move {
                inner.propose_group(group).await;
                drop(slot);
                inner.pump();
            });
        }
    }

    /// Proposes a group: commands that may be resent after a leader change apart from those that
    /// may not, each part alone or as one batch.
    async fn propose_group(&self, group: Vec<Pending>) {
        let (safe, unsafe_): (Vec<_>, Vec<_>) = group.into_iter().partition(|p| p.retry_safe);
        for part in [safe, unsafe_] {
            match part.len() {
                0 => {}
                1 => {
                    let p = part.into_iter().next().expect("one pending command");
                    let span = p.span.clone();
                    let result = self
                        .replicate_one(p.command.encode_to_vec(), p.retry_safe, 1)
                        .instrument(span)
                        .await;
                    let _ = p.reply.send(result);
                }
                _ => self.propose_batch(part).await,
            }
        }
    }

    async fn propose_batch(&self, part: Vec<Pending>) {
        let retry_safe = part[0].retry_safe;
        let (commands, replies): (Vec<_>, Vec<_>) =
            part.into_iter().map(|p| (p.command, p.reply)).unzip();
        let n = commands.len();
        let envelope = Command {
            version: BATCH_VERSION,
            at_ms: commands.iter().map(|c| c.at_ms).max().unwrap_or_default(),
            body: Some(command::Body::Batch(CommandBatch { commands })),
            ..Command::default()
        };
        let outcome = self
            .replicate_one(envelope.encode_to_vec(), retry_safe, n)
            .await
            .and_then(|bytes| {
                CommandResult::decode(bytes.as_slice())
                    .map_err(|e| ServiceError::Internal(format!("undecodable batch result: {e}")))
            });
        match outcome {
            Ok(CommandResult {
                result: Some(command_result::Result::Batch(b)),
            }) if b.results.len() == n => {
                for (reply, result) in replies.into_iter().zip(b.results) {
                    let _ = reply.send(Ok(result.encode_to_vec()));
                }
            }
            // The whole batch was refused (every command gets the refusal).
            Ok(
                r @ CommandResult {
                    result: Some(command_result::Result::Error(_)),
                },
            ) => {
                let bytes = r.encode_to_vec();
                for reply in replies {
                    let _ = reply.send(Ok(bytes.clone()));
                }
            }
            Ok(other) => {
                let e = ServiceError::Internal(format!(
                    "a batch of {n} commands came back as {other:?}"
                ));
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
            Err(e) => {
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }

    /// Replicates one encoded command (`commands` of the caller's inside it): locally when this
    /// node leads, otherwise through the leader.
    async fn replicate_one(
        &self,
        command: Vec<u8>,
        retry_safe: bool,
        commands: usize,
    ) -> Result<Vec<u8>, ServiceError> {
        self.stages.count_proposal(commands);
        via_leader(
            retry_safe,
            || async {
                let request = Request {
                    command: command.clone(),
                };
                let _timer = self.stages.time(Stage::RaftWrite);
                self.raft
                    .client_write(request)
                    .await
                    .map(|r| r.data.result)
                    .map_err(Redirect::from)
            },
            |id, addr| {
                let command = command.clone();
                async move {
                    let _timer = self.stages.time(Stage::Forward);
                    self.forwarder.forward(id, &addr, command).await
                }
            },
        )
        .await
    }
}
