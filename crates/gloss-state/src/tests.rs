use gloss_proto::v1::{
    command, command_result, BeginImport, Command, CommandResult, CommitImport, CreateProject,
    ImportRecord, StageExamples, StagedExample,
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
        actor: "tester".into(),
    };
    let mut batch = WriteBatch::default();
    let r = apply(db, &cmd, &mut batch).unwrap();
    db.write(batch).unwrap();
    r
}

fn import_of(r: CommandResult) -> ImportRecord {
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
        image: None,
    }
}

// A stand-in content hash: the state machine only needs distinct 16-byte values per text.
fn xxh(text: &str) -> u128 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325u128, |h, b| {
        (h ^ b as u128).wrapping_mul(0x100_0000_01b3)
    })
}

fn create_project(db: &DB, name: &str, key: &str) -> CommandResult {
    let body = command::Body::CreateProject(CreateProject {
        name: name.into(),
        description: String::new(),
    });
    run(db, body, key)
}

/// Opens an import into news/raw (creating both on first use) and returns its id.
fn begin(db: &DB) -> u64 {
    if read::project(db, "news").unwrap().is_none() {
        create_project(db, "news", "");
    }
    let begin = BeginImport {
        project: "news".into(),
        dataset: "raw".into(),
        create_dataset: true,
        ..Default::default()
    };
    import_of(run(db, command::Body::BeginImport(begin), "")).import_id
}

fn stage(db: &DB, import_id: u64, texts: &[&str]) -> CommandResult {
    let examples = texts.iter().map(|t| ex(t)).collect();
    run(
        db,
        command::Body::StageExamples(StageExamples {
            import_id,
            examples,
        }),
        "",
    )
}

fn commit(db: &DB, import_id: u64) -> ImportRecord {
    let body = command::Body::CommitImport(CommitImport {
        import_id,
        ..Default::default()
    });
    import_of(run(db, body, ""))
}

fn visible(db: &DB) -> Vec<String> {
    let rec = read::dataset(db, "news", "raw").unwrap().unwrap();
    let snapshot = db.snapshot();
    read::examples_at(db, &snapshot, &rec, None)
        .unwrap()
        .map(|r| r.unwrap().1.record_json)
        .collect()
}

fn dataset(db: &DB) -> gloss_proto::v1::Dataset {
    read::dataset(db, "news", "raw")
        .unwrap()
        .unwrap()
        .dataset
        .unwrap()
}

#[test]
fn staged_examples_stay_invisible_until_commit() {
    let d = db();
    let id = begin(&d.db);
    stage(&d.db, id, &["a", "b"]);
    assert!(visible(&d.db).is_empty());
    assert_eq!(commit(&d.db, id).imported, 2);
    assert_eq!(visible(&d.db).len(), 2);
    assert_eq!(dataset(&d.db).example_count, 2);
}

#[test]
fn duplicates_inside_and_across_imports_are_skipped_and_counted() {
    let d = db();
    let id = begin(&d.db);
    let r = import_of(stage(&d.db, id, &["a", "a", "b"]));
    assert_eq!((r.staged, r.duplicates), (2, 1));
    stage(&d.db, id, &["b"]);
    commit(&d.db, id);
    let id2 = begin(&d.db);
    stage(&d.db, id2, &["a", "c"]);
    let done = commit(&d.db, id2);
    assert_eq!((done.imported, done.duplicates), (1, 1));
    assert_eq!(visible(&d.db).len(), 3);
}

#[test]
fn concurrent_imports_of_the_same_text_keep_one_copy() {
    let d = db();
    let (id1, id2) = (begin(&d.db), begin(&d.db));
    stage(&d.db, id1, &["same"]);
    stage(&d.db, id2, &["same"]);
    commit(&d.db, id1);
    let second = commit(&d.db, id2);
    assert_eq!((second.imported, second.duplicates), (0, 1));
    assert_eq!(visible(&d.db).len(), 1);
}

#[test]
fn abort_leaves_the_dataset_exactly_as_before() {
    let d = db();
    let id = begin(&d.db);
    stage(&d.db, id, &["kept"]);
    commit(&d.db, id);
    let before = dataset(&d.db);
    let id2 = begin(&d.db);
    stage(&d.db, id2, &["dropped", "kept"]);
    let abort = command::Body::AbortImport(gloss_proto::v1::AbortImport {
        import_id: id2,
        reason: "bad".into(),
    });
    assert_eq!(import_of(run(&d.db, abort, "")).abort_reason, "bad");
    assert_eq!(dataset(&d.db), before);
    assert_eq!(visible(&d.db), vec!["{\"text\":\"kept\"}".to_string()]);
    // Staging into an aborted import is refused.
    assert_eq!(
        error_code(&stage(&d.db, id2, &["x"])),
        Some("failed_precondition")
    );
}

#[test]
fn idempotency_key_returns_the_first_result() {
    let d = db();
    let first = create_project(&d.db, "p", "k1");
    assert_eq!(first, create_project(&d.db, "p", "k1"));
    assert_eq!(
        error_code(&create_project(&d.db, "p", "k2")),
        Some("already_exists")
    );
}

#[test]
fn bad_names_and_missing_parents_are_rejected() {
    let d = db();
    assert_eq!(
        error_code(&create_project(&d.db, "Bad Name", "")),
        Some("invalid_argument")
    );
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

mod registry {
    use gloss_proto::v1::{BeginModel, CommitModel, Model, PromoteModel, PutModelChunk};
    use sha2::{Digest, Sha256};

    use super::*;

    fn model_of(r: CommandResult) -> Model {
        match r.result {
            Some(command_result::Result::Model(m)) => m,
            other => panic!("expected a model, got {other:?}"),
        }
    }

    fn error_of(r: CommandResult) -> String {
        match r.result {
            Some(command_result::Result::Error(e)) => e.message,
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    fn begin(db: &DB, chunks: &[&[u8]], digest_of: &[u8]) -> Model {
        let record = Model {
            name: "p/t/tiny".into(),
            artifact_sha256: Sha256::digest(digest_of)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
            artifact_bytes: chunks.iter().map(|c| c.len() as u64).sum(),
            chunks: chunks.len() as u32,
            ..Default::default()
        };
        let m = model_of(run(
            db,
            command::Body::BeginModel(BeginModel {
                model: Some(record),
            }),
            "",
        ));
        for (i, data) in chunks.iter().enumerate() {
            let put = PutModelChunk {
                name: m.name.clone(),
                version: m.version,
                index: i as u32,
                data: data.to_vec(),
            };
            run(db, command::Body::PutModelChunk(put), "");
        }
        m
    }

    #[test]
    fn versions_commit_only_with_every_chunk_and_the_declared_digest() {
        let d = db();
        let m1 = begin(&d.db, &[b"abc", b"def"], b"abcdef");
        assert_eq!(m1.version, 1);
        let commit = |v| {
            command::Body::CommitModel(CommitModel {
                name: "p/t/tiny".into(),
                version: v,
            })
        };
        let ok = model_of(run(&d.db, commit(1), ""));
        assert!(ok.complete);

        let m2 = begin(&d.db, &[b"abc", b"xyz"], b"abcdef");
        assert_eq!(m2.version, 2);
        let err = error_of(run(&d.db, commit(2), ""));
        assert!(err.contains("not the declared"), "{err}");
        assert_eq!(
            crate::models::model(&d.db, "p/t/tiny", 0)
                .unwrap()
                .unwrap()
                .version,
            1,
            "the newest complete version"
        );

        let m3 = begin(&d.db, &[b"abc"], b"abc");
        assert!(model_of(run(&d.db, commit(m3.version), "")).complete);
        let promote = |v| {
            command::Body::PromoteModel(PromoteModel {
                name: "p/t/tiny".into(),
                version: v,
                note: "n".into(),
            })
        };
        assert!(error_of(run(&d.db, promote(2), "")).contains("not completely uploaded"));
        assert!(model_of(run(&d.db, promote(1), "")).promoted);
        assert!(model_of(run(&d.db, promote(3), "")).promoted);
        let all = crate::models::versions(&d.db, "p/t/tiny").unwrap();
        assert_eq!(
            all.iter()
                .filter(|m| m.promoted)
                .map(|m| m.version)
                .collect::<Vec<_>>(),
            vec![3],
            "one promoted version"
        );
    }
}
