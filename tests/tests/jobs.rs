//! Jobs and workers on a running coordinator: a real worker trains a student on a task's gold
//! records; fencing epochs refuse a replaced worker's reports; lost workers and lapsed leases
//! re-queue with backoff and dead-letter on the last attempt; cancellation; GPU jobs that do not
//! fit together never share a GPU. The tests play the worker protocol through the service
//! layer where they need to control time, and run the real `gloss worker` loop otherwise.

use gloss_coordinator::access::Actor;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gloss_coordinator::Service;
use gloss_proto::v1::*;
use gloss_tests::{
    node_with_gold, run_films_job, test_models, wait_for_job as wait_for, TestWorker,
    JOIN_TOKEN as TOKEN,
};

fn train_request(config: &str, max_attempts: u32) -> SubmitJobRequest {
    SubmitJobRequest {
        spec: Some(JobSpec {
            kind: JobKind::Train as i32,
            project: "films".into(),
            task: "polarity".into(),
            config_json: config.into(),
            ..Default::default()
        }),
        max_attempts,
        ..Default::default()
    }
}

fn worker(name: &str, gpus: Vec<Gpu>) -> Worker {
    Worker {
        name: name.into(),
        cpu_millis: 4000,
        memory_bytes: 8 << 30,
        gpus,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_trains_a_student_on_the_gold_records_and_reports_each_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_with_gold(dir.path(), 60).await;
    let service = node.coordinator.service().clone();
    let args = gloss_worker::worker::WorkerArgs {
        coordinator: vec![node.coordinator.addrs().raft.to_string()],
        join_token_file: None,
        name: Some("w".into()),
        labels: vec!["zone=a".into()],
        gpus: None,
        cpus: Some(2.0),
        memory: Some("4GiB".into()),
        work_dir: dir.path().join("work"),
        tls_dir: None,
        models_dir: dir.path().join("models"),
        teachers: None,
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(async move {
        let mut rx = stopped;
        gloss_worker::worker::run(args, TOKEN.into(), async move {
            let _ = rx.wait_for(|s| *s).await;
        })
        .await
    });
    let mut req = train_request(r#"{"epochs": 4, "patience": 4, "seed": 7}"#, 3);
    req.constraints.insert("zone".into(), "a".into());
    let job = service.submit_job(&Actor::SYSTEM, req).await.unwrap();
    let done = wait_for(&service, &job.id, "training", |j| {
        j.state() == JobState::Succeeded
    })
    .await;
    assert_eq!(done.attempt, 1);
    assert_eq!(
        done.metrics.len(),
        4,
        "one metric per epoch: {:?}",
        done.metrics
    );
    let result: serde_json::Value = serde_json::from_str(&done.result_json).unwrap();
    assert!(
        result["gold-dev:accuracy"].as_f64().unwrap() >= 0.9,
        "{result}"
    );
    // The test split (15 % by input hash) is held out of training.
    let seen =
        result["train_examples"].as_u64().unwrap() + result["dev_examples"].as_u64().unwrap();
    assert!((40..60).contains(&seen), "{result}");
    assert!(std::path::Path::new(result["model_dir"].as_str().unwrap())
        .join("model.safetensors")
        .exists());
    let logs = service.job_logs(&job.id, 0).await.unwrap();
    assert!(
        logs.iter()
            .any(|l| l.text.starts_with("tiny epoch 1: loss")),
        "{logs:?}"
    );
    let workers = service.list_workers().await.unwrap();
    assert_eq!(workers.len(), 1);
    assert_eq!(workers[0].labels.get("zone").map(String::as_str), Some("a"));
    // A wrong join token is refused with a clear error.
    let err = service
        .register_worker("nope", worker("x", vec![]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("wrong join token"), "{err}");
    let _ = stop.send(true);
    running.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_workers_late_reports_are_refused_by_the_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_with_gold(dir.path(), 4).await;
    let s: Arc<Service> = node.coordinator.service().clone();
    let a = s.register_worker(TOKEN, worker("a", vec![])).await.unwrap();
    let job = s
        .submit_job(&Actor::SYSTEM, train_request("", 3))
        .await
        .unwrap();
    let placed = wait_for(&s, &job.id, "placement", |j| j.state() == JobState::Placed).await;
    assert_eq!(
        (placed.worker_id.as_str(), placed.epoch),
        (a.id.as_str(), 1)
    );
    let beat = s.worker_heartbeat(&a.id, vec![]).await.unwrap();
    assert_eq!(beat.assignments.len(), 1);
    let start = |epoch| JobProgressReport {
        job_id: job.id.clone(),
        epoch,
        started: true,
        log: vec![format!("epoch {epoch} here")],
        ..Default::default()
    };
    assert!(s.report_job(Some(start(1)), None).await.unwrap().accepted);

    // Worker a goes silent; b registers; a is declared lost and the job moves to b, epoch 2.
    let b = s.register_worker(TOKEN, worker("b", vec![])).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let moved = loop {
        let _ = s.worker_heartbeat(&b.id, vec![]).await.unwrap();
        let j = s.get_job(&job.id).await.unwrap();
        if j.state() == JobState::Placed && j.worker_id == b.id {
            break j;
        }
        assert!(Instant::now() < deadline, "job never moved: {j:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!((moved.epoch, moved.attempt), (2, 2));
    assert!(
        moved.history[0].contains(&format!("worker {} lost", a.id)),
        "{:?}",
        moved.history
    );
    assert!(s
        .list_workers()
        .await
        .unwrap()
        .iter()
        .any(|w| w.id == a.id && w.lost));

    // The zombie wakes up: its reports carry epoch 1 and change nothing.
    let late = s.report_job(Some(start(1)), None).await.unwrap();
    assert!(!late.accepted);
    assert!(late.reason.contains("stale epoch 1"), "{}", late.reason);
    let finish = |epoch, ok| JobFinishReport {
        job_id: job.id.clone(),
        epoch,
        ok,
        result_json: format!("{{\"by\": {epoch}}}"),
        ..Default::default()
    };
    assert!(
        !s.report_job(None, Some(finish(1, true)))
            .await
            .unwrap()
            .accepted
    );
    let lost_beat = s
        .worker_heartbeat(
            &a.id,
            vec![RunningJob {
                job_id: job.id.clone(),
                epoch: 1,
            }],
        )
        .await
        .unwrap();
    assert!(lost_beat.lost, "a lost worker is told to register again");
    assert_eq!(lost_beat.stop, vec![job.id.clone()]);

    assert!(s.report_job(Some(start(2)), None).await.unwrap().accepted);
    assert!(
        s.report_job(None, Some(finish(2, true)))
            .await
            .unwrap()
            .accepted
    );
    let done = s.get_job(&job.id).await.unwrap();
    assert_eq!(done.state(), JobState::Succeeded);
    assert_eq!(
        done.result_json, "{\"by\": 2}",
        "the replacement's result, once"
    );
    assert!(
        !s.report_job(None, Some(finish(2, true)))
            .await
            .unwrap()
            .accepted,
        "no second finish"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_retry_with_backoff_then_dead_letter_and_cancel_stops_work() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_with_gold(dir.path(), 4).await;
    let s: Arc<Service> = node.coordinator.service().clone();
    let w = s.register_worker(TOKEN, worker("w", vec![])).await.unwrap();
    let job = s
        .submit_job(&Actor::SYSTEM, train_request("", 2))
        .await
        .unwrap();
    let fail = |epoch| JobFinishReport {
        job_id: job.id.clone(),
        epoch,
        ok: false,
        error: "out of disk".into(),
        ..Default::default()
    };
    let first = wait_for(&s, &job.id, "first placement", |j| {
        j.state() == JobState::Placed
    })
    .await;
    assert!(
        s.report_job(None, Some(fail(first.epoch)))
            .await
            .unwrap()
            .accepted
    );
    let queued = s.get_job(&job.id).await.unwrap();
    assert_eq!(queued.state(), JobState::Queued);
    let wait = queued.not_before_ms - gloss_coordinator::service::now_ms();
    assert!(
        wait > 1_000 && wait <= gloss_state::jobs::BACKOFF_BASE_MS,
        "backoff {wait} ms"
    );
    let second = wait_for(&s, &job.id, "retry", |j| j.state() == JobState::Placed).await;
    assert_eq!((second.attempt, second.epoch), (2, 2));
    s.worker_heartbeat(&w.id, vec![]).await.unwrap();
    assert!(s.report_job(None, Some(fail(2))).await.unwrap().accepted);
    let dead = s.get_job(&job.id).await.unwrap();
    assert_eq!(dead.state(), JobState::Failed);
    assert_eq!(dead.error, "dead-lettered after 2 attempt(s): out of disk");
    assert_eq!(dead.history.len(), 2);

    // Cancel: a queued job ends at once; a running one is stopped through the heartbeat.
    let queued = s
        .submit_job(&Actor::SYSTEM, train_request("", 1))
        .await
        .unwrap();
    let running = s
        .submit_job(&Actor::SYSTEM, train_request("", 1))
        .await
        .unwrap();
    let cancelled = s.cancel_job(&Actor::SYSTEM, &queued.id).await.unwrap();
    assert_eq!(cancelled.state(), JobState::Cancelled);
    let placed = wait_for(&s, &running.id, "placement", |j| {
        j.state() == JobState::Placed
    })
    .await;
    let progress = JobProgressReport {
        job_id: running.id.clone(),
        epoch: placed.epoch,
        started: true,
        ..Default::default()
    };
    assert!(
        s.report_job(Some(progress.clone()), None)
            .await
            .unwrap()
            .accepted
    );
    s.cancel_job(&Actor::SYSTEM, &running.id).await.unwrap();
    let beat = s
        .worker_heartbeat(
            &w.id,
            vec![RunningJob {
                job_id: running.id.clone(),
                epoch: placed.epoch,
            }],
        )
        .await
        .unwrap();
    assert_eq!(beat.stop, vec![running.id.clone()]);
    assert!(!s.report_job(Some(progress), None).await.unwrap().accepted);
    let stop = JobFinishReport {
        job_id: running.id.clone(),
        epoch: placed.epoch,
        ok: false,
        error: "cancelled".into(),
        ..Default::default()
    };
    s.report_job(None, Some(stop)).await.unwrap();
    assert_eq!(
        s.get_job(&running.id).await.unwrap().state(),
        JobState::Cancelled
    );
    let err = s.cancel_job(&Actor::SYSTEM, &running.id).await.unwrap_err();
    assert!(
        err.to_string().contains("already ended (cancelled)"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gpu_jobs_that_do_not_fit_together_never_share_the_gpu() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_with_gold(dir.path(), 4).await;
    let s: Arc<Service> = node.coordinator.service().clone();
    let gpu = Gpu {
        index: 0,
        model: "h200".into(),
        memory_bytes: 80 << 30,
    };
    let w = s
        .register_worker(TOKEN, worker("gpu", vec![gpu]))
        .await
        .unwrap();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let mut req = train_request("", 1);
        req.resources = Some(Resources {
            gpu_count: 1,
            gpu_memory_bytes: 60 << 30,
            ..Default::default()
        });
        ids.push(s.submit_job(&Actor::SYSTEM, req).await.unwrap().id);
    }
    let first = wait_for(&s, &ids[0], "first GPU job", |j| {
        j.state() == JobState::Placed
    })
    .await;
    assert_eq!(
        (first.worker_id.as_str(), first.gpus.as_slice()),
        (w.id.as_str(), &[0u32][..])
    );
    for _ in 0..10 {
        s.worker_heartbeat(
            &w.id,
            vec![RunningJob {
                job_id: ids[0].clone(),
                epoch: 1,
            }],
        )
        .await
        .unwrap();
        let second = s.get_job(&ids[1]).await.unwrap();
        assert_eq!(
            second.state(),
            JobState::Queued,
            "60 + 60 GiB never fit one 80 GiB GPU"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let done = JobFinishReport {
        job_id: ids[0].clone(),
        epoch: 1,
        ok: true,
        result_json: "{}".into(),
        ..Default::default()
    };
    assert!(s.report_job(None, Some(done)).await.unwrap().accepted);
    let second = wait_for(&s, &ids[1], "second GPU job", |j| {
        j.state() == JobState::Placed
    })
    .await;
    assert_eq!(second.gpus, vec![0]);
    // A bad request names the field.
    let mut bad = train_request("", 1);
    bad.resources = Some(Resources {
        gpu_memory_bytes: 1 << 30,
        ..Default::default()
    });
    let err = s.submit_job(&Actor::SYSTEM, bad).await.unwrap_err();
    assert!(err.to_string().contains("resources.gpu_count"), "{err}");
    let err = s
        .submit_job(&Actor::SYSTEM, train_request("[1]", 1))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("spec.config_json"), "{err}");
}

async fn run_job(s: &Service, kind: JobKind, model: &str, config: &str) -> Job {
    let done = run_films_job(s, kind, model, config).await;
    assert_eq!(
        done.state(),
        JobState::Succeeded,
        "{kind:?} {model}: {}",
        done.error
    );
    done
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_distillation_loop_runs_from_teacher_to_promoted_student_and_export() {
    let models = test_models();
    assert!(
        models.join("minilm/model.safetensors").exists(),
        "run crates/gloss-ml/scripts/fetch-test-models.sh first (MiniLM in {})",
        models.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let node = node_with_gold(dir.path(), 160).await;
    let s: Arc<Service> = node.coordinator.service().clone();
    let worker = TestWorker::start(&node, dir.path(), models.clone(), None);
    let digest = gloss_worker::model_store::dir_digest(&models.join("minilm")).unwrap();
    let teacher = "similarity:minilm";
    let with_digest = format!(
        r#"{{"sha256": "{digest}", "descriptions": ["a positive, enthusiastic review", "a negative, disappointed review"]}}"#
    );

    // A wrong digest is refused, never loaded.
    let req = SubmitJobRequest {
        spec: Some(JobSpec {
            kind: JobKind::Evaluate as i32,
            project: "films".into(),
            task: "polarity".into(),
            model: teacher.into(),
            config_json: format!(r#"{{"sha256": "{}"}}"#, "0".repeat(64)),
        }),
        max_attempts: 1,
        ..Default::default()
    };
    let bad = s.submit_job(&Actor::SYSTEM, req).await.unwrap();
    let bad = wait_for(&s, &bad.id, "digest check", |j| {
        j.state() == JobState::Failed
    })
    .await;
    assert!(bad.error.contains("refusing to load"), "{}", bad.error);

    // Teacher: pre-annotate, then score on the gold test split.
    let predicted = run_job(&s, JobKind::Predict, teacher, &with_digest).await;
    let r: serde_json::Value = serde_json::from_str(&predicted.result_json).unwrap();
    assert_eq!(r["suggestions"], 160);
    let teacher_eval = run_job(&s, JobKind::Evaluate, teacher, &with_digest).await;
    let r: serde_json::Value = serde_json::from_str(&teacher_eval.result_json).unwrap();
    let teacher_score = r["gold-test:accuracy"].as_f64().unwrap();

    // Student: train (uploaded to the registry), evaluate, promote by the rule.
    let trained = run_job(
        &s,
        JobKind::Train,
        "",
        r#"{"epochs": 8, "patience": 8, "seed": 3}"#,
    )
    .await;
    let r: serde_json::Value = serde_json::from_str(&trained.result_json).unwrap();
    assert_eq!(r["model"], "films/polarity/tiny");
    let name = "films/polarity/tiny";
    let model = s.get_model(name, 0).await.unwrap();
    assert!(model.complete && model.artifact_bytes > 0 && model.artifact_bytes < 10 << 20);
    assert_eq!(model.job_id, trained.id);
    assert_eq!(
        model.dataset_version,
        "films/reviews imports=1 examples=160; gold=160"
    );
    let err = s
        .promote_model(&Actor::SYSTEM, name, 0, false, "")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not been evaluated"), "{err}");
    run_job(&s, JobKind::Evaluate, name, "").await;
    let model = s.get_model(name, 0).await.unwrap();
    let student_score = model.metrics["gold-test:accuracy"];
    assert!(
        student_score > teacher_score,
        "the student ({student_score}) should beat the teacher ({teacher_score}) on this data"
    );
    let promoted = s
        .promote_model(&Actor::SYSTEM, name, 0, false, "")
        .await
        .unwrap();
    assert!(promoted.promoted);
    assert!(
        promoted
            .promotion_note
            .contains("beats teacher similarity:minilm"),
        "{}",
        promoted.promotion_note
    );

    // The promoted student is the task's assisting model: its suggestions replace the teacher's.
    let assisted = run_job(&s, JobKind::Predict, "assisting", "").await;
    let r: serde_json::Value = serde_json::from_str(&assisted.result_json).unwrap();
    assert_eq!(r["model"], format!("{name}@{}", model.version));

    // Exported, it runs on its own with `gloss predict`'s code.
    let (_, chunks) = s.model_chunks(name, 0).await.unwrap();
    let bytes: Vec<u8> = chunks.into_iter().flat_map(|c| c.data).collect();
    let out = dir.path().join("exported");
    gloss_worker::model_store::unpack(&bytes, &out).unwrap();
    let student = gloss_ml::TinyStudent::load(&out, &gloss_ml::Device::Cpu).unwrap();
    let scores = student
        .predict(&["a wonderful moving film, review number 9999"], 1)
        .unwrap();
    assert_eq!(student.labels()[gloss_ml::train::argmax(&scores[0])], "POS");
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_placed_on_a_gpu_says_which_device_it_runs_on() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_with_gold(dir.path(), 30).await;
    let s: Arc<Service> = node.coordinator.service().clone();
    let mut args = TestWorker::args(&node, dir.path(), dir.path().join("models"), None);
    args.gpus = Some("h200:141GiB".into());
    let worker = TestWorker::start_with(args);
    let mut req = train_request(r#"{"epochs": 2, "patience": 2}"#, 1);
    req.resources = Some(Resources {
        cpu_millis: 1000,
        memory_bytes: 512 << 20,
        gpu_count: 1,
        gpu_memory_bytes: 40 << 30,
        ..Default::default()
    });
    let job = s.submit_job(&Actor::SYSTEM, req).await.unwrap();
    let done = wait_for(&s, &job.id, "gpu job", |j| {
        matches!(j.state(), JobState::Succeeded | JobState::Failed)
    })
    .await;
    assert_eq!(done.state(), JobState::Succeeded, "{}", done.error);
    assert_eq!(done.gpus, vec![0]);
    let logs = s.job_logs(&job.id, 0).await.unwrap();
    let expected = if cfg!(feature = "cuda") {
        "GPU 0"
    } else {
        "built without the `cuda` feature: fell back to the CPU"
    };
    assert!(logs.iter().any(|l| l.text.contains(expected)), "{logs:?}");
    worker.stop().await;
}
