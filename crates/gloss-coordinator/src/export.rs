//! Export (a dataset as JSON Lines from one consistent snapshot) and paged example listing.

use gloss_proto::v1::{DatasetKind, Example, ExportChunk, ExportFormat, ExportSelection};
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::access::Actor;
use crate::error::ServiceError;
use crate::service::Service;

/// Bytes of JSON Lines per export chunk.
const CHUNK_BYTES: usize = 1 << 20;
/// Default and largest page of ListExamples.
const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 1000;

#[derive(Deserialize)]
struct TextOnly {
    /// An image record may have no text.
    #[serde(default)]
    text: String,
}

/// A stored record as it is exported: an inline image, stored apart by its digest, is put
/// back as the data URI it came as; everything else is the stored record, byte for byte.
pub(crate) fn exported_record(
    db: &gloss_store::rocksdb::DB,
    seq: u64,
    row: &gloss_proto::v1::ExampleRow,
) -> Result<String, ServiceError> {
    match &row.image {
        Some(img) if img.inline => {
            let uri = image_data_uri(db, seq, img)?;
            let reference = format!("\"{}\"", gloss_import::image::stored_reference(&img.digest));
            Ok(row
                .record_json
                .replacen(&reference, &format!("\"{uri}\""), 1))
        }
        _ => Ok(row.record_json.clone()),
    }
}

/// The record's `image` as exported: the data URI of an inline image, the path of a file.
pub(crate) fn exported_image(
    db: &gloss_store::rocksdb::DB,
    seq: u64,
    row: &gloss_proto::v1::ExampleRow,
) -> Result<String, ServiceError> {
    match &row.image {
        None => Ok(String::new()),
        Some(img) if img.inline => image_data_uri(db, seq, img),
        Some(_) => Ok(image_field(&row.record_json)),
    }
}

/// The `image` string of a stored record ("" when it has none).
pub(crate) fn image_field(record_json: &str) -> String {
    serde_json::from_str::<serde_json::Value>(record_json)
        .ok()
        .and_then(|v| v.get("image").and_then(|i| i.as_str()).map(str::to_owned))
        .unwrap_or_default()
}

/// The stored bytes of an example's image.
pub(crate) fn image_bytes(
    db: &gloss_store::rocksdb::DB,
    seq: u64,
    img: &gloss_proto::v1::ImageRef,
) -> Result<Vec<u8>, ServiceError> {
    let digest = gloss_state::images::digest_bytes(&img.digest).map_err(ServiceError::Internal)?;
    match gloss_state::images::image_bytes(db, &digest)? {
        Some((_, bytes)) => Ok(bytes),
        None => Err(ServiceError::Internal(format!(
            "the image {} of example {seq} is not stored",
            img.digest
        ))),
    }
}

fn image_data_uri(
    db: &gloss_store::rocksdb::DB,
    seq: u64,
    img: &gloss_proto::v1::ImageRef,
) -> Result<String, ServiceError> {
    let bytes = image_bytes(db, seq, img)?;
    Ok(gloss_import::image::data_uri(&img.media_type, &bytes))
}

/// The `text` of a stored record.
pub(crate) fn record_text(seq: u64, record_json: &str) -> Result<String, ServiceError> {
    serde_json::from_str::<TextOnly>(record_json)
        .map(|t| t.text)
        .map_err(|e| {
            ServiceError::Internal(format!("stored example {seq} is not a valid record: {e}"))
        })
}

/// Where an export producer writes: whole lines, gathered into chunks of about [`CHUNK_BYTES`].
pub(crate) struct Sink {
    tx: mpsc::Sender<Result<ExportChunk, ServiceError>>,
    chunk: ExportChunk,
    sent_any: bool,
}

impl Sink {
    /// Announces the number of records on the first chunk.
    pub fn set_total(&mut self, total: u64) {
        self.chunk.total_records = total;
    }

    /// Adds `data` as it is, counting `records`; fails once the client has gone away.
    pub fn bytes(&mut self, data: &[u8], records: u64) -> Result<(), ServiceError> {
        for piece in data.chunks(CHUNK_BYTES) {
            self.chunk.data.extend_from_slice(piece);
            self.send_if_full()?;
        }
        self.chunk.records += records;
        Ok(())
    }

    /// Adds one line; fails once the client has gone away, which ends the producer.
    pub fn line(&mut self, line: &str) -> Result<(), ServiceError> {
        self.chunk.data.extend_from_slice(line.as_bytes());
        self.chunk.data.push(b'\n');
        self.chunk.records += 1;
        self.send_if_full()
    }

    /// Sends the chunk once it is full.
    fn send_if_full(&mut self) -> Result<(), ServiceError> {
        if self.chunk.data.len() >= CHUNK_BYTES {
            self.sent_any = true;
            if self
                .tx
                .blocking_send(Ok(std::mem::take(&mut self.chunk)))
                .is_err()
            {
                return Err(ServiceError::Unavailable("the client went away".into()));
            }
        }
        Ok(())
    }
}

/// Runs `produce` on a blocking thread and streams what it writes to its [`Sink`].
pub(crate) fn send_lines<F>(produce: F) -> mpsc::Receiver<Result<ExportChunk, ServiceError>>
where
    F: FnOnce(&mut Sink) -> Result<(), ServiceError> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        let mut sink = Sink {
            tx,
            chunk: ExportChunk::default(),
            sent_any: false,
        };
        match produce(&mut sink) {
            Ok(()) if sink.chunk.records > 0 || !sink.sent_any => {
                let _ = sink.tx.blocking_send(Ok(sink.chunk));
            }
            Ok(()) => {}
            Err(e) => {
                let _ = sink.tx.blocking_send(Err(e));
            }
        }
    });
    rx
}

impl Service {
    /// Streams every visible example of `project/dataset` as JSON Lines chunks.
    pub async fn export(
        &self,
        actor: &Actor,
        project: &str,
        dataset: &str,
    ) -> Result<mpsc::Receiver<Result<ExportChunk, ServiceError>>, ServiceError> {
        self.read_barrier().await?;
        if gloss_state::read::dataset(&self.state.db(), project, dataset)?.is_some() {
            self.audit(actor, "export_dataset", &format!("{project}/{dataset}"), "")
                .await?;
        }
        let db = self.state.db();
        let (project, dataset) = (project.to_string(), dataset.to_string());
        // Fail fast on a missing dataset, before the stream starts.
        let Some(found) = gloss_state::read::dataset(&db, &project, &dataset)? else {
            return Err(ServiceError::NotFound(format!(
                "dataset {project}/{dataset} not found"
            )));
        };
        if !found.task.is_empty() {
            // A task's answers or gold dataset: its records live with the task.
            let gold = found.dataset.as_ref().map(|d| d.kind()) == Some(DatasetKind::Gold);
            let selection = if gold {
                ExportSelection::Gold
            } else {
                ExportSelection::Answers
            };
            return self
                .export_answers(
                    actor,
                    &project,
                    &found.task,
                    selection,
                    ExportFormat::Prodigy,
                )
                .await;
        }
        Ok(send_lines(move |sink| {
            let snapshot = db.snapshot();
            let record = gloss_state::read::dataset_at(&db, &snapshot, &project, &dataset)?
                .ok_or_else(|| {
                    ServiceError::NotFound(format!("dataset {project}/{dataset} not found"))
                })?;
            sink.set_total(record.dataset.as_ref().map_or(0, |d| d.example_count));
            for row in gloss_state::read::examples_at(&db, &snapshot, &record, None)? {
                let (seq, row) = row?;
                sink.line(&exported_record(&db, seq, &row)?)?;
            }
            Ok(())
        }))
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
            let text = record_text(seq, &row.record_json)?;
            page.push(Example {
                seq,
                input_hash: gloss_state::hash_hex(&row.input_hash),
                text,
                record_json: row.record_json,
                image: row.image,
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
