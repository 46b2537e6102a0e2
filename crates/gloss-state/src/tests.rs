use gloss_proto::v1::{
    command, command_result, BeginImport, Command, CommandResult, CommitImport, CreateProject,
    StageExamples, StagedExample,
};
use gloss_store::rocksdb::{WriteBatch, DB};
use gloss_store::state_cf;

use crate::{apply, read};

struct Db {
    _dir: tempfile::TempDir,
    db: std::sync::Arc<DB>,
}

fn db() -> Db {
    let dir = tempfile::tempdir().unwrap();
    let db = gloss_store::open(dir.path(), state_cf::ALL).unwrap();
    Db { _dir: dir, db }
}

fn run(db: &DB, body: command::Body, key: &str) -> CommandResult {
    let cmd = Command {
        version: 1,
        at_ms: 1000,
        idempotency_key: key.into(),
        body: Some(body),
    };
    let mut batch = WriteBatch::default();
    let r = apply(db, &cmd, &mut batch).unwrap();
    db.write(batch).unwrap();
    r
}

fn import_of(r: CommandResult) -> gloss_proto::v1::ImportRecord {
    match r.result {
        Some(command_result::Result::Import(i)) => i,
        other => panic!("expected an import, got {other:?}"),
    }
}

fn error_code(r: &CommandResult) -> Option<&str> {
    match &r.result {
        Some(command_result::Result::Error(e)) => Some(e.code.as_str()),
        _ => None,
    }
}

fn ex(text: &str) -> StagedExample {
    StagedExample {
        input_hash: xxh(text).to_be_bytes().to_vec(),
        record_json: format!("{{\"text\":{text:?}}}"),
    }
}

// A stand-in content hash: the state machine only needs distinct 16-byte values per text.
fn xxh(text: &str) -> u128 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325u128, |h, b| {
        (h ^ b as u128).wrapping_mul(0x100_0000_01b3)
    })
}

fn setup(db: &DB) -> u64 {
    run(
        db,
        command::Body::CreateProject(CreateProject {
            name: "news".into(),
            description: String::new(),
        }),
        "",
    );
    let begin = BeginImport {
        project: "news".into(),
        dataset: "raw".into(),
        create_dataset: true,
        ..Default::default()
    };
    import_of(run(db, command::Body::BeginImport(begin), "")).import_id
}

fn visible(db: &DB) -> Vec<String> {
    let rec = read::dataset(db, "news", "raw").unwrap().unwrap();
    let cf = db.cf_handle(state_cf::EXAMPLES).unwrap();
    read::ExampleScan::new(&rec, None, |from| {
        db.iterator_cf(
            cf,
            gloss_store::rocksdb::IteratorMode::From(
                from,
                gloss_store::rocksdb::Direction::Forward,
            ),
        )
    })
    .map(|r| r.unwrap().1.record_json)
    .collect()
}

#[test]
fn staged_examples_stay_invisible_until_commit() {
    let d = db();
    let id = setup(&d.db);
    run(
        &d.db,
        command::Body::StageExamples(StageExamples {
            import_id: id,
            examples: vec![ex("a"), ex("b")],
        }),
        "",
    );
    assert!(visible(&d.db).is_empty());
    let done = import_of(run(
        &d.db,
        command::Body::CommitImport(CommitImport {
            import_id: id,
            records_read: 2,
            ..Default::default()
        }),
        "",
    ));
    assert_eq!(done.imported, 2);
    assert_eq!(visible(&d.db).len(), 2);
    let ds = read::dataset(&d.db, "news", "raw")
        .unwrap()
        .unwrap()
        .dataset
        .unwrap();
    assert_eq!(ds.example_count, 2);
}

#[test]
fn duplicates_inside_and_across_imports_are_skipped_and_counted() {
    let d = db();
    let id = setup(&d.db);
    let r = import_of(run(
        &d.db,
        command::Body::StageExamples(StageExamples {
            import_id: id,
            examples: vec![ex("a"), ex("a"), ex("b")],
        }),
        "",
    ));
    assert_eq!((r.staged, r.duplicates), (2, 1));
    run(
        &d.db,
        command::Body::StageExamples(StageExamples {
            import_id: id,
            examples: vec![ex("b")],
        }),
        "",
    );
    run(
        &d.db,
        command::Body::CommitImport(CommitImport {
            import_id: id,
            ..Default::default()
        }),
        "",
    );
    let begin = BeginImport {
        project: "news".into(),
        dataset: "raw".into(),
        ..Default::default()
    };
    let id2 = import_of(run(&d.db, command::Body::BeginImport(begin), "")).import_id;
    run(
        &d.db,
        command::Body::StageExamples(StageExamples {
            import_id: id2,
            examples: vec![ex("a"), ex("c")],
        }),
        "",
    );
    let done = import_of(run(
        &d.db,
        command::Body::CommitImport(CommitImport {
            import_id: id2,
            ..Default::default()
        }),
        "",
    ));
    assert_eq!((done.imported, done.duplicates), (1, 1));
    assert_eq!(visible(&d.db).len(), 3);
}

#[test]
fn concurrent_imports_of_the_same_text_keep_one_copy() {
    let d = db();
    let id1 = setup(&d.db);
    let begin = BeginImport {
        project: "news".into(),
        dataset: "raw".into(),
        ..Default::default()
    };
    let id2 = import_of(run(&d.db, command::Body::BeginImport(begin), "")).import_id;
    run(
        &d.db,
        command::Body::StageExamples(StageExamples {
            import_id: id1,
            examples: vec![ex("same")],
        }),
        "",
    );
    run(
        &d.db,
        command::Body::StageExamples(StageExamples {
            import_id: id2,
            examples: vec![ex("same")],
        }),
        "",
    );
    run(
        &d.db,
        command::Body::CommitImport(CommitImport {
            import_id: id1,
            ..Default::default()
        }),
        "",
    );
    let second = import_of(run(
        &d.db,
        command::Body::CommitImport(CommitImport {
            import_id: id2,
            ..Default::default()
        }),
        "",
    ));
    assert_eq!((second.imported, second.duplicates), (0, 1));
    assert_eq!(visible(&d.db).len(), 1);
}

#[test]
fn abort_leaves_the_dataset_exactly_as_before() {
    let d = db();
    let id = setup(&d.db);
    run(
        &d.db,
        command::Body::StageExamples(StageExamples {
            import_id: id,
            examples: vec![ex("kept")],
        }),
        "",
    );
    run(
        &d.db,
        command::Body::CommitImport(CommitImport {
            import_id: id,
            ..Default::default()
        }),
        "",
    );
    let before = read::dataset(&d.db, "news", "raw")
        .unwrap()
        .unwrap()
        .dataset;
    let begin = BeginImport {
        project: "news".into(),
        dataset: "raw".into(),
        ..Default::default()
    };
    let id2 = import_of(run(&d.db, command::Body::BeginImport(begin), "")).import_id;
    run(
        &d.db,
        command::Body::StageExamples(StageExamples {
            import_id: id2,
            examples: vec![ex("dropped"), ex("kept")],
        }),
        "",
    );
    let aborted = import_of(run(
        &d.db,
        command::Body::AbortImport(gloss_proto::v1::AbortImport {
            import_id: id2,
            reason: "bad".into(),
        }),
        "",
    ));
    assert_eq!(aborted.abort_reason, "bad");
    assert_eq!(
        read::dataset(&d.db, "news", "raw")
            .unwrap()
            .unwrap()
            .dataset,
        before
    );
    assert_eq!(visible(&d.db), vec!["{\"text\":\"kept\"}".to_string()]);
    // Staging into an aborted import is refused.
    let r = run(
        &d.db,
        command::Body::StageExamples(StageExamples {
            import_id: id2,
            examples: vec![ex("x")],
        }),
        "",
    );
    assert_eq!(error_code(&r), Some("failed_precondition"));
}

#[test]
fn idempotency_key_returns_the_first_result() {
    let d = db();
    let body = || {
        command::Body::CreateProject(CreateProject {
            name: "p".into(),
            description: String::new(),
        })
    };
    let first = run(&d.db, body(), "k1");
    let again = run(&d.db, body(), "k1");
    assert_eq!(first, again);
    assert_eq!(
        error_code(&run(&d.db, body(), "k2")),
        Some("already_exists")
    );
}

#[test]
fn bad_names_and_missing_parents_are_rejected() {
    let d = db();
    let r = run(
        &d.db,
        command::Body::CreateProject(CreateProject {
            name: "Bad Name".into(),
            description: String::new(),
        }),
        "",
    );
    assert_eq!(error_code(&r), Some("invalid_argument"));
    let begin = BeginImport {
        project: "none".into(),
        dataset: "raw".into(),
        create_dataset: true,
        ..Default::default()
    };
    assert_eq!(
        error_code(&run(&d.db, command::Body::BeginImport(begin), "")),
        Some("not_found")
    );
}

#[test]
fn newer_command_versions_stop_the_state_machine() {
    let d = db();
    let cmd = Command {
        version: 99,
        ..Default::default()
    };
    assert!(apply(&d.db, &cmd, &mut WriteBatch::default()).is_err());
}
