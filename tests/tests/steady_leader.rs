//! A large import into a three-node group, with snapshots built while it runs, keeps the group's
//! leader: no node sees another term or loses sight of the leader from the first record to the
//! last. Heartbeats must not wait behind megabyte appends, fsyncs or snapshot writes.
//!
//! It imports a million examples (27 s on the project's 2-core machine);
//! `GLOSS_STEADY_EXAMPLES=N` runs it with another count.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gloss_core::config::Overrides;
use gloss_tests::{import, jsonl, start_group};

const WORDS: &[&str] = &[
    "river", "market", "quiet", "signal", "harbour", "lantern", "orchard", "ledger", "copper",
    "meadow", "window", "summit", "thread", "canvas", "pepper", "circuit",
];

/// About 200 bytes of text per record, as the feed benchmark generates.
fn body(n: usize) -> String {
    let mut out = String::with_capacity(n * 230);
    for i in 0..n {
        out.push_str("{\"text\":\"record ");
        out.push_str(&i.to_string());
        for k in 0..24 {
            out.push(' ');
            out.push_str(WORDS[(i * 7 + k * 13 + k * k) % WORDS.len()]);
        }
        out.push_str("\"}\n");
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_import_with_snapshots_keeps_the_leader_and_the_term() {
    let examples: usize = std::env::var("GLOSS_STEADY_EXAMPLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    // Batches of 500 records (~110 KiB entries) and a snapshot every 100 entries: a snapshot is
    // built every 50,000 records while the import goes on.
    let nodes = start_group(dir.path(), 3, None, |_| Overrides {
        snapshot_every: Some(100),
        import_batch: Some(500),
        ..Overrides::default()
    })
    .await;
    let leader = nodes[0]
        .coordinator
        .wait_for_leader(Duration::from_secs(20))
        .await
        .unwrap();
    nodes[0].create_project("p").await;
    let (term, _, _) = nodes[0].coordinator.raft_view();

    // Watch every node's Raft metrics for the whole import: any other term, or a moment without
    // this leader, is recorded.
    let done = Arc::new(AtomicBool::new(false));
    let changes = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut watchers = Vec::new();
    for n in &nodes {
        let mut rx = n.coordinator.raft_metrics();
        let (done, changes, id) = (done.clone(), changes.clone(), n.id());
        watchers.push(tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                {
                    let m = rx.borrow_and_update();
                    if m.current_term != term || m.current_leader != Some(leader) {
                        changes.lock().unwrap().push(format!(
                            "node {id}: term {} leader {:?}",
                            m.current_term, m.current_leader
                        ));
                    }
                }
                let _ = tokio::time::timeout(Duration::from_millis(100), rx.changed()).await;
            }
        }));
    }

    let text = body(examples);
    let started = Instant::now();
    let summary = import(&nodes[1].client, jsonl("p", "big"), text)
        .await
        .expect("import");
    let took = started.elapsed();
    assert_eq!(summary.imported, examples as u64);
    // Every node holds the whole dataset before the watch ends.
    for n in &nodes {
        let deadline = Instant::now() + Duration::from_secs(60);
        while n.dataset("p", "big").await.example_count < examples as u64 {
            assert!(
                Instant::now() < deadline,
                "node {} did not catch up",
                n.id()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    done.store(true, Ordering::Relaxed);
    for w in watchers {
        w.await.unwrap();
    }
    let timeouts: Vec<u64> = nodes
        .iter()
        .map(|n| n.coordinator.service().stages().replication_timeouts())
        .collect();
    eprintln!(
        "{examples} examples imported in {took:.1?}; AppendEntries given up per node: {timeouts:?}"
    );
    let status = nodes[0].status().await;
    assert!(
        status.snapshot_index > 0,
        "no snapshot was built during the import: {status:?}"
    );
    let changes: Vec<String> = changes.lock().unwrap().iter().take(10).cloned().collect();
    assert!(
        changes.is_empty(),
        "the import cost the group its leader or term: {changes:?}"
    );
    for n in &nodes {
        assert_eq!(n.coordinator.raft_view().0, term, "node {} term", n.id());
    }
    for n in nodes {
        n.coordinator.shutdown().await.unwrap();
    }
}
