//! Atomic imports: `BeginImport` opens one, `StageExamples` writes rows that every read skips
//! while the import is open, `CommitImport` makes them visible in one write (re-checking
//! duplicates against imports committed meanwhile) and `AbortImport` deletes them.

use std::collections::HashSet;

use gloss_proto::v1::{
    command_result, BeginImport, CommandResult, CreateDataset, DatasetKind, DatasetRecord,
    ExampleRow, ImportRecord, StageExamples,
};
use gloss_proto::ErrorCode;
use gloss_store::rocksdb::{Direction, IteratorMode};
use gloss_store::{cf, keys, state_cf};
use prost::Message;

use crate::apply::Tx;
use crate::read::{self, decode};
use crate::{import_state, ok, rejected, StateError};

impl Tx<'_> {
    pub(crate) fn begin_import(
        &mut self,
        at_ms: i64,
        c: &BeginImport,
    ) -> Result<CommandResult, StateError> {
        let mut created = false;
        let mut rec = match read::dataset(self.db, &c.project, &c.dataset)? {
            Some(rec) => rec,
            None if c.create_dataset => {
                let create = CreateDataset {
                    project: c.project.clone(),
                    name: c.dataset.clone(),
                    kind: DatasetKind::Source as i32,
                    description: String::new(),
                };
                created = true;
                match self.create_dataset(at_ms, &create)? {
                    Ok(rec) => rec,
                    Err(rejection) => return Ok(rejection),
                }
            }
            None => {
                return Ok(rejected(
                    ErrorCode::NotFound,
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
            created_dataset: created,
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
    pub(crate) fn open_import(
        &self,
        import_id: u64,
    ) -> Result<Result<(ImportRecord, DatasetRecord), CommandResult>, StateError> {
        let Some(import) = read::import(self.db, import_id)? else {
            return Ok(Err(rejected(
                ErrorCode::NotFound,
                format!("import {import_id} not found"),
            )));
        };
        if import.state != import_state::OPEN {
            return Ok(Err(rejected(
                ErrorCode::FailedPrecondition,
                format!("import {import_id} is no longer open"),
            )));
        }
        match read::dataset(self.db, &import.project, &import.dataset)? {
            Some(ds) if ds.dataset_id == import.dataset_id => Ok(Ok((import, ds))),
            _ => Ok(Err(rejected(
                ErrorCode::FailedPrecondition,
                format!(
                    "dataset {}/{} of import {import_id} was deleted",
                    import.project, import.dataset
                ),
            ))),
        }
    }

    pub(crate) fn stage(&mut self, c: &StageExamples) -> Result<CommandResult, StateError> {
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
        let mut images = HashSet::new();
        for (i, ex) in c.examples.iter().enumerate() {
            if let Some(img) = &ex.image {
                if let Err(rejection) = self.check_staged_image(i, img, &mut images)? {
                    return Ok(rejection);
                }
            }
            let Ok(hash_bytes) = <[u8; 16]>::try_from(ex.input_hash.as_slice()) else {
                return Ok(rejected(
                    ErrorCode::InvalidArgument,
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
                image: ex.image.clone(),
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
        self.save_import(import, &ds)
    }

    pub(crate) fn commit_import(
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
        self.settle_images(import.import_id, true)?;
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
        self.save_import(import, &ds)
    }

    pub(crate) fn abort_import(
        &mut self,
        at_ms: i64,
        import_id: u64,
        reason: &str,
    ) -> Result<CommandResult, StateError> {
        let Some(mut import) = read::import(self.db, import_id)? else {
            return Ok(rejected(
                ErrorCode::NotFound,
                format!("import {import_id} not found"),
            ));
        };
        if import.state != import_state::OPEN {
            return Ok(rejected(
                ErrorCode::FailedPrecondition,
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
            if self.created_and_unused(&import, &ds)? {
                // Removes the staged rows with the dataset.
                self.delete_dataset(&import.project, &import.dataset)?;
            } else {
                self.put(
                    state_cf::DATASETS,
                    &keys::dataset(&import.project, &import.dataset),
                    &ds,
                )?;
            }
        }
        self.clear_import_index(import_id)?;
        self.settle_images(import_id, false)?;
        import.state = import_state::ABORTED;
        import.finished_at_ms = at_ms;
        import.abort_reason = reason.into();
        self.put(state_cf::IMPORTS, &keys::import(import_id), &import)?;
        Ok(ok(command_result::Result::Import(import)))
    }

    pub(crate) fn clear_import_index(&mut self, import_id: u64) -> Result<(), StateError> {
        self.batch.delete_range_cf(
            cf(self.db, state_cf::IMPORT_INDEX)?,
            keys::id_prefix(import_id),
            keys::id_prefix(import_id + 1),
        );
        Ok(())
    }

    /// Saves an import and its dataset, and answers with the import.
    fn save_import(
        &mut self,
        import: ImportRecord,
        ds: &DatasetRecord,
    ) -> Result<CommandResult, StateError> {
        self.put(
            state_cf::DATASETS,
            &keys::dataset(&import.project, &import.dataset),
            ds,
        )?;
        self.put(state_cf::IMPORTS, &keys::import(import.import_id), &import)?;
        Ok(ok(command_result::Result::Import(import)))
    }

    /// Whether `import` created `ds` and, once it is gone, nothing else holds it: no committed
    /// example, no other open import, no task over it.
    fn created_and_unused(
        &self,
        import: &ImportRecord,
        ds: &DatasetRecord,
    ) -> Result<bool, StateError> {
        let empty = ds
            .dataset
            .as_ref()
            .is_none_or(|d| d.example_count == 0 && d.import_count == 0);
        if !import.created_dataset || !empty || !ds.open_imports.is_empty() || !ds.task.is_empty() {
            return Ok(false);
        }
        let used = crate::tasks::tasks(self.db, &import.project)?
            .iter()
            .any(|t| t.source_dataset == import.dataset);
        Ok(!used)
    }
}
