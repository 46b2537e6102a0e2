//! The import pipeline: bytes from a client stream are parsed and validated on a blocking thread,
//! valid records are replicated in batches into an open import, and the import is committed only
//! when the whole stream was read and (unless `skip_invalid`) no record was invalid. Anything
//! else aborts it, so a failed import leaves the dataset exactly as it was.

use std::io::Read;

use bytes::{Buf, Bytes};
use futures::{Stream, StreamExt};
use gloss_import::{Format, Item, Limits, Parser};
use gloss_proto::v1::{
    command, command_result, BeginImport, CommitImport, ImageChunk, ImageRef, ImportFormat,
    ImportHeader, ImportRecord, ImportSummary, RecordError, StageExamples, StageImages,
    StagedExample,
};
use tokio::sync::mpsc;

use crate::access::Actor;
use crate::error::ServiceError;
use crate::service::{unexpected, Service};

/// Most errors listed in a summary.
pub const MAX_LISTED_ERRORS: usize = 100;
/// Largest replicated batch in bytes, whatever the record count.
const MAX_BATCH_BYTES: usize = 4 << 20;

/// Feeds the blocking parser from the async side, chunk by chunk.
struct ChunkReader {
    rx: mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current.advance(n);
        Ok(n)
    }
}

enum Event {
    /// Image chunks, sent before the first batch whose examples show them.
    Images(Vec<ImageChunk>),
    Batch(Vec<StagedExample>),
    Invalid(gloss_import::RecordError),
    Fatal(String),
    Done {
        records: u64,
    },
}

fn format_of(header: &ImportHeader) -> Result<Format, ServiceError> {
    let column = if header.text_column.is_empty() {
        "text".to_string()
    } else {
        header.text_column.clone()
    };
    match ImportFormat::try_from(header.format) {
        Ok(ImportFormat::Jsonl) | Ok(ImportFormat::Unspecified) => Ok(Format::Jsonl),
        Ok(ImportFormat::Csv) => Ok(Format::Csv {
            delimiter: b',',
            text_column: column,
        }),
        Ok(ImportFormat::Tsv) => Ok(Format::Csv {
            delimiter: b'\t',
            text_column: column,
        }),
        Ok(ImportFormat::Text) => Ok(Format::Text),
        Err(_) => Err(ServiceError::InvalidArgument(format!(
            "unknown import format {}",
            header.format
        ))),
    }
}

/// What the parser thread needs besides the bytes.
struct ParseSetup {
    format: Format,
    limits: Limits,
    batch: usize,
    /// Reads a record's image file from the image store, when one is configured.
    files: Option<Box<gloss_import::ImageFiles>>,
    /// Whether an image (by digest) is already kept by the cluster, so its bytes need not travel.
    kept: Box<dyn Fn(&str) -> bool + Send>,
}

/// Image chunks waiting to be replicated, each image once per import.
#[derive(Default)]
struct PendingImages {
    chunks: Vec<ImageChunk>,
    bytes: usize,
    sent: std::collections::HashSet<String>,
}

impl PendingImages {
    /// Queues an image's chunks unless this import sent it already or the cluster keeps it;
    /// returns a full batch of chunks to send first when adding would overfill it.
    fn add(
        &mut self,
        img: &gloss_import::RecordImage,
        kept: &dyn Fn(&str) -> bool,
    ) -> Vec<Vec<ImageChunk>> {
        let info = image_ref(img);
        if !self.sent.insert(info.digest.clone()) || kept(&info.digest) {
            return Vec::new();
        }
        let mut full = Vec::new();
        let count = img.image.bytes.len().div_ceil(IMAGE_CHUNK_BYTES).max(1) as u32;
        for (index, data) in img.image.bytes.chunks(IMAGE_CHUNK_BYTES).enumerate() {
            if self.bytes + data.len() > MAX_BATCH_BYTES && !self.chunks.is_empty() {
                full.push(self.take());
            }
            self.bytes += data.len();
            self.chunks.push(ImageChunk {
                image: Some(info.clone()),
                index: index as u32,
                count,
                data: data.to_vec(),
            });
        }
        full
    }

    fn take(&mut self) -> Vec<ImageChunk> {
        self.bytes = 0;
        std::mem::take(&mut self.chunks)
    }
}

/// Largest image chunk sent: the state machine's limit.
const IMAGE_CHUNK_BYTES: usize = gloss_state::images::MAX_IMAGE_CHUNK_BYTES;

fn image_ref(img: &gloss_import::RecordImage) -> ImageRef {
    let info = &img.image.info;
    ImageRef {
        digest: info.digest.clone(),
        media_type: info.media_type.to_string(),
        width: info.width,
        height: info.height,
        bytes: info.bytes,
        inline: img.inline,
    }
}

fn parse(reader: ChunkReader, setup: ParseSetup, tx: mpsc::Sender<Event>) {
    let ParseSetup {
        format,
        limits,
        batch,
        files,
        kept,
    } = setup;
    let parser = match Parser::new(reader, format, limits) {
        Ok(p) => match files {
            Some(files) => p.with_image_files(files),
            None => p,
        },
        Err(e) => {
            let _ = tx.blocking_send(Event::Fatal(e.to_string()));
            return;
        }
    };
    let mut records = 0u64;
    let mut pending = Vec::with_capacity(batch);
    let mut pending_bytes = 0usize;
    let mut images = PendingImages::default();
    let send = |event: Event| tx.blocking_send(event).is_ok();
    for item in parser {
        let event = match item {
            Ok(Item::Record(r)) => {
                records += 1;
                pending_bytes += r.json.len();
                if let Some(img) = &r.image {
                    for full in images.add(img, &*kept) {
                        if !send(Event::Images(full)) {
                            return;
                        }
                    }
                }
                pending.push(StagedExample {
                    input_hash: r.input_hash.to_be_bytes().to_vec(),
                    record_json: r.json,
                    image: r.image.as_ref().map(image_ref),
                });
                if pending.len() < batch && pending_bytes + images.bytes < MAX_BATCH_BYTES {
                    continue;
                }
                pending_bytes = 0;
                if !images.chunks.is_empty() && !send(Event::Images(images.take())) {
                    return;
                }
                Event::Batch(std::mem::replace(&mut pending, Vec::with_capacity(batch)))
            }
            Ok(Item::Invalid(e)) => {
                records += 1;
                Event::Invalid(e)
            }
            Err(e) => Event::Fatal(e.to_string()),
        };
        let fatal = matches!(event, Event::Fatal(_));
        if !send(event) || fatal {
            return;
        }
    }
    if !images.chunks.is_empty() && !send(Event::Images(images.take())) {
        return;
    }
    if !pending.is_empty() && !send(Event::Batch(pending)) {
        return;
    }
    let _ = tx.blocking_send(Event::Done { records });
}

/// Reads image files named by records from `dir`, refusing anything that resolves outside it
/// (a symbolic link out of the store) and anything over `max_bytes`.
fn image_files(dir: std::path::PathBuf, max_bytes: usize) -> Box<gloss_import::ImageFiles> {
    Box::new(move |path: &str| {
        let missing =
            |e: std::io::Error| format!("`{path}` cannot be read from the image store: {e}");
        let root = dir.canonicalize().map_err(missing)?;
        let full = root.join(path).canonicalize().map_err(missing)?;
        if !full.starts_with(&root) {
            return Err(format!("`{path}` leads outside the image store"));
        }
        let len = std::fs::metadata(&full).map_err(missing)?.len();
        if len > max_bytes as u64 {
            return Err(format!(
                "`{path}`: the image is {len} bytes, over the image size limit of {max_bytes} bytes"
            ));
        }
        std::fs::read(&full).map_err(missing)
    })
}

fn import_of(r: command_result::Result) -> Result<ImportRecord, ServiceError> {
    match r {
        command_result::Result::Import(i) => Ok(i),
        other => Err(unexpected(other)),
    }
}

impl Service {
    /// Runs one import from `header` and the file's bytes. Returns after the import is committed
    /// (durable on a quorum) or aborted.
    pub async fn import<S>(
        &self,
        actor: &Actor,
        header: ImportHeader,
        data: S,
    ) -> Result<ImportSummary, ServiceError>
    where
        S: Stream<Item = Result<Bytes, ServiceError>> + Send + Unpin + 'static,
    {
        let format = format_of(&header)?;
        gloss_state::check_name("project", &header.project)
            .map_err(ServiceError::InvalidArgument)?;
        gloss_state::check_name("dataset", &header.dataset)
            .map_err(ServiceError::InvalidArgument)?;
        let begin = command::Body::BeginImport(BeginImport {
            project: header.project.clone(),
            dataset: header.dataset.clone(),
            create_dataset: header.create_dataset,
            source_name: header.source_name.clone(),
            owner_node: self.settings.node_id,
            owner_boot: self.boot(),
        });
        let import = import_of(self.propose(actor, begin, String::new()).await?)?;
        let import_id = import.import_id;
        tracing::info!(import_id, project = %header.project, dataset = %header.dataset, source = %header.source_name, "import started");
        let outcome = self
            .run_import(actor, &header, import_id, format, data)
            .await;
        match outcome {
            Ok(summary) if summary.committed => {
                self.metrics.imports(&summary, "committed");
                tracing::info!(
                    import_id,
                    imported = summary.imported,
                    duplicates = summary.duplicates,
                    invalid = summary.invalid,
                    "import committed"
                );
                Ok(summary)
            }
            Ok(summary) => {
                self.abort_import(actor, import_id, "invalid records")
                    .await?;
                self.metrics.imports(&summary, "rejected");
                let listed: Vec<String> = summary
                    .errors
                    .iter()
                    .take(10)
                    .map(ToString::to_string)
                    .collect();
                let message = format!(
                    "import rejected: {} invalid record(s) in {} read; nothing was imported (use skip_invalid to import the valid ones)\n{}",
                    summary.invalid,
                    summary.records_read,
                    listed.join("\n")
                );
                Err(ServiceError::ImportRejected {
                    message,
                    summary: Box::new(summary),
                })
            }
            Err(e) => {
                if let Err(abort) = self.abort_import(actor, import_id, &e.to_string()).await {
                    tracing::warn!(import_id, error = %abort, "could not abort failed import; it is aborted when this node restarts");
                }
                self.metrics.imports(&ImportSummary::default(), "failed");
                tracing::warn!(import_id, error = %e, "import failed");
                Err(e)
            }
        }
    }

    async fn abort_import(
        &self,
        actor: &Actor,
        import_id: u64,
        reason: &str,
    ) -> Result<(), ServiceError> {
        let body = command::Body::AbortImport(gloss_proto::v1::AbortImport {
            import_id,
            reason: reason.chars().take(500).collect(),
        });
        self.propose(actor, body, String::new()).await.map(|_| ())
    }

    async fn run_import<S>(
        &self,
        actor: &Actor,
        header: &ImportHeader,
        import_id: u64,
        format: Format,
        mut data: S,
    ) -> Result<ImportSummary, ServiceError>
    where
        S: Stream<Item = Result<Bytes, ServiceError>> + Send + Unpin + 'static,
    {
        let (chunk_tx, chunk_rx) = mpsc::channel::<Bytes>(8);
        let (event_tx, mut events) = mpsc::channel::<Event>(4);
        let max_image_bytes = self.settings.max_image_bytes;
        let db = self.state.db();
        let setup = ParseSetup {
            format,
            limits: Limits {
                max_record_bytes: self.settings.max_record_bytes,
                max_image_bytes,
            },
            batch: self.settings.import_batch,
            files: self
                .settings
                .image_dir
                .clone()
                .map(|dir| image_files(dir, max_image_bytes)),
            kept: Box::new(move |digest: &str| {
                // Committed images are never removed, so one this node keeps needs no upload.
                gloss_state::images::digest_bytes(digest)
                    .ok()
                    .and_then(|d| gloss_state::images::image(&db, &d).ok().flatten())
                    .is_some_and(|rec| rec.committed && rec.verified)
            }),
        };
        let reader = ChunkReader {
            rx: chunk_rx,
            current: Bytes::new(),
        };
        let parser = tokio::task::spawn_blocking(move || parse(reader, setup, event_tx));
        let pump = tokio::spawn(async move {
            let mut bytes = 0u64;
            while let Some(chunk) = data.next().await {
                let chunk = chunk?;
                bytes += chunk.len() as u64;
                if chunk_tx.send(chunk).await.is_err() {
                    break;
                }
            }
            Ok::<u64, ServiceError>(bytes)
        });
        let mut summary = ImportSummary {
            import_id,
            ..ImportSummary::default()
        };
        let mut done = false;
        while let Some(event) = events.recv().await {
            match event {
                Event::Images(chunks) => {
                    if summary.invalid > 0 && !header.skip_invalid {
                        continue;
                    }
                    let body = command::Body::StageImages(StageImages { import_id, chunks });
                    import_of(self.propose(actor, body, String::new()).await?)?;
                }
                Event::Batch(examples) => {
                    if summary.invalid > 0 && !header.skip_invalid {
                        continue; // rejected anyway: keep reading only to report every error
                    }
                    let body = command::Body::StageExamples(StageExamples {
                        import_id,
                        examples,
                    });
                    import_of(self.propose(actor, body, String::new()).await?)?;
                }
                Event::Invalid(e) => {
                    summary.invalid += 1;
                    if summary.errors.len() < MAX_LISTED_ERRORS {
                        summary.errors.push(RecordError {
                            line: e.line,
                            field: e.field.unwrap_or_default(),
                            reason: e.reason,
                        });
                    }
                }
                Event::Fatal(message) => return Err(ServiceError::InvalidArgument(message)),
                Event::Done { records } => {
                    summary.records_read = records;
                    done = true;
                }
            }
        }
        parser
            .await
            .map_err(|e| ServiceError::Internal(format!("import parser failed: {e}")))?;
        summary.bytes_read = pump
            .await
            .map_err(|e| ServiceError::Internal(format!("import stream task failed: {e}")))??;
        if !done {
            return Err(ServiceError::Internal("import parser stopped early".into()));
        }
        if summary.invalid > 0 && !header.skip_invalid {
            return Ok(summary);
        }
        let commit = command::Body::CommitImport(CommitImport {
            import_id,
            records_read: summary.records_read,
            invalid: summary.invalid,
            bytes_read: summary.bytes_read,
        });
        let done = import_of(self.propose(actor, commit, String::new()).await?)?;
        summary.imported = done.imported;
        summary.duplicates = done.duplicates;
        summary.committed = true;
        Ok(summary)
    }
}
