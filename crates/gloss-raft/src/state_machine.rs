//! The Raft state machine: applies committed entries to the state database through
//! `gloss-state`, and builds/installs snapshots.
//!
//! A snapshot is a RocksDB checkpoint packed into a tar file on disk; openraft streams that file
//! in chunks, and the receiver unpacks it into a fresh database generation and swaps it in. Both
//! sides work file-to-file, so memory stays flat however large the state is.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use gloss_proto::v1::{command, command_result, BatchResult, Command, CommandResult};
use gloss_proto::{ErrorCode, BATCH_VERSION};
use gloss_store::rocksdb::{checkpoint::Checkpoint, WriteBatch, DB};
use gloss_store::{cf, keys, state_cf};
use openraft::storage::{RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{
    Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, StorageIOError, StoredMembership,
};
use prost::Message;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncSeekExt;

use crate::log_store::{decode, encode};
use crate::{io_err, NodeId, NodeInfo, RaftError, Response, StorageError, TypeConfig};
use gloss_core::stages::{Stage, Stages};

type Membership = StoredMembership<NodeId, NodeInfo>;

struct Shared {
    root: PathBuf,
    db: RwLock<Arc<DB>>,
    generation: AtomicU64,
    /// Held while applying an entry and while taking a checkpoint, so a checkpoint never splits
    /// an entry from its bookkeeping.
    apply_lock: Mutex<()>,
    counter: AtomicU64,
    stages: RwLock<Arc<Stages>>,
}

/// Read access to the current state database for queries; survives snapshot installs.
#[derive(Clone)]
pub struct StateHandle {
    shared: Arc<Shared>,
}

impl StateHandle {
    /// The current state database. Hold it only for the duration of one read.
    pub fn db(&self) -> Arc<DB> {
        self.shared.db.read().expect("state lock poisoned").clone()
    }
}

/// Openraft state machine over the Gloss state database.
pub struct StateMachineStore {
    shared: Arc<Shared>,
}

/// Snapshot builder handed to openraft.
pub struct SnapshotBuilder {
    shared: Arc<Shared>,
}

#[derive(Serialize, Deserialize)]
struct SnapshotInfo {
    meta: SnapshotMeta<NodeId, NodeInfo>,
    file: String,
}

fn sm_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write_state_machine(&e).into()
}

fn snap_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write_snapshot(None, &e).into()
}

fn generation_dir(root: &Path, generation: u64) -> PathBuf {
    root.join("state").join(format!("gen-{generation:06}"))
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

fn read_meta<T: for<'de> Deserialize<'de>>(db: &DB, key: &[u8]) -> Result<Option<T>, StorageError> {
    let meta = cf(db, state_cf::META).map_err(sm_err)?;
    match db.get_cf(meta, key).map_err(sm_err)? {
        Some(v) => Ok(Some(decode(&v).map_err(sm_err)?)),
        None => Ok(None),
    }
}

fn applied_state(db: &DB) -> Result<(Option<LogId<NodeId>>, Membership), StorageError> {
    Ok((
        read_meta(db, keys::meta::LAST_APPLIED)?.flatten(),
        read_meta(db, keys::meta::MEMBERSHIP)?.unwrap_or_default(),
    ))
}

impl StateMachineStore {
    /// Opens the state database generation named in `data_dir/state/CURRENT`, removing stale
    /// generations and temporary files left by an interrupted snapshot install.
    pub fn open(data_dir: &Path) -> Result<Self, RaftError> {
        for sub in ["state", "snapshots", "tmp"] {
            let p = data_dir.join(sub);
            std::fs::create_dir_all(&p).map_err(io_err(&p))?;
        }
        let tmp = data_dir.join("tmp");
        std::fs::remove_dir_all(&tmp).map_err(io_err(&tmp))?;
        std::fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
        let current = data_dir.join("state/CURRENT");
        let generation = match std::fs::read_to_string(&current) {
            Ok(s) => s.trim().parse().unwrap_or(1),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 1,
            Err(e) => return Err(io_err(&current)(e)),
        };
        remove_other_generations(data_dir, generation);
        let db = gloss_store::open(&generation_dir(data_dir, generation), state_cf::ALL)?;
        Ok(StateMachineStore {
            shared: Arc::new(Shared {
                root: data_dir.to_path_buf(),
                db: RwLock::new(db),
                generation: AtomicU64::new(generation),
                apply_lock: Mutex::new(()),
                counter: AtomicU64::new(0),
                stages: RwLock::default(),
            }),
        })
    }

    /// Records apply times into `stages`.
    pub fn with_stages(self, stages: Arc<Stages>) -> Self {
        *self.shared.stages.write().expect("stages lock poisoned") = stages;
        self
    }

    /// A read handle that follows snapshot installs.
    pub fn handle(&self) -> StateHandle {
        StateHandle {
            shared: self.shared.clone(),
        }
    }
}

fn remove_other_generations(root: &Path, keep: u64) {
    let keep_name = format!("gen-{keep:06}");
    if let Ok(dir) = std::fs::read_dir(root.join("state")) {
        for entry in dir.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with("gen-") && name != keep_name {
                if let Err(e) = std::fs::remove_dir_all(entry.path()) {
                    tracing::warn!(path = %entry.path().display(), error = %e, "could not remove stale state generation");
                }
            }
        }
    }
}

impl Shared {
    fn db(&self) -> Arc<DB> {
        self.db.read().expect("state lock poisoned").clone()
    }

    fn snapshots(&self) -> PathBuf {
        self.root.join("snapshots")
    }

    fn current_snapshot_info(&self) -> Result<Option<SnapshotInfo>, StorageError> {
        let path = self.snapshots().join("current.json");
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).map_err(snap_err)?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(snap_err(e)),
        }
    }

    /// Makes `file` (already in the snapshots directory) the current snapshot and drops the rest.
    fn set_current_snapshot(
        &self,
        meta: &SnapshotMeta<NodeId, NodeInfo>,
        file: &str,
    ) -> Result<(), StorageError> {
        let info = SnapshotInfo {
            meta: meta.clone(),
            file: file.into(),
        };
        let json = serde_json::to_vec(&info).map_err(snap_err)?;
        write_atomically(&self.snapshots().join("current.json"), &json).map_err(snap_err)?;
        for entry in std::fs::read_dir(self.snapshots())
            .map_err(snap_err)?
            .flatten()
        {
            let name = entry.file_name();
            if name.to_string_lossy().ends_with(".tar") && name.to_string_lossy() != file {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(())
    }

    fn unique(&self) -> u64 {
        self.counter.fetch_add(1, Ordering::Relaxed)
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let shared = self.shared.clone();
        let (meta, path) = tokio::task::spawn_blocking(move || build_snapshot_file(&shared))
            .await
            .map_err(snap_err)??;
        let file = tokio::fs::File::open(&path).await.map_err(snap_err)?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(file),
        })
    }
}

fn build_snapshot_file(
    shared: &Shared,
) -> Result<(SnapshotMeta<NodeId, NodeInfo>, PathBuf), StorageError> {
    let n = shared.unique();
    let ckpt = shared.root.join("tmp").join(format!("checkpoint-{n}"));
    // The checkpoint flushes every memtable while applies wait for the lock. Flushing first,
    // without the lock, leaves it only what was applied meanwhile: at a million examples the
    // memtables hold tens of megabytes, and writing them out under the lock stalled every
    // write for as long.
    flush_state(&shared.db())?;
    let (last_applied, membership) = {
        let _guard = shared.apply_lock.lock().expect("apply lock poisoned");
        let db = shared.db();
        Checkpoint::new(&db)
            .and_then(|c| c.create_checkpoint(&ckpt))
            .map_err(snap_err)?;
        applied_state(&db)?
    };
    let snapshot_id = match &last_applied {
        Some(id) => format!("{}-{}-{n}", id.leader_id.term, id.index),
        None => format!("0-0-{n}"),
    };
    let meta = SnapshotMeta {
        last_log_id: last_applied,
        last_membership: membership,
        snapshot_id: snapshot_id.clone(),
    };
    failpoint!("snapshot-build-after-checkpoint");
    let file_name = format!("snap-{snapshot_id}.tar");
    let tmp_tar = shared.root.join("tmp").join(&file_name);
    {
        let out = WriteBehind::new(std::fs::File::create(&tmp_tar).map_err(snap_err)?);
        let mut tar = tar::Builder::new(std::io::BufWriter::new(out));
        tar.append_dir_all(".", &ckpt).map_err(snap_err)?;
        let out = tar.into_inner().map_err(snap_err)?;
        out.into_inner()
            .map_err(|e| snap_err(e.into_error()))?
            .file
            .sync_all()
            .map_err(snap_err)?;
    }
    let final_path = shared.snapshots().join(&file_name);
    std::fs::rename(&tmp_tar, &final_path).map_err(snap_err)?;
    shared.set_current_snapshot(&meta, &file_name)?;
    std::fs::remove_dir_all(&ckpt).map_err(snap_err)?;
    tracing::info!(snapshot_id = %meta.snapshot_id, "snapshot built");
    Ok((meta, final_path))
}

/// Writes every memtable of the state database to disk.
fn flush_state(db: &DB) -> Result<(), StorageError> {
    for name in state_cf::ALL {
        let handle = cf(db, name).map_err(snap_err)?;
        db.flush_cf(handle).map_err(snap_err)?;
    }
    Ok(())
}

/// Bytes a snapshot archive is written between two syncs of its data.
const WRITE_BEHIND_BYTES: u64 = 8 << 20;

/// A file that syncs its data every [`WRITE_BEHIND_BYTES`]. Writing a snapshot of hundreds of
/// megabytes otherwise leaves them all dirty in the page cache, and the Raft log's next fsync on
/// the same disk waits behind the flush of every one of them; a follower then answers
/// AppendEntries too late and the leader's heartbeats time out.
struct WriteBehind {
    file: std::fs::File,
    unsynced: u64,
}

impl WriteBehind {
    fn new(file: std::fs::File) -> Self {
        WriteBehind { file, unsynced: 0 }
    }
}

impl std::io::Write for WriteBehind {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.unsynced += n as u64;
        if self.unsynced >= WRITE_BEHIND_BYTES {
            self.file.sync_data()?;
            self.unsynced = 0;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Unpacks a snapshot archive into a new state generation, opens it and swaps it in.
fn install_snapshot_file(
    shared: &Shared,
    meta: &SnapshotMeta<NodeId, NodeInfo>,
    archive: &Path,
    file_name: &str,
) -> Result<(), StorageError> {
    let generation = shared.generation.load(Ordering::SeqCst) + 1;
    let dir = generation_dir(&shared.root, generation);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(snap_err)?;
    }
    let file = std::fs::File::open(archive).map_err(snap_err)?;
    tar::Archive::new(std::io::BufReader::new(file))
        .unpack(&dir)
        .map_err(snap_err)?;
    let db = gloss_store::open(&dir, state_cf::ALL).map_err(snap_err)?;
    let (applied, _) = applied_state(&db)?;
    if applied != meta.last_log_id {
        let msg = format!(
            "snapshot {} holds state up to {applied:?}, expected {:?}",
            meta.snapshot_id, meta.last_log_id
        );
        return Err(snap_err(std::io::Error::other(msg)));
    }
    failpoint!("snapshot-install-before-swap");
    let old = {
        let _guard = shared.apply_lock.lock().expect("apply lock poisoned");
        let mut slot = shared.db.write().expect("state lock poisoned");
        write_atomically(
            &shared.root.join("state/CURRENT"),
            generation.to_string().as_bytes(),
        )
        .map_err(snap_err)?;
        shared.generation.store(generation, Ordering::SeqCst);
        std::mem::replace(&mut *slot, db)
    };
    shared.set_current_snapshot(meta, file_name)?;
    // Readers may still hold the old generation; it is removed once they are done, or at the
    // next start.
    if Arc::strong_count(&old) == 1 {
        drop(old);
        remove_other_generations(&shared.root, generation);
    }
    tracing::info!(snapshot_id = %meta.snapshot_id, generation, "snapshot installed");
    Ok(())
}

/// Applies committed entries in order. A single command is applied in one write with its
/// applied log id. A batch of commands is applied one command per write, each write also
/// recording how many of the batch are done, so a restart in the middle of a batch applies
/// only the rest: every command is applied exactly once.
fn apply_entries(
    shared: &Shared,
    entries: Vec<Entry<TypeConfig>>,
) -> Result<Vec<Response>, StorageError> {
    let mut replies = Vec::with_capacity(entries.len());
    let stages = shared.stages.read().expect("stages lock poisoned").clone();
    let _guard = shared.apply_lock.lock().expect("apply lock poisoned");
    let db = shared.db();
    let meta = cf(&db, state_cf::META).map_err(sm_err)?;
    for entry in entries {
        let mut batch = WriteBatch::default();
        let reply = match &entry.payload {
            EntryPayload::Blank => Response::default(),
            EntryPayload::Membership(m) => {
                let stored = Membership::new(Some(entry.log_id), m.clone());
                batch.put_cf(meta, keys::meta::MEMBERSHIP, encode(&stored));
                Response::default()
            }
            EntryPayload::Normal(req) => {
                let result = match Command::decode(req.command.as_slice()) {
                    Ok(Command {
                        version,
                        body: Some(command::Body::Batch(commands)),
                        ..
                    }) if version <= BATCH_VERSION => {
                        apply_batch(&db, &stages, entry.log_id.index, commands.commands)?
                    }
                    Ok(cmd) => {
                        let _timer = stages.time(Stage::Apply);
                        gloss_state::apply(&db, &cmd, &mut batch).map_err(sm_err)?
                    }
                    Err(e) => gloss_state::rejected(
                        ErrorCode::InvalidArgument,
                        format!("undecodable command: {e}"),
                    ),
                };
                Response {
                    result: result.encode_to_vec(),
                }
            }
        };
        batch.put_cf(meta, keys::meta::LAST_APPLIED, encode(&Some(entry.log_id)));
        failpoint!("apply-before-write");
        db.write(batch).map_err(sm_err)?;
        failpoint!("apply-after-write");
        replies.push(reply);
    }
    Ok(replies)
}

/// Applies the commands of the batch entry at `index` that a write before a restart did not,
/// each in its own write with the count of commands done.
fn apply_batch(
    db: &DB,
    stages: &Stages,
    index: u64,
    commands: Vec<Command>,
) -> Result<CommandResult, StorageError> {
    let meta = cf(db, state_cf::META).map_err(sm_err)?;
    let done = match read_meta::<(u64, u64)>(db, keys::meta::APPLIED_PART)? {
        Some((at, done)) if at == index => done as usize,
        _ => 0,
    };
    let mut results = Vec::with_capacity(commands.len());
    for (i, cmd) in commands.iter().enumerate() {
        if i < done {
            // Applied before a restart; whoever proposed it is no longer waiting.
            results.push(gloss_state::rejected(
                ErrorCode::Unavailable,
                "applied before a restart",
            ));
            continue;
        }
        let _timer = stages.time(Stage::Apply);
        let mut batch = WriteBatch::default();
        let result = if matches!(cmd.body, Some(command::Body::Batch(_))) {
            gloss_state::rejected(ErrorCode::InvalidArgument, "a batch inside a batch")
        } else {
            gloss_state::apply(db, cmd, &mut batch).map_err(sm_err)?
        };
        batch.put_cf(
            meta,
            keys::meta::APPLIED_PART,
            encode(&(index, i as u64 + 1)),
        );
        failpoint!("apply-batch-part");
        db.write(batch).map_err(sm_err)?;
        results.push(result);
    }
    Ok(CommandResult {
        result: Some(command_result::Result::Batch(BatchResult { results })),
    })
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId<NodeId>>, Membership), StorageError> {
        applied_state(&self.shared.db())
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry<TypeConfig>> = entries.into_iter().collect();
        let shared = self.shared.clone();
        // Applying runs on the blocking pool: an import batch is thousands of writes, and the
        // runtime's threads must stay free for heartbeats and requests meanwhile.
        tokio::task::spawn_blocking(move || apply_entries(&shared, entries))
            .await
            .map_err(sm_err)?
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            shared: self.shared.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<tokio::fs::File>, StorageError> {
        let path = self
            .shared
            .root
            .join("tmp")
            .join(format!("receiving-{}.tar", self.shared.unique()));
        let file = tokio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .await
            .map_err(snap_err)?;
        Ok(Box::new(file))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, NodeInfo>,
        mut snapshot: Box<tokio::fs::File>,
    ) -> Result<(), StorageError> {
        // Copy the received bytes under the snapshots directory: they become this node's current
        // snapshot, served to others in turn.
        let file_name = format!(
            "snap-{}-installed-{}.tar",
            meta.snapshot_id,
            self.shared.unique()
        );
        let path = self.shared.snapshots().join(&file_name);
        snapshot.rewind().await.map_err(snap_err)?;
        let mut out = tokio::fs::File::create(&path).await.map_err(snap_err)?;
        tokio::io::copy(&mut *snapshot, &mut out)
            .await
            .map_err(snap_err)?;
        out.sync_all().await.map_err(snap_err)?;
        let shared = self.shared.clone();
        let meta = meta.clone();
        tokio::task::spawn_blocking(move || {
            install_snapshot_file(&shared, &meta, &path, &file_name)
        })
        .await
        .map_err(snap_err)?
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let Some(info) = self.shared.current_snapshot_info()? else {
            return Ok(None);
        };
        let file = tokio::fs::File::open(self.shared.snapshots().join(&info.file))
            .await
            .map_err(snap_err)?;
        Ok(Some(Snapshot {
            meta: info.meta,
            snapshot: Box::new(file),
        }))
    }
}
