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
mod tests;
