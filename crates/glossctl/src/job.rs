//! `glossctl job ...` and `glossctl worker list`: submit, watch and cancel jobs; see workers.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use gloss_client::Client;
use gloss_proto::v1::job_service_client::JobServiceClient;
use gloss_proto::v1::*;
use indicatif::{ProgressBar, ProgressStyle};

use crate::output::{print_list, print_one, Output};
use crate::split;

// Parsed once per run: the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub enum JobCmd {
    /// Queue a job on a task (PROJECT/TASK).
    Submit {
        /// train, evaluate, predict or curve (a learning curve: the student trained on 100, 250,
        /// 500, 1,000 and all gold records, each scored beside the teachers; `glossctl model
        /// curve` prints it).
        kind: String,
        task: String,
        /// evaluate/predict: a registry model NAME[@VERSION], `assisting` (the task's promoted
        /// model) or a teacher: `similarity:<base model>` or `llm:<gguf model>` from the
        /// worker's models directory (with --config '{"sha256": ...}'), or `openai:<name>`, a
        /// server named in the worker's --teachers file. LLM teachers take `prompt` (with
        /// {text} and {labels}; {label} for the yes/no questions of binary and multi-choice
        /// tasks) and `system` in --config.
        #[arg(long, default_value = "")]
        model: String,
        /// train and curve: the student to train: `tiny` or `encoder` (choice, multi-choice and
        /// binary tasks),
        /// `tiny-tagger` or `encoder-tagger` (ner, ner-correct and spans tasks), or `auto`,
        /// which trains each candidate and keeps the best on the dev split. Encoder students
        /// need --config '{"encoder": "<base model>", "encoder_sha256": "..."}' (without it,
        /// `auto` trains the tiny one only). Default: the tiny one.
        #[arg(long)]
        student: Option<String>,
        /// Kind-specific settings as a JSON object, e.g. '{"epochs": 30, "seed": 7}'.
        #[arg(long, default_value = "")]
        config: String,
        /// CPU cores (fractions allowed).
        #[arg(long, default_value_t = 1.0)]
        cpus: f64,
        /// Memory, such as 2GiB.
        #[arg(long, default_value = "512MiB")]
        memory: String,
        #[arg(long, default_value_t = 0)]
        gpus: u32,
        /// GPU memory per GPU, such as 40GiB.
        #[arg(long, default_value = "0")]
        gpu_memory: String,
        /// Required GPU model.
        #[arg(long, default_value = "")]
        gpu_model: String,
        /// Worker labels the job needs, k=v,k=v.
        #[arg(long, value_delimiter = ',')]
        constraint: Vec<String>,
        #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
        priority: i32,
        #[arg(long, default_value_t = 3)]
        max_attempts: u32,
        /// Wait until the job ends, printing its log; exit 1 unless it succeeded.
        #[arg(long)]
        wait: bool,
    },
    /// List jobs, newest first.
    List {
        /// Only these states (queued, placed, running, succeeded, failed, cancelled).
        #[arg(long, value_delimiter = ',')]
        state: Vec<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Show one job with its attempts and metrics.
    Show { id: String },
    /// Print a job's log (--follow keeps printing until it ends).
    Logs {
        id: String,
        #[arg(long, short)]
        follow: bool,
    },
    /// Cancel a job.
    Cancel { id: String },
}

fn parse_bytes(s: &str) -> Result<u64> {
    gloss_core::config::parse_bytes(s).map_err(anyhow::Error::msg)
}

fn parse_state(s: &str) -> Result<i32> {
    JobState::from_str_name(&format!("JOB_STATE_{}", s.trim().to_uppercase()))
        .map(|s| s as i32)
        .with_context(|| format!("unknown job state {s:?}"))
}

fn parse_kind(s: &str) -> Result<JobKind> {
    JobKind::from_str_name(&format!("JOB_KIND_{}", s.trim().to_uppercase()))
        .with_context(|| format!("unknown job kind {s:?}; use predict, train, evaluate or curve"))
}

fn name(state: JobState) -> String {
    state
        .as_str_name()
        .trim_start_matches("JOB_STATE_")
        .to_lowercase()
}

fn jobs_table(out: Output, jobs: &[Job]) -> Result<()> {
    if let Output::Json = out {
        return print_list("gloss.v1.Job", jobs);
    }
    println!(
        "{:<8} {:<8} {:<22} {:<10} {:>7} {:>8} {:<8} ERROR",
        "JOB", "KIND", "TASK", "STATE", "ATTEMPT", "PROGRESS", "WORKER"
    );
    for j in jobs {
        let spec = j.spec.clone().unwrap_or_default();
        println!(
            "{:<8} {:<8} {:<22} {:<10} {:>7} {:>7.0}% {:<8} {}",
            j.id,
            spec.kind()
                .as_str_name()
                .trim_start_matches("JOB_KIND_")
                .to_lowercase(),
            format!("{}/{}", spec.project, spec.task),
            name(j.state()),
            format!("{}/{}", j.attempt, j.max_attempts),
            j.progress * 100.0,
            j.worker_id,
            j.error
        );
    }
    Ok(())
}

fn show(out: Output, j: &Job) -> Result<()> {
    if let Output::Json = out {
        return print_one("gloss.v1.Job", j);
    }
    jobs_table(out, std::slice::from_ref(j))?;
    if !j.result_json.is_empty() {
        println!("result: {}", j.result_json);
    }
    for h in &j.history {
        println!("history: {h}");
    }
    if !j.metrics.is_empty() {
        println!("{:>6} {:>10} {:>10}", "EPOCH", "LOSS", "DEV");
        for m in &j.metrics {
            println!("{:>6} {:>10.4} {:>10.4}", m.epoch, m.loss, m.dev_score);
        }
    }
    Ok(())
}

/// Prints log lines as they come until the job ends; returns its final state. With `bar`, the
/// job's progress is drawn on it (and log lines above it).
async fn follow(
    api: &mut JobServiceClient<gloss_client::Conn>,
    id: &str,
    bar: Option<&ProgressBar>,
) -> Result<Job> {
    let mut after = 0;
    loop {
        let lines = api
            .job_logs(JobLogsRequest {
                id: id.into(),
                after,
            })
            .await?
            .into_inner()
            .lines;
        for l in &lines {
            let line = format!("[attempt {}] {}", l.attempt, l.text);
            match bar {
                Some(b) => b.suspend(|| println!("{line}")),
                None => println!("{line}"),
            }
            after = l.line;
        }
        let job = api
            .get_job(GetJobRequest { id: id.into() })
            .await?
            .into_inner();
        if let Some(b) = bar {
            b.set_position((job.progress.clamp(0.0, 1.0) * BAR_STEPS as f64) as u64);
            b.set_message(progress_line(&job));
        }
        if matches!(
            job.state(),
            JobState::Succeeded | JobState::Failed | JobState::Cancelled
        ) {
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            return Ok(job);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Resolution of the job progress bar.
const BAR_STEPS: u64 = 1000;

/// A bar on standard error for a job being waited on (drawn only on a terminal).
fn job_bar() -> ProgressBar {
    let pb = ProgressBar::new(BAR_STEPS);
    pb.set_style(
        ProgressStyle::with_template("{spinner} [{bar:30}] {percent:>3}% {elapsed} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    pb.enable_steady_tick(Duration::from_millis(200));
    pb
}

/// What the bar says about a job: its state and, while training, the last epoch with its loss
/// and dev score (out of the configured epochs when the job's config names them).
fn progress_line(job: &Job) -> String {
    let mut line = name(job.state()).to_string();
    if let Some(m) = job.metrics.last() {
        let epochs = job
            .spec
            .as_ref()
            .and_then(|s| serde_json::from_str::<serde_json::Value>(&s.config_json).ok())
            .and_then(|c| c.get("epochs").and_then(serde_json::Value::as_u64));
        let of = epochs.map(|e| format!("/{e}")).unwrap_or_default();
        line.push_str(&format!(
            " · epoch {}{of} · loss {:.4} · dev {:.4}",
            m.epoch, m.loss, m.dev_score
        ));
    }
    line
}

pub async fn run(client: &Client, out: Output, cmd: JobCmd) -> Result<()> {
    let mut api = JobServiceClient::new(client.channel());
    match cmd {
        JobCmd::Submit {
            kind,
            task,
            model,
            student,
            config,
            cpus,
            memory,
            gpus,
            gpu_memory,
            gpu_model,
            constraint,
            priority,
            max_attempts,
            wait,
        } => {
            let (project, task) = split(&task)?;
            let mut constraints = std::collections::HashMap::new();
            for c in constraint.iter().filter(|c| !c.is_empty()) {
                let (k, v) = c
                    .split_once('=')
                    .with_context(|| format!("--constraint {c:?} is not KEY=VALUE"))?;
                constraints.insert(k.to_string(), v.to_string());
            }
            if cpus <= 0.0 {
                bail!("--cpus must be above 0");
            }
            let kind = parse_kind(&kind)?;
            let model = match (kind, student) {
                (JobKind::Train, Some(_)) if !model.is_empty() => {
                    bail!("a train job takes --student, not --model")
                }
                (JobKind::Train, Some(student)) => student,
                (_, Some(_)) => {
                    bail!("--student is for train jobs; evaluate and predict take --model")
                }
                (_, None) => model,
            };
            let req = SubmitJobRequest {
                spec: Some(JobSpec {
                    kind: kind as i32,
                    project,
                    task,
                    model,
                    config_json: config,
                }),
                resources: Some(Resources {
                    cpu_millis: (cpus * 1000.0) as u64,
                    memory_bytes: parse_bytes(&memory)?,
                    gpu_count: gpus,
                    gpu_memory_bytes: parse_bytes(&gpu_memory)?,
                    gpu_model,
                }),
                constraints,
                priority,
                max_attempts,
            };
            let job = api.submit_job(req).await?.into_inner();
            if !wait {
                return show(out, &job);
            }
            eprintln!("job {} queued; waiting", job.id);
            let job = follow(&mut api, &job.id, Some(&job_bar())).await?;
            show(out, &job)?;
            if job.state() != JobState::Succeeded {
                bail!("job {} ended {}: {}", job.id, name(job.state()), job.error);
            }
            Ok(())
        }
        JobCmd::List { state, limit } => {
            let states = state
                .iter()
                .map(|s| parse_state(s))
                .collect::<Result<_>>()?;
            let jobs = api
                .list_jobs(ListJobsRequest { states, limit })
                .await?
                .into_inner()
                .jobs;
            jobs_table(out, &jobs)
        }
        JobCmd::Show { id } => show(out, &api.get_job(GetJobRequest { id }).await?.into_inner()),
        JobCmd::Logs { id, follow: true } => follow(&mut api, &id, None).await.map(|_| ()),
        JobCmd::Logs { id, follow: false } => {
            let lines = api
                .job_logs(JobLogsRequest { id, after: 0 })
                .await?
                .into_inner()
                .lines;
            for l in lines {
                println!("[attempt {}] {}", l.attempt, l.text);
            }
            Ok(())
        }
        JobCmd::Cancel { id } => show(
            out,
            &api.cancel_job(CancelJobRequest { id }).await?.into_inner(),
        ),
    }
}

/// `glossctl worker list`.
pub async fn workers(client: &Client, out: Output) -> Result<()> {
    let mut api = JobServiceClient::new(client.channel());
    let workers = api
        .list_workers(ListWorkersRequest {})
        .await?
        .into_inner()
        .workers;
    if let Output::Json = out {
        return print_list("gloss.v1.Worker", &workers);
    }
    println!(
        "{:<6} {:<16} {:>6} {:>9} {:<28} {:<7} JOBS",
        "ID", "NAME", "CPUS", "MEMORY", "GPUS", "STATE"
    );
    for w in workers {
        let gpus: Vec<String> = w
            .gpus
            .iter()
            .map(|g| format!("{}:{}GiB", g.model, g.memory_bytes >> 30))
            .collect();
        println!(
            "{:<6} {:<16} {:>6.1} {:>6}GiB {:<28} {:<7} {}",
            w.id,
            w.name,
            w.cpu_millis as f64 / 1000.0,
            w.memory_bytes >> 30,
            gpus.join(","),
            if w.lost { "lost" } else { "ready" },
            w.jobs.join(",")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_progress_line_shows_the_last_epoch_out_of_the_configured_ones() {
        let mut job = Job {
            spec: Some(JobSpec {
                config_json: r#"{"epochs": 12}"#.into(),
                ..JobSpec::default()
            }),
            ..Job::default()
        };
        job.set_state(JobState::Running);
        assert_eq!(progress_line(&job), "running");
        job.metrics = vec![
            EpochMetric {
                epoch: 1,
                loss: 0.9,
                dev_score: 0.5,
            },
            EpochMetric {
                epoch: 2,
                loss: 0.41234,
                dev_score: 0.75,
            },
        ];
        assert_eq!(
            progress_line(&job),
            "running · epoch 2/12 · loss 0.4123 · dev 0.7500"
        );
        job.spec = None;
        assert_eq!(
            progress_line(&job),
            "running · epoch 2 · loss 0.4123 · dev 0.7500"
        );
    }
}
