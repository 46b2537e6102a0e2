//! Storage behaviour when an operation fails at each injected failpoint: nothing half-done is
//! visible, and what was made durable before the failure survives a reopen.
//!
//! Run with `cargo test --workspace --features gloss-raft/failpoints --test failpoints`. The
//! failpoints are process-global, so the cases run one after another in a single test.

use gloss_proto::v1::{
    command, command_result, Command, CommandBatch, CommandResult, CreateProject,
};
use gloss_raft::openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use gloss_raft::openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, RaftSnapshotBuilder};
use gloss_raft::{LogStore, Request, StateMachineStore, TypeConfig};
use prost::Message;

fn log_id(index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(1, 1), index)
}

fn create_project_command(name: &str) -> Command {
    Command {
        version: 1,
        at_ms: 1,
        idempotency_key: String::new(),
        actor: String::new(),
        body: Some(command::Body::CreateProject(CreateProject {
            name: name.into(),
            description: String::new(),
        })),
    }
}

fn entry(index: u64, cmd: Command) -> Entry<TypeConfig> {
    Entry {
        log_id: log_id(index),
        payload: EntryPayload::Normal(Request {
            command: cmd.encode_to_vec(),
        }),
    }
}

fn create_project(index: u64, name: &str) -> Entry<TypeConfig> {
    entry(index, create_project_command(name))
}

/// One entry creating each of `names`, as a command batch.
fn create_projects(index: u64, names: &[&str]) -> Entry<TypeConfig> {
    let batch = Command {
        version: gloss_proto::BATCH_VERSION,
        body: Some(command::Body::Batch(CommandBatch {
            commands: names.iter().map(|n| create_project_command(n)).collect(),
        })),
        ..Command::default()
    };
    entry(index, batch)
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

/// A batch entry that fails half-way is applied again after a restart: the commands written
/// before the failure are not applied twice, the rest are applied once.
async fn batches(dir: &std::path::Path) {
    let path = dir.join("batch");
    let mut sm = StateMachineStore::open(&path).unwrap();
    fail::cfg("apply-batch-part", "1*off->return").unwrap();
    assert!(sm
        .apply([create_projects(1, &["a", "b", "c"])])
        .await
        .is_err());
    fail::remove("apply-batch-part");
    drop(sm);
    let mut sm = StateMachineStore::open(&path).unwrap();
    assert_eq!(sm.applied_state().await.unwrap().0, None);
    assert!(project_exists(&sm, "a"), "the first command was written");
    assert!(!project_exists(&sm, "b") && !project_exists(&sm, "c"));

    let replies = sm
        .apply([create_projects(1, &["a", "b", "c"])])
        .await
        .unwrap();
    assert_eq!(sm.applied_state().await.unwrap().0, Some(log_id(1)));
    let result = CommandResult::decode(replies[0].result.as_slice()).unwrap();
    let Some(command_result::Result::Batch(batch)) = result.result else {
        panic!("a batch's result holds one result per command: {result:?}");
    };
    let outcomes: Vec<&str> = batch
        .results
        .iter()
        .map(|r| match &r.result {
            Some(command_result::Result::Project(_)) => "created",
            Some(command_result::Result::Error(e)) => e.message.as_str(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        outcomes,
        ["applied before a restart", "created", "created"],
        "the first command is not applied twice (it would be refused as existing)"
    );
    assert!(["a", "b", "c"].iter().all(|n| project_exists(&sm, n)));
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
    batches(dir.path()).await;
    snapshots(dir.path()).await;
    scenario.teardown();
}
