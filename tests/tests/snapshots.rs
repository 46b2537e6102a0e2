//! Snapshots are built by policy from RocksDB checkpoints, the log is compacted behind them, and a
//! restarted node recovers its state from the snapshot's generation plus the log tail.

use gloss_core::config::Overrides;
use gloss_tests::{export, import, jsonl, start_node_in};

#[tokio::test]
async fn state_survives_restart_after_snapshot_and_log_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let settings = || Overrides {
        snapshot_every: Some(100),
        import_batch: Some(10),
        ..Overrides::default()
    };
    let node = start_node_in(dir.path(), settings()).await;
    node.create_project("p").await;
    // 3,000 records in batches of 10: ~300 log entries, so several snapshots by policy.
    let body: String = (0..3000)
        .map(|i| format!("{{\"text\":\"snapshot record {i}\"}}\n"))
        .collect();
    assert_eq!(
        import(&node.client, jsonl("p", "d"), body.clone())
            .await
            .unwrap()
            .imported,
        3000
    );
    let started = std::time::Instant::now();
    let status = loop {
        let status = node.status().await;
        if status.snapshot_index >= 100 || started.elapsed().as_secs() > 5 {
            break status;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(
        status.snapshot_index >= 100,
        "no snapshot was built: {status:?}"
    );
    assert!(
        status.purged_index > 0,
        "the log was not compacted: {status:?}"
    );
    // A snapshot being built sits beside the current one until it replaces it; once building
    // stops, exactly one is kept.
    let tar_files = || {
        std::fs::read_dir(dir.path().join("snapshots"))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tar"))
            .count()
    };
    let started = std::time::Instant::now();
    while tar_files() != 1 && started.elapsed().as_secs() < 10 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(tar_files(), 1, "exactly the current snapshot is kept");
    node.coordinator.shutdown().await.unwrap();

    let node = start_node_in(dir.path(), settings()).await;
    let ds = node.dataset("p", "d").await;
    assert_eq!(ds.example_count, 3000);
    assert_eq!(export(&node.client, "p", "d").await, body);
}
