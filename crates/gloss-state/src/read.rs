//! Reads of the replicated state. Callers pass a database handle (or a snapshot for consistent
//! multi-key reads); nothing here writes.

use std::collections::HashSet;

use gloss_proto::v1::{Dataset, DatasetRecord, ExampleRow, ImportRecord, Project};
use gloss_store::rocksdb::{
    DBAccess, DBIteratorWithThreadMode, Direction, IteratorMode, ReadOptions, Snapshot, DB,
};
use gloss_store::{cf, keys, state_cf};
use prost::Message;

use crate::StateError;

pub(crate) fn decode<M: Message + Default>(
    what: &'static str,
    bytes: &[u8],
) -> Result<M, StateError> {
    M::decode(bytes).map_err(|source| StateError::Corrupt { what, source })
}

/// One project.
pub fn project(db: &DB, name: &str) -> Result<Option<Project>, StateError> {
    db.get_cf(cf(db, state_cf::PROJECTS)?, keys::project(name))?
        .map(|v| decode("project", &v))
        .transpose()
}

/// All projects, by name.
pub fn projects(db: &DB) -> Result<Vec<Project>, StateError> {
    db.iterator_cf(cf(db, state_cf::PROJECTS)?, IteratorMode::Start)
        .map(|kv| decode("project", &kv?.1))
        .collect()
}

/// One dataset's stored record.
pub fn dataset(db: &DB, project: &str, name: &str) -> Result<Option<DatasetRecord>, StateError> {
    db.get_cf(cf(db, state_cf::DATASETS)?, keys::dataset(project, name))?
        .map(|v| decode("dataset", &v))
        .transpose()
}

/// A project's datasets, by name.
pub fn datasets(db: &DB, project: &str) -> Result<Vec<Dataset>, StateError> {
    let prefix = keys::dataset_prefix(project);
    let mut out = Vec::new();
    let iter = db.iterator_cf(
        cf(db, state_cf::DATASETS)?,
        IteratorMode::From(&prefix, Direction::Forward),
    );
    for kv in iter {
        let (k, v) = kv?;
        if !k.starts_with(&prefix) {
            break;
        }
        let rec: DatasetRecord = decode("dataset", &v)?;
        out.extend(rec.dataset);
    }
    Ok(out)
}

/// One visible example of a dataset.
pub fn example(
    db: &DB,
    record: &DatasetRecord,
    seq: u64,
) -> Result<Option<ExampleRow>, StateError> {
    example_in(db, None, record, seq)
}

/// One visible example of a dataset as of `snapshot`.
pub fn example_at(
    db: &DB,
    snapshot: &gloss_store::rocksdb::Snapshot<'_>,
    record: &DatasetRecord,
    seq: u64,
) -> Result<Option<ExampleRow>, StateError> {
    example_in(db, Some(snapshot), record, seq)
}

fn example_in(
    db: &DB,
    snapshot: Option<&gloss_store::rocksdb::Snapshot<'_>>,
    record: &DatasetRecord,
    seq: u64,
) -> Result<Option<ExampleRow>, StateError> {
    let row: Option<ExampleRow> = db
        .get_cf_opt(
            cf(db, state_cf::EXAMPLES)?,
            keys::example(record.dataset_id, seq),
            &scan_options(snapshot),
        )?
        .map(|v| decode("example", &v))
        .transpose()?;
    Ok(row.filter(|r| !record.open_imports.contains(&r.import_id)))
}

/// The sequence number of the committed example of `dataset` whose input hash is `hash`.
pub fn seq_of_hash(
    db: &DB,
    dataset: &DatasetRecord,
    hash: u128,
) -> Result<Option<u64>, StateError> {
    db.get_cf(
        cf(db, state_cf::EXAMPLE_INDEX)?,
        keys::hash_entry(dataset.dataset_id, hash),
    )?
    .map(|v| keys::decode_u64_value(&v).map_err(StateError::from))
    .transpose()
}

/// One import.
pub fn import(db: &DB, import_id: u64) -> Result<Option<ImportRecord>, StateError> {
    db.get_cf(cf(db, state_cf::IMPORTS)?, keys::import(import_id))?
        .map(|v| decode("import", &v))
        .transpose()
}

/// Imports still open (staged, neither committed nor aborted).
pub fn open_imports(db: &DB) -> Result<Vec<ImportRecord>, StateError> {
    let mut out = Vec::new();
    for kv in db.iterator_cf(cf(db, state_cf::IMPORTS)?, IteratorMode::Start) {
        let rec: ImportRecord = decode("import", &kv?.1)?;
        if rec.state == crate::import_state::OPEN {
            out.push(rec);
        }
    }
    Ok(out)
}

/// Iterates a dataset's visible examples in sequence order from `after_seq` (exclusive), skipping
/// rows of imports that are still open. Pass read options holding a snapshot for a consistent
/// view; `record` must come from the same snapshot.
pub struct ExampleScan<'a, D: DBAccess> {
    iter: DBIteratorWithThreadMode<'a, D>,
    hidden: HashSet<u64>,
    dataset_id: u64,
}

impl<'a, D: DBAccess> ExampleScan<'a, D> {
    /// Starts a scan; `iter_for` opens an iterator on the examples column family from a key.
    pub fn new(
        record: &DatasetRecord,
        after_seq: Option<u64>,
        iter_for: impl FnOnce(&[u8]) -> DBIteratorWithThreadMode<'a, D>,
    ) -> Self {
        let start = match after_seq {
            Some(seq) if seq < u64::MAX => keys::example(record.dataset_id, seq + 1),
            Some(_) => keys::example(record.dataset_id + 1, 0),
            None => keys::example(record.dataset_id, 0),
        };
        ExampleScan {
            iter: iter_for(&start),
            hidden: record.open_imports.iter().copied().collect(),
            dataset_id: record.dataset_id,
        }
    }
}

impl<D: DBAccess> Iterator for ExampleScan<'_, D> {
    type Item = Result<(u64, ExampleRow), StateError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (k, v) = match self.iter.next()? {
                Ok(kv) => kv,
                Err(e) => return Some(Err(e.into())),
            };
            let (dataset_id, seq) = match keys::decode_example(&k) {
                Ok(x) => x,
                Err(e) => return Some(Err(e.into())),
            };
            if dataset_id != self.dataset_id {
                return None;
            }
            let row: ExampleRow = match decode("example", &v) {
                Ok(r) => r,
                Err(e) => return Some(Err(e)),
            };
            if !self.hidden.contains(&row.import_id) {
                return Some(Ok((seq, row)));
            }
        }
    }
}

/// Read options that, when given a snapshot, read from it.
pub fn scan_options(snapshot: Option<&gloss_store::rocksdb::Snapshot<'_>>) -> ReadOptions {
    let mut opts = ReadOptions::default();
    if let Some(s) = snapshot {
        opts.set_snapshot(s);
    }
    opts
}

/// One dataset's stored record as of `snapshot`.
pub fn dataset_at(
    db: &DB,
    snapshot: &gloss_store::rocksdb::Snapshot<'_>,
    project: &str,
    name: &str,
) -> Result<Option<DatasetRecord>, StateError> {
    snapshot
        .get_cf(cf(db, state_cf::DATASETS)?, keys::dataset(project, name))?
        .map(|v| decode("dataset", &v))
        .transpose()
}

/// Scans a dataset's visible examples as of `snapshot`, after `after_seq` when given.
pub fn examples_at<'a>(
    db: &'a DB,
    snapshot: &gloss_store::rocksdb::Snapshot<'a>,
    record: &DatasetRecord,
    after_seq: Option<u64>,
) -> Result<ExampleScan<'a, DB>, StateError> {
    let examples = cf(db, state_cf::EXAMPLES)?;
    Ok(ExampleScan::new(record, after_seq, |from| {
        db.iterator_cf_opt(
            examples,
            scan_options(Some(snapshot)),
            IteratorMode::From(from, Direction::Forward),
        )
    }))
}

/// Digest of every key and value of each state column family, to compare replicas.
pub fn digest(db: &DB) -> Result<Vec<(&'static str, u128)>, StateError> {
    let mut out = Vec::with_capacity(state_cf::ALL.len());
    for name in state_cf::ALL {
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        for kv in db.iterator_cf(cf(db, name)?, IteratorMode::Start) {
            let (k, v) = kv?;
            for part in [&k, &v] {
                hasher.update(&(part.len() as u64).to_le_bytes());
                hasher.update(part);
            }
        }
        out.push((*name, hasher.digest128()));
    }
    Ok(out)
}

/// Up to `limit` decoded entries of `cf_name` under `prefix`, from `from` on.
pub(crate) fn prefixed<T>(
    db: &DB,
    snapshot: Option<&Snapshot<'_>>,
    cf_name: &'static str,
    prefix: &[u8],
    from: &[u8],
    limit: usize,
    mut f: impl FnMut(&[u8], &[u8]) -> Result<T, StateError>,
) -> Result<Vec<T>, StateError> {
    let iter = db.iterator_cf_opt(
        cf(db, cf_name)?,
        scan_options(snapshot),
        IteratorMode::From(from, Direction::Forward),
    );
    let mut out = Vec::new();
    for kv in iter {
        let (k, v) = kv?;
        if !k.starts_with(prefix) || out.len() == limit {
            break;
        }
        out.push(f(&k, &v)?);
    }
    Ok(out)
}
