//! `gloss bench snapshot`: a new member with an empty disk catches up by snapshot from a group
//! whose log was compacted; prints the state size, the snapshot size, the catch-up time and how
//! much the process's peak memory grew during the catch-up, for several state sizes. Memory
//! should stay flat as the state grows: snapshots go file to file in chunks.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use gloss_coordinator::Coordinator;
use gloss_core::config::{Config, Overrides};
use gloss_proto::v1::{AddLearnerRequest, CreateProjectRequest, ImportFormat, ImportHeader};

use crate::bench::{connect, with_admin};

/// (VmRSS, VmHWM) of this process in bytes.
fn memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Resets the peak-RSS mark (Linux: `echo 5 > /proc/self/clear_refs`).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn dir_bytes(dir: &Path, only_ext: Option<&str>) -> u64 {
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                total += dir_bytes(&p, only_ext);
            } else if only_ext.is_none_or(|x| p.extension().is_some_and(|e| e == x)) {
                total += e.metadata().map(|m| m.len()).unwrap_or(0);
            }
        }
    }
    total
}

/// Text that does not compress away: a pseudo-random walk over a small vocabulary.
fn record(i: u64, bytes: usize) -> String {
    const WORDS: &[&str] = &[
        "annotation",
        "cluster",
        "gold",
        "review",
        "teacher",
        "student",
        "label",
        "span",
        "token",
        "model",
        "raft",
        "lease",
        "queue",
        "export",
        "import",
        "worker",
    ];
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut text = format!("record {i}:");
    while text.len() < bytes {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        text.push(' ');
        text.push_str(WORDS[(x % WORDS.len() as u64) as usize]);
        text.push_str(&format!("{:x}", x % 4096));
    }
    format!("{{\"text\":\"{text}\"}}\n")
}

/// Runs the catch-up for each state size (MiB of imported text).
pub async fn run(sizes_mb: &[u64]) -> Result<()> {
    println!("| state (MiB of text) | state on disk | snapshot file | catch-up | RSS before | peak RSS growth during catch-up |");
    println!("|---|---|---|---|---|---|");
    for &mb in sizes_mb {
        let temp = tempfile::tempdir()?;
        let any: Option<std::net::SocketAddr> = "127.0.0.1:0".parse().ok();
        let settings = |id: u64, join: bool| Overrides {
            node_id: Some(id),
            data_dir: Some(temp.path().join(format!("n{id}"))),
            listen: any,
            http: any,
            raft_listen: any,
            join: join.then_some(true),
            snapshot_every: Some(100),
            // Small batches make many log entries, so the log behind the snapshot is compacted.
            import_batch: Some(20),
            ..Overrides::default()
        };
        let first = Coordinator::start(&with_admin(Config::resolve(settings(1, false))?)).await?;
        first.ensure_admin(Duration::from_secs(30)).await?;
        let client = connect(&[first.addrs().grpc.to_string()]).await?;
        client
            .projects()
            .create_project(CreateProjectRequest {
                name: "snap".into(),
                ..Default::default()
            })
            .await?;
        let n = mb * 1024; // 1 KiB records
        let input = temp.path().join("input.jsonl");
        let body: String = (0..n).map(|i| record(i, 1000)).collect();
        std::fs::write(&input, body)?;
        eprintln!("{mb} MiB: importing {n} records…");
        let header = ImportHeader {
            project: "snap".into(),
            dataset: "d".into(),
            format: ImportFormat::Jsonl as i32,
            create_dataset: true,
            ..Default::default()
        };
        client
            .import_file(header, &input, |_| {})
            .await
            .context("import")?;
        std::fs::remove_file(&input)?;
        // Wait for a snapshot that covers the import (built every 100 entries).
        let deadline = Instant::now() + Duration::from_secs(120);
        while first.service().cluster_status().await?.snapshot_index == 0 {
            anyhow::ensure!(Instant::now() < deadline, "no snapshot was built");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let state_bytes = dir_bytes(&temp.path().join("n1/state"), None);
        let second = Coordinator::start(&with_admin(Config::resolve(settings(2, true))?)).await?;
        let (rss_before, _) = memory();
        reset_peak();
        let started = Instant::now();
        client
            .cluster()
            .add_learner(AddLearnerRequest {
                node_id: 2,
                raft_address: second.addrs().raft.to_string(),
                api_address: second.addrs().grpc.to_string(),
            })
            .await
            .context("adding the learner")?;
        // Caught up: the learner installed a snapshot and applied as far as the leader had.
        let target = first.service().cluster_status().await?.applied_index;
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let status = second.service().cluster_status().await?;
            if status.snapshot_index > 0 && status.applied_index >= target {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the learner did not catch up by snapshot: {status:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let took = started.elapsed();
        let (_, peak) = memory();
        let snapshot_bytes = dir_bytes(&temp.path().join("n1"), Some("tar"));
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        println!(
            "| {mb} | {:.1} MiB | {:.1} MiB | {:.2} s | {:.0} MiB | {:.1} MiB |",
            mib(state_bytes),
            mib(snapshot_bytes),
            took.as_secs_f64(),
            mib(rss_before),
            mib(peak.saturating_sub(rss_before)),
        );
        second.shutdown().await?;
        first.shutdown().await?;
    }
    Ok(())
}
