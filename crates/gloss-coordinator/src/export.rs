//! Export (a dataset as JSON Lines from one consistent snapshot) and paged example listing.

use gloss_proto::v1::{Example, ExportChunk};
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::error::ServiceError;
use crate::service::Service;

/// Bytes of JSON Lines per export chunk.
const CHUNK_BYTES: usize = 1 << 20;
/// Default and largest page of ListExamples.
const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 1000;

#[derive(Deserialize)]
struct TextOnly {
    text: String,
}

impl Service {
    /// Streams every visible example of `project/dataset` as JSON Lines chunks.
    pub async fn export(
        &self,
        project: &str,
        dataset: &str,
    ) -> Result<mpsc::Receiver<Result<ExportChunk, ServiceError>>, ServiceError> {
        self.read_barrier().await?;
        let db = self.state.db();
        let (tx, rx) = mpsc::channel(4);
        let (project, dataset) = (project.to_string(), dataset.to_string());
        // Fail fast on a missing dataset, before the stream starts.
        if gloss_state::read::dataset(&db, &project, &dataset)?.is_none() {
            return Err(ServiceError::NotFound(format!(
                "dataset {project}/{dataset} not found"
            )));
        }
        tokio::task::spawn_blocking(move || {
            let result = (|| {
                let snapshot = db.snapshot();
                let record = gloss_state::read::dataset_at(&db, &snapshot, &project, &dataset)?
                    .ok_or_else(|| {
                        ServiceError::NotFound(format!("dataset {project}/{dataset} not found"))
                    })?;
                let total = record
                    .dataset
                    .as_ref()
                    .map(|d| d.example_count)
                    .unwrap_or(0);
                let mut chunk = ExportChunk {
                    total_records: total,
                    ..ExportChunk::default()
                };
                let mut sent_any = false;
                for row in gloss_state::read::examples_at(&db, &snapshot, &record, None)? {
                    let (_, row) = row?;
                    chunk.data.extend_from_slice(row.record_json.as_bytes());
                    chunk.data.push(b'\n');
                    chunk.records += 1;
                    if chunk.data.len() >= CHUNK_BYTES {
                        sent_any = true;
                        if tx.blocking_send(Ok(std::mem::take(&mut chunk))).is_err() {
                            return Ok(()); // client went away
                        }
                    }
                }
                if chunk.records > 0 || !sent_any {
                    let _ = tx.blocking_send(Ok(chunk));
                }
                Ok::<(), ServiceError>(())
            })();
            if let Err(e) = result {
                let _ = tx.blocking_send(Err(e));
            }
        });
        Ok(rx)
    }

    /// One page of a dataset's examples; the token is the last sequence number returned.
    pub async fn list_examples(
        &self,
        project: &str,
        dataset: &str,
        page_size: u32,
        page_token: &str,
    ) -> Result<(Vec<Example>, String), ServiceError> {
        let after = if page_token.is_empty() {
            None
        } else {
            Some(page_token.parse::<u64>().map_err(|_| {
                ServiceError::InvalidArgument(format!(
                    "page_token {page_token:?} is not one this server issued"
                ))
            })?)
        };
        let size = match page_size as usize {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        };
        self.read_barrier().await?;
        let db = self.state.db();
        let snapshot = db.snapshot();
        let record =
            gloss_state::read::dataset_at(&db, &snapshot, project, dataset)?.ok_or_else(|| {
                ServiceError::NotFound(format!("dataset {project}/{dataset} not found"))
            })?;
        let mut scan = gloss_state::read::examples_at(&db, &snapshot, &record, after)?;
        let mut page = Vec::with_capacity(size);
        for row in scan.by_ref().take(size) {
            let (seq, row) = row?;
            let text = serde_json::from_str::<TextOnly>(&row.record_json)
                .map(|t| t.text)
                .map_err(|e| {
                    ServiceError::Internal(format!(
                        "stored example {seq} is not a valid record: {e}"
                    ))
                })?;
            page.push(Example {
                seq,
                input_hash: gloss_state::hash_hex(&row.input_hash),
                text,
                record_json: row.record_json,
            });
        }
        let more = scan.next().is_some();
        let token = match (more, page.last()) {
            (true, Some(last)) => last.seq.to_string(),
            _ => String::new(),
        };
        Ok((page, token))
    }
}
