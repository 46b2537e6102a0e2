//! Faster failover when the leader's process is gone.
//!
//! Openraft elects a new leader only after a follower's lease on the old one runs out and its
//! own (fixed, per-node) election timer fires; when the follower with the shorter timer has the
//! shorter log, its candidacy is refused and the other waits out a longer back-off. A follower
//! that has heard nothing from the leader for longer than the lease, and finds the leader's
//! port refusing connections, knows the process is dead and starts an election at once.
//! A leader that is alive but cut off (the port still accepts connections) is left to the
//! timers, so a slow network never causes extra elections. A follower stands only when no
//! reachable voter has a longer log: a candidate with a shorter log would be refused, and its own
//! vote would then hold off the right candidate for a lease.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::ServerState;

use crate::network::Forwarder;
use crate::{NodeId, Raft};

/// When this node last heard from a leader (append-entries or snapshot), in milliseconds since
/// the watchdog's epoch. Shared by the Raft service (which stamps it) and the watchdog.
#[derive(Clone)]
pub struct Heard {
    epoch: Instant,
    at_ms: Arc<AtomicU64>,
}

impl Default for Heard {
    fn default() -> Self {
        Heard {
            epoch: Instant::now(),
            at_ms: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl Heard {
    /// Records that a leader's message arrived now.
    pub fn stamp(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.at_ms.store(ms, Ordering::Relaxed);
    }

    /// Time since the last leader message.
    pub fn since(&self) -> Duration {
        let now = self.epoch.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.at_ms.load(Ordering::Relaxed)))
    }
}

/// Whether a TCP connection to `addr` is refused: the process behind it is gone (or the node
/// restarted without its Raft port yet). Timeouts and other errors prove nothing.
async fn refused(addr: &str) -> bool {
    match tokio::time::timeout(
        Duration::from_millis(200),
        tokio::net::TcpStream::connect(addr),
    )
    .await
    {
        Ok(Err(e)) => e.kind() == std::io::ErrorKind::ConnectionRefused,
        _ => false,
    }
}

/// Whether no reachable voter (other than this node and the dead leader) has a longer log than
/// this node. Peers that do not answer in time are left out: they cannot vote either.
async fn longest_log(
    peers: &Forwarder,
    m: &openraft::RaftMetrics<NodeId, crate::NodeInfo>,
    leader: NodeId,
) -> bool {
    let mine = m.last_log_index;
    let membership = m.membership_config.membership();
    for voter in membership.voter_ids() {
        if voter == m.id || voter == leader {
            continue;
        }
        let Some(node) = membership.get_node(&voter) else {
            continue;
        };
        let asked = tokio::time::timeout(
            Duration::from_millis(150),
            peers.last_log(voter, &node.raft_addr),
        )
        .await;
        if let Ok(Ok(theirs)) = asked {
            if theirs > mine {
                return false;
            }
        }
    }
    true
}

/// Watches the leader every `tick` until `stop` resolves. `lease` is how long a follower refuses
/// other candidates after the last leader message (openraft: the maximum election timeout).
pub async fn run(
    raft: Raft,
    node_id: NodeId,
    peers: Forwarder,
    heard: Heard,
    tick: Duration,
    lease: Duration,
    stop: impl std::future::Future<Output = ()>,
) {
    // Stagger the followers so they do not stand against each other in the same instant.
    let wait = lease + tick * (1 + (node_id % 3) as u32);
    let watch = async {
        loop {
            tokio::time::sleep(tick).await;
            let m = raft.metrics().borrow().clone();
            if m.state != ServerState::Follower || heard.since() < wait {
                continue;
            }
            let Some(leader) = m.current_leader.filter(|l| *l != node_id) else {
                continue;
            };
            let membership = m.membership_config.membership();
            let voter = membership.voter_ids().any(|v| v == node_id);
            let Some(addr) = membership.get_node(&leader).map(|n| n.raft_addr.clone()) else {
                continue;
            };
            if voter && refused(&addr).await && longest_log(&peers, &m, leader).await {
                tracing::info!(leader, %addr, "leader's port refuses connections; starting an election");
                if let Err(e) = raft.trigger().elect().await {
                    tracing::debug!(error = %e, "election trigger failed");
                }
                // Give the election a moment before judging again.
                tokio::time::sleep(lease).await;
            }
        }
    };
    tokio::select! {
        _ = watch => {}
        _ = stop => {}
    }
}
