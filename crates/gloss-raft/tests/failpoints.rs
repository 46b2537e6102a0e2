//! Storage behaviour when an operation fails at each injected failpoint: nothing half-done is
//! visible, and what was made durable before the failure survives a reopen.
//!
//! Run with `cargo test --workspace --features gloss-raft/failpoints --test failpoints`. The
//! failpoints are process-global, so the cases run one after another in a single test.

use gloss_proto::v1::{command, Command, CreateProject};
use gloss_raft::openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use gloss_raft::openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, RaftSnapshotBuilder};
use gloss_raft::{LogStore, Request, StateMachineStore, TypeConfig};
use prost::Message;

fn log_id(index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(1, 1), index)
}

fn create_project(index: u64, name: &str) -> Entry<TypeConfig> {
    let cmd = Command {
        version: 1,
        at_ms: 1,
        idempotency_key: String::new(),
        actor: String::new(),
        body: Some(command::Body::CreateProject(CreateProject {
            name: name.into(),
            description: String::new(),
        })),
    };
    Entry {
        log_id: log_id(index),
        payload: EntryPayload::Normal(Request {
            command: cmd.encode_to_vec(),
        }),
    }
}

fn blank(index: u64) -> Entry<TypeConfig> {
    Entry {
        log_id: log_id(index),
        payload: EntryPayload::Blank,
    }
}

fn project_exists(sm: &StateMachineStore, name: &str) -> bool {
    gloss_state::read::project(&sm.handle().db(), name)
        .unwrap()
        .is_some()
}

async fn log_appends(dir: &std::path::Path) {
    let path = dir.join("log");
    let mut log = LogStore::open(&path).unwrap();
    fail::cfg("log-append-before", "return").unwrap();
    assert!(log.blocking_append([blank(1)]).await.is_err());
    fail::remove("log-append-before");
    assert_eq!(
        log.get_log_state().await.unwrap().last_log_id,
        None,
        "a failed append wrote nothing"
    );

    fail::cfg("log-append-after", "return").unwrap();
    assert!(log.blocking_append([blank(1)]).await.is_err());
    fail::remove("log-append-after");
    drop(log);
    let mut log = LogStore::open(&path).unwrap();
    assert_eq!(
        log.get_log_state().await.unwrap().last_log_id,
        Some(log_id(1)),
        "what was fsynced before the failure is kept"
    );
}

async fn applies(dir: &std::path::Path) {
    let path = dir.join("apply");
    let mut sm = StateMachineStore::open(&path).unwrap();
    fail::cfg("apply-before-write", "return").unwrap();
    assert!(sm.apply([create_project(1, "a")]).await.is_err());
    fail::remove("apply-before-write");
    drop(sm);
    let mut sm = StateMachineStore::open(&path).unwrap();
    assert_eq!(sm.applied_state().await.unwrap().0, None);
    assert!(
        !project_exists(&sm, "a"),
        "an entry that failed before its write left nothing"
    );

    fail::cfg("apply-after-write", "return").unwrap();
    assert!(sm.apply([create_project(1, "a")]).await.is_err());
    fail::remove("apply-after-write");
    drop(sm);
    let mut sm = StateMachineStore::open(&path).unwrap();
    assert_eq!(
        sm.applied_state().await.unwrap().0,
        Some(log_id(1)),
        "the change and its log id are written together"
    );
    assert!(project_exists(&sm, "a"));
}

async fn snapshots(dir: &std::path::Path) {
    let mut leader = StateMachineStore::open(&dir.join("leader")).unwrap();
    leader.apply([create_project(1, "kept")]).await.unwrap();
    fail::cfg("snapshot-build-after-checkpoint", "return").unwrap();
    assert!(leader
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .is_err());
    fail::remove("snapshot-build-after-checkpoint");
    assert!(
        leader.get_current_snapshot().await.unwrap().is_none(),
        "a failed build leaves no snapshot"
    );
    let snapshot = leader
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();

    let mut follower = StateMachineStore::open(&dir.join("follower")).unwrap();
    follower.apply([blank(1)]).await.unwrap();
    fail::cfg("snapshot-install-before-swap", "return").unwrap();
    let mut data = follower.begin_receiving_snapshot().await.unwrap();
    *data = snapshot.snapshot.try_clone().await.unwrap();
    assert!(follower
        .install_snapshot(&snapshot.meta, data)
        .await
        .is_err());
    fail::remove("snapshot-install-before-swap");
    assert_eq!(
        follower.applied_state().await.unwrap().0,
        Some(log_id(1)),
        "a failed install keeps the old state"
    );
    assert!(!project_exists(&follower, "kept"));

    let mut data = follower.begin_receiving_snapshot().await.unwrap();
    *data = snapshot.snapshot.try_clone().await.unwrap();
    follower
        .install_snapshot(&snapshot.meta, data)
        .await
        .unwrap();
    assert!(
        project_exists(&follower, "kept"),
        "a retried install succeeds"
    );
}

#[tokio::test]
async fn storage_survives_a_failure_at_every_failpoint() {
    let scenario = fail::FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    log_appends(dir.path()).await;
    applies(dir.path()).await;
    snapshots(dir.path()).await;
    scenario.teardown();
}
