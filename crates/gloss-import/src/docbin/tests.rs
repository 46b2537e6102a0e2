use std::io::Write;

use rmpv::Value;

use super::*;

fn span(start: u64, end: u64, label: &str) -> Span {
    Span {
        start,
        end,
        label: label.to_owned(),
    }
}

/// Whitespace-separated tokens of `text`, in code points.
fn words(text: &str) -> Vec<(u64, u64)> {
    let mut tokens = Vec::new();
    let mut start = None;
    for (i, c) in text.chars().enumerate() {
        let i = i as u64;
        match (c.is_whitespace(), start) {
            (false, None) => start = Some(i),
            (true, Some(s)) => {
                tokens.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        tokens.push((s, text.chars().count() as u64));
    }
    tokens
}

fn doc(text: &str, spans: Vec<Span>, cats: &[(&str, f32)]) -> DocOut {
    DocOut {
        text: text.to_owned(),
        tokens: words(text),
        spans,
        cats: cats.iter().map(|(l, s)| ((*l).to_owned(), *s)).collect(),
    }
}

fn records(bytes: &[u8]) -> Vec<AnnotatedRecord> {
    read(bytes, Limits::default())
        .unwrap()
        .into_iter()
        .map(|item| match item {
            AnnotatedItem::Record(r) => r,
            AnnotatedItem::Invalid(e) => panic!("{e}"),
        })
        .collect()
}

#[test]
fn written_docs_read_back_the_same() {
    let docs = [
        doc(
            "Zoë  Müller visited\tZürich ",
            vec![span(0, 11, "PERSON"), span(20, 26, "GPE")],
            &[("travel", 0.9), ("sports", 0.1), ("edge", 0.5)],
        ),
        doc("", vec![], &[]),
        doc("😀 ORG _ x", vec![span(2, 5, "ORG"), span(6, 7, "_")], &[]),
    ];
    let read_back = records(&write(&docs).unwrap());
    assert_eq!(read_back.len(), 3);
    for (i, (record, doc)) in read_back.iter().zip(&docs).enumerate() {
        assert_eq!(record.line, i as u64 + 1);
        assert_eq!(record.text, doc.text);
        assert_eq!(
            record.json,
            serde_json::json!({"text": doc.text}).to_string()
        );
        let [answer] = record.annotations.as_slice() else {
            panic!("one answer per doc");
        };
        assert_eq!(answer.source_id, format!("docbin-{}", i + 1));
        assert_eq!(answer.decision, Decision::Accept);
        assert_eq!(answer.spans, doc.spans);
        let chosen: Vec<_> = doc
            .cats
            .iter()
            .filter(|c| c.1 >= 0.5)
            .map(|c| c.0.clone())
            .collect();
        assert_eq!(answer.choices, chosen);
    }
}

#[test]
fn writer_names_the_span_that_misses_token_boundaries() {
    let cases = [
        (
            vec![span(1, 5, "X")],
            "doc 1: span 1..5 `X` does not start where a token starts",
        ),
        (
            vec![span(0, 4, "X")],
            "doc 1: span 0..4 `X` does not end where a token ends",
        ),
        (
            vec![span(6, 17, "B"), span(0, 11, "A")],
            "doc 1: span 6..17 `B` overlaps span 0..11 `A`",
        ),
        (
            vec![span(0, 5, "")],
            "doc 1: span 0..5 `` has an empty label",
        ),
    ];
    for (spans, message) in cases {
        let err = write(&[doc("Hello there world", spans, &[])]).unwrap_err();
        assert!(err.to_string().ends_with(message), "{err}");
    }
    let mut bad = doc("ab", vec![], &[]);
    bad.tokens = vec![(0, 3)];
    let err = write(&[doc("ok", vec![], &[]), bad]).unwrap_err();
    assert!(
        err.to_string()
            .ends_with("doc 2: token 0 (0..3) ends past the text (2 code points)"),
        "{err}"
    );
    let err = write(&[doc("a", vec![], &[("x", f32::NAN)])]).unwrap_err();
    assert!(
        err.to_string().ends_with("category `x` scores NaN"),
        "{err}"
    );
}

/// A DocBin with hand-made token rows of `[ORTH, ENT_IOB, ENT_TYPE]`, one doc.
fn raw_docbin(rows: &[[u64; 3]], strings: &[&str], cats: Value) -> Vec<u8> {
    let tokens: Vec<u8> = rows
        .iter()
        .flatten()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let text = |s: &str| Value::from(s);
    let message = Value::Map(vec![
        (
            text("attrs"),
            Value::Array(vec![ORTH.into(), ENT_IOB.into(), ENT_TYPE.into()]),
        ),
        (text("tokens"), Value::Binary(tokens)),
        (text("spaces"), Value::Binary(vec![1; rows.len()])),
        (
            text("lengths"),
            Value::Binary((rows.len() as i32).to_le_bytes().to_vec()),
        ),
        (
            text("strings"),
            Value::Array(strings.iter().map(|s| text(s)).collect()),
        ),
        (text("cats"), Value::Array(vec![cats])),
    ]);
    compress(&message)
}

fn compress(message: &Value) -> Vec<u8> {
    let mut packed = Vec::new();
    rmpv::encode::write_value(&mut packed, message).unwrap();
    let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    zlib.write_all(&packed).unwrap();
    zlib.finish().unwrap()
}

fn invalid(bytes: &[u8]) -> RecordError {
    match read(bytes, Limits::default()).unwrap().as_slice() {
        [AnnotatedItem::Invalid(e)] => e.clone(),
        other => panic!("expected one invalid doc, got {other:?}"),
    }
}

#[test]
fn malformed_docs_are_invalid_and_say_why() {
    let a = strings::hash("a");
    let empty_map = || Value::Map(vec![]);
    let e = invalid(&raw_docbin(&[[a, 1, 380]], &["a"], empty_map()));
    assert_eq!(e.line, 1);
    assert_eq!(e.field.as_deref(), Some("tokens[0].ENT_IOB"));
    assert!(e.reason.contains("no entity is open"), "{e}");

    let e = invalid(&raw_docbin(&[[a, 2, 0], [a, 7, 0]], &["a"], empty_map()));
    assert_eq!(e.field.as_deref(), Some("tokens[1].ENT_IOB"));
    assert!(e.reason.contains("ENT_IOB is 7"), "{e}");

    let e = invalid(&raw_docbin(&[[12345, 2, 0]], &["a"], empty_map()));
    assert_eq!(e.field.as_deref(), Some("tokens[0].ORTH"));
    assert_eq!(e.to_string(), "line 1: field `tokens[0].ORTH`: doc 1: ORTH 12345 is not the id of any string in the DocBin's `strings`");

    let e = invalid(&raw_docbin(&[[a, 3, 99_999]], &["a"], empty_map()));
    assert_eq!(e.field.as_deref(), Some("tokens[0].ENT_TYPE"));

    let cats = Value::Map(vec![(Value::from("x"), Value::from("high"))]);
    let e = invalid(&raw_docbin(&[[a, 2, 0]], &["a"], cats));
    assert_eq!(e.field.as_deref(), Some("cats.x"));

    let limits = Limits {
        max_record_bytes: 3,
        ..Limits::default()
    };
    let items = read(
        &raw_docbin(&[[a, 2, 0], [a, 2, 0]], &["a"], empty_map()),
        limits,
    )
    .unwrap();
    assert!(matches!(&items[..], [AnnotatedItem::Invalid(e)] if e.reason.contains("size limit")));
}

#[test]
fn entities_follow_spacy_doc_ents() {
    // B PERSON, I with another type (spaCy keeps the open entity), B with no type (closes),
    // missing (closes), B at the very end.
    let a = strings::hash("a");
    let custom = strings::hash("CUSTOM");
    let rows = [
        [a, 3, 380],
        [a, 1, 383],
        [a, 3, 0],
        [a, 3, custom],
        [a, 0, 0],
        [a, 3, 383],
    ];
    let bytes = raw_docbin(&rows, &["a", "CUSTOM"], Value::Map(vec![]));
    let [record] = records(&bytes).try_into().unwrap();
    assert_eq!(record.text, "a a a a a a ");
    assert_eq!(
        record.annotations[0].spans,
        vec![
            span(0, 3, "PERSON"),
            span(6, 7, "CUSTOM"),
            span(10, 11, "ORG")
        ]
    );
}

#[test]
fn numpy_scalar_scores_and_user_data_are_read() {
    let a = strings::hash("a");
    let scalar = |kind: &str, data: Vec<u8>| {
        Value::Map(vec![
            (Value::Binary(b"nd".to_vec()), Value::Boolean(false)),
            (Value::Binary(b"type".to_vec()), Value::from(kind)),
            (Value::Binary(b"data".to_vec()), Value::Binary(data)),
        ])
    };
    let cats = Value::Map(vec![
        (
            Value::from("f4"),
            scalar("<f4", 0.75f32.to_le_bytes().to_vec()),
        ),
        (
            Value::from("f8"),
            scalar("<f8", 0.25f64.to_le_bytes().to_vec()),
        ),
        (Value::from("int"), Value::from(1)),
        (Value::from("yes"), Value::Boolean(true)),
    ]);
    let mut user_data = Vec::new();
    let data = Value::Map(vec![
        (Value::from("source"), Value::from("x")),
        (
            Value::Array(vec![Value::from("._."), Value::from("ext")]),
            Value::from(1),
        ),
    ]);
    rmpv::encode::write_value(&mut user_data, &data).unwrap();
    let tokens: Vec<u8> = [a, 2, 0].iter().flat_map(|v| v.to_le_bytes()).collect();
    let message = Value::Map(vec![
        (
            Value::from("attrs"),
            Value::Array(vec![ORTH.into(), ENT_IOB.into(), ENT_TYPE.into()]),
        ),
        (Value::from("tokens"), Value::Binary(tokens)),
        (Value::from("spaces"), Value::Binary(vec![0])),
        (
            Value::from("lengths"),
            Value::Binary(1i32.to_le_bytes().to_vec()),
        ),
        (Value::from("strings"), Value::Array(vec![Value::from("a")])),
        (Value::from("cats"), Value::Array(vec![cats])),
        (
            Value::from("user_data"),
            Value::Array(vec![Value::Binary(user_data)]),
        ),
    ]);
    let [record] = records(&compress(&message)).try_into().unwrap();
    assert_eq!(record.annotations[0].choices, ["f4", "int", "yes"]);
    assert_eq!(record.json, r#"{"text":"a","meta":{"source":"x"}}"#);
}

#[test]
fn bytes_that_are_not_a_docbin_end_the_import() {
    let not = |bytes: &[u8]| match read(bytes, Limits::default()) {
        Err(ImportError::NotDocBin(reason)) => reason,
        other => panic!("expected NotDocBin, got {other:?}"),
    };
    assert!(not(b"{\"text\": \"hi\"}").contains("zlib"));
    let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    zlib.write_all(&[0x92, 0x01]).unwrap();
    let truncated = not(&zlib.finish().unwrap());
    assert!(truncated.contains("not msgpack"), "{truncated}");
    assert!(not(&compress(&Value::from(3))).contains("not a map"));
    let short = Value::Map(vec![
        (Value::from("attrs"), Value::Array(vec![ORTH.into()])),
        (Value::from("tokens"), Value::Binary(vec![0; 8])),
        (Value::from("spaces"), Value::Binary(vec![0; 2])),
        (
            Value::from("lengths"),
            Value::Binary(2i32.to_le_bytes().to_vec()),
        ),
        (Value::from("strings"), Value::Array(vec![])),
        (Value::from("cats"), Value::Array(vec![Value::Map(vec![])])),
    ]);
    assert!(not(&compress(&short)).contains("`tokens` holds 8 bytes"));
}
