//! What a worker does with a job, on the job's own thread (gloss-ml is synchronous): fetch the
//! data from the cluster, run the model code, report progress, return the result.
//!
//! - `train`: the tiny student on a choice task's gold records (train and dev splits), uploaded
//!   to the model registry as `<project>/<task>/tiny`.
//! - `evaluate`: a student (`name[@version]`, `assisting`) or a teacher (`similarity:<base model>`,
//!   an LLM `llm:<name>` or `openai:<name>`, see [`crate::teachers`]) on the gold test split; the
//!   scores are recorded with the task (and the model), an LLM's abstentions counted.
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
use crate::teachers::{LlmTeacher, Outcome, Prompt};

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
    /// The worker's teachers file (`openai:<name>` endpoints), when it has one.
    pub teachers_file: Option<PathBuf>,
    /// Where LLM teachers' answers are cached across jobs.
    pub cache_dir: PathBuf,
    pub cancel: Arc<AtomicBool>,
    pub reports: UnboundedSender<Progress>,
    pub job: Job,
    /// Where the job's models run, chosen once by [`Context::device`].
    pub device: std::sync::OnceLock<gloss_ml::Device>,
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
    /// LLM teachers: the user turn's template (`{text}`, `{labels}`), replacing the default.
    prompt: String,
    /// LLM teachers: the system turn, replacing the default.
    system: String,
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
            prompt: String::new(),
            system: String::new(),
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

    /// The device the job's models run on: the first GPU the job was placed on when this
    /// worker is built with the `cuda` feature and CUDA opens it, the CPU otherwise. The choice
    /// and any fallback are written to the job's log once.
    fn device(&self) -> gloss_ml::Device {
        self.device
            .get_or_init(|| {
                let (device, line) = choose_device(&self.job.gpus);
                if let Some(line) = line {
                    self.report(0.0, Vec::new(), vec![line]);
                }
                device
            })
            .clone()
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

/// The device for a job placed on `gpus` (indices on this worker), and what to log about it.
#[cfg(feature = "cuda")]
fn choose_device(gpus: &[u32]) -> (gloss_ml::Device, Option<String>) {
    let Some(&first) = gpus.first() else {
        return (gloss_ml::Device::Cpu, None);
    };
    match gloss_ml::Device::new_cuda(first as usize) {
        Ok(d) => (d, Some(format!("running on GPU {first} (CUDA)"))),
        Err(e) => (
            gloss_ml::Device::Cpu,
            Some(format!(
                "placed on GPU {first}, but CUDA could not open it ({e}): fell back to the CPU"
            )),
        ),
    }
}

/// The device for a job placed on `gpus` (indices on this worker), and what to log about it.
#[cfg(not(feature = "cuda"))]
fn choose_device(gpus: &[u32]) -> (gloss_ml::Device, Option<String>) {
    let line = (!gpus.is_empty()).then(|| {
        format!(
            "placed on GPU {gpus:?}, but this worker was built without the `cuda` feature: \
             fell back to the CPU"
        )
    });
    (gloss_ml::Device::Cpu, line)
}

/// Runs the job; the JSON result is stored with the job.
pub fn run(ctx: &Context) -> Result<Value> {
    let spec = ctx.job.spec.clone().unwrap_or_default();
    let settings: Settings = if spec.config_json.is_empty() {
        Settings::default()
    } else {
        serde_json::from_str(&spec.config_json).context("spec.config_json")?
    };
    ctx.device();
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
    let model = TinyStudent::new(TinyConfig::new(task.labels.clone()), &ctx.device())?;
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
    Llm(LlmTeacher),
}

/// Scores of each text (`None`: the model abstained), and an LLM teacher's figures.
struct Scored {
    scores: Vec<Option<Vec<f32>>>,
    llm: Option<Value>,
}

impl Classifier {
    fn scores(&self, ctx: &Context, name: &str, texts: &[&str], batch: usize) -> Result<Scored> {
        let all = |v: Vec<Vec<f32>>| Scored {
            scores: v.into_iter().map(Some).collect(),
            llm: None,
        };
        Ok(match self {
            Classifier::Student(s) => all(s.predict(texts, batch)?),
            Classifier::Teacher(t) => all(t
                .classify_many(texts)?
                .into_iter()
                .map(|p| p.probabilities)
                .collect()),
            Classifier::Llm(t) => llm_scores(ctx, name, t, texts)?,
        })
    }
}

/// Runs an LLM teacher over `texts`, logging progress with its rate and ETA every few seconds.
fn llm_scores(ctx: &Context, name: &str, teacher: &LlmTeacher, texts: &[&str]) -> Result<Scored> {
    let started = std::time::Instant::now();
    let last = std::sync::Mutex::new(started);
    let total = texts.len();
    let progress = |done: usize, cached: usize| {
        let Ok(mut last) = last.lock() else { return };
        if done < total && last.elapsed() < std::time::Duration::from_secs(2) {
            return;
        }
        *last = std::time::Instant::now();
        let secs = started.elapsed().as_secs_f64().max(1e-3);
        let rate = done as f64 / secs;
        let eta = if rate > 0.0 {
            (total - done) as f64 / rate
        } else {
            0.0
        };
        ctx.report(
            done as f64 / total.max(1) as f64,
            Vec::new(),
            vec![format!(
                "{name}: {done}/{total} examples, {rate:.1}/s, ETA {eta:.0} s ({cached} from cache)"
            )],
        );
    };
    let run = teacher.classify_all(texts, &ctx.cancel, &progress)?;
    ctx.cancelled()?;
    let asked = (total - run.cached).max(1) as f64;
    let figures = json!({
        "abstained": run.abstained(),
        "malformed": run.malformed(),
        "cached": run.cached,
        "seconds": run.seconds,
        "examples_per_second": total as f64 / run.seconds.max(1e-9),
        "tokens_per_second": run.tokens as f64 / run.seconds.max(1e-9),
        "tokens_per_example": run.tokens as f64 / asked,
        "prompt": {"system": teacher.prompt().system, "template": teacher.prompt().template},
    });
    ctx.report(
        1.0,
        Vec::new(),
        vec![format!(
            "{name}: {total} examples in {:.1} s, {} abstained ({} malformed replies), {} from cache",
            run.seconds,
            run.abstained(),
            run.malformed(),
            run.cached
        )],
    );
    let scores = run
        .outcomes
        .into_iter()
        .map(|o| match o {
            Outcome::Label(_, probabilities) => Some(probabilities),
            Outcome::Abstained | Outcome::Malformed => None,
        })
        .collect();
    Ok(Scored {
        scores,
        llm: Some(figures),
    })
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
    if let Some(name) = model.strip_prefix("llm:") {
        let prompt = Prompt::new(&settings.system, &settings.prompt)?;
        let teacher = LlmTeacher::local(
            &ctx.device(),
            &ctx.models_dir,
            name,
            &settings.sha256,
            prompt,
            &ctx.cache_dir,
            &task.labels,
        )?;
        return Ok((Classifier::Llm(teacher), model.to_string()));
    }
    if let Some(name) = model.strip_prefix("openai:") {
        let prompt = Prompt::new(&settings.system, &settings.prompt)?;
        let teacher = LlmTeacher::remote(
            ctx.teachers_file.as_deref(),
            name,
            prompt,
            &ctx.cache_dir,
            &task.labels,
        )?;
        return Ok((Classifier::Llm(teacher), model.to_string()));
    }
    if let Some(base) = model.strip_prefix("similarity:") {
        let dir = model_store::base_model(&ctx.models_dir, base, &settings.sha256)?;
        let encoder = Arc::new(Encoder::load(&dir, &ctx.device())?);
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
    let student = TinyStudent::load(&dir, &ctx.device())?;
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
    let scored = classifier.scores(ctx, &name, &texts, settings.batch_size.max(1))?;
    ctx.cancelled()?;
    let predicted: Vec<Option<usize>> = scored
        .scores
        .iter()
        .map(|s| s.as_deref().map(argmax))
        .collect();
    let gold: Vec<usize> = test.iter().map(|(_, l)| *l).collect();
    let report =
        gloss_ml::metrics::classification_report_with_abstentions(&task.labels, &gold, &predicted)?;
    let abstained = predicted.iter().filter(|p| p.is_none()).count();
    let mut metrics: std::collections::HashMap<String, f64> = [
        ("gold-test:accuracy".to_string(), report.accuracy),
        ("gold-test:macro_f1".to_string(), report.macro_f1),
    ]
    .into();
    if scored.llm.is_some() {
        metrics.insert(
            "gold-test:abstention_rate".to_string(),
            abstained as f64 / test.len() as f64,
        );
    }
    let evaluation = Evaluation {
        project: task.project.clone(),
        task: task.name.clone(),
        model: name.clone(),
        metrics,
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
    let mut result = json!({
        "model": name,
        "test_examples": test.len(),
        "gold-test:accuracy": report.accuracy,
        "gold-test:macro_f1": report.macro_f1,
    });
    if let Some(llm) = scored.llm {
        result["teacher"] = llm;
    }
    Ok(result)
}

/// Pre-annotates the task's source examples: one suggestion (label and confidence) each.
fn predict_job(ctx: &Context, settings: &Settings, model: &str) -> Result<Value> {
    const BATCH: usize = 64;
    let task = ctx.task()?;
    let (classifier, name) = load(ctx, &task, settings, model)?;
    let mut page_token = String::new();
    let mut done = 0u64;
    let mut abstained = 0u64;
    let mut teacher_runs = Vec::new();
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
            let scored = classifier.scores(ctx, &name, &texts, settings.batch_size.max(1))?;
            teacher_runs.extend(scored.llm);
            let suggestions: Vec<Suggestion> = batch
                .iter()
                .zip(scored.scores)
                .filter_map(|(e, s)| {
                    // An abstention suggests nothing: the example is annotated from scratch.
                    let s = s?;
                    let best = argmax(&s);
                    Some(Suggestion {
                        seq: e.seq,
                        labels: vec![task.labels[best].clone()],
                        score: f64::from(s[best]),
                        source: name.clone(),
                        ..Default::default()
                    })
                })
                .collect();
            abstained += (batch.len() - suggestions.len()) as u64;
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
    let mut result = json!({"model": name, "suggestions": done - abstained, "examples": done});
    if !teacher_runs.is_empty() {
        let sum = |key: &str| -> f64 { teacher_runs.iter().filter_map(|r| r[key].as_f64()).sum() };
        result["teacher"] = json!({
            "abstained": abstained,
            "malformed": sum("malformed"),
            "cached": sum("cached"),
            "seconds": sum("seconds"),
            "examples_per_second": done as f64 / sum("seconds").max(1e-9),
            "prompt": teacher_runs[0]["prompt"],
        });
    }
    Ok(result)
}
