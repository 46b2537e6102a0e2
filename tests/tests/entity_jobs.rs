//! The entity loop through jobs, as a team runs it: an LLM teacher pre-annotates a `ner-correct`
//! task, annotators correct its spans, `train --student auto` trains both taggers and keeps the
//! better on dev, `evaluate` scores teacher and student by span precision, recall and F1 per
//! label, the student is promoted by span F1, predicts spans on new examples as the assisting
//! model, and the corrected answers export with their spans.
//!
//! The teacher is an `openai:` endpoint on loopback that knows only people (it never names a
//! place) and answers some posts with prose (an abstention); the data are short posts naming
//! people and cities at known offsets, so every score here can be checked by hand.

use std::sync::Arc;

use gloss_coordinator::access::Actor;
use gloss_coordinator::Service;
use gloss_proto::v1::*;
use gloss_tests::{
    answer_all, create_task, fake_chat_server, import, jsonl, minilm_models, next_examples,
    node_for_workers, run_task_job, TestWorker,
};
use serde_json::{json, Value};

const PEOPLE: [&str; 8] = [
    "Alice Moreau",
    "Bruno Keller",
    "Chiara Rossi",
    "Dmitri Volkov",
    "Emeka Obi",
    "Farah Haddad",
    "Goran Petrovic",
    "Hana Sato",
];
const CITIES: [&str; 6] = ["Lisbon", "Nairobi", "Osaka", "Toronto", "Krakow", "Quito"];

/// Post `i` and its entities (code points; the posts are ASCII).
fn post(i: usize) -> (String, Vec<(usize, usize, &'static str)>) {
    let person = PEOPLE[i % PEOPLE.len()];
    let city = CITIES[(i / 3) % CITIES.len()];
    let (text, spans) = match i % 4 {
        0 => {
            let text = format!("{person} flew to {city} on Monday, post {i}");
            let c = person.len() + " flew to ".len();
            (
                text,
                vec![(0, person.len(), "PER"), (c, c + city.len(), "LOC")],
            )
        }
        1 => {
            let text = format!("Yesterday {person} met old friends in {city}, post {i}");
            let p = "Yesterday ".len();
            let c = p + person.len() + " met old friends in ".len();
            (
                text,
                vec![(p, p + person.len(), "PER"), (c, c + city.len(), "LOC")],
            )
        }
        2 => {
            let text = format!("{city} welcomed {person} for the festival, post {i}");
            let p = city.len() + " welcomed ".len();
            (
                text,
                vec![(0, city.len(), "LOC"), (p, p + person.len(), "PER")],
            )
        }
        _ => (
            format!("Rain again all week, nothing to report, post {i}"),
            vec![],
        ),
    };
    (text, spans)
}

/// The teacher's answer: the people it recognises, never a place; every ninth post gets prose.
fn teacher_answer(user: &str) -> Option<String> {
    let text = user
        .strip_prefix("Text: ")
        .and_then(|t| t.split("\n\n").next())
        .unwrap_or("");
    let number: usize = text.rsplit("post ").next()?.parse().ok()?;
    if number.is_multiple_of(9) {
        return Some("I am not sure what this post is about.".into());
    }
    let found: Vec<Value> = PEOPLE
        .iter()
        .filter(|p| text.contains(*p))
        .map(|p| json!({"text": p, "label": "PER"}))
        .collect();
    Some(Value::Array(found).to_string())
}

async fn ok_job(s: &Service, kind: JobKind, model: &str, config: &str) -> (Job, Value) {
    let job = run_task_job(s, "news/ents", kind, model, config).await;
    assert_eq!(
        job.state(),
        JobState::Succeeded,
        "{kind:?} {model}: {}",
        job.error
    );
    let result = serde_json::from_str(&job.result_json).unwrap();
    (job, result)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_entity_loop_runs_from_teacher_to_promoted_tagger_and_export() {
    let models = minilm_models();
    let dir = tempfile::tempdir().unwrap();
    let node = node_for_workers(dir.path()).await;
    let s: Arc<Service> = node.coordinator.service().clone();
    let client = &node.client;
    node.create_project("news").await;
    const N: usize = 160;
    let body: String = (0..N)
        .map(|i| format!("{}\n", json!({"text": post(i).0})))
        .collect();
    import(client, jsonl("news", "posts"), body).await.unwrap();
    create_task(
        client,
        "news/ents",
        "posts",
        Interface::NerCorrect,
        &["PER", "LOC"],
    )
    .await;

    let (url, seen) = fake_chat_server(teacher_answer).await;
    let teachers = dir.path().join("teachers.toml");
    std::fs::write(
        &teachers,
        format!("[openai.people]\nurl = \"{url}\"\nmodel = \"ner-7b\"\n"),
    )
    .unwrap();
    let worker = TestWorker::start(&node, dir.path(), models.clone(), Some(teachers));

    // 1. The teacher pre-annotates: people only, prose abstains.
    let (_, r) = ok_job(&s, JobKind::Predict, "openai:people", "").await;
    let abstained = (0..N).filter(|i| i.is_multiple_of(9)).count();
    assert_eq!(r["examples"], N);
    assert_eq!(r["suggestions"], N - abstained, "{r}");
    assert_eq!(r["teacher"]["abstained"], abstained, "{r}");
    let asked = seen.lock().unwrap().len();
    assert_eq!(asked, N, "one request per post");
    let prompt = seen.lock().unwrap()[0].body["messages"][0]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        prompt.contains("JSON list") && prompt.contains("Labels: PER, LOC"),
        "{prompt}"
    );

    // 2. The annotator corrects every post, starting from the teacher's spans.
    let mut from_teacher = 0;
    let answered = answer_all(client, "news/ents", "ann", |ex| {
        let number: usize = ex.text.rsplit("post ").next().unwrap().parse().unwrap();
        let (text, gold) = post(number);
        assert_eq!(ex.text, text);
        if let Some(sg) = &ex.suggestion {
            assert_eq!(sg.source, "openai:people");
            assert!(sg.spans.iter().all(|s| s.label == "PER"), "{sg:?}");
            from_teacher += usize::from(!sg.spans.is_empty());
        }
        Answer {
            decision: Decision::Accept as i32,
            spans: gold
                .iter()
                .map(|&(start, end, label)| Span {
                    start: start as u32,
                    end: end as u32,
                    label: label.into(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    })
    .await;
    assert_eq!(answered, N);
    assert!(
        from_teacher > N / 2,
        "{from_teacher} posts came with the teacher's spans"
    );

    // A choice-only teacher is refused on an entity task, with the reason.
    let refused = run_task_job(&s, "news/ents", JobKind::Evaluate, "similarity:minilm", "").await;
    assert_eq!(refused.state(), JobState::Failed);
    assert!(refused.error.contains("entity task"), "{}", refused.error);

    // 3. Train both taggers; auto keeps the better on dev and records why.
    let digest = gloss_worker::model_store::dir_digest(&models.join("minilm")).unwrap();
    let config = json!({
        "epochs": 12, "patience": 4, "seed": 3,
        "encoder": "minilm", "encoder_sha256": digest, "teacher": "openai:people",
    })
    .to_string();
    let (trained, r) = ok_job(&s, JobKind::Train, "auto", &config).await;
    let candidates = r["candidates"].as_array().unwrap();
    let kinds: Vec<&str> = candidates
        .iter()
        .map(|c| c["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["tiny-tagger", "encoder-tagger"], "{r}");
    let dev = |c: &Value| c["gold-dev:span_f1"].as_f64().unwrap();
    let best = candidates
        .iter()
        .fold(&candidates[0], |b, c| if dev(c) > dev(b) { c } else { b });
    assert_eq!(r["kind"], best["kind"], "{r}");
    let name = format!("news/ents/{}", best["kind"].as_str().unwrap());
    assert_eq!(r["model"], name);
    let model = s.get_model(&name, 0).await.unwrap();
    assert_eq!(model.job_id, trained.id);
    assert_eq!(model.kind, best["kind"].as_str().unwrap());
    assert!(model.selection.starts_with("auto: "), "{}", model.selection);
    assert!(
        model.selection.contains("tiny-tagger") && model.selection.contains("encoder-tagger"),
        "{}",
        model.selection
    );
    assert!(dev(best) > 0.8, "{r}");

    // A student that does not fit the task is refused with the choices.
    let wrong = run_task_job(&s, "news/ents", JobKind::Train, "tiny", "").await;
    assert!(
        wrong.error.contains("tiny-tagger, encoder-tagger or auto"),
        "{}",
        wrong.error
    );

    // 4. Evaluate teacher and student by spans, per label.
    let (_, teacher) = ok_job(&s, JobKind::Evaluate, "openai:people", "").await;
    let t = |k: &str| {
        teacher[k]
            .as_f64()
            .unwrap_or_else(|| panic!("{k}: {teacher}"))
    };
    assert_eq!(t("gold-test:span_recall:LOC"), 0.0, "{teacher}");
    assert!(t("gold-test:span_precision:PER") > 0.99, "{teacher}");
    assert!(t("gold-test:span_f1") < 0.7, "{teacher}");
    assert!(t("gold-test:abstention_rate") > 0.0, "{teacher}");
    let version = format!("{name}@{}", model.version);
    let (_, student) = ok_job(&s, JobKind::Evaluate, &version, "").await;
    let st = |k: &str| {
        student[k]
            .as_f64()
            .unwrap_or_else(|| panic!("{k}: {student}"))
    };
    assert!(
        st("gold-test:span_f1") > t("gold-test:span_f1") + 0.2,
        "{student}"
    );
    assert!(st("gold-test:span_f1:LOC") > 0.8, "{student}");

    // 5. Promotion compares span F1.
    let promoted = s
        .promote_model(&Actor::SYSTEM, &name, 0, false, "")
        .await
        .unwrap();
    assert!(
        promoted.promotion_note.contains("gold-test:span_f1")
            && promoted.promotion_note.contains("openai:people"),
        "{}",
        promoted.promotion_note
    );

    // 6. New posts arrive; the assisting model pre-annotates them with spans.
    let fresh: String = (N..N + 8)
        .map(|i| format!("{}\n", json!({"text": post(i).0})))
        .collect();
    import(client, jsonl("news", "posts"), fresh).await.unwrap();
    let (_, r) = ok_job(&s, JobKind::Predict, "assisting", "").await;
    assert_eq!(r["examples"], N + 8);
    let next = next_examples(client, "news/ents", "ann", 8).await;
    assert_eq!(next.len(), 8);
    let mut right = 0;
    for ex in &next {
        let sg = ex
            .suggestion
            .as_ref()
            .expect("a suggestion on every new post");
        assert_eq!(sg.source, version);
        let number: usize = ex.text.rsplit("post ").next().unwrap().parse().unwrap();
        let gold: Vec<(u32, u32, String)> = post(number)
            .1
            .iter()
            .map(|&(a, b, l)| (a as u32, b as u32, l.to_string()))
            .collect();
        let got: Vec<(u32, u32, String)> = sg
            .spans
            .iter()
            .map(|s| (s.start, s.end, s.label.clone()))
            .collect();
        right += usize::from(got == gold);
    }
    assert!(right >= 6, "{right} of 8 new posts tagged exactly");

    // 7. The corrected answers export with their spans.
    let mut out = Vec::new();
    client
        .export_answers(
            ExportAnswersRequest {
                project: "news".into(),
                task: "ents".into(),
                selection: ExportSelection::Gold as i32,
                format: ExportFormat::Hf as i32,
            },
            &mut out,
            |_, _| {},
        )
        .await
        .unwrap();
    let lines: Vec<Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), N);
    let first = lines
        .iter()
        .find(|l| l["text"].as_str().unwrap().ends_with("post 0"))
        .unwrap();
    assert_eq!(
        first["spans"],
        json!([{"start": 0, "end": 12, "label": "PER"}, {"start": 21, "end": 27, "label": "LOC"}])
    );
    assert_eq!(first["ner_tags"][0], "B-PER");
    worker.stop().await;
}
