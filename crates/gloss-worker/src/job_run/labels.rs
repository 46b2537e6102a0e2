//! Evaluate and predict on label tasks (choice, multi-choice): students and teachers that score
//! texts over the task's labels.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Result;
use gloss_ml::metrics::{classification_report_with_abstentions, multilabel_report};
use gloss_ml::train::argmax;
use gloss_ml::{Encoder, HeadStudent, SimilarityConfig, SimilarityTeacher, TinyStudent};
use gloss_proto::v1::{Suggestion, Task};
use serde_json::{json, Value};

use super::students::{Fetched, StudentKind};
use super::{evaluation_result, llm_totals, run_llm, Context, GoldRecord, Settings, Target};
use crate::teachers::{Ask, LlmTeacher, Outcome};

/// A model that scores texts over the task's labels.
enum Classifier {
    Tiny(TinyStudent),
    Encoder(HeadStudent, Arc<Encoder>),
    Similarity(SimilarityTeacher),
    Llm(LlmTeacher),
}

/// Scores of each text (`None`: the model abstained), and an LLM teacher's figures.
struct Scored {
    scores: Vec<Option<Vec<f32>>>,
    llm: Option<Value>,
}

impl Classifier {
    /// Whether the scores are independent per label (a multi-label student) rather than one
    /// distribution; zero-shot teachers name one label even on multi-choice tasks.
    fn independent(&self) -> bool {
        match self {
            Classifier::Tiny(s) => s.config().multi_label,
            Classifier::Encoder(h, _) => h.config().multi_label,
            Classifier::Similarity(_) | Classifier::Llm(_) => false,
        }
    }

    fn scores(&self, ctx: &Context, name: &str, texts: &[&str], batch: usize) -> Result<Scored> {
        let all = |v: Vec<Vec<f32>>| Scored {
            scores: v.into_iter().map(Some).collect(),
            llm: None,
        };
        Ok(match self {
            Classifier::Tiny(s) => all(s.predict(texts, batch)?),
            Classifier::Encoder(h, encoder) => all(h.predict(&encoder.embed(texts, batch)?)?),
            Classifier::Similarity(t) => all(t
                .classify_many(texts)?
                .into_iter()
                .map(|p| p.probabilities)
                .collect()),
            Classifier::Llm(t) => {
                let (outcomes, figures) = run_llm(ctx, name, t, texts)?;
                let scores = outcomes
                    .into_iter()
                    .map(|o| match o {
                        Outcome::Label(_, probabilities) => Some(probabilities),
                        _ => None,
                    })
                    .collect();
                Scored {
                    scores,
                    llm: Some(figures),
                }
            }
        })
    }

    /// The labels a row of scores names, and the confidence in that answer.
    fn decide(&self, scores: &[f32]) -> (Vec<usize>, f32) {
        if self.independent() {
            let chosen = (0..scores.len()).filter(|&l| scores[l] >= 0.5).collect();
            let confidence = scores.iter().map(|&p| p.max(1.0 - p)).fold(1.0, f32::min);
            (chosen, confidence)
        } else {
            let best = argmax(scores);
            (vec![best], scores[best])
        }
    }
}

/// Loads `model` for `task`: an LLM teacher, `similarity:<base model>` (digest-checked), or a
/// registry student (`assisting`, `name[@version]`). Returns it with the name evaluations are
/// recorded under.
fn load(
    ctx: &Context,
    task: &Task,
    settings: &Settings,
    model: &str,
) -> Result<(Classifier, String)> {
    if let Some(teacher) = ctx.llm(task, settings, model, Ask::Label)? {
        return Ok((Classifier::Llm(teacher), model.to_string()));
    }
    if let Some(base) = model.strip_prefix("similarity:") {
        let encoder = ctx.encoder(base, &settings.sha256, model)?;
        let mut config = SimilarityConfig::new(task.labels.clone());
        if !settings.descriptions.is_empty() {
            config = config.with_descriptions(settings.descriptions.clone());
        }
        return Ok((
            Classifier::Similarity(SimilarityTeacher::new(encoder, config)?),
            model.to_string(),
        ));
    }
    let student = Fetched::get(ctx, task, model, Target::Labels { multi: false })?;
    Ok((from_student(ctx, &student)?, student.name))
}

/// A label student on disk, loaded.
fn from_student(ctx: &Context, student: &Fetched) -> Result<Classifier> {
    let device = ctx.device();
    Ok(match student.kind {
        StudentKind::Encoder => Classifier::Encoder(
            HeadStudent::load(&student.dir, &device)?,
            student.encoder()?,
        ),
        _ => Classifier::Tiny(TinyStudent::load(&student.dir, &device)?),
    })
}

/// Scores a teacher or student on the gold test split and records the result.
pub fn evaluate_job(
    ctx: &Context,
    task: &Task,
    settings: &Settings,
    model: &str,
    multi: bool,
) -> Result<Value> {
    let test = ctx.test_set(task)?;
    let (classifier, name) = load(ctx, task, settings, model)?;
    ctx.report(
        0.1,
        Vec::new(),
        vec![format!(
            "evaluating {name} on {} gold test records",
            test.len()
        )],
    );
    let (metrics, llm) = test_metrics(ctx, task, &classifier, &name, &test, settings, multi)?;
    ctx.record_evaluation(task, &name, metrics.clone())?;
    ctx.report(
        1.0,
        Vec::new(),
        vec![format!(
            "{name}: accuracy {:.4}, macro-F1 {:.4}",
            metrics["gold-test:accuracy"], metrics["gold-test:macro_f1"]
        )],
    );
    Ok(evaluation_result(&name, test.len(), metrics, llm))
}

/// A trained label student's scores on the gold test split (a learning curve's point).
pub fn student_metrics(
    ctx: &Context,
    task: &Task,
    student: &Fetched,
    test: &[GoldRecord],
    settings: &Settings,
    multi: bool,
) -> Result<HashMap<String, f64>> {
    let classifier = from_student(ctx, student)?;
    Ok(test_metrics(ctx, task, &classifier, &student.name, test, settings, multi)?.0)
}

/// Scores of `classifier` on `test`: accuracy and macro-F1 (multi-choice: subset accuracy and
/// micro-F1 too), with an LLM teacher's abstention rate and figures.
fn test_metrics(
    ctx: &Context,
    task: &Task,
    classifier: &Classifier,
    name: &str,
    test: &[GoldRecord],
    settings: &Settings,
    multi: bool,
) -> Result<(HashMap<String, f64>, Option<Value>)> {
    let texts: Vec<&str> = test.iter().map(|g| g.text.as_str()).collect();
    let scored = classifier.scores(ctx, name, &texts, settings.batch_size.max(1))?;
    ctx.cancelled()?;
    let predicted: Vec<Option<Vec<usize>>> = scored
        .scores
        .iter()
        .map(|s| s.as_deref().map(|s| classifier.decide(s).0))
        .collect();
    let abstained = predicted.iter().filter(|p| p.is_none()).count();
    let mut metrics: HashMap<String, f64> = HashMap::new();
    if multi {
        let gold: Vec<Vec<usize>> = test.iter().map(|g| g.labels.clone()).collect();
        let predicted: Vec<Vec<usize>> = predicted
            .into_iter()
            .map(Option::unwrap_or_default)
            .collect();
        let (micro, report) = multilabel_report(&task.labels, &gold, &predicted)?;
        metrics.insert("gold-test:accuracy".into(), report.accuracy);
        metrics.insert("gold-test:macro_f1".into(), report.macro_f1);
        metrics.insert("gold-test:micro_f1".into(), micro.f1);
    } else {
        let gold: Vec<usize> = test.iter().map(|g| g.labels[0]).collect();
        let predicted: Vec<Option<usize>> =
            predicted.into_iter().map(|p| p.map(|p| p[0])).collect();
        let report = classification_report_with_abstentions(&task.labels, &gold, &predicted)?;
        metrics.insert("gold-test:accuracy".into(), report.accuracy);
        metrics.insert("gold-test:macro_f1".into(), report.macro_f1);
    }
    if scored.llm.is_some() {
        metrics.insert(
            "gold-test:abstention_rate".into(),
            abstained as f64 / test.len() as f64,
        );
    }
    Ok((metrics, scored.llm))
}

/// Pre-annotates the task's source examples: one suggestion (labels and confidence) each.
pub fn predict_job(ctx: &Context, task: &Task, settings: &Settings, model: &str) -> Result<Value> {
    let (classifier, name) = load(ctx, task, settings, model)?;
    let mut teacher_runs = Vec::new();
    let (done, written) = ctx.suggest_all(task, &name, |batch| {
        let texts: Vec<&str> = batch.iter().map(|e| e.text.as_str()).collect();
        let scored = classifier.scores(ctx, &name, &texts, settings.batch_size.max(1))?;
        teacher_runs.extend(scored.llm);
        Ok(batch
            .iter()
            .zip(scored.scores)
            .filter_map(|(e, s)| {
                // An abstention suggests nothing: the example is annotated from scratch.
                let (chosen, confidence) = classifier.decide(&s?);
                Some(Suggestion {
                    seq: e.seq,
                    labels: chosen.iter().map(|&l| task.labels[l].clone()).collect(),
                    score: f64::from(confidence),
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
