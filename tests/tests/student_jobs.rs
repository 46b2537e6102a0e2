//! Students of every kind through jobs on label tasks: `train --student auto` trains the tiny
//! and the encoder student and keeps the better on dev (recorded in lineage), an encoder student
//! is evaluated and predicts from the registry, multi-choice tasks train multi-label students
//! whose suggestions name several labels, an LLM teacher answers multi-choice tasks label by
//! label, and binary tasks train students on accept/reject decisions, evaluated and predicting
//! beside an LLM teacher asked yes or no.

use std::sync::Arc;

use gloss_coordinator::Service;
use gloss_proto::v1::*;
use gloss_tests::{
    answer_all, create_task, fake_chat_server, import, jsonl, minilm_models, next_examples,
    node_for_workers, node_with_gold, run_films_job, run_task_job, test_models, TestWorker,
    ADMIN_TOKEN,
};
use serde_json::{json, Value};

fn ok(job: &Job) -> Value {
    assert_eq!(job.state(), JobState::Succeeded, "{}", job.error);
    serde_json::from_str(&job.result_json).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn auto_trains_the_tiny_and_the_encoder_student_and_keeps_the_better_on_dev() {
    let models = minilm_models();
    let dir = tempfile::tempdir().unwrap();
    let node = node_with_gold(dir.path(), 160).await;
    let s: Arc<Service> = node.coordinator.service().clone();
    let worker = TestWorker::start(&node, dir.path(), models.clone(), None);
    let digest = gloss_worker::model_store::dir_digest(&models.join("minilm")).unwrap();

    // An encoder student without an encoder is refused with what to add.
    let refused = run_films_job(&s, JobKind::Train, "encoder", "").await;
    assert!(
        refused.error.contains("needs a base encoder"),
        "{}",
        refused.error
    );
    let config = json!({"epochs": 10, "patience": 4, "seed": 3,
        "encoder": "minilm", "encoder_sha256": digest})
    .to_string();
    let r = ok(&run_films_job(&s, JobKind::Train, "auto", &config).await);
    let candidates = r["candidates"].as_array().unwrap();
    let score = |kind: &str| {
        candidates
            .iter()
            .find(|c| c["kind"] == kind)
            .and_then(|c| c["gold-dev:accuracy"].as_f64())
            .unwrap_or_else(|| panic!("{kind}: {r}"))
    };
    let (tiny, encoder) = (score("tiny"), score("encoder"));
    let expected = if encoder > tiny { "encoder" } else { "tiny" };
    assert_eq!(r["kind"], expected, "{r}");
    let model = s
        .get_model(&format!("films/polarity/{expected}"), 0)
        .await
        .unwrap();
    assert_eq!(model.kind, expected);
    assert!(
        model.selection.contains("tiny") && model.selection.contains("encoder"),
        "{}",
        model.selection
    );

    // The encoder student on its own: trained, stored with its encoder, evaluated, predicting.
    let job = run_films_job(&s, JobKind::Train, "encoder", &config).await;
    let r = ok(&job);
    assert_eq!(r["model"], "films/polarity/encoder");
    // Both head widths were trained on the embeddings; the log gives both dev scores and the
    // result names the one kept.
    let head = r["candidates"][0]["head"].as_str().unwrap_or_default();
    let logs: Vec<String> = s
        .job_logs(&job.id, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.text)
        .collect();
    let choice = logs
        .iter()
        .find(|l| l.starts_with("encoder head: kept the"))
        .unwrap_or_else(|| panic!("{logs:?}"));
    assert!(choice.contains(&format!("the {head} one")), "{choice}");
    assert!(
        choice.contains("linear gold-dev:accuracy") && choice.contains("hidden-64"),
        "{choice}"
    );
    let stored = s.get_model("films/polarity/encoder", 0).await.unwrap();
    assert!(stored.selection.starts_with("asked for encoder"));
    let name = format!("films/polarity/encoder@{}", stored.version);
    let r = ok(&run_films_job(&s, JobKind::Evaluate, &name, "").await);
    assert!(r["gold-test:accuracy"].as_f64().unwrap() > 0.5, "{r}");
    let r = ok(&run_films_job(&s, JobKind::Predict, &name, "").await);
    assert_eq!(r["suggestions"], 160);
    // The student's kind decides how it loads; a tagger name on a label task is refused.
    let wrong = run_films_job(&s, JobKind::Train, "tiny-tagger", "").await;
    assert!(
        wrong.error.contains("tiny, encoder or auto"),
        "{}",
        wrong.error
    );

    // A learning curve beside the zero-shot teacher, read back with glossctl.
    let teacher = json!({"sha256": digest}).to_string();
    let t = ok(&run_films_job(&s, JobKind::Evaluate, "similarity:minilm", &teacher).await);
    let teacher_score = t["gold-test:accuracy"].as_f64().unwrap();
    let curve = json!({"sizes": [20, 50], "epochs": 10, "patience": 10, "seed": 3}).to_string();
    let c = ok(&run_films_job(&s, JobKind::Curve, "tiny", &curve).await);
    assert_eq!(c["metric"], "gold-test:accuracy");
    let points = c["points"].as_array().unwrap();
    let sizes: Vec<u64> = points
        .iter()
        .map(|p| p["examples"].as_u64().unwrap())
        .collect();
    assert_eq!(sizes[..2], [20, 50], "{c}");
    assert_eq!(sizes.len(), 3, "{c}");
    assert!(sizes[2] > 50, "all the train split last: {c}");
    let last = points[2]["score"].as_f64().unwrap();
    assert!(last > 0.9 && last > teacher_score, "{c}");
    assert_eq!(
        c["teachers"],
        json!([{"model": "similarity:minilm", "score": teacher_score}])
    );
    let glossctl =
        std::path::Path::new(env!("CARGO_BIN_EXE_gloss-under-test")).with_file_name("glossctl");
    let server = node.coordinator.addrs().grpc.to_string();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(glossctl)
            .args(["--server", &server, "--token", ADMIN_TOKEN])
            .args(["model", "curve", "films/polarity"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        printed.contains("gold-test:accuracy") && printed.contains("similarity:minilm"),
        "{printed}"
    );
    assert_eq!(
        printed.lines().filter(|l| l.contains(" tiny ")).count(),
        3,
        "{printed}"
    );
    worker.stop().await;
}

/// Posts about one or two of three topics, told apart by their keywords.
fn topics(i: usize) -> (String, Vec<&'static str>) {
    const WORDS: [(&str, &str); 3] = [
        ("sports", "the match went to extra time"),
        ("music", "the band played a new song"),
        ("food", "the soup needed more salt"),
    ];
    let first = i % 3;
    let mut labels = vec![WORDS[first].0];
    let mut text = format!("Note {i}: {}", WORDS[first].1);
    if i.is_multiple_of(2) {
        let second = (first + 1 + i / 6 % 2) % 3;
        labels.push(WORDS[second].0);
        text.push_str(&format!(" and {}", WORDS[second].1));
    }
    (text, labels)
}

/// The number of a note (`Note 12: ...`).
fn number(text: &str) -> usize {
    text[5..].split(':').next().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn multi_choice_and_binary_tasks_train_students_and_ask_llm_teachers_label_by_label() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_for_workers(dir.path()).await;
    let s: Arc<Service> = node.coordinator.service().clone();
    let client = &node.client;
    node.create_project("notes").await;
    const N: usize = 150;
    let body: String = (0..N).map(|i| format!("{}\n", note(i))).collect();
    import(client, jsonl("notes", "all"), body).await.unwrap();
    const LABELS: [&str; 3] = ["sports", "music", "food"];
    create_task(
        client,
        "notes/topics",
        "all",
        Interface::MultiChoice,
        &LABELS,
    )
    .await;
    create_task(client, "notes/is-topic", "all", Interface::Binary, &LABELS).await;
    let answered = answer_all(client, "notes/topics", "ann", |ex| Answer {
        decision: Decision::Accept as i32,
        choices: topics(number(&ex.text))
            .1
            .iter()
            .map(|l| l.to_string())
            .collect(),
        ..Default::default()
    })
    .await;
    assert_eq!(answered, N);
    // The binary task asks about the label each note proposes; the annotator accepts it when
    // the note is about that topic.
    let answered = answer_all(client, "notes/is-topic", "ann", |ex| {
        let i = number(&ex.text);
        assert_eq!(ex.label, proposed(i));
        let applies = topics(i).1.contains(&ex.label.as_str());
        Answer {
            decision: if applies {
                Decision::Accept
            } else {
                Decision::Reject
            } as i32,
            label: ex.label.clone(),
            ..Default::default()
        }
    })
    .await;
    assert_eq!(answered, N);
    let (url, seen) = fake_chat_server(yes_or_no).await;
    let teachers = dir.path().join("teachers.toml");
    std::fs::write(
        &teachers,
        format!("[openai.topics]\nurl = \"{url}\"\nmodel = \"topics-7b\"\n"),
    )
    .unwrap();
    let worker = TestWorker::start(&node, dir.path(), test_models(), Some(teachers));
    let run = |kind, model: &'static str, config: &'static str| {
        run_task_job(&s, "notes/topics", kind, model, config)
    };
    let r = ok(&run(
        JobKind::Train,
        "",
        r#"{"epochs": 15, "patience": 5, "seed": 1}"#,
    )
    .await);
    assert_eq!(r["model"], "notes/topics/tiny");
    let version = format!("notes/topics/tiny@{}", r["version"]);
    let test = |k: &str, r: &Value| r[k].as_f64().unwrap_or_else(|| panic!("{k}: {r}"));
    let job = run_task_job(&s, "notes/topics", JobKind::Evaluate, &version, "").await;
    let r = ok(&job);
    assert!(test("gold-test:micro_f1", &r) > 0.9, "{r}");
    assert!(test("gold-test:accuracy", &r) > 0.8, "subset accuracy: {r}");
    // New notes arrive; the student's suggestions name label sets (a two-topic note gets both).
    let fresh: String = (N..N + 12).map(|i| format!("{}\n", note(i))).collect();
    import(client, jsonl("notes", "all"), fresh).await.unwrap();
    let r = ok(&run_task_job(&s, "notes/topics", JobKind::Predict, &version, "").await);
    assert_eq!(r["suggestions"], N + 12);
    let mut right = 0;
    for (i, sg) in suggested(client, "notes/topics").await {
        let mut got: Vec<&str> = sg.labels.iter().map(String::as_str).collect();
        let mut want = topics(i).1;
        got.sort();
        want.sort();
        right += usize::from(got == want);
    }
    assert!(right >= 10, "{right} of 12 label sets right");

    // The LLM teacher on the multi-choice task: one yes/no question per label of each note.
    let before = seen.lock().unwrap().len();
    let r = ok(&run_task_job(&s, "notes/topics", JobKind::Evaluate, "openai:topics", "").await);
    let asked = seen.lock().unwrap().len() - before;
    assert_eq!(
        asked,
        r["test_examples"].as_u64().unwrap() as usize * 3,
        "{r}"
    );
    assert!(test("gold-test:micro_f1", &r) > 0.8, "{r}");
    {
        let seen = seen.lock().unwrap();
        let asked_about = |label: &str| {
            let question = format!("Does the label \"{label}\" fit this text?");
            seen[before..]
                .iter()
                .filter(|r| {
                    r.body["messages"][1]["content"]
                        .as_str()
                        .unwrap()
                        .contains(&question)
                })
                .count()
        };
        for label in LABELS {
            assert_eq!(asked_about(label), asked / 3, "{label}");
        }
        assert!(seen[before..]
            .iter()
            .all(|r| r.body["messages"][0]["content"] == "Reply with yes or no and nothing else."));
    }

    // The binary task: a tiny student learns every label from decisions on one label each.
    let r = ok(&run_task_job(
        &s,
        "notes/is-topic",
        JobKind::Train,
        "",
        r#"{"epochs": 20, "patience": 6, "seed": 1}"#,
    )
    .await);
    assert_eq!(r["model"], "notes/is-topic/tiny", "{r}");
    assert!(r["gold-dev:accuracy"].as_f64().unwrap() > 0.8, "{r}");
    let student = format!("notes/is-topic/tiny@{}", r["version"]);
    let r = ok(&run_task_job(&s, "notes/is-topic", JobKind::Evaluate, &student, "").await);
    let decisions = test("gold-test:decisions", &r);
    assert_eq!(
        decisions,
        test("test_examples", &r),
        "one decision per note: {r}"
    );
    assert!(test("gold-test:accuracy", &r) > 0.85, "{r}");
    for label in LABELS {
        let key = format!("gold-test:accuracy:{label}");
        assert!(r[&key].as_f64().is_some(), "{key}: {r}");
    }

    // The LLM teacher on the binary task: yes/no about the proposed label; its unparseable
    // answers are abstentions, counted and scored as wrong. The multi-choice task asked the
    // same questions about the same notes: every answer comes from the cache.
    let before = seen.lock().unwrap().len();
    let r = ok(&run_task_job(&s, "notes/is-topic", JobKind::Evaluate, "openai:topics", "").await);
    assert_eq!(seen.lock().unwrap().len(), before, "nothing asked again");
    assert_eq!(r["teacher"]["cached"], decisions as u64, "{r}");
    let abstained = test("gold-test:abstention_rate", &r);
    assert!(abstained > 0.0, "{r}");
    assert!(
        (test("gold-test:accuracy", &r) + abstained - 1.0).abs() < 1e-9,
        "every answered question is right: {r}"
    );
    // A similarity teacher cannot accept or reject one label: refused with the reason.
    let refused = run_task_job(&s, "notes/is-topic", JobKind::Evaluate, "similarity:x", "").await;
    assert_eq!(refused.state(), JobState::Failed);
    assert!(
        refused.error.contains("cannot accept or reject"),
        "{}",
        refused.error
    );

    // The student pre-annotates the binary task: it accepts the proposed label or rejects it.
    let r = ok(&run_task_job(&s, "notes/is-topic", JobKind::Predict, &student, "").await);
    assert_eq!(r["suggestions"], N + 12);
    let mut right = 0;
    for (i, sg) in suggested(client, "notes/is-topic").await {
        assert!(sg.score >= 0.5 && sg.score <= 1.0, "{sg:?}");
        let applies = topics(i).1.contains(&proposed(i));
        let accepted = sg.labels == [proposed(i).to_string()];
        assert!(accepted || sg.labels.is_empty(), "{sg:?}");
        right += usize::from(accepted == applies);
    }
    assert!(right >= 10, "{right} of 12 decisions right");
    // A suggestion naming a label the task does not have is refused with the record at fault.
    let bad = client
        .tasks()
        .set_suggestions(SetSuggestionsRequest {
            project: "notes".into(),
            task: "is-topic".into(),
            suggestions: vec![Suggestion {
                seq: 3,
                labels: vec!["weather".into()],
                ..Default::default()
            }],
        })
        .await
        .unwrap_err();
    assert!(
        bad.message()
            .contains("suggestions[0] (example 3): unknown label \"weather\""),
        "{}",
        bad.message()
    );
    worker.stop().await;
}

/// The 12 new notes the feed serves next on `task`, by number, with their suggestions.
async fn suggested(client: &gloss_client::Client, task: &str) -> Vec<(usize, Suggestion)> {
    let next = next_examples(client, task, "ann", 12).await;
    assert_eq!(next.len(), 12);
    next.into_iter()
        .map(|ex| {
            let sg = ex.suggestion.expect("a suggestion on every new note");
            (number(&ex.text), sg)
        })
        .collect()
}

/// Note `i` as a record, proposing a label for the binary task.
fn note(i: usize) -> Value {
    json!({"text": topics(i).0, "label": proposed(i)})
}

/// The label note `i` proposes: cycling independently of its first topic.
fn proposed(i: usize) -> &'static str {
    ["sports", "music", "food"][i / 3 % 3]
}

/// A teacher that knows the topics' keywords and answers yes or no about the asked label, but
/// rambles without an answer about every fifth note.
fn yes_or_no(user: &str) -> Option<String> {
    let text = user.split("\n\n").next().unwrap_or_default();
    let label = user.split('"').nth(1).unwrap_or_default();
    let i = number(text.trim_start_matches("Text: "));
    if i % 5 == 1 {
        return Some("It is hard to tell from such a short note.".into());
    }
    let applies = topics(i).1.contains(&label);
    Some(if applies { "Yes." } else { "no" }.into())
}
