use super::*;
use crate::test_support::span;

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| v.to_string()).collect()
}

fn close(actual: Option<f64>, expected: f64, tolerance: f64) {
    let actual = actual.expect("the metric should be defined");
    assert!(
        (actual - expected).abs() <= tolerance,
        "got {actual}, expected {expected} ± {tolerance}"
    );
}

/// Items from per-category counts (category i is named "c{i}").
fn from_counts(rows: &[[usize; 5]]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|row| {
            row.iter()
                .enumerate()
                .flat_map(|(i, &c)| std::iter::repeat_n(format!("c{i}"), c))
                .collect()
        })
        .collect()
}

#[test]
fn cohen_kappa_wikipedia_example() {
    // 50 items: yes/yes 20, yes/no 5, no/yes 10, no/no 15; po = 0.7, pe = 0.5, kappa = 0.4.
    let mut pairs = Vec::new();
    for (a, b, n) in [
        ("yes", "yes", 20),
        ("yes", "no", 5),
        ("no", "yes", 10),
        ("no", "no", 15),
    ] {
        for _ in 0..n {
            pairs.push((a.to_owned(), b.to_owned()));
        }
    }
    close(cohen_kappa(&pairs), 0.4, 1e-12);
}

#[test]
fn cohen_kappa_edge_cases() {
    assert_eq!(cohen_kappa(&[]), None);
    let same = vec![("a".to_owned(), "a".to_owned()); 3];
    assert_eq!(cohen_kappa(&same), None);
    let perfect = vec![
        ("a".to_owned(), "a".to_owned()),
        ("b".to_owned(), "b".to_owned()),
    ];
    close(cohen_kappa(&perfect), 1.0, 1e-12);
    let opposite = vec![
        ("a".to_owned(), "b".to_owned()),
        ("b".to_owned(), "a".to_owned()),
    ];
    close(cohen_kappa(&opposite), -1.0, 1e-12);
}

#[test]
fn fleiss_kappa_wikipedia_example() {
    let items = from_counts(&[
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]);
    assert!(items.iter().all(|i| i.len() == 14));
    // P̄ = 0.378, P̄e = 0.213, kappa = 0.210.
    close(fleiss_kappa(&items), 0.210, 0.001);
}

#[test]
fn fleiss_kappa_edge_cases() {
    assert_eq!(fleiss_kappa(&[]), None);
    assert_eq!(fleiss_kappa(&[strings(&["a"])]), None);
    assert_eq!(fleiss_kappa(&[strings(&["a", "b"]), strings(&["a"])]), None);
    assert_eq!(
        fleiss_kappa(&[strings(&["a", "a"]), strings(&["a", "a"])]),
        None
    );
    close(
        fleiss_kappa(&[strings(&["a", "a", "a"]), strings(&["b", "b", "b"])]),
        1.0,
        1e-12,
    );
}

/// Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability": 4 observers, 12 units.
fn krippendorff_example() -> Vec<Vec<String>> {
    let rows = [
        "1 2 3 3 2 1 4 1 2 . . .",
        "1 2 3 3 2 2 4 1 2 5 . 3",
        ". 3 3 3 2 3 4 2 2 5 1 .",
        "1 2 3 3 2 4 4 1 2 5 1 .",
    ];
    let table: Vec<Vec<&str>> = rows.iter().map(|r| r.split(' ').collect()).collect();
    (0..12)
        .map(|unit| {
            table
                .iter()
                .map(|row| row[unit])
                .filter(|v| *v != ".")
                .map(str::to_owned)
                .collect()
        })
        .collect()
}

#[test]
fn krippendorff_alpha_published_example() {
    close(
        krippendorff_alpha_nominal(&krippendorff_example()),
        0.743,
        0.001,
    );
}

#[test]
fn krippendorff_alpha_edge_cases() {
    let perfect = vec![
        strings(&["a", "a", "a"]),
        strings(&["b", "b"]),
        strings(&["c"]),
    ];
    close(krippendorff_alpha_nominal(&perfect), 1.0, 1e-12);
    assert_eq!(krippendorff_alpha_nominal(&[]), None);
    assert_eq!(krippendorff_alpha_nominal(&[strings(&["a"])]), None);
    assert_eq!(
        krippendorff_alpha_nominal(&[strings(&["a", "a"]), strings(&["a", "a"])]),
        None
    );
    // Two raters who always disagree on two categories: D_o = 1 and D_e = n / (2(n-1)).
    let opposite = vec![strings(&["a", "b"]), strings(&["b", "a"])];
    close(
        krippendorff_alpha_nominal(&opposite),
        1.0 - 3.0 / 2.0,
        1e-12,
    );
}

#[test]
fn krippendorff_alpha_matches_the_python_package_with_missing_data() {
    // Units of 2-4 ratings from 4 observers (the rest missing); the value is what
    // `krippendorff.alpha(..., level_of_measurement="nominal")` 0.9 computes for them.
    let items = vec![
        strings(&["a", "b", "b", "a"]),
        strings(&["b", "a", "b", "a"]),
        strings(&["a", "a"]),
        strings(&["b", "c", "b"]),
        strings(&["a", "b"]),
        strings(&["c", "c"]),
        strings(&["b", "b"]),
        strings(&["b", "b"]),
        strings(&["a", "c", "b", "b"]),
        strings(&["c", "b", "a"]),
        strings(&["b", "c", "a", "c"]),
        strings(&["c", "c", "a", "c"]),
        strings(&["c", "c", "b", "c"]),
        strings(&["c", "a", "c", "a"]),
        strings(&["a", "b"]),
    ];
    close(
        krippendorff_alpha_nominal(&items),
        0.11450924608819346,
        1e-9,
    );
}

#[test]
fn percent_agreement() {
    let items = vec![
        strings(&["a", "a", "a"]), // 3 of 3 pairs
        strings(&["a", "a", "b"]), // 1 of 3
        strings(&["a", "b"]),      // 0 of 1
        strings(&["z"]),           // left out
    ];
    close(
        pairwise_percent_agreement(&items),
        (1.0 + 1.0 / 3.0 + 0.0) / 3.0,
        1e-12,
    );
    assert_eq!(pairwise_percent_agreement(&[strings(&["a"])]), None);
    assert_eq!(pairwise_percent_agreement(&[]), None);
}

#[test]
fn span_matches() {
    let a = [span(0, 5, "PER"), span(10, 15, "ORG"), span(20, 25, "LOC")];
    let b = [span(0, 5, "PER"), span(10, 15, "LOC"), span(30, 35, "LOC")];
    assert_eq!(span_f1(&a, &b), (1, 3, 3));
    assert_eq!(f1_score(1, 3, 3), Some(1.0 / 3.0));
    assert_eq!(span_f1(&a, &a), (3, 3, 3));
    assert_eq!(span_f1(&[], &a), (0, 0, 3));
    assert_eq!(f1_score(0, 0, 3), Some(0.0));
    assert_eq!(f1_score(0, 0, 0), None);
    // A repeated span matches only as often as it occurs on both sides.
    let twice = [span(0, 5, "PER"), span(0, 5, "PER")];
    assert_eq!(span_f1(&twice, &a[..1]), (1, 2, 1));
}

fn task(interface: Interface, labels: &[&str], overlap: u32) -> Task {
    Task {
        project: "proj".into(),
        name: "tsk".into(),
        interface: interface as i32,
        labels: strings(labels),
        overlap,
        ..Default::default()
    }
}

fn binary(who: &str, decision: Decision, label: &str) -> Answer {
    Answer {
        annotator: who.into(),
        decision: decision as i32,
        label: label.into(),
        ..Default::default()
    }
}

fn choice(who: &str, decision: Decision, choices: &[&str]) -> Answer {
    Answer {
        annotator: who.into(),
        decision: decision as i32,
        choices: strings(choices),
        ..Default::default()
    }
}

fn spans(who: &str, spans: &[(u32, u32, &str)]) -> Answer {
    Answer {
        annotator: who.into(),
        decision: Decision::Accept as i32,
        spans: spans.iter().map(|&(s, e, l)| span(s, e, l)).collect(),
        ..Default::default()
    }
}

use Decision::{Accept, Ignore, Reject};

#[test]
fn binary_report_two_annotators() {
    let t = task(Interface::Binary, &["POS", "NEG"], 2);
    let items = vec![
        vec![binary("ann", Accept, "POS"), binary("bob", Accept, "POS")],
        vec![binary("ann", Accept, "POS"), binary("bob", Reject, "POS")],
        vec![binary("ann", Reject, "NEG"), binary("bob", Reject, "NEG")],
        vec![binary("ann", Accept, "NEG"), binary("bob", Accept, "NEG")],
        vec![binary("ann", Accept, "NEG"), binary("bob", Ignore, "NEG")],
        vec![binary("cat", Ignore, "POS")],
    ];
    let report = agreement_report(&t, &items);
    assert_eq!(
        (report.project.as_str(), report.task.as_str()),
        ("proj", "tsk")
    );
    assert_eq!(report.annotators, 3);
    let overall = report.overall.unwrap();
    assert_eq!(overall.label, "");
    assert_eq!(overall.items, 4);
    close(overall.percent_agreement, 0.75, 1e-12);
    // ann: A A R A, bob: A R R A -> po = 0.75, pe = 0.75*0.5 + 0.25*0.5 = 0.5, kappa = 0.5.
    close(overall.cohen_kappa, 0.5, 1e-12);
    assert!(overall.fleiss_kappa.is_some());
    assert!(overall.krippendorff_alpha.is_some());
    assert_eq!(overall.span_f1, None);

    let labels: Vec<&str> = report.labels.iter().map(|l| l.label.as_str()).collect();
    assert_eq!(labels, ["POS", "NEG"]);
    let pos = &report.labels[0];
    assert_eq!(pos.items, 2);
    close(pos.percent_agreement, 0.5, 1e-12);
    let neg = &report.labels[1];
    assert_eq!(neg.items, 2);
    close(neg.percent_agreement, 1.0, 1e-12);
    close(neg.krippendorff_alpha, 1.0, 1e-12);
}

#[test]
fn cohen_kappa_only_with_exactly_two_annotators() {
    let t = task(Interface::Binary, &["POS"], 2);
    let items = vec![
        vec![binary("ann", Accept, "POS"), binary("bob", Accept, "POS")],
        vec![binary("ann", Reject, "POS"), binary("cat", Reject, "POS")],
        vec![binary("bob", Accept, "POS"), binary("cat", Reject, "POS")],
    ];
    let overall = agreement_report(&t, &items).overall.unwrap();
    assert_eq!(overall.items, 3);
    assert_eq!(overall.cohen_kappa, None);
    assert!(overall.fleiss_kappa.is_some());
}

#[test]
fn fleiss_kappa_needs_overlap_ratings() {
    let t = task(Interface::Choice, &["A", "B", "C"], 3);
    let items = vec![
        vec![
            choice("ann", Accept, &["A"]),
            choice("bob", Accept, &["A"]),
            choice("cat", Accept, &["A"]),
        ],
        vec![
            choice("ann", Accept, &["B"]),
            choice("bob", Accept, &["B"]),
            choice("cat", Reject, &[]),
        ],
        // Only two ratings: counted by percent agreement and alpha, not by Fleiss.
        vec![choice("ann", Accept, &["C"]), choice("bob", Accept, &["B"])],
    ];
    let report = agreement_report(&t, &items);
    let overall = report.overall.unwrap();
    assert_eq!(overall.items, 3);
    let fleiss_items = vec![strings(&["A", "A", "A"]), strings(&["B", "B", "reject"])];
    close(
        overall.fleiss_kappa,
        fleiss_kappa(&fleiss_items).unwrap(),
        1e-12,
    );
    assert_eq!(overall.cohen_kappa, None);
    close(
        overall.percent_agreement,
        (1.0 + 1.0 / 3.0 + 0.0) / 3.0,
        1e-12,
    );
    // Per label: did the annotator choose it? C: only ann on item 3 said yes.
    let c = &report.labels[2];
    assert_eq!(c.label, "C");
    close(c.percent_agreement, (1.0 + 1.0 + 0.0) / 3.0, 1e-12);

    let no_overlap = task(Interface::Choice, &["A", "B", "C"], 1);
    let overall = agreement_report(&no_overlap, &items).overall.unwrap();
    assert_eq!(overall.fleiss_kappa, None);
}

#[test]
fn a_label_named_reject_is_not_a_rejection() {
    let t = task(Interface::Choice, &["reject", "keep"], 2);
    let items = vec![vec![
        choice("ann", Accept, &["reject"]),
        choice("bob", Reject, &[]),
    ]];
    let overall = agreement_report(&t, &items).overall.unwrap();
    close(overall.percent_agreement, 0.0, 1e-12);
}

#[test]
fn multi_choice_report() {
    let t = task(Interface::MultiChoice, &["A", "B"], 2);
    let items = vec![
        vec![
            choice("ann", Accept, &["A", "B"]),
            choice("bob", Accept, &["B", "A"]),
        ],
        vec![
            choice("ann", Accept, &["A"]),
            choice("bob", Accept, &["A", "B"]),
        ],
        vec![choice("ann", Accept, &[]), choice("bob", Reject, &[])],
    ];
    let report = agreement_report(&t, &items);
    let overall = report.overall.unwrap();
    close(overall.percent_agreement, 1.0 / 3.0, 1e-12);
    let a = &report.labels[0];
    close(a.percent_agreement, 1.0, 1e-12);
    let b = &report.labels[1];
    close(b.percent_agreement, 2.0 / 3.0, 1e-12);
    // yes/yes, no/yes, no/no: po = 2/3, pe = 1/3*2/3 + 2/3*1/3 = 4/9, kappa = (2/9)/(5/9).
    close(b.cohen_kappa, 0.4, 1e-12);
}

#[test]
fn span_report() {
    let t = task(Interface::Ner, &["PER", "ORG", "LOC"], 2);
    let items = vec![
        vec![
            spans("ann", &[(0, 5, "PER"), (10, 15, "ORG")]),
            spans("bob", &[(0, 5, "PER"), (10, 15, "LOC")]),
        ],
        vec![
            spans("ann", &[(0, 3, "PER")]),
            spans("bob", &[(0, 3, "PER")]),
        ],
        vec![
            spans("ann", &[]),
            Answer {
                decision: Reject as i32,
                ..spans("bob", &[])
            },
        ],
        vec![spans("ann", &[(1, 2, "PER")])],
    ];
    let report = agreement_report(&t, &items);
    assert_eq!(report.annotators, 2);
    let overall = report.overall.unwrap();
    assert_eq!(overall.items, 3);
    // Exact set equality: item 1 differs, items 2 and 3 agree.
    close(overall.percent_agreement, 2.0 / 3.0, 1e-12);
    // Pooled over the items both rated: 2 matches of 3 + 3 spans.
    close(overall.span_f1, 4.0 / 6.0, 1e-12);
    assert_eq!(overall.cohen_kappa, None);
    assert_eq!(overall.fleiss_kappa, None);
    assert_eq!(overall.krippendorff_alpha, None);

    let per = &report.labels[0];
    assert_eq!(per.label, "PER");
    close(per.span_f1, 1.0, 1e-12);
    close(per.percent_agreement, 1.0, 1e-12);
    let org = &report.labels[1];
    close(org.span_f1, 0.0, 1e-12);
    close(org.percent_agreement, 2.0 / 3.0, 1e-12);
    let loc = &report.labels[2];
    close(loc.span_f1, 0.0, 1e-12);
}

#[test]
fn span_f1_averages_over_annotator_pairs_and_skips_empty_pairs() {
    let t = task(Interface::Spans, &["A", "B"], 3);
    let items = vec![
        vec![
            spans("ann", &[(0, 5, "A")]),
            spans("bob", &[(0, 5, "A"), (6, 9, "B")]),
            spans("cat", &[(6, 9, "B")]),
        ],
        vec![spans("dan", &[(6, 9, "B")]), spans("eve", &[(6, 9, "B")])],
    ];
    let report = agreement_report(&t, &items);
    // ann-bob 2/3, ann-cat 0, bob-cat 2/3, dan-eve 1.
    close(
        report.overall.unwrap().span_f1,
        (2.0 / 3.0 + 0.0 + 2.0 / 3.0 + 1.0) / 4.0,
        1e-12,
    );
    // Label A: ann-bob 1, ann-cat 0, bob-cat 0; dan and eve marked no A and are skipped.
    close(report.labels[0].span_f1, 1.0 / 3.0, 1e-12);
}

#[test]
fn empty_report() {
    let t = task(Interface::Binary, &["POS"], 2);
    let report = agreement_report(&t, &[]);
    assert_eq!(report.annotators, 0);
    assert_eq!(
        report.overall,
        Some(LabelAgreement {
            label: String::new(),
            ..Default::default()
        })
    );
    assert_eq!(report.labels.len(), 1);
    assert_eq!(report.labels[0].percent_agreement, None);
}

fn relations(who: &str, spans_: &[(u32, u32, &str)], rels: &[(u32, u32, &str)]) -> Answer {
    Answer {
        relations: rels
            .iter()
            .map(|&(head, child, label)| gloss_proto::v1::Relation {
                head,
                child,
                label: label.into(),
            })
            .collect(),
        ..spans(who, spans_)
    }
}

#[test]
fn relation_report_by_hand() {
    let mut t = task(Interface::Relations, &["PER", "ORG"], 2);
    t.relation_labels = strings(&["WORKS_AT", "KNOWS"]);
    // "Ann works at Acme with Bob": Ann 0..3, Acme 13..17, Bob 23..26.
    let people = [(0, 3, "PER"), (13, 17, "ORG"), (23, 26, "PER")];
    let items = vec![
        vec![
            // ann: Ann WORKS_AT Acme, Bob WORKS_AT Acme, Ann KNOWS Bob.
            relations(
                "ann",
                &people,
                &[(0, 1, "WORKS_AT"), (2, 1, "WORKS_AT"), (0, 2, "KNOWS")],
            ),
            // bob: the same spans listed in another order; Ann WORKS_AT Acme, Bob KNOWS Ann.
            relations(
                "bob",
                &[(23, 26, "PER"), (0, 3, "PER"), (13, 17, "ORG")],
                &[(1, 2, "WORKS_AT"), (0, 1, "KNOWS")],
            ),
        ],
        vec![
            relations(
                "ann",
                &[(0, 3, "PER"), (13, 17, "ORG")],
                &[(0, 1, "WORKS_AT")],
            ),
            relations(
                "bob",
                &[(0, 3, "PER"), (13, 17, "ORG")],
                &[(0, 1, "WORKS_AT")],
            ),
        ],
    ];
    let report = agreement_report(&t, &items);
    let overall = report.overall.unwrap();
    assert_eq!(overall.items, 2);
    // Relations, pooled over both items: 1 + 1 matches of (3 + 1) and (2 + 1) relations.
    close(overall.relation_f1, 2.0 * 2.0 / 7.0, 1e-12);
    // Spans agree exactly on both items.
    close(overall.span_f1, 1.0, 1e-12);
    // Item 1's relations differ, so only item 2 agrees as a whole.
    close(overall.percent_agreement, 0.5, 1e-12);
    let by_label: BTreeMap<&str, &LabelAgreement> = report
        .labels
        .iter()
        .map(|l| (l.label.as_str(), l))
        .collect();
    assert_eq!(
        report
            .labels
            .iter()
            .map(|l| l.label.as_str())
            .collect::<Vec<_>>(),
        ["PER", "ORG", "WORKS_AT", "KNOWS"]
    );
    // WORKS_AT: 2 matches of (2 + 1) + (1 + 1) = 4/5; KNOWS: the direction differs, 0 of 2.
    close(by_label["WORKS_AT"].relation_f1, 4.0 / 5.0, 1e-12);
    close(by_label["KNOWS"].relation_f1, 0.0, 1e-12);
    assert_eq!(by_label["WORKS_AT"].span_f1, None);
    close(by_label["PER"].span_f1, 1.0, 1e-12);
    assert_eq!(by_label["PER"].relation_f1, None);
}

#[test]
fn span_tasks_carry_no_relation_figure() {
    let t = task(Interface::Ner, &["PER"], 2);
    let items = vec![vec![
        spans("ann", &[(0, 3, "PER")]),
        spans("bob", &[(0, 3, "PER")]),
    ]];
    let report = agreement_report(&t, &items);
    assert_eq!(report.overall.unwrap().relation_f1, None);
    assert_eq!(report.labels.len(), 1);
}
