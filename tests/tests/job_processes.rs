//! Workers as real processes: a worker `kill -9`ed in the middle of training loses its job to
//! the other worker, which completes it once; a worker frozen (SIGSTOP) long enough to be
//! declared lost comes back as a zombie whose reports are refused by the epoch.

use std::time::{Duration, Instant};

use gloss_proto::v1::job_service_client::JobServiceClient;
use gloss_proto::v1::*;
use gloss_tests::{free_port, seed_choice_gold, NodeProcess, WorkerProcess};

const BINARY: &str = env!("CARGO_BIN_EXE_gloss-under-test");

async fn submit(jobs: &mut JobServiceClient<gloss_client::Conn>, epochs: u32) -> Job {
    let req = SubmitJobRequest {
        spec: Some(JobSpec {
            kind: JobKind::Train as i32,
            project: "films".into(),
            task: "polarity".into(),
            config_json: format!("{{\"epochs\": {epochs}, \"patience\": {epochs}}}"),
            ..Default::default()
        }),
        max_attempts: 3,
        ..Default::default()
    };
    jobs.submit_job(req).await.unwrap().into_inner()
}

async fn wait(
    jobs: &mut JobServiceClient<gloss_client::Conn>,
    id: &str,
    what: &str,
    done: impl Fn(&Job) -> bool,
) -> Job {
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let job = jobs
            .get_job(GetJobRequest { id: id.into() })
            .await
            .unwrap()
            .into_inner();
        if done(&job) {
            return job;
        }
        assert!(Instant::now() < deadline, "{what}: stuck at {job:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn name_of(jobs: &mut JobServiceClient<gloss_client::Conn>, worker_id: &str) -> String {
    let workers = jobs
        .list_workers(ListWorkersRequest {})
        .await
        .unwrap()
        .into_inner()
        .workers;
    workers
        .into_iter()
        .find(|w| w.id == worker_id)
        .map(|w| w.name)
        .expect("the job's worker is registered")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_or_frozen_worker_loses_its_job_which_completes_once_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("join-token");
    std::fs::write(&token, "process-test-join-token-0123456789").unwrap();
    let (grpc, http, raft) = (free_port(), free_port(), free_port());
    let extra = ["--join-token-file".to_string(), token.display().to_string()];
    let node = NodeProcess::start_with(BINARY, &dir.path().join("c1"), grpc, http, raft, &extra);
    let client = node.ready(Duration::from_secs(30)).await;
    seed_choice_gold(&client, 80).await;
    let raft_addr = std::net::SocketAddr::from(([127, 0, 0, 1], raft));
    let mut workers = vec![
        WorkerProcess::start(BINARY, dir.path(), "alpha", raft_addr, &token),
        WorkerProcess::start(BINARY, dir.path(), "beta", raft_addr, &token),
    ];
    let mut jobs = JobServiceClient::new(client.channel());

    // 1. kill -9 in the middle of training.
    let job = submit(&mut jobs, 25).await;
    let running = wait(&mut jobs, &job.id, "first epoch", |j| {
        j.state() == JobState::Running && !j.metrics.is_empty()
    })
    .await;
    let victim = name_of(&mut jobs, &running.worker_id).await;
    let at = workers.iter().position(|w| w.name == victim).unwrap();
    workers.remove(at).kill9();
    let done = wait(&mut jobs, &job.id, "completion after the kill", |j| {
        matches!(j.state(), JobState::Succeeded | JobState::Failed)
    })
    .await;
    assert_eq!(done.state(), JobState::Succeeded, "{done:?}");
    assert_eq!(
        done.attempt, 2,
        "re-placed exactly once: {:?}",
        done.history
    );
    assert!(done.history[0].contains("lost"), "{:?}", done.history);
    let survivor = &workers[0].name;
    assert_eq!(&name_of(&mut jobs, &done.worker_id).await, survivor);
    let result: serde_json::Value = serde_json::from_str(&done.result_json).unwrap();
    assert!(
        result["model_dir"]
            .as_str()
            .unwrap()
            .contains(&format!("/{survivor}/")),
        "{result}"
    );

    // 2. A frozen worker: declared lost while stopped, then woken up as a zombie.
    workers.push(WorkerProcess::start(
        BINARY,
        dir.path(),
        "gamma",
        raft_addr,
        &token,
    ));
    let job = submit(&mut jobs, 25).await;
    let running = wait(&mut jobs, &job.id, "first epoch", |j| {
        j.state() == JobState::Running && !j.metrics.is_empty()
    })
    .await;
    let frozen_name = name_of(&mut jobs, &running.worker_id).await;
    let frozen = workers.iter().find(|w| w.name == frozen_name).unwrap();
    frozen.signal("STOP");
    let moved = wait(&mut jobs, &job.id, "re-placement", |j| {
        j.epoch == running.epoch + 1
    })
    .await;
    assert_ne!(moved.worker_id, running.worker_id);
    frozen.signal("CONT");
    let done = wait(&mut jobs, &job.id, "completion after the freeze", |j| {
        matches!(j.state(), JobState::Succeeded | JobState::Failed)
    })
    .await;
    assert_eq!(done.state(), JobState::Succeeded, "{done:?}");
    assert_eq!(
        done.epoch,
        running.epoch + 1,
        "the zombie never took the job back"
    );
    assert_ne!(name_of(&mut jobs, &done.worker_id).await, frozen_name);
    // The zombie learnt it was replaced and stopped its copy.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let log = std::fs::read_to_string(&frozen.log).unwrap_or_default();
        if log.contains("declared lost") || log.contains("report refused") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the zombie never noticed:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
