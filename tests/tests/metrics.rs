//! `/metrics`: the figures the Grafana dashboard in `deploy/grafana` reads (feed queue depth
//! and lease expiries, jobs by state, GPU memory held on each worker's GPUs, Raft) match what
//! happened on the cluster.

use gloss_coordinator::access::Actor;
use std::io::{Read as _, Write as _};
use std::time::{Duration, Instant};

use gloss_core::config::Overrides;
use gloss_proto::v1::*;
use gloss_tests::{seed_choice_gold, start_node_in};

const TOKEN: &str = "metrics-test-join-token-0123456789";

/// The value of the sample `series` (name and labels exactly as rendered) on `/metrics`.
fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

fn scrape(addr: std::net::SocketAddr) -> String {
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    conn.write_all(b"GET /metrics HTTP/1.0\r\nHost: gloss\r\n\r\n")
        .unwrap();
    let mut reply = String::new();
    conn.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.0 200"), "{reply}");
    reply
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_show_queues_expired_leases_jobs_and_gpu_memory() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("join-token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let node = start_node_in(
        &dir.path().join("data"),
        Overrides {
            join_token_file: Some(token_file),
            ..Overrides::default()
        },
    )
    .await;
    seed_choice_gold(&node.client, 20).await;
    let service = node.coordinator.service().clone();
    let http = node.coordinator.addrs().http;

    // A second task on the same 20 examples, with one-second leases.
    let mut fresh = Task {
        project: "films".into(),
        name: "fresh".into(),
        labels: vec!["POS".into(), "NEG".into()],
        source_dataset: "reviews".into(),
        lease_ttl_ms: 1_000,
        ..Default::default()
    };
    fresh.set_interface(Interface::Choice);
    service.create_task(&Actor::SYSTEM, fresh).await.unwrap();
    let next = |who: &str| NextRequest {
        project: "films".into(),
        task: "fresh".into(),
        annotator: who.into(),
        count: 3,
        ..Default::default()
    };
    assert_eq!(
        service
            .next_examples(&Actor::SYSTEM, next("idle"))
            .await
            .unwrap()
            .examples
            .len(),
        3
    );
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    // The next annotator's request returns the idle one's three examples to the queue.
    service
        .next_examples(&Actor::SYSTEM, next("busy"))
        .await
        .unwrap();

    // A GPU job placed on an 80 GiB GPU, and a job no worker can take.
    let gpu = Gpu {
        index: 0,
        model: "h200".into(),
        memory_bytes: 80 << 30,
    };
    service
        .register_worker(
            TOKEN,
            Worker {
                name: "gpu-box".into(),
                cpu_millis: 4000,
                memory_bytes: 8 << 30,
                gpus: vec![gpu],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let job = |resources: Resources, constraints: &[(&str, &str)]| SubmitJobRequest {
        spec: Some(JobSpec {
            kind: JobKind::Train as i32,
            project: "films".into(),
            task: "polarity".into(),
            ..Default::default()
        }),
        resources: Some(resources),
        constraints: constraints
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        max_attempts: 1,
        ..Default::default()
    };
    let gpu_job = service
        .submit_job(
            &Actor::SYSTEM,
            job(
                Resources {
                    gpu_count: 1,
                    gpu_memory_bytes: 60 << 30,
                    ..Default::default()
                },
                &[],
            ),
        )
        .await
        .unwrap();
    service
        .submit_job(
            &Actor::SYSTEM,
            job(Resources::default(), &[("zone", "nowhere")]),
        )
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while service.get_job(&gpu_job.id).await.unwrap().state() != JobState::Placed {
        assert!(Instant::now() < deadline, "the GPU job is placed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let body = tokio::task::spawn_blocking(move || scrape(http))
        .await
        .unwrap();
    let get = |series: &str| {
        sample(&body, series).unwrap_or_else(|| panic!("no sample {series} in:\n{body}"))
    };
    assert_eq!(
        get(r#"gloss_feed_queue_depth{project="films",task="fresh"}"#),
        20.0
    );
    assert_eq!(
        get(r#"gloss_feed_queue_depth{project="films",task="polarity"}"#),
        0.0,
        "every example of the seeded task has its gold answer"
    );
    assert_eq!(get("gloss_feed_lease_expiries_total"), 3.0);
    assert!(get("gloss_feed_leased_examples_total") >= 6.0);
    assert_eq!(get(r#"gloss_jobs{state="placed"}"#), 1.0);
    assert_eq!(get(r#"gloss_jobs{state="queued"}"#), 1.0);
    assert_eq!(get(r#"gloss_jobs{state="failed"}"#), 0.0);
    assert_eq!(get(r#"gloss_workers{state="live"}"#), 1.0);
    let labels = r#"{worker="gpu-box",gpu="0",model="h200"}"#;
    assert_eq!(
        get(&format!("gloss_worker_gpu_memory_used_bytes{labels}")),
        (60u64 << 30) as f64
    );
    assert_eq!(
        get(&format!("gloss_worker_gpu_memory_bytes{labels}")),
        (80u64 << 30) as f64
    );
    assert_eq!(get("gloss_raft_is_leader"), 1.0);
    assert!(get("gloss_raft_applied_index") > 0.0);
}
