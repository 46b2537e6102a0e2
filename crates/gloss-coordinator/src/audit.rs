//! The audit log in the service layer: reads that matter (exports, backups, membership changes)
//! are recorded by the coordinator; changes are recorded by the state machine as it applies
//! them. Both carry the signed-in actor.

use gloss_proto::v1::{command, AuditEvent, RecordAudit};

use crate::access::Actor;
use crate::error::ServiceError;
use crate::service::Service;

impl Service {
    /// Records `action` on `target` for `actor`. The cluster's own reads (workers on the internal
    /// port reading their training data) are not recorded.
    pub async fn audit(
        &self,
        actor: &Actor,
        action: &str,
        target: &str,
        detail: &str,
    ) -> Result<(), ServiceError> {
        if actor.is_system() {
            return Ok(());
        }
        let body = command::Body::RecordAudit(RecordAudit {
            action: action.into(),
            target: target.into(),
            detail: detail.into(),
        });
        self.propose(actor, body, String::new()).await.map(|_| ())
    }

    /// Audit entries after `after`, oldest first.
    pub async fn list_audit(
        &self,
        after: u64,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, ServiceError> {
        self.read_barrier().await?;
        let limit = match limit {
            0 => 100,
            n => n.min(1000) as usize,
        };
        Ok(gloss_state::audit::events(&self.state.db(), after, limit)?)
    }
}
