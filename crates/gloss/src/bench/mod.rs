//! Benchmarks that print tables:
//! - `gloss bench import`: imports generated examples into a fresh single-node coordinator over
//!   loopback gRPC (fsync on every Raft append), exports them back;
//! - `gloss bench raft`: replicated writes through a 3-node group (and a single node) on loopback
//!   at several client concurrencies, beside a plain RocksDB fsync write loop, the physical floor;
//! - `gloss bench feed`: simulated annotators against a task (see [`feed`]);
//! - `gloss bench snapshot`: a new member catching up by snapshot (see [`snapshot`]);
//! - `gloss bench distill`: teachers, students and a classical baseline on real labelled data,
//!   all through jobs (see [`distill`]).

mod distill;
mod feed;
mod snapshot;

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Subcommand;
use gloss_client::Client;
use gloss_coordinator::Coordinator;
use gloss_core::config::{Config, Overrides};
use gloss_proto::v1::{ImportFormat, ImportHeader};

#[derive(Subcommand)]
pub enum BenchCmd {
    /// A new member with an empty disk catches up by snapshot: state size, snapshot size,
    /// catch-up time and peak memory growth, per state size.
    Snapshot {
        /// State sizes to try, in MiB of imported text, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "25,100")]
        sizes_mb: Vec<u64>,
    },
    /// Import N generated examples (~200 bytes of text each), then export them.
    Import {
        /// Number of examples.
        #[arg(long, default_value_t = 1_000_000)]
        examples: u64,
        /// Data directory to use (default: a temporary directory, removed afterwards).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Examples per replicated batch.
        #[arg(long, default_value_t = 2_000)]
        batch: usize,
    },
    /// Simulated annotators against a task: next/submit latency, answers/s, answer export.
    Feed {
        /// Examples in the task's source dataset.
        #[arg(long, default_value_t = 1_000_000)]
        examples: u64,
        /// Concurrent simulated annotators.
        #[arg(long, default_value_t = 100)]
        annotators: usize,
        /// Examples each annotator holds (current view plus prefetch).
        #[arg(long, default_value_t = 3)]
        prefetch: u32,
        /// Seconds of measured annotation per group.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        /// Answers to export after the measured span: those the feed did not reach are added by
        /// the answer import, on examples the feed never handed out; then the export is timed.
        #[arg(long, default_value_t = 0)]
        answers: u64,
        /// Group sizes to run against, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "1,3")]
        nodes: Vec<u64>,
        /// Milliseconds each annotator looks at an example before answering (0: as fast as the
        /// cluster answers, which measures saturation rather than an annotator's wait).
        #[arg(long, default_value_t = 0)]
        think_ms: u64,
        /// Run each coordinator as its own `gloss coordinator` process and report each node's
        /// peak memory (the stage breakdown needs the coordinators in this process, so it is
        /// left out).
        #[arg(long)]
        processes: bool,
    },
    /// Teachers, students and a TF-IDF baseline on real labelled data sets, through jobs on a
    /// fresh single-node cluster with an embedded worker: one row per model with its test score,
    /// its distance to the best teacher, its speed and its size.
    Distill {
        /// Sets to run, comma-separated: polarity, spam, wnut.
        #[arg(long, value_delimiter = ',', default_value = "polarity,spam,wnut")]
        sets: Vec<String>,
        /// Gold records per set (split 70/15/15 by input hash).
        #[arg(long, default_value_t = 1000)]
        gold: usize,
        /// Where `crates/gloss-ml/scripts/fetch-test-data.sh` put the data sets.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Models directory holding `minilm/` and the LLM teacher's directory
        /// (`crates/gloss-ml/scripts/fetch-test-models.sh`).
        #[arg(long)]
        models: Option<PathBuf>,
        /// The LLM teacher: a directory in the models directory with one GGUF file.
        #[arg(long, default_value = "smollm2")]
        llm: String,
        /// Characters of each text the LLM teacher reads.
        #[arg(long, default_value_t = 1500)]
        max_chars: usize,
        /// Most epochs per student.
        #[arg(long, default_value_t = 20)]
        epochs: usize,
        /// Seeds the choice of gold records and training.
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// The TF-IDF baseline script (scikit-learn).
        #[arg(long, default_value = "crates/gloss-ml/scripts/tfidf_baseline.py")]
        baseline_script: PathBuf,
    },
    /// Replicated write throughput and latency at 1, 16, 64 and 256 concurrent clients.
    Raft {
        /// Seconds per measurement.
        #[arg(long, default_value_t = 3)]
        seconds: u64,
    },
}

const WORDS: &[&str] = &[
    "annotation",
    "model",
    "river",
    "market",
    "quiet",
    "signal",
    "harbour",
    "report",
    "engine",
    "garden",
    "winter",
    "council",
    "rapid",
    "museum",
    "ledger",
    "patient",
    "orbit",
    "violet",
    "bridge",
    "sample",
    "forest",
    "lantern",
    "thunder",
    "copper",
    "meadow",
    "station",
    "teacher",
    "student",
    "gold",
    "review",
];

/// Writes `n` JSONL records with unique ~200-byte texts.
pub(crate) fn generate(path: &std::path::Path, n: u64) -> Result<u64> {
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut text = String::with_capacity(256);
    for i in 0..n {
        text.clear();
        text.push_str(&format!("Example {i}:"));
        while text.len() < 195 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            text.push(' ');
            text.push_str(WORDS[(state % WORDS.len() as u64) as usize]);
        }
        writeln!(out, "{{\"text\":\"{text}.\",\"meta\":{{\"n\":{i}}}}}")?;
    }
    out.flush()?;
    Ok(std::fs::metadata(path)?.len())
}

pub(crate) fn peak_rss_mib() -> f64 {
    peak_rss_mib_of("/proc/self/status")
}

/// Peak resident memory (VmHWM) in MiB from a `/proc/PID/status` file.
pub(crate) fn peak_rss_mib_of(status_file: &str) -> f64 {
    rss_mib_of(status_file, "VmHWM:")
}

/// A memory line (`VmHWM:`, `VmRSS:`) of a `/proc/PID/status` file, in MiB.
pub(crate) fn rss_mib_of(status_file: &str, field: &str) -> f64 {
    let status = std::fs::read_to_string(status_file).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

pub async fn run(cmd: BenchCmd) -> Result<()> {
    match cmd {
        BenchCmd::Import {
            examples,
            dir,
            batch,
        } => import(examples, dir, batch).await,
        BenchCmd::Raft { seconds } => raft(Duration::from_secs(seconds)).await,
        BenchCmd::Snapshot { sizes_mb } => snapshot::run(&sizes_mb).await,
        BenchCmd::Distill {
            sets,
            gold,
            data,
            models,
            llm,
            max_chars,
            epochs,
            seed,
            baseline_script,
        } => {
            let home = PathBuf::from(std::env::var_os("HOME").unwrap_or_default());
            distill::run(distill::DistillBench {
                sets,
                gold,
                data: data.unwrap_or_else(|| home.join(".cache/gloss-test-data")),
                models: models.unwrap_or_else(|| home.join(".cache/gloss-test-models")),
                llm,
                epochs,
                seed,
                max_chars,
                baseline_script,
            })
            .await
        }
        BenchCmd::Feed {
            examples,
            annotators,
            prefetch,
            seconds,
            answers,
            nodes,
            think_ms,
            processes,
        } => {
            feed::run(feed::FeedBench {
                examples,
                annotators,
                prefetch,
                span: Duration::from_secs(seconds),
                answers,
                groups: nodes,
                think: Duration::from_millis(think_ms),
                processes,
            })
            .await
        }
    }
}

async fn import(examples: u64, dir: Option<PathBuf>, batch: usize) -> Result<()> {
    let temp = tempfile::tempdir()?;
    let data_dir = dir.unwrap_or_else(|| temp.path().join("data"));
    let input = temp.path().join("input.jsonl");
    eprintln!("generating {examples} examples…");
    let input_bytes = generate(&input, examples)?;
    let any = "127.0.0.1:0".parse().ok();
    let config = Config::resolve(Overrides {
        data_dir: Some(data_dir.clone()),
        listen: any,
        http: any,
        raft_listen: any,
        import_batch: Some(batch),
        ..Overrides::default()
    })?;
    let coordinator = Coordinator::start(&with_admin(config)).await?;
    coordinator
        .ensure_admin(std::time::Duration::from_secs(30))
        .await?;
    let client = connect(&[coordinator.addrs().grpc.to_string()]).await?;
    client
        .projects()
        .create_project(gloss_proto::v1::CreateProjectRequest {
            name: "bench".into(),
            ..Default::default()
        })
        .await?;
    let header = ImportHeader {
        project: "bench".into(),
        dataset: "generated".into(),
        format: ImportFormat::Jsonl as i32,
        create_dataset: true,
        ..Default::default()
    };
    eprintln!("importing {:.1} MB…", input_bytes as f64 / 1e6);
    let started = Instant::now();
    let summary = client
        .import_file(header, &input, |_| {})
        .await
        .context("import")?;
    let import_s = started.elapsed().as_secs_f64();
    let rss_after_import = peak_rss_mib();

    eprintln!("exporting…");
    let out_path = temp.path().join("export.jsonl");
    let mut out =
        tokio::io::BufWriter::with_capacity(1 << 20, tokio::fs::File::create(&out_path).await?);
    let started = Instant::now();
    let exported = client
        .export("bench", "generated", &mut out, |_, _| {})
        .await?;
    let export_s = started.elapsed().as_secs_f64();
    let export_bytes = std::fs::metadata(&out_path)?.len();
    coordinator.shutdown().await?;

    let mb = |b: u64, s: f64| b as f64 / 1e6 / s;
    println!("gloss bench import — single node, fsync on every Raft append, batch {batch}, loopback gRPC");
    println!("| metric                      | value        |");
    println!("|-----------------------------|--------------|");
    println!("| examples generated          | {examples:>12} |");
    println!("| examples imported           | {:>12} |", summary.imported);
    println!(
        "| input size (MB)             | {:>12.1} |",
        input_bytes as f64 / 1e6
    );
    println!("| import time (s)             | {import_s:>12.2} |");
    println!(
        "| import examples/s           | {:>12.0} |",
        summary.imported as f64 / import_s
    );
    println!(
        "| import MB/s                 | {:>12.1} |",
        mb(input_bytes, import_s)
    );
    println!("| peak RSS after import (MiB) | {rss_after_import:>12.0} |");
    println!("| examples exported           | {exported:>12} |");
    println!("| export time (s)             | {export_s:>12.2} |");
    println!(
        "| export examples/s           | {:>12.0} |",
        exported as f64 / export_s
    );
    println!(
        "| export MB/s                 | {:>12.1} |",
        mb(export_bytes, export_s)
    );
    println!("| peak RSS overall (MiB)      | {:>12.0} |", peak_rss_mib());
    Ok(())
}

/// Commits per second and latency percentiles of one measurement.
struct Row {
    commits_per_s: f64,
    p50: Duration,
    p99: Duration,
    /// Commands per Raft entry on the leader (batches carry several).
    per_proposal: f64,
}

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// `clients` concurrent clients each creating projects (one Raft entry per write) for `span`.
async fn measure(server: &str, clients: usize, span: Duration, tag: &str) -> Result<Row> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for c in 0..clients {
        let client = connect(&[server.to_string()]).await?;
        let stop = stop.clone();
        let tag = format!("{tag}-{c}");
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut k = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let req = gloss_proto::v1::CreateProjectRequest {
                    name: format!("{tag}-{k}"),
                    ..Default::default()
                };
                let started = Instant::now();
                if client.projects().create_project(req).await.is_ok() {
                    latencies.push(started.elapsed());
                }
                k += 1;
            }
            latencies
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(span).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await?);
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    Ok(Row {
        commits_per_s: all.len() as f64 / elapsed,
        p50: percentile(&all, 0.5),
        p99: percentile(&all, 0.99),
        per_proposal: 1.0,
    })
}

/// A plain single-writer RocksDB loop with fsync on every write: the floor for one log.
fn rocksdb_floor(dir: &std::path::Path, span: Duration) -> Result<f64> {
    let db = gloss_store::open(dir, &["floor"])?;
    let cf = gloss_store::cf(&db, "floor")?;
    let value = vec![7u8; 128];
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < span {
        db.put_cf_opt(cf, n.to_be_bytes(), &value, &gloss_store::durable())?;
        n += 1;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

async fn raft(span: Duration) -> Result<()> {
    let temp = tempfile::tempdir()?;
    let levels = [1usize, 16, 64, 256];
    let mut table: Vec<(String, usize, Row)> = Vec::new();
    for (label, n) in [("3 nodes", 3u64), ("1 node", 1)] {
        let dir = temp.path().join(format!("group-{n}"));
        let mut nodes = Vec::new();
        for settings in gloss_core::loopback::loopback_group(&dir, n) {
            nodes.push(Coordinator::start(&with_admin(Config::resolve(settings)?)).await?);
        }
        let leader_id = nodes[0].wait_for_leader(Duration::from_secs(30)).await?;
        nodes[0].ensure_admin(Duration::from_secs(30)).await?;
        let leader = nodes
            .iter()
            .find(|c| c.service().node_id() == leader_id)
            .context("leader is one of the nodes")?;
        let server = leader.addrs().grpc.to_string();
        measure(&server, 4, Duration::from_millis(500), &format!("warm{n}")).await?;
        for clients in levels {
            eprintln!("{label}: {clients} clients…");
            leader.service().stages().reset();
            let mut row = measure(&server, clients, span, &format!("n{n}c{clients}")).await?;
            let (proposals, commands) = leader.service().stages().proposals();
            row.per_proposal = commands as f64 / proposals.max(1) as f64;
            table.push((label.to_string(), clients, row));
        }
        for c in nodes {
            c.shutdown().await?;
        }
    }
    let floor = rocksdb_floor(&temp.path().join("floor"), span)?;
    println!("gloss bench raft — writes acknowledged after fsync on a quorum, loopback gRPC, clients on the leader");
    println!("| group   | clients | commits/s | p50 (ms) | p99 (ms) | commands per entry |");
    println!("|---------|---------|-----------|----------|----------|--------------------|");
    for (label, clients, row) in &table {
        println!(
            "| {label:<7} | {clients:>7} | {:>9.0} | {:>8.2} | {:>8.2} | {:>18.1} |",
            row.commits_per_s,
            row.p50.as_secs_f64() * 1e3,
            row.p99.as_secs_f64() * 1e3,
            row.per_proposal
        );
    }
    println!("| floor: one RocksDB writer, fsync per write | {floor:.0} writes/s |");
    Ok(())
}

/// The administrator token benches sign their requests with.
pub(crate) const BENCH_TOKEN: &str = "bench-admin-token-0123456789";

/// `config` with the bench's administrator token (created once a leader exists).
pub(crate) fn with_admin(mut config: Config) -> Config {
    config.admin_token = Some(gloss_core::config::Secret::new(BENCH_TOKEN));
    config
}

/// A client signed with the bench's administrator token.
pub(crate) async fn connect(servers: &[String]) -> Result<Client> {
    Ok(Client::connect(servers).await?.with_token(BENCH_TOKEN)?)
}
