//! `train` jobs: the students a task can have, trained on its gold records, the best of the
//! candidates uploaded to the registry with its lineage.
//!
//! | kind | tasks | model |
//! | --- | --- | --- |
//! | `tiny` | choice, multi-choice, binary | hash-embedding CNN over the text, no pretrained weights |
//! | `encoder` | choice, multi-choice, binary | a linear or one-hidden-layer head (the better on dev) over a base encoder's sentence embeddings |
//! | `tiny-tagger` | ner, ner-correct, spans | the tiny CNN tagging BIO per word |
//! | `encoder-tagger` | ner, ner-correct, spans | a head tagging a base encoder's word pieces |
//!
//! `auto` trains every candidate of the task's kind (the encoder ones only when the job names an
//! `encoder`) and keeps the best on the dev split; ties go to the smaller model, listed first.
//! On binary tasks both label students score each label on its own (sigmoid) and learn from the
//! accept/reject decisions only, each on its own label.
//! Encoder students carry `encoder.json` (the base encoder's name and digest) in their artifact;
//! the worker that loads them needs the same base model in its models directory.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use gloss_ml::metrics::Span;
#[cfg(test)]
use gloss_ml::train::StopReason;
use gloss_ml::train::{fit, train, train_decisions, EpochReport, TrainConfig, TrainOutcome};
use gloss_ml::{
    HeadConfig, HeadStudent, HeadTagger, HeadTaggerConfig, TinyConfig, TinyStudent, TinyTagger,
};
use gloss_proto::v1::{EpochMetric, JobSpec, Model, Task};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{target, upload, Context, GoldRecord, Settings, Target};
use crate::model_store;

/// A student kind, as named in `train` jobs and registry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StudentKind {
    Tiny,
    Encoder,
    TinyTagger,
    EncoderTagger,
}

impl StudentKind {
    const ALL: [StudentKind; 4] = [
        StudentKind::Tiny,
        StudentKind::Encoder,
        StudentKind::TinyTagger,
        StudentKind::EncoderTagger,
    ];

    pub fn name(self) -> &'static str {
        match self {
            StudentKind::Tiny => "tiny",
            StudentKind::Encoder => "encoder",
            StudentKind::TinyTagger => "tiny-tagger",
            StudentKind::EncoderTagger => "encoder-tagger",
        }
    }

    pub fn parse(name: &str) -> Result<StudentKind> {
        StudentKind::ALL
            .into_iter()
            .find(|k| k.name() == name)
            .with_context(|| {
                format!(
                    "unknown student kind {name:?} (tiny, encoder, tiny-tagger, encoder-tagger)"
                )
            })
    }

    fn target(self) -> Target {
        match self {
            StudentKind::Tiny | StudentKind::Encoder => Target::Labels { multi: false },
            StudentKind::TinyTagger | StudentKind::EncoderTagger => Target::Entities,
        }
    }

    fn needs_encoder(self) -> bool {
        matches!(self, StudentKind::Encoder | StudentKind::EncoderTagger)
    }

    /// The dev metric a kind is selected by.
    fn dev_metric(self) -> &'static str {
        match self.target() {
            Target::Labels { .. } | Target::Decisions => "gold-dev:accuracy",
            Target::Entities => "gold-dev:span_f1",
        }
    }
}

/// The candidates a job's `student` asks for on a task of `target` (`""` is the tiny one);
/// `has_encoder` says whether the job named a base encoder.
pub fn candidates(student: &str, target: Target, has_encoder: bool) -> Result<Vec<StudentKind>> {
    let entities = target == Target::Entities;
    let (small, large) = if entities {
        (StudentKind::TinyTagger, StudentKind::EncoderTagger)
    } else {
        (StudentKind::Tiny, StudentKind::Encoder)
    };
    let wanted = match student {
        "" => vec![small],
        "auto" if has_encoder => vec![small, large],
        "auto" => vec![small],
        other => vec![StudentKind::parse(other)?],
    };
    for kind in &wanted {
        if (kind.target() == Target::Entities) != entities {
            bail!(
                "student {:?} does not fit this task: choose {}, {} or auto",
                kind.name(),
                small.name(),
                large.name()
            );
        }
        if kind.needs_encoder() && !has_encoder {
            bail!(
                "student {:?} needs a base encoder: name it in the job's config \
                 ({{\"encoder\": \"<models dir entry>\", \"encoder_sha256\": \"...\"}})",
                kind.name()
            );
        }
    }
    Ok(wanted)
}

/// One trained candidate.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub kind: StudentKind,
    pub dev_score: f64,
    pub outcome: TrainOutcome,
    pub dir: PathBuf,
}

impl Candidate {
    fn new(kind: StudentKind, outcome: TrainOutcome, dir: PathBuf) -> Candidate {
        Candidate {
            kind,
            dev_score: outcome.best_dev_score,
            outcome,
            dir,
        }
    }
}

/// The candidate with the best dev score; the earlier one on ties (candidates are listed
/// smallest first).
pub fn pick_best(candidates: &[Candidate]) -> Option<&Candidate> {
    candidates
        .iter()
        .fold(None, |best: Option<&Candidate>, c| match best {
            Some(b) if b.dev_score >= c.dev_score => Some(b),
            _ => Some(c),
        })
}

/// The base encoder an encoder student was trained on, stored in its artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stored {
    pub encoder: String,
    pub encoder_sha256: String,
}

impl Stored {
    const FILE: &'static str = "encoder.json";

    pub fn read(dir: &Path) -> Result<Stored> {
        let path = dir.join(Self::FILE);
        let raw = std::fs::read(&path)
            .with_context(|| format!("the artifact has no {} naming its encoder", Self::FILE))?;
        serde_json::from_slice(&raw).with_context(|| format!("{} is not valid", path.display()))
    }

    fn write(&self, dir: &Path) -> Result<()> {
        std::fs::write(dir.join(Self::FILE), serde_json::to_vec_pretty(self)?)?;
        Ok(())
    }
}

/// A registry student ready to load: its kind, its unpacked directory, the name evaluations are
/// recorded under (`name@version`), and the base encoder it reads (encoder students).
pub struct Fetched {
    pub kind: StudentKind,
    pub dir: PathBuf,
    pub name: String,
    pub encoder: Option<std::sync::Arc<gloss_ml::Encoder>>,
}

impl Fetched {
    /// Downloads `model` (`name[@version]` or `assisting`) for a task of `target`; a student of
    /// the other target is refused with the reason.
    pub fn get(ctx: &Context, task: &Task, model: &str, target: Target) -> Result<Fetched> {
        let (record, dir) = ctx.registry_model(task, model)?;
        let name = format!("{}@{}", record.name, record.version);
        let kind = StudentKind::parse(&record.kind)?;
        let entities = target == Target::Entities;
        if (kind.target() == Target::Entities) != entities {
            bail!(
                "model {name} is a {} student, which {}; {}/{} is {}",
                kind.name(),
                if entities {
                    "classifies texts"
                } else {
                    "tags entities"
                },
                task.project,
                task.name,
                if entities {
                    "an entity task"
                } else {
                    "a label task"
                },
            );
        }
        let encoder = if kind.needs_encoder() {
            let base = Stored::read(&dir)?;
            Some(ctx.encoder(&base.encoder, &base.encoder_sha256, &name)?)
        } else {
            None
        };
        Ok(Fetched {
            kind,
            dir,
            name,
            encoder,
        })
    }

    /// The base encoder of an encoder student.
    pub fn encoder(&self) -> Result<std::sync::Arc<gloss_ml::Encoder>> {
        self.encoder
            .clone()
            .with_context(|| format!("model {} has no base encoder", self.name))
    }
}

/// Trains the candidates the job asks for and uploads the best to the registry.
pub fn train_job(ctx: &Context, task: &Task, settings: &Settings, spec: &JobSpec) -> Result<Value> {
    let target = target(task)?;
    let kinds = candidates(&spec.model, target, !settings.encoder.is_empty())?;
    let (train_set, dev_set) = ctx.train_dev(task)?;
    let dataset_version = ctx.dataset_version(task)?;
    let mut trained = Vec::new();
    for (i, &kind) in kinds.iter().enumerate() {
        ctx.report(
            i as f64 / kinds.len() as f64,
            Vec::new(),
            vec![format!(
                "training the {} student on {} gold records, {} for dev",
                kind.name(),
                train_set.len(),
                dev_set.len()
            )],
        );
        let dir = ctx.work_dir.join(format!("model-{}", kind.name()));
        let share = (i, kinds.len());
        let outcome = train_one(ctx, task, settings, kind, &train_set, &dev_set, &dir, share)?;
        ctx.cancelled()?;
        ctx.report(
            (i + 1) as f64 / kinds.len() as f64 * 0.95,
            Vec::new(),
            vec![format!(
                "{}: best {} {:.4} at epoch {}",
                kind.name(),
                kind.dev_metric(),
                outcome.best_dev_score,
                outcome.best_epoch
            )],
        );
        trained.push(Candidate::new(kind, outcome, dir));
    }
    let best = pick_best(&trained).context("no candidate was trained")?;
    let selection = selection(&spec.model, best, &trained);
    let outcome = &best.outcome;
    let record = Model {
        name: format!("{}/{}/{}", task.project, task.name, best.kind.name()),
        project: task.project.clone(),
        task: task.name.clone(),
        kind: best.kind.name().into(),
        labels: task.labels.clone(),
        job_id: ctx.job.id.clone(),
        training_config: spec.config_json.clone(),
        train_examples: train_set.len() as u64,
        dev_examples: dev_set.len() as u64,
        teacher: settings.teacher.clone(),
        metrics: [(best.kind.dev_metric().to_string(), best.dev_score)].into(),
        dataset_version,
        selection: selection.clone(),
        ..Model::default()
    };
    let stored = upload(ctx, record, &model_store::pack(&best.dir)?)?;
    ctx.report(
        1.0,
        Vec::new(),
        vec![
            selection.clone(),
            format!("stored {} version {}", stored.name, stored.version),
        ],
    );
    Ok(json!({
        "model": stored.name,
        "version": stored.version,
        "kind": best.kind.name(),
        "selection": selection,
        "candidates": trained
            .iter()
            .map(|c| {
                let mut v = json!({"kind": c.kind.name(), c.kind.dev_metric(): c.dev_score});
                if let Some(head) = head_of(c) {
                    v["head"] = json!(head);
                }
                v
            })
            .collect::<Vec<_>>(),
        "artifact_sha256": stored.artifact_sha256,
        "artifact_bytes": stored.artifact_bytes,
        "model_dir": best.dir.display().to_string(),
        "train_examples": train_set.len(),
        "dev_examples": dev_set.len(),
        "best_epoch": outcome.best_epoch,
        best.kind.dev_metric(): best.dev_score,
        "epochs_run": outcome.epochs_run,
    }))
}

/// The numbers of train records a curve's points train on: the asked sizes below `available`
/// (at least 2 each), then all of them, in increasing order.
pub fn curve_sizes(asked: &[usize], available: usize) -> Vec<usize> {
    let mut sizes: Vec<usize> = asked
        .iter()
        .copied()
        .filter(|&n| n >= 2 && n < available)
        .collect();
    sizes.push(available);
    sizes.sort_unstable();
    sizes.dedup();
    sizes
}

/// A learning curve: the student (or `auto`'s best on dev, per point) trained on growing,
/// nested parts of the train split (a seeded shuffle's prefixes), each scored on the test split,
/// beside every evaluated teacher. Nothing is uploaded; the points are the result.
pub fn curve_job(ctx: &Context, task: &Task, settings: &Settings, spec: &JobSpec) -> Result<Value> {
    let target = target(task)?;
    let kinds = candidates(&spec.model, target, !settings.encoder.is_empty())?;
    let (mut train_set, dev_set) = ctx.train_dev(task)?;
    let test = ctx.test_set(task)?;
    gloss_ml::hash::SplitMix64::new(settings.seed).shuffle(&mut train_set);
    let sizes = curve_sizes(&settings.sizes, train_set.len());
    let metric = match target {
        Target::Labels { .. } | Target::Decisions => "gold-test:accuracy",
        Target::Entities => "gold-test:span_f1",
    };
    let steps = sizes.len() * kinds.len();
    let mut points = Vec::new();
    for (i, &n) in sizes.iter().enumerate() {
        let part = &train_set[..n];
        let mut trained = Vec::new();
        for (j, &kind) in kinds.iter().enumerate() {
            let dir = ctx.work_dir.join(format!("curve-{n}-{}", kind.name()));
            let share = (i * kinds.len() + j, steps);
            let outcome = train_one(ctx, task, settings, kind, part, &dev_set, &dir, share)?;
            ctx.cancelled()?;
            trained.push(Candidate::new(kind, outcome, dir));
        }
        let best = pick_best(&trained).context("no candidate was trained")?;
        let student = Fetched {
            kind: best.kind,
            dir: best.dir.clone(),
            name: format!("{} on {n} records", best.kind.name()),
            encoder: if best.kind.needs_encoder() {
                Some(ctx.encoder(&settings.encoder, &settings.encoder_sha256, "curve")?)
            } else {
                None
            },
        };
        let metrics = match target {
            Target::Entities => super::entities::student_metrics(ctx, &student, &test, settings)?,
            _ => super::labels::student_metrics(ctx, task, &student, &test, settings, target)?,
        };
        let score = metrics.get(metric).copied().unwrap_or_default();
        ctx.report(
            (i + 1) as f64 / sizes.len() as f64 * 0.95,
            Vec::new(),
            vec![format!(
                "{n} gold records: {} {metric} {score:.4} (dev {:.4})",
                best.kind.name(),
                best.dev_score
            )],
        );
        points.push(json!({
            "examples": n,
            "kind": best.kind.name(),
            "score": score,
            "dev_score": best.dev_score,
        }));
    }
    let teachers: Vec<Value> = ctx
        .teacher_scores(task, metric)?
        .into_iter()
        .map(|(model, score)| json!({"model": model, "score": score}))
        .collect();
    Ok(json!({
        "metric": metric,
        "student": if spec.model.is_empty() { kinds[0].name() } else { spec.model.as_str() },
        "test_examples": test.len(),
        "dev_examples": dev_set.len(),
        "points": points,
        "teachers": teachers,
    }))
}

/// How the kept student was chosen, for its lineage.
fn selection(asked: &str, best: &Candidate, all: &[Candidate]) -> String {
    let metric = best.kind.dev_metric();
    if asked != "auto" {
        return format!(
            "asked for {} ({metric} {:.4})",
            best.kind.name(),
            best.dev_score
        );
    }
    let others: Vec<String> = all
        .iter()
        .filter(|c| c.kind != best.kind)
        .map(|c| format!("{} ({:.4})", c.kind.name(), c.dev_score))
        .collect();
    if others.is_empty() {
        format!(
            "auto: {} ({metric} {:.4}), the only candidate (no encoder named)",
            best.kind.name(),
            best.dev_score
        )
    } else {
        format!(
            "auto: {} ({metric} {:.4}) over {}",
            best.kind.name(),
            best.dev_score,
            others.join(", ")
        )
    }
}

/// Trains one student of `kind` and saves it in `dir`.
#[allow(clippy::too_many_arguments)]
fn train_one(
    ctx: &Context,
    task: &Task,
    settings: &Settings,
    kind: StudentKind,
    train_set: &[GoldRecord],
    dev_set: &[GoldRecord],
    dir: &Path,
    (index, of): (usize, usize),
) -> Result<TrainOutcome> {
    let target = target(task)?;
    let multi = matches!(target, Target::Labels { multi: true } | Target::Decisions);
    let device = ctx.device();
    let labels = task.labels.clone();
    // Defaults measured in crates/gloss-ml/BENCH.md for each student.
    let (learning_rate, batch_size) = match kind {
        StudentKind::Tiny => (1e-3, settings.batch_size),
        StudentKind::Encoder => (5e-3, settings.batch_size),
        StudentKind::TinyTagger => (3e-3, 16),
        StudentKind::EncoderTagger => (2e-3, 16),
    };
    let config = TrainConfig {
        max_epochs: settings.epochs.max(1),
        patience: settings.patience.max(1),
        seed: settings.seed,
        batch_size: batch_size.max(1),
        learning_rate: settings.learning_rate.unwrap_or(learning_rate),
        ..TrainConfig::default()
    };
    let epochs = config.max_epochs;
    let metric = kind.dev_metric();
    let on_epoch = |r: EpochReport| {
        ctx.report(
            0.95 * (index as f64 + r.epoch as f64 / epochs as f64) / of as f64,
            vec![EpochMetric {
                epoch: r.epoch as u32,
                loss: r.train_loss,
                dev_score: r.dev_score,
            }],
            vec![format!(
                "{} epoch {}: loss {:.4}, {metric} {:.4}",
                kind.name(),
                r.epoch,
                r.train_loss,
                r.dev_score
            )],
        );
    };
    let texts =
        |set: &[GoldRecord]| -> Vec<String> { set.iter().map(|g| g.text.clone()).collect() };
    let label_sets =
        |set: &[GoldRecord]| -> Vec<Vec<usize>> { set.iter().map(|g| g.labels.clone()).collect() };
    let decisions = |set: &[GoldRecord]| -> Vec<Vec<(usize, bool)>> {
        set.iter().map(|g| g.decisions.clone()).collect()
    };
    let spans =
        |set: &[GoldRecord]| -> Vec<Vec<Span>> { set.iter().map(|g| g.spans.clone()).collect() };
    let encoder = || ctx.encoder(&settings.encoder, &settings.encoder_sha256, kind.name());
    let stored = || Stored {
        encoder: settings.encoder.clone(),
        encoder_sha256: settings.encoder_sha256.clone(),
    };
    let outcome = match kind {
        StudentKind::Tiny => {
            let mut c = TinyConfig::new(labels);
            c.multi_label = multi;
            c.seed = settings.seed;
            let model = TinyStudent::new(c, &device)?;
            let outcome = if target == Target::Decisions {
                let train_set = zip(texts(train_set), decisions(train_set));
                let dev_set = zip(texts(dev_set), decisions(dev_set));
                train_decisions(&model, &train_set, &dev_set, &config, &ctx.cancel, on_epoch)?
            } else if multi {
                let train_set = zip(texts(train_set), label_sets(train_set));
                let dev_set = zip(texts(dev_set), label_sets(dev_set));
                train(&model, &train_set, &dev_set, &config, &ctx.cancel, on_epoch)?
            } else {
                let train_set = zip(texts(train_set), first(train_set));
                let dev_set = zip(texts(dev_set), first(dev_set));
                train(&model, &train_set, &dev_set, &config, &ctx.cancel, on_epoch)?
            };
            model.save(dir)?;
            outcome
        }
        StudentKind::Encoder => {
            let encoder = encoder()?;
            let embed = |set: &[GoldRecord]| -> Result<Vec<Vec<f32>>> {
                let t: Vec<&str> = set.iter().map(|g| g.text.as_str()).collect();
                Ok(encoder.embed(&t, 32)?)
            };
            let (train_vecs, dev_vecs) = (embed(train_set)?, embed(dev_set)?);
            // The texts are embedded once; each head width is then a few seconds of training,
            // and the one with the better dev score is kept (the narrower on ties).
            let mut best: Option<(HeadStudent, TrainOutcome)> = None;
            let mut tried = Vec::new();
            for hidden in HEAD_WIDTHS {
                let mut c = HeadConfig::new(labels.clone(), encoder.dim());
                c.multi_label = multi;
                c.hidden = hidden;
                c.seed = settings.seed;
                c.encoder = settings.encoder.clone();
                let model = HeadStudent::new(c, &device)?;
                let outcome = if target == Target::Decisions {
                    let train_set = zip(train_vecs.clone(), decisions(train_set));
                    let dev_set = zip(dev_vecs.clone(), decisions(dev_set));
                    train_decisions(&model, &train_set, &dev_set, &config, &ctx.cancel, on_epoch)?
                } else if multi {
                    let train_set = zip(train_vecs.clone(), label_sets(train_set));
                    let dev_set = zip(dev_vecs.clone(), label_sets(dev_set));
                    train(&model, &train_set, &dev_set, &config, &ctx.cancel, on_epoch)?
                } else {
                    let train_set = zip(train_vecs.clone(), first(train_set));
                    let dev_set = zip(dev_vecs.clone(), first(dev_set));
                    train(&model, &train_set, &dev_set, &config, &ctx.cancel, on_epoch)?
                };
                tried.push(format!(
                    "{} {metric} {:.4}",
                    head_name(hidden),
                    outcome.best_dev_score
                ));
                if best
                    .as_ref()
                    .is_none_or(|(_, b)| outcome.best_dev_score > b.best_dev_score)
                {
                    best = Some((model, outcome));
                }
            }
            let (model, outcome) = best.context("no head width to train")?;
            ctx.report(
                0.95 * (index as f64 + 1.0) / of as f64,
                vec![],
                vec![format!(
                    "encoder head: kept the {} one ({})",
                    head_name(model.config().hidden),
                    tried.join("; ")
                )],
            );
            model.save(dir)?;
            stored().write(dir)?;
            outcome
        }
        StudentKind::TinyTagger => {
            let mut c = TinyConfig::entities(labels);
            c.seed = settings.seed;
            let model = TinyTagger::new(c, &device)?;
            let train_set = zip(texts(train_set), spans(train_set));
            let dev_set = zip(texts(dev_set), spans(dev_set));
            let outcome = fit(&model, &train_set, &dev_set, &config, &ctx.cancel, on_epoch)?;
            model.save(dir)?;
            outcome
        }
        StudentKind::EncoderTagger => {
            let encoder = encoder()?;
            let states = |set: &[GoldRecord]| -> Result<Vec<gloss_ml::TokenStates>> {
                let t: Vec<&str> = set.iter().map(|g| g.text.as_str()).collect();
                Ok(encoder.token_states(&t, 32)?)
            };
            let mut c = HeadTaggerConfig::new(labels, encoder.dim())?;
            c.hidden = 128;
            c.seed = settings.seed;
            c.encoder = settings.encoder.clone();
            let model = HeadTagger::new(c, &device)?;
            let train_set = zip(states(train_set)?, spans(train_set));
            let dev_set = zip(states(dev_set)?, spans(dev_set));
            let outcome = fit(&model, &train_set, &dev_set, &config, &ctx.cancel, on_epoch)?;
            model.save(dir)?;
            stored().write(dir)?;
            outcome
        }
    };
    Ok(outcome)
}

/// Head widths an encoder student tries, narrowest first: a linear head (logistic regression on
/// the sentence embeddings) and one ReLU layer of 64. On a few hundred gold records the linear
/// head often generalises better; on larger or multi-label sets the hidden layer can win, so the
/// dev score decides (crates/gloss-ml/BENCH.md).
const HEAD_WIDTHS: [usize; 2] = [0, 64];

/// The head an encoder candidate kept ("linear" or "hidden-N"), from its stored config.
fn head_of(c: &Candidate) -> Option<String> {
    if c.kind != StudentKind::Encoder {
        return None;
    }
    let raw = std::fs::read(c.dir.join("config.json")).ok()?;
    let config: HeadConfig = serde_json::from_slice(&raw).ok()?;
    Some(head_name(config.hidden))
}

fn head_name(hidden: usize) -> String {
    if hidden == 0 {
        "linear".into()
    } else {
        format!("hidden-{hidden}")
    }
}

fn zip<A, B>(a: Vec<A>, b: Vec<B>) -> Vec<(A, B)> {
    a.into_iter().zip(b).collect()
}

fn first(set: &[GoldRecord]) -> Vec<usize> {
    set.iter().map(|g| g.labels[0]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(kind: StudentKind, dev_score: f64) -> Candidate {
        Candidate {
            kind,
            dev_score,
            outcome: TrainOutcome {
                best_epoch: 1,
                best_dev_score: dev_score,
                epochs_run: 1,
                stop: StopReason::MaxEpochs,
            },
            dir: PathBuf::new(),
        }
    }

    #[test]
    fn auto_keeps_the_best_dev_score_and_the_smaller_model_on_ties() {
        let tiny = candidate(StudentKind::Tiny, 0.81);
        let encoder = candidate(StudentKind::Encoder, 0.88);
        assert_eq!(
            pick_best(&[tiny.clone(), encoder.clone()]).map(|c| c.kind),
            Some(StudentKind::Encoder)
        );
        let better_tiny = candidate(StudentKind::Tiny, 0.93);
        assert_eq!(
            pick_best(&[better_tiny, encoder.clone()]).map(|c| c.kind),
            Some(StudentKind::Tiny)
        );
        let tie = candidate(StudentKind::Tiny, 0.88);
        assert_eq!(
            pick_best(&[tie, encoder]).map(|c| c.kind),
            Some(StudentKind::Tiny)
        );
        assert!(pick_best(&[]).is_none());
    }

    #[test]
    fn candidates_fit_the_task_and_encoders_need_a_base_model() {
        let labels = Target::Labels { multi: false };
        let kinds =
            |s, t, e| candidates(s, t, e).map(|k| k.iter().map(|k| k.name()).collect::<Vec<_>>());
        assert_eq!(kinds("", labels, false).unwrap(), ["tiny"]);
        assert_eq!(kinds("auto", labels, true).unwrap(), ["tiny", "encoder"]);
        assert_eq!(kinds("auto", labels, false).unwrap(), ["tiny"]);
        assert_eq!(
            kinds("auto", Target::Entities, true).unwrap(),
            ["tiny-tagger", "encoder-tagger"]
        );
        assert_eq!(kinds("", Target::Entities, false).unwrap(), ["tiny-tagger"]);
        let wrong = candidates("tiny", Target::Entities, false)
            .unwrap_err()
            .to_string();
        assert!(
            wrong.contains("tiny-tagger, encoder-tagger or auto"),
            "{wrong}"
        );
        let no_encoder = candidates("encoder", labels, false)
            .unwrap_err()
            .to_string();
        assert!(no_encoder.contains("needs a base encoder"), "{no_encoder}");
        assert!(candidates("bert", labels, true).is_err());
    }

    #[test]
    fn curves_stop_at_what_there_is_and_always_end_with_all_of_it() {
        let asked = [100, 250, 500, 1000];
        assert_eq!(curve_sizes(&asked, 700), [100, 250, 500, 700]);
        assert_eq!(curve_sizes(&asked, 1000), [100, 250, 500, 1000]);
        assert_eq!(curve_sizes(&asked, 60), [60]);
        assert_eq!(curve_sizes(&[30, 1, 10, 30], 40), [10, 30, 40]);
    }

    #[test]
    fn selection_names_every_candidate_for_auto() {
        let all = [
            candidate(StudentKind::Tiny, 0.874),
            candidate(StudentKind::Encoder, 0.912),
        ];
        assert_eq!(
            selection("auto", &all[1], &all),
            "auto: encoder (gold-dev:accuracy 0.9120) over tiny (0.8740)"
        );
        assert_eq!(
            selection("tiny", &all[0], &all[..1]),
            "asked for tiny (gold-dev:accuracy 0.8740)"
        );
    }
}
