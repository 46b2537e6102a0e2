//! The annotation engine on running coordinators: tasks, the feed, answers, review, agreement and
//! exports over the real gRPC API; and exact overlap with 100 concurrent annotators across a
//! leader change.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use gloss_client::Client;
use gloss_core::config::Overrides;
use gloss_proto::v1::*;
use gloss_tests::{import, jsonl, span, start_group, start_node, Faults, Node};

const TEXTS: &[&str] = &[
    "Alice Smith flew to Paris on Monday.",
    "Bob works for Acme Corp in Berlin.",
    "Nothing to see here.",
];

fn ner_task(name: &str, overlap: u32) -> Task {
    let mut t = Task {
        project: "news".into(),
        name: name.into(),
        labels: vec!["PERSON".into(), "ORG".into(), "LOC".into()],
        source_dataset: "raw".into(),
        overlap,
        ..Task::default()
    };
    t.set_interface(Interface::Ner);
    t
}

async fn seeded_node() -> Node {
    let node = start_node().await;
    node.create_project("news").await;
    let body: String = TEXTS
        .iter()
        .map(|t| format!("{{\"text\":{t:?},\"meta\":{{\"source\":\"wire\"}}}}\n"))
        .collect();
    import(&node.client, jsonl("news", "raw"), body)
        .await
        .unwrap();
    node
}

fn answer(task: &str, who: &str, seq: u64, id: &str, spans: Vec<Span>) -> Answer {
    Answer {
        answer_id: id.into(),
        project: "news".into(),
        task: task.into(),
        seq,
        annotator: who.into(),
        session_id: format!("{who}-tab"),
        decision: Decision::Accept as i32,
        spans,
        ..Answer::default()
    }
}

async fn next(client: &Client, task: &str, who: &str, count: u32) -> NextResponse {
    client
        .feed()
        .next_examples(NextRequest {
            project: "news".into(),
            task: task.into(),
            annotator: who.into(),
            session_id: format!("{who}-tab"),
            count,
        })
        .await
        .unwrap()
        .into_inner()
}

async fn submit(client: &Client, a: Answer) -> Result<SubmitResponse, tonic::Status> {
    client
        .feed()
        .submit_answer(SubmitRequest { answer: Some(a) })
        .await
        .map(|r| r.into_inner())
}

async fn export(
    client: &Client,
    task: &str,
    selection: ExportSelection,
    format: ExportFormat,
) -> String {
    let mut out = Vec::new();
    client
        .export_answers(
            ExportAnswersRequest {
                project: "news".into(),
                task: task.into(),
                selection: selection as i32,
                format: format as i32,
            },
            &mut out,
            |_, _| {},
        )
        .await
        .unwrap();
    String::from_utf8(out).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_creation_errors_name_the_field() {
    let node = seeded_node().await;
    let mut bad = ner_task("t", 1);
    bad.labels.push("PERSON".into());
    let e = node
        .client
        .tasks()
        .create_task(CreateTaskRequest { task: Some(bad) })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("labels[3]"), "{}", e.message());
    let mut bad = ner_task("t", 1);
    bad.source_dataset = "missing".into();
    let e = node
        .client
        .tasks()
        .create_task(CreateTaskRequest { task: Some(bad) })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    assert!(e.message().contains("news/missing"), "{}", e.message());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entity_task_end_to_end_on_one_node() {
    let node = seeded_node().await;
    let c = &node.client;
    let created = c
        .tasks()
        .create_task(CreateTaskRequest {
            task: Some(ner_task("ents", 2)),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.output_dataset, "ents-answers");
    assert_eq!(created.lease_ttl_ms, 30_000);

    let a = next(c, "ents", "ann", 3).await;
    assert_eq!(a.examples.len(), 3);
    let first = &a.examples[0];
    assert_eq!(first.text, TEXTS[0]);
    let words: Vec<&str> = first.tokens.iter().map(|t| t.text.as_str()).collect();
    assert_eq!(&words[..4], &["Alice", "Smith", "flew", "to"]);

    // Validation errors name the field and the problem.
    let e = submit(
        c,
        answer("ents", "ann", 1, "x1", vec![span(0, 3, "PERSON")]),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(
        e.message().contains("spans[0]") && e.message().contains("token"),
        "{}",
        e.message()
    );
    let e = submit(c, answer("ents", "ann", 1, "x2", vec![span(30, 99, "LOC")]))
        .await
        .unwrap_err();
    assert!(
        e.message().contains("spans[0].end") && e.message().contains("past the text"),
        "{}",
        e.message()
    );
    let e = submit(
        c,
        answer("ents", "ann", 1, "x3", vec![span(0, 5, "ANIMAL")]),
    )
    .await
    .unwrap_err();
    assert!(
        e.message().contains("spans[0].label") && e.message().contains("ANIMAL"),
        "{}",
        e.message()
    );
    let e = submit(
        c,
        answer(
            "ents",
            "ann",
            1,
            "x4",
            vec![span(0, 11, "PERSON"), span(6, 11, "PERSON")],
        ),
    )
    .await
    .unwrap_err();
    assert!(e.message().contains("overlaps"), "{}", e.message());

    // A good answer is normalised (token indices, text) and recorded once.
    let good = answer(
        "ents",
        "ann",
        1,
        "a1",
        vec![span(20, 25, "LOC"), span(0, 11, "PERSON")],
    );
    let r = submit(c, good.clone()).await.unwrap();
    assert!(!r.duplicate);
    let stored = r.answer.unwrap();
    assert_eq!(stored.spans[0].text, "Alice Smith");
    assert_eq!(
        (stored.spans[0].token_start, stored.spans[0].token_end),
        (0, 1)
    );
    assert!(submit(c, good).await.unwrap().duplicate);

    // A second annotator disagrees on example 1 and agrees on example 2.
    next(c, "ents", "bob", 3).await;
    submit(
        c,
        answer("ents", "bob", 1, "b1", vec![span(0, 11, "PERSON")]),
    )
    .await
    .unwrap();
    let acme = vec![
        span(0, 3, "PERSON"),
        span(14, 23, "ORG"),
        span(27, 33, "LOC"),
    ];
    submit(c, answer("ents", "ann", 2, "a2", acme.clone()))
        .await
        .unwrap();
    submit(c, answer("ents", "bob", 2, "b2", acme))
        .await
        .unwrap();
    // A mistake, undone and answered again.
    submit(c, answer("ents", "ann", 3, "a3", vec![span(0, 7, "ORG")]))
        .await
        .unwrap();
    let undone = c
        .feed()
        .undo_answer(UndoRequest {
            project: "news".into(),
            task: "ents".into(),
            annotator: "ann".into(),
            seq: 3,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(undone.example.unwrap().previous.unwrap().answer_id, "a3");
    submit(c, answer("ents", "ann", 3, "a3b", vec![]))
        .await
        .unwrap();
    // Revision keeps the latest.
    let revised = c
        .feed()
        .revise_answer(SubmitRequest {
            answer: Some(answer("ents", "ann", 3, "a3c", vec![])),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(revised.answer.unwrap().revision, 3);

    let progress = c
        .tasks()
        .get_progress(GetProgressRequest {
            project: "news".into(),
            task: "ents".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((progress.total, progress.done, progress.answers), (3, 2, 5));
    assert_eq!((progress.review_pending, progress.gold), (1, 1));
    let per: BTreeMap<_, _> = progress
        .annotators
        .iter()
        .map(|a| (a.annotator.clone(), a.answers))
        .collect();
    assert_eq!(per, BTreeMap::from([("ann".into(), 3), ("bob".into(), 2)]));

    // Review: both versions side by side; the reviewer picks ann's.
    let queue = c
        .review()
        .list_review_queue(ListReviewQueueRequest {
            project: "news".into(),
            task: "ents".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(queue.pending, 1);
    assert_eq!(queue.items[0].seq, 1);
    assert_eq!(queue.items[0].answers.len(), 2);
    assert_eq!(queue.items[0].disputed_labels, vec!["LOC".to_string()]);
    let gold = c
        .review()
        .resolve_review(ResolveReviewRequest {
            project: "news".into(),
            task: "ents".into(),
            seq: 1,
            reviewer: "rita".into(),
            resolution: Some(resolve_review_request::Resolution::PickAnswerId(
                "a1".into(),
            )),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        gold.source_answer_ids,
        vec!["a1".to_string(), "b1".to_string()]
    );

    // Agreement: example 1 differs, example 2 matches: span F1 over the pair is 2*4/(2+1+3+3).
    let agreement = c
        .tasks()
        .get_agreement(GetAgreementRequest {
            project: "news".into(),
            task: "ents".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let f1 = agreement.overall.unwrap().span_f1.unwrap();
    assert!((f1 - 8.0 / 9.0).abs() < 1e-9, "span F1 {f1}");

    // Exports: Prodigy JSONL keeps the record and adds the answer fields.
    let prodigy = export(c, "ents", ExportSelection::Answers, ExportFormat::Prodigy).await;
    let lines: Vec<serde_json::Value> = prodigy
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5);
    for key in [
        "answer",
        "spans",
        "tokens",
        "_input_hash",
        "_task_hash",
        "_annotator_id",
        "_session_id",
        "_timestamp",
        "meta",
        "text",
    ] {
        assert!(lines[0].get(key).is_some(), "missing {key} in {}", lines[0]);
    }
    assert_eq!(lines[0]["meta"]["source"], "wire");
    assert_eq!(lines[0]["_annotator_id"], "ents-ann");
    let gold_lines = export(c, "ents", ExportSelection::Gold, ExportFormat::Prodigy).await;
    assert_eq!(gold_lines.lines().count(), 2);
    let conll = export(c, "ents", ExportSelection::Gold, ExportFormat::Conll).await;
    assert!(
        conll.contains("Alice\tB-PERSON\nSmith\tI-PERSON\n"),
        "{conll}"
    );
    assert!(conll.contains("Paris\tB-LOC\n"), "{conll}");
    let hf = export(c, "ents", ExportSelection::Answers, ExportFormat::Hf).await;
    let keys: BTreeSet<Vec<String>> = hf
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object().unwrap().keys().cloned().collect()
        })
        .collect();
    assert_eq!(keys.len(), 1, "every HF line has the same keys: {keys:?}");
    // The answers dataset exports the same records as the task.
    assert_eq!(
        gloss_tests::export(c, "news", "ents-answers")
            .await
            .lines()
            .count(),
        5
    );
}

/// Submits `a`, retrying through other coordinators with the same answer id while the group
/// elects a leader. Returns whether the answer was recorded (false: refused for good).
async fn submit_retrying(client: &Client, a: Answer) -> bool {
    let r = client
        .retry(Duration::from_secs(30), |c| {
            let a = a.clone();
            async move {
                c.feed()
                    .submit_answer(SubmitRequest { answer: Some(a) })
                    .await
            }
        })
        .await;
    match r {
        Ok(_) => true,
        Err(gloss_client::ClientError::Status(s))
            if s.code() == tonic::Code::FailedPrecondition =>
        {
            false
        }
        Err(e) => panic!("submit failed: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundred_annotators_across_a_leader_change_never_exceed_the_overlap() {
    const EXAMPLES: usize = 400;
    const ANNOTATORS: usize = 100;
    let dir = tempfile::tempdir().unwrap();
    let faults = Faults::default();
    let nodes = start_group(dir.path(), 3, Some(faults.clone()), |_| {
        Overrides::default()
    })
    .await;
    let leader = nodes[0]
        .coordinator
        .wait_for_leader(Duration::from_secs(30))
        .await
        .unwrap();
    nodes[0].create_project("news").await;
    import(
        &nodes[0].client,
        jsonl("news", "raw"),
        gloss_tests::records("sentence", EXAMPLES),
    )
    .await
    .unwrap();
    let mut t = Task {
        project: "news".into(),
        name: "sent".into(),
        labels: vec!["POS".into(), "NEG".into()],
        source_dataset: "raw".into(),
        overlap: 2,
        lease_ttl_ms: 5_000,
        ..Task::default()
    };
    t.set_interface(Interface::Choice);
    t.set_ordering(Ordering::Random);
    nodes[0]
        .client
        .tasks()
        .create_task(CreateTaskRequest { task: Some(t) })
        .await
        .unwrap();
    let servers: Vec<String> = nodes
        .iter()
        .map(|n| n.coordinator.addrs().grpc.to_string())
        .collect();
    let recorded = Arc::new(std::sync::Mutex::new(Vec::<(u64, String)>::new()));
    let mut workers = Vec::new();
    for a in 0..ANNOTATORS {
        // Annotators spread over the three coordinators; each can fall back to the others.
        let mut order = servers.clone();
        order.rotate_left(a % 3);
        let client = gloss_tests::connect(&order).await.unwrap();
        let recorded = recorded.clone();
        workers.push(tokio::spawn(async move {
            let who = format!("ann{a:03}");
            let mut k = 0;
            loop {
                let reply = client
                    .retry(Duration::from_secs(30), |c| {
                        let who = who.clone();
                        async move {
                            c.feed()
                                .next_examples(NextRequest {
                                    project: "news".into(),
                                    task: "sent".into(),
                                    annotator: who,
                                    session_id: String::new(),
                                    count: 2,
                                })
                                .await
                        }
                    })
                    .await
                    .expect("next")
                    .into_inner();
                if reply.exhausted {
                    break;
                }
                for ex in reply.examples {
                    k += 1;
                    let mut answer = Answer {
                        answer_id: format!("{who}-{k}"),
                        project: "news".into(),
                        task: "sent".into(),
                        seq: ex.seq,
                        annotator: who.clone(),
                        decision: Decision::Accept as i32,
                        choices: vec![if (ex.seq + a as u64).is_multiple_of(2) {
                            "POS"
                        } else {
                            "NEG"
                        }
                        .into()],
                        ..Answer::default()
                    };
                    if submit_retrying(&client, answer.clone()).await {
                        recorded.lock().unwrap().push((ex.seq, who.clone()));
                    }
                    // A double click: the same id again is recorded once.
                    answer.time_spent_ms = 1;
                    let _ = submit_retrying(&client, answer).await;
                }
            }
        }));
    }
    // A quarter of the way in, cut the leader off; a new one takes over; then heal.
    while recorded.lock().unwrap().len() < EXAMPLES / 2 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let term_before = nodes[0].status().await.term;
    let ids: Vec<u64> = nodes.iter().map(|n| n.id()).collect();
    faults.isolate(leader, &ids);
    // Measured at the cut, not after it: a new leader may well finish the rest while the old one
    // is still cut off, and that is the point.
    let at_cut = recorded.lock().unwrap().len();
    assert!(
        at_cut < 2 * EXAMPLES,
        "the work finished before the leader was cut off"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    faults.heal();
    for w in workers {
        w.await.unwrap();
    }
    let recorded = recorded.lock().unwrap().clone();
    let c = &nodes[0].client;
    assert!(
        nodes[0].status().await.term > term_before,
        "no new term: the leader never changed"
    );
    let progress = c
        .tasks()
        .get_progress(GetProgressRequest {
            project: "news".into(),
            task: "sent".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(progress.done, EXAMPLES as u64, "{progress:?}");
    assert_eq!(progress.answers, 2 * EXAMPLES as u64);
    let hf = export(c, "sent", ExportSelection::Answers, ExportFormat::Hf).await;
    let mut per_example: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in hf.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        per_example
            .entry(v["input_hash"].as_str().unwrap().into())
            .or_default()
            .push(v["annotator"].as_str().unwrap().into());
    }
    assert_eq!(per_example.len(), EXAMPLES);
    for (hash, annotators) in &per_example {
        let distinct: BTreeSet<_> = annotators.iter().collect();
        assert_eq!(annotators.len(), 2, "example {hash}: {annotators:?}");
        assert_eq!(distinct.len(), 2, "example {hash}: one annotator twice");
    }
    // Every answer a client saw acknowledged is in the export.
    assert_eq!(recorded.len(), 2 * EXAMPLES);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prodigy_export_keeps_the_hashes_an_imported_record_carries() {
    let node = start_node().await;
    node.create_project("news").await;
    let c = &node.client;
    let body = concat!(
        r#"{"text":"Carried hashes.","_input_hash":1841234567,"_task_hash":-1029384756}"#,
        "\n",
        r#"{"text":"No hashes."}"#,
        "\n",
    );
    import(c, jsonl("news", "raw"), body).await.unwrap();
    let mut t = Task {
        project: "news".into(),
        name: "cls".into(),
        labels: vec!["POS".into(), "NEG".into()],
        source_dataset: "raw".into(),
        overlap: 1,
        ..Task::default()
    };
    t.set_interface(Interface::Choice);
    c.tasks()
        .create_task(CreateTaskRequest { task: Some(t) })
        .await
        .unwrap();
    let leased = next(c, "cls", "ann", 2).await.examples;
    assert_eq!(leased.len(), 2);
    for (i, ex) in leased.iter().enumerate() {
        let a = Answer {
            choices: vec!["POS".into()],
            ..answer("cls", "ann", ex.seq, &format!("h{i}"), Vec::new())
        };
        submit(c, a).await.unwrap();
    }

    let prodigy = export(c, "cls", ExportSelection::Answers, ExportFormat::Prodigy).await;
    let by_text: BTreeMap<String, serde_json::Value> = prodigy
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["text"].as_str().unwrap().to_string(), v)
        })
        .collect();
    assert_eq!(by_text.len(), 2, "{prodigy}");
    let carried = &by_text["Carried hashes."];
    assert_eq!(carried["_input_hash"], 1841234567, "{carried}");
    assert_eq!(carried["_task_hash"], -1029384756, "{carried}");
    // Without hashes of its own, a record gets Gloss's: the first 8 hex digits of its xxh3-128
    // input hash as a signed 32-bit integer.
    let plain = &by_text["No hashes."];
    let hex = &leased
        .iter()
        .find(|e| e.text == "No hashes.")
        .unwrap()
        .input_hash;
    let ours = u32::from_str_radix(&hex[..8], 16).unwrap() as i32;
    assert_eq!(plain["_input_hash"], ours, "{plain}");
    assert!(plain["_task_hash"].is_i64(), "{plain}");
}
