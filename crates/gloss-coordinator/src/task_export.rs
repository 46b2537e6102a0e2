//! Streaming export of a task's answers or gold records, from one consistent snapshot, in the
//! Prodigy, CoNLL or flat (Hugging Face `datasets`) formats.

use gloss_proto::v1::{Answer, ExportChunk, ExportFormat, ExportSelection, Interface};
use gloss_state::feed::answers;
use gloss_state::review;
use tokio::sync::mpsc;

use crate::access::Actor;
use crate::error::ServiceError;
use crate::export::{record_text, send_lines};
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
            Interface::Ner | Interface::NerCorrect | Interface::Spans
        );
        if format == ExportFormat::Conll && !span_task {
            return Err(ServiceError::InvalidArgument(format!(
                "format: CoNLL needs a span interface; task {project}/{task} is {}",
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
            let line = |answer: &Answer| -> Result<String, ServiceError> {
                let row = gloss_state::read::example_at(&db, &snapshot, &source, answer.seq)?
                    .ok_or_else(|| {
                        ServiceError::Internal(format!(
                            "answered example {} is missing from the source dataset",
                            answer.seq
                        ))
                    })?;
                let text = record_text(answer.seq, &row.record_json)?;
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
                    ExportFormat::Hf => gloss_annotate::hf_line(&t, &text, &hash, answer),
                    _ => gloss_annotate::prodigy_line(&t, &row.record_json, &hash, answer)
                        .map_err(bad)?,
                })
            };
            if gold {
                review::for_each_gold(&db, &snapshot, rec.task_id, |g| {
                    let answer = g.answer.unwrap_or_default();
                    sink.line(&line(&answer)?)
                })
            } else {
                answers::for_each_answered(&db, &snapshot, rec.task_id, |_, answers| {
                    for a in &answers {
                        sink.line(&line(a)?)?;
                    }
                    Ok(())
                })
            }
        }))
    }
}
