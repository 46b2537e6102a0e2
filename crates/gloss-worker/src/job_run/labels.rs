//! Evaluate and predict on label tasks (choice, multi-choice, binary): students and teachers
//! that score texts over the task's labels.
//!
//! On choice tasks a model names one label. On multi-choice tasks it scores each label on its
//! own (a multi-label student, or an LLM teacher asked a yes/no question per label) and names
//! those at 0.5 or above; the similarity teacher still names one. On binary tasks it accepts or
//! rejects the label an example proposes (its probability at 0.5 or above), and is scored by the
//! share of gold decisions it gets right.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{bail, Result};
use gloss_ml::metrics::{classification_report_with_abstentions, multilabel_report};
use gloss_ml::train::argmax;
use gloss_ml::{Encoder, HeadStudent, SimilarityConfig, SimilarityTeacher, TinyStudent};
use gloss_proto::v1::{Suggestion, Task};
use serde_json::{json, Value};

use super::students::{Fetched, StudentKind};
use super::{
    ask_llm, evaluation_result, llm_totals, run_llm, Context, GoldRecord, Settings, Target,
};
use crate::teachers::{Ask, LlmTeacher, Outcome};

/// A model that scores texts over the task's labels.
enum Classifier {
    Tiny(TinyStudent),
    Encoder(HeadStudent, Arc<Encoder>),
    Similarity(SimilarityTeacher),
    /// Asked which one label fits.
    Llm(LlmTeacher),
    /// Asked yes or no about each label.
    LlmPerLabel(LlmTeacher),
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
            Classifier::LlmPerLabel(_) => true,
            Classifier::Similarity(_) | Classifier::Llm(_) => false,
        }
    }

    /// The probability of each question's label on its text (`None`: the model abstained).
    fn label_scores(
        &self,
        ctx: &Context,
        name: &str,
        questions: &[(&str, usize)],
        batch: usize,
    ) -> Result<(Vec<Option<f32>>, Option<Value>)> {
        if let Classifier::LlmPerLabel(t) = self {
            let (outcomes, figures) = ask_llm(ctx, name, t, questions)?;
            return Ok((outcomes.iter().map(p_yes).collect(), Some(figures)));
        }
        let texts: Vec<&str> = questions.iter().map(|(t, _)| *t).collect();
        let scored = self.scores(ctx, name, &texts, batch)?;
        let p = scored
            .scores
            .iter()
            .zip(questions)
            .map(|(row, (_, l))| row.as_ref().map(|row| row[*l]))
            .collect();
        Ok((p, scored.llm))
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
            Classifier::LlmPerLabel(t) => {
                // Every label of every text, one question each; a text whose questions are not
                // all answered is an abstention.
                let n = t.labels().len();
                let questions: Vec<(&str, usize)> = texts
                    .iter()
                    .flat_map(|&text| (0..n).map(move |l| (text, l)))
                    .collect();
                let (outcomes, figures) = ask_llm(ctx, name, t, &questions)?;
                let scores = outcomes
                    .chunks(n.max(1))
                    .map(|row| row.iter().map(p_yes).collect::<Option<Vec<f32>>>())
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

/// The probability of yes in a yes/no answer (`None`: an abstention).
fn p_yes(outcome: &Outcome) -> Option<f32> {
    match outcome {
        Outcome::Label(_, p) => p.first().copied(),
        _ => None,
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
    target: Target,
) -> Result<(Classifier, String)> {
    let per_label = matches!(target, Target::Decisions | Target::Labels { multi: true });
    let ask = if per_label { Ask::Decision } else { Ask::Label };
    if let Some(teacher) = ctx.llm(task, settings, model, ask)? {
        let classifier = if per_label {
            Classifier::LlmPerLabel(teacher)
        } else {
            Classifier::Llm(teacher)
        };
        return Ok((classifier, model.to_string()));
    }
    if let Some(base) = model.strip_prefix("similarity:") {
        if target == Target::Decisions {
            bail!(
                "{model} ranks a task's labels against each other, so it cannot accept or reject \
                 one label of the binary task {}/{}: evaluate an llm: or openai: teacher, or a \
                 student",
                task.project,
                task.name
            );
        }
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
    target: Target,
) -> Result<Value> {
    let test = ctx.test_set(task)?;
    let (classifier, name) = load(ctx, task, settings, model, target)?;
    ctx.report(
        0.1,
        Vec::new(),
        vec![format!(
            "evaluating {name} on {} gold test records",
            test.len()
        )],
    );
    let (metrics, llm) = test_metrics(ctx, task, &classifier, &name, &test, settings, target)?;
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
    target: Target,
) -> Result<HashMap<String, f64>> {
    let classifier = from_student(ctx, student)?;
    Ok(test_metrics(
        ctx,
        task,
        &classifier,
        &student.name,
        test,
        settings,
        target,
    )?
    .0)
}

/// Scores of `classifier` on `test`: accuracy and macro-F1 (multi-choice: subset accuracy and
/// micro-F1 too; binary: over the gold decisions, with accuracy per label), with an LLM
/// teacher's abstention rate and figures.
fn test_metrics(
    ctx: &Context,
    task: &Task,
    classifier: &Classifier,
    name: &str,
    test: &[GoldRecord],
    settings: &Settings,
    target: Target,
) -> Result<(HashMap<String, f64>, Option<Value>)> {
    if target == Target::Decisions {
        return decision_metrics(ctx, task, classifier, name, test, settings);
    }
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
    if target == (Target::Labels { multi: true }) {
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

/// A binary task's scores: over every gold decision, accuracy and macro-F1 of accept/reject
/// (an abstention is wrong), accuracy per label (`gold-test:accuracy:LABEL`) and, for an LLM,
/// the share of questions it abstained on.
fn decision_metrics(
    ctx: &Context,
    task: &Task,
    classifier: &Classifier,
    name: &str,
    test: &[GoldRecord],
    settings: &Settings,
) -> Result<(HashMap<String, f64>, Option<Value>)> {
    let questions: Vec<(&str, usize)> = test
        .iter()
        .flat_map(|g| g.decisions.iter().map(|(l, _)| (g.text.as_str(), *l)))
        .collect();
    let gold: Vec<usize> = test
        .iter()
        .flat_map(|g| {
            g.decisions
                .iter()
                .map(|(_, accepted)| usize::from(*accepted))
        })
        .collect();
    let (p, llm) = classifier.label_scores(ctx, name, &questions, settings.batch_size.max(1))?;
    ctx.cancelled()?;
    let predicted: Vec<Option<usize>> =
        p.iter().map(|p| p.map(|p| usize::from(p >= 0.5))).collect();
    let classes = ["reject".to_string(), "accept".to_string()];
    let report = classification_report_with_abstentions(&classes, &gold, &predicted)?;
    let mut metrics: HashMap<String, f64> = HashMap::new();
    metrics.insert("gold-test:accuracy".into(), report.accuracy);
    metrics.insert("gold-test:macro_f1".into(), report.macro_f1);
    metrics.insert("gold-test:decisions".into(), questions.len() as f64);
    for (l, label) in task.labels.iter().enumerate() {
        let asked: Vec<usize> = (0..questions.len())
            .filter(|&i| questions[i].1 == l)
            .collect();
        if !asked.is_empty() && task.labels.len() > 1 {
            let right = asked
                .iter()
                .filter(|&&i| predicted[i] == Some(gold[i]))
                .count();
            metrics.insert(
                format!("gold-test:accuracy:{label}"),
                right as f64 / asked.len() as f64,
            );
        }
    }
    if llm.is_some() {
        let abstained = predicted.iter().filter(|p| p.is_none()).count();
        metrics.insert(
            "gold-test:abstention_rate".into(),
            abstained as f64 / questions.len().max(1) as f64,
        );
    }
    Ok((metrics, llm))
}

/// Pre-annotates the task's source examples: one suggestion (labels and confidence) each. On a
/// binary task the suggestion accepts the example's proposed label (it is listed) or rejects it
/// (no label), with the confidence of that decision.
pub fn predict_job(
    ctx: &Context,
    task: &Task,
    settings: &Settings,
    model: &str,
    target: Target,
) -> Result<Value> {
    let (classifier, name) = load(ctx, task, settings, model, target)?;
    let mut teacher_runs = Vec::new();
    let batch_size = settings.batch_size.max(1);
    let (done, written) = ctx.suggest_all(task, &name, |batch| {
        if target == Target::Decisions {
            let proposed: Vec<usize> = batch
                .iter()
                .map(|e| {
                    let label = gloss_annotate::proposed_label(task, &e.record_json);
                    task.labels.iter().position(|l| *l == label).unwrap_or(0)
                })
                .collect();
            let questions: Vec<(&str, usize)> = batch
                .iter()
                .zip(&proposed)
                .map(|(e, &l)| (e.text.as_str(), l))
                .collect();
            let (p, llm) = classifier.label_scores(ctx, &name, &questions, batch_size)?;
            teacher_runs.extend(llm);
            return Ok(batch
                .iter()
                .zip(proposed)
                .zip(p)
                .filter_map(|((e, l), p)| {
                    let p = p?;
                    Some(Suggestion {
                        seq: e.seq,
                        labels: if p >= 0.5 {
                            vec![task.labels[l].clone()]
                        } else {
                            Vec::new()
                        },
                        score: f64::from(p.max(1.0 - p)),
                        source: name.clone(),
                        ..Default::default()
                    })
                })
                .collect());
        }
        let texts: Vec<&str> = batch.iter().map(|e| e.text.as_str()).collect();
        let scored = classifier.scores(ctx, &name, &texts, batch_size)?;
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
