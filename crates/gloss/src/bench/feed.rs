//! `gloss bench feed`: a choice task over generated examples, simulated annotators each asking
//! for work (with prefetch) and answering, against one node and a 3-node group on loopback;
//! then an export of every answer. Prints next/submit latency, answers/s, export time and RSS.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use gloss_client::Client;
use gloss_coordinator::Coordinator;
use gloss_core::config::Config;
use gloss_proto::v1::*;

use crate::bench::{generate, peak_rss_mib, percentile};
use gloss_core::stages::StageSummary;

/// Settings of one feed benchmark run.
pub struct FeedBench {
    pub examples: u64,
    pub annotators: usize,
    pub prefetch: u32,
    pub span: Duration,
    pub answers: u64,
    pub groups: Vec<u64>,
    /// Time an annotator looks at an example before answering.
    pub think: Duration,
    /// Run each coordinator as its own `gloss coordinator` process, so memory is per node.
    pub processes: bool,
}

struct Sample {
    next: Vec<Duration>,
    submit: Vec<Duration>,
    /// Numbers (`Example N:`) of every example this annotator was handed.
    handed: Vec<u64>,
}

/// When the simulated annotators start, and which of their requests are measured.
struct Clock {
    stop: Arc<AtomicBool>,
    /// Set for the measured span: only requests that start inside it are sampled.
    measuring: Arc<AtomicBool>,
    answered: Arc<AtomicU64>,
}

/// An accepted choice on example `seq`, the `k`th answer of `who`.
async fn submit(client: &Client, who: &str, k: u64, seq: u64) -> Result<()> {
    let answer = Answer {
        answer_id: format!("{who}-{k}"),
        project: "bench".into(),
        task: "t".into(),
        seq,
        annotator: who.to_string(),
        decision: Decision::Accept as i32,
        choices: vec![if seq.is_multiple_of(3) { "NEG" } else { "POS" }.into()],
        ..Answer::default()
    };
    client
        .feed()
        .submit_answer(SubmitRequest {
            answer: Some(answer),
        })
        .await?;
    Ok(())
}

/// One annotator: after `start_after`, ask for `prefetch` examples, answer each, ask again;
/// until `stop`. Then it answers the examples it still holds (unmeasured), so every example it
/// was handed ends up answered.
async fn annotator(
    client: Client,
    who: String,
    prefetch: u32,
    think: Duration,
    start_after: Duration,
    clock: Arc<Clock>,
) -> Result<Sample> {
    let mut sample = Sample {
        next: Vec::new(),
        submit: Vec::new(),
        handed: Vec::new(),
    };
    let (stop, answered) = (&clock.stop, &clock.answered);
    tokio::time::sleep(start_after).await;
    let mut k = 0u64;
    let mut held = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let measured = clock.measuring.load(Ordering::Relaxed);
        let started = Instant::now();
        let reply = client
            .feed()
            .next_examples(NextRequest {
                project: "bench".into(),
                task: "t".into(),
                annotator: who.clone(),
                session_id: who.clone(),
                count: prefetch,
            })
            .await?
            .into_inner();
        if measured {
            sample.next.push(started.elapsed());
        }
        held = reply.examples.iter().map(|e| e.seq).collect();
        sample.handed.extend(
            reply
                .examples
                .iter()
                .filter_map(|e| example_number(&e.text)),
        );
        // The view shows the first example; the rest are prefetched. Answer the first one.
        if held.is_empty() {
            break;
        }
        let seq = held.remove(0);
        if !think.is_zero() {
            tokio::time::sleep(think).await;
        }
        k += 1;
        let measured = clock.measuring.load(Ordering::Relaxed);
        let started = Instant::now();
        submit(&client, &who, k, seq).await?;
        if measured {
            sample.submit.push(started.elapsed());
        }
        answered.fetch_add(1, Ordering::Relaxed);
    }
    for seq in held {
        k += 1;
        submit(&client, &who, k, seq).await?;
        answered.fetch_add(1, Ordering::Relaxed);
    }
    Ok(sample)
}

/// The `N` of a generated example's text, `Example N: …`.
fn example_number(text: &str) -> Option<u64> {
    text.strip_prefix("Example ")?
        .split(':')
        .next()?
        .parse()
        .ok()
}

/// Writes Prodigy answer lines (one accepted choice each, annotator `bulk`) for up to `count`
/// generated examples the feed never handed out; returns how many were written.
fn write_bulk_answers(
    input: &Path,
    handed: &std::collections::HashSet<u64>,
    count: u64,
    out: &Path,
) -> Result<u64> {
    use std::io::{BufRead, Write};
    let mut w = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(out)?);
    let mut written = 0;
    for line in std::io::BufReader::new(std::fs::File::open(input)?).lines() {
        if written == count {
            break;
        }
        let line = line?;
        let record: serde_json::Value = serde_json::from_str(&line)?;
        let text = record["text"]
            .as_str()
            .context("generated record without text")?;
        let n = example_number(text).context("generated text without its number")?;
        if handed.contains(&n) {
            continue;
        }
        let label = if n.is_multiple_of(3) { "NEG" } else { "POS" };
        let answer = serde_json::json!({
            "text": text,
            "answer": "accept",
            "accept": [label],
            "_annotator_id": "bulk",
        });
        writeln!(w, "{answer}")?;
        written += 1;
    }
    w.flush()?;
    Ok(written)
}

struct Row {
    label: String,
    next_p50: Duration,
    next_p99: Duration,
    submit_p50: Duration,
    submit_p99: Duration,
    answers_per_s: f64,
    export_answers: u64,
    export_s: f64,
    rss_before_export: f64,
    rss_after_export: f64,
    /// Every node's stage histograms over the measured span, summed.
    stages: Vec<StageSummary>,
    /// Proposals to Raft and the commands in them over the measured span, all nodes.
    proposals: (u64, u64),
    /// Each node's own process (with `--processes`): peak resident memory before the export,
    /// and peak and current resident memory after it, MiB.
    rss_per_node: Vec<(f64, f64, f64)>,
    /// Answers added by the answer import after the measured span, and its seconds.
    bulk: Option<(u64, f64)>,
    /// Terms the group went through during the import (0: no election).
    import_elections: u64,
    /// AppendEntries given up before their reply during the import, all nodes.
    import_timeouts: u64,
    import_s: f64,
}

/// The coordinators under test: in this process (stage histograms readable), or each in its own
/// `gloss coordinator` process (memory readable per node).
enum Nodes {
    InProcess(Vec<Coordinator>),
    Processes(Children),
}

impl Nodes {
    async fn start(nodes: u64, dir: &Path, processes: bool) -> Result<(Nodes, Vec<String>)> {
        let group = gloss_core::loopback::loopback_group(dir, nodes);
        if !processes {
            let mut started = Vec::new();
            for settings in group {
                started.push(
                    Coordinator::start(&crate::bench::with_admin(Config::resolve(settings)?))
                        .await?,
                );
            }
            started[0].wait_for_leader(Duration::from_secs(30)).await?;
            started[0].ensure_admin(Duration::from_secs(30)).await?;
            let servers = started.iter().map(|c| c.addrs().grpc.to_string()).collect();
            return Ok((Nodes::InProcess(started), servers));
        }
        std::fs::create_dir_all(dir)?;
        let token_file = dir.join("admin-token");
        std::fs::write(&token_file, crate::bench::BENCH_TOKEN)?;
        let exe = std::env::current_exe()?;
        let mut children = Children(Vec::new());
        let mut servers = Vec::new();
        for o in group {
            let free = |what: &str| -> Result<std::net::SocketAddr> {
                let l = std::net::TcpListener::bind("127.0.0.1:0")
                    .with_context(|| format!("a free port for {what}"))?;
                Ok(l.local_addr()?)
            };
            let (grpc, http) = (free("gRPC")?, free("HTTP")?);
            let data = o.data_dir.clone().context("loopback data dir")?;
            std::fs::create_dir_all(&data)?;
            let log = std::fs::File::create(data.with_extension("log"))?;
            let mut cmd = std::process::Command::new(&exe);
            cmd.arg("coordinator")
                .arg("--node-id")
                .arg(o.node_id.unwrap_or(1).to_string())
                .arg("--data-dir")
                .arg(&data)
                .arg("--listen")
                .arg(grpc.to_string())
                .arg("--http")
                .arg(http.to_string())
                .arg("--admin-token-file")
                .arg(&token_file)
                .stdout(log.try_clone()?)
                .stderr(log);
            if let Some(raft) = o.raft_listen {
                cmd.arg("--raft-listen").arg(raft.to_string());
            }
            if let Some(members) = &o.initial_members {
                cmd.arg("--initial-members").arg(members);
            }
            children
                .0
                .push(cmd.spawn().context("starting a coordinator process")?);
            servers.push(grpc.to_string());
        }
        let nodes = Nodes::Processes(children);
        // Ready once every node answers with the administrator's token and knows the leader.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mut ready = 0;
            for s in &servers {
                if let Ok(c) = crate::bench::connect(std::slice::from_ref(s)).await {
                    if let Ok(st) = c
                        .cluster()
                        .get_cluster_status(GetClusterStatusRequest {})
                        .await
                    {
                        ready += usize::from(st.into_inner().leader_id.is_some());
                    }
                }
            }
            if ready == servers.len() {
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "coordinator processes not ready");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok((nodes, servers))
    }

    /// Every node's current term.
    async fn terms(&self, servers: &[String]) -> Result<Vec<u64>> {
        match self {
            Nodes::InProcess(group) => Ok(group.iter().map(|c| c.raft_view().0).collect()),
            Nodes::Processes(_) => {
                let mut terms = Vec::new();
                for s in servers {
                    let c = crate::bench::connect(std::slice::from_ref(s)).await?;
                    let st = c
                        .cluster()
                        .get_cluster_status(GetClusterStatusRequest {})
                        .await?;
                    terms.push(st.into_inner().term);
                }
                Ok(terms)
            }
        }
    }

    fn in_process(&self) -> &[Coordinator] {
        match self {
            Nodes::InProcess(group) => group,
            Nodes::Processes(_) => &[],
        }
    }

    /// Peak and current resident memory of each node's process (MiB); empty in process.
    fn rss_per_node(&self) -> Vec<(f64, f64)> {
        match self {
            Nodes::InProcess(_) => Vec::new(),
            Nodes::Processes(children) => children
                .0
                .iter()
                .map(|c| {
                    let status = format!("/proc/{}/status", c.id());
                    (
                        crate::bench::peak_rss_mib_of(&status),
                        crate::bench::rss_mib_of(&status, "VmRSS:"),
                    )
                })
                .collect(),
        }
    }

    async fn stop(self) -> Result<()> {
        match self {
            Nodes::InProcess(group) => {
                for c in group {
                    c.shutdown().await?;
                }
            }
            Nodes::Processes(children) => drop(children),
        }
        Ok(())
    }
}

/// Coordinator processes, stopped when dropped: at the end of a run, and when it fails.
struct Children(Vec<std::process::Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            // SIGTERM: the coordinator stops cleanly.
            let _ = std::process::Command::new("kill")
                .arg(c.id().to_string())
                .status();
            let _ = c.wait();
        }
    }
}

async fn one_group(cfg: &FeedBench, nodes: u64, dir: &Path, input: &Path) -> Result<Row> {
    let (nodes_up, servers) = Nodes::start(nodes, dir, cfg.processes).await?;
    let group = nodes_up.in_process();
    let client = crate::bench::connect(&servers).await?;
    client
        .projects()
        .create_project(CreateProjectRequest {
            name: "bench".into(),
            ..Default::default()
        })
        .await?;
    eprintln!("{nodes} node(s): importing {} examples…", cfg.examples);
    let term_before = nodes_up.terms(&servers).await?;
    for c in group {
        c.service().stages().reset();
    }
    let import_started = Instant::now();
    client
        .import_file(
            ImportHeader {
                project: "bench".into(),
                dataset: "src".into(),
                format: ImportFormat::Jsonl as i32,
                create_dataset: true,
                ..Default::default()
            },
            input,
            |_| {},
        )
        .await
        .context("import")?;
    let import_s = import_started.elapsed().as_secs_f64();
    let import_elections = nodes_up
        .terms(&servers)
        .await?
        .iter()
        .zip(&term_before)
        .map(|(after, before)| after - before)
        .max()
        .unwrap_or(0);
    let import_timeouts: u64 = group
        .iter()
        .map(|c| c.service().stages().replication_timeouts())
        .sum();
    let mut task = Task {
        project: "bench".into(),
        name: "t".into(),
        labels: vec!["POS".into(), "NEG".into()],
        source_dataset: "src".into(),
        overlap: 1,
        ..Task::default()
    };
    task.set_interface(Interface::Choice);
    client
        .tasks()
        .create_task(CreateTaskRequest { task: Some(task) })
        .await?;
    // Annotators talk to every node in turn, as browsers behind a load balancer would.
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    let clock = Arc::new(Clock {
        stop: stop.clone(),
        measuring: Arc::new(AtomicBool::new(false)),
        answered: answered.clone(),
    });
    let mut workers = Vec::new();
    for a in 0..cfg.annotators {
        let c = crate::bench::connect(&[servers[a % servers.len()].clone()]).await?;
        // Annotators who read arrive spread over one reading time, not all in one instant.
        let start_after = cfg.think.mul_f64(a as f64 / cfg.annotators as f64);
        workers.push(tokio::spawn(annotator(
            c,
            format!("ann{a:03}"),
            cfg.prefetch,
            cfg.think,
            start_after,
            clock.clone(),
        )));
    }
    eprintln!(
        "{nodes} node(s): {} annotators for {:?}…",
        cfg.annotators, cfg.span
    );
    // The measured span starts once every annotator has started and connected; only requests
    // that start inside it are sampled.
    tokio::time::sleep(cfg.think.max(Duration::from_millis(500))).await;
    for c in group {
        c.service().stages().reset();
    }
    let first = answered.load(Ordering::Relaxed);
    clock.measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(cfg.span).await;
    clock.measuring.store(false, Ordering::Relaxed);
    let measured = answered.load(Ordering::Relaxed) - first;
    let elapsed = started.elapsed().as_secs_f64();
    let stages = summed_stages(group);
    let proposals = group
        .iter()
        .map(|c| c.service().stages().proposals())
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    stop.store(true, Ordering::Relaxed);
    let (mut next, mut submit) = (Vec::new(), Vec::new());
    let mut handed = std::collections::HashSet::new();
    for w in workers {
        let s = w.await??;
        next.extend(s.next);
        submit.extend(s.submit);
        handed.extend(s.handed);
    }
    next.sort();
    submit.sort();
    // The rest of the requested answers come in through the answer import, for examples the
    // feed never handed out (at ~1k answers/s the feed alone would take a quarter of an hour
    // per million).
    let bulk = match cfg.answers.checked_sub(answered.load(Ordering::Relaxed)) {
        Some(missing) if missing > 0 => {
            let file = dir.join("bulk-answers.jsonl");
            let count = write_bulk_answers(input, &handed, missing, &file)?;
            anyhow::ensure!(
                count == missing,
                "--answers {} needs {missing} examples the feed did not touch; only {count} are left",
                cfg.answers
            );
            eprintln!("{nodes} node(s): importing {count} more answers…");
            let started = Instant::now();
            client
                .import_answers(
                    ImportAnswersHeader {
                        project: "bench".into(),
                        task: "t".into(),
                        source: AnswerSource::Prodigy as i32,
                        source_name: "bulk-answers.jsonl".into(),
                        ..Default::default()
                    },
                    tokio::fs::File::open(&file).await?,
                    |_| {},
                )
                .await
                .context("answer import")?;
            Some((count, started.elapsed().as_secs_f64()))
        }
        _ => None,
    };
    let rss_before_export = peak_rss_mib();
    let nodes_before_export = nodes_up.rss_per_node();
    eprintln!("{nodes} node(s): exporting answers…");
    let out_path = dir.join("answers.jsonl");
    let mut out =
        tokio::io::BufWriter::with_capacity(1 << 20, tokio::fs::File::create(&out_path).await?);
    let started = Instant::now();
    let exported = client
        .export_answers(
            ExportAnswersRequest {
                project: "bench".into(),
                task: "t".into(),
                selection: ExportSelection::Answers as i32,
                format: ExportFormat::Prodigy as i32,
            },
            &mut out,
            |_, _| {},
        )
        .await?;
    let export_s = started.elapsed().as_secs_f64();
    let rss_after_export = peak_rss_mib();
    let rss_per_node = nodes_before_export
        .iter()
        .zip(nodes_up.rss_per_node())
        .map(|((before, _), (peak, now))| (*before, peak, now))
        .collect();
    nodes_up.stop().await?;
    Ok(Row {
        label: format!("{nodes} node{}", if nodes == 1 { "" } else { "s" }),
        next_p50: percentile(&next, 0.5),
        next_p99: percentile(&next, 0.99),
        submit_p50: percentile(&submit, 0.5),
        submit_p99: percentile(&submit, 0.99),
        answers_per_s: measured as f64 / elapsed,
        export_answers: exported,
        export_s,
        rss_before_export,
        rss_after_export,
        stages,
        proposals,
        rss_per_node,
        bulk,
        import_elections,
        import_timeouts,
        import_s,
    })
}

/// Every node's stage histograms, summed stage by stage (none with `--processes`).
fn summed_stages(group: &[Coordinator]) -> Vec<StageSummary> {
    let Some(first) = group.first() else {
        return Vec::new();
    };
    let mut total = first.service().stages().summary();
    for c in &group[1..] {
        for (t, s) in total.iter_mut().zip(c.service().stages().summary()) {
            t.add(&s);
        }
    }
    total
}

/// Runs the feed benchmark and prints its table.
pub async fn run(cfg: FeedBench) -> Result<()> {
    let temp = tempfile::tempdir()?;
    let input = temp.path().join("input.jsonl");
    eprintln!("generating {} examples…", cfg.examples);
    generate(&input, cfg.examples)?;
    let mut rows = Vec::new();
    for &nodes in &cfg.groups {
        let dir = temp.path().join(format!("group-{nodes}"));
        rows.push(one_group(&cfg, nodes, &dir, &input).await?);
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "gloss bench feed — choice task over {} examples, {} annotators (next with prefetch {}, {} ms looking at the example, then submit), loopback gRPC, fsync on a quorum",
        cfg.examples, cfg.annotators, cfg.prefetch, cfg.think.as_millis()
    );
    println!("| group   | next p50 (ms) | next p99 (ms) | submit p50 (ms) | submit p99 (ms) | answers/s | answers exported | export (s) | peak RSS before / after export (MiB) |");
    println!("|---------|---------------|---------------|-----------------|-----------------|-----------|------------------|------------|--------------------------------------|");
    for r in &rows {
        println!(
            "| {:<7} | {:>13.2} | {:>13.2} | {:>15.2} | {:>15.2} | {:>9.0} | {:>16} | {:>10.2} | {:>17.0} / {:<18.0} |",
            r.label,
            ms(r.next_p50),
            ms(r.next_p99),
            ms(r.submit_p50),
            ms(r.submit_p99),
            r.answers_per_s,
            r.export_answers,
            r.export_s,
            r.rss_before_export,
            r.rss_after_export
        );
    }
    println!("| peak RSS of the whole run (MiB): {:.0} |", peak_rss_mib());
    if cfg.processes {
        println!();
        println!("Each coordinator in its own process (the RSS columns above are the bench's own client process):");
        println!("| group   | node | peak RSS before export (MiB) | peak RSS after export (MiB) | RSS at the end (MiB) |");
        println!("|---------|------|------------------------------|-----------------------------|----------------------|");
        for r in &rows {
            for (i, (before, peak, now)) in r.rss_per_node.iter().enumerate() {
                println!(
                    "| {:<7} | {:>4} | {:>28.0} | {:>27.0} | {:>20.0} |",
                    r.label,
                    i + 1,
                    before,
                    peak,
                    now
                );
            }
        }
    }
    for r in &rows {
        if let Some((count, secs)) = r.bulk {
            println!(
                "| {}: {count} answers added after the measured span by the answer import (Prodigy JSONL) in {secs:.1} s |",
                r.label
            );
        }
    }
    println!();
    println!("Import before the measured span (elections: terms the group went through; timeouts: AppendEntries given up before their reply, all nodes):");
    println!("| group   | import (s) | examples/s | elections | replication timeouts |");
    println!("|---------|------------|------------|-----------|----------------------|");
    for r in &rows {
        let timeouts = if cfg.processes {
            "n/a".to_string()
        } else {
            r.import_timeouts.to_string()
        };
        println!(
            "| {:<7} | {:>10.1} | {:>10.0} | {:>9} | {:>20} |",
            r.label,
            r.import_s,
            cfg.examples as f64 / r.import_s,
            r.import_elections,
            timeouts
        );
    }
    for r in rows.iter().filter(|r| !r.stages.is_empty()) {
        println!();
        println!(
            "Where the time goes, {} (server side, every node summed, measured span only; a stage may run once per request, per entry or per append):",
            r.label
        );
        println!(
            "| stage                 |   count | mean (ms) | p50 (ms) | p99 (ms) | total (s) |"
        );
        println!(
            "|-----------------------|---------|-----------|----------|----------|-----------|"
        );
        for st in &r.stages {
            println!(
                "| {:<21} | {:>7} | {:>9.3} | {:>8.3} | {:>8.3} | {:>9.2} |",
                st.stage.name(),
                st.count(),
                ms(st.mean()),
                ms(st.quantile(0.5)),
                ms(st.quantile(0.99)),
                st.total().as_secs_f64()
            );
        }
        let (proposals, commands) = r.proposals;
        println!(
            "| proposals: {proposals}, carrying {commands} commands ({:.1} per proposal) |",
            commands as f64 / proposals.max(1) as f64
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_examples_are_known_by_their_number() {
        assert_eq!(example_number("Example 42: the river bends."), Some(42));
        assert_eq!(example_number("Example x: no number"), None);
        assert_eq!(example_number("An example"), None);
    }

    /// A small run on one node: the answers the annotators did not give are imported on
    /// examples nobody was handed, and the export holds exactly the number asked for.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_export_holds_the_answers_asked_for() {
        let temp = tempfile::tempdir().unwrap();
        let input = temp.path().join("input.jsonl");
        generate(&input, 3_000).unwrap();
        let cfg = FeedBench {
            examples: 3_000,
            annotators: 2,
            prefetch: 3,
            span: Duration::from_millis(200),
            answers: 2_500,
            groups: vec![1],
            think: Duration::ZERO,
            processes: false,
        };
        let row = one_group(&cfg, 1, &temp.path().join("group-1"), &input)
            .await
            .unwrap();
        assert_eq!(row.export_answers, 2_500);
        let (imported, _) = row.bulk.expect("some answers came by import");
        assert!(imported > 0 && imported < 2_500, "imported {imported}");
        let exported = std::fs::read_to_string(temp.path().join("group-1/answers.jsonl")).unwrap();
        let lines: Vec<serde_json::Value> = exported
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2_500);
        let bulk = lines
            .iter()
            .filter(|l| l["_annotator_id"] == "t-bulk")
            .count();
        assert_eq!(bulk as u64, imported);
        // Every example is answered at most once (overlap 1).
        let mut texts: Vec<&str> = lines.iter().map(|l| l["text"].as_str().unwrap()).collect();
        texts.sort();
        texts.dedup();
        assert_eq!(texts.len(), 2_500);
    }

    #[test]
    fn asking_for_more_answers_than_untouched_examples_is_refused_by_count() {
        let temp = tempfile::tempdir().unwrap();
        let input = temp.path().join("input.jsonl");
        generate(&input, 10).unwrap();
        let handed: std::collections::HashSet<u64> = [0, 3, 4].into();
        let out = temp.path().join("bulk.jsonl");
        assert_eq!(write_bulk_answers(&input, &handed, 100, &out).unwrap(), 7);
        let written = std::fs::read_to_string(&out).unwrap();
        assert!(!written.contains("Example 3:"));
        assert!(written.contains("\"accept\":[\"NEG\"]"), "{written}");
    }
}
