//! Export lines: Prodigy-compatible JSONL, CoNLL IOB2 blocks and flat Hugging Face JSONL.

use gloss_proto::v1::{Answer, BoundingBox as ImageBox, Decision, Interface, Span, Task, Token};
use serde_json::{json, Value};

use crate::check::{describe, is_image_interface, is_span_interface};
use crate::tokenize::{slice_chars, token_ending_at, token_starting_at, tokenize};

/// Why a record or answer could not be exported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExportError {
    /// The stored record does not parse as JSON.
    #[error("the record is not valid JSON: {0}")]
    InvalidJson(String),
    /// The stored record is JSON but not an object.
    #[error("the record is not a JSON object")]
    NotAnObject,
    /// The record has no `text` string to export.
    #[error("the record has no string field `text`")]
    MissingText,
    /// The input hash is too short or not hexadecimal.
    #[error("the input hash {0:?} does not start with 8 hex digits")]
    BadInputHash(String),
    /// Two spans overlap where the format cannot show that.
    #[error("spans {first} and {second} overlap; IOB tags cannot represent overlapping spans")]
    OverlappingSpans {
        /// The earlier span, as "start..end LABEL".
        first: String,
        /// The later span, as "start..end LABEL".
        second: String,
    },
}

/// One Prodigy-compatible JSON line (without the newline) for `answer` to the record
/// `record_json`: the record's own fields, including `meta`, plus Prodigy's underscore fields,
/// `answer` and the interface's label, choice or span fields.
///
/// An `_input_hash` or `_task_hash` the record carries is kept as it is. A missing one is Gloss's
/// own, not Prodigy's: `_input_hash` is the first 8 hex digits of `input_hash_hex` as a signed
/// 32-bit integer; `_task_hash` is the top 32 bits of the xxh3-64 hash of `input_hash_hex`, the
/// task name and the binary label (empty for other interfaces), NUL-separated, as a signed 32-bit
/// integer.
pub fn prodigy_line(
    task: &Task,
    record_json: &str,
    input_hash_hex: &str,
    answer: &Answer,
) -> Result<String, ExportError> {
    let mut record = match serde_json::from_str::<Value>(record_json) {
        Ok(Value::Object(map)) => map,
        Ok(_) => return Err(ExportError::NotAnObject),
        Err(e) => return Err(ExportError::InvalidJson(e.to_string())),
    };
    let interface = task.interface();
    let text = match record.get("text") {
        Some(Value::String(text)) => text.clone(),
        _ if is_image_interface(interface) => String::new(),
        _ => return Err(ExportError::MissingText),
    };
    let input_hash = prodigy_hash(input_hash_hex)?;
    let binary_label = if interface == Interface::Binary {
        answer.label.as_str()
    } else {
        ""
    };
    // NUL separators keep ("ab", "c") and ("a", "bc") from hashing alike.
    let task_key = [input_hash_hex, &task.name, binary_label].join("\0");
    let task_hash = (xxhash_rust::xxh3::xxh3_64(task_key.as_bytes()) >> 32) as u32 as i32;
    let annotator_id = format!("{}-{}", task.name, answer.annotator);
    let session_id = if answer.session_id.is_empty() {
        annotator_id.clone()
    } else {
        answer.session_id.clone()
    };

    // Hashes the imported record already carries (Prodigy's own, as a rule) are kept: a team's
    // existing dedupe sets hold those, and ours are computed differently, so they would never
    // match. Ours only fill in a hash the record lacks.
    record
        .entry("_input_hash")
        .or_insert_with(|| json!(input_hash));
    record
        .entry("_task_hash")
        .or_insert_with(|| json!(task_hash));
    let mut set = |key: &str, value: Value| {
        record.insert(key.to_owned(), value);
    };
    set("_annotator_id", json!(annotator_id));
    set("_session_id", json!(session_id));
    set("_timestamp", json!(answer.at_ms.div_euclid(1000)));
    set("_view_id", json!(view_id(interface)));
    set("answer", json!(decision_name(answer)));
    match interface {
        Interface::Binary => set("label", json!(answer.label)),
        Interface::Choice | Interface::MultiChoice | Interface::ImageChoice => {
            let options: Vec<Value> = task
                .labels
                .iter()
                .map(|l| json!({"id": l, "text": l}))
                .collect();
            set("options", Value::Array(options));
            set("accept", json!(answer.choices));
        }
        Interface::Ner | Interface::NerCorrect | Interface::Spans | Interface::Relations => {
            let tokens = tokenize(&text);
            let token_values: Vec<Value> = tokens
                .iter()
                .map(|t| {
                    json!({"text": t.text, "start": t.start, "end": t.end, "id": t.id, "ws": t.ws})
                })
                .collect();
            let spans: Vec<Value> = answer
                .spans
                .iter()
                .map(|s| prodigy_span(&text, &tokens, s))
                .collect();
            if interface == Interface::Relations {
                set("relations", Value::Array(prodigy_relations(answer, &spans)));
            }
            set("tokens", Value::Array(token_values));
            set("spans", Value::Array(spans));
        }
        Interface::ImageBoxes => {
            set(
                "spans",
                Value::Array(answer.boxes.iter().map(prodigy_box).collect()),
            );
        }
        Interface::Unspecified => {}
    }
    Ok(Value::Object(record).to_string())
}

/// A box the way Prodigy's image interface writes a rectangle: its corners as `points`, and
/// `x`, `y`, `width`, `height`.
fn prodigy_box(b: &ImageBox) -> Value {
    let (x0, y0, x1, y1) = (b.x, b.y, b.x + b.width, b.y + b.height);
    json!({
        "label": b.label,
        "type": "rect",
        "points": [[x0, y0], [x0, y1], [x1, y1], [x1, y0]],
        "x": b.x,
        "y": b.y,
        "width": b.width,
        "height": b.height,
        "center": [x0 + b.width / 2.0, y0 + b.height / 2.0],
    })
}

/// An image of a COCO document.
#[derive(Debug, Clone, PartialEq)]
pub struct CocoImage {
    /// The image's file name: the record's path, or `<digest>.<ext>` for an inline image.
    pub file_name: String,
    pub width: u32,
    pub height: u32,
    /// The example's position in its dataset.
    pub seq: u64,
}

/// One COCO object-detection document (`images`, `annotations`, `categories`) for an
/// image-boxes task: an image per example, an annotation per box of each answer (its annotator
/// named), a category per label in the task's order. Ids count from 1.
pub fn coco_document(task: &Task, items: &[(CocoImage, Vec<Answer>)]) -> String {
    let categories: Vec<Value> = task
        .labels
        .iter()
        .enumerate()
        .map(|(i, l)| json!({"id": i + 1, "name": l, "supercategory": ""}))
        .collect();
    let mut images = Vec::with_capacity(items.len());
    let mut annotations = Vec::new();
    for (i, (image, answers)) in items.iter().enumerate() {
        let image_id = i + 1;
        images.push(json!({
            "id": image_id,
            "file_name": image.file_name,
            "width": image.width,
            "height": image.height,
            "seq": image.seq,
        }));
        for answer in answers {
            for b in &answer.boxes {
                let Some(category) = task.labels.iter().position(|l| *l == b.label) else {
                    continue; // checked when answered; a label since removed has no category
                };
                let (x1, y1) = (b.x + b.width, b.y + b.height);
                annotations.push(json!({
                    "id": annotations.len() + 1,
                    "image_id": image_id,
                    "category_id": category + 1,
                    "bbox": [b.x, b.y, b.width, b.height],
                    "area": b.width * b.height,
                    "iscrowd": 0,
                    "segmentation": [[b.x, b.y, x1, b.y, x1, y1, b.x, y1]],
                    "annotator": answer.annotator,
                }));
            }
        }
    }
    json!({
        "info": {"description": format!("{}/{}", task.project, task.name)},
        "images": images,
        "annotations": annotations,
        "categories": categories,
    })
    .to_string()
}

/// A CoNLL block for `text`: one `TOKEN\tTAG` line per token with IOB2 tags, then a blank line.
///
/// Fails when two spans overlap, since IOB2 has no way to show that.
pub fn conll_block(text: &str, spans: &[Span]) -> Result<String, ExportError> {
    let mut sorted: Vec<&Span> = spans.iter().filter(|s| s.start < s.end).collect();
    sorted.sort_by_key(|s| (s.start, s.end, &s.label));
    // Sorted by start, any overlap shows up between neighbours.
    if let Some(pair) = sorted.windows(2).find(|p| p[1].start < p[0].end) {
        return Err(ExportError::OverlappingSpans {
            first: describe(pair[0]),
            second: describe(pair[1]),
        });
    }
    let tokens = tokenize(text);
    let tags = iob_tags(&tokens, &sorted);
    let mut block = String::new();
    for (token, tag) in tokens.iter().zip(tags) {
        // The tokeniser drops whitespace-only segments, but a segment such as a tab followed by
        // a combining mark still holds whitespace; it must not break the line/column layout.
        let cell: String = token
            .text
            .chars()
            .map(|c| if c.is_whitespace() { '_' } else { c })
            .collect();
        block.push_str(&cell);
        block.push('\t');
        block.push_str(&tag);
        block.push('\n');
    }
    block.push('\n');
    Ok(block)
}

/// One flat JSON line (without the newline) for Hugging Face `datasets`: the same keys with the
/// same types on every line of every interface, and no nulls.
///
/// Keys: `text`, `input_hash`, `annotator`, `answer`, `label` (binary label or the single choice,
/// else ""), `labels` (choices), `spans` ([{start, end, label}]), `relations` ([{head, child,
/// label}], `head` and `child` indexing `spans`; empty outside relations tasks), `tokens` and
/// `ner_tags` (IOB2; both empty for non-span interfaces; of overlapping spans the
/// earlier-starting, then longer, one is tagged), `image` (the record's image as exported: a data
/// URI or the file's path; "" for text) and `boxes` ([{x, y, width, height, label}]).
pub fn hf_line(
    task: &Task,
    text: &str,
    image: &str,
    input_hash_hex: &str,
    answer: &Answer,
) -> String {
    let interface = task.interface();
    let label = match interface {
        Interface::Binary => answer.label.clone(),
        Interface::Choice | Interface::ImageChoice if answer.choices.len() == 1 => {
            answer.choices[0].clone()
        }
        _ => String::new(),
    };
    let boxes: Vec<Value> = answer
        .boxes
        .iter()
        .map(
            |b| json!({"x": b.x, "y": b.y, "width": b.width, "height": b.height, "label": b.label}),
        )
        .collect();
    let spans: Vec<Value> = answer
        .spans
        .iter()
        .map(|s| json!({"start": s.start, "end": s.end, "label": s.label}))
        .collect();
    let relations: Vec<Value> = answer
        .relations
        .iter()
        .map(|r| json!({"head": r.head, "child": r.child, "label": r.label}))
        .collect();
    let (tokens, ner_tags) = if is_span_interface(interface) {
        let tokens = tokenize(text);
        let tags = iob_tags(&tokens, &without_overlaps(&answer.spans));
        (tokens.into_iter().map(|t| t.text).collect(), tags)
    } else {
        (Vec::new(), Vec::new())
    };
    json!({
        "text": text,
        "input_hash": input_hash_hex,
        "annotator": answer.annotator,
        "answer": decision_name(answer),
        "label": label,
        "labels": answer.choices,
        "spans": spans,
        "relations": relations,
        "tokens": tokens,
        "ner_tags": ner_tags,
        "image": image,
        "boxes": boxes,
    })
    .to_string()
}

/// A Prodigy-shaped signed 32-bit hash from the first 4 bytes (8 hex digits) of our hex hash.
fn prodigy_hash(hex: &str) -> Result<i32, ExportError> {
    hex.get(..8)
        .filter(|head| head.bytes().all(|b| b.is_ascii_hexdigit()))
        .and_then(|head| u32::from_str_radix(head, 16).ok())
        .map(|v| v as i32)
        .ok_or_else(|| ExportError::BadInputHash(hex.to_owned()))
}

/// A span as Prodigy writes it; token indices and text come from the text when the span is on
/// token boundaries, else from what the answer stored.
fn prodigy_span(text: &str, tokens: &[Token], span: &Span) -> Value {
    let token_start =
        token_starting_at(tokens, span.start).map_or(span.token_start, |i| tokens[i].id);
    let token_end = token_ending_at(tokens, span.end).map_or(span.token_end, |i| tokens[i].id);
    let covered = slice_chars(text, span.start, span.end);
    let covered = if covered.is_empty() {
        span.text.clone()
    } else {
        covered
    };
    json!({
        "start": span.start,
        "end": span.end,
        "label": span.label,
        "token_start": token_start,
        "token_end": token_end,
        "text": covered,
    })
}

/// Relations as Prodigy writes them: `head` and `child` are the last token of each end's span,
/// `head_span` and `child_span` the spans themselves (without their text), then the label.
fn prodigy_relations(answer: &Answer, spans: &[Value]) -> Vec<Value> {
    answer
        .relations
        .iter()
        .filter_map(|r| {
            let end = |i: u32| -> Option<Value> {
                let mut span = spans.get(i as usize)?.clone();
                span.as_object_mut()?.remove("text");
                Some(span)
            };
            let (head_span, child_span) = (end(r.head)?, end(r.child)?);
            Some(json!({
                "head": head_span["token_end"],
                "child": child_span["token_end"],
                "head_span": head_span,
                "child_span": child_span,
                "label": r.label,
            }))
        })
        .collect()
}

/// IOB2 tags for `tokens` from non-overlapping `spans`: a span tags every token it touches, and
/// a token already tagged keeps its tag.
fn iob_tags(tokens: &[Token], spans: &[&Span]) -> Vec<String> {
    let mut tags: Vec<Option<String>> = vec![None; tokens.len()];
    for span in spans {
        let first = tokens.partition_point(|t| t.end <= span.start);
        let mut inside = false;
        for i in first..tokens.len() {
            if tokens[i].start >= span.end {
                break;
            }
            if tags[i].is_none() {
                let prefix = if inside { "I" } else { "B" };
                tags[i] = Some(format!("{prefix}-{}", span.label));
            }
            inside = true;
        }
    }
    tags.into_iter()
        .map(|t| t.unwrap_or_else(|| "O".to_owned()))
        .collect()
}

/// Drops spans that overlap an earlier-starting (or, at the same start, longer) kept span.
fn without_overlaps(spans: &[Span]) -> Vec<&Span> {
    let mut sorted: Vec<&Span> = spans.iter().filter(|s| s.start < s.end).collect();
    sorted.sort_by(|a, b| (a.start, b.end, &a.label).cmp(&(b.start, a.end, &b.label)));
    let mut kept: Vec<&Span> = Vec::with_capacity(sorted.len());
    for span in sorted {
        if kept.last().is_none_or(|k| span.start >= k.end) {
            kept.push(span);
        }
    }
    kept
}

fn view_id(interface: Interface) -> &'static str {
    match interface {
        Interface::Binary => "classification",
        Interface::Choice | Interface::MultiChoice => "choice",
        Interface::Ner | Interface::NerCorrect => "ner_manual",
        Interface::Spans => "spans_manual",
        Interface::Relations => "relations",
        Interface::ImageBoxes => "image_manual",
        Interface::ImageChoice => "choice",
        Interface::Unspecified => "text",
    }
}

fn decision_name(answer: &Answer) -> &'static str {
    match answer.decision() {
        Decision::Accept => "accept",
        Decision::Reject => "reject",
        Decision::Ignore => "ignore",
        Decision::Unspecified => "",
    }
}

#[cfg(test)]
mod tests {
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
        let map =
            parse(&prodigy_line(&t, r#"{"text":"x"}"#, HASH, &answer(Decision::Reject)).unwrap());
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
}
