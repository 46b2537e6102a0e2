//! `gloss bench distill`: the distillation loop on a real labelled data set, through jobs.
//!
//! For each set (movie-review polarity, SpamAssassin, WNUT-16 from `fetch-test-data.sh`), a
//! fresh single-node cluster with an embedded worker gets `--gold` records of the set (a seeded
//! shuffle's first ones) as a task whose annotator answers each with the set's own label, so
//! every record is a gold record, split 70/15/15 by input hash as in every job. Then, all as
//! jobs: each teacher is evaluated on the gold test split, each student kind is trained on the
//! train and dev splits and evaluated on the same test split. Label sets also get a classical
//! baseline, TF-IDF + logistic regression (`crates/gloss-ml/scripts/tfidf_baseline.py`,
//! scikit-learn) trained on the same gold train split. One table row per model: its score, its
//! distance to the best teacher, its speed in the evaluate job and its size.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use gloss_client::Client;
use gloss_coordinator::Coordinator;
use gloss_core::config::{Config, Overrides};
use gloss_proto::v1::job_service_client::JobServiceClient;
use gloss_proto::v1::*;
use serde_json::{json, Value};

use super::{connect, with_admin};

/// What `gloss bench distill` runs.
pub struct DistillBench {
    pub sets: Vec<String>,
    pub gold: usize,
    pub data: PathBuf,
    pub models: PathBuf,
    pub llm: String,
    pub epochs: usize,
    pub seed: u64,
    pub max_chars: usize,
    pub baseline_script: PathBuf,
}

/// A set's gold records: label sets carry one label index, entity sets spans.
enum Gold {
    Labels(Vec<String>, Vec<(String, usize)>),
    Entities(Vec<String>, Vec<(String, Vec<gloss_ml::metrics::Span>)>),
}

/// One row of the table.
struct Row {
    set: String,
    model: String,
    role: &'static str,
    score: Option<f64>,
    per_second: Option<f64>,
    bytes: Option<u64>,
    note: String,
}

pub async fn run(b: DistillBench) -> Result<()> {
    let mut rows = Vec::new();
    let mut splits = Vec::new();
    for set in &b.sets {
        let started = Instant::now();
        let (set_rows, split) = one_set(&b, set).await?;
        eprintln!("{set}: {:.0} s", started.elapsed().as_secs_f64());
        rows.extend(set_rows);
        splits.push(format!("{set}: {split}"));
    }
    println!(
        "\n## Distillation through jobs ({} gold records per set)\n",
        b.gold
    );
    println!("Gold splits (train/dev/test): {}.\n", splits.join("; "));
    println!("| set | model | role | score | Δ best teacher | examples/s | size | note |");
    println!("| --- | --- | --- | ---: | ---: | ---: | ---: | --- |");
    for set in &b.sets {
        let best_teacher = rows
            .iter()
            .filter(|r| &r.set == set && r.role == "teacher")
            .filter_map(|r| r.score)
            .fold(None, |m: Option<f64>, s| Some(m.map_or(s, |m| m.max(s))));
        for r in rows.iter().filter(|r| &r.set == set) {
            let delta = match (r.score, best_teacher) {
                (Some(s), Some(t)) if r.role != "teacher" => format!("{:+.1}", 100.0 * (s - t)),
                _ => String::new(),
            };
            println!(
                "| {} | {} | {} | {} | {delta} | {} | {} | {} |",
                r.set,
                r.model,
                r.role,
                r.score.map_or("n/a".into(), |s| format!("{s:.3}")),
                r.per_second.map_or(String::new(), |v| format!("{v:.1}")),
                r.bytes.map_or(String::new(), human_bytes),
                r.note
            );
        }
    }
    Ok(())
}

fn human_bytes(b: u64) -> String {
    if b >= 1 << 20 {
        format!("{:.1} MiB", b as f64 / f64::from(1 << 20))
    } else {
        format!("{:.0} KiB", b as f64 / 1024.0)
    }
}

/// Loads `set` and keeps `n` records of a seeded shuffle.
fn load(b: &DistillBench, set: &str) -> Result<Gold> {
    let pick = |len: usize| -> Vec<usize> {
        let mut order: Vec<usize> = (0..len).collect();
        gloss_ml::hash::SplitMix64::new(b.seed).shuffle(&mut order);
        order.truncate(b.gold);
        order
    };
    Ok(match set {
        "polarity" | "spam" => {
            let ds = if set == "polarity" {
                gloss_ml::data::load_polarity(&b.data.join("polarity/sentences.csv"))?
            } else {
                gloss_ml::data::load_spam_assassin(&b.data.join("spam-assassin"))?
            };
            let chosen = pick(ds.examples.len());
            Gold::Labels(
                ds.labels.clone(),
                chosen.iter().map(|&i| ds.examples[i].clone()).collect(),
            )
        }
        "wnut" => {
            let sentences = gloss_ml::data::load_conll(&b.data.join("wnut16/ner.txt"))?;
            let ds = gloss_ml::data::EntityDataset::from_tagged(&sentences)?;
            let chosen = pick(ds.examples.len());
            Gold::Entities(
                ds.labels.clone(),
                chosen.iter().map(|&i| ds.examples[i].clone()).collect(),
            )
        }
        other => bail!("unknown set {other:?}: polarity, spam or wnut"),
    })
}

/// Label descriptions the similarity teacher compares texts with.
fn descriptions(set: &str, labels: &[String]) -> Vec<String> {
    labels
        .iter()
        .map(|l| match (set, l.as_str()) {
            ("polarity", "negative") => "a negative, critical movie review".into(),
            ("polarity", "positive") => "a positive, enthusiastic movie review".into(),
            ("spam", "ham") => "an ordinary personal or work e-mail".into(),
            ("spam", "spam") => "unsolicited bulk e-mail: an advertisement or a scam".into(),
            _ => l.clone(),
        })
        .collect()
}

/// Runs one set; returns its rows and its gold split sizes.
async fn one_set(b: &DistillBench, set: &str) -> Result<(Vec<Row>, String)> {
    let gold = load(b, set)?;
    let temp = tempfile::tempdir()?;
    let token_file = temp.path().join("join-token");
    std::fs::write(&token_file, "bench-join-token-0123456789")?;
    let any = "127.0.0.1:0".parse().ok();
    let config = Config::resolve(Overrides {
        data_dir: Some(temp.path().join("data")),
        listen: any,
        http: any,
        raft_listen: any,
        join_token_file: Some(token_file),
        ..Overrides::default()
    })?;
    let coordinator = Coordinator::start(&with_admin(config)).await?;
    coordinator.ensure_admin(Duration::from_secs(30)).await?;
    let client = connect(&[coordinator.addrs().grpc.to_string()]).await?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let args = gloss_worker::worker::WorkerArgs {
        coordinator: vec![coordinator.addrs().raft.to_string()],
        join_token_file: None,
        name: Some("bench".into()),
        labels: vec![],
        gpus: None,
        cpus: None,
        memory: None,
        work_dir: temp.path().join("work"),
        tls_dir: None,
        models_dir: b.models.clone(),
        teachers: None,
    };
    let worker = tokio::spawn(async move {
        let mut rx = stopped;
        gloss_worker::worker::run(args, "bench-join-token-0123456789".into(), async move {
            let _ = rx.wait_for(|s| *s).await;
        })
        .await
    });
    let result = seed_and_run(b, set, &gold, &client, temp.path()).await;
    let _ = stop.send(true);
    let _ = worker.await;
    coordinator.shutdown().await?;
    result
}

/// Imports the records, answers each with its gold label, then runs the jobs.
async fn seed_and_run(
    b: &DistillBench,
    set: &str,
    gold: &Gold,
    client: &Client,
    dir: &Path,
) -> Result<(Vec<Row>, String)> {
    client
        .projects()
        .create_project(CreateProjectRequest {
            name: "bench".into(),
            ..Default::default()
        })
        .await?;
    let (labels, texts, interface): (&[String], Vec<&str>, Interface) = match gold {
        Gold::Labels(l, ex) => (
            l,
            ex.iter().map(|(t, _)| t.as_str()).collect(),
            Interface::Choice,
        ),
        Gold::Entities(l, ex) => (
            l,
            ex.iter().map(|(t, _)| t.as_str()).collect(),
            Interface::Ner,
        ),
    };
    let body: String = texts
        .iter()
        .enumerate()
        .map(|(i, t)| format!("{}\n", json!({ "text": t, "i": i })))
        .collect();
    let header = ImportHeader {
        project: "bench".into(),
        dataset: "gold".into(),
        format: ImportFormat::Jsonl as i32,
        create_dataset: true,
        source_name: set.into(),
        ..ImportHeader::default()
    };
    client
        .import(header, std::io::Cursor::new(body.into_bytes()), |_| {})
        .await?;
    let mut task = Task {
        project: "bench".into(),
        name: set.into(),
        labels: labels.to_vec(),
        source_dataset: "gold".into(),
        ..Default::default()
    };
    task.set_interface(interface);
    client
        .tasks()
        .create_task(CreateTaskRequest { task: Some(task) })
        .await?;
    let refused = annotate(client, set, gold).await?;
    if refused > 0 {
        eprintln!("{set}: {refused} gold answers refused (kept out of the gold records)");
    }

    let digest = |name: &str| -> Result<String> {
        gloss_worker::model_store::dir_digest(&b.models.join(name))
            .with_context(|| format!("base model {name} in {}", b.models.display()))
    };
    let minilm = digest("minilm")?;
    let entities = matches!(gold, Gold::Entities(..));
    let metric = if entities {
        "gold-test:span_f1"
    } else {
        "gold-test:accuracy"
    };
    let mut rows = Vec::new();
    let row = |model: &str, role, r: &Value, per_second, bytes, note: String| Row {
        set: set.into(),
        model: model.into(),
        role,
        score: r[metric].as_f64(),
        per_second,
        bytes,
        note,
    };

    // Teachers.
    let mut teachers = vec![(
        format!("llm:{}", b.llm),
        json!({"sha256": digest(&b.llm)?, "max_chars": b.max_chars}),
    )];
    if !entities {
        teachers.insert(
            0,
            (
                "similarity:minilm".to_string(),
                json!({"sha256": minilm, "descriptions": descriptions(set, labels)}),
            ),
        );
    }
    for (model, config) in &teachers {
        let (job, r) = run_job(client, set, JobKind::Evaluate, model, config).await?;
        let llm = &r["teacher"];
        let per_second = llm["examples_per_second"]
            .as_f64()
            .or_else(|| rate(&job, &r));
        let note = if llm.is_null() {
            String::new()
        } else {
            format!(
                "abstained {} of {}; {:.1} tokens/s; texts cut to {} chars",
                llm["abstained"],
                r["test_examples"],
                llm["tokens_per_second"].as_f64().unwrap_or(0.0),
                b.max_chars
            )
        };
        rows.push(row(model, "teacher", &r, per_second, None, note));
    }

    // Students, each trained and evaluated through jobs.
    let kinds: &[&str] = if entities {
        &["tiny-tagger", "encoder-tagger"]
    } else {
        &["tiny", "encoder"]
    };
    let mut split = String::new();
    for kind in kinds {
        let config = json!({"epochs": b.epochs, "patience": 4, "seed": b.seed,
            "encoder": "minilm", "encoder_sha256": minilm});
        let (_, trained) = run_job(client, set, JobKind::Train, kind, &config).await?;
        let version = format!(
            "{}@{}",
            trained["model"].as_str().unwrap_or(""),
            trained["version"]
        );
        let (job, r) = run_job(client, set, JobKind::Evaluate, &version, &json!({})).await?;
        split = format!(
            "{}/{}/{}",
            trained["train_examples"], trained["dev_examples"], r["test_examples"]
        );
        let bytes = trained["artifact_bytes"].as_u64();
        let note = if kind.starts_with("encoder") {
            "head only; reads MiniLM (87 MiB) too".to_string()
        } else {
            String::new()
        };
        rows.push(row(&version, "student", &r, rate(&job, &r), bytes, note));
    }

    // The classical baseline on the same gold train split.
    if !entities {
        rows.push(baseline(b, set, client, labels, dir).await);
    }
    Ok((rows, split))
}

/// Examples per second of an evaluate job, from its start and end.
fn rate(job: &Job, r: &Value) -> Option<f64> {
    let secs = (job.finished_at_ms - job.started_at_ms) as f64 / 1000.0;
    Some(r["test_examples"].as_f64()? / secs.max(1e-3))
}

/// Answers every record of the task as annotator `gold` with its own label or spans; returns
/// how many answers the cluster refused (they are answered `ignore` instead).
async fn annotate(client: &Client, set: &str, gold: &Gold) -> Result<usize> {
    let mut refused = 0;
    loop {
        let next = client
            .feed()
            .next_examples(NextRequest {
                project: "bench".into(),
                task: set.into(),
                annotator: "gold".into(),
                count: 100,
                ..Default::default()
            })
            .await?
            .into_inner()
            .examples;
        if next.is_empty() {
            return Ok(refused);
        }
        for ex in next {
            // Which record it is: the index the import put beside the text.
            let i = serde_json::from_str::<Value>(&ex.record_json)?["i"]
                .as_u64()
                .with_context(|| format!("example {} has no record index", ex.seq))?
                as usize;
            let mut answer = Answer {
                answer_id: format!("gold-{}", ex.seq),
                project: "bench".into(),
                task: set.into(),
                seq: ex.seq,
                annotator: "gold".into(),
                decision: Decision::Accept as i32,
                ..Default::default()
            };
            match gold {
                Gold::Labels(labels, ex) => answer.choices = vec![labels[ex[i].1].clone()],
                Gold::Entities(_, ex) => {
                    answer.spans = ex[i]
                        .1
                        .iter()
                        .map(|s| Span {
                            start: s.start as u32,
                            end: s.end as u32,
                            label: s.label.clone(),
                            ..Default::default()
                        })
                        .collect()
                }
            }
            let mut feed = client.feed();
            let first = feed
                .submit_answer(SubmitRequest {
                    answer: Some(answer.clone()),
                })
                .await;
            if first.is_err() {
                refused += 1;
                answer.decision = Decision::Ignore as i32;
                answer.spans.clear();
                answer.answer_id.push_str("-ignored");
                feed.submit_answer(SubmitRequest {
                    answer: Some(answer),
                })
                .await?;
            }
        }
    }
}

/// Submits a job and waits for it; fails with its error unless it succeeded.
async fn run_job(
    client: &Client,
    set: &str,
    kind: JobKind,
    model: &str,
    config: &Value,
) -> Result<(Job, Value)> {
    let mut jobs = JobServiceClient::new(client.channel());
    let job = jobs
        .submit_job(SubmitJobRequest {
            spec: Some(JobSpec {
                kind: kind as i32,
                project: "bench".into(),
                task: set.into(),
                model: model.into(),
                config_json: config.to_string(),
            }),
            resources: Some(Resources {
                cpu_millis: 1000,
                memory_bytes: 2 << 30,
                ..Default::default()
            }),
            max_attempts: 1,
            ..Default::default()
        })
        .await?
        .into_inner();
    let started = Instant::now();
    eprintln!("{set}: {} {model} ({})…", kind.as_str_name(), job.id);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let job = jobs
            .get_job(GetJobRequest { id: job.id.clone() })
            .await?
            .into_inner();
        match job.state() {
            JobState::Succeeded => {
                eprintln!("{set}:   done in {:.0} s", started.elapsed().as_secs_f64());
                let result = serde_json::from_str(&job.result_json)?;
                return Ok((job, result));
            }
            JobState::Failed | JobState::Cancelled => {
                bail!(
                    "{set}: {} {model} failed: {}",
                    kind.as_str_name(),
                    job.error
                )
            }
            _ => {}
        }
    }
}

/// TF-IDF + logistic regression on the gold train split, scored on the gold test split, by the
/// repository's scikit-learn script; a row saying why when it cannot run.
async fn baseline(
    b: &DistillBench,
    set: &str,
    client: &Client,
    labels: &[String],
    dir: &Path,
) -> Row {
    let mut row = Row {
        set: set.into(),
        model: "TF-IDF + logistic regression".into(),
        role: "baseline",
        score: None,
        per_second: None,
        bytes: None,
        note: String::new(),
    };
    match run_baseline(b, set, client, labels, dir).await {
        Ok((accuracy, note)) => {
            row.score = Some(accuracy);
            row.note = note;
        }
        Err(e) => row.note = format!("not run: {e:#}"),
    }
    row
}

async fn run_baseline(
    b: &DistillBench,
    set: &str,
    client: &Client,
    labels: &[String],
    dir: &Path,
) -> Result<(f64, String)> {
    let mut buf = Vec::new();
    client
        .export_answers(
            ExportAnswersRequest {
                project: "bench".into(),
                task: set.into(),
                selection: ExportSelection::Gold as i32,
                format: ExportFormat::Hf as i32,
            },
            &mut buf,
            |_, _| {},
        )
        .await?;
    let (mut train, mut test) = (String::new(), String::new());
    for line in String::from_utf8(buf)?.lines() {
        let g: Value = serde_json::from_str(line)?;
        if g["answer"] != "accept" || !labels.iter().any(|l| g["label"] == l.as_str()) {
            continue;
        }
        let out = json!({"text": g["text"], "label": g["label"]}).to_string() + "\n";
        match gloss_worker::split_of(g["input_hash"].as_str().unwrap_or("")) {
            gloss_worker::Split::Train => train.push_str(&out),
            gloss_worker::Split::Test => test.push_str(&out),
            gloss_worker::Split::Dev => {}
        }
    }
    let (train_file, test_file) = (dir.join("train.jsonl"), dir.join("test.jsonl"));
    std::fs::write(&train_file, train)?;
    std::fs::write(&test_file, test)?;
    let out = std::process::Command::new("python3")
        .arg(&b.baseline_script)
        .arg(&train_file)
        .arg(&test_file)
        .output()
        .with_context(|| format!("running python3 {}", b.baseline_script.display()))?;
    if !out.status.success() {
        bail!("{}", String::from_utf8_lossy(&out.stderr).trim());
    }
    let r: Value = serde_json::from_slice(&out.stdout)?;
    let accuracy = r["accuracy"]
        .as_f64()
        .context("the script printed no accuracy")?;
    Ok((
        accuracy,
        format!(
            "scikit-learn {}, trained on {} records, C={}",
            r["sklearn"].as_str().unwrap_or("?"),
            r["train_examples"],
            r["C"]
        ),
    ))
}
