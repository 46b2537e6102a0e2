//! Every key Gloss stores, encoded so that RocksDB's bytewise order is the order we iterate in:
//! integers big-endian, names terminated by a NUL byte (names are validated to contain none).

use crate::StoreError;

/// Length of an input hash in bytes (xxh3-128).
pub const HASH_LEN: usize = 16;

fn err(cf: &'static str, reason: impl Into<String>) -> StoreError {
    StoreError::Key {
        cf,
        reason: reason.into(),
    }
}

fn u64_at(cf: &'static str, bytes: &[u8], at: usize) -> Result<u64, StoreError> {
    bytes
        .get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| {
            err(
                cf,
                format!("expected u64 at byte {at}, key is {} bytes", bytes.len()),
            )
        })
}

/// Key of a log entry.
pub fn log_index(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

/// Index from a log entry key.
pub fn decode_log_index(key: &[u8]) -> Result<u64, StoreError> {
    if key.len() != 8 {
        return Err(err(
            "log_entries",
            format!("key is {} bytes, expected 8", key.len()),
        ));
    }
    u64_at("log_entries", key, 0)
}

/// Fixed keys in the meta column families.
pub mod meta {
    /// Raft vote (log database).
    pub const VOTE: &[u8] = b"vote";
    /// Committed log id (log database).
    pub const COMMITTED: &[u8] = b"committed";
    /// Last purged log id (log database).
    pub const LAST_PURGED: &[u8] = b"last_purged";
    /// Last applied log id (state database).
    pub const LAST_APPLIED: &[u8] = b"last_applied";
    /// Last applied membership (state database).
    pub const MEMBERSHIP: &[u8] = b"membership";
    /// How many commands of a batch entry are applied, while the entry itself is not yet
    /// (state database): (log index, commands done).
    pub const APPLIED_PART: &[u8] = b"applied_part";
    /// Next dataset id (state database).
    pub const NEXT_DATASET_ID: &[u8] = b"next_dataset_id";
    /// Next import id (state database).
    pub const NEXT_IMPORT_ID: &[u8] = b"next_import_id";
    /// Next task id (state database).
    pub const NEXT_TASK_ID: &[u8] = b"next_task_id";
}

/// Key of a project.
pub fn project(name: &str) -> Vec<u8> {
    name.as_bytes().to_vec()
}

/// Project name from its key.
pub fn decode_project(key: &[u8]) -> Result<String, StoreError> {
    String::from_utf8(key.to_vec()).map_err(|e| err("projects", e.to_string()))
}

/// Key of a dataset: project, NUL, dataset name.
pub fn dataset(project: &str, name: &str) -> Vec<u8> {
    let mut k = dataset_prefix(project);
    k.extend_from_slice(name.as_bytes());
    k
}

/// Prefix shared by all datasets of a project.
pub fn dataset_prefix(project: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(project.len() + 1);
    k.extend_from_slice(project.as_bytes());
    k.push(0);
    k
}

/// (project, dataset) from a dataset key.
pub fn decode_dataset(key: &[u8]) -> Result<(String, String), StoreError> {
    let cut = key
        .iter()
        .position(|b| *b == 0)
        .ok_or_else(|| err("datasets", "no NUL separator"))?;
    let utf8 = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|e| err("datasets", e.to_string()));
    Ok((utf8(&key[..cut])?, utf8(&key[cut + 1..])?))
}

/// Key of an example row: dataset id, sequence.
pub fn example(dataset_id: u64, seq: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&dataset_id.to_be_bytes());
    k[8..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// (dataset id, sequence) from an example key.
pub fn decode_example(key: &[u8]) -> Result<(u64, u64), StoreError> {
    if key.len() != 16 {
        return Err(err(
            "examples",
            format!("key is {} bytes, expected 16", key.len()),
        ));
    }
    Ok((u64_at("examples", key, 0)?, u64_at("examples", key, 8)?))
}

/// Prefix of every key that starts with an 8-byte id (examples, indexes).
pub fn id_prefix(id: u64) -> [u8; 8] {
    id.to_be_bytes()
}

/// Key of a content index entry: owner id (dataset or import), input hash.
pub fn hash_entry(owner_id: u64, hash: u128) -> [u8; 24] {
    let mut k = [0u8; 24];
    k[..8].copy_from_slice(&owner_id.to_be_bytes());
    k[8..].copy_from_slice(&hash.to_be_bytes());
    k
}

/// (owner id, input hash) from a content index key.
pub fn decode_hash_entry(key: &[u8]) -> Result<(u64, u128), StoreError> {
    if key.len() != 24 {
        return Err(err(
            "index",
            format!("key is {} bytes, expected 24", key.len()),
        ));
    }
    let hash = u128::from_be_bytes(key[8..].try_into().expect("length checked"));
    Ok((u64_at("index", key, 0)?, hash))
}

/// Key of an import record.
pub fn import(import_id: u64) -> [u8; 8] {
    import_id.to_be_bytes()
}

/// Key of an idempotency record.
pub fn idempotency(key: &str) -> Vec<u8> {
    key.as_bytes().to_vec()
}

/// Key of anything named inside a project (tasks, groups): project, NUL, name.
pub fn named(project: &str, name: &str) -> Vec<u8> {
    dataset(project, name)
}

/// Key of per-example task state (task examples, suggestions): task id, sequence.
pub fn task_seq(task_id: u64, seq: u64) -> [u8; 16] {
    example(task_id, seq)
}

/// Sequence number from a [`task_seq`] key.
pub fn decode_task_seq(key: &[u8]) -> Result<u64, StoreError> {
    Ok(decode_example(key)?.1)
}

/// Key of a job or a worker: its number, big-endian, so scans run in submission order.
pub fn numbered(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

/// Key of a job's log line: job number, line number.
pub fn job_log(job: u64, line: u64) -> [u8; 16] {
    example(job, line)
}

/// Line number from a [`job_log`] key.
pub fn decode_job_log(key: &[u8]) -> Result<u64, StoreError> {
    Ok(decode_example(key)?.1)
}

/// Key of a model version: name, NUL, version (big-endian), so versions of a name sort together.
pub fn model(name: &str, version: u32) -> Vec<u8> {
    let mut k = name.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(&version.to_be_bytes());
    k
}

/// Key of a model artifact chunk: the model key, then the chunk index (big-endian).
pub fn model_chunk(name: &str, version: u32, index: u32) -> Vec<u8> {
    let mut k = model(name, version);
    k.extend_from_slice(&index.to_be_bytes());
    k
}

/// Key of an image chunk: the image's digest, then the chunk index (big-endian).
pub fn image_chunk(digest: &[u8; 32], index: u32) -> [u8; 36] {
    let mut k = [0u8; 36];
    k[..32].copy_from_slice(digest);
    k[32..].copy_from_slice(&index.to_be_bytes());
    k
}

/// Key of an image an open import staged: the import id (big-endian), then the digest.
pub fn import_image(import_id: u64, digest: &[u8; 32]) -> [u8; 40] {
    let mut k = [0u8; 40];
    k[..8].copy_from_slice(&import_id.to_be_bytes());
    k[8..].copy_from_slice(digest);
    k
}

/// The digest of an [`import_image`] key.
pub fn decode_import_image(key: &[u8]) -> Result<(u64, [u8; 32]), StoreError> {
    if key.len() != 40 {
        return Err(err(
            "import_images",
            format!("key is {} bytes, expected 40", key.len()),
        ));
    }
    let digest = key[8..].try_into().expect("length checked");
    Ok((u64_at("import_images", key, 0)?, digest))
}

/// Key of an answer: task id, sequence, annotator.
pub fn answer(task_id: u64, seq: u64, annotator: &str) -> Vec<u8> {
    let mut k = task_seq(task_id, seq).to_vec();
    k.extend_from_slice(annotator.as_bytes());
    k
}

/// (sequence, annotator) from an answer key.
pub fn decode_answer(key: &[u8]) -> Result<(u64, String), StoreError> {
    let seq = u64_at("answers", key, 8)?;
    let annotator = String::from_utf8(key.get(16..).unwrap_or_default().to_vec())
        .map_err(|e| err("answers", e.to_string()))?;
    Ok((seq, annotator))
}

/// Idempotency key of an answer id, scoped to its task and annotator.
pub fn answer_id(task_id: u64, annotator: &str, answer_id: &str) -> Vec<u8> {
    format!("answer\0{task_id}\0{annotator}\0{answer_id}").into_bytes()
}

/// Sub-spaces of a task's keys in the feed and reviews column families.
pub mod tag {
    /// Feed: examples that still need answers, in serving order.
    pub const OPEN: u8 = b'o';
    /// Feed: annotator records.
    pub const ANNOTATOR: u8 = b'a';
    /// Reviews: the review queue.
    pub const QUEUE: u8 = b'q';
    /// Reviews: gold records.
    pub const GOLD: u8 = b'g';
}

/// Prefix of one sub-space of a task: task id, tag.
pub fn task_tag(task_id: u64, tag: u8) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[..8].copy_from_slice(&task_id.to_be_bytes());
    k[8] = tag;
    k
}

/// Key of an open-set entry: task id, tag, class, position, sequence. Class 0 (scored examples)
/// is served before class 1 (the base ordering).
pub fn open_entry(task_id: u64, class: u8, pos: u64, seq: u64) -> [u8; 26] {
    let mut k = [0u8; 26];
    k[..9].copy_from_slice(&task_tag(task_id, tag::OPEN));
    k[9] = class;
    k[10..18].copy_from_slice(&pos.to_be_bytes());
    k[18..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// Sequence from an open-set key.
pub fn decode_open_entry(key: &[u8]) -> Result<u64, StoreError> {
    u64_at("feed", key, 18)
}

/// Key of an annotator record in a task.
pub fn annotator(task_id: u64, annotator: &str) -> Vec<u8> {
    let mut k = task_tag(task_id, tag::ANNOTATOR).to_vec();
    k.extend_from_slice(annotator.as_bytes());
    k
}

/// Key of a review queue entry or gold record: task id, tag, sequence.
pub fn review(task_id: u64, tag: u8, seq: u64) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[..9].copy_from_slice(&task_tag(task_id, tag));
    k[9..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// Sequence from a review queue or gold key.
pub fn decode_review(key: &[u8]) -> Result<u64, StoreError> {
    u64_at("reviews", key, 9)
}

/// Decodes a stored big-endian `u64` value.
pub fn decode_u64_value(value: &[u8]) -> Result<u64, StoreError> {
    u64_at("value", value, 0)
}

/// Exclusive upper bound of a prefix scan, or `None` when the prefix is all `0xff`.
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last != 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_index_round_trips_and_orders() {
        for i in [0u64, 1, 255, 256, u64::MAX] {
            assert_eq!(decode_log_index(&log_index(i)).unwrap(), i);
        }
        assert!(log_index(255) < log_index(256));
        assert!(decode_log_index(b"short").is_err());
    }

    #[test]
    fn dataset_round_trips_and_groups_by_project() {
        let k = dataset("news", "raw");
        assert_eq!(decode_dataset(&k).unwrap(), ("news".into(), "raw".into()));
        assert!(k.starts_with(&dataset_prefix("news")));
        // "new" must not capture "news"'s datasets.
        assert!(!k.starts_with(&dataset_prefix("new")));
        assert!(decode_dataset(b"nonul").is_err());
    }

    #[test]
    fn example_round_trips_and_orders_by_seq() {
        let k = example(7, 300);
        assert_eq!(decode_example(&k).unwrap(), (7, 300));
        assert!(example(7, 2) < example(7, 10));
        assert!(example(7, u64::MAX) < example(8, 0));
        assert!(k.starts_with(&id_prefix(7)));
        assert!(decode_example(&k[..15]).is_err());
    }

    #[test]
    fn hash_entry_round_trips() {
        let h = 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210u128;
        let k = hash_entry(42, h);
        assert_eq!(decode_hash_entry(&k).unwrap(), (42, h));
        assert!(decode_hash_entry(&k[..20]).is_err());
    }

    #[test]
    fn feed_keys_round_trip_and_order() {
        assert!(open_entry(1, 0, u64::MAX, 9) < open_entry(1, 1, 0, 0));
        assert!(open_entry(1, 1, 2, 9) < open_entry(1, 1, 10, 0));
        assert_eq!(decode_open_entry(&open_entry(3, 1, 5, 77)).unwrap(), 77);
        assert!(annotator(4, "ann").starts_with(&task_tag(4, tag::ANNOTATOR)));
        assert_eq!(
            decode_answer(&answer(2, 9, "eve")).unwrap(),
            (9, "eve".to_string())
        );
        assert_eq!(decode_review(&review(2, tag::GOLD, 41)).unwrap(), 41);
        assert!(review(2, tag::GOLD, 1).starts_with(&task_tag(2, tag::GOLD)));
        assert_eq!(decode_task_seq(&task_seq(5, 6)).unwrap(), 6);
    }

    #[test]
    fn project_round_trips() {
        assert_eq!(decode_project(&project("a-b_c")).unwrap(), "a-b_c");
    }

    #[test]
    fn prefix_end_bounds_the_prefix() {
        assert_eq!(prefix_end(&[1, 2]), Some(vec![1, 3]));
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
        let end = prefix_end(&id_prefix(7)).unwrap();
        assert!(example(7, u64::MAX).as_slice() < end.as_slice());
        assert!(example(8, 0).as_slice() >= end.as_slice());
    }
}
