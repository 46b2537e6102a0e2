//! Importing annotations made in another tool (Prodigy, Label Studio, spaCy) into a task.
//!
//! The upload is spooled to a file in the data directory, then read twice on a blocking thread:
//!
//! 1. **Check** every record and annotation: the text, the annotator, the task's labels, spans
//!    against the example's tokens, one answer per annotator and example, and the task's overlap
//!    counting the answers and leases the example already has. Any bad record rejects the whole
//!    import, and the summary names each by its line (position) and field. Nothing has changed.
//! 2. **Apply**: the examples go through the ordinary atomic import into the task's source
//!    dataset (texts already there are matched by input hash), then the answers are replicated
//!    in batches (`ImportAnswers`), each all or nothing. Answer ids come from the source, so a
//!    file imported twice records each answer once. Only a change made by someone else between
//!    the two steps (an annotator taking the last place on an example) can refuse a batch; the
//!    error says which record, and running the same import again finishes it.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use gloss_import::annotations::{self, AnnotatedItem, AnnotatedRecord, Annotation};
use gloss_import::{ImportError, Limits};
use gloss_proto::v1::{
    command, command_result, Answer, AnswerSource, DatasetRecord, Decision, ImportAnswers,
    ImportAnswersHeader, ImportAnswersSummary, ImportFormat, ImportHeader, RecordError, Span, Task,
};
use gloss_store::rocksdb::DB;
use prost::Message;

use crate::access::Actor;
use crate::error::ServiceError;
use crate::import::MAX_LISTED_ERRORS;
use crate::service::{unexpected, Service};

/// Answers per replicated batch.
const ANSWER_BATCH: usize = 500;

/// One checked answer waiting for its example's sequence number.
#[derive(Clone, PartialEq, Message)]
struct Pending {
    /// Input hash of the example's text, big-endian.
    #[prost(bytes = "vec", tag = "1")]
    hash: Vec<u8>,
    /// Source record it came from.
    #[prost(uint64, tag = "2")]
    line: u64,
    #[prost(message, optional, tag = "3")]
    answer: Option<Answer>,
}

/// What the check pass hands to the apply pass.
struct Checked {
    records: u64,
    invalid: u64,
    errors: Vec<RecordError>,
    /// The examples as JSONL, for the ordinary import.
    examples: tempfile::NamedTempFile,
    /// Length-delimited [`Pending`] answers.
    answers: tempfile::NamedTempFile,
}

fn source_of(header: &ImportAnswersHeader) -> Result<AnswerSource, ServiceError> {
    match AnswerSource::try_from(header.source) {
        Ok(AnswerSource::Unspecified) | Err(_) => Err(ServiceError::InvalidArgument(
            "source: say where the annotations come from (prodigy, label-studio or spacy)".into(),
        )),
        Ok(s) => Ok(s),
    }
}

/// The records of the spooled file, parsed as `source`.
fn read_records(
    source: AnswerSource,
    file: std::fs::File,
    text_key: &str,
    limits: Limits,
) -> Result<Box<dyn Iterator<Item = Result<AnnotatedItem, ImportError>>>, ImportError> {
    let reader = BufReader::new(file);
    Ok(match source {
        AnswerSource::Prodigy => Box::new(annotations::prodigy::read(reader, limits)),
        AnswerSource::LabelStudio => {
            let key = if text_key.is_empty() {
                "text"
            } else {
                text_key
            };
            Box::new(annotations::label_studio::read(reader, key, limits))
        }
        AnswerSource::Spacy => {
            let mut bytes = Vec::new();
            let mut reader = reader;
            reader.read_to_end(&mut bytes)?;
            Box::new(
                gloss_import::docbin::read(&bytes, limits)?
                    .into_iter()
                    .map(Ok),
            )
        }
        // `source_of` refuses an unspecified source before anything is read.
        AnswerSource::Unspecified => Box::new(std::iter::empty()),
    })
}

/// The answer an annotation stands for, checked against the task (spans are snapped to the
/// text's tokens), or the reason it is not valid.
fn to_answer(
    task: &Task,
    header: &ImportAnswersHeader,
    record: &AnnotatedRecord,
    a: &Annotation,
) -> Result<Answer, (String, String)> {
    let annotator = if a.annotator.is_empty() {
        header.default_annotator.clone()
    } else {
        a.annotator.clone()
    };
    if annotator.is_empty() {
        return Err((
            "annotator".into(),
            "the source names no annotator; give a default annotator for the import".into(),
        ));
    }
    gloss_state::tasks::check_annotator(&annotator).map_err(|r| ("annotator".into(), r))?;
    // The example's input hash keeps ids apart when a source reuses one across examples.
    let hash = gloss_import::input_hash(&record.text);
    let mut answer_id = format!("import:{:08x}:{}", (hash >> 96) as u32, a.source_id);
    answer_id.truncate(128);
    let decision = match a.decision {
        annotations::Decision::Accept => Decision::Accept,
        annotations::Decision::Reject => Decision::Reject,
        annotations::Decision::Ignore => Decision::Ignore,
    };
    let mut answer = Answer {
        answer_id,
        project: task.project.clone(),
        task: task.name.clone(),
        annotator,
        decision: decision as i32,
        label: a.label.clone(),
        choices: a.choices.clone(),
        spans: a
            .spans
            .iter()
            .map(|s| Span {
                start: u32::try_from(s.start).unwrap_or(u32::MAX),
                end: u32::try_from(s.end).unwrap_or(u32::MAX),
                label: s.label.clone(),
                ..Span::default()
            })
            .collect(),
        relations: a
            .relations
            .iter()
            .map(|r| gloss_proto::v1::Relation {
                head: u32::try_from(r.head).unwrap_or(u32::MAX),
                child: u32::try_from(r.child).unwrap_or(u32::MAX),
                label: r.label.clone(),
            })
            .collect(),
        ..Answer::default()
    };
    gloss_annotate::check_answer(task, &record.text, &mut answer)
        .map_err(|e| (e.field.clone(), e.reason.clone()))?;
    Ok(answer)
}

/// Who holds a place on one example, by annotator number. Nearly every example of a large
/// import has one holder or none, kept inline: a million examples allocate nothing each.
enum Holders {
    /// [`Holders::NOBODY`] or one annotator.
    One(u32),
    Many(Box<[u32]>),
}

impl Holders {
    const NOBODY: u32 = u32::MAX;

    fn as_slice(&self) -> &[u32] {
        match self {
            Holders::One(Holders::NOBODY) => &[],
            Holders::One(n) => std::slice::from_ref(n),
            Holders::Many(all) => all,
        }
    }

    fn push(&mut self, n: u32) {
        *self = match self {
            Holders::One(Holders::NOBODY) => Holders::One(n),
            _ => Holders::Many(self.as_slice().iter().copied().chain([n]).collect()),
        };
    }
}

/// The places on each example (by input hash) as the check pass goes: who holds one now (an
/// answer or a lease in the state) or in this file. A million answers meet a million examples,
/// so each example keeps its holders' numbers, not their names.
struct Places<'a> {
    db: &'a DB,
    dataset: DatasetRecord,
    task_id: u64,
    overlap: usize,
    /// Each annotator met so far and their number.
    annotators: HashMap<String, u32>,
    by_hash: HashMap<u128, Holders>,
}

impl Places<'_> {
    /// The number of annotator `name`, given on first sight.
    fn number(&mut self, name: &str) -> u32 {
        if let Some(n) = self.annotators.get(name) {
            return *n;
        }
        let n = self.annotators.len() as u32;
        self.annotators.insert(name.to_string(), n);
        n
    }

    /// Meets the example `hash` (`seq` when the state holds it): on first sight, notes who
    /// holds a place on it in the state. Returns whether this was the first sight.
    fn meet(&mut self, hash: u128, seq: Option<u64>) -> Result<bool, ServiceError> {
        if self.by_hash.contains_key(&hash) {
            return Ok(false);
        }
        let mut holders = Holders::One(Holders::NOBODY);
        if let Some(seq) = seq {
            let te = gloss_state::feed::task_example(self.db, self.task_id, seq)?;
            for name in te.iter().flat_map(|t| t.leased.iter().chain(&t.answered)) {
                let n = self.number(name);
                if !holders.as_slice().contains(&n) {
                    holders.push(n);
                }
            }
        }
        self.by_hash.insert(hash, holders);
        Ok(true)
    }

    /// Takes a place for `answer` on the example `hash` (already met; `seq` when the state
    /// holds it), unless an earlier import of the same file recorded it already. Returns the
    /// field and the reason when the rules forbid it.
    fn take(
        &mut self,
        hash: u128,
        seq: Option<u64>,
        answer: &Answer,
    ) -> Result<Result<(), (String, String)>, ServiceError> {
        let recorded = match seq {
            Some(seq) => {
                gloss_state::feed::answers::answer(self.db, self.task_id, seq, &answer.annotator)?
                    .and_then(|r| r.current)
                    .is_some_and(|c| c.answer_id == answer.answer_id)
            }
            None => false,
        };
        if recorded {
            return Ok(Ok(()));
        }
        let who = self.number(&answer.annotator);
        let holders = self.by_hash.get_mut(&hash).expect("met above");
        if holders.as_slice().contains(&who) {
            return Ok(Err((
                "annotator".into(),
                format!(
                    "{} already answered this example (in this file or before)",
                    answer.annotator
                ),
            )));
        }
        holders.push(who);
        let taken = holders.as_slice().len();
        if taken > self.overlap {
            return Ok(Err((
                String::new(),
                format!(
                    "the example would have {taken} answers and leases; the task's overlap is {}",
                    self.overlap
                ),
            )));
        }
        Ok(Ok(()))
    }
}

/// The answers of one record, or the first error naming its field.
fn check_record(
    task: &Task,
    header: &ImportAnswersHeader,
    places: &mut Places<'_>,
    record: &AnnotatedRecord,
    hash: u128,
    seq: Option<u64>,
) -> Result<Result<Vec<Answer>, RecordError>, ServiceError> {
    let mut answers = Vec::with_capacity(record.annotations.len());
    for (j, a) in record.annotations.iter().enumerate() {
        let error = |field: String, reason: String| RecordError {
            line: record.line,
            field: if field.is_empty() {
                format!("annotations[{j}]")
            } else {
                format!("annotations[{j}].{field}")
            },
            reason,
        };
        let answer = match to_answer(task, header, record, a) {
            Ok(answer) => answer,
            Err((field, reason)) => return Ok(Err(error(field, reason))),
        };
        if let Err((field, reason)) = places.take(hash, seq, &answer)? {
            return Ok(Err(error(field, reason)));
        }
        answers.push(answer);
    }
    Ok(Ok(answers))
}

/// Pass 1: checks every record of the spooled upload against the task and the state, writing
/// the examples and the answers to spool files for pass 2.
fn check(
    db: &DB,
    task: &Task,
    header: &ImportAnswersHeader,
    upload: std::fs::File,
    limits: Limits,
    dir: &std::path::Path,
) -> Result<Checked, ServiceError> {
    let source = source_of(header)?;
    let invalid_import = |e: ImportError| ServiceError::InvalidArgument(e.to_string());
    let dataset =
        gloss_state::read::dataset(db, &task.project, &task.source_dataset)?.ok_or_else(|| {
            ServiceError::NotFound(format!(
                "dataset {}/{} not found",
                task.project, task.source_dataset
            ))
        })?;
    let task_id = gloss_state::tasks::task(db, &task.project, &task.name)?
        .map(|r| r.task_id)
        .unwrap_or_default();
    let mut places = Places {
        db,
        dataset,
        task_id,
        overlap: task.overlap.max(1) as usize,
        annotators: HashMap::new(),
        by_hash: HashMap::new(),
    };
    let spool = |what: &str| {
        tempfile::Builder::new()
            .prefix(what)
            .tempfile_in(dir)
            .map_err(|e| ServiceError::Internal(format!("cannot spool the import: {e}")))
    };
    let mut out = Checked {
        records: 0,
        invalid: 0,
        errors: Vec::new(),
        examples: spool("answers-examples")?,
        answers: spool("answers-pending")?,
    };
    let mut examples_out = BufWriter::new(out.examples.reopen().map_err(io)?);
    let mut answers_out = BufWriter::new(out.answers.reopen().map_err(io)?);
    for item in read_records(source, upload, &header.text_key, limits).map_err(invalid_import)? {
        out.records += 1;
        let checked = match item.map_err(invalid_import)? {
            AnnotatedItem::Invalid(e) => Err(RecordError {
                line: e.line,
                field: e.field.unwrap_or_default(),
                reason: e.reason,
            }),
            AnnotatedItem::Record(record) => {
                let hash = gloss_import::input_hash(&record.text);
                let seq = gloss_state::read::seq_of_hash(places.db, &places.dataset, hash)?;
                let first = places.meet(hash, seq)?;
                check_record(task, header, &mut places, &record, hash, seq)?
                    .map(|answers| (record, hash, first, answers))
            }
        };
        let (record, hash, first, answers) = match checked {
            Ok(ok) => ok,
            Err(e) => {
                out.invalid += 1;
                if out.errors.len() < MAX_LISTED_ERRORS {
                    out.errors.push(e);
                }
                continue;
            }
        };
        // Each example's text is spooled once, by the first record that meets it. (Should that
        // record be invalid, the whole import is refused and the spool is never read.)
        if first {
            examples_out
                .write_all(record.json.as_bytes())
                .and_then(|()| examples_out.write_all(b"\n"))
                .map_err(io)?;
        }
        for answer in answers {
            let p = Pending {
                hash: hash.to_be_bytes().to_vec(),
                line: record.line,
                answer: Some(answer),
            };
            answers_out
                .write_all(&p.encode_length_delimited_to_vec())
                .map_err(io)?;
        }
    }
    examples_out.flush().map_err(io)?;
    answers_out.flush().map_err(io)?;
    Ok(out)
}

fn io(e: std::io::Error) -> ServiceError {
    ServiceError::Internal(format!("import spool: {e}"))
}

/// Reads the next length-delimited [`Pending`] from `r`; `None` at the end.
fn next_pending(r: &mut impl BufRead) -> Result<Option<Pending>, ServiceError> {
    if r.fill_buf().map_err(io)?.is_empty() {
        return Ok(None);
    }
    let mut len = 0u64;
    for shift in (0..64).step_by(7) {
        let mut byte = [0u8];
        r.read_exact(&mut byte).map_err(io)?;
        len |= u64::from(byte[0] & 0x7f) << shift;
        if byte[0] & 0x80 == 0 {
            break;
        }
    }
    let mut buf = vec![0u8; len as usize];
    r.read_exact(&mut buf).map_err(io)?;
    Pending::decode(buf.as_slice())
        .map(Some)
        .map_err(|e| ServiceError::Internal(format!("import spool: {e}")))
}

impl Service {
    /// Imports annotations made in another tool into a task: see the module's documentation.
    pub async fn import_answers<S>(
        &self,
        actor: &Actor,
        header: ImportAnswersHeader,
        mut data: S,
    ) -> Result<ImportAnswersSummary, ServiceError>
    where
        S: Stream<Item = Result<Bytes, ServiceError>> + Unpin + Send,
    {
        source_of(&header)?;
        let rec = self.task_record(&header.project, &header.task).await?;
        let task = rec.task.clone().unwrap_or_default();
        let dir = std::path::Path::new(&self.settings.data_dir).join("tmp");
        std::fs::create_dir_all(&dir).map_err(io)?;
        let upload = tempfile::Builder::new()
            .prefix("answers-upload")
            .tempfile_in(&dir)
            .map_err(io)?;
        {
            let mut file = tokio::fs::File::from_std(upload.reopen().map_err(io)?);
            while let Some(chunk) = data.next().await {
                tokio::io::AsyncWriteExt::write_all(&mut file, &chunk?)
                    .await
                    .map_err(io)?;
            }
            tokio::io::AsyncWriteExt::flush(&mut file)
                .await
                .map_err(io)?;
        }
        let limits = Limits {
            max_record_bytes: self.settings.max_record_bytes,
            max_image_bytes: self.settings.max_image_bytes,
        };
        let checked = {
            let (db, task, header) = (self.state_db(), task.clone(), header.clone());
            let upload = upload.reopen().map_err(io)?;
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || check(&db, &task, &header, upload, limits, &dir))
                .await
                .map_err(|e| ServiceError::Internal(e.to_string()))??
        };
        let mut summary = ImportAnswersSummary {
            records_read: checked.records,
            invalid: checked.invalid,
            errors: checked.errors.clone(),
            ..ImportAnswersSummary::default()
        };
        if checked.invalid > 0 {
            let first = summary.errors.first().cloned().unwrap_or_default();
            return Err(ServiceError::AnswersRejected {
                message: format!(
                    "{} of {} records are invalid; nothing was imported (first: {first})",
                    checked.invalid, checked.records
                ),
                summary: Box::new(summary),
            });
        }
        // The examples, through the ordinary atomic import, read from the spool in chunks.
        let file = tokio::fs::File::open(checked.examples.path())
            .await
            .map_err(io)?;
        let examples = futures::stream::unfold(file, |mut file| async move {
            let mut buf = vec![0u8; 1 << 20];
            match tokio::io::AsyncReadExt::read(&mut file, &mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(Bytes::from(buf)), file))
                }
                Err(e) => Some((Err(io(e)), file)),
            }
        });
        let imported = self
            .import(
                actor,
                ImportHeader {
                    project: task.project.clone(),
                    dataset: task.source_dataset.clone(),
                    format: ImportFormat::Jsonl as i32,
                    source_name: header.source_name.clone(),
                    ..ImportHeader::default()
                },
                Box::pin(examples),
            )
            .await?;
        summary.examples_added = imported.imported;
        summary.examples_existing = imported.duplicates;
        // The answers, in batches.
        let db = self.state_db();
        let dataset = gloss_state::read::dataset(&db, &task.project, &task.source_dataset)?
            .ok_or_else(|| ServiceError::NotFound("the source dataset was deleted".into()))?;
        let mut reader = BufReader::new(std::fs::File::open(checked.answers.path()).map_err(io)?);
        let mut batch: Vec<(u64, Answer)> = Vec::with_capacity(ANSWER_BATCH);
        loop {
            let next = next_pending(&mut reader)?;
            if let Some(p) = &next {
                let hash = u128::from_be_bytes(
                    p.hash
                        .as_slice()
                        .try_into()
                        .map_err(|_| ServiceError::Internal("import spool: bad hash".into()))?,
                );
                let seq =
                    gloss_state::read::seq_of_hash(&db, &dataset, hash)?.ok_or_else(|| {
                        ServiceError::Internal(format!(
                            "line {}: the example was not imported",
                            p.line
                        ))
                    })?;
                let mut answer = p.answer.clone().unwrap_or_default();
                answer.seq = seq;
                batch.push((p.line, answer));
            }
            if batch.len() == ANSWER_BATCH || (next.is_none() && !batch.is_empty()) {
                let lines: Vec<u64> = batch.iter().map(|(l, _)| *l).collect();
                let body = command::Body::ImportAnswers(ImportAnswers {
                    project: task.project.clone(),
                    task: task.name.clone(),
                    answers: batch.drain(..).map(|(_, a)| a).collect(),
                });
                let recorded = match self.propose_with(actor, body, String::new(), true).await {
                    Ok(command_result::Result::Count(n)) => n,
                    Ok(other) => return Err(unexpected(other)),
                    Err(e) => return Err(at_line(e, &lines)),
                };
                summary.answers_recorded += recorded;
                summary.answers_existing += lines.len() as u64 - recorded;
            }
            if next.is_none() {
                break;
            }
        }
        tracing::info!(
            project = %task.project,
            task = %task.name,
            records = summary.records_read,
            answers = summary.answers_recorded,
            "annotations imported"
        );
        Ok(summary)
    }
}

/// A refused batch's error, naming the source line of the answer at fault (`answers[i]: ...`).
fn at_line(e: ServiceError, lines: &[u64]) -> ServiceError {
    let message = e.to_string();
    let line = message
        .strip_prefix("answers[")
        .and_then(|rest| rest.split_once(']'))
        .and_then(|(i, _)| i.parse::<usize>().ok())
        .and_then(|i| lines.get(i));
    match line {
        Some(line) => ServiceError::with_code(
            e.code(),
            format!("line {line}: {message}; answers before it were recorded, run the same import again to finish once the example has room"),
        ),
        None => e,
    }
}
