//! `glossctl audit`: the audit log (admins).

use anyhow::Result;
use gloss_client::Client;
use gloss_proto::v1::audit_service_client::AuditServiceClient;
use gloss_proto::v1::ListAuditRequest;

use crate::output::{print_list, Output};

pub async fn run(client: &Client, out: Output, after: u64, limit: u32) -> Result<()> {
    let events = AuditServiceClient::new(client.channel())
        .list_audit(ListAuditRequest {
            after_seq: after,
            limit,
        })
        .await?
        .into_inner()
        .events;
    if let Output::Json = out {
        return print_list("gloss.v1.AuditEvent", &events);
    }
    println!(
        "{:>6} {:>14} {:<12} {:<16} {:<28} DETAIL",
        "SEQ", "AT (MS)", "ACTOR", "ACTION", "TARGET"
    );
    for e in events {
        let actor = if e.actor.is_empty() {
            "(cluster)"
        } else {
            &e.actor
        };
        println!(
            "{:>6} {:>14} {:<12} {:<16} {:<28} {}",
            e.seq, e.at_ms, actor, e.action, e.target, e.detail
        );
    }
    Ok(())
}
