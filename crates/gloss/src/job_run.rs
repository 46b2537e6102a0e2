//! What a worker does with a job, on the job's own thread (gloss-ml is synchronous): fetch the
//! data from the cluster, run the model code, report progress per epoch, return the result.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context as _, Result};
use gloss_ml::student::tiny::{TinyConfig, TinyStudent};
use gloss_ml::train::{train, TrainConfig};
use gloss_proto::v1::{
    EpochMetric, ExportAnswersRequest, ExportFormat, ExportSelection, GetTaskRequest, Interface,
    Job, JobFinishReport, JobKind, JobProgressReport, Task,
};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc::UnboundedSender;

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
    pub cancel: Arc<AtomicBool>,
    pub reports: UnboundedSender<Progress>,
    pub job: Job,
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

    fn task(&self) -> Result<Task> {
        let spec = self.job.spec.clone().unwrap_or_default();
        let mut tasks = self.client.tasks();
        let req = GetTaskRequest {
            project: spec.project,
            task: spec.task,
        };
        Ok(self.runtime.block_on(tasks.get_task(req))?.into_inner())
    }

    /// The task's gold records as flat JSON objects (the HF export).
    fn gold(&self, task: &Task) -> Result<Vec<Value>> {
        let req = ExportAnswersRequest {
            project: task.project.clone(),
            task: task.name.clone(),
            selection: ExportSelection::Gold as i32,
            format: ExportFormat::Hf as i32,
        };
        let mut buf = Vec::new();
        self.runtime
            .block_on(self.client.export_answers(req, &mut buf, |_, _| {}))?;
        String::from_utf8_lossy(&buf)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .enumerate()
            .map(|(i, l)| serde_json::from_str(l).with_context(|| format!("gold line {}", i + 1)))
            .collect()
    }
}

/// Settings of a train job (`spec.config_json`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct TrainSettings {
    epochs: usize,
    patience: usize,
    seed: u64,
    /// Share of the gold records held out as the dev split (by input hash).
    dev_fraction: f64,
    batch_size: usize,
}

impl Default for TrainSettings {
    fn default() -> Self {
        TrainSettings {
            epochs: 20,
            patience: 3,
            seed: 0,
            dev_fraction: 0.2,
            batch_size: 32,
        }
    }
}

/// Runs the job; the JSON result is stored with the job.
pub fn run(ctx: &Context) -> Result<Value> {
    let spec = ctx.job.spec.clone().unwrap_or_default();
    match spec.kind() {
        JobKind::Train => train_job(ctx, &spec.config_json),
        other => bail!(
            "this worker cannot run {} jobs",
            other
                .as_str_name()
                .trim_start_matches("JOB_KIND_")
                .to_lowercase()
        ),
    }
}

/// A stable split: the dev share of input hashes, whatever order the records come in.
fn is_dev(input_hash: &str, fraction: f64) -> bool {
    let h = u64::from_str_radix(input_hash.get(..16).unwrap_or("0"), 16).unwrap_or(0);
    (h % 10_000) as f64 / 10_000.0 < fraction
}

/// Trains the tiny student (hashed lexical features + CNN) on the task's gold records.
fn train_job(ctx: &Context, config_json: &str) -> Result<Value> {
    let settings: TrainSettings = if config_json.is_empty() {
        TrainSettings::default()
    } else {
        serde_json::from_str(config_json).context("spec.config_json")?
    };
    let task = ctx.task()?;
    if task.interface() != Interface::Choice {
        bail!(
            "train jobs support choice tasks so far; {}/{} is {}",
            task.project,
            task.name,
            task.interface().as_str_name()
        );
    }
    let gold = ctx.gold(&task)?;
    let mut train_set = Vec::new();
    let mut dev_set = Vec::new();
    for g in &gold {
        let (Some(text), Some(label)) = (g["text"].as_str(), g["label"].as_str()) else {
            continue;
        };
        if g["answer"] != "accept" || label.is_empty() {
            continue;
        }
        let Some(idx) = task.labels.iter().position(|l| l == label) else {
            continue;
        };
        let hash = g["input_hash"].as_str().unwrap_or("");
        let item = (text.to_string(), idx);
        if is_dev(hash, settings.dev_fraction) {
            dev_set.push(item);
        } else {
            train_set.push(item);
        }
    }
    if train_set.len() < 2 || dev_set.is_empty() {
        bail!(
            "{}/{} has {} usable gold records ({} train, {} dev): too few to train on",
            task.project,
            task.name,
            train_set.len() + dev_set.len(),
            train_set.len(),
            dev_set.len()
        );
    }
    ctx.report(
        0.0,
        Vec::new(),
        vec![format!(
            "training the tiny student on {} examples, {} held out for dev",
            train_set.len(),
            dev_set.len()
        )],
    );
    let device = gloss_ml::Device::Cpu;
    let model = TinyStudent::new(TinyConfig::new(task.labels.clone()), &device)?;
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
            r.epoch as f64 / epochs as f64,
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
    if ctx.cancel.load(Ordering::SeqCst) {
        bail!("cancelled");
    }
    let dir = ctx.work_dir.join("model");
    model.save(&dir)?;
    Ok(json!({
        "model": "tiny",
        "model_dir": dir.display().to_string(),
        "train_examples": train_set.len(),
        "dev_examples": dev_set.len(),
        "best_epoch": outcome.best_epoch,
        "dev_accuracy": outcome.best_dev_score,
        "epochs_run": outcome.epochs_run,
    }))
}
