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
        }
        Ok(())
    }
}
