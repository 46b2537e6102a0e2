//! `gloss bench import`: imports generated examples into a fresh single-node coordinator over
//! loopback gRPC (fsync on every Raft append), exports them back, and prints a table.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Subcommand;
use gloss_client::Client;
use gloss_coordinator::Coordinator;
use gloss_core::config::{Config, Overrides};
use gloss_proto::v1::{ImportFormat, ImportHeader};

#[derive(Subcommand)]
pub enum BenchCmd {
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
fn generate(path: &std::path::Path, n: u64) -> Result<u64> {
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

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

pub async fn run(cmd: BenchCmd) -> Result<()> {
    let BenchCmd::Import {
        examples,
        dir,
        batch,
    } = cmd;
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
    let coordinator = Coordinator::start(&config).await?;
    coordinator
        .wait_for_leader(std::time::Duration::from_secs(30))
        .await?;
    let client = Client::connect(&[coordinator.addrs().grpc.to_string()]).await?;
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
