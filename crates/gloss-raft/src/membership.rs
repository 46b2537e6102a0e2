//! Membership changes an operator asks for, in a form that can be applied on the leader or sent
//! to it from a follower.

use std::collections::BTreeSet;

use openraft::error::{ClientWriteError, RaftError};
use openraft::ChangeMembers;
use serde::{Deserialize, Serialize};

use crate::{NodeId, NodeInfo, Raft};

/// One change of the group's membership.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum MembershipChange {
    /// Add a non-voting learner and wait until it has caught up.
    AddLearner { node_id: NodeId, node: NodeInfo },
    /// Turn a learner into a voter.
    Promote { node_id: NodeId },
    /// Remove a voter or a learner.
    Remove { node_id: NodeId },
    /// Record a member's public API address (members of a group formed from
    /// `--initial-members` only know each other's internal addresses at first). The internal
    /// address is never changed this way.
    SetApiAddress { node_id: NodeId, api_addr: String },
}

/// Error of a membership change on the leader.
pub type ChangeError = RaftError<NodeId, ClientWriteError<NodeId, NodeInfo>>;

impl MembershipChange {
    /// Applies the change; must run on the leader (otherwise the error names the leader).
    pub async fn apply(&self, raft: &Raft) -> Result<(), ChangeError> {
        match self {
            MembershipChange::AddLearner { node_id, node } => {
                raft.add_learner(*node_id, node.clone(), true).await?;
            }
            MembershipChange::Promote { node_id } => {
                let ids = BTreeSet::from([*node_id]);
                raft.change_membership(ChangeMembers::AddVoterIds(ids), false)
                    .await?;
            }
            MembershipChange::Remove { node_id } => {
                let ids = BTreeSet::from([*node_id]);
                let is_voter = raft
                    .metrics()
                    .borrow()
                    .membership_config
                    .membership()
                    .voter_ids()
                    .any(|v| v == *node_id);
                let change = if is_voter {
                    ChangeMembers::RemoveVoters(ids)
                } else {
                    ChangeMembers::RemoveNodes(ids)
                };
                // `retain = false`: a removed voter leaves the group entirely.
                raft.change_membership(change, false).await?;
            }
            MembershipChange::SetApiAddress { node_id, api_addr } => {
                let current = raft
                    .metrics()
                    .borrow()
                    .membership_config
                    .membership()
                    .get_node(node_id)
                    .cloned();
                // Unknown members are left alone: SetNodes only updates existing ones.
                if let Some(node) = current.filter(|n| &n.api_addr != api_addr) {
                    let node = NodeInfo {
                        api_addr: api_addr.clone(),
                        ..node
                    };
                    let nodes = std::collections::BTreeMap::from([(*node_id, node)]);
                    raft.change_membership(ChangeMembers::SetNodes(nodes), true)
                        .await?;
                }
            }
        }
        Ok(())
    }
}
