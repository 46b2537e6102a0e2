//! Prodigy answer JSONL, as `prodigy db-out` writes it: one answered task per line.
//!
//! **One record per line, never grouped.** Prodigy stores one line per annotator and task, so
//! an example answered by three annotators is three records with the same text; the
//! coordinator merges them by input hash. Blank lines are skipped, as in a plain JSONL import.
//!
//! **Example and answer.** A line mixes the task Prodigy showed with what the annotator did.
//! The record's `json` (the example) keeps the task: `text`, `meta`, `tokens`, `options`,
//! `_input_hash`, `_task_hash`, `_view_id`, `config` and every field Gloss does not know, each
//! with the bytes it was written with (the object is rewritten without whitespace between
//! members). It drops what belongs to one annotator's answer, which would otherwise be stored
//! as the example of whichever annotator came first: `answer`, `accept`, `spans`, `label`,
//! `relations`, `flagged`, `_annotator_id`, `_session_id` and `_timestamp`. `label` and `spans`
//! go with the answer even where a recipe suggested them (`textcat.teach`, `ner.teach`): the
//! annotator accepted or rejected that label or span, and in Gloss labels belong to the task.
//!
//! **The answer.** `answer` (`accept`, `reject` or `ignore`) is required. The annotator is
//! `_annotator_id`, else `_session_id` (Prodigy names them `dataset-name`; kept as written),
//! else empty. `label` is the binary label; `accept` lists the chosen option ids (strings, or
//! numbers written as strings), each of which must be an id in `options` when there are
//! options; `spans` are the entities, each with a `label`. Span offsets are Python string
//! indices, that is code points, as in Gloss, so they are taken as they are; `token_start` and
//! `token_end` are ignored (Gloss snaps spans to its own tokens), and a span's `text`, when
//! present, must be the text it covers. `relations` (as `rel.manual` writes them) name their ends
//! by `head_span` and `child_span`, each of which must be one of the line's `spans` (by start and
//! end); a task that is not a relations task refuses an answer with relations.
//!
//! **Source id.** `prodigy-<_task_hash>-<annotator>` (without the annotator when there is
//! none), else `prodigy-line-<n>`, so importing the same file twice records each answer once.
//!
//! Every other rule is the plain JSONL import's: the same size limit, UTF-8 and JSON checks,
//! and the same validation of `text`, `meta`, `label`, `spans`, `tokens` and `options`, with
//! errors naming the line and the field.

use std::io::Read;
use std::iter::FusedIterator;

use serde_json::{Map, Value};

use super::offsets::{quote, slice_chars};
use super::scan::without_members;
use super::{AnnotatedItem, AnnotatedRecord, Annotation, Decision, Relation, Span};
use crate::jsonl::{kind, problem, validate, Problem};
use crate::source::{Line, LineReader, Source};
use crate::{too_large, utf8_reason, ImportError, Limits, RecordError};

/// Top-level fields that belong to one annotator's answer, not to the example.
const ANSWER_FIELDS: [&str; 9] = [
    "answer",
    "accept",
    "spans",
    "label",
    "relations",
    "flagged",
    "_annotator_id",
    "_session_id",
    "_timestamp",
];

/// Reads Prodigy answer JSONL from `reader`: see the module's documentation.
pub fn read<R: Read>(reader: R, limits: Limits) -> Reader<R> {
    Reader {
        state: State::Fresh(reader),
        limits,
    }
}

/// Streaming reader of Prodigy answers; yields one [`AnnotatedItem`] per non-blank line, in
/// order, and stops after the first [`ImportError`].
pub struct Reader<R> {
    state: State<R>,
    limits: Limits,
}

enum State<R> {
    Fresh(R),
    Lines(LineReader<R>),
    Done,
}

impl<R: Read> Reader<R> {
    fn next_item(&mut self) -> Result<Option<AnnotatedItem>, ImportError> {
        if let State::Fresh(_) = self.state {
            let State::Fresh(reader) = std::mem::replace(&mut self.state, State::Done) else {
                return Ok(None);
            };
            self.state = State::Lines(LineReader::new(Source::new(reader)?));
        }
        let State::Lines(lines) = &mut self.state else {
            return Ok(None);
        };
        let max = self.limits.max_record_bytes;
        loop {
            let Some(outcome) = lines.next_line(max)? else {
                return Ok(None);
            };
            let line = lines.line;
            if let Line::TooLong { bytes } = outcome {
                let reason = too_large(max, bytes);
                return Ok(Some(AnnotatedItem::Invalid(RecordError {
                    line,
                    field: None,
                    reason,
                })));
            }
            let bytes = &lines.buf[..];
            if bytes.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let item = record(line, bytes);
            return Ok(Some(
                item.map_or_else(AnnotatedItem::Invalid, AnnotatedItem::Record),
            ));
        }
    }
}

impl<R: Read> Iterator for Reader<R> {
    type Item = Result<AnnotatedItem, ImportError>;

    fn next(&mut self) -> Option<Self::Item> {
        let next = self.next_item().transpose();
        if !matches!(next, Some(Ok(_))) {
            self.state = State::Done;
        }
        next
    }
}

impl<R: Read> FusedIterator for Reader<R> {}

/// Parses one non-blank line within the size limit.
fn record(line: u64, bytes: &[u8]) -> Result<AnnotatedRecord, RecordError> {
    let fail = |(field, reason): Problem| RecordError {
        line,
        field,
        reason,
    };
    let raw = std::str::from_utf8(bytes).map_err(|e| fail((None, utf8_reason(&e))))?;
    let value: Value =
        serde_json::from_str(raw).map_err(|e| fail((None, format!("not valid JSON: {e}"))))?;
    let Value::Object(map) = value else {
        let found = kind(&value);
        return Err(fail((
            None,
            format!("expected a JSON object, found {found}"),
        )));
    };
    if map.contains_key("image") {
        return Err(fail(problem(
            "image",
            "image answers cannot be imported; import the images as a dataset and annotate them in Gloss",
        )));
    }
    validate(&map).map_err(fail)?;
    let text = map.get("text").and_then(Value::as_str).unwrap_or_default();
    let annotation = annotation(line, &map, text).map_err(fail)?;
    Ok(AnnotatedRecord {
        line,
        text: text.to_owned(),
        json: without_members(raw, |key| ANSWER_FIELDS.contains(&key)),
        annotations: vec![annotation],
    })
}

/// The answer on a line whose example fields `validate` accepted.
fn annotation(line: u64, map: &Map<String, Value>, text: &str) -> Result<Annotation, Problem> {
    let decision = match map.get("answer") {
        None => {
            return Err(problem(
                "answer",
                "is missing (every line of a Prodigy answer file has one)",
            ))
        }
        Some(Value::String(answer)) => match answer.as_str() {
            "accept" => Decision::Accept,
            "reject" => Decision::Reject,
            "ignore" => Decision::Ignore,
            other => {
                let reason = format!("expected accept, reject or ignore, found {}", quote(other));
                return Err(problem("answer", reason));
            }
        },
        Some(other) => {
            let reason = format!("expected a string, found {}", kind(other));
            return Err(problem("answer", reason));
        }
    };
    let annotator = annotator(map)?;
    let source_id = match map.get("_task_hash") {
        None | Some(Value::Null) => format!("prodigy-line-{line}"),
        Some(hash @ Value::Number(_)) if annotator.is_empty() => format!("prodigy-{hash}"),
        Some(Value::String(hash)) if annotator.is_empty() => format!("prodigy-{hash}"),
        Some(hash @ Value::Number(_)) => format!("prodigy-{hash}-{annotator}"),
        Some(Value::String(hash)) => format!("prodigy-{hash}-{annotator}"),
        Some(other) => {
            let reason = format!("expected a number or a string, found {}", kind(other));
            return Err(problem("_task_hash", reason));
        }
    };
    let spans = spans(map, text)?;
    let relations = relations(map, &spans)?;
    Ok(Annotation {
        annotator,
        source_id,
        decision,
        label: map
            .get("label")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        choices: choices(map)?,
        spans,
        relations,
    })
}

/// `relations` as `rel.manual` writes them: each names its ends by `head_span` and `child_span`
/// (matched to the line's `spans` by start and end) and carries a `label`. Prodigy's `head` and
/// `child` token indices are ignored, as token indices are for spans.
fn relations(map: &Map<String, Value>, spans: &[Span]) -> Result<Vec<Relation>, Problem> {
    let relations = match map.get("relations") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(r)) => r,
        Some(other) => {
            let reason = format!("expected an array, found {}", kind(other));
            return Err(problem("relations", reason));
        }
    };
    relations
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let end = |key: &str| -> Result<usize, Problem> {
                let field = format!("relations[{i}].{key}");
                let Some(span) = r.get(key).filter(|s| s.is_object()) else {
                    return Err(problem(field, "is missing or not an object"));
                };
                let (Some(start), Some(stop)) = (
                    span.get("start").and_then(Value::as_u64),
                    span.get("end").and_then(Value::as_u64),
                ) else {
                    return Err(problem(field, "needs numeric start and end"));
                };
                spans
                    .iter()
                    .position(|s| s.start == start && s.end == stop)
                    .ok_or_else(|| {
                        let reason = format!("{start}..{stop} is not one of the line's spans");
                        problem(field, reason)
                    })
            };
            let Some(label) = r.get("label").and_then(Value::as_str) else {
                return Err(problem(format!("relations[{i}].label"), "is missing"));
            };
            Ok(Relation {
                head: end("head_span")?,
                child: end("child_span")?,
                label: label.to_owned(),
            })
        })
        .collect()
}

/// `_annotator_id`, else `_session_id`, else empty.
fn annotator(map: &Map<String, Value>) -> Result<String, Problem> {
    for key in ["_annotator_id", "_session_id"] {
        match map.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::String(name)) if name.is_empty() => {}
            Some(Value::String(name)) => return Ok(name.clone()),
            Some(other) => {
                let reason = format!("expected a string, found {}", kind(other));
                return Err(problem(key, reason));
            }
        }
    }
    Ok(String::new())
}

/// An option id as Gloss stores a choice: strings as they are, numbers as written.
fn id_string(id: &Value) -> Option<String> {
    match id {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The chosen option ids of a choice interface (`accept`).
fn choices(map: &Map<String, Value>) -> Result<Vec<String>, Problem> {
    let accepted = match map.get("accept") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(accepted)) => accepted,
        Some(other) => {
            let reason = format!("expected an array of option ids, found {}", kind(other));
            return Err(problem("accept", reason));
        }
    };
    // `validate` has checked that every option is an object with a string or number id.
    let options: Vec<String> = map
        .get("options")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|option| option.get("id").and_then(id_string))
        .collect();
    accepted
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let field = || format!("accept[{i}]");
            let Some(id) = id_string(id) else {
                let reason = format!("expected an option id, found {}", kind(id));
                return Err(problem(field(), reason));
            };
            if !options.is_empty() && !options.contains(&id) {
                let reason = format!("{} is not the id of any of the options", quote(&id));
                return Err(problem(field(), reason));
            }
            Ok(id)
        })
        .collect()
}

/// The entities of a span interface; `validate` has checked the offsets and label types.
fn spans(map: &Map<String, Value>, text: &str) -> Result<Vec<Span>, Problem> {
    let Some(spans) = map.get("spans").and_then(Value::as_array) else {
        return Ok(Vec::new());
    };
    spans
        .iter()
        .enumerate()
        .map(|(i, span)| {
            let start = span
                .get("start")
                .and_then(Value::as_u64)
                .unwrap_or_default();
            let end = span.get("end").and_then(Value::as_u64).unwrap_or_default();
            let Some(label) = span.get("label").and_then(Value::as_str) else {
                return Err(problem(format!("spans[{i}].label"), "is missing"));
            };
            if let Some(recorded) = span.get("text").and_then(Value::as_str) {
                let covered = slice_chars(text, start, end).unwrap_or_default();
                if covered != recorded {
                    let reason = format!(
                        "span {start}..{end} covers {} but the span's text is {}",
                        quote(covered),
                        quote(recorded)
                    );
                    return Err(problem(format!("spans[{i}].text"), reason));
                }
            }
            Ok(Span {
                start,
                end,
                label: label.to_owned(),
            })
        })
        .collect()
}
