//! The Raft log in its own RocksDB database: entries keyed by index, plus vote, committed and
//! last-purged log ids. Appends and votes are fsynced before they are reported durable.
//!
//! Appends run on tokio's blocking pool, so an fsync never holds a runtime thread that heartbeats
//! and client requests need. Entries are handed to replication in runs of at most
//! [`MAX_APPEND_BYTES`] (see [`LogStore::with_max_append_bytes`]), so one AppendEntries stays small enough to arrive well within
//! the RPC timeout whatever the entries hold (an import batch may be megabytes).

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::Arc;

use gloss_store::rocksdb::{Direction, IteratorMode, WriteBatch, DB};
use gloss_store::{cf, durable, keys, log_cf};
use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{Entry, LogId, LogState, OptionalSend, RaftLogReader, StorageIOError, Vote};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{NodeId, RaftError, StorageError, TypeConfig};
use gloss_core::stages::{Stage, Stages};

/// Default bound on the entries of one AppendEntries, in encoded bytes.
pub const MAX_APPEND_BYTES: usize = 1 << 20;

/// RocksDB-backed Raft log.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<DB>,
    stages: Arc<Stages>,
    max_append_bytes: usize,
}

fn read_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::read_logs(&e).into()
}

fn write_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write_logs(&e).into()
}

pub(crate) fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    bincode::serialize(v).expect("raft types always serialize")
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, bincode::Error> {
    bincode::deserialize(bytes)
}

impl LogStore {
    /// Opens or creates the log database at `path`.
    pub fn open(path: &Path) -> Result<Self, RaftError> {
        Ok(LogStore {
            db: gloss_store::open(path, log_cf::ALL)?,
            stages: Arc::default(),
            max_append_bytes: MAX_APPEND_BYTES,
        })
    }

    /// Records append times into `stages`.
    pub fn with_stages(mut self, stages: Arc<Stages>) -> Self {
        self.stages = stages;
        self
    }

    /// Bounds the entries of one AppendEntries to `bytes` (encoded); a single larger entry is
    /// still sent on its own.
    pub fn with_max_append_bytes(mut self, bytes: usize) -> Self {
        self.max_append_bytes = bytes.max(1);
        self
    }

    /// Decoded entries from `start` while `keep(index)` holds, stopping once `budget` bytes of
    /// encoded entries have been read (always at least one entry).
    fn read_entries(
        &self,
        start: u64,
        keep: impl Fn(u64) -> bool,
        budget: usize,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError> {
        let entries = cf(&self.db, log_cf::ENTRIES).map_err(read_err)?;
        let from = keys::log_index(start);
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for kv in self
            .db
            .iterator_cf(entries, IteratorMode::From(&from, Direction::Forward))
        {
            let (k, v) = kv.map_err(read_err)?;
            let index = keys::decode_log_index(&k).map_err(read_err)?;
            if !keep(index) || (!out.is_empty() && bytes + v.len() > budget) {
                break;
            }
            bytes += v.len();
            out.push(decode(&v).map_err(read_err)?);
        }
        Ok(out)
    }

    fn meta<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StorageError> {
        let meta = cf(&self.db, log_cf::META).map_err(read_err)?;
        match self.db.get_cf(meta, key).map_err(read_err)? {
            Some(v) => Ok(Some(decode(&v).map_err(read_err)?)),
            None => Ok(None),
        }
    }

    fn put_meta<T: Serialize>(
        &self,
        key: &[u8],
        value: &T,
        sync: bool,
    ) -> Result<(), StorageError> {
        let meta = cf(&self.db, log_cf::META).map_err(write_err)?;
        let opts = if sync { durable() } else { Default::default() };
        self.db
            .put_cf_opt(meta, key, encode(value), &opts)
            .map_err(write_err)
    }

    fn last_entry_id(&self) -> Result<Option<LogId<NodeId>>, StorageError> {
        let entries = cf(&self.db, log_cf::ENTRIES).map_err(read_err)?;
        match self.db.iterator_cf(entries, IteratorMode::End).next() {
            Some(kv) => {
                let (_, v) = kv.map_err(read_err)?;
                let entry: Entry<TypeConfig> = decode(&v).map_err(read_err)?;
                Ok(Some(entry.log_id))
            }
            None => Ok(None),
        }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i + 1,
            Bound::Unbounded => 0,
        };
        self.read_entries(start, |i| range.contains(&i), usize::MAX)
    }

    /// What replication sends in one AppendEntries: the entries from `start` before `end`, cut
    /// after [`MAX_APPEND_BYTES`] (see [`LogStore::with_max_append_bytes`]).
    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError> {
        self.read_entries(start, |i| i < end, self.max_append_bytes)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged: Option<LogId<NodeId>> = self.meta(keys::meta::LAST_PURGED)?;
        let last = self.last_entry_id()?.or(last_purged);
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError> {
        self.put_meta(keys::meta::VOTE, vote, true)
            .map_err(|e| StorageIOError::write_vote(&e).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError> {
        self.meta(keys::meta::VOTE)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError> {
        // Not fsynced: after a crash the committed index is recomputed from a quorum; this only
        // lets a restarted node re-apply what it already knew was committed.
        self.put_meta(keys::meta::COMMITTED, &committed, false)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError> {
        Ok(self
            .meta::<Option<LogId<NodeId>>>(keys::meta::COMMITTED)?
            .flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let log = cf(&self.db, log_cf::ENTRIES).map_err(write_err)?;
        let mut batch = WriteBatch::default();
        for entry in entries {
            batch.put_cf(log, keys::log_index(entry.log_id.index), encode(&entry));
        }
        let (db, stages) = (self.db.clone(), self.stages.clone());
        // The fsync runs on the blocking pool; awaiting it keeps appends in order.
        tokio::task::spawn_blocking(move || {
            let _timer = stages.time(Stage::LogAppend);
            failpoint!("log-append-before");
            let result = db.write_opt(batch, &durable());
            failpoint!("log-append-after");
            callback.log_io_completed(
                result
                    .as_ref()
                    .map(|_| ())
                    .map_err(|e| std::io::Error::other(e.to_string())),
            );
            result.map_err(write_err)
        })
        .await
        .map_err(write_err)?
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError> {
        let log = cf(&self.db, log_cf::ENTRIES).map_err(write_err)?;
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(
            log,
            keys::log_index(log_id.index),
            keys::log_index(u64::MAX),
        );
        batch.delete_cf(log, keys::log_index(u64::MAX));
        self.db.write_opt(batch, &durable()).map_err(write_err)
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError> {
        // Record the purge point first: a crash between the two writes leaves extra entries,
        // never a gap the log state would not explain.
        self.put_meta(keys::meta::LAST_PURGED, &log_id, true)?;
        let log = cf(&self.db, log_cf::ENTRIES).map_err(write_err)?;
        self.db
            .delete_range_cf(log, keys::log_index(0), keys::log_index(log_id.index + 1))
            .map_err(write_err)
    }
}

#[cfg(test)]
mod tests {
    use openraft::storage::RaftLogStorageExt;
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;
    use crate::Request;

    fn entry(index: u64, bytes: usize) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(Request {
                command: vec![7; bytes],
            }),
        }
    }

    #[tokio::test]
    async fn replication_reads_are_cut_at_the_byte_bound_and_plain_reads_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = LogStore::open(dir.path())
            .unwrap()
            .with_max_append_bytes(1 << 20);
        // Five entries of 400 KB: two fit under 1 MiB, the third would not.
        log.blocking_append((1..=5).map(|i| entry(i, 400_000)))
            .await
            .unwrap();
        let sent = log.limited_get_log_entries(1, 6).await.unwrap();
        assert_eq!(
            sent.iter().map(|e| e.log_id.index).collect::<Vec<_>>(),
            [1, 2]
        );
        // The next AppendEntries goes on from where the last one stopped.
        let next = log.limited_get_log_entries(3, 6).await.unwrap();
        assert_eq!(
            next.iter().map(|e| e.log_id.index).collect::<Vec<_>>(),
            [3, 4]
        );
        // A single entry larger than the bound still goes, alone.
        log.blocking_append([entry(6, 3 << 20)]).await.unwrap();
        let big = log.limited_get_log_entries(6, 7).await.unwrap();
        assert_eq!(big.len(), 1);
        // Reads that are not for replication are never cut.
        assert_eq!(log.try_get_log_entries(1..7).await.unwrap().len(), 6);
    }
}
