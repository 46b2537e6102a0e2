//! Evaluate and predict on entity tasks (ner, ner-correct, spans): taggers and LLM teachers that
//! find labelled spans.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{bail, Result};
use gloss_ml::metrics::{span_report, Span, SpanReport};
use gloss_ml::tagging::entity_spans;
use gloss_ml::{Encoder, Entity, HeadTagger, TinyTagger};
use gloss_proto::v1::{Interface, Suggestion, Task};
use serde_json::{json, Value};

use super::students::{Fetched, StudentKind};
use super::{evaluation_result, llm_totals, run_llm, Context, GoldRecord, Settings, Target};
use crate::teachers::{Ask, LlmTeacher, Outcome};

/// The entities found in each text (`None`: the teacher abstained), and an LLM teacher's
/// figures.
type Found = (Vec<Option<Vec<Entity>>>, Option<Value>);

/// A model that finds entities.
enum Extractor {
    Tiny(TinyTagger),
    Encoder(HeadTagger, Arc<Encoder>),
    Llm(LlmTeacher),
}

impl Extractor {
    /// The entities of each text (`None`: the teacher abstained), and an LLM teacher's figures.
    fn extract(&self, ctx: &Context, name: &str, texts: &[&str], batch: usize) -> Result<Found> {
        let all = |v: Vec<Vec<Entity>>| (v.into_iter().map(Some).collect(), None);
        Ok(match self {
            Extractor::Tiny(t) => all(t.predict(texts, batch)?),
            Extractor::Encoder(h, encoder) => all(h.predict(&encoder.token_states(texts, batch)?)?),
            Extractor::Llm(t) => {
                let (outcomes, figures) = run_llm(ctx, name, t, texts)?;
                let found = outcomes
                    .into_iter()
                    .map(|o| match o {
                        Outcome::Entities(e) => Some(e),
                        _ => None,
                    })
                    .collect();
                (found, Some(figures))
            }
        })
    }
}

/// Loads `model` for an entity task: an LLM teacher or a registry tagger.
fn load(
    ctx: &Context,
    task: &Task,
    settings: &Settings,
    model: &str,
) -> Result<(Extractor, String)> {
    if let Some(teacher) = ctx.llm(task, settings, model, Ask::Entities)? {
        return Ok((Extractor::Llm(teacher), model.to_string()));
    }
    if model.starts_with("similarity:") {
        bail!(
            "{model}: the similarity teacher scores labels of whole texts; {}/{} is an entity \
             task (use llm:, openai: or a tagger)",
            task.project,
            task.name
        );
    }
    let student = Fetched::get(ctx, task, model, Target::Entities)?;
    Ok((from_student(ctx, &student)?, student.name))
}

/// A tagger on disk, loaded.
fn from_student(ctx: &Context, student: &Fetched) -> Result<Extractor> {
    let device = ctx.device();
    Ok(match student.kind {
        StudentKind::EncoderTagger => {
            Extractor::Encoder(HeadTagger::load(&student.dir, &device)?, student.encoder()?)
        }
        _ => Extractor::Tiny(TinyTagger::load(&student.dir, &device)?),
    })
}

/// Scores a tagger or LLM teacher on the gold test split by exact-match spans, per label, and
/// records the result; the promotion rule compares `gold-test:span_f1`.
pub fn evaluate_job(ctx: &Context, task: &Task, settings: &Settings, model: &str) -> Result<Value> {
    let test = ctx.test_set(task)?;
    let (extractor, name) = load(ctx, task, settings, model)?;
    ctx.report(
        0.1,
        Vec::new(),
        vec![format!(
            "evaluating {name} on {} gold test records",
            test.len()
        )],
    );
    let (metrics, report, llm) = test_metrics(ctx, &extractor, &name, &test, settings)?;
    ctx.record_evaluation(task, &name, metrics.clone())?;
    let mut lines = vec![format!(
        "{name}: span precision {:.4}, recall {:.4}, F1 {:.4}",
        report.micro.precision, report.micro.recall, report.micro.f1
    )];
    lines.extend(report.per_label.iter().map(|(label, prf)| {
        format!(
            "  {label}: precision {:.4}, recall {:.4}, F1 {:.4} ({} gold)",
            prf.precision, prf.recall, prf.f1, prf.gold
        )
    }));
    ctx.report(1.0, Vec::new(), lines);
    Ok(evaluation_result(&name, test.len(), metrics, llm))
}

/// A trained tagger's scores on the gold test split (a learning curve's point).
pub fn student_metrics(
    ctx: &Context,
    student: &Fetched,
    test: &[GoldRecord],
    settings: &Settings,
) -> Result<HashMap<String, f64>> {
    let extractor = from_student(ctx, student)?;
    Ok(test_metrics(ctx, &extractor, &student.name, test, settings)?.0)
}

/// Scores of `extractor` on `test` by exact-match spans, overall and per label, with an LLM
/// teacher's abstention rate and figures.
fn test_metrics(
    ctx: &Context,
    extractor: &Extractor,
    name: &str,
    test: &[GoldRecord],
    settings: &Settings,
) -> Result<(HashMap<String, f64>, SpanReport, Option<Value>)> {
    let texts: Vec<&str> = test.iter().map(|g| g.text.as_str()).collect();
    let (found, llm) = extractor.extract(ctx, name, &texts, settings.batch_size.max(1))?;
    ctx.cancelled()?;
    let abstained = found.iter().filter(|f| f.is_none()).count();
    // An abstention finds nothing: its gold spans count as missed.
    let predicted: Vec<Vec<Span>> = found
        .iter()
        .map(|f| f.as_deref().map(entity_spans).unwrap_or_default())
        .collect();
    let gold: Vec<Vec<Span>> = test.iter().map(|g| g.spans.clone()).collect();
    let report = span_report(&gold, &predicted)?;
    let mut metrics: HashMap<String, f64> = [
        (
            "gold-test:span_precision".to_string(),
            report.micro.precision,
        ),
        ("gold-test:span_recall".to_string(), report.micro.recall),
        ("gold-test:span_f1".to_string(), report.micro.f1),
    ]
    .into();
    for (label, prf) in &report.per_label {
        metrics.insert(format!("gold-test:span_precision:{label}"), prf.precision);
        metrics.insert(format!("gold-test:span_recall:{label}"), prf.recall);
        metrics.insert(format!("gold-test:span_f1:{label}"), prf.f1);
    }
    if llm.is_some() {
        metrics.insert(
            "gold-test:abstention_rate".into(),
            abstained as f64 / test.len() as f64,
        );
    }
    Ok((metrics, report, llm))
}

/// Pre-annotates the task's source examples with span suggestions (what `ner-correct` starts
/// from), snapped to the task's token boundaries.
pub fn predict_job(ctx: &Context, task: &Task, settings: &Settings, model: &str) -> Result<Value> {
    let (extractor, name) = load(ctx, task, settings, model)?;
    let overlap = task.interface() == Interface::Spans;
    let mut teacher_runs = Vec::new();
    let (done, written) = ctx.suggest_all(task, &name, |batch| {
        let texts: Vec<&str> = batch.iter().map(|e| e.text.as_str()).collect();
        let (found, llm) = extractor.extract(ctx, &name, &texts, settings.batch_size.max(1))?;
        teacher_runs.extend(llm);
        Ok(batch
            .iter()
            .zip(found)
            .filter_map(|(e, entities)| {
                // An abstention suggests nothing: the example is annotated from scratch.
                let entities = entities?;
                Some(Suggestion {
                    seq: e.seq,
                    score: entities
                        .iter()
                        .map(|e| f64::from(e.confidence))
                        .fold(1.0, f64::min),
                    spans: on_tokens(&e.text, entities, overlap),
                    source: name.clone(),
                    ..Default::default()
                })
            })
            .collect())
    })?;
    let mut result = json!({"model": name, "suggestions": written, "examples": done});
    if !teacher_runs.is_empty() {
        result["teacher"] = llm_totals(&teacher_runs, done, done - written);
    }
    Ok(result)
}

/// Entities as spans the task accepts: each widened to the tokens it touches (a model's word
/// pieces or an LLM's substring may end inside a token), and, unless the interface allows
/// overlaps, the more confident of two overlapping spans kept.
fn on_tokens(text: &str, mut entities: Vec<Entity>, overlap: bool) -> Vec<gloss_proto::v1::Span> {
    let tokens = gloss_annotate::tokenize(text);
    entities.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
    let mut kept: Vec<gloss_proto::v1::Span> = Vec::new();
    for e in entities {
        let Some((start, end)) = gloss_annotate::snap_span(&tokens, e.start as u32, e.end as u32)
        else {
            continue;
        };
        let clashes = kept.iter().any(|k| {
            let overlaps = k.start < end && start < k.end;
            (overlaps && !overlap) || (k.start, k.end, k.label.as_str()) == (start, end, &e.label)
        });
        if !clashes && start < end {
            kept.push(gloss_proto::v1::Span {
                start,
                end,
                label: e.label,
                ..Default::default()
            });
        }
    }
    kept.sort_by_key(|s| (s.start, s.end));
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(start: usize, end: usize, label: &str, confidence: f32) -> Entity {
        Entity {
            start,
            end,
            label: label.into(),
            confidence,
        }
    }

    #[test]
    fn suggested_spans_are_widened_to_tokens_and_overlaps_go_to_the_more_confident() {
        let text = "Angela Merkel visited Paris.";
        let spans = on_tokens(
            text,
            vec![
                entity(0, 10, "PER", 0.9),  // ends inside "Merkel"
                entity(7, 13, "LOC", 0.4),  // overlaps the PER span
                entity(22, 27, "LOC", 0.8), // "Paris"
                entity(40, 45, "LOC", 0.8), // past the text
            ],
            false,
        );
        let got: Vec<(u32, u32, &str)> = spans
            .iter()
            .map(|s| (s.start, s.end, s.label.as_str()))
            .collect();
        assert_eq!(got, vec![(0, 13, "PER"), (22, 27, "LOC")]);
        // The spans interface keeps overlapping spans of different labels.
        let spans = on_tokens(
            text,
            vec![entity(0, 13, "PER", 0.9), entity(7, 13, "LOC", 0.4)],
            true,
        );
        assert_eq!(spans.len(), 2);
    }
}
