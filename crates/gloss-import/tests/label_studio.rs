//! Label Studio JSON exports read as annotated records: several annotators, the text key, bad
//! tasks reported with the rest read, size limits and broken arrays.

mod common;

use std::io::{self, Read};

use gloss_import::annotations::{
    label_studio, AnnotatedItem, AnnotatedRecord, Annotation, Decision,
};
use gloss_import::{ImportError, Limits};
use serde_json::{json, Value};

use common::{assert_errors, read_every_way, records, span, split};

fn ls_items_with(input: &[u8], text_key: &str, limits: Limits) -> Vec<AnnotatedItem> {
    read_every_way(input, |r| {
        label_studio::read(r, text_key, limits)
            .map(Result::unwrap)
            .collect()
    })
}

fn ls_items(input: &[u8]) -> Vec<AnnotatedItem> {
    ls_items_with(input, "text", Limits::default())
}

/// A result as Label Studio writes one.
fn result(id: &str, kind: &str, value: Value) -> Value {
    let (from_name, to_name) = match kind {
        "choices" => ("sentiment", "text"),
        _ => ("label", "text"),
    };
    json!({
        "id": id,
        "type": kind,
        "value": value,
        "origin": "manual",
        "to_name": to_name,
        "from_name": from_name,
    })
}

fn labels(start: u64, end: u64, text: &str, labels: &[&str]) -> Value {
    json!({"start": start, "end": end, "text": text, "labels": labels})
}

/// An annotation as Label Studio writes one.
fn annotation(id: u64, completed_by: Value, cancelled: bool, results: Vec<Value>) -> Value {
    json!({
        "id": id,
        "completed_by": completed_by,
        "result": results,
        "was_cancelled": cancelled,
        "ground_truth": false,
        "created_at": "2024-05-02T09:14:31.512345Z",
        "updated_at": "2024-05-02T09:14:31.512345Z",
        "draft_created_at": null,
        "lead_time": 12.482,
        "prediction": {},
        "result_count": 0,
        "unique_id": format!("4c1d7e0e-{id}"),
        "import_id": null,
        "last_action": null,
        "task": 1,
        "project": 3,
        "updated_by": completed_by,
        "parent_prediction": null,
        "parent_annotation": null,
        "last_created_by": null,
    })
}

/// A task as Label Studio writes one.
fn task(id: u64, data: Value, annotations: Vec<Value>, predictions: Vec<Value>) -> Value {
    json!({
        "id": id,
        "annotations": annotations,
        "file_upload": "1a2b3c4d-reviews.json",
        "drafts": [],
        "predictions": predictions,
        "data": data,
        "meta": {},
        "created_at": "2024-05-01T08:00:00.000000Z",
        "updated_at": "2024-05-02T09:14:31.600000Z",
        "inner_id": id,
        "total_annotations": annotations.len(),
        "cancelled_annotations": 0,
        "total_predictions": predictions.len(),
        "comment_count": 0,
        "unresolved_comment_count": 0,
        "last_comment_updated_at": null,
        "project": 3,
        "updated_by": 3,
        "comment_authors": [],
    })
}

/// Writes `export` to a file the way Label Studio does (indented JSON) and reads it back.
fn written(name: &str, export: &Value) -> Vec<u8> {
    let path =
        std::env::temp_dir().join(format!("gloss-import-{}-{name}.json", std::process::id()));
    std::fs::write(&path, serde_json::to_string_pretty(export).unwrap()).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    bytes
}

#[test]
fn label_studio_export_with_several_annotators() {
    let text = "Alice met Bob in Paris.";
    let prediction = json!({
        "id": 7,
        "model_version": "ner-v2",
        "score": 0.91,
        "result": [result("p1", "rectanglelabels", json!({"x": 1}))],
    });
    let export = json!([
        task(
            1,
            json!({"text": text, "source": "news", "year": 2024}),
            vec![
                annotation(
                    10,
                    json!(3),
                    false,
                    vec![
                        result("a1", "labels", labels(0, 5, "Alice", &["PERSON"])),
                        result("a2", "labels", labels(17, 22, "Paris", &["LOC", "GPE"])),
                        result("a3", "choices", json!({"choices": ["NEWS"]})),
                    ],
                ),
                annotation(
                    11,
                    json!({"id": 4, "first_name": "", "last_name": "", "email": "bob@example.com"}),
                    false,
                    vec![result("b1", "choices", json!({"choices": ["NEWS", "EU"]}))],
                ),
                // Skipped: whatever it holds is not read.
                annotation(
                    12,
                    json!(5),
                    true,
                    vec![result("c1", "rectanglelabels", json!({}))],
                ),
            ],
            vec![prediction],
        ),
        // Current Label Studio counts code points...
        task(
            2,
            json!({"text": "😀 Alice"}),
            vec![annotation(
                20,
                json!({"id": 9, "username": "erin", "email": ""}),
                false,
                vec![result("d1", "labels", labels(2, 7, "Alice", &["PERSON"]))],
            )],
            vec![],
        ),
        // ...older versions counted UTF-16 units, as JavaScript does.
        task(
            3,
            json!({"text": "😀😀 Alice"}),
            vec![annotation(
                30,
                json!(3),
                false,
                vec![result("e1", "labels", labels(5, 10, "Alice", &["PERSON"]))],
            )],
            vec![],
        ),
        // Not annotated yet: the example alone.
        task(4, json!({"text": "Nobody looked."}), vec![], vec![]),
        // Submitted with nothing marked.
        task(
            5,
            json!({"text": "Nothing here."}),
            vec![annotation(50, Value::Null, false, vec![])],
            vec![],
        ),
    ]);
    let expected = vec![
        AnnotatedRecord {
            line: 1,
            text: text.into(),
            json: format!(r#"{{"text":"{text}","meta":{{"source":"news","year":2024}}}}"#),
            annotations: vec![
                Annotation {
                    annotator: "ls-user-3".into(),
                    source_id: "ls-10".into(),
                    decision: Decision::Accept,
                    label: String::new(),
                    choices: vec!["NEWS".into()],
                    spans: vec![
                        span(0, 5, "PERSON"),
                        span(17, 22, "LOC"),
                        span(17, 22, "GPE"),
                    ],
                    relations: vec![],
                },
                Annotation {
                    annotator: "bob@example.com".into(),
                    source_id: "ls-11".into(),
                    choices: vec!["NEWS".into(), "EU".into()],
                    ..Annotation::default()
                },
                Annotation {
                    annotator: "ls-user-5".into(),
                    source_id: "ls-12".into(),
                    decision: Decision::Ignore,
                    ..Annotation::default()
                },
            ],
        },
        AnnotatedRecord {
            line: 2,
            text: "😀 Alice".into(),
            json: r#"{"text":"😀 Alice"}"#.into(),
            annotations: vec![Annotation {
                annotator: "erin".into(),
                source_id: "ls-20".into(),
                spans: vec![span(2, 7, "PERSON")],
                ..Annotation::default()
            }],
        },
        AnnotatedRecord {
            line: 3,
            text: "😀😀 Alice".into(),
            json: r#"{"text":"😀😀 Alice"}"#.into(),
            annotations: vec![Annotation {
                annotator: "ls-user-3".into(),
                source_id: "ls-30".into(),
                spans: vec![span(3, 8, "PERSON")],
                ..Annotation::default()
            }],
        },
        AnnotatedRecord {
            line: 4,
            text: "Nobody looked.".into(),
            json: r#"{"text":"Nobody looked."}"#.into(),
            annotations: vec![],
        },
        AnnotatedRecord {
            line: 5,
            text: "Nothing here.".into(),
            json: r#"{"text":"Nothing here."}"#.into(),
            annotations: vec![Annotation {
                source_id: "ls-50".into(),
                ..Annotation::default()
            }],
        },
    ];
    let bytes = written("several", &export);
    assert_eq!(records(ls_items(&bytes)), expected);
    // The same export on one line, with a byte order mark, reads the same.
    let compact = [&b"\xEF\xBB\xBF"[..], export.to_string().as_bytes()].concat();
    assert_eq!(records(ls_items(&compact)), expected);
}

#[test]
fn label_studio_text_key_names_the_text_field() {
    let export = json!([task(
        1,
        json!({"stars": 4, "review": "Loved it.", "meta": {"shop": "A"}}),
        vec![annotation(
            10,
            json!(2),
            false,
            vec![result("a", "choices", json!({"choices": ["POS"]}))]
        )],
        vec![],
    )]);
    let bytes = written("text-key", &export);
    let items = ls_items_with(&bytes, "review", Limits::default());
    let [record] = &records(items)[..] else {
        panic!("expected one record")
    };
    assert_eq!(record.text, "Loved it.");
    assert_eq!(
        record.json,
        r#"{"text":"Loved it.","meta":{"stars":4,"meta":{"shop":"A"}}}"#
    );
    let (_, errors) = split(ls_items(&bytes));
    assert_errors(
        &errors,
        &[(
            1,
            Some("data.text"),
            "is missing (`data` has `stars`, `review`, `meta`)",
        )],
    );
}

#[test]
fn label_studio_bad_tasks_are_reported_and_the_rest_read() {
    let good = || {
        task(
            1,
            json!({"text": "fine"}),
            vec![annotation(1, json!(1), false, vec![])],
            vec![],
        )
    };
    let with = |results: Vec<Value>| {
        task(
            2,
            json!({"text": "Alice"}),
            vec![annotation(2, json!(1), false, results)],
            vec![],
        )
    };
    let bad = [
        (
            task(2, json!({"title": "x"}), vec![], vec![]),
            Some("data.text"),
            "is missing (`data` has `title`)",
        ),
        (
            task(2, json!({"text": 5}), vec![], vec![]),
            Some("data.text"),
            "expected a string, found a number",
        ),
        (json!({"id": 2}), Some("data"), "is missing"),
        (
            with(vec![
                result("r0", "choices", json!({"choices": ["A"]})),
                result("r1", "rectanglelabels", json!({"x": 10, "y": 5})),
            ]),
            Some("annotations[0].result[1].type"),
            "`rectanglelabels` results are not supported",
        ),
        (
            with(vec![result("r", "labels", labels(0, 9, "Alice", &["X"]))]),
            Some("annotations[0].result[0].value.end"),
            "9 is past the end of the text (5 characters)",
        ),
        (
            with(vec![result("r", "labels", labels(3, 1, "li", &["X"]))]),
            Some("annotations[0].result[0].value"),
            "start 3 is not before end 1",
        ),
        (
            with(vec![result(
                "r",
                "labels",
                json!({"start": 0, "end": 2, "labels": [7]}),
            )]),
            Some("annotations[0].result[0].value.labels[0]"),
            "expected a string, found a number",
        ),
        (
            with(vec![result("r", "choices", json!({"choices": "A"}))]),
            Some("annotations[0].result[0].value.choices"),
            "expected an array of strings, found a string",
        ),
        (
            with(vec![result("r", "labels", labels(0, 2, "Bo", &["X"]))]),
            Some("annotations[0].result[0].value.text"),
            "span 0..2 covers `Al` but Label Studio recorded `Bo`",
        ),
        (
            task(
                2,
                json!({"text": "Alice"}),
                vec![json!({"id": 3, "completed_by": 1, "was_cancelled": "no"})],
                vec![],
            ),
            Some("annotations[0].was_cancelled"),
            "expected a boolean, found a string",
        ),
        (
            task(
                2,
                json!({"text": "Alice"}),
                vec![json!({"completed_by": 1, "result": []})],
                vec![],
            ),
            Some("annotations[0].id"),
            "is missing",
        ),
        (
            json!("a task?"),
            None,
            "expected a task object, found a string",
        ),
    ];
    let mut tasks = Vec::new();
    let mut expected = Vec::new();
    for (i, (task, field, reason)) in bad.into_iter().enumerate() {
        tasks.push(good());
        tasks.push(task);
        expected.push((2 * i as u64 + 2, field, reason));
    }
    tasks.push(good());
    let bytes = written("bad", &Value::Array(tasks));
    let (good_texts, errors) = split(ls_items(&bytes));
    assert_eq!(good_texts, vec!["fine"; expected.len() + 1]);
    assert_errors(&errors, &expected);
    assert_eq!(
        errors[3].to_string(),
        "line 8: field `annotations[0].result[1].type`: `rectanglelabels` results are not \
         supported: Gloss imports `labels` and `choices` on text"
    );
}

#[test]
fn label_studio_task_that_is_not_json_or_too_large_is_skipped() {
    let big = "b".repeat(300);
    let input = format!(
        "[\n  {{\"data\": {{\"text\": \"one\"}}}},\n  {{\"data\": {{\"text\": \"x\"}}, \"annotations\": [1 2]}},\n  \
         {{\"data\": {{\"text\": \"{big}\"}}}},\n  {{\"data\": {{\"text\": \"four\"}}}}\n]\n"
    );
    let limits = Limits {
        max_record_bytes: 256,
        ..Limits::default()
    };
    let (good, errors) = split(ls_items_with(input.as_bytes(), "text", limits));
    assert_eq!(good, ["one", "four"]);
    assert_errors(
        &errors,
        &[
            (2, None, "not valid JSON (the task starts on line 3): "),
            (
                3,
                None,
                "record is over the size limit of 256 bytes (at least 322 bytes)",
            ),
        ],
    );
}

/// `[{"data":{"text":"aaaa…"}}` of about `len` bytes, then `tail`, generated on the fly.
struct HugeTask {
    sent: usize,
    len: usize,
    tail: io::Cursor<&'static [u8]>,
}

impl Read for HugeTask {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        const HEAD: &[u8] = b"[{\"data\":{\"text\":\"";
        const END: &[u8] = b"\"}}";
        if self.sent == self.len {
            return self.tail.read(out);
        }
        let n = (self.len - self.sent).min(out.len());
        for (i, byte) in out[..n].iter_mut().enumerate() {
            let pos = self.sent + i;
            *byte = match pos {
                _ if pos < HEAD.len() => HEAD[pos],
                _ if pos >= self.len - END.len() => END[pos + END.len() - self.len],
                _ => b'a',
            };
        }
        self.sent += n;
        Ok(n)
    }
}

#[test]
fn label_studio_task_far_over_the_limit_is_skipped_without_holding_it() {
    let len = 48 << 20;
    let huge = HugeTask {
        sent: 0,
        len,
        tail: io::Cursor::new(b", {\"data\": {\"text\": \"small\"}}]"),
    };
    let items: Vec<_> = label_studio::read(huge, "text", Limits::default())
        .map(Result::unwrap)
        .collect();
    let (good, errors) = split(items);
    assert_eq!(good, ["small"]);
    let reason = format!("at least {} bytes", len - 1);
    assert_errors(&errors, &[(1, None, &reason)]);
}

/// The records read before the stream broke, and the error that broke it.
fn broken(input: &str) -> (usize, ImportError) {
    let mut items = label_studio::read(input.as_bytes(), "text", Limits::default());
    let mut records = 0;
    loop {
        match items.next() {
            Some(Ok(AnnotatedItem::Record(_))) => records += 1,
            Some(Ok(AnnotatedItem::Invalid(e))) => panic!("unexpected record error: {e}"),
            Some(Err(e)) => {
                assert!(items.next().is_none(), "the stream ends after {e}");
                return (records, e);
            }
            None => panic!("{input:?} was read without an error"),
        }
    }
}

#[test]
fn label_studio_broken_array_ends_the_stream() {
    let t = r#"{"data": {"text": "ok"}}"#;
    let cases = [
        (
            String::new(),
            0,
            "line 1: not a JSON array of tasks: the input is empty",
        ),
        (
            format!("\n{t}"),
            0,
            "line 2: not a JSON array of tasks: expected `[`, found `{`",
        ),
        (
            format!("[{t},\n{t}\n{t}]"),
            2,
            "line 3: not a JSON array of tasks: expected `,` or `]` after task 2, found `{`",
        ),
        (
            format!("[{t}, {t}"),
            2,
            "line 1: not a JSON array of tasks: the input ends after task 2 with no `]`",
        ),
        (
            format!("[{t},\n {{\"data\": {{\"text\": \"ok"),
            1,
            "line 2: not a JSON array of tasks: the input ends inside task 2 (an unclosed \
             string, object or array)",
        ),
        (
            format!("[{t}, ]"),
            1,
            "line 1: not a JSON array of tasks: expected a task after `,`, found `]`",
        ),
        (
            format!("[{t}]\n[]"),
            1,
            "line 2: not a JSON array of tasks: `[` after the array",
        ),
    ];
    for (input, records, message) in cases {
        let (read, error) = broken(&input);
        assert_eq!(
            (read, error.to_string().as_str()),
            (records, message),
            "{input:?}"
        );
    }
    assert!(records(ls_items(b" [ ] ")).is_empty());
}
