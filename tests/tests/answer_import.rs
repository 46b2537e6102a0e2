//! Importing annotations made in other tools through the real gRPC API: Prodigy answer JSONL
//! and a Label Studio export become examples and answers by their annotators (and gold where the
//! overlap is met), all or nothing, once per answer, with errors naming the record and field.

use gloss_client::{Client, ClientError};
use gloss_proto::v1::*;
use gloss_tests::{import, jsonl, start_node, Node};
use serde_json::json;

async fn node_with(task: Task) -> Node {
    let node = start_node().await;
    node.create_project("news").await;
    import(
        &node.client,
        jsonl("news", "raw"),
        "{\"text\":\"Alice flew to Paris.\"}\n",
    )
    .await
    .unwrap();
    node.client
        .tasks()
        .create_task(CreateTaskRequest { task: Some(task) })
        .await
        .unwrap();
    node
}

fn task(name: &str, interface: Interface, labels: &[&str], overlap: u32) -> Task {
    let mut t = Task {
        project: "news".into(),
        name: name.into(),
        labels: labels.iter().map(|l| l.to_string()).collect(),
        source_dataset: "raw".into(),
        overlap,
        ..Task::default()
    };
    t.set_interface(interface);
    t
}

async fn import_answers(
    c: &Client,
    task: &str,
    source: AnswerSource,
    body: String,
) -> Result<ImportAnswersSummary, ClientError> {
    let header = ImportAnswersHeader {
        project: "news".into(),
        task: task.into(),
        source: source as i32,
        default_annotator: String::new(),
        text_key: String::new(),
        source_name: "fixture".into(),
    };
    c.import_answers(header, std::io::Cursor::new(body.into_bytes()), |_| {})
        .await
}

async fn progress(c: &Client, task: &str) -> TaskProgress {
    c.tasks()
        .get_progress(GetProgressRequest {
            project: "news".into(),
            task: task.into(),
        })
        .await
        .unwrap()
        .into_inner()
}

async fn export_gold(c: &Client, task: &str) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    c.export_answers(
        ExportAnswersRequest {
            project: "news".into(),
            task: task.into(),
            selection: ExportSelection::Gold as i32,
            format: ExportFormat::Prodigy as i32,
        },
        &mut out,
        |_, _| {},
    )
    .await
    .unwrap();
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn prodigy_line(text: &str, who: &str, spans: serde_json::Value) -> String {
    json!({
        "text": text,
        "meta": {"source": "wire"},
        "_input_hash": 1_234_567,
        "_task_hash": -7_654_321,
        "spans": spans,
        "answer": "accept",
        "_annotator_id": format!("ents-{who}"),
        "_session_id": format!("ents-{who}"),
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prodigy_answers_become_answers_and_gold_once_all_or_nothing() {
    let node = node_with(task("ents", Interface::Ner, &["PERSON", "LOC"], 2)).await;
    let c = &node.client;
    let alice = json!([
        {"start": 0, "end": 5, "label": "PERSON"},
        {"start": 14, "end": 19, "label": "LOC"}
    ]);
    let good = [
        prodigy_line("Alice flew to Paris.", "ann", alice.clone()),
        prodigy_line("Alice flew to Paris.", "bob", alice.clone()),
        prodigy_line(
            "Bob works in Rome.",
            "ann",
            json!([{"start": 13, "end": 17, "label": "LOC"}]),
        ),
    ]
    .join("\n");

    // One bad line (a span past the end of its text) and nothing is imported.
    let bad = format!(
        "{good}\n{}",
        prodigy_line(
            "Short.",
            "cy",
            json!([{"start": 0, "end": 40, "label": "PERSON"}])
        )
    );
    let err = import_answers(c, "ents", AnswerSource::Prodigy, bad)
        .await
        .unwrap_err();
    let ClientError::AnswersRejected { message, summary } = err else {
        panic!("{err:?}")
    };
    assert_eq!(summary.invalid, 1, "{message}");
    assert_eq!(summary.errors[0].line, 4, "{:?}", summary.errors);
    assert!(
        summary.errors[0].field.ends_with("spans[0].end"),
        "{:?}",
        summary.errors
    );
    assert_eq!(progress(c, "ents").await.answers, 0);

    let s = import_answers(c, "ents", AnswerSource::Prodigy, good.clone())
        .await
        .unwrap();
    assert_eq!(
        (
            s.records_read,
            s.examples_added,
            s.examples_existing,
            s.answers_recorded
        ),
        (3, 1, 1, 3),
        "{s:?}"
    );
    let p = progress(c, "ents").await;
    assert_eq!((p.answers, p.gold), (3, 1), "{p:?}");
    let gold = export_gold(c, "ents").await;
    assert_eq!(gold.len(), 1);
    assert_eq!(gold[0]["text"], "Alice flew to Paris.");
    assert_eq!(gold[0]["spans"].as_array().unwrap().len(), 2, "{}", gold[0]);

    // The same file again adds nothing.
    let again = import_answers(c, "ents", AnswerSource::Prodigy, good)
        .await
        .unwrap();
    assert_eq!((again.answers_recorded, again.answers_existing), (0, 3));
    assert_eq!(progress(c, "ents").await.answers, 3);

    // A third annotator on the full example breaks the overlap of 2: refused, nothing changes.
    let third = prodigy_line("Alice flew to Paris.", "cy", alice);
    let err = import_answers(c, "ents", AnswerSource::Prodigy, third)
        .await
        .unwrap_err();
    let ClientError::AnswersRejected { summary, .. } = err else {
        panic!("{err:?}")
    };
    assert!(summary.errors[0].reason.contains("overlap"), "{summary:?}");
    assert_eq!(progress(c, "ents").await.answers, 3);

    // One annotator twice on an example in one file: the second is refused by field, and
    // nothing changes.
    let carla = |label: &str| json!([{"start": 0, "end": 5, "label": label}]);
    let twice = [
        prodigy_line("Carla met Dan.", "dee", carla("PERSON")),
        prodigy_line("Carla met Dan.", "dee", carla("LOC")),
    ]
    .join("\n");
    let err = import_answers(c, "ents", AnswerSource::Prodigy, twice)
        .await
        .unwrap_err();
    let ClientError::AnswersRejected { summary, .. } = err else {
        panic!("{err:?}")
    };
    let e = &summary.errors[0];
    assert_eq!(e.line, 2, "{summary:?}");
    assert!(e.field.ends_with("annotator"), "{summary:?}");
    assert!(e.reason.contains("dee already answered"), "{summary:?}");
    assert_eq!(progress(c, "ents").await.answers, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_label_studio_export_becomes_answers_by_its_annotators() {
    let node = node_with(task("sent", Interface::Choice, &["POS", "NEG"], 1)).await;
    let c = &node.client;
    let annotation = |id: u64, user: u64, choice: &str| {
        json!({
            "id": id,
            "completed_by": user,
            "result": [{
                "id": format!("r{id}"),
                "from_name": "sentiment",
                "to_name": "text",
                "type": "choices",
                "value": {"choices": [choice]},
                "origin": "manual"
            }],
            "was_cancelled": false,
            "ground_truth": false,
            "created_at": "2026-11-30T10:00:00.000000Z",
            "lead_time": 3.5
        })
    };
    let export = json!([
        {
            "id": 1,
            "data": {"text": "Alice flew to Paris."},
            "annotations": [annotation(11, 7, "POS")],
            "predictions": [],
            "meta": {},
            "created_at": "2026-11-30T09:00:00.000000Z",
            "updated_at": "2026-11-30T10:00:00.000000Z",
            "inner_id": 1
        },
        {
            "id": 2,
            "data": {"text": "The trains were late again."},
            "annotations": [annotation(12, 8, "NEG")],
            "predictions": [],
            "meta": {},
            "created_at": "2026-11-30T09:00:00.000000Z",
            "updated_at": "2026-11-30T10:00:00.000000Z",
            "inner_id": 2
        }
    ]);
    let s = import_answers(c, "sent", AnswerSource::LabelStudio, export.to_string())
        .await
        .unwrap();
    assert_eq!(
        (s.records_read, s.examples_added, s.answers_recorded),
        (2, 1, 2),
        "{s:?}"
    );
    let p = progress(c, "sent").await;
    assert_eq!((p.answers, p.gold), (2, 2), "{p:?}");
    let mut annotators: Vec<String> = p.annotators.iter().map(|a| a.annotator.clone()).collect();
    annotators.sort();
    assert_eq!(annotators, ["ls-user-7", "ls-user-8"]);
    let gold = export_gold(c, "sent").await;
    let accepted: Vec<&str> = gold
        .iter()
        .map(|g| g["accept"][0].as_str().unwrap_or_default())
        .collect();
    assert_eq!(gold.len(), 2);
    assert!(
        accepted.contains(&"POS") && accepted.contains(&"NEG"),
        "{gold:?}"
    );

    // An unknown label is named with its record and field; nothing is imported.
    let bad = json!([{
        "id": 3,
        "data": {"text": "Fine weather."},
        "annotations": [annotation(13, 7, "MAYBE")]
    }]);
    let err = import_answers(c, "sent", AnswerSource::LabelStudio, bad.to_string())
        .await
        .unwrap_err();
    let ClientError::AnswersRejected { summary, .. } = err else {
        panic!("{err:?}")
    };
    assert_eq!(summary.errors[0].line, 1, "{summary:?}");
    assert!(
        summary.errors[0].field.starts_with("annotations[0]"),
        "{summary:?}"
    );
    assert_eq!(progress(c, "sent").await.answers, 2);
}

/// Runs a Python script that uses spaCy; fails (never skips) when spaCy is missing.
fn spacy(script: &str, args: &[&std::path::Path]) -> String {
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "the spaCy script failed (install spaCy with `python3 -m pip install spacy`, as .ci/run does): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A DocBin written by spaCy itself goes in as answers of one annotator (so gold at overlap 1),
/// and the gold records come out as a DocBin that spaCy reads back with the same entities.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spacy_docbin_goes_in_as_gold_and_comes_back_out_for_spacy() {
    let node = node_with(task("ents", Interface::Ner, &["PERSON", "LOC"], 1)).await;
    let c = &node.client;
    let dir = tempfile::tempdir().unwrap();
    let written = dir.path().join("in.spacy");
    spacy(
        r#"
import sys, spacy
from spacy.tokens import DocBin
nlp = spacy.blank("en")
db = DocBin()
for text, ents in [("Alice flew to Paris.", [(0, 5, "PERSON"), (14, 19, "LOC")]),
                   ("Zoë moved to Zürich.", [(0, 3, "PERSON"), (13, 19, "LOC")])]:
    doc = nlp(text)
    doc.ents = [doc.char_span(s, e, label=l) for s, e, l in ents]
    db.add(doc)
db.to_disk(sys.argv[1])
"#,
        &[&written],
    );
    let header = ImportAnswersHeader {
        project: "news".into(),
        task: "ents".into(),
        source: AnswerSource::Spacy as i32,
        default_annotator: String::new(),
        text_key: String::new(),
        source_name: "in.spacy".into(),
    };
    // A DocBin names no annotator: the import says so and changes nothing.
    let body = std::fs::read(&written).unwrap();
    let err = c
        .import_answers(header.clone(), std::io::Cursor::new(body.clone()), |_| {})
        .await
        .unwrap_err();
    let ClientError::AnswersRejected { summary, .. } = err else {
        panic!("{err:?}")
    };
    assert_eq!(summary.invalid, 2, "{summary:?}");
    assert_eq!(summary.errors[0].field, "annotations[0].annotator");
    let s = c
        .import_answers(
            ImportAnswersHeader {
                default_annotator: "spacy-gold".into(),
                ..header
            },
            std::io::Cursor::new(body),
            |_| {},
        )
        .await
        .unwrap();
    assert_eq!(
        (s.examples_added, s.examples_existing, s.answers_recorded),
        (1, 1, 2)
    );
    assert_eq!(progress(c, "ents").await.gold, 2);

    let mut out = Vec::new();
    c.export_answers(
        ExportAnswersRequest {
            project: "news".into(),
            task: "ents".into(),
            selection: ExportSelection::Gold as i32,
            format: ExportFormat::Spacy as i32,
        },
        &mut out,
        |_, _| {},
    )
    .await
    .unwrap();
    let exported = dir.path().join("out.spacy");
    std::fs::write(&exported, out).unwrap();
    let seen = spacy(
        r#"
import json, sys, spacy
from spacy.tokens import DocBin
nlp = spacy.blank("en")
docs = DocBin().from_disk(sys.argv[1]).get_docs(nlp.vocab)
print(json.dumps(sorted([[d.text, [[e.start_char, e.end_char, e.label_] for e in d.ents]] for d in docs]), ensure_ascii=False))
"#,
        &[&exported],
    );
    let seen: serde_json::Value = serde_json::from_str(&seen).unwrap();
    assert_eq!(
        seen,
        json!([
            ["Alice flew to Paris.", [[0, 5, "PERSON"], [14, 19, "LOC"]]],
            ["Zoë moved to Zürich.", [[0, 3, "PERSON"], [13, 19, "LOC"]]]
        ])
    );
}
