//! Jobs on a GPU against the same jobs on the CPU: one `train` (the tiny student) and one
//! teacher `evaluate` (`llm:smollm2`), each run twice by the same worker, once placed on a GPU
//! and once not, printing a table of wall times and the speed-up.
//!
//! Ignored in normal runs: `tests/gpu/run.sh` runs it on a machine with an NVIDIA GPU, built
//! with the `cuda` feature (`cargo test --release -p gloss-tests --features cuda --test gpu_jobs
//! -- --ignored --nocapture`). Built without `cuda` it still runs, and the GPU column then
//! measures the CPU fallback, which the job's log states.

use std::sync::Arc;
use std::time::Instant;

use gloss_coordinator::access::Actor;
use gloss_coordinator::Service;
use gloss_proto::v1::*;
use gloss_tests::{minilm_models, node_with_gold, wait_for_job, TestWorker};
use serde_json::json;

/// Runs a `kind` job on `films/polarity`, on a GPU when `gpu`; returns its wall time in
/// seconds and its log.
async fn timed(
    s: &Service,
    kind: JobKind,
    model: &str,
    config: &str,
    gpu: bool,
) -> (f64, Vec<String>) {
    let req = SubmitJobRequest {
        spec: Some(JobSpec {
            kind: kind as i32,
            project: "films".into(),
            task: "polarity".into(),
            model: model.into(),
            config_json: config.into(),
        }),
        resources: Some(Resources {
            cpu_millis: 1000,
            memory_bytes: 2 << 30,
            gpu_count: u32::from(gpu),
            ..Default::default()
        }),
        max_attempts: 1,
        ..Default::default()
    };
    let started = Instant::now();
    let job = s.submit_job(&Actor::SYSTEM, req).await.unwrap();
    let done = wait_for_job(s, &job.id, model, |j| {
        matches!(j.state(), JobState::Succeeded | JobState::Failed)
    })
    .await;
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(done.state(), JobState::Succeeded, "{model}: {}", done.error);
    let logs = s.job_logs(&job.id, 0).await.unwrap();
    (seconds, logs.into_iter().map(|l| l.text).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs an NVIDIA GPU for meaningful figures: tests/gpu/run.sh"]
async fn a_train_and_a_teacher_job_on_a_gpu_against_the_cpu() {
    let models = minilm_models();
    let gguf = models.join("smollm2");
    assert!(gguf.exists(), "SmolLM2 missing in {}", models.display());
    let gold: usize = std::env::var("GLOSS_GPU_GOLD")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    let dir = tempfile::tempdir().unwrap();
    let node = node_with_gold(dir.path(), gold).await;
    let s: Arc<Service> = node.coordinator.service().clone();
    let mut args = TestWorker::args(&node, dir.path(), models.clone(), None);
    // GPUs come from NVML unless declared (GLOSS_TEST_GPUS=h200:141GiB).
    args.gpus = std::env::var("GLOSS_TEST_GPUS").ok();
    args.cpus = Some(std::thread::available_parallelism().map_or(2, |n| n.get()) as f64);
    args.memory = Some("16GiB".into());
    let worker = TestWorker::start_with(args);
    let digest = gloss_worker::model_store::dir_digest(&gguf).unwrap();
    let teacher_config = json!({"sha256": digest}).to_string();
    let train_config = r#"{"epochs": 10, "patience": 10, "seed": 1}"#;
    let cache = dir.path().join("work/teacher-cache");
    let mut rows = Vec::new();
    for (what, kind, model, config) in [
        ("train tiny", JobKind::Train, "tiny", train_config),
        (
            "evaluate llm:smollm2",
            JobKind::Evaluate,
            "llm:smollm2",
            teacher_config.as_str(),
        ),
    ] {
        let mut times = Vec::new();
        for gpu in [false, true] {
            // Every run asks the teacher afresh.
            let _ = std::fs::remove_dir_all(&cache);
            let (seconds, logs) = timed(&s, kind, model, config, gpu).await;
            let device = logs
                .iter()
                .find(|l| l.contains("GPU"))
                .cloned()
                .unwrap_or_else(|| "CPU".into());
            if gpu && cfg!(feature = "cuda") {
                assert!(device.contains("running on GPU"), "{logs:?}");
            }
            times.push((seconds, device));
        }
        rows.push((what, times));
    }
    println!("\n| job ({gold} gold records) | CPU s | GPU s | speed-up | GPU run's device |");
    println!("| --- | ---: | ---: | ---: | --- |");
    for (what, t) in &rows {
        println!(
            "| {what} | {:.1} | {:.1} | {:.1}× | {} |",
            t[0].0,
            t[1].0,
            t[0].0 / t[1].0.max(1e-9),
            t[1].1
        );
    }
    worker.stop().await;
}
