//! What a worker does with a job, on the job's own thread (gloss-ml is synchronous): fetch the
//! data from the cluster, run the model code, report progress, return the result.
//!
//! - `train`: the tiny student on a choice task's gold records (train and dev splits), uploaded
//!   to the model registry as `<project>/<task>/tiny`.
//! - `evaluate`: a student (`name[@version]`, `assisting`) or a teacher (`similarity:<base model>`)
//!   on the gold test split; the scores are recorded with the task (and the model).
//! - `predict`: the same models over the task's source examples; writes suggestions with scores,
//!   which the feed's uncertainty ordering and the web app use.
//!
//! Gold records are split by input hash, the same way everywhere: 70 % train, 15 % dev, 15 % test.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context as _, Result};
use gloss_ml::student::tiny::{TinyConfig, TinyStudent};
use gloss_ml::train::{argmax, train, TrainConfig};
use gloss_ml::{Encoder, SimilarityConfig, SimilarityTeacher};
use gloss_proto::v1::worker_service_client::WorkerServiceClient;
use gloss_proto::v1::{
    ArtifactChunk, EpochMetric, Evaluation, ExportAnswersRequest, ExportFormat, ExportSelection,
    GetModelRequest, GetTaskRequest, Interface, Job, JobFinishReport, JobKind, JobProgressReport,
    ListExamplesRequest, ListModelsRequest, Model, SetSuggestionsRequest, Suggestion, Task,
};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc::UnboundedSender;

use crate::model_store;

/// What a job thread sends back to the worker loop.
pub enum Progress {
    Update(JobProgressReport),
    Done(JobFinishReport),
}

/// Everything a job needs.
pub struct Context {
    pub client: gloss_client::Client,
    pub runtime: tokio::runtime::Handle,
    pub work_dir: PathBuf,
    pub models_dir: PathBuf,
    pub cancel: Arc<AtomicBool>,
    pub reports: UnboundedSender<Progress>,
    pub job: Job,
}

/// Which part of a task's gold records an example belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Dev,
    Test,
}

/// The split of an example by its input hash (32 hex digits): 70/15/15, stable everywhere.
pub fn split_of(input_hash: &str) -> Split {
    let h = u64::from_str_radix(input_hash.get(..16).unwrap_or("0"), 16).unwrap_or(0);
    match h % 100 {
        0..=69 => Split::Train,
        70..=84 => Split::Dev,
        _ => Split::Test,
    }
}

/// Settings in `spec.config_json` (each kind reads what it needs).
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Settings {
    epochs: usize,
    patience: usize,
    seed: u64,
    batch_size: usize,
    /// Base model digest (teachers), from `gloss digest DIR`.
    sha256: String,
    /// Label descriptions for the similarity teacher, in label order.
    descriptions: Vec<String>,
    /// Name of the teacher whose suggestions the annotators corrected (lineage).
    teacher: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            epochs: 20,
            patience: 3,
            seed: 0,
            batch_size: 32,
            sha256: String::new(),
            descriptions: Vec::new(),
            teacher: String::new(),
        }
    }
}

impl Context {
    fn report(&self, progress: f64, metrics: Vec<EpochMetric>, log: Vec<String>) {
        let _ = self.reports.send(Progress::Update(JobProgressReport {
            job_id: self.job.id.clone(),
            epoch: self.job.epoch,
            progress,
            metrics,
            log,
            started: false,
        }));
    }

    fn cancelled(&self) -> Result<()> {
        if self.cancel.load(Ordering::SeqCst) {
            bail!("cancelled");
        }
        Ok(())
    }

    fn rpc(&self) -> WorkerServiceClient<gloss_client::Conn> {
        WorkerServiceClient::new(self.client.channel()).max_decoding_message_size(4 << 20)
    }

    fn task(&self) -> Result<Task> {
        let spec = self.job.spec.clone().unwrap_or_default();
        let req = GetTaskRequest {
            project: spec.project,
            task: spec.task,
        };
        let task = self
            .runtime
            .block_on(self.client.tasks().get_task(req))?
            .into_inner();
        if task.interface() != Interface::Choice {
            bail!(
                "jobs support choice tasks so far; {}/{} is {}",
                task.project,
                task.name,
                task.interface().as_str_name()
            );
        }
        Ok(task)
    }

    /// What identifies the data at this moment: the source dataset's imports and examples and
    /// the task's gold records.
    fn dataset_version(&self, task: &Task) -> Result<String> {
        let mut datasets = self.client.datasets();
        let get = |name: &str| gloss_proto::v1::GetDatasetRequest {
            project: task.project.clone(),
            name: name.to_string(),
        };
        let source = self
            .runtime
            .block_on(datasets.get_dataset(get(&task.source_dataset)))?
            .into_inner();
        let gold = self
            .runtime
            .block_on(datasets.get_dataset(get(&task.gold_dataset)))?
            .into_inner();
        Ok(format!(
            "{}/{} imports={} examples={}; gold={}",
            source.project,
            source.name,
            source.import_count,
            source.example_count,
            gold.example_count
        ))
    }

    /// The task's accepted gold records of one split, as (text, label index).
    fn gold(&self, task: &Task, split: Split) -> Result<Vec<(String, usize)>> {
        let req = ExportAnswersRequest {
            project: task.project.clone(),
            task: task.name.clone(),
            selection: ExportSelection::Gold as i32,
            format: ExportFormat::Hf as i32,
        };
        let mut buf = Vec::new();
        self.runtime
            .block_on(self.client.export_answers(req, &mut buf, |_, _| {}))?;
        let mut out = Vec::new();
        for (i, line) in String::from_utf8_lossy(&buf).lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let g: Value =
                serde_json::from_str(line).with_context(|| format!("gold line {}", i + 1))?;
            let (Some(text), Some(label), Some(hash)) = (
                g["text"].as_str(),
                g["label"].as_str(),
                g["input_hash"].as_str(),
            ) else {
                continue;
            };
            if g["answer"] != "accept" || split_of(hash) != split {
                continue;
            }
            if let Some(idx) = task.labels.iter().position(|l| l == label) {
                out.push((text.to_string(), idx));
            }
        }
        Ok(out)
    }
}

/// Runs the job; the JSON result is stored with the job.
pub fn run(ctx: &Context) -> Result<Value> {
    let spec = ctx.job.spec.clone().unwrap_or_default();
    let settings: Settings = if spec.config_json.is_empty() {
        Settings::default()
    } else {
        serde_json::from_str(&spec.config_json).context("spec.config_json")?
    };
    match spec.kind() {
        JobKind::Train => train_job(ctx, &settings, &spec.config_json),
        JobKind::Evaluate => evaluate_job(ctx, &settings, &spec.model),
        JobKind::Predict => predict_job(ctx, &settings, &spec.model),
        JobKind::Unspecified => bail!("the job has no kind"),
    }
}

/// Trains the tiny student (hashed lexical features + CNN) and uploads it to the registry.
fn train_job(ctx: &Context, settings: &Settings, config_json: &str) -> Result<Value> {
    let task = ctx.task()?;
    let train_set = ctx.gold(&task, Split::Train)?;
    let dev_set = ctx.gold(&task, Split::Dev)?;
    if train_set.len() < 2 || dev_set.is_empty() {
        bail!(
            "{}/{} has {} usable gold records in the train split and {} in dev: too few to train on",
            task.project,
            task.name,
            train_set.len(),
            dev_set.len()
        );
    }
    ctx.report(
        0.0,
        Vec::new(),
        vec![format!(
            "training the tiny student on {} gold records, {} for dev",
            train_set.len(),
            dev_set.len()
        )],
    );
    let dataset_version = ctx.dataset_version(&task)?;
    let model = TinyStudent::new(TinyConfig::new(task.labels.clone()), &gloss_ml::Device::Cpu)?;
    let config = TrainConfig {
        max_epochs: settings.epochs.max(1),
        patience: settings.patience.max(1),
        seed: settings.seed,
        batch_size: settings.batch_size.max(1),
        ..TrainConfig::default()
    };
    let epochs = config.max_epochs;
    let outcome = train(&model, &train_set, &dev_set, &config, &ctx.cancel, |r| {
        ctx.report(
            0.95 * r.epoch as f64 / epochs as f64,
            vec![EpochMetric {
                epoch: r.epoch as u32,
                loss: r.train_loss,
                dev_score: r.dev_score,
            }],
            vec![format!(
                "epoch {}: loss {:.4}, dev accuracy {:.4}",
                r.epoch, r.train_loss, r.dev_score
            )],
        );
    })?;
    ctx.cancelled()?;
    let dir = ctx.work_dir.join("model");
    model.save(&dir)?;
    let record = Model {
        name: format!("{}/{}/tiny", task.project, task.name),
        project: task.project.clone(),
        task: task.name.clone(),
        kind: "tiny".into(),
        labels: task.labels.clone(),
        job_id: ctx.job.id.clone(),
        training_config: config_json.to_string(),
        train_examples: train_set.len() as u64,
        dev_examples: dev_set.len() as u64,
        teacher: settings.teacher.clone(),
        metrics: [("gold-dev:accuracy".to_string(), outcome.best_dev_score)].into(),
        dataset_version,
        ..Model::default()
    };
    let stored = upload(ctx, record, &model_store::pack(&dir)?)?;
    ctx.report(
        1.0,
        Vec::new(),
        vec![format!("stored {} version {}", stored.name, stored.version)],
    );
    Ok(json!({
        "model": stored.name,
        "version": stored.version,
        "artifact_sha256": stored.artifact_sha256,
        "artifact_bytes": stored.artifact_bytes,
        "model_dir": dir.display().to_string(),
        "train_examples": train_set.len(),
        "dev_examples": dev_set.len(),
        "best_epoch": outcome.best_epoch,
        "dev_accuracy": outcome.best_dev_score,
        "epochs_run": outcome.epochs_run,
    }))
}

/// Sends an artifact to the registry in 1 MiB chunks with its digest.
fn upload(ctx: &Context, mut record: Model, bytes: &[u8]) -> Result<Model> {
    const CHUNK: usize = 1 << 20;
    record.artifact_sha256 = model_store::hex(&Sha256::digest(bytes));
    record.artifact_bytes = bytes.len() as u64;
    record.chunks = bytes.len().div_ceil(CHUNK).max(1) as u32;
    let chunks: Vec<ArtifactChunk> = bytes
        .chunks(CHUNK)
        .enumerate()
        .map(|(i, data)| ArtifactChunk {
            model: (i == 0).then(|| record.clone()),
            index: i as u32,
            data: data.to_vec(),
        })
        .collect();
    let mut rpc = ctx.rpc();
    let stored = ctx
        .runtime
        .block_on(rpc.upload_model(futures::stream::iter(chunks)))
        .context("uploading the model")?
        .into_inner();
    Ok(stored)
}

/// A model that scores texts over the task's labels.
enum Classifier {
    Student(TinyStudent),
    Teacher(SimilarityTeacher),
}

impl Classifier {
    fn scores(&self, texts: &[&str], batch: usize) -> Result<Vec<Vec<f32>>> {
        Ok(match self {
            Classifier::Student(s) => s.predict(texts, batch)?,
            Classifier::Teacher(t) => t
                .classify_many(texts)?
                .into_iter()
                .map(|p| p.probabilities)
                .collect(),
        })
    }
}

/// Loads `model` for `task`: `similarity:<base model>` (a teacher from the models directory,
/// digest-checked), `assisting` (the task's promoted student), or a registry `name[@version]`.
/// Returns it with the name evaluations are recorded under.
fn load(
    ctx: &Context,
    task: &Task,
    settings: &Settings,
    model: &str,
) -> Result<(Classifier, String)> {
    if let Some(base) = model.strip_prefix("similarity:") {
        let dir = model_store::base_model(&ctx.models_dir, base, &settings.sha256)?;
        let encoder = Arc::new(Encoder::load(&dir, &gloss_ml::Device::Cpu)?);
        let mut config = SimilarityConfig::new(task.labels.clone());
        if !settings.descriptions.is_empty() {
            config = config.with_descriptions(settings.descriptions.clone());
        }
        return Ok((
            Classifier::Teacher(SimilarityTeacher::new(encoder, config)?),
            model.to_string(),
        ));
    }
    let (name, version) = match model {
        "assisting" => {
            let req = ListModelsRequest {
                project: task.project.clone(),
                task: task.name.clone(),
            };
            let models = ctx.runtime.block_on(
                gloss_proto::v1::model_service_client::ModelServiceClient::new(
                    ctx.client.channel(),
                )
                .list_models(req),
            );
            let promoted = models
                .ok()
                .and_then(|m| m.into_inner().models.into_iter().find(|m| m.promoted));
            match promoted {
                Some(m) => (m.name, m.version),
                None => bail!("{}/{} has no promoted model yet", task.project, task.name),
            }
        }
        other => match other.rsplit_once('@') {
            Some((n, v)) => (
                n.to_string(),
                v.parse()
                    .with_context(|| format!("model version in {other:?}"))?,
            ),
            None => (other.to_string(), 0),
        },
    };
    let mut rpc = ctx.rpc();
    let mut stream = ctx
        .runtime
        .block_on(rpc.download_model(GetModelRequest {
            name: name.clone(),
            version,
        }))
        .with_context(|| format!("downloading model {name}"))?
        .into_inner();
    let mut bytes = Vec::new();
    let mut record = None;
    while let Some(chunk) = ctx.runtime.block_on(stream.message())? {
        if chunk.model.is_some() {
            record = chunk.model;
        }
        bytes.extend_from_slice(&chunk.data);
    }
    let record = record.context("the registry sent no model record")?;
    let digest = model_store::hex(&Sha256::digest(&bytes));
    if digest != record.artifact_sha256 {
        bail!(
            "model {name} version {}: download hashes to {digest}, not {}",
            record.version,
            record.artifact_sha256
        );
    }
    let dir = ctx
        .work_dir
        .join(format!("{}-v{}", name.replace('/', "_"), record.version));
    model_store::unpack(&bytes, &dir)?;
    let student = TinyStudent::load(&dir, &gloss_ml::Device::Cpu)?;
    if student.labels() != task.labels.as_slice() {
        bail!(
            "model {name} was trained on labels {:?}, the task has {:?}",
            student.labels(),
            task.labels
        );
    }
    Ok((
        Classifier::Student(student),
        format!("{name}@{}", record.version),
    ))
}

/// Scores a teacher or student on the gold test split and records the result.
fn evaluate_job(ctx: &Context, settings: &Settings, model: &str) -> Result<Value> {
    let task = ctx.task()?;
    let test = ctx.gold(&task, Split::Test)?;
    if test.is_empty() {
        bail!(
            "{}/{} has no gold records in the test split yet",
            task.project,
            task.name
        );
    }
    let (classifier, name) = load(ctx, &task, settings, model)?;
    ctx.report(
        0.1,
        Vec::new(),
        vec![format!(
            "evaluating {name} on {} gold test records",
            test.len()
        )],
    );
    let texts: Vec<&str> = test.iter().map(|(t, _)| t.as_str()).collect();
    let scores = classifier.scores(&texts, settings.batch_size.max(1))?;
    ctx.cancelled()?;
    let predicted: Vec<usize> = scores.iter().map(|s| argmax(s)).collect();
    let gold: Vec<usize> = test.iter().map(|(_, l)| *l).collect();
    let report = gloss_ml::metrics::classification_report(&task.labels, &gold, &predicted)?;
    let evaluation = Evaluation {
        project: task.project.clone(),
        task: task.name.clone(),
        model: name.clone(),
        metrics: [
            ("gold-test:accuracy".to_string(), report.accuracy),
            ("gold-test:macro_f1".to_string(), report.macro_f1),
        ]
        .into(),
        job_id: ctx.job.id.clone(),
        ..Default::default()
    };
    let mut rpc = ctx.rpc();
    ctx.runtime.block_on(rpc.record_evaluation(evaluation))?;
    ctx.report(
        1.0,
        Vec::new(),
        vec![format!(
            "{name}: accuracy {:.4}, macro-F1 {:.4}",
            report.accuracy, report.macro_f1
        )],
    );
    Ok(json!({
        "model": name,
        "test_examples": test.len(),
        "gold-test:accuracy": report.accuracy,
        "gold-test:macro_f1": report.macro_f1,
    }))
}

/// Pre-annotates the task's source examples: one suggestion (label and confidence) each.
fn predict_job(ctx: &Context, settings: &Settings, model: &str) -> Result<Value> {
    const BATCH: usize = 64;
    let task = ctx.task()?;
    let (classifier, name) = load(ctx, &task, settings, model)?;
    let mut page_token = String::new();
    let mut done = 0u64;
    let mut datasets = ctx.client.datasets();
    loop {
        let req = ListExamplesRequest {
            project: task.project.clone(),
            dataset: task.source_dataset.clone(),
            page_size: 512,
            page_token: page_token.clone(),
        };
        let page = ctx
            .runtime
            .block_on(datasets.list_examples(req))?
            .into_inner();
        for batch in page.examples.chunks(BATCH) {
            ctx.cancelled()?;
            let texts: Vec<&str> = batch.iter().map(|e| e.text.as_str()).collect();
            let scores = classifier.scores(&texts, settings.batch_size.max(1))?;
            let suggestions = batch
                .iter()
                .zip(scores)
                .map(|(e, s)| {
                    let best = argmax(&s);
                    Suggestion {
                        seq: e.seq,
                        labels: vec![task.labels[best].clone()],
                        score: f64::from(s[best]),
                        source: name.clone(),
                        ..Default::default()
                    }
                })
                .collect();
            let req = SetSuggestionsRequest {
                project: task.project.clone(),
                task: task.name.clone(),
                suggestions,
            };
            ctx.runtime
                .block_on(ctx.client.tasks().set_suggestions(req))?;
            done += batch.len() as u64;
        }
        ctx.report(
            0.0,
            Vec::new(),
            vec![format!("{done} examples pre-annotated by {name}")],
        );
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    Ok(json!({"model": name, "suggestions": done}))
}
