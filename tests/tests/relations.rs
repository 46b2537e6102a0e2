//! The relations interface over the real gRPC API: task creation rules, answers whose relations
//! name spans by index (and follow them when the coordinator sorts the spans), refusals that name
//! the field and record nothing, disagreement and relation F1 between two annotators, pre-set
//! spans and relations from suggestions, and the Prodigy and flat exports, the Prodigy file
//! imported back into a new task with the same relations.

use gloss_client::{Client, ClientError};
use gloss_proto::v1::*;
use gloss_tests::{import, jsonl, span, start_node, Node};
use serde_json::{json, Value};

/// Spans: Ann 0..3, Acme 13..17, Bob 23..26, Leeds 30..35.
const TEXT: &str = "Ann works at Acme with Bob in Leeds.";

fn relations_task(name: &str, overlap: u32) -> Task {
    let mut t = Task {
        project: "news".into(),
        name: name.into(),
        labels: vec!["PER".into(), "ORG".into(), "LOC".into()],
        relation_labels: vec!["WORKS_AT".into(), "BASED_IN".into(), "KNOWS".into()],
        source_dataset: "raw".into(),
        overlap,
        ..Task::default()
    };
    t.set_interface(Interface::Relations);
    t
}

async fn seeded_node() -> Node {
    let node = start_node().await;
    node.create_project("news").await;
    let body = format!(
        "{}\n{}\n",
        json!({"text": TEXT}),
        json!({"text": "Bob met Ann."})
    );
    import(&node.client, jsonl("news", "raw"), body)
        .await
        .unwrap();
    node
}

fn rel(head: u32, child: u32, label: &str) -> Relation {
    Relation {
        head,
        child,
        label: label.into(),
    }
}

/// The four spans of TEXT, listed out of order: Leeds, Bob, Acme, Ann.
fn spans_out_of_order() -> Vec<Span> {
    vec![
        span(30, 35, "LOC"),
        span(23, 26, "PER"),
        span(13, 17, "ORG"),
        span(0, 3, "PER"),
    ]
}

fn answer(task: &str, who: &str, id: &str, spans: Vec<Span>, relations: Vec<Relation>) -> Answer {
    Answer {
        answer_id: id.into(),
        project: "news".into(),
        task: task.into(),
        seq: 1,
        annotator: who.into(),
        session_id: format!("{who}-tab"),
        decision: Decision::Accept as i32,
        spans,
        relations,
        ..Answer::default()
    }
}

async fn create(client: &Client, t: Task) -> Result<Task, tonic::Status> {
    client
        .tasks()
        .create_task(CreateTaskRequest { task: Some(t) })
        .await
        .map(|r| r.into_inner())
}

async fn submit(client: &Client, a: Answer) -> Result<SubmitResponse, tonic::Status> {
    client
        .feed()
        .submit_answer(SubmitRequest { answer: Some(a) })
        .await
        .map(|r| r.into_inner())
}

/// Leases the task's next example to `who`, as an annotator's page does before answering.
async fn lease(client: &Client, task: &str, who: &str) -> NextResponse {
    client
        .feed()
        .next_examples(NextRequest {
            project: "news".into(),
            task: task.into(),
            annotator: who.into(),
            session_id: format!("{who}-tab"),
            count: 1,
        })
        .await
        .unwrap()
        .into_inner()
}

async fn answers(client: &Client, task: &str) -> u64 {
    client
        .tasks()
        .get_progress(GetProgressRequest {
            project: "news".into(),
            task: task.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .answers
}

/// Every answer of `task` in `format`, as bytes.
async fn export_bytes(
    client: &Client,
    task: &str,
    format: ExportFormat,
) -> Result<Vec<u8>, ClientError> {
    let mut out = Vec::new();
    let request = ExportAnswersRequest {
        project: "news".into(),
        task: task.into(),
        selection: ExportSelection::Answers as i32,
        format: format as i32,
    };
    client.export_answers(request, &mut out, |_, _| {}).await?;
    Ok(out)
}

/// Every answer of `task` in a JSONL `format`, one value per line.
async fn export(client: &Client, task: &str, format: ExportFormat) -> Vec<Value> {
    let out = export_bytes(client, task, format).await.unwrap();
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Each relation of a Prodigy line as (head text, child text, label), by its spans' offsets.
fn named(line: &Value) -> Vec<(String, String, String)> {
    let text: Vec<char> = line["text"].as_str().unwrap().chars().collect();
    let cover = |s: &Value| -> String {
        let (a, b) = (s["start"].as_u64().unwrap(), s["end"].as_u64().unwrap());
        text[a as usize..b as usize].iter().collect()
    };
    let mut out: Vec<_> = line["relations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                cover(&r["head_span"]),
                cover(&r["child_span"]),
                r["label"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

fn triple(h: &str, c: &str, l: &str) -> (String, String, String) {
    (h.into(), c.into(), l.into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_creation_checks_relation_labels() {
    let node = seeded_node().await;
    let c = &node.client;
    let cases = [
        (
            Task {
                relation_labels: vec![],
                ..relations_task("a", 1)
            },
            "relation_labels: a relations task needs 1-500 relation labels, got 0",
        ),
        (
            Task {
                relation_labels: vec!["KNOWS".into(), "KNOWS".into()],
                ..relations_task("b", 1)
            },
            "relation_labels[1]: \"KNOWS\" is listed twice",
        ),
        (
            Task {
                relation_labels: vec!["ORG".into()],
                ..relations_task("c", 1)
            },
            "relation_labels[0]: \"ORG\" is also a span label; use distinct names",
        ),
        (
            {
                let mut t = relations_task("d", 1);
                t.set_interface(Interface::Ner);
                t
            },
            "relation_labels: only a relations task has relation labels",
        ),
    ];
    for (task, message) in cases {
        let e = create(c, task).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
        assert_eq!(e.message(), message);
    }
    let created = create(c, relations_task("ok", 1)).await.unwrap();
    assert_eq!(created.interface(), Interface::Relations);
    assert_eq!(created.relation_labels, ["WORKS_AT", "BASED_IN", "KNOWS"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relations_are_checked_sorted_agreed_on_and_exported() {
    let node = seeded_node().await;
    let c = &node.client;
    create(c, relations_task("rel", 2)).await.unwrap();
    assert_eq!(lease(c, "rel", "ann").await.examples[0].seq, 1);
    assert_eq!(lease(c, "rel", "bob").await.examples[0].seq, 1);

    // Bad relations are refused with the field at fault, and nothing is recorded.
    let bad = [
        (
            vec![rel(0, 4, "WORKS_AT")],
            "relations[0].child",
            "span 4 does not exist",
        ),
        (
            vec![rel(1, 1, "KNOWS")],
            "relations[0]",
            "relates spans[1] (23..26 PER) to itself",
        ),
        (
            vec![rel(1, 2, "OWNS")],
            "relations[0].label",
            "unknown relation label \"OWNS\"",
        ),
        (
            vec![rel(1, 2, "WORKS_AT"), rel(1, 2, "WORKS_AT")],
            "relations[1]",
            "duplicates relations[0]",
        ),
    ];
    for (i, (relations, field, reason)) in bad.into_iter().enumerate() {
        let a = answer(
            "rel",
            "ann",
            &format!("bad-{i}"),
            spans_out_of_order(),
            relations,
        );
        let e = submit(c, a).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
        assert!(
            e.message()
                .contains(&format!("example 1: field `{field}`: {reason}")),
            "{}",
            e.message()
        );
    }
    let e = submit(
        c,
        answer(
            "rel",
            "ann",
            "overlap",
            vec![span(0, 17, "ORG"), span(13, 17, "ORG")],
            vec![],
        ),
    )
    .await
    .unwrap_err();
    assert!(e.message().contains("overlaps"), "{}", e.message());
    assert_eq!(answers(c, "rel").await, 0);

    // Ann lists the spans out of order: Bob WORKS_AT Acme, Acme BASED_IN Leeds, Ann KNOWS Bob.
    let ann = answer(
        "rel",
        "ann",
        "ann-1",
        spans_out_of_order(),
        vec![
            rel(1, 2, "WORKS_AT"),
            rel(2, 0, "BASED_IN"),
            rel(3, 1, "KNOWS"),
        ],
    );
    let stored = submit(c, ann).await.unwrap().answer.unwrap();
    let texts: Vec<&str> = stored.spans.iter().map(|s| s.text.as_str()).collect();
    assert_eq!(texts, ["Ann", "Acme", "Bob", "Leeds"]);
    // The relations were renumbered with the spans and sorted by (head, child, label).
    assert_eq!(
        stored.relations,
        [
            rel(0, 2, "KNOWS"),
            rel(1, 3, "BASED_IN"),
            rel(2, 1, "WORKS_AT")
        ]
    );

    // Bob draws Bob WORKS_AT Acme and Ann WORKS_AT Acme, and nothing else.
    let sorted = vec![
        span(0, 3, "PER"),
        span(13, 17, "ORG"),
        span(23, 26, "PER"),
        span(30, 35, "LOC"),
    ];
    let bob = answer(
        "rel",
        "bob",
        "bob-1",
        sorted,
        vec![rel(2, 1, "WORKS_AT"), rel(0, 1, "WORKS_AT")],
    );
    submit(c, bob).await.unwrap();

    // The relations differ, so the example waits for review with the disputed labels.
    let queue = c
        .review()
        .list_review_queue(ListReviewQueueRequest {
            project: "news".into(),
            task: "rel".into(),
            page_size: 10,
            after_seq: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(queue.items.len(), 1);
    assert_eq!(
        queue.items[0].disputed_labels,
        ["BASED_IN", "KNOWS", "WORKS_AT"]
    );

    // Relation F1 by hand: 1 match (Bob WORKS_AT Acme) of 3 + 2 relations = 2/5; per label,
    // WORKS_AT 1 of 1 + 2 = 2/3, BASED_IN and KNOWS 0. The spans agree exactly.
    let report = c
        .tasks()
        .get_agreement(GetAgreementRequest {
            project: "news".into(),
            task: "rel".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let overall = report.overall.unwrap();
    assert_eq!(overall.relation_f1, Some(0.4));
    assert_eq!(overall.span_f1, Some(1.0));
    assert_eq!(overall.percent_agreement, Some(0.0));
    let by: std::collections::BTreeMap<&str, &LabelAgreement> = report
        .labels
        .iter()
        .map(|l| (l.label.as_str(), l))
        .collect();
    assert!((by["WORKS_AT"].relation_f1.unwrap() - 2.0 / 3.0).abs() < 1e-12);
    assert_eq!(by["BASED_IN"].relation_f1, Some(0.0));
    assert_eq!(by["PER"].span_f1, Some(1.0));

    // Prodigy's shape: relations point at the last token of each span, with both spans.
    let lines = export(c, "rel", ExportFormat::Prodigy).await;
    assert_eq!(lines.len(), 2);
    let ann_line = lines
        .iter()
        .find(|l| l["_annotator_id"] == "rel-ann")
        .unwrap();
    assert_eq!(ann_line["_view_id"], "relations");
    assert_eq!(
        named(ann_line),
        [
            triple("Acme", "Leeds", "BASED_IN"),
            triple("Ann", "Bob", "KNOWS"),
            triple("Bob", "Acme", "WORKS_AT"),
        ]
    );
    let works = ann_line["relations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["label"] == "WORKS_AT")
        .unwrap();
    assert_eq!(works["head"], json!(5));
    assert_eq!(works["child"], json!(3));
    assert_eq!(works["head_span"]["token_end"], json!(5));
    assert_eq!(works["head_span"]["label"], json!("PER"));

    // The flat form indexes `spans`.
    let flat = export(c, "rel", ExportFormat::Hf).await;
    let ann_flat = flat.iter().find(|l| l["annotator"] == "ann").unwrap();
    assert_eq!(
        ann_flat["relations"],
        json!([
            {"head": 0, "child": 2, "label": "KNOWS"},
            {"head": 1, "child": 3, "label": "BASED_IN"},
            {"head": 2, "child": 1, "label": "WORKS_AT"},
        ])
    );
    assert_eq!(
        ann_flat["spans"][2],
        json!({"start": 23, "end": 26, "label": "PER"})
    );

    // A spaCy DocBin cannot hold relations, so that export is refused rather than lossy.
    let e = export_bytes(c, "rel", ExportFormat::Spacy)
        .await
        .unwrap_err();
    assert!(format!("{e}").contains("INTERFACE_RELATIONS"), "{e}");

    // Round trip: the Prodigy file imported into a new relations task gives the same relations.
    let mut copy = relations_task("copy", 2);
    copy.source_dataset = "raw".into();
    create(c, copy).await.unwrap();
    let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let header = ImportAnswersHeader {
        project: "news".into(),
        task: "copy".into(),
        source: AnswerSource::Prodigy as i32,
        source_name: "rel.jsonl".into(),
        ..ImportAnswersHeader::default()
    };
    let summary = c
        .import_answers(
            header.clone(),
            std::io::Cursor::new(body.into_bytes()),
            |_| {},
        )
        .await
        .unwrap();
    assert_eq!(summary.answers_recorded, 2);
    let again = export(c, "copy", ExportFormat::Prodigy).await;
    for original in &lines {
        let who = original["_annotator_id"].as_str().unwrap();
        let copied = again
            .iter()
            .find(|l| l["_annotator_id"] == format!("copy-{who}"))
            .unwrap_or_else(|| panic!("no answer by {who} in {again:?}"));
        assert_eq!(named(copied), named(original), "{who}");
        assert_eq!(copied["spans"], original["spans"], "{who}");
    }

    // A Prodigy relation whose end is not among the line's spans is refused, naming it.
    let broken = json!({
        "text": TEXT, "answer": "accept", "_annotator_id": "eve",
        "spans": [{"start": 0, "end": 3, "label": "PER"}],
        "relations": [{"head": 0, "child": 3, "label": "WORKS_AT",
            "head_span": {"start": 0, "end": 3}, "child_span": {"start": 13, "end": 17}}]
    });
    let err = c
        .import_answers(
            header,
            std::io::Cursor::new(format!("{broken}\n").into_bytes()),
            |_| {},
        )
        .await
        .unwrap_err();
    let ClientError::AnswersRejected { summary, .. } = err else {
        panic!("{err:?}")
    };
    assert_eq!(summary.errors[0].field, "relations[0].child_span");
    assert_eq!(answers(c, "copy").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suggestions_pre_set_spans_and_relations() {
    let node = seeded_node().await;
    let c = &node.client;
    create(c, relations_task("pre", 1)).await.unwrap();
    let set = |relations: Vec<Relation>| SetSuggestionsRequest {
        project: "news".into(),
        task: "pre".into(),
        suggestions: vec![Suggestion {
            seq: 1,
            spans: spans_out_of_order(),
            relations,
            score: 0.5,
            source: "teacher".into(),
            ..Suggestion::default()
        }],
    };
    let e = c
        .tasks()
        .set_suggestions(set(vec![rel(0, 9, "WORKS_AT")]))
        .await
        .unwrap_err();
    assert!(
        e.message()
            .contains("suggestions[0] (example 1): field `relations[0].child`"),
        "{}",
        e.message()
    );
    c.tasks()
        .set_suggestions(set(vec![rel(1, 2, "WORKS_AT")]))
        .await
        .unwrap();
    let next = lease(c, "pre", "ann").await;
    let sugg = next.examples[0].suggestion.clone().unwrap();
    // Stored sorted, the relation still says Bob WORKS_AT Acme.
    assert_eq!(sugg.relations, [rel(2, 1, "WORKS_AT")]);
    assert_eq!(sugg.spans[2].text, "Bob");
    assert_eq!(sugg.spans[1].text, "Acme");
}
