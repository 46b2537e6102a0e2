//! Backups as rows: every column family's keys and values at one point of the log, without the
//! Raft bookkeeping (last applied entry, membership, progress through a batch entry), which belongs to the cluster that holds the
//! state, not to the state itself. Restoring writes the rows back as they are.

use gloss_proto::v1::{command_result, CommandResult, RestoreRows};
use gloss_proto::ErrorCode;
use gloss_store::rocksdb::{IteratorMode, ReadOptions, Snapshot, WriteBatch, DB};
use gloss_store::{cf, keys, state_cf};

use crate::{ok, rejected, StateError};

/// Whether a row is Raft bookkeeping rather than state.
pub fn is_raft_row(cf_name: &str, key: &[u8]) -> bool {
    cf_name == state_cf::META
        && (key == keys::meta::LAST_APPLIED
            || key == keys::meta::MEMBERSHIP
            || key == keys::meta::APPLIED_PART)
}

/// Calls `row` for every state row as of `snapshot`, column family by column family, in key
/// order; stops at the first error `row` returns.
pub fn for_each_row<E: From<StateError>>(
    db: &DB,
    snapshot: &Snapshot<'_>,
    mut row: impl FnMut(&'static str, &[u8], &[u8]) -> Result<(), E>,
) -> Result<(), E> {
    for name in state_cf::ALL {
        let mut opts = ReadOptions::default();
        opts.set_snapshot(snapshot);
        let handle = cf(db, name).map_err(StateError::from)?;
        for kv in db.iterator_cf_opt(handle, opts, IteratorMode::Start) {
            let (k, v) = kv.map_err(StateError::from)?;
            if !is_raft_row(name, &k) {
                row(name, &k, &v)?;
            }
        }
    }
    Ok(())
}

/// Digest (xxh3-128, hex) per column family of the state rows, as of `snapshot`.
pub fn content_digest(
    db: &DB,
    snapshot: &Snapshot<'_>,
) -> Result<Vec<(&'static str, String)>, StateError> {
    let mut hashers: Vec<(&'static str, xxhash_rust::xxh3::Xxh3)> = state_cf::ALL
        .iter()
        .map(|n| (*n, xxhash_rust::xxh3::Xxh3::new()))
        .collect();
    for_each_row::<StateError>(db, snapshot, |name, k, v| {
        if let Some((_, h)) = hashers.iter_mut().find(|(n, _)| *n == name) {
            for part in [k, v] {
                h.update(&(part.len() as u64).to_le_bytes());
                h.update(part);
            }
        }
        Ok(())
    })?;
    Ok(hashers
        .into_iter()
        .map(|(n, h)| (n, format!("{:032x}", h.digest128())))
        .collect())
}

/// Applies a batch of restored rows (the first batch of a restore clears the state).
pub(crate) fn restore_rows(
    db: &DB,
    batch: &mut WriteBatch,
    c: &RestoreRows,
) -> Result<CommandResult, StateError> {
    for (i, r) in c.rows.iter().enumerate() {
        if !state_cf::ALL.contains(&r.cf.as_str()) {
            return Ok(rejected(
                ErrorCode::InvalidArgument,
                format!("row {i}: unknown column family {:?}", r.cf),
            ));
        }
        if is_raft_row(&r.cf, &r.key) {
            return Ok(rejected(
                ErrorCode::InvalidArgument,
                format!("row {i}: Raft bookkeeping cannot be restored"),
            ));
        }
    }
    if c.clear_first {
        for name in state_cf::ALL {
            let handle = cf(db, name)?;
            for kv in db.iterator_cf(handle, IteratorMode::Start) {
                let (k, _) = kv?;
                if !is_raft_row(name, &k) {
                    batch.delete_cf(handle, k);
                }
            }
        }
    }
    for r in &c.rows {
        let name = state_cf::ALL
            .iter()
            .find(|n| **n == r.cf)
            .expect("checked above");
        batch.put_cf(cf(db, name)?, &r.key, &r.value);
    }
    Ok(ok(command_result::Result::Count(c.rows.len() as u64)))
}
