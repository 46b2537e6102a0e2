//! Prodigy answer JSONL read as annotated records: several annotators, bad lines reported with
//! the rest read, size limits, read failures, relations. Label Studio's reader is tested in
//! `label_studio.rs`.

mod common;

use gloss_import::annotations::{
    label_studio, prodigy, AnnotatedItem, AnnotatedRecord, Annotation, Decision,
};
use gloss_import::{ImportError, Limits};

use common::{assert_errors, read_every_way, records, span, split, Broken};

fn prodigy_items(input: &[u8]) -> Vec<AnnotatedItem> {
    read_every_way(input, |r| {
        prodigy::read(r, Limits::default())
            .map(Result::unwrap)
            .collect()
    })
}

#[test]
fn prodigy_answers_from_several_annotators() {
    let input = concat!(
        r#"{"text":"Alice met Bob in Paris.","meta":{"source": "news", "score": 1.50},"_input_hash":-1021,"_task_hash":377,"spans":[{"start":0,"end":5,"token_start":0,"token_end":0,"label":"PERSON"},{"start":17,"end":22,"text":"Paris","label":"GPE"}],"_view_id":"ner_manual","answer":"accept","_timestamp":1700000000,"_annotator_id":"news-alice","_session_id":"news-alice"}"#,
        "\n",
        r#"{"text":"Alice met Bob in Paris.","meta":{"source": "news", "score": 1.50},"_input_hash":-1021,"_task_hash":377,"spans":[],"_view_id":"ner_manual","answer":"reject","_timestamp":1700000100,"_session_id":"news-bob"}"#,
        "\r\n\n   \n",
        r#"{"text":"Great film 😀 really","label":"POSITIVE","_input_hash":5,"_task_hash":"6","answer":"ignore"}"#,
        "\n",
        r#"{"text":"Meh.","options":[{"id":"POS","text":"Positive"},{"id":3,"text":"Three"}],"accept":["POS",3],"config":{"choice_style":"multiple"},"answer":"accept","_annotator_id":"carol","flagged":true}"#,
        "\n",
        r#"{"text":"😀 Alice","spans":[{"start":2,"end":7,"text":"Alice","label":"PERSON"}],"answer":"accept","_annotator_id":"dave","relations":[]}"#,
    );
    let ner_example = r#"{"text":"Alice met Bob in Paris.","meta":{"source": "news", "score": 1.50},"_input_hash":-1021,"_task_hash":377,"_view_id":"ner_manual"}"#;
    let expected = vec![
        AnnotatedRecord {
            line: 1,
            text: "Alice met Bob in Paris.".into(),
            json: ner_example.into(),
            annotations: vec![Annotation {
                annotator: "news-alice".into(),
                source_id: "prodigy-377-news-alice".into(),
                decision: Decision::Accept,
                spans: vec![span(0, 5, "PERSON"), span(17, 22, "GPE")],
                ..Annotation::default()
            }],
        },
        AnnotatedRecord {
            line: 2,
            text: "Alice met Bob in Paris.".into(),
            json: ner_example.into(),
            annotations: vec![Annotation {
                annotator: "news-bob".into(),
                source_id: "prodigy-377-news-bob".into(),
                decision: Decision::Reject,
                ..Annotation::default()
            }],
        },
        AnnotatedRecord {
            line: 5,
            text: "Great film 😀 really".into(),
            json: r#"{"text":"Great film 😀 really","_input_hash":5,"_task_hash":"6"}"#.into(),
            annotations: vec![Annotation {
                source_id: "prodigy-6".into(),
                decision: Decision::Ignore,
                label: "POSITIVE".into(),
                ..Annotation::default()
            }],
        },
        AnnotatedRecord {
            line: 6,
            text: "Meh.".into(),
            json: r#"{"text":"Meh.","options":[{"id":"POS","text":"Positive"},{"id":3,"text":"Three"}],"config":{"choice_style":"multiple"}}"#.into(),
            annotations: vec![Annotation {
                annotator: "carol".into(),
                source_id: "prodigy-line-6".into(),
                choices: vec!["POS".into(), "3".into()],
                ..Annotation::default()
            }],
        },
        AnnotatedRecord {
            line: 7,
            text: "😀 Alice".into(),
            json: r#"{"text":"😀 Alice"}"#.into(),
            annotations: vec![Annotation {
                annotator: "dave".into(),
                source_id: "prodigy-line-7".into(),
                spans: vec![span(2, 7, "PERSON")],
                ..Annotation::default()
            }],
        },
    ];
    assert_eq!(records(prodigy_items(input.as_bytes())), expected);
    // A leading byte order mark changes nothing.
    let bom = [&b"\xEF\xBB\xBF"[..], input.as_bytes()].concat();
    assert_eq!(records(prodigy_items(&bom)), expected);
}

#[test]
fn prodigy_bad_records_are_reported_and_the_rest_read() {
    let good = r#"{"text":"fine","answer":"accept"}"#;
    let bad = [
        (r#"{"answer":"accept"}"#, Some("text"), "is missing"),
        (
            r#"{"text":"  ","answer":"accept"}"#,
            Some("text"),
            "is empty",
        ),
        (r#"{"text":"a"}"#, Some("answer"), "is missing"),
        (
            r#"{"text":"a","answer":"maybe"}"#,
            Some("answer"),
            "expected accept, reject or ignore, found `maybe`",
        ),
        (
            r#"{"text":"a","answer":true}"#,
            Some("answer"),
            "expected a string, found a boolean",
        ),
        (
            r#"{"text":"abc","answer":"accept","spans":[{"start":0,"end":9,"label":"X"}]}"#,
            Some("spans[0].end"),
            "9 is past the end of the text (3 characters)",
        ),
        (
            r#"{"text":"abc","answer":"accept","spans":[{"start":2,"end":1,"label":"X"}]}"#,
            Some("spans[0]"),
            "start 2 is not before end 1",
        ),
        (
            r#"{"text":"abc","answer":"accept","label":3}"#,
            Some("label"),
            "expected a string, found a number",
        ),
        (
            r#"{"text":"abc","answer":"accept","spans":[{"start":0,"end":1,"label":["X"]}]}"#,
            Some("spans[0].label"),
            "expected a string, found an array",
        ),
        (
            r#"{"text":"abc","answer":"accept","spans":[{"start":0,"end":1}]}"#,
            Some("spans[0].label"),
            "is missing",
        ),
        (
            r#"{"text":"abc","answer":"accept","spans":[{"start":0,"end":2,"text":"bc","label":"X"}]}"#,
            Some("spans[0].text"),
            "span 0..2 covers `ab` but the span's text is `bc`",
        ),
        (
            r#"{"text":"abc","answer":"accept","options":[{"id":"A"}],"accept":["B"]}"#,
            Some("accept[0]"),
            "`B` is not the id of any of the options",
        ),
        (
            r#"{"text":"abc","answer":"accept","accept":[null]}"#,
            Some("accept[0]"),
            "expected an option id, found null",
        ),
        (
            r#"{"text":"abc","answer":"accept","_annotator_id":7}"#,
            Some("_annotator_id"),
            "expected a string, found a number",
        ),
        (
            r#"{"text":"a b","answer":"accept","relations":[{"head":0,"child":1,"label":"R"}]}"#,
            Some("relations[0].head_span"),
            "is missing or not an object",
        ),
        (
            r#"{"text":"a b","answer":"accept","spans":[{"start":0,"end":1,"label":"X"}],"relations":[{"head_span":{"start":0,"end":1},"child_span":{"start":2,"end":3},"label":"R"}]}"#,
            Some("relations[0].child_span"),
            "2..3 is not one of the line's spans",
        ),
        (
            r#"{"text":"a b","answer":"accept","relations":{}}"#,
            Some("relations"),
            "expected an array, found an object",
        ),
        (r#"{"text": "unterminated}"#, None, "not valid JSON: "),
        (
            r#"["text"]"#,
            None,
            "expected a JSON object, found an array",
        ),
    ];
    let mut input = String::new();
    let mut expected = Vec::new();
    for (i, (record, field, reason)) in bad.iter().enumerate() {
        input.push_str(&format!("{good}\n{record}\n"));
        expected.push((2 * i as u64 + 2, *field, *reason));
    }
    input.push_str(good);
    let (good_texts, errors) = split(prodigy_items(input.as_bytes()));
    assert_eq!(good_texts, vec!["fine"; bad.len() + 1]);
    assert_errors(&errors, &expected);
    assert_eq!(
        errors[5].to_string(),
        "line 12: field `spans[0].end`: 9 is past the end of the text (3 characters)"
    );
}

#[test]
fn prodigy_line_over_the_size_limit_is_skipped() {
    let limits = Limits {
        max_record_bytes: 64,
        ..Limits::default()
    };
    let big = format!(r#"{{"text":"{}","answer":"accept"}}"#, "a".repeat(200));
    let input = format!("{big}\n{{\"text\":\"ok\",\"answer\":\"accept\"}}\n");
    let items: Vec<_> = prodigy::read(input.as_bytes(), limits)
        .map(Result::unwrap)
        .collect();
    let (good, errors) = split(items);
    assert_eq!(good, ["ok"]);
    assert_errors(&errors, &[(1, None, "over the size limit of 64 bytes")]);
}

#[test]
fn read_failures_end_the_stream() {
    let mut items = prodigy::read(Broken, Limits::default());
    assert!(matches!(items.next(), Some(Err(ImportError::Io(_)))));
    assert!(items.next().is_none());
    let mut items = label_studio::read(Broken, "text", Limits::default());
    assert!(matches!(items.next(), Some(Err(ImportError::Io(_)))));
    assert!(items.next().is_none());
}

#[test]
fn prodigy_relations_name_their_spans() {
    let line = r#"{"text":"Ann met Bob","answer":"accept","_annotator_id":"rel-ann","spans":[{"start":0,"end":3,"label":"PER","token_start":0,"token_end":0},{"start":8,"end":11,"label":"PER","token_start":2,"token_end":2}],"relations":[{"head":2,"child":0,"head_span":{"start":8,"end":11,"token_start":2,"token_end":2,"label":"PER"},"child_span":{"start":0,"end":3,"token_start":0,"token_end":0,"label":"PER"},"label":"MET"}]}"#;
    let items: Vec<_> = prodigy::read(line.as_bytes(), Limits::default())
        .map(Result::unwrap)
        .collect();
    let AnnotatedItem::Record(record) = &items[0] else {
        panic!("{items:?}");
    };
    let a = &record.annotations[0];
    assert_eq!(a.spans.len(), 2);
    assert_eq!(
        a.relations,
        [gloss_import::annotations::Relation {
            head: 1,
            child: 0,
            label: "MET".into(),
        }]
    );
    // The relations belong to the answer, not to the stored example.
    assert!(!record.json.contains("relations"), "{}", record.json);
}
