//! What a worker does with a job, on the job's own thread (gloss-ml is synchronous): fetch the
//! data from the cluster, run the model code, report progress, return the result.
//!
//! Every interface runs in jobs. Choice, multi-choice and binary tasks are *label* tasks
//! ([`labels`]); `ner`, `ner-correct` and `spans` are *entity* tasks ([`entities`]). A binary
//! task's gold records are accept/reject decisions on one label each: its students score every
//! label independently and learn from the decided labels only.
//!
//! - `train` ([`students`]): a student on the task's gold records (train and dev splits),
//!   uploaded to the model registry as `<project>/<task>/<kind>`. Label tasks: `tiny`, `encoder`
//!   (a head over a base encoder's sentence embeddings) or `auto`; entity tasks: `tiny-tagger`,
//!   `encoder-tagger` or `auto`. `auto` trains every candidate it can and keeps the best on dev.
//! - `evaluate`: a student (`name[@version]`, `assisting`) or a teacher (`similarity:<base
//!   model>` for label tasks, an LLM `llm:<name>` or `openai:<name>` for both, see
//!   [`crate::teachers`]) on the gold test split; the scores (accuracy and macro-F1, or span
//!   precision, recall and F1 per label) are recorded with the task, an LLM's abstentions
//!   counted.
//! - `curve` ([`students`]): the student trained on growing parts of the train split (100, 250,
//!   500, 1,000, all; `sizes` in the config), each scored on the test split beside every
//!   evaluated teacher; the points are the job's result.
//! - `predict`: the same models over the task's source examples; writes suggestions (labels or
//!   spans, with a confidence), which the feed's uncertainty ordering, `ner-correct` and the web
//!   app use.
//!
//! Gold records are split by input hash, the same way everywhere: 70 % train, 15 % dev, 15 % test.

mod entities;
mod labels;
mod llm;
mod students;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context as _, Result};
use gloss_ml::metrics::Span;
use gloss_ml::Encoder;
use gloss_proto::v1::worker_service_client::WorkerServiceClient;
use gloss_proto::v1::{
    ArtifactChunk, EpochMetric, Evaluation, ExportAnswersRequest, ExportFormat, ExportSelection,
    GetModelRequest, GetTaskRequest, Interface, Job, JobFinishReport, JobKind, JobProgressReport,
    ListExamplesRequest, ListModelsRequest, Model, SetSuggestionsRequest, Suggestion, Task,
};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc::UnboundedSender;

use crate::model_store;
use crate::teachers::{Ask, LlmTeacher, Prompt};
use llm::{ask_llm, evaluation_result, llm_totals, run_llm};

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
    /// Encoder students: the base encoder (a directory in the worker's models dir) and its
    /// digest.
    encoder: String,
    encoder_sha256: String,
    /// Learning rate; each student has its own default.
    learning_rate: Option<f64>,
    /// LLM teachers: characters of each text they read (long documents are cut to fit).
    max_chars: usize,
    /// In-process LLM teachers: questions answered in one batch (default: see
    /// [`crate::teachers::default_batch`]).
    llm_batch: Option<usize>,
    /// Curves: the numbers of gold train records to train on (all of them are always added).
    sizes: Vec<usize>,
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
            encoder: String::new(),
            encoder_sha256: String::new(),
            learning_rate: None,
            sizes: vec![100, 250, 500, 1000],
            max_chars: crate::teachers::DEFAULT_MAX_CHARS,
            llm_batch: None,
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

    fn models(
        &self,
    ) -> gloss_proto::v1::model_service_client::ModelServiceClient<gloss_client::Conn> {
        gloss_proto::v1::model_service_client::ModelServiceClient::new(self.client.channel())
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
        target(&task)?;
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

    /// The task's accepted gold records of one split: label indices for label tasks, spans
    /// (code points) for entity tasks.
    fn gold(&self, task: &Task, split: Split) -> Result<Vec<GoldRecord>> {
        let req = ExportAnswersRequest {
            project: task.project.clone(),
            task: task.name.clone(),
            selection: ExportSelection::Gold as i32,
            format: ExportFormat::Hf as i32,
        };
        let mut buf = Vec::new();
        self.runtime
            .block_on(self.client.export_answers(req, &mut buf, |_, _| {}))?;
        let target = target(task)?;
        let mut out = Vec::new();
        let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        for (i, line) in String::from_utf8_lossy(&buf).lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let g: Value =
                serde_json::from_str(line).with_context(|| format!("gold line {}", i + 1))?;
            let (Some(text), Some(hash)) = (g["text"].as_str(), g["input_hash"].as_str()) else {
                continue;
            };
            let decided = match target {
                Target::Decisions => g["answer"] == "accept" || g["answer"] == "reject",
                _ => g["answer"] == "accept",
            };
            if !decided || split_of(hash) != split {
                continue;
            }
            let index = |l: &Value| {
                l.as_str()
                    .and_then(|l| task.labels.iter().position(|t| t == l))
            };
            let record = match target {
                Target::Labels { multi: false } => match index(&g["label"]) {
                    Some(l) => GoldRecord::labels(text, vec![l]),
                    None => continue,
                },
                Target::Labels { multi: true } => {
                    let all = g["labels"].as_array().cloned().unwrap_or_default();
                    GoldRecord::labels(text, all.iter().filter_map(index).collect())
                }
                Target::Decisions => {
                    let Some(label) = index(&g["label"]) else {
                        continue;
                    };
                    let decision = (label, g["answer"] == "accept");
                    // Several labels may be decided on one text: one record per text.
                    if let Some(at) = seen.get(hash) {
                        let record: &mut GoldRecord = &mut out[*at];
                        record.decisions.retain(|(l, _)| *l != label);
                        record.decisions.push(decision);
                        continue;
                    }
                    seen.insert(hash.to_string(), out.len());
                    GoldRecord {
                        decisions: vec![decision],
                        ..GoldRecord::labels(text, Vec::new())
                    }
                }
                Target::Entities => {
                    let spans = g["spans"].as_array().cloned().unwrap_or_default();
                    let spans = spans
                        .iter()
                        .filter(|s| index(&s["label"]).is_some())
                        .filter_map(|s| {
                            Some(Span {
                                start: s["start"].as_u64()? as usize,
                                end: s["end"].as_u64()? as usize,
                                label: s["label"].as_str()?.to_string(),
                            })
                        })
                        .collect();
                    GoldRecord {
                        spans,
                        ..GoldRecord::labels(text, Vec::new())
                    }
                }
            };
            out.push(record);
        }
        Ok(out)
    }

    /// The train and dev splits, refused when too small to train on.
    fn train_dev(&self, task: &Task) -> Result<(Vec<GoldRecord>, Vec<GoldRecord>)> {
        let train_set = self.gold(task, Split::Train)?;
        let dev_set = self.gold(task, Split::Dev)?;
        if train_set.len() < 2 || dev_set.is_empty() {
            bail!(
                "{}/{} has {} usable gold records in the train split and {} in dev: too few to \
                 train on",
                task.project,
                task.name,
                train_set.len(),
                dev_set.len()
            );
        }
        Ok((train_set, dev_set))
    }

    /// The gold test split, refused when empty.
    fn test_set(&self, task: &Task) -> Result<Vec<GoldRecord>> {
        let test = self.gold(task, Split::Test)?;
        if test.is_empty() {
            bail!(
                "{}/{} has no gold records in the test split yet",
                task.project,
                task.name
            );
        }
        Ok(test)
    }

    /// A base encoder from the models directory, digest-checked (`what` names who needs it).
    fn encoder(&self, name: &str, sha256: &str, what: &str) -> Result<Arc<Encoder>> {
        let dir = model_store::base_model(&self.models_dir, name, sha256)
            .with_context(|| format!("{what}: base encoder {name:?}"))?;
        Ok(Arc::new(Encoder::load(&dir, &self.device()).with_context(
            || format!("{what}: loading the encoder in {}", dir.display()),
        )?))
    }

    /// An LLM teacher (`llm:` or `openai:`) asking `ask`, or `None` for other model names.
    fn llm(
        &self,
        task: &Task,
        settings: &Settings,
        model: &str,
        ask: Ask,
    ) -> Result<Option<LlmTeacher>> {
        let prompt = || {
            Prompt::new(ask, &settings.system, &settings.prompt)
                .map(|p| p.with_max_chars(settings.max_chars))
        };
        if let Some(name) = model.strip_prefix("llm:") {
            return Ok(Some(
                LlmTeacher::local(
                    &self.device(),
                    &self.models_dir,
                    name,
                    &settings.sha256,
                    prompt()?,
                    &self.cache_dir,
                    &task.labels,
                )?
                .with_batch(
                    settings
                        .llm_batch
                        .unwrap_or_else(|| crate::teachers::default_batch(ask)),
                ),
            ));
        }
        if let Some(name) = model.strip_prefix("openai:") {
            return Ok(Some(LlmTeacher::remote(
                self.teachers_file.as_deref(),
                name,
                prompt()?,
                &self.cache_dir,
                &task.labels,
            )?));
        }
        Ok(None)
    }

    /// Downloads a registry model (`name[@version]` or `assisting`, the task's promoted one),
    /// checks its digest and unpacks it; returns its record and directory.
    fn registry_model(&self, task: &Task, model: &str) -> Result<(Model, PathBuf)> {
        let (name, version) = match model {
            "assisting" => {
                let req = ListModelsRequest {
                    project: task.project.clone(),
                    task: task.name.clone(),
                };
                let models = self.runtime.block_on(self.models().list_models(req));
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
        let mut rpc = self.rpc();
        let mut stream = self
            .runtime
            .block_on(rpc.download_model(GetModelRequest {
                name: name.clone(),
                version,
            }))
            .with_context(|| format!("downloading model {name}"))?
            .into_inner();
        let mut bytes = Vec::new();
        let mut record = None;
        while let Some(chunk) = self.runtime.block_on(stream.message())? {
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
        if record.labels != task.labels {
            bail!(
                "model {name} was trained on labels {:?}, the task has {:?}",
                record.labels,
                task.labels
            );
        }
        let dir = self
            .work_dir
            .join(format!("{}-v{}", name.replace('/', "_"), record.version));
        model_store::unpack(&bytes, &dir)?;
        Ok((record, dir))
    }

    /// The teachers evaluated on the task (models that are not registry versions) with their
    /// score on `metric`, best first.
    fn teacher_scores(&self, task: &Task, metric: &str) -> Result<Vec<(String, f64)>> {
        let req = gloss_proto::v1::ListEvaluationsRequest {
            project: task.project.clone(),
            task: task.name.clone(),
        };
        let evaluations = self
            .runtime
            .block_on(self.models().list_evaluations(req))?
            .into_inner()
            .evaluations;
        let mut teachers: Vec<(String, f64)> = evaluations
            .into_iter()
            .filter(|e| !e.model.contains('@'))
            .filter_map(|e| Some((e.model.clone(), *e.metrics.get(metric)?)))
            .collect();
        teachers.sort_by(|a, b| b.1.total_cmp(&a.1));
        Ok(teachers)
    }

    /// Records an evaluation of `model` on the task.
    fn record_evaluation(
        &self,
        task: &Task,
        model: &str,
        metrics: std::collections::HashMap<String, f64>,
    ) -> Result<()> {
        let evaluation = Evaluation {
            project: task.project.clone(),
            task: task.name.clone(),
            model: model.to_string(),
            metrics,
            job_id: self.job.id.clone(),
            ..Default::default()
        };
        let mut rpc = self.rpc();
        self.runtime.block_on(rpc.record_evaluation(evaluation))?;
        Ok(())
    }

    /// Every source example of the task, a page at a time, handed to `each` with its
    /// suggestions written back; returns (examples, suggestions written).
    fn suggest_all(
        &self,
        task: &Task,
        what: &str,
        mut each: impl FnMut(&[gloss_proto::v1::Example]) -> Result<Vec<Suggestion>>,
    ) -> Result<(u64, u64)> {
        const BATCH: usize = 64;
        let mut page_token = String::new();
        let (mut done, mut written) = (0u64, 0u64);
        let mut datasets = self.client.datasets();
        loop {
            let req = ListExamplesRequest {
                project: task.project.clone(),
                dataset: task.source_dataset.clone(),
                page_size: 512,
                page_token: page_token.clone(),
            };
            let page = self
                .runtime
                .block_on(datasets.list_examples(req))?
                .into_inner();
            for batch in page.examples.chunks(BATCH) {
                self.cancelled()?;
                let suggestions = each(batch)?;
                written += suggestions.len() as u64;
                let req = SetSuggestionsRequest {
                    project: task.project.clone(),
                    task: task.name.clone(),
                    suggestions,
                };
                self.runtime
                    .block_on(self.client.tasks().set_suggestions(req))?;
                done += batch.len() as u64;
            }
            self.report(
                0.0,
                Vec::new(),
                vec![format!("{done} examples pre-annotated by {what}")],
            );
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
        Ok((done, written))
    }
}

/// What a task's models predict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// One label (choice) or a set of labels (multi-choice) per text.
    Labels { multi: bool },
    /// Accept or reject one label at a time (binary): each label scored on its own.
    Decisions,
    /// Labelled spans (ner, ner-correct, spans).
    Entities,
}

/// The target of `task`'s interface.
fn target(task: &Task) -> Result<Target> {
    Ok(match task.interface() {
        Interface::Choice => Target::Labels { multi: false },
        Interface::MultiChoice => Target::Labels { multi: true },
        Interface::Binary => Target::Decisions,
        Interface::Ner | Interface::NerCorrect | Interface::Spans => Target::Entities,
        Interface::Relations => bail!(
            "{}/{} is a relations task; jobs train, evaluate and predict on binary, choice, \
             multi-choice, ner, ner-correct and spans tasks, not on relations yet",
            task.project,
            task.name
        ),
        Interface::ImageBoxes | Interface::ImageChoice => bail!(
            "{}/{} is an image task; jobs train, evaluate and predict on text tasks only",
            task.project,
            task.name
        ),
        Interface::Unspecified => bail!(
            "{}/{} has no known interface, so no job can run on it",
            task.project,
            task.name
        ),
    })
}

/// One accepted gold record.
#[derive(Debug, Clone)]
pub struct GoldRecord {
    pub text: String,
    /// Label indices (label tasks).
    pub labels: Vec<usize>,
    /// Spans in code points (entity tasks).
    pub spans: Vec<Span>,
    /// Accept (true) or reject decisions on label indices (binary tasks).
    pub decisions: Vec<(usize, bool)>,
}

impl GoldRecord {
    fn labels(text: &str, labels: Vec<usize>) -> GoldRecord {
        GoldRecord {
            text: text.to_string(),
            labels,
            spans: Vec::new(),
            decisions: Vec::new(),
        }
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
    let task = ctx.task()?;
    match (spec.kind(), target(&task)?) {
        (JobKind::Train, _) => students::train_job(ctx, &task, &settings, &spec),
        (JobKind::Curve, _) => students::curve_job(ctx, &task, &settings, &spec),
        (JobKind::Evaluate, Target::Entities) => {
            entities::evaluate_job(ctx, &task, &settings, &spec.model)
        }
        (JobKind::Predict, Target::Entities) => {
            entities::predict_job(ctx, &task, &settings, &spec.model)
        }
        (JobKind::Evaluate, target) => {
            labels::evaluate_job(ctx, &task, &settings, &spec.model, target)
        }
        (JobKind::Predict, target) => {
            labels::predict_job(ctx, &task, &settings, &spec.model, target)
        }
        (JobKind::Unspecified, _) => bail!("the job has no kind"),
    }
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
