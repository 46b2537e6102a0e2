//! `glossctl model ...`: the registry of trained students, their evaluations and promotion.

use anyhow::{Context, Result};
use clap::Subcommand;
use gloss_client::Client;
use gloss_proto::v1::model_service_client::ModelServiceClient;
use gloss_proto::v1::*;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::output::{print_list, print_one, Output};
use crate::split;

#[derive(Subcommand)]
pub enum ModelCmd {
    /// List model versions (all, or one project's or task's with --task PROJECT/TASK).
    List {
        #[arg(long)]
        task: Option<String>,
    },
    /// Show a model version (NAME or NAME@VERSION; the newest complete version by default).
    Show { model: String },
    /// Make a version its task's assisting model. Allowed only when it beats the teacher on the
    /// gold test split; --force overrides that and is recorded.
    Promote {
        model: String,
        #[arg(long)]
        force: bool,
        /// Who forces it (recorded).
        #[arg(long, default_value = "")]
        by: String,
    },
    /// Export a version's artifact (a tar of config.json and model.safetensors) to -o FILE;
    /// run it with `gloss predict --model DIR` after unpacking.
    Export { model: String },
    /// Evaluations of teachers and students on a task (PROJECT/TASK).
    Evaluations { task: String },
    /// The task's learning curve (PROJECT/TASK): the newest succeeded `curve` job's points,
    /// the student's test score by gold records trained on, beside every evaluated teacher.
    Curve { task: String },
}

fn name_version(s: &str) -> Result<(String, u32)> {
    Ok(match s.rsplit_once('@') {
        Some((n, v)) => (
            n.to_string(),
            v.parse()
                .with_context(|| format!("version in {s:?} is not a number"))?,
        ),
        None => (s.to_string(), 0),
    })
}

fn models_table(out: Output, models: &[Model]) -> Result<()> {
    if let Output::Json = out {
        return print_list("gloss.v1.Model", models);
    }
    println!(
        "{:<32} {:>7} {:<8} {:>9} {:>10} {:<9} METRICS",
        "MODEL", "VERSION", "JOB", "TRAIN/DEV", "BYTES", "STATE"
    );
    for m in models {
        let mut metrics: Vec<String> = m
            .metrics
            .iter()
            .map(|(k, v)| format!("{k}={v:.3}"))
            .collect();
        metrics.sort();
        let state = match (m.complete, m.promoted) {
            (_, true) => "promoted",
            (true, false) => "ready",
            (false, _) => "partial",
        };
        println!(
            "{:<32} {:>7} {:<8} {:>9} {:>10} {:<9} {}",
            m.name,
            m.version,
            m.job_id,
            format!("{}/{}", m.train_examples, m.dev_examples),
            m.artifact_bytes,
            state,
            metrics.join(" ")
        );
    }
    Ok(())
}

pub async fn run(client: &Client, out: Output, to: Option<&str>, cmd: ModelCmd) -> Result<()> {
    let mut api = ModelServiceClient::new(client.channel()).max_decoding_message_size(4 << 20);
    match cmd {
        ModelCmd::List { task } => {
            let (project, task) = match task {
                Some(t) => split(&t)?,
                None => (String::new(), String::new()),
            };
            let models = api
                .list_models(ListModelsRequest { project, task })
                .await?
                .into_inner()
                .models;
            models_table(out, &models)
        }
        ModelCmd::Show { model } => {
            let (name, version) = name_version(&model)?;
            let m = api
                .get_model(GetModelRequest { name, version })
                .await?
                .into_inner();
            if let Output::Json = out {
                return print_one("gloss.v1.Model", &m);
            }
            models_table(out, std::slice::from_ref(&m))?;
            println!("sha256: {}", m.artifact_sha256);
            println!(
                "lineage: task {}/{}, job {}, teacher {:?}, config {}",
                m.project, m.task, m.job_id, m.teacher, m.training_config
            );
            if !m.selection.is_empty() {
                println!("selection: {}", m.selection);
            }
            if !m.promotion_note.is_empty() {
                println!("promotion: {}", m.promotion_note);
            }
            Ok(())
        }
        ModelCmd::Promote { model, force, by } => {
            let (name, version) = name_version(&model)?;
            let m = api
                .promote_model(PromoteModelRequest {
                    name,
                    version,
                    force,
                    by,
                })
                .await?
                .into_inner();
            out.done(&format!(
                "{} version {} promoted: {}",
                m.name, m.version, m.promotion_note
            ))
        }
        ModelCmd::Export { model } => {
            let (name, version) = name_version(&model)?;
            let path = to
                .filter(|p| *p != "-")
                .context("name the output file with -o FILE.tar")?;
            let mut stream = api
                .export_model(GetModelRequest { name, version })
                .await?
                .into_inner();
            let mut file = tokio::fs::File::create(path)
                .await
                .with_context(|| format!("creating {path}"))?;
            let mut hash = Sha256::new();
            let mut record = None;
            while let Some(chunk) = stream.message().await? {
                hash.update(&chunk.data);
                file.write_all(&chunk.data).await?;
                if chunk.model.is_some() {
                    record = chunk.model;
                }
            }
            file.flush().await?;
            let record = record.context("the registry sent no model record")?;
            let digest: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
            anyhow::ensure!(
                digest == record.artifact_sha256,
                "export hashes to {digest}, not {}",
                record.artifact_sha256
            );
            eprintln!(
                "{} version {} -> {path} ({} bytes, sha256 {digest}); unpack it and run: gloss predict --model DIR",
                record.name, record.version, record.artifact_bytes
            );
            Ok(())
        }
        ModelCmd::Evaluations { task } => {
            let (project, task) = split(&task)?;
            let evals = api
                .list_evaluations(ListEvaluationsRequest { project, task })
                .await?
                .into_inner()
                .evaluations;
            if let Output::Json = out {
                return print_list("gloss.v1.Evaluation", &evals);
            }
            println!("{:<40} {:<8} METRICS", "MODEL", "JOB");
            for e in evals {
                let mut metrics: Vec<String> = e
                    .metrics
                    .iter()
                    .map(|(k, v)| format!("{k}={v:.4}"))
                    .collect();
                metrics.sort();
                println!("{:<40} {:<8} {}", e.model, e.job_id, metrics.join(" "));
            }
            Ok(())
        }
        ModelCmd::Curve { task } => curve(client, out, &task).await,
    }
}

/// Prints the newest learning curve of `task`.
async fn curve(client: &Client, out: Output, task: &str) -> Result<()> {
    let (project, name) = split(task)?;
    let jobs = gloss_proto::v1::job_service_client::JobServiceClient::new(client.channel())
        .list_jobs(ListJobsRequest {
            states: vec![JobState::Succeeded as i32],
            limit: 1000,
        })
        .await?
        .into_inner()
        .jobs;
    let Some(job) = jobs.into_iter().find(|j| {
        j.spec
            .as_ref()
            .is_some_and(|s| s.kind() == JobKind::Curve && s.project == project && s.task == name)
    }) else {
        anyhow::bail!(
            "{task} has no learning curve yet: run `glossctl job submit curve {task} --wait`"
        );
    };
    let curve: serde_json::Value = serde_json::from_str(&job.result_json)
        .with_context(|| format!("job {}: the result is not JSON", job.id))?;
    if let Output::Json = out {
        println!("{}", serde_json::to_string_pretty(&curve)?);
        return Ok(());
    }
    let metric = curve["metric"].as_str().unwrap_or("score");
    println!(
        "{task}: {metric} on {} gold test records (job {})",
        curve["test_examples"], job.id
    );
    println!("{:>10}  {:<16} {:>8}", "EXAMPLES", "STUDENT", "SCORE");
    for p in curve["points"].as_array().into_iter().flatten() {
        println!(
            "{:>10}  {:<16} {:>8.4}",
            p["examples"],
            p["kind"].as_str().unwrap_or(""),
            p["score"].as_f64().unwrap_or_default()
        );
    }
    for t in curve["teachers"].as_array().into_iter().flatten() {
        println!(
            "{:>10}  {:<16} {:>8.4}",
            "teacher",
            t["model"].as_str().unwrap_or(""),
            t["score"].as_f64().unwrap_or_default()
        );
    }
    Ok(())
}
