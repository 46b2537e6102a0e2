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
}

struct Sample {
    next: Vec<Duration>,
    submit: Vec<Duration>,
}

/// One annotator: ask for `prefetch` examples, answer each, ask again; until `stop`.
async fn annotator(
    client: Client,
    who: String,
    prefetch: u32,
    think: Duration,
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicU64>,
) -> Result<Sample> {
    let mut sample = Sample {
        next: Vec::new(),
        submit: Vec::new(),
    };
    let mut k = 0u64;
    while !stop.load(Ordering::Relaxed) {
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
        sample.next.push(started.elapsed());
        if reply.examples.is_empty() {
            break;
        }
        // The view shows the first example; the rest are prefetched. Answer the first one.
        let ex = &reply.examples[0];
        if !think.is_zero() {
            tokio::time::sleep(think).await;
        }
        k += 1;
        let answer = Answer {
            answer_id: format!("{who}-{k}"),
            project: "bench".into(),
            task: "t".into(),
            seq: ex.seq,
            annotator: who.clone(),
            decision: Decision::Accept as i32,
            choices: vec![if ex.seq % 3 == 0 { "NEG" } else { "POS" }.into()],
            ..Answer::default()
        };
        let started = Instant::now();
        client
            .feed()
            .submit_answer(SubmitRequest {
                answer: Some(answer),
            })
            .await?;
        sample.submit.push(started.elapsed());
        answered.fetch_add(1, Ordering::Relaxed);
    }
    Ok(sample)
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
}

async fn one_group(cfg: &FeedBench, nodes: u64, dir: &Path, input: &Path) -> Result<Row> {
    let mut group = Vec::new();
    for settings in gloss_core::loopback::loopback_group(dir, nodes) {
        group
            .push(Coordinator::start(&crate::bench::with_admin(Config::resolve(settings)?)).await?);
    }
    let leader = group[0].wait_for_leader(Duration::from_secs(30)).await?;
    group[0].ensure_admin(Duration::from_secs(30)).await?;
    let servers: Vec<String> = group.iter().map(|c| c.addrs().grpc.to_string()).collect();
    let client = crate::bench::connect(&servers).await?;
    client
        .projects()
        .create_project(CreateProjectRequest {
            name: "bench".into(),
            ..Default::default()
        })
        .await?;
    eprintln!("{nodes} node(s): importing {} examples…", cfg.examples);
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
    let mut workers = Vec::new();
    for a in 0..cfg.annotators {
        let c = crate::bench::connect(&[servers[a % servers.len()].clone()]).await?;
        workers.push(tokio::spawn(annotator(
            c,
            format!("ann{a:03}"),
            cfg.prefetch,
            cfg.think,
            stop.clone(),
            answered.clone(),
        )));
    }
    eprintln!(
        "{nodes} node(s): {} annotators for {:?}…",
        cfg.annotators, cfg.span
    );
    let started = Instant::now();
    tokio::time::sleep(cfg.span).await;
    let measured = answered.load(Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    // Keep answering (unmeasured) until the export has the requested number of answers.
    while answered.load(Ordering::Relaxed) < cfg.answers {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let (mut next, mut submit) = (Vec::new(), Vec::new());
    for w in workers {
        let s = w.await??;
        next.extend(s.next);
        submit.extend(s.submit);
    }
    next.sort();
    submit.sort();
    let rss_before_export = peak_rss_mib();
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
    let _ = leader;
    for c in group {
        c.shutdown().await?;
    }
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
    })
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
    Ok(())
}
