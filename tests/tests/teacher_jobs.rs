//! LLM teachers as job models: `openai:<name>` against a loopback server that speaks the
//! chat-completions protocol and checks what it is sent, and `llm:<name>` on the real SmolLM2
//! GGUF file. Each job is scored on the gold test split and takes part in the promotion rule.
//! Abstentions (no label named, a malformed reply) are counted, answers are cached, and a wrong
//! digest or a missing key file fails the job with the reason.
//!
//! Pre-annotation (`predict`) takes the same path for both kinds; it runs here with the remote
//! teacher, which answers at once, where SmolLM2 takes seconds per example on a test machine.

use std::path::Path;
use std::sync::{Arc, Mutex};

use gloss_coordinator::access::Actor;
use gloss_coordinator::Service;
use gloss_proto::v1::*;
use gloss_tests::{fake_chat_server, node_with_gold, run_films_job, test_models, Seen, TestWorker};
use serde_json::{json, Value};

const KEY: &str = "sk-test-key-never-in-the-log";

/// A chat-completions server on loopback. It answers with the gold label (`zorblax` reviews
/// are POS), except that review numbers divisible by 7 get an answer naming no label and those
/// divisible by 11 a reply that is not JSON.
async fn fake_openai() -> (String, Arc<Mutex<Vec<Seen>>>) {
    fake_chat_server(|user| {
        let number: u64 = user
            .split("review number ")
            .nth(1)
            .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
            .unwrap_or(1);
        if number.is_multiple_of(11) {
            None
        } else if number.is_multiple_of(7) {
            Some("I cannot tell from this text.".into())
        } else if user.contains("zorblax") {
            Some("POS".into())
        } else {
            Some("NEG.".into())
        }
    })
    .await
}

async fn submit(s: &Service, kind: JobKind, model: &str, config: &str) -> Job {
    run_films_job(s, kind, model, config).await
}

async fn succeeded(s: &Service, kind: JobKind, model: &str, config: &str) -> Value {
    let job = submit(s, kind, model, config).await;
    assert_eq!(job.state(), JobState::Succeeded, "{model}: {}", job.error);
    serde_json::from_str(&job.result_json).unwrap()
}

/// The review number in a request's user turn.
fn number(seen: &Seen) -> u64 {
    let user = seen.body["messages"][1]["content"].as_str().unwrap();
    user.split("review number ").nth(1).unwrap()[..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn teachers_file(dir: &Path, url: &str, key_file: &Path) -> std::path::PathBuf {
    let path = dir.join("teachers.toml");
    std::fs::write(
        &path,
        format!(
            "[openai.fake]\nurl = \"{url}\"\nmodel = \"big-model-7b\"\nkey_file = {key_file:?}\nmax_concurrency = 3\n\n\
             [openai.keyless]\nurl = \"{url}\"\nmodel = \"big-model-7b\"\nkey_file = \"/nonexistent/key\"\n"
        ),
    )
    .unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_openai_teacher_is_scored_counts_its_abstentions_and_answers_from_its_cache() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_with_gold(dir.path(), 120).await;
    let s: Arc<Service> = node.coordinator.service().clone();
    let (url, seen) = fake_openai().await;
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
    let teachers = teachers_file(dir.path(), &url, &key_file);
    let worker = TestWorker::start(&node, dir.path(), dir.path().join("models"), Some(teachers));

    let r = succeeded(&s, JobKind::Evaluate, "openai:fake", "").await;
    let requests = seen.lock().unwrap().clone();
    let total = r["test_examples"].as_u64().unwrap() as usize;
    assert_eq!(requests.len(), total, "one request per gold test example");
    // What the server was sent: the key from the worker's file, the model, both turns.
    for q in &requests {
        assert_eq!(q.authorization, format!("Bearer {KEY}"));
        assert_eq!(q.body["model"], "big-model-7b");
        assert_eq!(q.body["temperature"], 0.0);
        assert_eq!(q.body["messages"][0]["role"], "system");
        let user = q.body["messages"][1]["content"].as_str().unwrap();
        assert!(
            user.contains("POS or NEG") && user.contains("filed under"),
            "{user}"
        );
    }
    let malformed = requests
        .iter()
        .filter(|q| number(q).is_multiple_of(11))
        .count();
    let no_label = requests
        .iter()
        .filter(|q| !number(q).is_multiple_of(11) && number(q).is_multiple_of(7))
        .count();
    assert!(
        malformed > 0 || no_label > 0,
        "the split holds no abstention case"
    );
    let teacher = &r["teacher"];
    assert_eq!(teacher["malformed"], malformed);
    assert_eq!(teacher["abstained"], malformed + no_label);
    assert_eq!(teacher["cached"], 0);
    // Every answered example is right, every abstention wrong.
    let answered = (total - malformed - no_label) as f64;
    let accuracy = r["gold-test:accuracy"].as_f64().unwrap();
    assert!((accuracy - answered / total as f64).abs() < 1e-9, "{r}");
    // The evaluation is recorded under the teacher's name with its abstention rate.
    let evals = s.list_evaluations("films", "polarity").await.unwrap();
    let e = evals
        .iter()
        .find(|e| e.model == "openai:fake")
        .expect("recorded");
    assert!((e.metrics["gold-test:accuracy"] - accuracy).abs() < 1e-9);
    assert!(
        (e.metrics["gold-test:abstention_rate"] - (malformed + no_label) as f64 / total as f64)
            .abs()
            < 1e-9
    );

    // The same job again costs nothing: every answer comes from the worker's cache.
    let again = succeeded(&s, JobKind::Evaluate, "openai:fake", "").await;
    assert_eq!(seen.lock().unwrap().len(), total);
    assert_eq!(again["teacher"]["cached"], total);
    assert_eq!(again["gold-test:accuracy"], r["gold-test:accuracy"]);

    // Another prompt is another question: asked again, and recorded in the result.
    let template = "Review: {text}\nIs it {labels}?";
    let config = json!({"prompt": template, "system": "Answer in one word."}).to_string();
    let custom = succeeded(&s, JobKind::Evaluate, "openai:fake", &config).await;
    assert_eq!(custom["teacher"]["prompt"]["template"], template);
    assert_eq!(custom["teacher"]["cached"], 0);
    let last = seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(last.body["messages"][0]["content"], "Answer in one word.");
    assert!(last.body["messages"][1]["content"]
        .as_str()
        .unwrap()
        .starts_with("Review: "));

    // Pre-annotation: one suggestion per answered example, none for an abstention.
    let before = seen.lock().unwrap().len();
    let predicted = succeeded(&s, JobKind::Predict, "openai:fake", "").await;
    let asked = seen.lock().unwrap()[before..].to_vec();
    let abstentions = asked
        .iter()
        .filter(|q| number(q).is_multiple_of(11) || number(q).is_multiple_of(7))
        .count() as u64;
    assert_eq!(predicted["examples"], 120);
    // Test-split examples were answered before, from the cache: count them too.
    let all_abstentions = (0..120u64)
        .filter(|n| n.is_multiple_of(11) || n.is_multiple_of(7))
        .count() as u64;
    assert_eq!(predicted["teacher"]["abstained"], all_abstentions);
    assert_eq!(predicted["suggestions"], 120 - all_abstentions);
    // Only the examples not asked before went to the server.
    assert!(
        abstentions > 0 && asked.len() < 120,
        "{} asked",
        asked.len()
    );

    // The key never reaches the cluster: not in any job, its log or the audit log.
    let jobs = s.list_jobs(&[], 1000).await.unwrap();
    let mut everything = format!("{jobs:?}{:?}", s.list_audit(0, 1000).await.unwrap());
    for j in &jobs {
        everything.push_str(&format!("{:?}", s.job_logs(&j.id, 0).await.unwrap()));
    }
    assert!(everything.contains("openai:fake") && !everything.contains(KEY));

    // An endpoint whose key file is missing, and one the worker does not know, fail the job
    // with the reason.
    let failed = submit(&s, JobKind::Evaluate, "openai:keyless", "").await;
    assert_eq!(failed.state(), JobState::Failed);
    assert!(
        failed.error.contains("key file") && failed.error.contains("/nonexistent/key"),
        "{}",
        failed.error
    );
    let failed = submit(&s, JobKind::Evaluate, "openai:nobody", "").await;
    assert_eq!(failed.state(), JobState::Failed);
    assert!(
        failed.error.contains("not in this worker's teachers file"),
        "{}",
        failed.error
    );
    let failed = submit(
        &s,
        JobKind::Evaluate,
        "openai:fake",
        r#"{"prompt": "no field"}"#,
    )
    .await;
    assert_eq!(failed.state(), JobState::Failed);
    assert!(failed.error.contains("{text}"), "{}", failed.error);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gguf_teacher_runs_in_a_job_and_takes_part_in_the_promotion_rule() {
    let models = test_models();
    let gguf = models.join("smollm2");
    assert!(
        gguf.is_dir(),
        "run crates/gloss-ml/scripts/fetch-test-models.sh first (SmolLM2 in {})",
        gguf.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let node = node_with_gold(dir.path(), 40).await;
    let s: Arc<Service> = node.coordinator.service().clone();
    let worker = TestWorker::start(&node, dir.path(), models.clone(), None);
    let digest = gloss_worker::model_store::dir_digest(&gguf).unwrap();

    // A wrong digest is refused before anything is loaded.
    let bad = submit(
        &s,
        JobKind::Evaluate,
        "llm:smollm2",
        &json!({"sha256": "0".repeat(64)}).to_string(),
    )
    .await;
    assert_eq!(bad.state(), JobState::Failed);
    assert!(bad.error.contains("refusing to load"), "{}", bad.error);

    let config = json!({"sha256": digest}).to_string();
    let r = succeeded(&s, JobKind::Evaluate, "llm:smollm2", &config).await;
    let total = r["test_examples"].as_u64().unwrap();
    assert!(total > 0);
    let teacher = &r["teacher"];
    eprintln!("llm:smollm2 on {total} gold test examples: {teacher}");
    assert_eq!(teacher["cached"], 0);
    assert_eq!(
        teacher["batch"], 8,
        "the in-process model answers 8 prompts a batch: {r}"
    );
    assert!(teacher["tokens_per_second"].as_f64().unwrap() > 0.0, "{r}");
    assert!(
        teacher["examples_per_second"].as_f64().unwrap() > 0.0,
        "{r}"
    );
    let evals = s.list_evaluations("films", "polarity").await.unwrap();
    assert!(evals.iter().any(|e| e.model == "llm:smollm2"
        && e.metrics.contains_key("gold-test:accuracy")
        && e.metrics.contains_key("gold-test:abstention_rate")));

    // Re-run: answered from the cache, same score.
    let again = succeeded(&s, JobKind::Evaluate, "llm:smollm2", &config).await;
    assert_eq!(again["teacher"]["cached"], total);
    assert_eq!(again["gold-test:accuracy"], r["gold-test:accuracy"]);

    // A student trained on the gold records must beat the LLM teacher to be promoted.
    succeeded(
        &s,
        JobKind::Train,
        "",
        r#"{"epochs": 6, "patience": 6, "seed": 3}"#,
    )
    .await;
    succeeded(&s, JobKind::Evaluate, "films/polarity/tiny", "").await;
    let student = s.get_model("films/polarity/tiny", 0).await.unwrap();
    let teacher_score = r["gold-test:accuracy"].as_f64().unwrap();
    let student_score = student.metrics["gold-test:accuracy"];
    let promoted = s
        .promote_model(&Actor::SYSTEM, "films/polarity/tiny", 0, false, "")
        .await;
    match promoted {
        Ok(m) => {
            assert!(student_score > teacher_score);
            assert!(
                m.promotion_note.contains("llm:smollm2"),
                "{}",
                m.promotion_note
            );
        }
        Err(e) => {
            assert!(student_score <= teacher_score, "{e}");
        }
    }
    worker.stop().await;
}
