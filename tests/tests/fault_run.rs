//! The fault run: a three-process group, concurrent clients writing with idempotency keys, and the
//! leader `kill -9`ed again and again (and restarted). Afterwards every member has rejoined and
//! converged to the same state digest, every acknowledged write is present exactly once, and
//! failover times (kill to the next successful write) are reported.
//!
//! `GLOSS_FAULT_KILLS` sets the number of leader kills (default 20; use 50 or more for a longer
//! run outside CI).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gloss_proto::v1::{CreateProjectRequest, GetClusterStatusRequest, GetStateDigestRequest};
use gloss_tests::{free_port, project_names, NodeProcess};

const BINARY: &str = env!("CARGO_BIN_EXE_gloss-under-test");

struct Member {
    id: u64,
    ports: (u16, u16, u16),
    dir: std::path::PathBuf,
    process: Option<NodeProcess>,
}

fn start(m: &Member, members: &str) -> NodeProcess {
    let (grpc, http, raft) = m.ports;
    let extra = [
        "--node-id".to_string(),
        m.id.to_string(),
        "--initial-members".into(),
        members.into(),
    ];
    NodeProcess::start_with(BINARY, &m.dir, grpc, http, raft, &extra)
}

/// Creates project `name` with idempotency key `name`, retrying (same key) across servers until
/// it is acknowledged. A retry of a write that was applied but not acknowledged must return the
/// first result, not "already exists".
async fn write_once(
    servers: &[String],
    name: &str,
    stop: &AtomicBool,
) -> Option<(Instant, Instant)> {
    let mut attempt = 0usize;
    loop {
        if stop.load(Ordering::SeqCst) && attempt > 200 {
            return None;
        }
        let rotated: Vec<String> = servers
            .iter()
            .cycle()
            .skip(attempt)
            .take(servers.len())
            .cloned()
            .collect();
        attempt += 1;
        let Ok(client) = gloss_tests::connect(&rotated).await else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let req = CreateProjectRequest {
            name: name.into(),
            description: String::new(),
            idempotency_key: name.into(),
        };
        let sent = Instant::now();
        let call = tokio::time::timeout(
            Duration::from_secs(5),
            client.projects().create_project(req),
        )
        .await;
        match call {
            Ok(Ok(p)) => {
                assert_eq!(p.into_inner().name, name);
                return Some((sent, Instant::now()));
            }
            Ok(Err(status)) => {
                assert_ne!(
                    status.code(),
                    tonic::Code::AlreadyExists,
                    "retry of {name} was applied twice"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(_) => {}
        }
    }
}

/// The node that reports itself leader (a follower's view may be stale).
async fn leader(servers: &[String]) -> Option<u64> {
    for s in servers {
        let Ok(client) = gloss_tests::connect(std::slice::from_ref(s)).await else {
            continue;
        };
        let status = tokio::time::timeout(
            Duration::from_secs(1),
            client
                .cluster()
                .get_cluster_status(GetClusterStatusRequest {}),
        )
        .await;
        if let Ok(Ok(st)) = status {
            let st = st.into_inner();
            if st.role == "leader" {
                return Some(st.node_id);
            }
        }
    }
    None
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_members_rejoin_and_converge_and_no_acknowledged_write_is_lost_or_applied_twice() {
    let kills: usize = std::env::var("GLOSS_FAULT_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let dir = tempfile::tempdir().unwrap();
    let mut members: Vec<Member> = (1..=3)
        .map(|id| Member {
            id,
            ports: (free_port(), free_port(), free_port()),
            dir: dir.path().join(format!("n{id}")),
            process: None,
        })
        .collect();
    let list: Vec<String> = members
        .iter()
        .map(|m| format!("{}=127.0.0.1:{}", m.id, m.ports.2))
        .collect();
    let list = list.join(",");
    let servers: Vec<String> = members
        .iter()
        .map(|m| format!("127.0.0.1:{}", m.ports.0))
        .collect();
    for m in members.iter_mut() {
        m.process = Some(start(m, &list));
    }
    members[0]
        .process
        .as_ref()
        .unwrap()
        .ready(Duration::from_secs(60))
        .await;

    let stop = Arc::new(AtomicBool::new(false));
    // (name, when the acknowledged attempt was sent, when it was acknowledged)
    let acked = Arc::new(Mutex::new(Vec::<(String, Instant, Instant)>::new()));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (servers, stop, acked) = (servers.clone(), stop.clone(), acked.clone());
            tokio::spawn(async move {
                for k in 0.. {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let name = format!("w{w}-{k}");
                    if let Some((sent, at)) = write_once(&servers, &name, &stop).await {
                        acked.lock().unwrap().push((name, sent, at));
                    }
                }
            })
        })
        .collect();

    let mut failovers = Vec::new();
    let mut elections = Vec::new();
    for _ in 0..kills {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let Some(id) = leader(&servers).await else {
            continue;
        };
        let victim = members.iter_mut().find(|m| m.id == id).unwrap();
        let killed_at = Instant::now();
        victim.process.take().unwrap().kill9();
        let survivors: Vec<String> = servers
            .iter()
            .filter(|s| !s.ends_with(&format!(":{}", victim.ports.0)))
            .cloned()
            .collect();
        let elect = async {
            loop {
                if leader(&survivors).await.is_some_and(|l| l != id) {
                    return Instant::now();
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        if let Ok(at) = tokio::time::timeout(Duration::from_secs(30), elect).await {
            elections.push(at - killed_at);
        }
        // Failover: until the first write sent after the kill is acknowledged.
        let deadline = killed_at + Duration::from_secs(30);
        loop {
            let resumed = acked
                .lock()
                .unwrap()
                .iter()
                .filter(|(_, sent, _)| *sent > killed_at)
                .map(|(_, _, at)| *at)
                .min();
            if let Some(at) = resumed {
                failovers.push(at - killed_at);
                break;
            }
            assert!(
                Instant::now() < deadline,
                "writes did not resume within 30 s of killing leader {id}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Restart the victim and let it rejoin before the next kill, so each kill takes down
        // exactly one member (the leader) of a full group.
        let restarted = start(victim, &list);
        restarted.ready(Duration::from_secs(60)).await;
        victim.process = Some(restarted);
    }
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.await.unwrap();
    }

    // Every member, killed and restarted many times, converges to the same state.
    let started = Instant::now();
    loop {
        let mut reports = Vec::new();
        for s in &servers {
            if let Ok(c) = gloss_tests::connect(std::slice::from_ref(s)).await {
                if let Ok(d) = c.cluster().get_state_digest(GetStateDigestRequest {}).await {
                    reports.push(d.into_inner());
                }
            }
        }
        let same_index = reports.len() == 3
            && reports
                .iter()
                .all(|r| r.applied_index == reports[0].applied_index);
        if same_index {
            let first = &reports[0].column_families;
            assert!(
                reports.iter().all(|r| &r.column_families == first),
                "replicas differ: {reports:?}"
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "members did not converge: {reports:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let client = members[0]
        .process
        .as_ref()
        .unwrap()
        .ready(Duration::from_secs(60))
        .await;
    let stored = project_names(&client).await;
    let acked = acked.lock().unwrap();
    for (name, _, _) in acked.iter() {
        assert_eq!(
            stored.iter().filter(|s| *s == name).count(),
            1,
            "acknowledged write {name} is not there exactly once"
        );
    }
    failovers.sort();
    elections.sort();
    eprintln!(
        "fault run: new leader elected after p50 {:?} p99 {:?}",
        percentile(&elections, 0.5),
        percentile(&elections, 0.99)
    );
    eprintln!(
        "fault run: {} leader kills, {} acknowledged writes, failover p50 {:?} p99 {:?} max {:?}",
        failovers.len(),
        acked.len(),
        percentile(&failovers, 0.5),
        percentile(&failovers, 0.99),
        failovers.last().unwrap()
    );
    assert!(
        failovers.len() * 2 >= kills,
        "too few kills landed on a leader"
    );
}
