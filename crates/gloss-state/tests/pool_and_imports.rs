//! The feed's rules for who may answer: the annotator pool on every feed command, and answers
//! imported from other tools (overlap, once per answer id, gold).

mod common;

use common::*;
use gloss_proto::v1::*;
use gloss_store::rocksdb::DB;

fn set_night_group(db: &DB, at: i64, members: &[&str]) {
    let r = run(
        db,
        at,
        command::Body::SetGroup(SetGroup {
            group: Some(Group {
                project: "p".into(),
                name: "night".into(),
                members: members.iter().map(|m| m.to_string()).collect(),
            }),
        }),
    );
    assert!(err(&r).is_none(), "{r:?}");
}

#[test]
fn every_feed_command_refuses_an_annotator_outside_the_pool() {
    let d = db();
    seed_dataset(&d.db, 2);
    let mut t = task(Interface::Choice, 2, Ordering::Sequential);
    t.pool = vec!["group:night".into()];
    create(&d.db, t);
    set_night_group(&d.db, 5, &["alice", "bob"]);
    next(&d.db, 10, "alice", 2).unwrap();
    submit(&d.db, 11, choice("alice", 1, "a1", "POS"), false).unwrap();
    // Alice leaves the group while example 2 still has room: her late answer, revision, undo,
    // heartbeat and request for work are all refused, and change nothing.
    set_night_group(&d.db, 12, &["bob"]);
    let before = gloss_state::read::digest(&d.db).unwrap();
    let denied = |e: CommandError| {
        assert_eq!(e.code, "permission_denied", "{e:?}");
        assert!(
            e.message
                .contains("alice is not in the annotator pool of task p/t"),
            "{e:?}"
        );
    };
    denied(next(&d.db, 20, "alice", 1).unwrap_err());
    denied(submit(&d.db, 21, choice("alice", 2, "a2", "NEG"), false).unwrap_err());
    denied(submit(&d.db, 22, choice("alice", 1, "a1-rev", "NEG"), true).unwrap_err());
    denied(undo(&d.db, 23, "alice", 1).unwrap_err());
    let beat = run(
        &d.db,
        24,
        command::Body::Heartbeat(Heartbeat {
            project: "p".into(),
            task: "t".into(),
            annotator: "alice".into(),
        }),
    );
    denied(err(&beat).cloned().unwrap());
    assert_eq!(gloss_state::read::digest(&d.db).unwrap(), before);
    // A retried submit of the answer she gave while in the pool still returns that answer.
    let retry = submit(&d.db, 25, choice("alice", 1, "a1", "POS"), false).unwrap();
    assert!(retry.duplicate);
    // The pool's remaining member is served as before.
    assert!(!next(&d.db, 26, "bob", 2).unwrap().seqs.is_empty());
}

fn import(db: &DB, at: i64, answers: Vec<Answer>) -> Result<u64, CommandError> {
    let r = run(
        db,
        at,
        command::Body::ImportAnswers(ImportAnswers {
            project: "p".into(),
            task: "t".into(),
            answers,
        }),
    );
    match r.result {
        Some(command_result::Result::Count(n)) => Ok(n),
        Some(command_result::Result::Error(e)) => Err(e),
        other => panic!("{other:?}"),
    }
}

#[test]
fn imported_answers_keep_the_overlap_are_recorded_once_and_make_gold() {
    let d = db();
    seed_dataset(&d.db, 3);
    let mut t = task(Interface::Choice, 2, Ordering::Sequential);
    // The importing manager vouches for the annotators: the pool does not apply to imports.
    t.pool = vec!["someone-else".into()];
    create(&d.db, t);
    let before = gloss_state::read::digest(&d.db).unwrap();
    // A third answer to example 1 breaks the overlap of 2: the whole batch is refused.
    let e = import(
        &d.db,
        10,
        vec![
            choice("ann", 1, "ls-1", "POS"),
            choice("bob", 1, "ls-2", "POS"),
            choice("cy", 1, "ls-3", "NEG"),
        ],
    )
    .unwrap_err();
    assert_eq!(e.code, "failed_precondition", "{e:?}");
    assert!(
        e.message.starts_with("answers[2]: example 1 already has 2"),
        "{e:?}"
    );
    assert_eq!(gloss_state::read::digest(&d.db).unwrap(), before);
    // One annotator twice on one example, and an unknown label, are refused too.
    let e = import(
        &d.db,
        11,
        vec![choice("ann", 2, "a", "POS"), choice("ann", 2, "b", "NEG")],
    )
    .unwrap_err();
    assert_eq!(e.code, "already_exists", "{e:?}");
    let e = import(&d.db, 12, vec![choice("ann", 2, "a", "MAYBE")]).unwrap_err();
    assert!(e.message.starts_with("answers[0]: example 2"), "{e:?}");
    assert_eq!(gloss_state::read::digest(&d.db).unwrap(), before);

    let batch = vec![
        choice("ann", 1, "ls-1", "POS"),
        choice("bob", 1, "ls-2", "POS"),
        choice("ann", 3, "ls-4", "NEG"),
    ];
    assert_eq!(import(&d.db, 20, batch.clone()).unwrap(), 3);
    // The same file again records nothing new.
    assert_eq!(import(&d.db, 21, batch).unwrap(), 0);
    let rec = record(&d.db);
    assert_eq!((rec.answers, rec.done, rec.gold), (3, 1, 1), "{rec:?}");
    // Example 1 is full and agreed (gold); example 3 still takes one more answer and, being
    // started, comes before the untouched example 2.
    let g = next(&d.db, 30, "someone-else", 5).unwrap();
    assert_eq!(g.seqs, vec![3, 2], "{g:?}");
    check_invariants(&d.db, 3, 2);
}
