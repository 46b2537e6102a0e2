use std::io::{self, Read};

use gloss_import::{input_hash, Format, ImportError, Item, Limits, Parser, Record, RecordError};

fn parse_with(input: &[u8], format: Format, limits: Limits) -> Vec<Item> {
    Parser::new(input, format, limits)
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn parse(input: &[u8], format: Format) -> Vec<Item> {
    parse_with(input, format, Limits::default())
}

fn csv(input: &[u8]) -> Vec<Item> {
    parse(input, Format::parse_name("csv", None).unwrap())
}

fn valid(items: Vec<Item>) -> Vec<Record> {
    items
        .into_iter()
        .map(|item| match item {
            Item::Record(record) => record,
            Item::Invalid(error) => panic!("unexpected error: {error}"),
        })
        .collect()
}

/// The single error in `items`, which must sit on `line` and blame `field`.
#[track_caller]
fn the_error(items: Vec<Item>, line: u64, field: Option<&str>) -> RecordError {
    let errors: Vec<_> = items
        .into_iter()
        .filter_map(|item| match item {
            Item::Invalid(error) => Some(error),
            Item::Record(_) => None,
        })
        .collect();
    let [error] = &errors[..] else {
        panic!("expected exactly one error, got {errors:?}")
    };
    assert_eq!(
        (error.line, error.field.as_deref()),
        (line, field),
        "{error}"
    );
    assert!(
        error.to_string().starts_with(&format!("line {line}: ")),
        "{error}"
    );
    error.clone()
}

/// JSONL with one valid line first, so the bad record sits on line 2.
#[track_caller]
fn bad_jsonl(record: &str, field: Option<&str>, reason: &str) {
    let input = format!("{{\"text\":\"fine\"}}\n{record}\n{{\"text\":\"after\"}}\n");
    let items = parse(input.as_bytes(), Format::Jsonl);
    assert_eq!(items.len(), 3, "parsing continues after a bad record");
    let error = the_error(items, 2, field);
    assert!(error.reason.contains(reason), "{error}");
}

#[test]
fn display_names_line_field_and_reason() {
    let text = "x".repeat(80);
    let input = format!(
        "\n\n\n\n\n\n{{\"text\":\"{text}\",\"spans\":[{{\"start\":0,\"end\":1}},{{\"start\":2,\"end\":84}}]}}\n"
    );
    let error = the_error(
        parse(input.as_bytes(), Format::Jsonl),
        7,
        Some("spans[1].end"),
    );
    assert_eq!(
        error.to_string(),
        "line 7: field `spans[1].end`: 84 is past the end of the text (80 characters)"
    );
    let error = the_error(
        parse(b"{\"text\":\"a\"}\n\n{oops\n", Format::Jsonl),
        3,
        None,
    );
    assert!(
        error.to_string().starts_with("line 3: not valid JSON: "),
        "{error}"
    );
}

#[test]
fn jsonl_over_size_limit() {
    let limits = Limits {
        max_record_bytes: 64,
        ..Limits::default()
    };
    let big = format!("{{\"text\":\"{}\"}}", "a".repeat(990));
    let input = format!("{{\"text\":\"ok\"}}\n{big}\r\n{{\"text\":\"next\"}}\n");
    let items = parse_with(input.as_bytes(), Format::Jsonl, limits);
    assert_eq!(items.len(), 3);
    let error = the_error(items, 2, None);
    assert_eq!(
        error.reason,
        "record is over the size limit of 64 bytes (at least 1001 bytes)"
    );
    // A line of exactly the limit is fine, with or without "\r".
    let exact = format!("{{\"text\":\"{}\"}}", "b".repeat(53));
    assert_eq!(exact.len(), 64);
    let input = format!("{exact}\n{exact}\r\n");
    assert_eq!(
        valid(parse_with(input.as_bytes(), Format::Jsonl, limits)).len(),
        2
    );
}

/// `{"text":"aaaa…"}` of `len` bytes, then `tail`, generated on the fly.
struct HugeLine {
    sent: usize,
    len: usize,
    tail: io::Cursor<&'static [u8]>,
}

impl Read for HugeLine {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        const HEAD: &[u8] = b"{\"text\":\"";
        if self.sent == self.len {
            return self.tail.read(out);
        }
        let n = (self.len - self.sent).min(out.len());
        for (i, byte) in out[..n].iter_mut().enumerate() {
            let pos = self.sent + i;
            *byte = match pos {
                _ if pos < HEAD.len() => HEAD[pos],
                _ if pos == self.len - 2 => b'"',
                _ if pos == self.len - 1 => b'}',
                _ => b'a',
            };
        }
        self.sent += n;
        Ok(n)
    }
}

#[test]
fn jsonl_line_far_over_the_limit_is_skipped() {
    let len = 48 << 20;
    let huge = HugeLine {
        sent: 0,
        len,
        tail: io::Cursor::new(b"\n{\"text\":\"small\"}\n"),
    };
    let items: Vec<_> = Parser::new(huge, Format::Jsonl, Limits::default())
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(items.len(), 2);
    assert!(matches!(&items[1], Item::Record(r) if r.text == "small" && r.line == 2));
    let error = the_error(items, 1, None);
    assert_eq!(
        error.reason,
        format!("record is over the size limit of 1048576 bytes (at least {len} bytes)")
    );
}

#[test]
fn invalid_utf8_reports_byte_offset() {
    let input = b"{\"text\":\"ok\"}\n{\"text\":\"ab\xffc\"}\n";
    let error = the_error(parse(input, Format::Jsonl), 2, None);
    assert_eq!(
        error.reason,
        "not valid UTF-8 (first bad byte at offset 11)"
    );
    let error = the_error(parse(b"fine\n\xc3(\n", Format::Text), 2, None);
    assert_eq!(error.reason, "not valid UTF-8 (first bad byte at offset 0)");
}

#[test]
fn not_json() {
    bad_jsonl("{\"text\": \"unterminated}", None, "not valid JSON: ");
}

#[test]
fn json_but_not_an_object() {
    bad_jsonl("[\"text\"]", None, "expected a JSON object, found an array");
    bad_jsonl("\"text\"", None, "expected a JSON object, found a string");
}

#[test]
fn text_missing_wrong_type_or_blank() {
    bad_jsonl("{\"meta\":{}}", Some("text"), "is missing");
    bad_jsonl(
        "{\"text\":42}",
        Some("text"),
        "expected a string, found a number",
    );
    bad_jsonl(
        "{\"text\":\"\"}",
        Some("text"),
        "is empty or only whitespace",
    );
    bad_jsonl(
        "{\"text\":\" \\n\\t \"}",
        Some("text"),
        "is empty or only whitespace",
    );
}

#[test]
fn meta_must_be_an_object() {
    bad_jsonl(
        "{\"text\":\"t\",\"meta\":[1]}",
        Some("meta"),
        "expected an object, found an array",
    );
}

#[test]
fn spans_are_checked_in_characters() {
    // 11 characters, 13 bytes: offsets count Unicode scalar values.
    let ok = "{\"text\":\"héllo wörld\",\"spans\":[{\"start\":0,\"end\":5,\"label\":\"A\"},{\"start\":6,\"end\":11}]}";
    assert_eq!(valid(parse(ok.as_bytes(), Format::Jsonl)).len(), 1);
    let t = "\"text\":\"héllo wörld\"";
    bad_jsonl(
        &format!("{{{t},\"spans\":{{}}}}"),
        Some("spans"),
        "expected an array, found an object",
    );
    bad_jsonl(
        &format!("{{{t},\"spans\":[{{\"start\":0,\"end\":1}},3]}}"),
        Some("spans[1]"),
        "expected an object",
    );
    bad_jsonl(
        &format!("{{{t},\"spans\":[{{\"end\":1}}]}}"),
        Some("spans[0].start"),
        "is missing",
    );
    bad_jsonl(
        &format!("{{{t},\"spans\":[{{\"start\":-1,\"end\":1}}]}}"),
        Some("spans[0].start"),
        "expected a non-negative integer, found -1",
    );
    bad_jsonl(
        &format!("{{{t},\"spans\":[{{\"start\":0,\"end\":\"3\"}}]}}"),
        Some("spans[0].end"),
        "found a string",
    );
    bad_jsonl(
        &format!("{{{t},\"spans\":[{{\"start\":4,\"end\":4}}]}}"),
        Some("spans[0]"),
        "start 4 is not before end 4",
    );
    bad_jsonl(
        &format!("{{{t},\"spans\":[{{\"start\":0,\"end\":13}}]}}"),
        Some("spans[0].end"),
        "13 is past the end of the text (11 characters)",
    );
    bad_jsonl(
        &format!("{{{t},\"spans\":[{{\"start\":0,\"end\":1,\"label\":\"\"}}]}}"),
        Some("spans[0].label"),
        "empty",
    );
    bad_jsonl(
        &format!("{{{t},\"spans\":[{{\"start\":0,\"end\":1,\"label\":7}}]}}"),
        Some("spans[0].label"),
        "expected a string, found a number",
    );
}

#[test]
fn tokens_are_checked() {
    let ok = "{\"text\":\"a b\",\"tokens\":[{\"text\":\"a\",\"start\":0,\"end\":1,\"id\":0,\"ws\":true},{\"start\":2,\"end\":3}]}";
    assert_eq!(valid(parse(ok.as_bytes(), Format::Jsonl)).len(), 1);
    bad_jsonl(
        "{\"text\":\"a b\",\"tokens\":7}",
        Some("tokens"),
        "expected an array, found a number",
    );
    bad_jsonl(
        "{\"text\":\"a b\",\"tokens\":[{\"start\":2,\"end\":1}]}",
        Some("tokens[0]"),
        "start 2 is after end 1",
    );
    bad_jsonl(
        "{\"text\":\"a b\",\"tokens\":[{\"start\":2,\"end\":4}]}",
        Some("tokens[0].end"),
        "4 is past the end",
    );
    bad_jsonl(
        "{\"text\":\"a b\",\"tokens\":[{\"start\":0,\"end\":1,\"id\":\"x\"}]}",
        Some("tokens[0].id"),
        "found a string",
    );
    bad_jsonl(
        "{\"text\":\"a b\",\"tokens\":[{\"start\":0,\"end\":1,\"ws\":1}]}",
        Some("tokens[0].ws"),
        "expected a boolean",
    );
}

#[test]
fn top_level_label_must_be_a_string() {
    bad_jsonl(
        "{\"text\":\"t\",\"label\":[\"A\"]}",
        Some("label"),
        "expected a string, found an array",
    );
}

#[test]
fn options_need_ids() {
    let ok = "{\"text\":\"t\",\"options\":[{\"id\":1,\"text\":\"one\"},{\"id\":\"two\"}]}";
    assert_eq!(valid(parse(ok.as_bytes(), Format::Jsonl)).len(), 1);
    bad_jsonl(
        "{\"text\":\"t\",\"options\":{}}",
        Some("options"),
        "expected an array",
    );
    bad_jsonl(
        "{\"text\":\"t\",\"options\":[\"a\"]}",
        Some("options[0]"),
        "expected an object, found a string",
    );
    bad_jsonl(
        "{\"text\":\"t\",\"options\":[{\"id\":1},{\"text\":\"b\"}]}",
        Some("options[1].id"),
        "is missing",
    );
    bad_jsonl(
        "{\"text\":\"t\",\"options\":[{\"id\":null}]}",
        Some("options[0].id"),
        "expected a string or number, found null",
    );
}

#[test]
fn jsonl_round_trip_keeps_every_field_in_order() {
    let lines = [
        r#"{"_input_hash":-123,"text":"Hello","zeta":1,"answer":"accept","_task_hash":987654321,"alpha":{"z":[1,2.5,null,true],"a":"b"},"spans":[{"start":0,"end":5,"label":"GREETING","extra":"kept"}]}"#,
        r#"{"meta":{"source":"x"},"text":"second \"quoted\" \u0001 é"}"#,
    ];
    let input = format!("{}\n{}\n", lines[0], lines[1]);
    let records = valid(parse(input.as_bytes(), Format::Jsonl));
    assert_eq!(records[0].json, lines[0]);
    assert_eq!(records[1].json, lines[1]);
    assert_eq!(records[1].text, "second \"quoted\" \u{1} é");
    // The record is kept as written: spacing, number spellings and huge integers survive.
    let spaced =
        r#"{ "b" : 1.50 , "text" : "t" , "a" : [ 1e3 , 123456789012345678901234567890 ] }"#;
    assert_eq!(
        valid(parse(format!("  {spaced}\t\r\n").as_bytes(), Format::Jsonl))[0].json,
        spaced
    );
}

#[test]
fn blank_lines_are_skipped_but_counted() {
    let input = b"\n  \t\n{\"text\":\"a\"}\n\r\n\n{\"text\":\"b\"}";
    let lines: Vec<_> = valid(parse(input, Format::Jsonl))
        .iter()
        .map(|r| r.line)
        .collect();
    assert_eq!(lines, [3, 6]);
}

#[test]
fn crlf_lines() {
    let records = valid(parse(
        b"{\"text\":\"a\"}\r\n{\"text\":\"b\"}\r\n",
        Format::Jsonl,
    ));
    assert_eq!(
        (records[1].line, records[1].json.as_str()),
        (2, r#"{"text":"b"}"#)
    );
    let records = valid(parse(b"one\r\n\r\ntwo \r\n", Format::Text));
    let got: Vec<_> = records.iter().map(|r| (r.line, r.text.as_str())).collect();
    assert_eq!(got, [(1, "one"), (3, "two ")]);
    let records = valid(csv(b"id,text\r\n1,\"a\r\nb\"\r\n2,c\r\n"));
    let got: Vec<_> = records.iter().map(|r| (r.line, r.text.as_str())).collect();
    assert_eq!(got, [(2, "a\r\nb"), (4, "c")]);
    let records = valid(csv(b"text,id\r\n\r\n\r\nx,1\r\n\r\n\"y\ny\",2\r\n\"z\",3"));
    let got: Vec<_> = records.iter().map(|r| (r.line, r.text.as_str())).collect();
    assert_eq!(got, [(4, "x"), (6, "y\ny"), (8, "z")]);
}

#[test]
fn text_format() {
    let records = valid(parse(
        "first line\n\n  \n \"quoted\"\ttab\nlast".as_bytes(),
        Format::Text,
    ));
    let got: Vec<_> = records
        .iter()
        .map(|r| (r.line, r.text.as_str(), r.json.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (1, "first line", r#"{"text":"first line"}"#),
            (4, " \"quoted\"\ttab", r#"{"text":" \"quoted\"\ttab"}"#),
            (5, "last", r#"{"text":"last"}"#),
        ]
    );
}

#[test]
fn bom_is_stripped() {
    let records = valid(parse(b"\xEF\xBB\xBF{\"text\":\"a\"}\n", Format::Jsonl));
    assert_eq!(records[0].json, r#"{"text":"a"}"#);
    let records = valid(csv(b"\xEF\xBB\xBFtext,n\nhi,1\n"));
    assert_eq!(records[0].json, r#"{"text":"hi","meta":{"n":"1"}}"#);
    let records = valid(parse(b"\xEF\xBB\xBFhi\n", Format::Text));
    assert_eq!(records[0].text, "hi");
}

#[test]
fn csv_records_and_quoted_newlines() {
    let input =
        b"id,text,source\n1,\"multi\nline\n\"\"text\"\"\",web\n2,plain,\"a,b\"\n\n3,\"x\",\n";
    let records = valid(csv(input));
    let got: Vec<_> = records
        .iter()
        .map(|r| (r.line, r.text.as_str(), r.json.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (
                2,
                "multi\nline\n\"text\"",
                r#"{"text":"multi\nline\n\"text\"","meta":{"id":"1","source":"web"}}"#
            ),
            (
                5,
                "plain",
                r#"{"text":"plain","meta":{"id":"2","source":"a,b"}}"#
            ),
            (7, "x", r#"{"text":"x","meta":{"id":"3","source":""}}"#),
        ]
    );
    let records = valid(csv(b"text\nonly\n"));
    assert_eq!(records[0].json, r#"{"text":"only"}"#);
}

#[test]
fn csv_line_numbers_across_read_buffers() {
    let mut input = String::from("id,text\n");
    let mut expected = Vec::new();
    let mut line = 2;
    for i in 0..60_000u64 {
        let newlines = (i % 4) as usize;
        let text = format!("row {i}{}", "\n".repeat(newlines));
        input.push_str(&format!(
            "{i},\"{text}\"{}",
            if i % 3 == 0 { "\r\n" } else { "\n" }
        ));
        expected.push((line, text));
        line += 1 + newlines as u64;
        if i % 5 == 0 {
            input.push('\n');
            line += 1;
        }
    }
    assert!(input.len() > 3 * 256 * 1024);
    let got: Vec<_> = valid(csv(input.as_bytes()))
        .into_iter()
        .map(|r| (r.line, r.text))
        .collect();
    assert_eq!(got, expected);
    // Short reads put a read boundary at every possible place in a row.
    let trickle = Trickle {
        data: input.as_bytes(),
        step: 0,
    };
    let parser = Parser::new(
        trickle,
        Format::parse_name("csv", None).unwrap(),
        Limits::default(),
    );
    let got: Vec<_> = valid(parser.unwrap().map(Result::unwrap).collect())
        .into_iter()
        .map(|r| (r.line, r.text))
        .collect();
    assert_eq!(got, expected);
}

/// Hands out 1 to 7 bytes per read.
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        self.step += 1;
        let n = (self.step % 7 + 1).min(out.len()).min(self.data.len());
        out[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

#[test]
fn tsv_with_custom_text_column() {
    let format = Format::parse_name("TSV", Some("body")).unwrap();
    assert_eq!(
        format,
        Format::Csv {
            delimiter: b'\t',
            text_column: "body".into()
        }
    );
    let records = valid(parse(b"body\tlang\nhello, world\ten\n", format));
    assert_eq!(
        records[0].json,
        r#"{"text":"hello, world","meta":{"lang":"en"}}"#
    );
}

#[test]
fn csv_empty_text_cell() {
    let error = the_error(csv(b"text,id\nok,1\n  ,2\nfine,3\n"), 3, Some("text"));
    assert_eq!(error.reason, "is empty or only whitespace");
}

#[test]
fn csv_wrong_field_count() {
    let items = csv(b"text,id\nok,1\nshort\ntoo,many,fields\nfine,3\n");
    assert_eq!(items.len(), 4);
    let errors: Vec<_> = items
        .into_iter()
        .filter_map(|item| match item {
            Item::Invalid(e) => Some(e.to_string()),
            Item::Record(_) => None,
        })
        .collect();
    assert_eq!(
        errors,
        [
            "line 3: has 1 fields but the header has 2",
            "line 4: has 3 fields but the header has 2"
        ]
    );
}

#[test]
fn csv_size_limit_and_bad_utf8() {
    let limits = Limits {
        max_record_bytes: 8,
        ..Limits::default()
    };
    let items = parse_with(
        b"text,id\nshort,1\nmuch too long,2\n",
        Format::parse_name("csv", None).unwrap(),
        limits,
    );
    let error = the_error(items, 3, None);
    assert_eq!(
        error.reason,
        "record is over the size limit of 8 bytes (at least 14 bytes)"
    );
    let error = the_error(csv(b"text,id\nok,1\nok,\"a\xffb\"\n"), 3, Some("id"));
    assert_eq!(error.reason, "not valid UTF-8 (first bad byte at offset 1)");
}

#[test]
fn csv_row_far_over_the_limit_is_fatal() {
    let mut input = b"text\nok\n\"".to_vec();
    input.resize(input.len() + (4 << 20), b'x');
    input.extend_from_slice(b"\"\nnever\n");
    let limits = Limits {
        max_record_bytes: 1024,
        ..Limits::default()
    };
    let mut parser =
        Parser::new(&input[..], Format::parse_name("csv", None).unwrap(), limits).unwrap();
    assert!(matches!(parser.next(), Some(Ok(Item::Record(r))) if r.text == "ok"));
    let error = parser.next().unwrap().unwrap_err();
    assert!(
        matches!(
            error,
            ImportError::RecordTooLarge {
                line: 3,
                limit: 1024
            }
        ),
        "{error}"
    );
    assert!(parser.next().is_none());
}

#[test]
fn csv_header_errors_are_fatal() {
    let format = Format::parse_name("csv", Some("content")).unwrap();
    let error = Parser::new(&b"id,text\n1,a\n"[..], format.clone(), Limits::default())
        .err()
        .unwrap();
    assert_eq!(
        error.to_string(),
        "the CSV header has no `content` column (its columns are: `id`, `text`)"
    );
    assert!(matches!(
        Parser::new(&b""[..], format.clone(), Limits::default()),
        Err(ImportError::EmptyCsv)
    ));
    let error = Parser::new(&b"id,te\xffxt\n"[..], format, Limits::default())
        .err()
        .unwrap();
    assert!(matches!(error, ImportError::Header(_)), "{error}");
}

#[test]
fn read_errors_end_the_stream() {
    /// Yields its data, then fails.
    struct Failing(io::Cursor<&'static [u8]>);
    impl Read for Failing {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            match self.0.read(out)? {
                0 => Err(io::Error::other("disk on fire")),
                n => Ok(n),
            }
        }
    }
    let mut parser = Parser::new(
        Failing(io::Cursor::new(b"{\"text\":\"a\"}\n{\"text\":")),
        Format::Jsonl,
        Limits::default(),
    )
    .unwrap();
    assert!(matches!(parser.next(), Some(Ok(Item::Record(_)))));
    let error = parser.next().unwrap().unwrap_err();
    assert_eq!(
        error.to_string(),
        "reading the import source failed: disk on fire"
    );
    assert!(parser.next().is_none());
}

#[test]
fn format_names() {
    assert_eq!(Format::parse_name("json", None).unwrap(), Format::Jsonl);
    assert_eq!(Format::parse_name("txt", None).unwrap(), Format::Text);
    assert_eq!(
        Format::parse_name("csv", None).unwrap(),
        Format::Csv {
            delimiter: b',',
            text_column: "text".into()
        }
    );
    assert!(
        matches!(Format::parse_name("xml", None), Err(ImportError::UnknownFormat(name)) if name == "xml")
    );
    assert_eq!(Limits::default().max_record_bytes, 1_048_576);
}

#[test]
fn input_hash_is_stable_and_content_addressed() {
    assert_eq!(input_hash("Hello, Gloss!"), PINNED);
    assert_eq!(input_hash("same text"), input_hash("same text"));
    assert_ne!(input_hash("same text"), input_hash("same text "));
    let input = b"{\"text\":\"same text\",\"a\":1}\n{\"text\":\"same text\",\"b\":2}\n";
    let records = valid(parse(input, Format::Jsonl));
    assert_eq!(records[0].input_hash, records[1].input_hash);
    assert_eq!(records[0].input_hash, input_hash("same text"));
    let from_csv = valid(csv(b"text,x\nsame text,1\n"));
    assert_eq!(from_csv[0].input_hash, input_hash("same text"));
}

/// Cross-checked against the reference implementation (python-xxhash `xxh3_128_intdigest`).
const PINNED: u128 = 63_842_351_259_018_451_381_954_949_228_826_630_051;

/// `cargo test --release -p gloss-import -- --ignored --nocapture throughput`
#[test]
#[ignore = "benchmark; run in release"]
fn throughput() {
    let line = r#"{"text":"The quick brown fox jumps over the lazy dog near the riverbank at dawn, while birds sing.","meta":{"source":"bench","id":12345},"spans":[{"start":4,"end":9,"label":"ADJ"}]}"#;
    let count = 1_000_000;
    let input = format!("{line}\n").repeat(count);
    let started = std::time::Instant::now();
    let parsed = Parser::new(input.as_bytes(), Format::Jsonl, Limits::default())
        .unwrap()
        .map(Result::unwrap)
        .count();
    let rate = count as f64 / started.elapsed().as_secs_f64();
    println!("{} bytes/record, {rate:.0} records/s", line.len());
    assert_eq!(parsed, count);
    if !cfg!(debug_assertions) {
        assert!(rate >= 300_000.0, "{rate:.0} records/s");
    }
    let row =
        "12345,The quick brown fox jumps over the lazy dog near the riverbank at dawn.,bench,en\n";
    let input = format!("id,text,source,lang\n{}", row.repeat(count));
    let started = std::time::Instant::now();
    let parsed = valid(csv(input.as_bytes())).len();
    let rate = count as f64 / started.elapsed().as_secs_f64();
    println!("CSV: {} bytes/row, {rate:.0} rows/s", row.len());
    assert_eq!(parsed, count);
}
