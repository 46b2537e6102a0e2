//! Applying one command. Every change goes into the caller's `WriteBatch`, which the caller writes
//! atomically together with the Raft bookkeeping, so a crash never leaves half a command behind.

use std::collections::HashSet;

use gloss_proto::v1::{
    command, command_result, BeginImport, Command, CommandResult, CreateDataset, Dataset,
    DatasetKind, DatasetRecord, ExampleRow, ImportRecord, Project, StageExamples,
};
use gloss_proto::COMMAND_VERSION;
use gloss_store::rocksdb::{Direction, IteratorMode, WriteBatch, DB};
use gloss_store::{cf, keys, state_cf};
use prost::Message;

use crate::overlay::Overlay;
use crate::read::{self, decode};
use crate::{
    check_name, code, feed, import_state, jobs, models, ok, rejected, review, task, users,
    StateError,
};

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
        None => rejected(code::INVALID_ARGUMENT, "command has no body"),
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

struct Tx<'a> {
    db: &'a DB,
    batch: &'a mut WriteBatch,
}

impl Tx<'_> {
    fn apply_body(
        &mut self,
        at_ms: i64,
        body: &command::Body,
    ) -> Result<CommandResult, StateError> {
        use command::Body;
        match body {
            Body::CreateProject(c) => self.create_project(at_ms, &c.name, &c.description),
            Body::DeleteProject(c) => self.delete_project(&c.name, c.force),
            Body::CreateDataset(c) => Ok(match self.create_dataset(at_ms, c)? {
                Ok(rec) => ok(command_result::Result::Dataset(
                    rec.dataset.unwrap_or_default(),
                )),
                Err(rejection) => rejection,
            }),
            Body::DeleteDataset(c) => self.delete_dataset(&c.project, &c.name),
            Body::BeginImport(c) => self.begin_import(at_ms, c),
            Body::StageExamples(c) => self.stage(c),
            Body::CommitImport(c) => self.commit_import(at_ms, c),
            Body::AbortImport(c) => self.abort_import(at_ms, c.import_id, &c.reason),
            Body::RestoreRows(c) => crate::backup::restore_rows(self.db, self.batch, c),
            // The entry itself is the effect (see `audit::record`).
            Body::RecordAudit(_) => Ok(ok(command_result::Result::Ok(true))),
            _ => self.task_command(at_ms, body),
        }
    }

    /// Task, feed and review commands read their own writes through an overlay.
    fn task_command(
        &mut self,
        now: i64,
        body: &command::Body,
    ) -> Result<CommandResult, StateError> {
        use command::Body;
        let mut ov = Overlay::new(self.db);
        let step = match body {
            Body::CreateTask(c) => {
                task::create_task(&mut ov, now, &c.task.clone().unwrap_or_default())
            }
            Body::CloseTask(c) => task::close_task(&mut ov, &c.project, &c.task),
            Body::SetGroup(c) => task::set_group(&mut ov, &c.group.clone().unwrap_or_default()),
            Body::LeaseExamples(c) => feed::lease_examples(&mut ov, now, c),
            Body::RenewLeases(c) => feed::renew(&mut ov, now, &c.project, &c.task, &c.annotator),
            Body::SubmitAnswer(c) => feed::submit(
                &mut ov,
                now,
                &c.answer.clone().unwrap_or_default(),
                c.revise,
            ),
            Body::UndoAnswer(c) => {
                feed::undo(&mut ov, now, &c.project, &c.task, &c.annotator, c.seq)
            }
            Body::SetSuggestions(c) => feed::set_suggestions(&mut ov, c),
            Body::PutUser(c) => users::put_user(&mut ov, now, c),
            Body::PutToken(c) => users::put_token(&mut ov, now, c),
            Body::RevokeToken(c) => users::revoke_token(&mut ov, &c.token_id),
            Body::RegisterWorker(c) => jobs::register_worker(&mut ov, now, c),
            Body::WorkerBeat(c) => jobs::worker_beat(&mut ov, now, c),
            Body::SubmitJob(c) => jobs::submit_job(&mut ov, now, c),
            Body::PlaceJobs(c) => jobs::place_jobs(&mut ov, now, c),
            Body::ReportJob(c) => jobs::report_job(&mut ov, now, c),
            Body::CancelJob(c) => jobs::cancel_job(&mut ov, now, &c.job_id),
            Body::ExpireJobs(c) => jobs::expire_jobs(&mut ov, now, c.worker_timeout_ms),
            Body::BeginModel(c) => models::begin(&mut ov, now, c),
            Body::PutModelChunk(c) => models::put_chunk(&mut ov, c),
            Body::CommitModel(c) => models::commit(&mut ov, c),
            Body::PromoteModel(c) => models::promote(&mut ov, c),
            Body::RecordEvaluation(c) => {
                models::record_evaluation(&mut ov, now, &c.evaluation.clone().unwrap_or_default())
            }
            Body::ResolveReview(c) => {
                review::resolve(&mut ov, now, &c.request.clone().unwrap_or_default())
            }
            _ => unreachable!("dataset commands are applied directly"),
        }?;
        match step {
            Ok(result) => {
                ov.flush(self.batch)?;
                Ok(result)
            }
            // A rejected command changes nothing.
            Err(rejection) => Ok(rejection),
        }
    }

    fn put<M: Message>(
        &mut self,
        cf_name: &'static str,
        key: &[u8],
        value: &M,
    ) -> Result<(), StateError> {
        self.batch
            .put_cf(cf(self.db, cf_name)?, key, value.encode_to_vec());
        Ok(())
    }

    fn next_id(&mut self, counter: &[u8]) -> Result<u64, StateError> {
        let meta = cf(self.db, state_cf::META)?;
        let id = match self.db.get_cf(meta, counter)? {
            Some(v) => keys::decode_u64_value(&v)?,
            None => 1,
        };
        self.batch.put_cf(meta, counter, (id + 1).to_be_bytes());
        Ok(id)
    }

    fn create_project(
        &mut self,
        at_ms: i64,
        name: &str,
        description: &str,
    ) -> Result<CommandResult, StateError> {
        if let Err(reason) = check_name("project", name) {
            return Ok(rejected(code::INVALID_ARGUMENT, reason));
        }
        if read::project(self.db, name)?.is_some() {
            return Ok(rejected(
                code::ALREADY_EXISTS,
                format!("project {name:?} already exists"),
            ));
        }
        let project = Project {
            name: name.into(),
            description: description.into(),
            created_at_ms: at_ms,
            dataset_count: 0,
        };
        self.put(state_cf::PROJECTS, &keys::project(name), &project)?;
        Ok(ok(command_result::Result::Project(project)))
    }

    fn delete_project(&mut self, name: &str, force: bool) -> Result<CommandResult, StateError> {
        let Some(_) = read::project(self.db, name)? else {
            return Ok(rejected(
                code::NOT_FOUND,
                format!("project {name:?} not found"),
            ));
        };
        let datasets = read::datasets(self.db, name)?;
        if !datasets.is_empty() && !force {
            return Ok(rejected(
                code::FAILED_PRECONDITION,
                format!(
                    "project {name:?} still has {} dataset(s); delete them first or use force",
                    datasets.len()
                ),
            ));
        }
        for d in &datasets {
            self.drop_dataset(name, &d.name)?;
        }
        self.batch
            .delete_cf(cf(self.db, state_cf::PROJECTS)?, keys::project(name));
        Ok(ok(command_result::Result::Ok(true)))
    }

    /// Creates a dataset, or returns the rejection to give back.
    fn create_dataset(
        &mut self,
        at_ms: i64,
        c: &CreateDataset,
    ) -> Result<Result<DatasetRecord, CommandResult>, StateError> {
        if let Err(reason) = check_name("dataset", &c.name) {
            return Ok(Err(rejected(code::INVALID_ARGUMENT, reason)));
        }
        let Some(mut project) = read::project(self.db, &c.project)? else {
            return Ok(Err(rejected(
                code::NOT_FOUND,
                format!("project {:?} not found", c.project),
            )));
        };
        if read::dataset(self.db, &c.project, &c.name)?.is_some() {
            return Ok(Err(rejected(
                code::ALREADY_EXISTS,
                format!("dataset {}/{} already exists", c.project, c.name),
            )));
        }
        let kind = match DatasetKind::try_from(c.kind) {
            Ok(DatasetKind::Unspecified) | Err(_) => DatasetKind::Source,
            Ok(k) => k,
        };
        let rec = DatasetRecord {
            dataset_id: self.next_id(keys::meta::NEXT_DATASET_ID)?,
            dataset: Some(Dataset {
                project: c.project.clone(),
                name: c.name.clone(),
                kind: kind as i32,
                description: c.description.clone(),
                created_at_ms: at_ms,
                ..Dataset::default()
            }),
            next_seq: 1,
            open_imports: Vec::new(),
            task: String::new(),
        };
        self.put(
            state_cf::DATASETS,
            &keys::dataset(&c.project, &c.name),
            &rec,
        )?;
        project.dataset_count += 1;
        self.put(state_cf::PROJECTS, &keys::project(&c.project), &project)?;
        Ok(Ok(rec))
    }

    fn delete_dataset(&mut self, project: &str, name: &str) -> Result<CommandResult, StateError> {
        if read::dataset(self.db, project, name)?.is_none() {
            return Ok(rejected(
                code::NOT_FOUND,
                format!("dataset {project}/{name} not found"),
            ));
        }
        self.drop_dataset(project, name)?;
        if let Some(mut p) = read::project(self.db, project)? {
            p.dataset_count = p.dataset_count.saturating_sub(1);
            self.put(state_cf::PROJECTS, &keys::project(project), &p)?;
        }
        Ok(ok(command_result::Result::Ok(true)))
    }

    /// Removes a dataset, its examples, its index and its open imports.
    fn drop_dataset(&mut self, project: &str, name: &str) -> Result<(), StateError> {
        let Some(rec) = read::dataset(self.db, project, name)? else {
            return Ok(());
        };
        let id = rec.dataset_id;
        for cf_name in [state_cf::EXAMPLES, state_cf::EXAMPLE_INDEX] {
            self.batch.delete_range_cf(
                cf(self.db, cf_name)?,
                keys::id_prefix(id),
                keys::id_prefix(id + 1),
            );
        }
        for import_id in &rec.open_imports {
            if let Some(mut imp) = read::import(self.db, *import_id)? {
                imp.state = import_state::ABORTED;
                imp.abort_reason = "dataset deleted".into();
                self.put(state_cf::IMPORTS, &keys::import(*import_id), &imp)?;
            }
            self.clear_import_index(*import_id)?;
        }
        self.batch.delete_cf(
            cf(self.db, state_cf::DATASETS)?,
            keys::dataset(project, name),
        );
        Ok(())
    }

    fn clear_import_index(&mut self, import_id: u64) -> Result<(), StateError> {
        self.batch.delete_range_cf(
            cf(self.db, state_cf::IMPORT_INDEX)?,
            keys::id_prefix(import_id),
            keys::id_prefix(import_id + 1),
        );
        Ok(())
    }

    fn begin_import(&mut self, at_ms: i64, c: &BeginImport) -> Result<CommandResult, StateError> {
        let mut rec = match read::dataset(self.db, &c.project, &c.dataset)? {
            Some(rec) => rec,
            None if c.create_dataset => {
                let create = CreateDataset {
                    project: c.project.clone(),
                    name: c.dataset.clone(),
                    kind: DatasetKind::Source as i32,
                    description: String::new(),
                };
                match self.create_dataset(at_ms, &create)? {
                    Ok(rec) => rec,
                    Err(rejection) => return Ok(rejection),
                }
            }
            None => {
                return Ok(rejected(
                    code::NOT_FOUND,
                    format!("dataset {}/{} not found", c.project, c.dataset),
                ))
            }
        };
        let import = ImportRecord {
            import_id: self.next_id(keys::meta::NEXT_IMPORT_ID)?,
            project: c.project.clone(),
            dataset: c.dataset.clone(),
            dataset_id: rec.dataset_id,
            state: import_state::OPEN,
            started_at_ms: at_ms,
            source_name: c.source_name.clone(),
            owner_node: c.owner_node,
            owner_boot: c.owner_boot,
            ..ImportRecord::default()
        };
        rec.open_imports.push(import.import_id);
        self.put(
            state_cf::DATASETS,
            &keys::dataset(&c.project, &c.dataset),
            &rec,
        )?;
        self.put(state_cf::IMPORTS, &keys::import(import.import_id), &import)?;
        Ok(ok(command_result::Result::Import(import)))
    }

    /// The open import and its dataset, or the rejection to give back.
    fn open_import(
        &self,
        import_id: u64,
    ) -> Result<Result<(ImportRecord, DatasetRecord), CommandResult>, StateError> {
        let Some(import) = read::import(self.db, import_id)? else {
            return Ok(Err(rejected(
                code::NOT_FOUND,
                format!("import {import_id} not found"),
            )));
        };
        if import.state != import_state::OPEN {
            return Ok(Err(rejected(
                code::FAILED_PRECONDITION,
                format!("import {import_id} is no longer open"),
            )));
        }
        match read::dataset(self.db, &import.project, &import.dataset)? {
            Some(ds) if ds.dataset_id == import.dataset_id => Ok(Ok((import, ds))),
            _ => Ok(Err(rejected(
                code::FAILED_PRECONDITION,
                format!(
                    "dataset {}/{} of import {import_id} was deleted",
                    import.project, import.dataset
                ),
            ))),
        }
    }

    fn stage(&mut self, c: &StageExamples) -> Result<CommandResult, StateError> {
        let (mut import, mut ds) = match self.open_import(c.import_id)? {
            Ok(x) => x,
            Err(rejection) => return Ok(rejection),
        };
        let (examples_cf, index_cf, staged_cf) = (
            cf(self.db, state_cf::EXAMPLES)?,
            cf(self.db, state_cf::EXAMPLE_INDEX)?,
            cf(self.db, state_cf::IMPORT_INDEX)?,
        );
        let mut seen = HashSet::with_capacity(c.examples.len());
        for (i, ex) in c.examples.iter().enumerate() {
            let Ok(hash_bytes) = <[u8; 16]>::try_from(ex.input_hash.as_slice()) else {
                return Ok(rejected(
                    code::INVALID_ARGUMENT,
                    format!(
                        "example {i} of the batch has a {}-byte input hash, expected 16",
                        ex.input_hash.len()
                    ),
                ));
            };
            let hash = u128::from_be_bytes(hash_bytes);
            let duplicate = !seen.insert(hash)
                || self
                    .db
                    .get_pinned_cf(index_cf, keys::hash_entry(ds.dataset_id, hash))?
                    .is_some()
                || self
                    .db
                    .get_pinned_cf(staged_cf, keys::hash_entry(import.import_id, hash))?
                    .is_some();
            if duplicate {
                import.duplicates += 1;
                continue;
            }
            let seq = ds.next_seq;
            ds.next_seq += 1;
            let row = ExampleRow {
                input_hash: ex.input_hash.clone(),
                record_json: ex.record_json.clone(),
                import_id: import.import_id,
            };
            self.batch.put_cf(
                examples_cf,
                keys::example(ds.dataset_id, seq),
                row.encode_to_vec(),
            );
            self.batch.put_cf(
                staged_cf,
                keys::hash_entry(import.import_id, hash),
                seq.to_be_bytes(),
            );
            import.staged += 1;
            import.staged_bytes += ex.record_json.len() as u64;
        }
        self.put(
            state_cf::DATASETS,
            &keys::dataset(&import.project, &import.dataset),
            &ds,
        )?;
        self.put(state_cf::IMPORTS, &keys::import(import.import_id), &import)?;
        Ok(ok(command_result::Result::Import(import)))
    }

    fn commit_import(
        &mut self,
        at_ms: i64,
        c: &gloss_proto::v1::CommitImport,
    ) -> Result<CommandResult, StateError> {
        let (mut import, mut ds) = match self.open_import(c.import_id)? {
            Ok(x) => x,
            Err(rejection) => return Ok(rejection),
        };
        let (examples_cf, index_cf, staged_cf) = (
            cf(self.db, state_cf::EXAMPLES)?,
            cf(self.db, state_cf::EXAMPLE_INDEX)?,
            cf(self.db, state_cf::IMPORT_INDEX)?,
        );
        let prefix = keys::id_prefix(import.import_id);
        let mut bytes = import.staged_bytes;
        let iter = self
            .db
            .iterator_cf(staged_cf, IteratorMode::From(&prefix, Direction::Forward));
        for kv in iter {
            let (k, v) = kv?;
            let (owner, hash) = keys::decode_hash_entry(&k)?;
            if owner != import.import_id {
                break;
            }
            let seq = keys::decode_u64_value(&v)?;
            let index_key = keys::hash_entry(ds.dataset_id, hash);
            if self.db.get_pinned_cf(index_cf, index_key)?.is_some() {
                // Another import committed the same text after this one staged it.
                let row_key = keys::example(ds.dataset_id, seq);
                if let Some(row) = self.db.get_pinned_cf(examples_cf, row_key)? {
                    let row: ExampleRow = decode("example", &row)?;
                    bytes = bytes.saturating_sub(row.record_json.len() as u64);
                }
                self.batch.delete_cf(examples_cf, row_key);
                import.duplicates += 1;
            } else {
                self.batch.put_cf(index_cf, index_key, seq.to_be_bytes());
                import.imported += 1;
            }
        }
        self.clear_import_index(import.import_id)?;
        import.state = import_state::COMMITTED;
        import.finished_at_ms = at_ms;
        import.records_read = c.records_read;
        import.invalid = c.invalid;
        import.bytes_read = c.bytes_read;
        ds.open_imports.retain(|id| *id != import.import_id);
        if let Some(d) = ds.dataset.as_mut() {
            d.example_count += import.imported;
            d.total_bytes += bytes;
            d.import_count += 1;
        }
        self.put(
            state_cf::DATASETS,
            &keys::dataset(&import.project, &import.dataset),
            &ds,
        )?;
        self.put(state_cf::IMPORTS, &keys::import(import.import_id), &import)?;
        Ok(ok(command_result::Result::Import(import)))
    }

    fn abort_import(
        &mut self,
        at_ms: i64,
        import_id: u64,
        reason: &str,
    ) -> Result<CommandResult, StateError> {
        let Some(mut import) = read::import(self.db, import_id)? else {
            return Ok(rejected(
                code::NOT_FOUND,
                format!("import {import_id} not found"),
            ));
        };
        if import.state != import_state::OPEN {
            return Ok(rejected(
                code::FAILED_PRECONDITION,
                format!("import {import_id} is no longer open"),
            ));
        }
        if let Some(mut ds) = read::dataset(self.db, &import.project, &import.dataset)?
            .filter(|ds| ds.dataset_id == import.dataset_id)
        {
            let examples_cf = cf(self.db, state_cf::EXAMPLES)?;
            let prefix = keys::id_prefix(import_id);
            let iter = self.db.iterator_cf(
                cf(self.db, state_cf::IMPORT_INDEX)?,
                IteratorMode::From(&prefix, Direction::Forward),
            );
            for kv in iter {
                let (k, v) = kv?;
                if keys::decode_hash_entry(&k)?.0 != import_id {
                    break;
                }
                let seq = keys::decode_u64_value(&v)?;
                self.batch
                    .delete_cf(examples_cf, keys::example(ds.dataset_id, seq));
            }
            ds.open_imports.retain(|id| *id != import_id);
            self.put(
                state_cf::DATASETS,
                &keys::dataset(&import.project, &import.dataset),
                &ds,
            )?;
        }
        self.clear_import_index(import_id)?;
        import.state = import_state::ABORTED;
        import.finished_at_ms = at_ms;
        import.abort_reason = reason.into();
        self.put(state_cf::IMPORTS, &keys::import(import_id), &import)?;
        Ok(ok(command_result::Result::Import(import)))
    }
}
