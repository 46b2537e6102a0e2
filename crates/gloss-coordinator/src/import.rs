//! The import pipeline: bytes from a client stream are parsed and validated on a blocking thread,
//! valid records are replicated in batches into an open import, and the import is committed only
//! when the whole stream was read and (unless `skip_invalid`) no record was invalid. Anything
//! else aborts it, so a failed import leaves the dataset exactly as it was.

use std::io::Read;

use bytes::{Buf, Bytes};
use futures::{Stream, StreamExt};
use gloss_import::{Format, Item, Limits, Parser};
use gloss_proto::v1::{
    command, command_result, BeginImport, CommitImport, ImportFormat, ImportHeader, ImportRecord,
    ImportSummary, RecordError, StageExamples, StagedExample,
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
    Batch(Vec<StagedExample>),
    Invalid(gloss_import::RecordError),
    Fatal(String),
    Done { records: u64 },
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

fn parse(
    reader: ChunkReader,
    format: Format,
    limits: Limits,
    batch: usize,
    tx: mpsc::Sender<Event>,
) {
    let parser = match Parser::new(reader, format, limits) {
        Ok(p) => p,
        Err(e) => {
            let _ = tx.blocking_send(Event::Fatal(e.to_string()));
            return;
        }
    };
    let mut records = 0u64;
    let mut pending = Vec::with_capacity(batch);
    let mut pending_bytes = 0usize;
    for item in parser {
        let event = match item {
            Ok(Item::Record(r)) => {
                records += 1;
                pending_bytes += r.json.len();
                pending.push(StagedExample {
                    input_hash: r.input_hash.to_be_bytes().to_vec(),
                    record_json: r.json,
                });
                if pending.len() < batch && pending_bytes < MAX_BATCH_BYTES {
                    continue;
                }
                pending_bytes = 0;
                Event::Batch(std::mem::replace(&mut pending, Vec::with_capacity(batch)))
            }
            Ok(Item::Invalid(e)) => {
                records += 1;
                Event::Invalid(e)
            }
            Err(e) => Event::Fatal(e.to_string()),
        };
        let fatal = matches!(event, Event::Fatal(_));
        if tx.blocking_send(event).is_err() || fatal {
            return;
        }
    }
    if !pending.is_empty() && tx.blocking_send(Event::Batch(pending)).is_err() {
        return;
    }
    let _ = tx.blocking_send(Event::Done { records });
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
        let limits = Limits {
            max_record_bytes: self.settings.max_record_bytes,
        };
        let batch = self.settings.import_batch;
        let reader = ChunkReader {
            rx: chunk_rx,
            current: Bytes::new(),
        };
        let parser =
            tokio::task::spawn_blocking(move || parse(reader, format, limits, batch, event_tx));
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
