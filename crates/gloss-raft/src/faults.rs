//! Injected network faults between coordinators, for tests: every outgoing Raft RPC and every
//! forwarded request checks the link it travels on, and may be dropped or delayed. A cluster
//! sandbox shares one [`Faults`] among its nodes to partition, cut or slow individual links.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::NodeId;

/// What happens on one directed link.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Link {
    /// Fail every message as if the peer were unreachable.
    pub drop: bool,
    /// Hold every message this long before sending it.
    pub delay: Duration,
}

/// Shared link rules; links without a rule work normally.
#[derive(Clone, Default)]
pub struct Faults {
    links: Arc<RwLock<HashMap<(NodeId, NodeId), Link>>>,
}

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let links = self.links.read().expect("faults lock poisoned");
        f.debug_struct("Faults").field("links", &*links).finish()
    }
}

/// The link was cut by an injected fault.
#[derive(Debug, thiserror::Error)]
#[error("link {from} -> {to} is cut by an injected fault")]
pub struct LinkCut {
    pub from: NodeId,
    pub to: NodeId,
}

impl Faults {
    /// Sets the rule of the directed link `from -> to`.
    pub fn set(&self, from: NodeId, to: NodeId, link: Link) {
        self.links
            .write()
            .expect("faults lock poisoned")
            .insert((from, to), link);
    }

    /// Cuts every link between `node` and `others`, both ways.
    pub fn isolate(&self, node: NodeId, others: &[NodeId]) {
        let cut = Link {
            drop: true,
            ..Link::default()
        };
        for other in others.iter().filter(|o| **o != node) {
            self.set(node, *other, cut);
            self.set(*other, node, cut);
        }
    }

    /// Removes every rule.
    pub fn heal(&self) {
        self.links.write().expect("faults lock poisoned").clear();
    }

    /// Applies the rule of `from -> to` to one message.
    pub async fn pass(&self, from: NodeId, to: NodeId) -> Result<(), LinkCut> {
        let link = self
            .links
            .read()
            .expect("faults lock poisoned")
            .get(&(from, to))
            .copied()
            .unwrap_or_default();
        if link.drop {
            return Err(LinkCut { from, to });
        }
        if !link.delay.is_zero() {
            tokio::time::sleep(link.delay).await;
        }
        Ok(())
    }
}

/// Checks a link when faults are injected at all.
pub(crate) async fn pass(faults: &Option<Faults>, from: NodeId, to: NodeId) -> Result<(), LinkCut> {
    match faults {
        Some(f) => f.pass(from, to).await,
        None => Ok(()),
    }
}
