use super::*;
use crate::test_support::{span, task};

fn answer(decision: Decision) -> Answer {
    Answer {
        decision: decision as i32,
        ..Default::default()
    }
}

fn with_label(decision: Decision, label: &str) -> Answer {
    Answer {
        label: label.into(),
        ..answer(decision)
    }
}

fn with_choices(decision: Decision, choices: &[&str]) -> Answer {
    Answer {
        choices: choices.iter().map(|c| c.to_string()).collect(),
        ..answer(decision)
    }
}

fn with_spans(decision: Decision, spans: &[(u32, u32, &str)]) -> Answer {
    Answer {
        spans: spans.iter().map(|&(s, e, l)| span(s, e, l)).collect(),
        ..answer(decision)
    }
}

fn refusal(result: Result<(), FieldError>) -> (String, String) {
    let err = result.expect_err("the answer should be refused");
    (err.field, err.reason)
}

#[test]
fn field_error_display_names_the_field() {
    let err = FieldError::new("spans[1].end", "ends past the text (length 48)");
    assert_eq!(
        err.to_string(),
        "field `spans[1].end`: ends past the text (length 48)"
    );
    let _: &dyn std::error::Error = &err;
}

#[test]
fn decision_must_be_set() {
    let t = task(Interface::Binary, &["POS"]);
    let (field, reason) = refusal(check_scheme(&t, &with_label(Decision::Unspecified, "POS")));
    assert_eq!(field, "decision");
    assert!(reason.contains("ACCEPT, REJECT or IGNORE"), "{reason}");
    let mut a = with_label(Decision::Accept, "POS");
    a.decision = 9;
    let (field, reason) = refusal(check_scheme(&t, &a));
    assert_eq!(field, "decision");
    assert!(reason.contains("unknown decision 9"), "{reason}");
}

#[test]
fn task_without_interface_refuses_everything() {
    let t = task(Interface::Unspecified, &["A"]);
    let (field, _) = refusal(check_scheme(&t, &answer(Decision::Accept)));
    assert_eq!(field, "interface");
}

#[test]
fn binary_answers() {
    let t = task(Interface::Binary, &["POS", "NEG"]);
    for d in [Decision::Accept, Decision::Reject, Decision::Ignore] {
        check_scheme(&t, &with_label(d, "NEG")).unwrap();
    }
    let (field, reason) = refusal(check_scheme(&t, &with_label(Decision::Accept, "MAYBE")));
    assert_eq!(field, "label");
    assert_eq!(
        reason,
        "unknown label \"MAYBE\"; the task's labels are POS, NEG"
    );
    let (field, _) = refusal(check_scheme(&t, &with_label(Decision::Accept, "")));
    assert_eq!(field, "label");

    let mut a = with_label(Decision::Accept, "POS");
    a.choices.push("POS".into());
    assert_eq!(refusal(check_scheme(&t, &a)).0, "choices");
    let mut a = with_label(Decision::Accept, "POS");
    a.spans.push(span(0, 1, "POS"));
    assert_eq!(refusal(check_scheme(&t, &a)).0, "spans");

    let none = task(Interface::Binary, &[]);
    let (_, reason) = refusal(check_scheme(&none, &with_label(Decision::Accept, "X")));
    assert_eq!(reason, "unknown label \"X\"; the task has no labels");
}

#[test]
fn single_choice_answers() {
    let t = task(Interface::Choice, &["A", "B"]);
    check_scheme(&t, &with_choices(Decision::Accept, &["B"])).unwrap();
    check_scheme(&t, &with_choices(Decision::Reject, &[])).unwrap();
    check_scheme(&t, &with_choices(Decision::Ignore, &[])).unwrap();

    let (field, reason) = refusal(check_scheme(&t, &with_choices(Decision::Accept, &[])));
    assert_eq!(field, "choices");
    assert!(reason.contains("exactly one choice; got 0"), "{reason}");
    let (field, _) = refusal(check_scheme(
        &t,
        &with_choices(Decision::Accept, &["A", "B"]),
    ));
    assert_eq!(field, "choices");
    let (field, reason) = refusal(check_scheme(&t, &with_choices(Decision::Reject, &["A"])));
    assert_eq!(field, "choices");
    assert!(reason.contains("REJECT"), "{reason}");

    let (field, reason) = refusal(check_scheme(&t, &with_choices(Decision::Accept, &["X"])));
    assert_eq!(field, "choices[0]");
    assert_eq!(reason, "unknown label \"X\"; the task's labels are A, B");

    let mut a = with_choices(Decision::Accept, &["A"]);
    a.spans.push(span(0, 1, "A"));
    assert_eq!(refusal(check_scheme(&t, &a)).0, "spans");
}

#[test]
fn multi_choice_answers() {
    let t = task(Interface::MultiChoice, &["A", "B", "C"]);
    check_scheme(&t, &with_choices(Decision::Accept, &[])).unwrap();
    check_scheme(&t, &with_choices(Decision::Accept, &["C", "A"])).unwrap();
    check_scheme(&t, &with_choices(Decision::Ignore, &[])).unwrap();

    let (field, reason) = refusal(check_scheme(
        &t,
        &with_choices(Decision::Accept, &["A", "D"]),
    ));
    assert_eq!(field, "choices[1]");
    assert_eq!(reason, "unknown label \"D\"; the task's labels are A, B, C");
    let (field, reason) = refusal(check_scheme(
        &t,
        &with_choices(Decision::Accept, &["A", "B", "A"]),
    ));
    assert_eq!(field, "choices[2]");
    assert_eq!(reason, "\"A\" repeats choices[0]");
    let (field, _) = refusal(check_scheme(&t, &with_choices(Decision::Ignore, &["A"])));
    assert_eq!(field, "choices");
}

#[test]
fn span_answers_scheme() {
    let ner = task(Interface::Ner, &["PER", "ORG"]);
    check_scheme(
        &ner,
        &with_spans(Decision::Accept, &[(0, 3, "PER"), (3, 5, "ORG")]),
    )
    .unwrap();
    check_scheme(&ner, &with_spans(Decision::Accept, &[])).unwrap();
    check_scheme(&ner, &with_spans(Decision::Reject, &[])).unwrap();

    let (field, reason) = refusal(check_scheme(
        &ner,
        &with_spans(Decision::Accept, &[(0, 3, "PER"), (4, 6, "LOC")]),
    ));
    assert_eq!(field, "spans[1].label");
    assert_eq!(
        reason,
        "unknown label \"LOC\"; the task's labels are PER, ORG"
    );

    let (field, reason) = refusal(check_scheme(
        &ner,
        &with_spans(Decision::Accept, &[(4, 4, "PER")]),
    ));
    assert_eq!(field, "spans[0]");
    assert!(reason.contains("start 4, end 4"), "{reason}");
    let (field, _) = refusal(check_scheme(
        &ner,
        &with_spans(Decision::Accept, &[(5, 2, "PER")]),
    ));
    assert_eq!(field, "spans[0]");

    let (field, reason) = refusal(check_scheme(
        &ner,
        &with_spans(Decision::Reject, &[(0, 3, "PER")]),
    ));
    assert_eq!(field, "spans");
    assert!(reason.contains("REJECT"), "{reason}");

    let mut a = with_spans(Decision::Accept, &[(0, 3, "PER")]);
    a.choices.push("PER".into());
    assert_eq!(refusal(check_scheme(&ner, &a)).0, "choices");
}

#[test]
fn ner_spans_must_not_overlap() {
    for interface in [Interface::Ner, Interface::NerCorrect] {
        let t = task(interface, &["PER", "ORG"]);
        let (field, reason) = refusal(check_scheme(
            &t,
            &with_spans(
                Decision::Accept,
                &[(10, 20, "ORG"), (0, 4, "PER"), (15, 25, "PER")],
            ),
        ));
        assert_eq!(field, "spans[2]");
        assert_eq!(reason, "overlaps spans[0] (10..20 ORG)");
    }
    let t = task(Interface::Ner, &["PER", "ORG"]);
    // The overlapping pair is reported by their indices whatever the order of the spans.
    let (field, reason) = refusal(check_scheme(
        &t,
        &with_spans(Decision::Accept, &[(5, 8, "PER"), (0, 10, "ORG")]),
    ));
    assert_eq!(
        (field.as_str(), reason.as_str()),
        ("spans[1]", "overlaps spans[0] (5..8 PER)")
    );
    // A span nested inside a long one overlaps it; the first overlap in text order is reported.
    let (field, reason) = refusal(check_scheme(
        &t,
        &with_spans(
            Decision::Accept,
            &[(0, 30, "ORG"), (1, 2, "PER"), (20, 25, "PER")],
        ),
    ));
    assert_eq!(field, "spans[1]");
    assert_eq!(reason, "overlaps spans[0] (0..30 ORG)");
    // Identical ranges overlap too.
    let (field, _) = refusal(check_scheme(
        &t,
        &with_spans(Decision::Accept, &[(0, 3, "PER"), (0, 3, "ORG")]),
    ));
    assert_eq!(field, "spans[1]");
}

#[test]
fn overlapping_spans_may_overlap_but_not_repeat() {
    let t = task(Interface::Spans, &["A", "B"]);
    check_scheme(
        &t,
        &with_spans(Decision::Accept, &[(0, 10, "A"), (5, 8, "B"), (0, 10, "B")]),
    )
    .unwrap();
    let (field, reason) = refusal(check_scheme(
        &t,
        &with_spans(Decision::Accept, &[(0, 10, "A"), (5, 8, "B"), (0, 10, "A")]),
    ));
    assert_eq!(field, "spans[2]");
    assert_eq!(reason, "duplicates spans[0] (0..10 A)");
}

const TEXT: &str = "Angela Merkel visited Paris in 2019.";
// Tokens: Angela 0..6, Merkel 7..13, visited 14..21, Paris 22..27, in 28..30, 2019 31..35, . 35..36

#[test]
fn check_answer_fills_and_sorts_spans() {
    let t = task(Interface::Ner, &["PER", "LOC"]);
    let mut a = with_spans(Decision::Accept, &[(22, 27, "LOC"), (0, 13, "PER")]);
    check_answer(&t, TEXT, &mut a).unwrap();
    assert_eq!(
        a.spans,
        vec![
            Span {
                start: 0,
                end: 13,
                label: "PER".into(),
                token_start: 0,
                token_end: 1,
                text: "Angela Merkel".into(),
            },
            Span {
                start: 22,
                end: 27,
                label: "LOC".into(),
                token_start: 3,
                token_end: 3,
                text: "Paris".into(),
            },
        ]
    );
    // Checking a normalised answer again changes nothing.
    let before = a.clone();
    check_answer(&t, TEXT, &mut a).unwrap();
    assert_eq!(a, before);
}

#[test]
fn check_answer_sorts_overlapping_spans_by_label_too() {
    let t = task(Interface::Spans, &["A", "B"]);
    let mut a = with_spans(Decision::Accept, &[(0, 6, "B"), (0, 13, "A"), (0, 6, "A")]);
    check_answer(&t, TEXT, &mut a).unwrap();
    let keys: Vec<(u32, u32, &str)> = a
        .spans
        .iter()
        .map(|s| (s.start, s.end, s.label.as_str()))
        .collect();
    assert_eq!(keys, [(0, 6, "A"), (0, 6, "B"), (0, 13, "A")]);
}

#[test]
fn check_answer_counts_code_points() {
    let t = task(Interface::Ner, &["LOC"]);
    let text = "Grüße aus Köln!";
    let mut a = with_spans(Decision::Accept, &[(10, 14, "LOC")]);
    check_answer(&t, text, &mut a).unwrap();
    assert_eq!(a.spans[0].text, "Köln");
    assert_eq!((a.spans[0].token_start, a.spans[0].token_end), (2, 2));
}

#[test]
fn span_past_the_text() {
    let t = task(Interface::Ner, &["PER"]);
    let mut a = with_spans(Decision::Accept, &[(0, 6, "PER"), (31, 40, "PER")]);
    let err = check_answer(&t, TEXT, &mut a).unwrap_err();
    assert_eq!(
        err.to_string(),
        "field `spans[1].end`: 40 ends past the text (length 36)"
    );
}

#[test]
fn span_off_token_boundaries() {
    let t = task(Interface::Ner, &["PER"]);
    let mut a = with_spans(Decision::Accept, &[(2, 6, "PER")]);
    let (field, reason) = refusal(check_answer(&t, TEXT, &mut a));
    assert_eq!(field, "spans[0].start");
    assert_eq!(
        reason,
        "2 is not a token boundary; nearest token starts at 0"
    );

    let mut a = with_spans(Decision::Accept, &[(22, 29, "PER")]);
    let (field, reason) = refusal(check_answer(&t, TEXT, &mut a));
    assert_eq!(field, "spans[0].end");
    assert_eq!(
        reason,
        "29 is not a token boundary; nearest token ends at 30"
    );

    // Starting on the space before a token is not a boundary either.
    let mut a = with_spans(Decision::Accept, &[(6, 13, "PER")]);
    let (field, reason) = refusal(check_answer(&t, TEXT, &mut a));
    assert_eq!(field, "spans[0].start");
    assert_eq!(
        reason,
        "6 is not a token boundary; nearest token starts at 7"
    );

    let mut a = with_spans(Decision::Accept, &[(0, 2, "PER")]);
    let (field, reason) = refusal(check_answer(&t, "   ", &mut a));
    assert_eq!(field, "spans[0].start");
    assert_eq!(reason, "0 is not a token boundary; the text has no tokens");
    // Nothing was normalised on failure.
    assert_eq!(a.spans[0].text, "");
}

#[test]
fn check_answer_runs_the_scheme_checks_first() {
    let t = task(Interface::Ner, &["PER"]);
    let mut a = with_spans(Decision::Accept, &[(0, 6, "ORG")]);
    assert_eq!(refusal(check_answer(&t, TEXT, &mut a)).0, "spans[0].label");
    let binary = task(Interface::Binary, &["PER"]);
    let mut a = with_label(Decision::Accept, "PER");
    check_answer(&binary, TEXT, &mut a).unwrap();
}

#[test]
fn proposed_label_from_record_or_task() {
    let t = task(Interface::Binary, &["POS", "NEG"]);
    assert_eq!(proposed_label(&t, r#"{"text":"x","label":"NEG"}"#), "NEG");
    assert_eq!(proposed_label(&t, r#"{"text":"x","label":"OTHER"}"#), "POS");
    assert_eq!(proposed_label(&t, r#"{"text":"x","label":3}"#), "POS");
    assert_eq!(proposed_label(&t, r#"{"text":"x"}"#), "POS");
    assert_eq!(proposed_label(&t, "not json"), "POS");
    assert_eq!(proposed_label(&t, r#"["label"]"#), "POS");
    assert_eq!(
        proposed_label(&task(Interface::Binary, &[]), r#"{"label":"A"}"#),
        ""
    );
}

fn refs(answers: &[Answer]) -> Vec<&Answer> {
    answers.iter().collect()
}

#[test]
fn disagreement_needs_two_answers() {
    let t = task(Interface::Binary, &["POS"]);
    assert_eq!(disagreement(&t, &[]), None);
    let a = with_label(Decision::Accept, "POS");
    assert_eq!(disagreement(&t, &[&a]), None);
}

#[test]
fn disagreement_on_decisions() {
    let t = task(Interface::Binary, &["POS", "NEG"]);
    let answers = [
        with_label(Decision::Accept, "POS"),
        with_label(Decision::Accept, "POS"),
        with_label(Decision::Reject, "POS"),
    ];
    assert_eq!(disagreement(&t, &refs(&answers)), Some(vec![]));
    assert_eq!(disagreement(&t, &refs(&answers[..2])), None);
    let ignored = [answer(Decision::Ignore), answer(Decision::Ignore)];
    assert_eq!(disagreement(&t, &refs(&ignored)), None);
}

#[test]
fn disagreement_on_binary_labels() {
    let t = task(Interface::Binary, &["POS", "NEG"]);
    let answers = [
        with_label(Decision::Accept, "POS"),
        with_label(Decision::Accept, "NEG"),
    ];
    assert_eq!(
        disagreement(&t, &refs(&answers)),
        Some(vec!["NEG".to_owned(), "POS".to_owned()])
    );
}

#[test]
fn disagreement_on_choices() {
    let t = task(Interface::MultiChoice, &["A", "B", "C"]);
    let same = [
        with_choices(Decision::Accept, &["A", "C"]),
        with_choices(Decision::Accept, &["C", "A"]),
    ];
    assert_eq!(disagreement(&t, &refs(&same)), None);
    let differ = [
        with_choices(Decision::Accept, &["A", "C"]),
        with_choices(Decision::Accept, &["A", "B"]),
        with_choices(Decision::Accept, &["A", "C"]),
    ];
    assert_eq!(
        disagreement(&t, &refs(&differ)),
        Some(vec!["B".to_owned(), "C".to_owned()])
    );
}

#[test]
fn disagreement_on_spans() {
    let t = task(Interface::Ner, &["PER", "ORG", "LOC"]);
    let answers = [
        with_spans(Decision::Accept, &[(0, 6, "PER"), (22, 27, "LOC")]),
        with_spans(Decision::Accept, &[(22, 27, "LOC"), (0, 13, "PER")]),
        with_spans(
            Decision::Accept,
            &[(0, 6, "PER"), (22, 27, "LOC"), (31, 35, "ORG")],
        ),
    ];
    assert_eq!(
        disagreement(&t, &refs(&answers)),
        Some(vec!["ORG".to_owned(), "PER".to_owned()])
    );
    let same = [
        with_spans(Decision::Accept, &[(22, 27, "LOC"), (0, 6, "PER")]),
        with_spans(Decision::Accept, &[(0, 6, "PER"), (22, 27, "LOC")]),
    ];
    assert_eq!(disagreement(&t, &refs(&same)), None);
    // Same range, different label: both labels are disputed.
    let relabel = [
        with_spans(Decision::Accept, &[(0, 6, "PER")]),
        with_spans(Decision::Accept, &[(0, 6, "ORG")]),
    ];
    assert_eq!(
        disagreement(&t, &refs(&relabel)),
        Some(vec!["ORG".to_owned(), "PER".to_owned()])
    );
}

#[test]
fn per_label_policy_only_counts_review_labels() {
    let mut t = task(Interface::Ner, &["PER", "ORG", "LOC"]);
    t.disagreement = DisagreementPolicy::PerLabel as i32;
    t.review_labels = vec!["PER".into()];
    let org_only = [
        with_spans(Decision::Accept, &[(0, 6, "PER"), (22, 27, "ORG")]),
        with_spans(Decision::Accept, &[(0, 6, "PER"), (22, 27, "LOC")]),
    ];
    assert_eq!(disagreement(&t, &refs(&org_only)), None);
    let per_too = [
        with_spans(Decision::Accept, &[(0, 13, "PER"), (22, 27, "ORG")]),
        with_spans(Decision::Accept, &[(0, 6, "PER"), (22, 27, "LOC")]),
    ];
    assert_eq!(
        disagreement(&t, &refs(&per_too)),
        Some(vec!["PER".to_owned()])
    );
    // Differing decisions always count.
    let decisions = [
        with_spans(Decision::Accept, &[(22, 27, "ORG")]),
        with_spans(Decision::Reject, &[]),
    ];
    assert_eq!(disagreement(&t, &refs(&decisions)), Some(vec![]));
    // No review labels: every label counts.
    t.review_labels.clear();
    assert_eq!(
        disagreement(&t, &refs(&org_only)),
        Some(vec!["LOC".to_owned(), "ORG".to_owned()])
    );
}

fn relations_task() -> Task {
    Task {
        relation_labels: vec!["WORKS_AT".into(), "KNOWS".into()],
        ..task(Interface::Relations, &["PER", "ORG"])
    }
}

fn with_relations(spans: &[(u32, u32, &str)], relations: &[(u32, u32, &str)]) -> Answer {
    Answer {
        relations: relations
            .iter()
            .map(|&(head, child, label)| Relation {
                head,
                child,
                label: label.into(),
            })
            .collect(),
        ..with_spans(Decision::Accept, spans)
    }
}

#[test]
fn relation_answers() {
    let t = relations_task();
    let people = [(0, 3, "PER"), (13, 17, "ORG"), (23, 26, "PER")];
    check_scheme(
        &t,
        &with_relations(&people, &[(0, 1, "WORKS_AT"), (2, 0, "KNOWS")]),
    )
    .unwrap();
    check_scheme(&t, &with_relations(&people, &[])).unwrap();

    let cases = [
        (
            with_relations(&people, &[(0, 3, "WORKS_AT")]),
            "relations[0].child",
            "span 3 does not exist; the answer has 3 span(s)",
        ),
        (
            with_relations(&people, &[(0, 1, "KNOWS"), (7, 1, "KNOWS")]),
            "relations[1].head",
            "span 7 does not exist; the answer has 3 span(s)",
        ),
        (
            with_relations(&people, &[(2, 2, "KNOWS")]),
            "relations[0]",
            "relates spans[2] (23..26 PER) to itself",
        ),
        (
            with_relations(&people, &[(0, 1, "OWNS")]),
            "relations[0].label",
            "unknown relation label \"OWNS\"; the task's relation labels are WORKS_AT, KNOWS",
        ),
        (
            with_relations(
                &people,
                &[(0, 1, "WORKS_AT"), (2, 1, "WORKS_AT"), (0, 1, "WORKS_AT")],
            ),
            "relations[2]",
            "duplicates relations[0]",
        ),
        (
            // Spans of a relations task must not overlap, as in NER.
            with_relations(&[(0, 5, "PER"), (3, 8, "ORG")], &[]),
            "spans[1]",
            "overlaps spans[0] (0..5 PER)",
        ),
    ];
    for (answer, field, reason) in cases {
        assert_eq!(
            refusal(check_scheme(&t, &answer)),
            (field.into(), reason.into())
        );
    }

    let rejected = Answer {
        decision: Decision::Reject as i32,
        ..with_relations(&[], &[(0, 1, "KNOWS")])
    };
    let (field, reason) = refusal(check_scheme(&t, &rejected));
    assert_eq!(field, "relations");
    assert!(reason.contains("REJECT"), "{reason}");
}

#[test]
fn relations_only_on_relations_tasks() {
    let t = task(Interface::Ner, &["PER"]);
    let answer = with_relations(&[(0, 3, "PER"), (4, 7, "PER")], &[(0, 1, "KNOWS")]);
    let (field, reason) = refusal(check_scheme(&t, &answer));
    assert_eq!(field, "relations");
    assert!(reason.contains("only a relations task"), "{reason}");
}

#[test]
fn sorting_spans_keeps_relations_on_the_same_spans() {
    let t = relations_task();
    let text = "Ann works at Acme with Bob";
    // Listed out of order: Bob, Acme, Ann.
    let mut answer = with_relations(
        &[(23, 26, "PER"), (13, 17, "ORG"), (0, 3, "PER")],
        &[(2, 1, "WORKS_AT"), (0, 1, "WORKS_AT"), (0, 2, "KNOWS")],
    );
    check_answer(&t, text, &mut answer).unwrap();
    let texts: Vec<&str> = answer.spans.iter().map(|s| s.text.as_str()).collect();
    assert_eq!(texts, ["Ann", "Acme", "Bob"]);
    let rels: Vec<(&str, &str, &str)> = answer
        .relations
        .iter()
        .map(|r| {
            (
                answer.spans[r.head as usize].text.as_str(),
                answer.spans[r.child as usize].text.as_str(),
                r.label.as_str(),
            )
        })
        .collect();
    assert_eq!(
        rels,
        [
            ("Ann", "Acme", "WORKS_AT"),
            ("Bob", "Ann", "KNOWS"),
            ("Bob", "Acme", "WORKS_AT")
        ]
    );
}

#[test]
fn relations_disagree_when_they_differ() {
    let t = relations_task();
    let people = [(0, 3, "PER"), (13, 17, "ORG"), (23, 26, "PER")];
    let a = with_relations(&people, &[(0, 1, "WORKS_AT")]);
    let same = with_relations(&people, &[(0, 1, "WORKS_AT")]);
    assert_eq!(disagreement(&t, &[&a, &same]), None);
    let other = with_relations(&people, &[(0, 1, "WORKS_AT"), (2, 1, "WORKS_AT")]);
    assert_eq!(
        disagreement(&t, &[&a, &other]),
        Some(vec!["WORKS_AT".to_string()])
    );
    let reversed = with_relations(&people, &[(1, 0, "WORKS_AT")]);
    assert_eq!(
        disagreement(&t, &[&a, &reversed]),
        Some(vec!["WORKS_AT".to_string()])
    );
}
