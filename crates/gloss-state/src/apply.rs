//! Applying one command. Every change goes into the caller's `WriteBatch`, which the caller writes
//! atomically together with the Raft bookkeeping, so a crash never leaves half a command behind.
//!
//! [`Tx::apply_body`] matches every command variant by name, without a wildcard: a new variant
//! is a compile error here until it says what it does, never a panic on every replica.

use gloss_proto::v1::{command, command_result, Command, CommandResult};
use gloss_proto::{ErrorCode, COMMAND_VERSION};
use gloss_store::rocksdb::{WriteBatch, DB};
use gloss_store::{cf, keys, state_cf};
use prost::Message;

use crate::overlay::Overlay;
use crate::read::decode;
use crate::tasks::Step;
use crate::{feed, jobs, models, ok, rejected, review, tasks, users, StateError};

/// Applies `cmd` to the state in `db`, recording every change in `batch`. Returns the command's
/// result, which is a rejection (not an `Err`) when the command is invalid in the current state.
pub fn apply(db: &DB, cmd: &Command, batch: &mut WriteBatch) -> Result<CommandResult, StateError> {
    if cmd.version > COMMAND_VERSION {
        return Err(StateError::UnsupportedVersion {
            found: cmd.version,
            supported: COMMAND_VERSION,
        });
    }
    let idem_cf = cf(db, state_cf::IDEMPOTENCY)?;
    if !cmd.idempotency_key.is_empty() {
        if let Some(prev) = db.get_cf(idem_cf, keys::idempotency(&cmd.idempotency_key))? {
            return decode("idempotent result", &prev);
        }
    }
    let mut tx = Tx { db, batch };
    let result = match &cmd.body {
        None => rejected(ErrorCode::InvalidArgument, "command has no body"),
        Some(body) => tx.apply_body(cmd.at_ms, body)?,
    };
    if !cmd.idempotency_key.is_empty() {
        tx.batch.put_cf(
            idem_cf,
            keys::idempotency(&cmd.idempotency_key),
            result.encode_to_vec(),
        );
    }
    crate::audit::record(db, tx.batch, cmd, &result)?;
    Ok(result)
}

/// One command's access to the state: reads go to `db`, writes into `batch`.
pub(crate) struct Tx<'a> {
    pub(crate) db: &'a DB,
    pub(crate) batch: &'a mut WriteBatch,
}

impl Tx<'_> {
    fn apply_body(&mut self, now: i64, body: &command::Body) -> Result<CommandResult, StateError> {
        use command::Body;
        match body {
            // Projects, datasets and imports write straight into the batch.
            Body::CreateProject(c) => self.create_project(now, &c.name, &c.description),
            Body::DeleteProject(c) => self.delete_project(&c.name, c.force),
            Body::CreateDataset(c) => Ok(match self.create_dataset(now, c)? {
                Ok(rec) => ok(command_result::Result::Dataset(
                    rec.dataset.unwrap_or_default(),
                )),
                Err(rejection) => rejection,
            }),
            Body::DeleteDataset(c) => self.delete_dataset(&c.project, &c.name),
            Body::BeginImport(c) => self.begin_import(now, c),
            Body::StageImages(c) => self.stage_images(c),
            // The Raft state machine unpacks a batch entry (version 2) and applies its commands
            // one by one; a batch reaching here is malformed.
            Body::Batch(_) => Ok(rejected(
                ErrorCode::InvalidArgument,
                "a command batch is only valid as a whole log entry",
            )),
            Body::StageExamples(c) => self.stage(c),
            Body::CommitImport(c) => self.commit_import(now, c),
            Body::AbortImport(c) => self.abort_import(now, c.import_id, &c.reason),
            Body::RestoreRows(c) => crate::backup::restore_rows(self.db, self.batch, c),
            // The entry itself is the effect (see `audit::record`).
            Body::RecordAudit(_) => Ok(ok(command_result::Result::Ok(true))),
            // Everything else reads its own writes through an overlay.
            Body::CreateTask(c) => {
                self.overlay(|ov| tasks::create_task(ov, now, &c.task.clone().unwrap_or_default()))
            }
            Body::CloseTask(c) => self.overlay(|ov| tasks::close_task(ov, &c.project, &c.task)),
            Body::SetGroup(c) => {
                self.overlay(|ov| tasks::set_group(ov, &c.group.clone().unwrap_or_default()))
            }
            Body::NextExamples(c) => self.overlay(|ov| feed::next_examples(ov, now, c)),
            Body::Heartbeat(c) => self.overlay(|ov| feed::heartbeat(ov, now, c)),
            Body::SubmitAnswer(c) => self.overlay(|ov| {
                feed::answers::submit(ov, now, &c.answer.clone().unwrap_or_default(), c.revise)
            }),
            Body::UndoAnswer(c) => self.overlay(|ov| feed::answers::undo(ov, now, c)),
            Body::ImportAnswers(c) => self.overlay(|ov| feed::answers::import_answers(ov, now, c)),
            Body::SetSuggestions(c) => self.overlay(|ov| feed::set_suggestions(ov, c)),
            Body::ResolveReview(c) => {
                self.overlay(|ov| review::resolve(ov, now, &c.request.clone().unwrap_or_default()))
            }
            Body::PutUser(c) => self.overlay(|ov| users::put_user(ov, now, c)),
            Body::PutToken(c) => self.overlay(|ov| users::put_token(ov, now, c)),
            Body::RevokeToken(c) => self.overlay(|ov| users::revoke_token(ov, &c.token_id)),
            Body::RegisterWorker(c) => self.overlay(|ov| jobs::register_worker(ov, now, c)),
            Body::WorkerBeat(c) => self.overlay(|ov| jobs::worker_beat(ov, now, c)),
            Body::SubmitJob(c) => self.overlay(|ov| jobs::submit_job(ov, now, c)),
            Body::PlaceJobs(c) => self.overlay(|ov| jobs::place_jobs(ov, now, c)),
            Body::ReportJob(c) => self.overlay(|ov| jobs::report_job(ov, now, c)),
            Body::CancelJob(c) => self.overlay(|ov| jobs::cancel_job(ov, now, &c.job_id)),
            Body::ExpireJobs(c) => {
                self.overlay(|ov| jobs::expire_jobs(ov, now, c.worker_timeout_ms))
            }
            Body::BeginModel(c) => self.overlay(|ov| models::begin(ov, now, c)),
            Body::PutModelChunk(c) => self.overlay(|ov| models::put_chunk(ov, c)),
            Body::CommitModel(c) => self.overlay(|ov| models::commit(ov, c)),
            Body::PromoteModel(c) => self.overlay(|ov| models::promote(ov, c)),
            Body::RecordEvaluation(c) => self.overlay(|ov| {
                models::record_evaluation(ov, now, &c.evaluation.clone().unwrap_or_default())
            }),
        }
    }

    /// Runs a command that reads its own writes through an overlay; its writes reach the batch
    /// only when it is accepted (a rejected command changes nothing).
    fn overlay(
        &mut self,
        f: impl FnOnce(&mut Overlay) -> Step<CommandResult>,
    ) -> Result<CommandResult, StateError> {
        let mut ov = Overlay::new(self.db);
        match f(&mut ov)? {
            Ok(result) => {
                ov.flush(self.batch)?;
                Ok(result)
            }
            Err(rejection) => Ok(rejection),
        }
    }

    pub(crate) fn put<M: Message>(
        &mut self,
        cf_name: &'static str,
        key: &[u8],
        value: &M,
    ) -> Result<(), StateError> {
        self.batch
            .put_cf(cf(self.db, cf_name)?, key, value.encode_to_vec());
        Ok(())
    }

    pub(crate) fn next_id(&mut self, counter: &[u8]) -> Result<u64, StateError> {
        let meta = cf(self.db, state_cf::META)?;
        let id = match self.db.get_cf(meta, counter)? {
            Some(v) => keys::decode_u64_value(&v)?,
            None => 1,
        };
        self.batch.put_cf(meta, counter, (id + 1).to_be_bytes());
        Ok(id)
    }
}
