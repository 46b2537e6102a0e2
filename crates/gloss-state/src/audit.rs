//! The audit log: an entry per applied change that an operator must be able to account for
//! (projects, datasets, tasks, users, tokens, groups, jobs, promotions, restores) and per recorded
//! read (exports, backups), with the actor the proposer stamped into the command. Entries are
//! appended in log order under a sequence number; nothing edits or deletes them.

use gloss_proto::v1::{command, command_result, AuditEvent, Command, CommandResult};
use gloss_store::rocksdb::{Direction, IteratorMode, WriteBatch, DB};
use gloss_store::{cf, keys, state_cf};
use prost::Message;

use crate::StateError;

const NEXT_SEQ: &[u8] = b"next_audit_seq";

/// What an applied command did and to what, when it is worth an audit entry.
fn describe(body: &command::Body, result: &CommandResult) -> Option<(String, String, String)> {
    use command::Body::*;
    let ok = !matches!(result.result, Some(command_result::Result::Error(_)));
    if !ok {
        return None;
    }
    Some(match body {
        CreateProject(c) => ("create_project", c.name.clone(), String::new()),
        DeleteProject(c) => (
            "delete_project",
            c.name.clone(),
            format!("force={}", c.force),
        ),
        CreateDataset(c) => (
            "create_dataset",
            format!("{}/{}", c.project, c.name),
            String::new(),
        ),
        DeleteDataset(c) => (
            "delete_dataset",
            format!("{}/{}", c.project, c.name),
            String::new(),
        ),
        ImportAnswers(c) => (
            "import_answers",
            format!("{}/{}", c.project, c.task),
            format!("answers={}", c.answers.len()),
        ),
        CommitImport(c) => (
            "import",
            format!("import {}", c.import_id),
            format!("records_read={}", c.records_read),
        ),
        CreateTask(c) => {
            let t = c.task.clone().unwrap_or_default();
            (
                "create_task",
                format!("{}/{}", t.project, t.name),
                String::new(),
            )
        }
        CloseTask(c) => (
            "close_task",
            format!("{}/{}", c.project, c.task),
            String::new(),
        ),
        SetGroup(c) => {
            let g = c.group.clone().unwrap_or_default();
            (
                "set_group",
                format!("{}/{}", g.project, g.name),
                g.members.join(","),
            )
        }
        ResolveReview(c) => {
            let r = c.request.clone().unwrap_or_default();
            (
                "resolve_review",
                format!("{}/{} example {}", r.project, r.task, r.seq),
                String::new(),
            )
        }
        PutUser(c) => {
            let u = c
                .record
                .clone()
                .unwrap_or_default()
                .user
                .unwrap_or_default();
            let action = if c.create {
                "create_user"
            } else {
                "update_user"
            };
            let detail = format!(
                "roles={:?} disabled={} password_changed={}",
                u.roles, u.disabled, !c.keep_password
            );
            (action, format!("user {}", u.name), detail)
        }
        PutToken(c) => {
            let i = c
                .record
                .clone()
                .unwrap_or_default()
                .info
                .unwrap_or_default();
            (
                "issue_token",
                format!("token {}", i.token_id),
                format!("user={} {}", i.user, i.description),
            )
        }
        RevokeToken(c) => (
            "revoke_token",
            format!("token {}", c.token_id),
            String::new(),
        ),
        RegisterWorker(c) => {
            let w = c.worker.clone().unwrap_or_default();
            ("register_worker", w.name, String::new())
        }
        SubmitJob(c) => {
            let spec = c.job.clone().unwrap_or_default().spec.unwrap_or_default();
            (
                "submit_job",
                format!("{}/{}", spec.project, spec.task),
                format!("{:?} {}", spec.kind(), spec.model),
            )
        }
        CancelJob(c) => ("cancel_job", c.job_id.clone(), String::new()),
        CommitModel(c) => (
            "store_model",
            format!("{}@{}", c.name, c.version),
            String::new(),
        ),
        PromoteModel(c) => (
            "promote_model",
            format!("{}@{}", c.name, c.version),
            c.note.clone(),
        ),
        RecordAudit(c) => return Some((c.action.clone(), c.target.clone(), c.detail.clone())),
        _ => return None,
    })
    .map(|(action, target, detail): (&str, String, String)| (action.to_string(), target, detail))
}

/// Appends the audit entry for `cmd` (when it is worth one) to `batch`.
pub(crate) fn record(
    db: &DB,
    batch: &mut WriteBatch,
    cmd: &Command,
    result: &CommandResult,
) -> Result<(), StateError> {
    let Some(body) = &cmd.body else {
        return Ok(());
    };
    let Some((action, target, detail)) = describe(body, result) else {
        return Ok(());
    };
    let meta = cf(db, state_cf::META)?;
    let seq = match db.get_cf(meta, NEXT_SEQ)? {
        Some(v) => keys::decode_u64_value(&v)?,
        None => 1,
    };
    batch.put_cf(meta, NEXT_SEQ, (seq + 1).to_be_bytes());
    let event = AuditEvent {
        seq,
        at_ms: cmd.at_ms,
        actor: cmd.actor.clone(),
        action,
        target,
        detail,
    };
    batch.put_cf(
        cf(db, state_cf::AUDIT)?,
        keys::numbered(seq),
        event.encode_to_vec(),
    );
    Ok(())
}

/// Entries after `after`, oldest first, at most `limit`.
pub fn events(db: &DB, after: u64, limit: usize) -> Result<Vec<AuditEvent>, StateError> {
    let from = keys::numbered(after.saturating_add(1));
    let mut out = Vec::new();
    for kv in db.iterator_cf(
        cf(db, state_cf::AUDIT)?,
        IteratorMode::From(&from, Direction::Forward),
    ) {
        let (_, v) = kv?;
        out.push(crate::read::decode("audit event", &v)?);
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}
