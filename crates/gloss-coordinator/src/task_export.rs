//! Streaming export of a task's answers or gold records, from one consistent snapshot, in the
//! Prodigy, CoNLL or flat (Hugging Face `datasets`) formats, or as a spaCy DocBin (one binary
//! blob, built in memory: the format is a single message).

use gloss_import::docbin::DocOut;
use gloss_proto::v1::{
    Answer, Decision, ExportChunk, ExportFormat, ExportSelection, Interface, Task,
};
use gloss_state::feed::answers;
use gloss_state::review;
use tokio::sync::mpsc;

use crate::access::Actor;
use crate::error::ServiceError;
use crate::export::{exported_image, exported_record, image_field, record_text, send_lines};
use crate::service::Service;

impl Service {
    /// Streams a task's answers or gold records.
    pub async fn export_answers(
        &self,
        actor: &Actor,
        project: &str,
        task: &str,
        selection: ExportSelection,
        format: ExportFormat,
    ) -> Result<mpsc::Receiver<Result<ExportChunk, ServiceError>>, ServiceError> {
        let rec = self.task_record(project, task).await?;
        let t = rec.task.clone().unwrap_or_default();
        self.audit(
            actor,
            "export_answers",
            &format!("{project}/{task}"),
            &format!("{selection:?} {format:?}"),
        )
        .await?;
        let format = match format {
            ExportFormat::Unspecified => ExportFormat::Prodigy,
            f => f,
        };
        let span_task = matches!(
            t.interface(),
            Interface::Ner | Interface::NerCorrect | Interface::Spans | Interface::Relations
        );
        if format == ExportFormat::Conll && !span_task {
            return Err(ServiceError::InvalidArgument(format!(
                "format: CoNLL needs a span interface; task {project}/{task} is {}",
                t.interface().as_str_name()
            )));
        }
        if format == ExportFormat::Coco && t.interface() != Interface::ImageBoxes {
            return Err(ServiceError::InvalidArgument(format!(
                "format: COCO holds boxes on images; task {project}/{task} is {}",
                t.interface().as_str_name()
            )));
        }
        if format == ExportFormat::Spacy
            && matches!(
                t.interface(),
                Interface::Spans
                    | Interface::Relations
                    | Interface::ImageBoxes
                    | Interface::ImageChoice
            )
        {
            return Err(ServiceError::InvalidArgument(format!(
                "format: a spaCy DocBin holds entities (ner, ner-correct) or cats (binary, choice, multi-choice); task {project}/{task} is {}",
                t.interface().as_str_name()
            )));
        }
        let gold = selection == ExportSelection::Gold;
        let total = if gold { rec.gold } else { rec.answers };
        let db = self.state.db();
        Ok(send_lines(move |sink| {
            sink.set_total(total);
            let snapshot = db.snapshot();
            let source =
                gloss_state::read::dataset_at(&db, &snapshot, &t.project, &t.source_dataset)?
                    .ok_or_else(|| {
                        ServiceError::NotFound(format!(
                            "source dataset {}/{} not found",
                            t.project, t.source_dataset
                        ))
                    })?;
            let row_of = |answer: &Answer| {
                gloss_state::read::example_at(&db, &snapshot, &source, answer.seq)?.ok_or_else(
                    || {
                        ServiceError::Internal(format!(
                            "answered example {} is missing from the source dataset",
                            answer.seq
                        ))
                    },
                )
            };
            let line = |answer: &Answer| -> Result<String, ServiceError> {
                let row = row_of(answer)?;
                let text = record_text(answer.seq, &row.record_json)?;
                let record_json = with_image_size(exported_record(&db, answer.seq, &row)?, &row);
                let hash = gloss_state::hash_hex(&row.input_hash);
                let bad = |e: gloss_annotate::ExportError| {
                    ServiceError::FailedPrecondition(format!(
                        "example {}, annotator {}: {e}",
                        answer.seq, answer.annotator
                    ))
                };
                Ok(match format {
                    ExportFormat::Conll => {
                        let block =
                            gloss_annotate::conll_block(&text, &answer.spans).map_err(bad)?;
                        format!(
                            "# seq = {}\n# annotator = {}\n{}",
                            answer.seq,
                            answer.annotator,
                            block.trim_end_matches('\n')
                        )
                    }
                    ExportFormat::Hf => {
                        let image = exported_image(&db, answer.seq, &row)?;
                        gloss_annotate::hf_line(&t, &text, &image, &hash, answer)
                    }
                    _ => gloss_annotate::prodigy_line(&t, &record_json, &hash, answer)
                        .map_err(bad)?,
                })
            };
            if format == ExportFormat::Spacy {
                let mut docs = Vec::new();
                let mut add = |answer: &Answer| -> Result<(), ServiceError> {
                    let row = row_of(answer)?;
                    let text = record_text(answer.seq, &row.record_json)?;
                    docs.push(spacy_doc(&t, &row.record_json, text, answer));
                    Ok(())
                };
                each_answer(&db, &snapshot, rec.task_id, gold, &mut add)?;
                let bytes = gloss_import::docbin::write(&docs)
                    .map_err(|e| ServiceError::FailedPrecondition(e.to_string()))?;
                return sink.bytes(&bytes, docs.len() as u64);
            }
            if format == ExportFormat::Coco {
                let mut by_example: std::collections::BTreeMap<u64, Vec<Answer>> =
                    std::collections::BTreeMap::new();
                each_answer(&db, &snapshot, rec.task_id, gold, &mut |a| {
                    by_example.entry(a.seq).or_default().push(a.clone());
                    Ok(())
                })?;
                let mut items = Vec::with_capacity(by_example.len());
                for (seq, answers) in by_example {
                    let row = row_of(&answers[0])?;
                    items.push((coco_image(seq, &row), answers));
                }
                let doc = gloss_annotate::coco_document(&t, &items);
                return sink.bytes(doc.as_bytes(), items.len() as u64);
            }
            each_answer(&db, &snapshot, rec.task_id, gold, &mut |a| {
                sink.line(&line(a)?)
            })
        }))
    }
}

/// An image record with the image's `width` and `height` added (unless it has its own), as
/// Prodigy's image lines carry them.
fn with_image_size(record_json: String, row: &gloss_proto::v1::ExampleRow) -> String {
    let Some(img) = &row.image else {
        return record_json;
    };
    let Ok(serde_json::Value::Object(mut map)) = serde_json::from_str(&record_json) else {
        return record_json;
    };
    map.entry("width").or_insert(img.width.into());
    map.entry("height").or_insert(img.height.into());
    serde_json::Value::Object(map).to_string()
}

/// An example's image as COCO lists it: a file keeps its path as its name, an inline image is
/// named by its digest.
fn coco_image(seq: u64, row: &gloss_proto::v1::ExampleRow) -> gloss_annotate::CocoImage {
    let img = row.image.clone().unwrap_or_default();
    let file_name = if img.inline {
        let ext = img.media_type.strip_prefix("image/").unwrap_or("img");
        format!("{}.{}", img.digest, if ext == "jpeg" { "jpg" } else { ext })
    } else {
        image_field(&row.record_json)
    };
    gloss_annotate::CocoImage {
        file_name,
        width: img.width,
        height: img.height,
        seq,
    }
}

/// Calls `f` with every gold record's answer (`gold`) or every current answer of the task.
fn each_answer(
    db: &gloss_store::rocksdb::DB,
    snapshot: &gloss_store::rocksdb::Snapshot<'_>,
    task_id: u64,
    gold: bool,
    f: &mut dyn FnMut(&Answer) -> Result<(), ServiceError>,
) -> Result<(), ServiceError> {
    if gold {
        review::for_each_gold(db, snapshot, task_id, |g| f(&g.answer.unwrap_or_default()))
    } else {
        answers::for_each_answered(db, snapshot, task_id, |_, answers| {
            answers.iter().try_for_each(&mut *f)
        })
    }
}

/// One answer as a spaCy Doc: Gloss's tokens, the spans as entities (span interfaces), or one
/// category per label of the task scored 1.0 when chosen and 0.0 otherwise (choice and binary
/// interfaces; a rejected binary answer scores its label 0.0).
fn spacy_doc(task: &Task, record_json: &str, text: String, answer: &Answer) -> DocOut {
    let tokens = gloss_annotate::tokenize(&text)
        .iter()
        .map(|t| (u64::from(t.start), u64::from(t.end)))
        .collect();
    let spans = answer
        .spans
        .iter()
        .map(|s| gloss_import::annotations::Span {
            start: u64::from(s.start),
            end: u64::from(s.end),
            label: s.label.clone(),
        })
        .collect();
    let chosen: Vec<String> = match task.interface() {
        Interface::Binary if answer.decision() == Decision::Accept => {
            if answer.label.is_empty() {
                vec![gloss_annotate::proposed_label(task, record_json)]
            } else {
                vec![answer.label.clone()]
            }
        }
        Interface::Choice | Interface::MultiChoice => answer.choices.clone(),
        _ => Vec::new(),
    };
    let cats = match task.interface() {
        Interface::Binary | Interface::Choice | Interface::MultiChoice => task
            .labels
            .iter()
            .map(|l| (l.clone(), if chosen.contains(l) { 1.0 } else { 0.0 }))
            .collect(),
        _ => Vec::new(),
    };
    DocOut {
        text,
        tokens,
        spans,
        cats,
    }
}
