//! Tests of the export lines and documents.

use super::*;
use crate::test_support::span;
use serde_json::Map;

fn task(interface: Interface, labels: &[&str]) -> Task {
    Task {
        project: "proj".into(),
        name: "news".into(),
        interface: interface as i32,
        labels: labels.iter().map(|l| l.to_string()).collect(),
        ..Default::default()
    }
}

fn answer(decision: Decision) -> Answer {
    Answer {
        annotator: "ann".into(),
        decision: decision as i32,
        at_ms: 1_700_000_123_456,
        ..Default::default()
    }
}

const HASH: &str = "8000000afedcba9876543210aabbccdd";
const TEXT: &str = "Angela Merkel visited Paris.";

fn parse(line: &str) -> Map<String, Value> {
    assert!(!line.contains('\n'));
    match serde_json::from_str(line).unwrap() {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

#[test]
fn prodigy_binary_line_keeps_the_record() {
    let t = task(Interface::Binary, &["POS", "NEG"]);
    let record = r#"{"text":"I liked it","meta":{"source":"imdb","id":7},"extra":[1,2]}"#;
    let a = Answer {
        label: "POS".into(),
        session_id: "tab-1".into(),
        ..answer(Decision::Accept)
    };
    let line = prodigy_line(&t, record, HASH, &a).unwrap();
    let map = parse(&line);
    let keys: Vec<&str> = map.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "text",
            "meta",
            "extra",
            "_input_hash",
            "_task_hash",
            "_annotator_id",
            "_session_id",
            "_timestamp",
            "_view_id",
            "answer",
            "label"
        ]
    );
    assert_eq!(map["meta"], json!({"source": "imdb", "id": 7}));
    assert_eq!(map["extra"], json!([1, 2]));
    // 0x8000000a read as a signed 32-bit integer.
    assert_eq!(map["_input_hash"], json!(-2147483638));
    assert_eq!(map["_annotator_id"], json!("news-ann"));
    assert_eq!(map["_session_id"], json!("tab-1"));
    assert_eq!(map["_timestamp"], json!(1_700_000_123));
    assert_eq!(map["_view_id"], json!("classification"));
    assert_eq!(map["answer"], json!("accept"));
    assert_eq!(map["label"], json!("POS"));
    assert!(map["_task_hash"].is_i64());
}

#[test]
fn prodigy_task_hash_depends_on_the_question() {
    let t = task(Interface::Binary, &["POS", "NEG"]);
    let record = r#"{"text":"x"}"#;
    let hash_of = |label: &str, hash: &str, annotator: &str| {
        let a = Answer {
            label: label.into(),
            annotator: annotator.into(),
            ..answer(Decision::Accept)
        };
        parse(&prodigy_line(&t, record, hash, &a).unwrap())["_task_hash"].clone()
    };
    let base = hash_of("POS", HASH, "ann");
    assert_eq!(base, hash_of("POS", HASH, "bob"));
    assert_ne!(base, hash_of("NEG", HASH, "ann"));
    assert_ne!(
        base,
        hash_of("POS", "00000000000000000000000000000000", "ann")
    );
}

/// The `_input_hash` and `_task_hash` of a binary POS accept for `record`.
fn hashes_of(record: &str) -> (Value, Value) {
    let t = task(Interface::Binary, &["POS", "NEG"]);
    let a = Answer {
        label: "POS".into(),
        ..answer(Decision::Accept)
    };
    let map = parse(&prodigy_line(&t, record, HASH, &a).unwrap());
    (map["_input_hash"].clone(), map["_task_hash"].clone())
}

#[test]
fn prodigy_computes_its_own_hashes_for_a_record_without_them() {
    let (input_hash, task_hash) = hashes_of(r#"{"text":"x"}"#);
    // The first 8 hex digits, 0x8000000a, read as a signed 32-bit integer.
    assert_eq!(input_hash, json!(-2147483638));
    // The top 32 bits of xxh3-64 over "HEX\0TASK\0LABEL", read as a signed 32-bit integer.
    let key = format!("{HASH}\0news\0POS");
    let expected = (xxhash_rust::xxh3::xxh3_64(key.as_bytes()) >> 32) as u32 as i32;
    assert_eq!(task_hash, json!(expected));
}

#[test]
fn prodigy_keeps_the_hashes_an_imported_record_carries() {
    let record = r#"{"_input_hash":1841234567,"text":"x","_task_hash":-1029384756}"#;
    let carried = hashes_of(record);
    assert_eq!(carried, (json!(1841234567), json!(-1029384756)));
    assert_ne!(carried, hashes_of(r#"{"text":"x"}"#));
    // In the record's own places, too.
    let t = task(Interface::Binary, &["POS", "NEG"]);
    let line = prodigy_line(&t, record, HASH, &answer(Decision::Accept)).unwrap();
    assert!(
        line.starts_with(r#"{"_input_hash":1841234567,"text":"x","_task_hash":-1029384756,"#),
        "{line}"
    );
}

#[test]
fn prodigy_keeps_one_carried_hash_and_computes_the_other() {
    let (ours_input, ours_task) = hashes_of(r#"{"text":"x"}"#);
    assert_eq!(
        hashes_of(r#"{"text":"x","_input_hash":-77}"#),
        (json!(-77), ours_task)
    );
    assert_eq!(
        hashes_of(r#"{"text":"x","_task_hash":42}"#),
        (ours_input, json!(42))
    );
}

#[test]
fn prodigy_session_defaults_to_annotator() {
    let t = task(Interface::Choice, &["A", "B"]);
    let a = Answer {
        choices: vec!["B".into()],
        ..answer(Decision::Accept)
    };
    let map = parse(&prodigy_line(&t, r#"{"text":"x"}"#, HASH, &a).unwrap());
    assert_eq!(map["_session_id"], json!("news-ann"));
    assert_eq!(map["_view_id"], json!("choice"));
    assert_eq!(
        map["options"],
        json!([{"id": "A", "text": "A"}, {"id": "B", "text": "B"}])
    );
    assert_eq!(map["accept"], json!(["B"]));
    assert!(!map.contains_key("label"));
}

#[test]
fn prodigy_rejected_multi_choice() {
    let t = task(Interface::MultiChoice, &["A", "B"]);
    let map = parse(&prodigy_line(&t, r#"{"text":"x"}"#, HASH, &answer(Decision::Reject)).unwrap());
    assert_eq!(map["answer"], json!("reject"));
    assert_eq!(map["accept"], json!([]));
}

#[test]
fn prodigy_span_line() {
    let t = task(Interface::Ner, &["PER", "LOC"]);
    let record = r#"{"text":"Angela Merkel visited Paris.","spans":[{"start":0,"end":1}]}"#;
    let a = Answer {
        spans: vec![span(0, 13, "PER"), span(22, 27, "LOC")],
        ..answer(Decision::Accept)
    };
    let map = parse(&prodigy_line(&t, record, HASH, &a).unwrap());
    assert_eq!(map["_view_id"], json!("ner_manual"));
    assert_eq!(
        map["tokens"][0],
        json!({"text": "Angela", "start": 0, "end": 6, "id": 0, "ws": true})
    );
    assert_eq!(
        map["tokens"][4],
        json!({"text": ".", "start": 27, "end": 28, "id": 4, "ws": false})
    );
    // The record's own `spans` are replaced by the answer's.
    assert_eq!(
        map["spans"],
        json!([
            {"start": 0, "end": 13, "label": "PER", "token_start": 0, "token_end": 1, "text": "Angela Merkel"},
            {"start": 22, "end": 27, "label": "LOC", "token_start": 3, "token_end": 3, "text": "Paris"},
        ])
    );
    let spans_task = task(Interface::Spans, &["PER"]);
    let map = parse(&prodigy_line(&spans_task, record, HASH, &a).unwrap());
    assert_eq!(map["_view_id"], json!("spans_manual"));
}

#[test]
fn prodigy_record_errors() {
    let t = task(Interface::Binary, &["POS"]);
    let a = answer(Decision::Accept);
    assert!(matches!(
        prodigy_line(&t, "{not json", HASH, &a),
        Err(ExportError::InvalidJson(_))
    ));
    assert_eq!(
        prodigy_line(&t, "[1]", HASH, &a),
        Err(ExportError::NotAnObject)
    );
    assert_eq!(
        prodigy_line(&t, r#"{"text":3}"#, HASH, &a),
        Err(ExportError::MissingText)
    );
    let err = prodigy_line(&t, r#"{"title":"x"}"#, HASH, &a).unwrap_err();
    assert_eq!(err.to_string(), "the record has no string field `text`");
    let err = prodigy_line(&t, r#"{"text":"x"}"#, "12zz", &a).unwrap_err();
    assert_eq!(err, ExportError::BadInputHash("12zz".into()));
    assert!(err.to_string().contains("\"12zz\""));
    assert!(prodigy_line(&t, r#"{"text":"x"}"#, "1234567", &a).is_err());
}

#[test]
fn conll_iob2_tags() {
    let spans = [span(22, 27, "LOC"), span(0, 13, "PER")];
    let block = conll_block(TEXT, &spans).unwrap();
    assert_eq!(
        block,
        "Angela\tB-PER\nMerkel\tI-PER\nvisited\tO\nParis\tB-LOC\n.\tO\n\n"
    );
    assert_eq!(
        conll_block(TEXT, &[]).unwrap(),
        "Angela\tO\nMerkel\tO\nvisited\tO\nParis\tO\n.\tO\n\n"
    );
    assert_eq!(conll_block("", &[]).unwrap(), "\n");
    // Adjacent spans of the same label stay apart thanks to B-.
    let block = conll_block("a b", &[span(0, 1, "X"), span(2, 3, "X")]).unwrap();
    assert_eq!(block, "a\tB-X\nb\tB-X\n\n");
}

#[test]
fn conll_refuses_overlapping_spans() {
    let spans = [span(0, 13, "PER"), span(7, 21, "ORG")];
    let err = conll_block(TEXT, &spans).unwrap_err();
    assert_eq!(
        err,
        ExportError::OverlappingSpans {
            first: "0..13 PER".into(),
            second: "7..21 ORG".into(),
        }
    );
    assert!(err.to_string().contains("0..13 PER"));
    assert!(err.to_string().contains("7..21 ORG"));
}

#[test]
fn conll_guards_whitespace_inside_tokens() {
    // A tab followed by a combining mark is one non-whitespace segment.
    let block = conll_block("a \t\u{301}b", &[]).unwrap();
    for line in block.lines().filter(|l| !l.is_empty()) {
        assert_eq!(line.matches('\t').count(), 1, "{line:?}");
    }
    assert!(block.ends_with("\n\n"));
}

fn hf_keys(line: &str) -> Vec<(String, &'static str)> {
    parse(line)
        .into_iter()
        .map(|(k, v)| {
            let kind = match v {
                Value::String(_) => "str",
                Value::Array(_) => "list",
                Value::Null => "null",
                _ => "other",
            };
            (k, kind)
        })
        .collect()
}

#[test]
fn hf_lines_have_the_same_shape_for_every_interface() {
    let expected: Vec<(String, &str)> = [
        ("text", "str"),
        ("input_hash", "str"),
        ("annotator", "str"),
        ("answer", "str"),
        ("label", "str"),
        ("labels", "list"),
        ("spans", "list"),
        ("relations", "list"),
        ("tokens", "list"),
        ("ner_tags", "list"),
        ("image", "str"),
        ("boxes", "list"),
    ]
    .iter()
    .map(|&(k, v)| (k.to_owned(), v))
    .collect();
    let cases = [
        (
            Interface::Binary,
            Answer {
                label: "A".into(),
                ..answer(Decision::Accept)
            },
        ),
        (
            Interface::Choice,
            Answer {
                choices: vec!["A".into()],
                ..answer(Decision::Accept)
            },
        ),
        (
            Interface::MultiChoice,
            Answer {
                choices: vec!["A".into(), "B".into()],
                ..answer(Decision::Accept)
            },
        ),
        (
            Interface::Ner,
            Answer {
                spans: vec![span(0, 6, "A")],
                ..answer(Decision::Accept)
            },
        ),
        (Interface::Spans, answer(Decision::Ignore)),
        (
            Interface::ImageBoxes,
            Answer {
                boxes: vec![ImageBox {
                    x: 1.0,
                    y: 2.0,
                    width: 3.0,
                    height: 4.0,
                    label: "A".into(),
                }],
                ..answer(Decision::Accept)
            },
        ),
    ];
    for (interface, a) in cases {
        let line = hf_line(&task(interface, &["A", "B"]), TEXT, "", HASH, &a);
        assert_eq!(hf_keys(&line), expected, "{interface:?}: {line}");
    }
}

#[test]
fn hf_values() {
    let choice = task(Interface::Choice, &["A", "B"]);
    let a = Answer {
        choices: vec!["B".into()],
        ..answer(Decision::Accept)
    };
    let map = parse(&hf_line(&choice, "x", "", HASH, &a));
    assert_eq!(map["label"], json!("B"));
    assert_eq!(map["labels"], json!(["B"]));
    assert_eq!(map["input_hash"], json!(HASH));
    assert_eq!(map["annotator"], json!("ann"));
    assert_eq!(map["answer"], json!("accept"));
    assert_eq!(map["tokens"], json!([]));

    let multi = task(Interface::MultiChoice, &["A", "B"]);
    let a = Answer {
        choices: vec!["B".into()],
        ..answer(Decision::Accept)
    };
    assert_eq!(
        parse(&hf_line(&multi, "x", "", HASH, &a))["label"],
        json!("")
    );

    let ner = task(Interface::Ner, &["PER", "LOC"]);
    let a = Answer {
        spans: vec![span(0, 13, "PER"), span(22, 27, "LOC")],
        ..answer(Decision::Accept)
    };
    let map = parse(&hf_line(&ner, TEXT, "", HASH, &a));
    assert_eq!(
        map["tokens"],
        json!(["Angela", "Merkel", "visited", "Paris", "."])
    );
    assert_eq!(
        map["ner_tags"],
        json!(["B-PER", "I-PER", "O", "B-LOC", "O"])
    );
    assert_eq!(
        map["spans"],
        json!([{"start": 0, "end": 13, "label": "PER"}, {"start": 22, "end": 27, "label": "LOC"}])
    );
}

#[test]
fn hf_tags_keep_the_earlier_and_longer_of_overlapping_spans() {
    let t = task(Interface::Spans, &["A", "B", "C"]);
    let a = Answer {
        spans: vec![
            span(7, 21, "B"),  // overlaps the kept 0..13
            span(0, 6, "C"),   // same start, shorter
            span(0, 13, "A"),  // kept
            span(22, 27, "C"), // kept
        ],
        ..answer(Decision::Accept)
    };
    let map = parse(&hf_line(&t, TEXT, "", HASH, &a));
    assert_eq!(map["ner_tags"], json!(["B-A", "I-A", "O", "B-C", "O"]));
    // Every span stays in `spans`.
    assert_eq!(map["spans"].as_array().unwrap().len(), 4);
}

fn relations_answer() -> (Task, Answer) {
    let mut t = task(Interface::Relations, &["PER", "LOC"]);
    t.relation_labels = vec!["VISITED".into()];
    let a = Answer {
        spans: vec![span(0, 13, "PER"), span(22, 27, "LOC")],
        relations: vec![gloss_proto::v1::Relation {
            head: 0,
            child: 1,
            label: "VISITED".into(),
        }],
        ..answer(Decision::Accept)
    };
    (t, a)
}

#[test]
fn prodigy_relations_line() {
    let (t, a) = relations_answer();
    let map = parse(&prodigy_line(&t, &json!({"text": TEXT}).to_string(), HASH, &a).unwrap());
    assert_eq!(map["_view_id"], json!("relations"));
    assert_eq!(map["spans"].as_array().unwrap().len(), 2);
    assert_eq!(map["tokens"].as_array().unwrap().len(), 5);
    // Prodigy points a relation at the last token of each span.
    assert_eq!(
        map["relations"],
        json!([{
            "head": 1,
            "child": 3,
            "head_span": {"start": 0, "end": 13, "token_start": 0, "token_end": 1, "label": "PER"},
            "child_span": {"start": 22, "end": 27, "token_start": 3, "token_end": 3, "label": "LOC"},
            "label": "VISITED",
        }])
    );
}

#[test]
fn hf_relations_index_the_spans() {
    let (t, a) = relations_answer();
    let map = parse(&hf_line(&t, TEXT, "", HASH, &a));
    assert_eq!(
        map["relations"],
        json!([{"head": 0, "child": 1, "label": "VISITED"}])
    );
    assert_eq!(
        map["ner_tags"],
        json!(["B-PER", "I-PER", "O", "B-LOC", "O"])
    );
}

#[test]
fn prodigy_image_line_has_rectangles_with_points() {
    let t = task(Interface::ImageBoxes, &["CAT", "DOG"]);
    let a = Answer {
        boxes: vec![ImageBox {
            x: 10.0,
            y: 20.0,
            width: 30.0,
            height: 40.0,
            label: "DOG".into(),
        }],
        ..answer(Decision::Accept)
    };
    let record = r#"{"image":"data:image/png;base64,AAAA","width":64,"height":48}"#;
    let map = parse(&prodigy_line(&t, record, HASH, &a).unwrap());
    assert_eq!(map["_view_id"], json!("image_manual"));
    assert_eq!(map["image"], json!("data:image/png;base64,AAAA"));
    let span = &map["spans"][0];
    assert_eq!(span["label"], json!("DOG"));
    assert_eq!(
        span["points"],
        json!([[10.0, 20.0], [10.0, 60.0], [40.0, 60.0], [40.0, 20.0]])
    );
    assert_eq!(
        (&span["x"], &span["width"], &span["type"]),
        (&json!(10.0), &json!(30.0), &json!("rect"))
    );
    assert!(!map.contains_key("tokens"));
}

#[test]
fn coco_document_numbers_images_annotations_and_categories() {
    let t = task(Interface::ImageBoxes, &["CAT", "DOG"]);
    let boxed = |who: &str, label: &str, x: f64| Answer {
        annotator: who.into(),
        boxes: vec![ImageBox {
            x,
            y: 1.0,
            width: 2.0,
            height: 3.0,
            label: label.into(),
        }],
        ..answer(Decision::Accept)
    };
    let image = |name: &str, seq| CocoImage {
        file_name: name.into(),
        width: 10,
        height: 8,
        seq,
    };
    let doc: Value = serde_json::from_str(&coco_document(
        &t,
        &[
            (image("a.png", 0), vec![boxed("ann", "DOG", 4.0)]),
            (
                image("b.png", 3),
                vec![boxed("ann", "CAT", 0.0), answer(Decision::Reject)],
            ),
        ],
    ))
    .unwrap();
    assert_eq!(
        doc["categories"][1],
        json!({"id": 2, "name": "DOG", "supercategory": ""})
    );
    assert_eq!(doc["images"][1]["id"], json!(2));
    assert_eq!(doc["images"][1]["file_name"], json!("b.png"));
    let anns = doc["annotations"].as_array().unwrap();
    assert_eq!(anns.len(), 2);
    assert_eq!(anns[0]["category_id"], json!(2));
    assert_eq!(anns[0]["bbox"], json!([4.0, 1.0, 2.0, 3.0]));
    assert_eq!(anns[0]["area"], json!(6.0));
    assert_eq!(
        (&anns[1]["id"], &anns[1]["image_id"]),
        (&json!(2), &json!(2))
    );
}
