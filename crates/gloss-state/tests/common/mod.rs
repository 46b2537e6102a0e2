//! Helpers the state machine's feed tests share: a fresh database, a seeded dataset and task,
//! and one call per feed command.

#![allow(dead_code)] // each test file uses its own share of the helpers

use std::collections::{BTreeMap, BTreeSet};

use gloss_proto::v1::*;
use gloss_store::rocksdb::{WriteBatch, DB};
use gloss_store::state_cf;

pub struct Db {
    _dir: tempfile::TempDir,
    pub db: std::sync::Arc<DB>,
}

pub fn db() -> Db {
    let dir = tempfile::tempdir().unwrap();
    let db = gloss_store::open(dir.path(), state_cf::ALL).unwrap();
    Db { _dir: dir, db }
}

pub fn run(db: &DB, at_ms: i64, body: command::Body) -> CommandResult {
    let cmd = Command {
        version: 1,
        at_ms,
        idempotency_key: String::new(),
        body: Some(body),
        actor: String::new(),
    };
    let mut batch = WriteBatch::default();
    let r = gloss_state::apply(db, &cmd, &mut batch).unwrap();
    db.write(batch).unwrap();
    r
}

pub fn err(r: &CommandResult) -> Option<&CommandError> {
    match &r.result {
        Some(command_result::Result::Error(e)) => Some(e),
        _ => None,
    }
}

/// Creates project `p`.
pub fn create_project(db: &DB) {
    run(
        db,
        1,
        command::Body::CreateProject(CreateProject {
            name: "p".into(),
            description: String::new(),
        }),
    );
}

/// Opens an import into `p/src` (creating the dataset) and returns it.
pub fn begin_import(db: &DB) -> ImportRecord {
    let begin = run(
        db,
        1,
        command::Body::BeginImport(BeginImport {
            project: "p".into(),
            dataset: "src".into(),
            create_dataset: true,
            ..BeginImport::default()
        }),
    );
    let Some(command_result::Result::Import(import)) = begin.result else {
        panic!("{begin:?}")
    };
    import
}

/// A project with a source dataset of `n` examples ("text 1" ... "text n").
pub fn seed_dataset(db: &DB, n: usize) {
    create_project(db);
    let import = begin_import(db);
    let examples = (1..=n)
        .map(|i| StagedExample {
            input_hash: (i as u128 * 0x9e37_79b9_7f4a_7c15).to_be_bytes().to_vec(),
            record_json: format!("{{\"text\":\"text {i}\"}}"),
            image: None,
        })
        .collect();
    run(
        db,
        1,
        command::Body::StageExamples(StageExamples {
            import_id: import.import_id,
            examples,
        }),
    );
    run(
        db,
        1,
        command::Body::CommitImport(CommitImport {
            import_id: import.import_id,
            ..CommitImport::default()
        }),
    );
}

pub fn task(interface: Interface, overlap: u32, ordering: Ordering) -> Task {
    let mut t = Task {
        project: "p".into(),
        name: "t".into(),
        labels: vec!["POS".into(), "NEG".into()],
        source_dataset: "src".into(),
        output_dataset: "t-answers".into(),
        gold_dataset: "t-gold".into(),
        overlap,
        seed: 7,
        lease_ttl_ms: 1_000,
        ..Task::default()
    };
    t.set_interface(interface);
    t.set_ordering(ordering);
    t.set_disagreement(DisagreementPolicy::Any);
    t
}

pub fn create(db: &DB, t: Task) {
    let r = run(
        db,
        2,
        command::Body::CreateTask(CreateTask { task: Some(t) }),
    );
    assert!(err(&r).is_none(), "{r:?}");
}

/// A fresh database with `examples` examples and a choice task over them.
pub fn choice_task(examples: usize, overlap: u32, ordering: Ordering) -> Db {
    let d = db();
    seed_dataset(&d.db, examples);
    create(&d.db, task(Interface::Choice, overlap, ordering));
    d
}

pub fn next(db: &DB, at: i64, who: &str, count: u32) -> Result<LeaseGrant, CommandError> {
    let r = run(
        db,
        at,
        command::Body::NextExamples(NextExamples {
            project: "p".into(),
            task: "t".into(),
            annotator: who.into(),
            session_id: format!("{who}-session"),
            count,
        }),
    );
    match r.result {
        Some(command_result::Result::Lease(g)) => Ok(g),
        Some(command_result::Result::Error(e)) => Err(e),
        other => panic!("{other:?}"),
    }
}

pub fn choice(who: &str, seq: u64, id: &str, label: &str) -> Answer {
    Answer {
        answer_id: id.into(),
        project: "p".into(),
        task: "t".into(),
        seq,
        annotator: who.into(),
        decision: Decision::Accept as i32,
        choices: vec![label.into()],
        ..Answer::default()
    }
}

pub fn submit(
    db: &DB,
    at: i64,
    answer: Answer,
    revise: bool,
) -> Result<AnswerOutcome, CommandError> {
    let r = run(
        db,
        at,
        command::Body::SubmitAnswer(SubmitAnswer {
            answer: Some(answer),
            revise,
        }),
    );
    match r.result {
        Some(command_result::Result::Answer(a)) => Ok(a),
        Some(command_result::Result::Error(e)) => Err(e),
        other => panic!("{other:?}"),
    }
}

pub fn undo(db: &DB, at: i64, who: &str, seq: u64) -> Result<(), CommandError> {
    let r = run(
        db,
        at,
        command::Body::UndoAnswer(UndoAnswer {
            project: "p".into(),
            task: "t".into(),
            annotator: who.into(),
            seq,
        }),
    );
    err(&r).cloned().map_or(Ok(()), Err)
}

pub fn record(db: &DB) -> TaskRecord {
    gloss_state::tasks::task(db, "p", "t").unwrap().unwrap()
}

/// Checks every feed invariant against the stored state; returns (seq -> answerers).
pub fn check_invariants(db: &DB, n_examples: u64, overlap: usize) -> BTreeMap<u64, Vec<String>> {
    let rec = record(db);
    let snapshot = db.snapshot();
    let mut answered: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    gloss_state::feed::answers::for_each_answered::<gloss_state::StateError>(
        db,
        &snapshot,
        rec.task_id,
        |seq, answers| {
            answered.insert(seq, answers.into_iter().map(|a| a.annotator).collect());
            Ok(())
        },
    )
    .unwrap();
    let mut total_answers = 0;
    let mut done = 0;
    let mut leased_total = 0;
    for seq in 1..=n_examples {
        let te = gloss_state::feed::task_example(db, rec.task_id, seq)
            .unwrap()
            .unwrap_or_default();
        let holders: Vec<&String> = te.leased.iter().chain(&te.answered).collect();
        let distinct: BTreeSet<&String> = holders.iter().copied().collect();
        assert_eq!(
            distinct.len(),
            holders.len(),
            "example {seq}: an annotator holds it twice: {te:?}"
        );
        assert!(
            holders.len() <= overlap,
            "example {seq}: {} holders > overlap {overlap}",
            holders.len()
        );
        let stored = answered.get(&seq).cloned().unwrap_or_default();
        assert!(
            stored.len() <= overlap,
            "example {seq} has {} answers > overlap {overlap}",
            stored.len()
        );
        let mut a = te.answered.clone();
        a.sort();
        let mut s = stored.clone();
        s.sort();
        assert_eq!(a, s, "example {seq}: feed state and answers disagree");
        total_answers += stored.len() as u64;
        leased_total += te.leased.len() as u64;
        if stored.len() == overlap {
            done += 1;
        }
    }
    assert_eq!(rec.answers, total_answers, "answer counter");
    assert_eq!(rec.done, done, "done counter");
    assert_eq!(rec.leased, leased_total, "lease counter");
    answered
}
