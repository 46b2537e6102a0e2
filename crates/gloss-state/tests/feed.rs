//! The feed's invariants, each named after the rule it proves, plus property tests that drive
//! random interleavings of requests, answers, retries, undos, expiry and replays (what a leader
//! change looks like to the state machine) with many annotators.

use std::collections::BTreeMap;

use gloss_proto::v1::*;
use proptest::prelude::*;

mod common;

use common::*;

#[test]
fn an_answer_submitted_twice_is_recorded_once() {
    let d = choice_task(3, 1, Ordering::Sequential);
    let g = next(&d.db, 10, "ann", 1).unwrap();
    assert_eq!(g.seqs, vec![1]);
    let first = submit(&d.db, 20, choice("ann", 1, "id-1", "POS"), false).unwrap();
    assert!(!first.duplicate);
    let again = submit(&d.db, 30, choice("ann", 1, "id-1", "POS"), false).unwrap();
    assert!(again.duplicate);
    assert_eq!(again.answer, first.answer);
    let answered = check_invariants(&d.db, 3, 1);
    assert_eq!(answered[&1], vec!["ann".to_string()]);
    assert_eq!(record(&d.db).answers, 1);
}

#[test]
fn no_example_gets_more_than_n_answers_or_two_from_one_annotator() {
    let d = choice_task(2, 2, Ordering::Sequential);
    let a = next(&d.db, 10, "a", 2).unwrap();
    let b = next(&d.db, 10, "b", 2).unwrap();
    assert_eq!(a.seqs, vec![1, 2]);
    assert_eq!(b.seqs, vec![1, 2]);
    // A third annotator finds nothing: both examples have their two holders. Their leases may
    // still expire, so the feed is not exhausted yet.
    let c = next(&d.db, 10, "c", 2).unwrap();
    assert!(c.seqs.is_empty());
    assert!(!c.exhausted);
    for who in ["a", "b"] {
        for seq in [1, 2] {
            submit(
                &d.db,
                20,
                choice(who, seq, &format!("{who}{seq}"), "POS"),
                false,
            )
            .unwrap();
        }
    }
    assert!(next(&d.db, 25, "c", 2).unwrap().exhausted);
    // A second answer from the same annotator is refused.
    let e = submit(&d.db, 30, choice("a", 1, "a1-again", "NEG"), false).unwrap_err();
    assert!(e.message.contains("already answered"), "{e:?}");
    // So is an answer from someone who was never leased it, with no room left.
    let e = submit(&d.db, 30, choice("c", 1, "c1", "NEG"), false).unwrap_err();
    assert!(e.message.contains("not leased to c"), "{e:?}");
    check_invariants(&d.db, 2, 2);
    assert_eq!(record(&d.db).done, 2);
}

#[test]
fn an_example_leased_to_a_vanished_annotator_returns_after_the_ttl() {
    let d = choice_task(1, 1, Ordering::Sequential);
    assert_eq!(next(&d.db, 1_000, "gone", 1).unwrap().seqs, vec![1]);
    // Within the TTL the example stays with its holder.
    assert!(next(&d.db, 1_900, "other", 1).unwrap().seqs.is_empty());
    // After it, the next request gets it.
    assert_eq!(next(&d.db, 2_100, "other", 1).unwrap().seqs, vec![1]);
    check_invariants(&d.db, 1, 1);
    // The vanished annotator's late answer no longer fits.
    let e = submit(&d.db, 2_200, choice("gone", 1, "late", "POS"), false).unwrap_err();
    assert!(e.message.contains("not leased to gone"), "{e:?}");
}

#[test]
fn heartbeats_keep_leases_alive() {
    let d = choice_task(1, 1, Ordering::Sequential);
    next(&d.db, 1_000, "slow", 1).unwrap();
    for at in [1_800, 2_600, 3_400] {
        run(
            &d.db,
            at,
            command::Body::Heartbeat(Heartbeat {
                project: "p".into(),
                task: "t".into(),
                annotator: "slow".into(),
            }),
        );
    }
    assert!(next(&d.db, 4_000, "other", 1).unwrap().seqs.is_empty());
    submit(&d.db, 4_100, choice("slow", 1, "s1", "NEG"), false).unwrap();
}

#[test]
fn a_late_answer_counts_when_the_example_still_has_room() {
    let d = choice_task(1, 2, Ordering::Sequential);
    next(&d.db, 1_000, "offline", 1).unwrap();
    // The lease expires and is reaped by someone else's request.
    next(&d.db, 5_000, "b", 1).unwrap();
    let ok = submit(&d.db, 5_100, choice("offline", 1, "o1", "POS"), false).unwrap();
    assert!(!ok.duplicate);
    check_invariants(&d.db, 1, 2);
}

#[test]
fn revise_keeps_history_and_undo_leases_the_example_back() {
    let d = choice_task(2, 1, Ordering::Sequential);
    next(&d.db, 10, "a", 1).unwrap();
    submit(&d.db, 20, choice("a", 1, "v1", "POS"), false).unwrap();
    let revised = submit(&d.db, 30, choice("a", 1, "v2", "NEG"), true).unwrap();
    assert_eq!(revised.answer.as_ref().unwrap().revision, 2);
    let rec = gloss_state::feed::answers::answer(&d.db, record(&d.db).task_id, 1, "a")
        .unwrap()
        .unwrap();
    assert_eq!(rec.history.len(), 1);
    assert_eq!(rec.history[0].choices, vec!["POS".to_string()]);
    assert_eq!(rec.current.unwrap().choices, vec!["NEG".to_string()]);
    // Revising needs an answer; undo withdraws it and leases the example back.
    assert!(submit(&d.db, 40, choice("a", 2, "x", "NEG"), true).is_err());
    undo(&d.db, 50, "a", 1).unwrap();
    let g = next(&d.db, 60, "a", 1).unwrap();
    assert_eq!(g.seqs, vec![1]);
    assert_eq!(record(&d.db).answers, 0);
    submit(&d.db, 70, choice("a", 1, "v3", "POS"), false).unwrap();
    check_invariants(&d.db, 2, 1);
}

#[test]
fn disagreeing_answers_go_to_review_and_agreeing_ones_to_gold() {
    let d = choice_task(2, 2, Ordering::Sequential);
    next(&d.db, 10, "a", 2).unwrap();
    next(&d.db, 10, "b", 2).unwrap();
    submit(&d.db, 20, choice("a", 1, "a1", "POS"), false).unwrap();
    submit(&d.db, 20, choice("b", 1, "b1", "POS"), false).unwrap();
    submit(&d.db, 20, choice("a", 2, "a2", "POS"), false).unwrap();
    submit(&d.db, 20, choice("b", 2, "b2", "NEG"), false).unwrap();
    let rec = record(&d.db);
    assert_eq!((rec.gold, rec.review_pending), (1, 1));
    let queue = gloss_state::review::review_queue(&d.db, rec.task_id, 0, 10).unwrap();
    assert_eq!(queue.len(), 1);
    assert_eq!(queue[0].0, 2);
    assert_eq!(queue[0].2.len(), 2);
    let r = run(
        &d.db,
        30,
        command::Body::ResolveReview(ResolveReview {
            request: Some(ResolveReviewRequest {
                project: "p".into(),
                task: "t".into(),
                seq: 2,
                reviewer: "rev".into(),
                resolution: Some(resolve_review_request::Resolution::PickAnswerId(
                    "b2".into(),
                )),
            }),
        }),
    );
    let Some(command_result::Result::Gold(g)) = r.result else {
        panic!("{r:?}")
    };
    assert_eq!(g.reviewer, "rev");
    assert_eq!(g.answer.unwrap().choices, vec!["NEG".to_string()]);
    assert_eq!(
        g.source_answer_ids,
        vec!["a2".to_string(), "b2".to_string()]
    );
    let rec = record(&d.db);
    assert_eq!((rec.gold, rec.review_pending), (2, 0));
    let gold_ds = gloss_state::read::dataset(&d.db, "p", "t-gold")
        .unwrap()
        .unwrap();
    assert_eq!(gold_ds.dataset.unwrap().example_count, 2);
}

#[test]
fn validation_errors_name_the_field() {
    let d = choice_task(1, 1, Ordering::Sequential);
    next(&d.db, 10, "a", 1).unwrap();
    let e = submit(&d.db, 20, choice("a", 1, "x", "MAYBE"), false).unwrap_err();
    assert!(
        e.message.contains("choices[0]") && e.message.contains("MAYBE"),
        "{e:?}"
    );
    let e = submit(&d.db, 20, choice("a", 9, "x", "POS"), false).unwrap_err();
    assert!(
        e.message.contains("example 9 is not in dataset p/src"),
        "{e:?}"
    );
    run(
        &d.db,
        30,
        command::Body::CloseTask(CloseTask {
            project: "p".into(),
            task: "t".into(),
        }),
    );
    let e = submit(&d.db, 40, choice("a", 1, "x", "POS"), false).unwrap_err();
    assert!(e.message.contains("closed"), "{e:?}");
    assert!(next(&d.db, 40, "a", 1)
        .unwrap_err()
        .message
        .contains("closed"));
}

#[test]
fn the_state_machine_refuses_bad_relations_by_field_and_records_nothing() {
    // Commands straight to the state machine, as a replica applies them, with no coordinator
    // check in front: the replicated check alone must refuse them.
    let d = db();
    seed_dataset(&d.db, 1);
    let mut t = task(Interface::Relations, 1, Ordering::Sequential);
    t.relation_labels = vec!["LINKS".into()];
    create(&d.db, t);
    next(&d.db, 10, "a", 1).unwrap();
    let span = |start, end| Span {
        start,
        end,
        label: "POS".into(),
        ..Span::default()
    };
    let relations = |head, child, label: &str| Answer {
        answer_id: format!("r-{head}-{child}-{label}"),
        project: "p".into(),
        task: "t".into(),
        seq: 1,
        annotator: "a".into(),
        decision: Decision::Accept as i32,
        spans: vec![span(0, 1), span(2, 3)],
        relations: vec![Relation {
            head,
            child,
            label: label.into(),
        }],
        ..Answer::default()
    };
    for (answer, field) in [
        (relations(0, 2, "LINKS"), "relations[0].child"),
        (relations(1, 1, "LINKS"), "relations[0]`"),
        (relations(0, 1, "OWNS"), "relations[0].label"),
    ] {
        let e = submit(&d.db, 20, answer, false).unwrap_err();
        assert_eq!(e.code, "invalid_argument", "{e:?}");
        assert!(e.message.contains(field), "{field}: {e:?}");
    }
    assert_eq!(record(&d.db).answers, 0);
    let stored = submit(&d.db, 30, relations(0, 1, "LINKS"), false).unwrap();
    assert!(!stored.duplicate);
    assert_eq!(record(&d.db).answers, 1);
}

#[test]
fn the_pool_admits_only_its_members_and_groups() {
    let d = db();
    seed_dataset(&d.db, 2);
    let mut t = task(Interface::Choice, 1, Ordering::Sequential);
    t.pool = vec!["alice".into(), "group:night".into()];
    create(&d.db, t);
    run(
        &d.db,
        5,
        command::Body::SetGroup(SetGroup {
            group: Some(Group {
                project: "p".into(),
                name: "night".into(),
                members: vec!["bob".into()],
            }),
        }),
    );
    assert!(next(&d.db, 10, "alice", 1).is_ok());
    assert!(next(&d.db, 10, "bob", 1).is_ok());
    let e = next(&d.db, 10, "mallory", 1).unwrap_err();
    assert_eq!(e.code, "permission_denied");
}

#[test]
fn random_ordering_hands_out_every_example_once() {
    let d = choice_task(50, 1, Ordering::Random);
    let mut seen = Vec::new();
    loop {
        let g = next(&d.db, 10, "a", 5).unwrap();
        if g.seqs.is_empty() {
            break;
        }
        for seq in g.seqs {
            submit(
                &d.db,
                10,
                choice("a", seq, &format!("a{seq}"), "POS"),
                false,
            )
            .unwrap();
            seen.push(seq);
        }
    }
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(sorted, (1..=50).collect::<Vec<_>>());
    assert_ne!(seen, sorted, "a seeded permutation, not import order");
}

/// A task under the uncertainty ordering whose examples 4, 2 and 5 carry suggestions.
fn scored_task() -> Db {
    let d = choice_task(5, 1, Ordering::Uncertainty);
    let suggestions = [(4, 0.9), (2, 0.55), (5, 0.2)]
        .into_iter()
        .map(|(seq, score)| Suggestion {
            seq,
            labels: vec!["POS".into()],
            score,
            ..Suggestion::default()
        })
        .collect();
    let r = run(
        &d.db,
        5,
        command::Body::SetSuggestions(SetSuggestions {
            project: "p".into(),
            task: "t".into(),
            suggestions,
        }),
    );
    assert!(err(&r).is_none(), "{r:?}");
    d
}

#[test]
fn uncertainty_ordering_serves_the_least_confident_first() {
    let d = scored_task();
    let g = next(&d.db, 10, "a", 5).unwrap();
    // New leases come back in serving order: the least confident first, then import order.
    assert_eq!(g.seqs, vec![5, 2, 4, 1, 3]);
    let d = scored_task();
    let mut order = Vec::new();
    for _ in 0..5 {
        let g = next(&d.db, 10, "a", 1).unwrap();
        let seq = g.seqs[0];
        submit(
            &d.db,
            10,
            choice("a", seq, &format!("a{seq}"), "POS"),
            false,
        )
        .unwrap();
        order.push(seq);
    }
    assert_eq!(order, vec![5, 2, 4, 1, 3]);
}

#[test]
fn permute_is_a_bijection() {
    for domain in [1u64, 2, 3, 7, 100, 1025] {
        let mut out: Vec<u64> = (0..domain)
            .map(|i| gloss_state::feed::permute(i, domain, 42))
            .collect();
        out.sort();
        assert_eq!(out, (0..domain).collect::<Vec<_>>(), "domain {domain}");
    }
}

#[derive(Clone, Debug)]
enum Op {
    Next {
        who: usize,
        count: u32,
    },
    Submit {
        who: usize,
        pick: usize,
        label: bool,
    },
    Retry,
    Undo {
        who: usize,
        pick: usize,
    },
    Revise {
        who: usize,
        pick: usize,
    },
    Wait {
        ms: i64,
    },
    Replay,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0usize..8, 1u32..4).prop_map(|(who, count)| Op::Next { who, count }),
        5 => (0usize..8, 0usize..4, any::<bool>()).prop_map(|(who, pick, label)| Op::Submit { who, pick, label }),
        1 => Just(Op::Retry),
        1 => (0usize..8, 0usize..4).prop_map(|(who, pick)| Op::Undo { who, pick }),
        1 => (0usize..8, 0usize..4).prop_map(|(who, pick)| Op::Revise { who, pick }),
        2 => (0i64..1_500).prop_map(|ms| Op::Wait { ms }),
        1 => Just(Op::Replay),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Random interleavings of requests, answers, retries, undos, revisions, lease expiry and
    /// replayed commands (a client resending after a leader change) keep every invariant, and
    /// two replicas applying the same log end up with identical state.
    #[test]
    fn feed_invariants_hold_under_random_interleavings(
        n_examples in 3u64..25,
        overlap in 1u32..4,
        annotators in 1usize..8,
        random in any::<bool>(),
        ops in prop::collection::vec(op(), 20..160),
    ) {
        let (primary, replica) = (db(), db());
        for d in [&primary, &replica] {
            seed_dataset(&d.db, n_examples as usize);
            let ordering = if random { Ordering::Random } else { Ordering::Sequential };
            create(&d.db, task(Interface::Choice, overlap, ordering));
        }
        let mut log: Vec<(i64, command::Body)> = Vec::new();
        let mut now = 1_000i64;
        let mut held: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
        let mut answered: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
        let mut last_submit: Option<(Answer, AnswerOutcome)> = None;
        let mut counter = 0;
        for op in ops {
            now += 1;
            let who_of = |w: usize| w % annotators;
            let body = match op {
                Op::Next { who, count } => {
                    let who = who_of(who);
                    command::Body::NextExamples(NextExamples {
                        project: "p".into(), task: "t".into(), annotator: format!("a{who}"),
                        session_id: String::new(), count,
                    })
                }
                Op::Submit { who, pick, label } => {
                    let who = who_of(who);
                    let Some(&seq) = held.get(&who).and_then(|h| h.get(pick % h.len().max(1))) else { continue };
                    counter += 1;
                    let a = choice(&format!("a{who}"), seq, &format!("id{counter}"), if label { "POS" } else { "NEG" });
                    command::Body::SubmitAnswer(SubmitAnswer { answer: Some(a), revise: false })
                }
                Op::Retry => match &last_submit {
                    Some((a, _)) => command::Body::SubmitAnswer(SubmitAnswer { answer: Some(a.clone()), revise: false }),
                    None => continue,
                },
                Op::Undo { who, pick } => {
                    let who = who_of(who);
                    let Some(&seq) = answered.get(&who).and_then(|h| h.get(pick % h.len().max(1))) else { continue };
                    command::Body::UndoAnswer(UndoAnswer { project: "p".into(), task: "t".into(), annotator: format!("a{who}"), seq })
                }
                Op::Revise { who, pick } => {
                    let who = who_of(who);
                    let Some(&seq) = answered.get(&who).and_then(|h| h.get(pick % h.len().max(1))) else { continue };
                    counter += 1;
                    let a = choice(&format!("a{who}"), seq, &format!("id{counter}"), "NEG");
                    command::Body::SubmitAnswer(SubmitAnswer { answer: Some(a), revise: true })
                }
                Op::Wait { ms } => { now += ms; continue }
                Op::Replay => match log.last() {
                    Some((_, b)) => b.clone(),
                    None => continue,
                },
            };
            let result = run(&primary.db, now, body.clone());
            log.push((now, body.clone()));
            match (&body, &result.result) {
                (command::Body::NextExamples(c), Some(command_result::Result::Lease(g))) => {
                    let who: usize = c.annotator[1..].parse().unwrap();
                    // Never an example the annotator has a current answer to.
                    for seq in &g.seqs {
                        prop_assert!(!answered.get(&who).is_some_and(|a| a.contains(seq)),
                            "a{who} was leased example {seq} it already answered");
                    }
                    held.insert(who, g.seqs.clone());
                }
                (command::Body::SubmitAnswer(c), Some(command_result::Result::Answer(o))) => {
                    let a = c.answer.clone().unwrap();
                    let who: usize = a.annotator[1..].parse().unwrap();
                    if o.duplicate {
                        // A retry returns the answer first recorded under its id.
                        prop_assert_eq!(o.answer.as_ref().map(|x| &x.answer_id), Some(&a.answer_id));
                    } else if !c.revise {
                        held.entry(who).or_default().retain(|s| *s != a.seq);
                        answered.entry(who).or_default().push(a.seq);
                        last_submit = Some((a, o.clone()));
                    }
                }
                (command::Body::UndoAnswer(c), Some(command_result::Result::Answer(_))) => {
                    let who: usize = c.annotator[1..].parse().unwrap();
                    answered.entry(who).or_default().retain(|s| *s != c.seq);
                    held.entry(who).or_default().push(c.seq);
                }
                _ => {}
            }
            check_invariants(&primary.db, n_examples, overlap as usize);
        }
        // Drain: everyone keeps working until the task has nothing left for anyone.
        let mut rounds = 0;
        loop {
            rounds += 1;
            prop_assert!(rounds < 10_000, "the feed never ran dry");
            now += 2_000; // past every lease of annotators that stopped
            let mut progress = false;
            for who in 0..annotators {
                let body = command::Body::NextExamples(NextExamples {
                    project: "p".into(), task: "t".into(), annotator: format!("a{who}"),
                    session_id: String::new(), count: 3,
                });
                let r = run(&primary.db, now, body.clone());
                log.push((now, body));
                let Some(command_result::Result::Lease(g)) = r.result else { panic!("{r:?}") };
                for seq in g.seqs {
                    counter += 1;
                    let body = command::Body::SubmitAnswer(SubmitAnswer {
                        answer: Some(choice(&format!("a{who}"), seq, &format!("id{counter}"), "POS")),
                        revise: false,
                    });
                    let r = run(&primary.db, now, body.clone());
                    log.push((now, body));
                    prop_assert!(err(&r).is_none(), "{:?}", r);
                    progress = true;
                }
            }
            if !progress {
                break;
            }
        }
        let answered = check_invariants(&primary.db, n_examples, overlap as usize);
        let expect = (overlap as usize).min(annotators);
        for seq in 1..=n_examples {
            prop_assert_eq!(answered.get(&seq).map_or(0, |a| a.len()), expect, "example {} answers", seq);
        }
        // Determinism: a replica applying the same log holds the same bytes.
        for (at, body) in log {
            run(&replica.db, at, body);
        }
        prop_assert_eq!(
            gloss_state::read::digest(&primary.db).unwrap(),
            gloss_state::read::digest(&replica.db).unwrap()
        );
    }
}
