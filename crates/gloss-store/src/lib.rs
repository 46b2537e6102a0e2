//! Gloss's on-disk layout: the RocksDB column families of the Raft log database and of the state
//! database, and the one module ([`keys`]) that encodes and decodes every key stored in them.
//!
//! Depends only on RocksDB. It knows nothing about Raft or commands: higher crates decide what
//! values mean. It must never encode a key anywhere but in [`keys`], so orderings stay provable.

pub mod keys;

use std::path::Path;
use std::sync::Arc;

pub use rocksdb;
use rocksdb::{ColumnFamilyDescriptor, Options, DB};

/// Column families of the Raft log database.
pub mod log_cf {
    /// Log entries keyed by index (big-endian `u64`).
    pub const ENTRIES: &str = "log_entries";
    /// Vote, committed log id and last purged log id.
    pub const META: &str = "log_meta";
    /// Every column family of the log database.
    pub const ALL: &[&str] = &[ENTRIES, META];
}

/// Column families of the state (state machine) database.
pub mod state_cf {
    /// Last applied log id, membership, id counters.
    pub const META: &str = "sm_meta";
    /// Projects by name.
    pub const PROJECTS: &str = "projects";
    /// Datasets by (project, name).
    pub const DATASETS: &str = "datasets";
    /// Example rows by (dataset id, sequence).
    pub const EXAMPLES: &str = "examples";
    /// Committed content index: (dataset id, input hash) to sequence.
    pub const EXAMPLE_INDEX: &str = "example_index";
    /// Import bookkeeping by import id.
    pub const IMPORTS: &str = "imports";
    /// Content index of open imports: (import id, input hash) to sequence.
    pub const IMPORT_INDEX: &str = "import_index";
    /// Results of commands that carried an idempotency key.
    pub const IDEMPOTENCY: &str = "idempotency";
    /// Tasks by (project, name).
    pub const TASKS: &str = "tasks";
    /// Feed state per (task id, example sequence).
    pub const TASK_EXAMPLES: &str = "task_examples";
    /// Per task: the open set and annotator records (with their leases).
    pub const FEED: &str = "feed";
    /// Answers by (task id, example sequence, annotator).
    pub const ANSWERS: &str = "answers";
    /// Per task: the review queue and gold records.
    pub const REVIEWS: &str = "reviews";
    /// Suggestions by (task id, example sequence).
    pub const SUGGESTIONS: &str = "suggestions";
    /// Annotator groups by (project, name).
    pub const GROUPS: &str = "groups";
    /// Users by name.
    pub const USERS: &str = "users";
    /// Token hashes by token id.
    pub const TOKENS: &str = "tokens";
    /// Jobs by id.
    pub const JOBS: &str = "jobs";
    /// Job log lines by (job id, line).
    pub const JOB_LOGS: &str = "job_logs";
    /// Workers by id.
    pub const WORKERS: &str = "workers";
    /// Model versions by (name, version).
    pub const MODELS: &str = "models";
    /// Model artifact chunks by (name, version, index).
    pub const MODEL_CHUNKS: &str = "model_chunks";
    /// Evaluations by (project, task, model).
    pub const EVALUATIONS: &str = "evaluations";
    /// The audit log by sequence number.
    pub const AUDIT: &str = "audit";
    /// Images by SHA-256 digest (32 bytes).
    pub const IMAGES: &str = "images";
    /// Image chunks by (digest, index).
    pub const IMAGE_CHUNKS: &str = "image_chunks";
    /// The images each open import staged, by (import id, digest).
    pub const IMPORT_IMAGES: &str = "import_images";
    /// Every column family of the state database.
    pub const ALL: &[&str] = &[
        META,
        PROJECTS,
        DATASETS,
        EXAMPLES,
        EXAMPLE_INDEX,
        IMPORTS,
        IMPORT_INDEX,
        IDEMPOTENCY,
        TASKS,
        TASK_EXAMPLES,
        FEED,
        ANSWERS,
        REVIEWS,
        SUGGESTIONS,
        GROUPS,
        USERS,
        TOKENS,
        JOBS,
        JOB_LOGS,
        WORKERS,
        MODELS,
        MODEL_CHUNKS,
        EVALUATIONS,
        AUDIT,
        IMAGES,
        IMAGE_CHUNKS,
        IMPORT_IMAGES,
    ];
}

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// RocksDB reported an error.
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    /// A key did not have the expected shape.
    #[error("corrupt key in column family {cf}: {reason}")]
    Key { cf: &'static str, reason: String },
    /// A column family the layout requires is missing.
    #[error("missing column family {0}")]
    MissingCf(&'static str),
}

/// One block cache for every column family of every database in the process, so read caching
/// has a fixed memory budget however many column families exist.
fn block_cache() -> &'static rocksdb::Cache {
    static CACHE: std::sync::OnceLock<rocksdb::Cache> = std::sync::OnceLock::new();
    CACHE.get_or_init(|| rocksdb::Cache::new_lru_cache(64 << 20))
}

/// Memtable budget of the state database: all its column families together.
const STATE_MEMTABLES: usize = 64 << 20;
/// Memtable budget of the Raft log: entries are written once and purged after snapshots, so a
/// small memtable is flushed often and costs little.
const LOG_MEMTABLES: usize = 32 << 20;

fn options(memtables: usize) -> Options {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
    opts.set_max_background_jobs(2);
    opts.set_bytes_per_sync(1 << 20);
    // Memtables of all column families of one database share this budget; without it each of
    // them may hold 2 x 64 MiB. One column family's memtable is at most half of it.
    opts.set_db_write_buffer_size(memtables);
    opts.set_write_buffer_size(memtables / 2);
    // Point lookups on content indexes are mostly misses (new examples): bloom filters make a
    // miss cost no disk read.
    let mut table = rocksdb::BlockBasedOptions::default();
    table.set_bloom_filter(10.0, false);
    table.set_block_cache(block_cache());
    opts.set_block_based_table_factory(&table);
    opts
}

/// Opens (creating if needed) a database with the given column families: the Raft log's
/// (`log_cf::ALL`) or any other, which gets the state database's budget.
pub fn open(path: &Path, cfs: &[&str]) -> Result<Arc<DB>, StoreError> {
    let memtables = if cfs == log_cf::ALL {
        LOG_MEMTABLES
    } else {
        STATE_MEMTABLES
    };
    let descriptors = cfs
        .iter()
        .map(|name| ColumnFamilyDescriptor::new(*name, options(memtables)));
    Ok(Arc::new(DB::open_cf_descriptors(
        &options(memtables),
        path,
        descriptors,
    )?))
}

/// Handle of a column family, or [`StoreError::MissingCf`].
pub fn cf<'a>(db: &'a DB, name: &'static str) -> Result<&'a rocksdb::ColumnFamily, StoreError> {
    db.cf_handle(name).ok_or(StoreError::MissingCf(name))
}

/// Write options that make a write durable (fsync of the WAL) before returning.
pub fn durable() -> rocksdb::WriteOptions {
    let mut w = rocksdb::WriteOptions::default();
    w.set_sync(true);
    w
}
