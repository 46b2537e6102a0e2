//! Backup and restore. A backup is every state row at one point of the log, read from a RocksDB
//! snapshot after a linearizable barrier (so it holds every acknowledged write) while the
//! cluster keeps serving. The file:
//!
//! ```text
//! GLOSSBACKUP1\n
//! {"format":1,"source_node":..,"applied_index":..,"records":..,"created_at_ms":..,"digests":{cf: hex}}\n
//! rows: u16 cf length, cf, u32 key length, key, u32 value length, value (big-endian lengths)
//! ```
//!
//! A restore replays the rows through Raft in batches into a cluster that holds no project, then
//! checks the restored digests against the backup's.

use std::collections::BTreeMap;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use gloss_proto::v1::{command, ColumnFamilyDigest, RestoreRow, RestoreRows, RestoreSummary};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::access::Actor;
use crate::error::ServiceError;
use crate::service::{now_ms, Service};

const MAGIC: &[u8] = b"GLOSSBACKUP1\n";
/// Rows per replicated restore batch are cut at this many bytes.
const BATCH_BYTES: usize = 1 << 20;
/// Bytes per streamed backup chunk.
const CHUNK_BYTES: usize = 1 << 20;

#[derive(Serialize, Deserialize, Debug)]
struct Manifest {
    format: u32,
    source_node: u64,
    applied_index: u64,
    records: u64,
    created_at_ms: i64,
    digests: BTreeMap<String, String>,
}

fn encode_row(out: &mut Vec<u8>, cf: &str, k: &[u8], v: &[u8]) {
    out.extend_from_slice(&(cf.len() as u16).to_be_bytes());
    out.extend_from_slice(cf.as_bytes());
    out.extend_from_slice(&(k.len() as u32).to_be_bytes());
    out.extend_from_slice(k);
    out.extend_from_slice(&(v.len() as u32).to_be_bytes());
    out.extend_from_slice(v);
}

impl Service {
    /// Streams a consistent backup; memory stays at a chunk or two whatever the state's size.
    pub async fn backup(
        &self,
        actor: &Actor,
    ) -> Result<mpsc::Receiver<Result<Bytes, ServiceError>>, ServiceError> {
        self.read_barrier().await?;
        self.audit(actor, "create_backup", "cluster", "").await?;
        let db = self.state.db();
        let applied = self
            .raft
            .metrics()
            .borrow()
            .last_applied
            .map_or(0, |l| l.index);
        let node = self.node_id();
        let (tx, rx) = mpsc::channel(4);
        tokio::task::spawn_blocking(move || {
            let snapshot = db.snapshot();
            let send = |chunk: Vec<u8>| {
                tx.blocking_send(Ok(Bytes::from(chunk)))
                    .map_err(|_| ServiceError::Unavailable("the backup reader went away".into()))
            };
            let result = (|| -> Result<(), ServiceError> {
                let digests = gloss_state::backup::content_digest(&db, &snapshot)?;
                let mut records = 0u64;
                gloss_state::backup::for_each_row::<ServiceError>(&db, &snapshot, |_, _, _| {
                    records += 1;
                    Ok(())
                })?;
                let manifest = Manifest {
                    format: 1,
                    source_node: node,
                    applied_index: applied,
                    records,
                    created_at_ms: now_ms(),
                    digests: digests
                        .into_iter()
                        .map(|(n, d)| (n.to_string(), d))
                        .collect(),
                };
                let mut buf = MAGIC.to_vec();
                buf.extend_from_slice(
                    serde_json::to_string(&manifest)
                        .map_err(|e| ServiceError::Internal(e.to_string()))?
                        .as_bytes(),
                );
                buf.push(b'\n');
                gloss_state::backup::for_each_row::<ServiceError>(&db, &snapshot, |cf, k, v| {
                    encode_row(&mut buf, cf, k, v);
                    if buf.len() >= CHUNK_BYTES {
                        send(std::mem::take(&mut buf))?;
                    }
                    Ok(())
                })?;
                if !buf.is_empty() {
                    send(buf)?;
                }
                tracing::info!(records, applied_index = applied, "backup streamed");
                Ok(())
            })();
            if let Err(e) = result {
                let _ = tx.blocking_send(Err(e));
            }
        });
        Ok(rx)
    }

    /// Restores a backup file's bytes into this (empty) cluster.
    pub async fn restore<S>(
        &self,
        actor: &Actor,
        mut input: S,
    ) -> Result<RestoreSummary, ServiceError>
    where
        S: Stream<Item = Result<Bytes, ServiceError>> + Unpin,
    {
        if !self.list_projects().await?.is_empty() {
            return Err(ServiceError::FailedPrecondition(
                "restore needs a cluster that holds no project: start a new one from an empty data directory".into(),
            ));
        }
        let bad = |msg: String| ServiceError::InvalidArgument(format!("backup file: {msg}"));
        let mut buf: Vec<u8> = Vec::new();
        let mut pos = 0usize;
        let mut manifest: Option<Manifest> = None;
        let mut rows: Vec<RestoreRow> = Vec::new();
        let mut batch_bytes = 0usize;
        let mut first = true;
        let mut records = 0u64;
        let mut done = false;
        while !done {
            match input.next().await {
                Some(chunk) => buf.extend_from_slice(&chunk?),
                None => done = true,
            }
            if manifest.is_none() {
                if buf.len() < MAGIC.len() {
                    if done {
                        return Err(bad("too short to be a Gloss backup".into()));
                    }
                    continue;
                }
                if &buf[..MAGIC.len()] != MAGIC {
                    return Err(bad("does not start with GLOSSBACKUP1".into()));
                }
                let Some(end) = buf[MAGIC.len()..].iter().position(|b| *b == b'\n') else {
                    if done {
                        return Err(bad("the manifest line is cut short".into()));
                    }
                    continue;
                };
                let line = &buf[MAGIC.len()..MAGIC.len() + end];
                let m: Manifest =
                    serde_json::from_slice(line).map_err(|e| bad(format!("manifest: {e}")))?;
                if m.format != 1 {
                    return Err(bad(format!(
                        "format {} is newer than this binary reads (1)",
                        m.format
                    )));
                }
                manifest = Some(m);
                pos = MAGIC.len() + end + 1;
            }
            // Parse every complete row in the buffer.
            loop {
                let rest = &buf[pos..];
                let Some((row, used)) =
                    parse_row(rest).map_err(|e| bad(format!("row {}: {e}", records + 1)))?
                else {
                    break;
                };
                pos += used;
                batch_bytes += row.key.len() + row.value.len() + row.cf.len();
                rows.push(row);
                records += 1;
                if batch_bytes >= BATCH_BYTES {
                    self.restore_batch(actor, std::mem::take(&mut rows), first)
                        .await?;
                    first = false;
                    batch_bytes = 0;
                }
            }
            buf.drain(..pos);
            pos = 0;
        }
        if !buf.is_empty() {
            return Err(bad(format!(
                "{} bytes after the last complete row",
                buf.len()
            )));
        }
        let manifest = manifest.ok_or_else(|| bad("empty".into()))?;
        if records != manifest.records {
            return Err(bad(format!(
                "{records} rows, the manifest says {}",
                manifest.records
            )));
        }
        if first || !rows.is_empty() {
            self.restore_batch(actor, rows, first).await?;
        }
        self.read_barrier().await?;
        let db = self.state.db();
        let restored = gloss_state::backup::content_digest(&db, &db.snapshot())?;
        let mut digests = Vec::new();
        for (name, digest) in restored {
            let expected = manifest.digests.get(name).map(String::as_str).unwrap_or("");
            if digest != expected {
                return Err(ServiceError::Internal(format!(
                    "restored {name} hashes to {digest}, the backup recorded {expected}"
                )));
            }
            digests.push(ColumnFamilyDigest {
                name: name.to_string(),
                digest,
            });
        }
        tracing::info!(
            records,
            source_applied_index = manifest.applied_index,
            "backup restored"
        );
        self.audit(
            actor,
            "restore_backup",
            "cluster",
            &format!(
                "{records} records, source applied index {}",
                manifest.applied_index
            ),
        )
        .await?;
        Ok(RestoreSummary {
            records,
            source_applied_index: manifest.applied_index,
            digests,
        })
    }

    async fn restore_batch(
        &self,
        actor: &Actor,
        rows: Vec<RestoreRow>,
        clear_first: bool,
    ) -> Result<(), ServiceError> {
        let body = command::Body::RestoreRows(RestoreRows { clear_first, rows });
        self.propose(actor, body, String::new()).await.map(|_| ())
    }
}

/// One row from the front of `buf`, with the bytes it used; `None` when the row is incomplete.
fn parse_row(buf: &[u8]) -> Result<Option<(RestoreRow, usize)>, String> {
    let mut at = 0usize;
    let mut take = |n: usize| -> Option<&[u8]> {
        let s = buf.get(at..at + n)?;
        at += n;
        Some(s)
    };
    let Some(l) = take(2) else { return Ok(None) };
    let cf_len = u16::from_be_bytes([l[0], l[1]]) as usize;
    let Some(cf) = take(cf_len) else {
        return Ok(None);
    };
    let cf = String::from_utf8(cf.to_vec())
        .map_err(|_| "column family name is not UTF-8".to_string())?;
    let Some(l) = take(4) else { return Ok(None) };
    let k_len = u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize;
    let Some(key) = take(k_len) else {
        return Ok(None);
    };
    let key = key.to_vec();
    let Some(l) = take(4) else { return Ok(None) };
    let v_len = u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize;
    let Some(value) = take(v_len) else {
        return Ok(None);
    };
    let value = value.to_vec();
    Ok(Some((RestoreRow { cf, key, value }, at)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_and_partial_rows_wait_for_more_bytes() {
        let mut buf = Vec::new();
        encode_row(&mut buf, "tasks", b"k1", b"value one");
        encode_row(&mut buf, "meta", b"", b"");
        let (r, used) = parse_row(&buf).unwrap().unwrap();
        assert_eq!(
            (r.cf.as_str(), r.key.as_slice(), r.value.as_slice()),
            ("tasks", &b"k1"[..], &b"value one"[..])
        );
        let (r2, used2) = parse_row(&buf[used..]).unwrap().unwrap();
        assert_eq!(
            (r2.cf.as_str(), r2.key.len(), used + used2),
            ("meta", 0, buf.len())
        );
        for cut in 0..used {
            assert!(parse_row(&buf[..cut]).unwrap().is_none(), "cut at {cut}");
        }
    }
}
