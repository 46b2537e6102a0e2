//! Label Studio JSON exports of text tasks labelled with `Choices` and `Labels`.
//!
//! **Streaming.** The export is one JSON array of tasks. It is cut into tasks as it is read
//! (a scan that tracks only strings and brackets), and each task is parsed on its own, so
//! memory holds one task, bounded by [`Limits::max_record_bytes`], plus a read buffer. A task
//! over the limit is skipped and reported; a task that is not valid JSON is reported and the
//! next one read. Only a broken array itself (not an array, a missing comma between tasks,
//! input that ends inside a task) ends the stream, as [`ImportError::NotJsonArray`].
//!
//! **Numbering.** A record's `line` (and so every error's) is the 1-based position of the task
//! in the array, not a line of the file: exports are often one line, and the position is what
//! finds the task again. Fields are named from the task, such as `annotations[0].result[2].type`.
//!
//! **Example.** The text is `data.<text_key>` (`text` unless the labelling config names
//! another key); every other `data` field goes into `meta` under its own name. The record's
//! `json` is `{"text": .., "meta": {..}}` (no `meta` when `data` has nothing else). The task's
//! `id`, `meta`, dates, `predictions` and `drafts` are not imported: predictions are a model's
//! suggestions, not anyone's answer.
//!
//! **Answers.** Each annotation becomes an [`Annotation`] attributed to `completed_by` (a user
//! id `n` becomes `ls-user-<n>`; a user object gives its `email`, else its `username`; a string
//! is kept as written; absent, the annotator is empty and the importer names a default), with
//! source id `ls-<annotation id>`; an annotation without an `id` is an error.
//! A submitted annotation is [`Decision::Accept`]: Label Studio has no reject. A cancelled one
//! (`was_cancelled`, the annotator pressed Skip) is [`Decision::Ignore`] with no labels, its
//! results (if any) unread: it is a real answer, which Prodigy would record as ignore. Results
//! of type `labels` become spans, one per label of the region; results of type `choices` add
//! their choices. Any other result type is an error naming it, since importing the rest would
//! silently lose work.
//!
//! **Offsets.** Label Studio's frontend counts code points, as Gloss does. Versions before it
//! did so counted UTF-16 units, which differ after any character outside the BMP (emoji). Each
//! region records the `text` it covers, so a region whose code point range does not cover that
//! text but whose UTF-16 range does is converted; one that matches neither is an error.

use std::io::{self, BufRead, BufReader, ErrorKind, Read};
use std::iter::FusedIterator;

use serde_json::{Map, Value};

use super::offsets::{quote, slice_chars, utf16_to_chars};
use super::scan::{starts_value, ValueEnd};
use super::{AnnotatedItem, AnnotatedRecord, Annotation, Decision, Span};
use crate::jsonl::{kind, problem, Problem, TextLen};
use crate::source::{Source, BUFFER_BYTES};
use crate::{too_large, utf8_reason, ImportError, Limits, RecordError};

/// Reads a Label Studio JSON export from `reader`, taking each task's text from
/// `data.<text_key>`: see the module's documentation.
pub fn read<R: Read>(reader: R, text_key: &str, limits: Limits) -> Reader<R> {
    Reader {
        state: State::Fresh(reader),
        text_key: text_key.to_owned(),
        limits,
    }
}

/// Streaming reader of a Label Studio export; yields one [`AnnotatedItem`] per task, in
/// order, and stops after the first [`ImportError`].
pub struct Reader<R> {
    state: State<R>,
    text_key: String,
    limits: Limits,
}

enum State<R> {
    Fresh(R),
    Reading(Box<Tasks<R>>),
    Done,
}

impl<R: Read> Iterator for Reader<R> {
    type Item = Result<AnnotatedItem, ImportError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let State::Fresh(_) = self.state {
            let State::Fresh(reader) = std::mem::replace(&mut self.state, State::Done) else {
                return None;
            };
            match Source::new(reader) {
                Ok(src) => self.state = State::Reading(Box::new(Tasks::new(src))),
                Err(e) => return Some(Err(e.into())),
            }
        }
        let State::Reading(tasks) = &mut self.state else {
            return None;
        };
        let next = match tasks.next_task(self.limits.max_record_bytes) {
            Ok(Some(Task::Fits { start_line })) => Some(Ok(task_item(
                tasks.index,
                start_line,
                &tasks.buf,
                &self.text_key,
            ))),
            Ok(Some(Task::TooLong { bytes })) => {
                let reason = too_large(self.limits.max_record_bytes, bytes);
                Some(Ok(AnnotatedItem::Invalid(RecordError {
                    line: tasks.index,
                    field: None,
                    reason,
                })))
            }
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        };
        if !matches!(next, Some(Ok(_))) {
            self.state = State::Done;
        }
        next
    }
}

impl<R: Read> FusedIterator for Reader<R> {}

/// Where the array scan stands.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Before the opening `[`.
    Open,
    /// Just after `[`.
    First,
    /// Just after a task.
    Next,
}

/// Outcome of reading one task.
enum Task {
    /// The task's bytes are in [`Tasks::buf`].
    Fits { start_line: u64 },
    /// The task was longer than allowed and skipped; `bytes` is its length.
    TooLong { bytes: u64 },
}

/// Cuts the top-level array into tasks.
struct Tasks<R> {
    src: BufReader<Source<R>>,
    phase: Phase,
    /// 1-based line of the next unread byte, for errors about the array itself.
    line: u64,
    /// Tasks read so far: the position of the latest.
    index: u64,
    buf: Vec<u8>,
}

impl<R: Read> Tasks<R> {
    fn new(src: Source<R>) -> Self {
        Self {
            src: BufReader::with_capacity(BUFFER_BYTES, src),
            phase: Phase::Open,
            line: 1,
            index: 0,
            buf: Vec::new(),
        }
    }

    fn broken(&self, reason: String) -> ImportError {
        ImportError::NotJsonArray {
            line: self.line,
            reason,
        }
    }

    /// Reads up to the next task, and the task itself; `None` after the closing `]`.
    fn next_task(&mut self, max: usize) -> Result<Option<Task>, ImportError> {
        let found = self.skip_whitespace()?;
        match (self.phase, found) {
            (Phase::Open, Some(b'[')) => {
                self.src.consume(1);
                self.phase = Phase::First;
                return self.next_task(max);
            }
            (Phase::Open, Some(b)) => {
                return Err(self.broken(format!("expected `[`, found {}", byte(b))));
            }
            (Phase::Open, None) => return Err(self.broken("the input is empty".into())),
            (_, None) => {
                let reason = format!("the input ends after task {} with no `]`", self.index);
                return Err(self.broken(reason));
            }
            (_, Some(b']')) => {
                self.src.consume(1);
                return match self.skip_whitespace()? {
                    None => Ok(None),
                    Some(b) => Err(self.broken(format!("{} after the array", byte(b)))),
                };
            }
            (Phase::Next, Some(b',')) => {
                self.src.consume(1);
                match self.skip_whitespace()? {
                    Some(b) if starts_value(b) => {}
                    Some(b) => {
                        let reason = format!("expected a task after `,`, found {}", byte(b));
                        return Err(self.broken(reason));
                    }
                    None => {
                        let reason = format!("the input ends after task {} and `,`", self.index);
                        return Err(self.broken(reason));
                    }
                }
            }
            (Phase::Next, Some(b)) => {
                let index = self.index;
                let reason = format!("expected `,` or `]` after task {index}, found {}", byte(b));
                return Err(self.broken(reason));
            }
            (Phase::First, Some(b)) if !starts_value(b) => {
                return Err(self.broken(format!("expected a task, found {}", byte(b))));
            }
            (Phase::First, Some(_)) => {}
        }
        self.phase = Phase::Next;
        self.index += 1;
        self.read_task(max).map(Some)
    }

    /// Consumes whitespace; the next byte (not consumed), `None` at the end of the input.
    fn skip_whitespace(&mut self) -> io::Result<Option<u8>> {
        loop {
            let chunk = fill(&mut self.src)?;
            if chunk.is_empty() {
                return Ok(None);
            }
            let blank = chunk
                .iter()
                .position(|b| !b.is_ascii_whitespace())
                .unwrap_or(chunk.len());
            self.line += newlines(&chunk[..blank]);
            let next = chunk.get(blank).copied();
            self.src.consume(blank);
            if next.is_some() {
                return Ok(next);
            }
        }
    }

    /// Reads one task, starting at its first byte, keeping at most `max` bytes of it.
    fn read_task(&mut self, max: usize) -> Result<Task, ImportError> {
        let start_line = self.line;
        let mut end = ValueEnd::default();
        let (mut seen, mut over) = (0u64, false);
        self.buf.clear();
        loop {
            let chunk = fill(&mut self.src)?;
            if chunk.is_empty() {
                if end.complete_at_end() {
                    break;
                }
                let reason = format!(
                    "the input ends inside task {} (an unclosed string, object or array)",
                    self.index
                );
                self.line = start_line;
                return Err(self.broken(reason));
            }
            let done = end.feed(chunk);
            let part = &chunk[..done.unwrap_or(chunk.len())];
            seen += part.len() as u64;
            self.line += newlines(part);
            if !over {
                if self.buf.len() + part.len() <= max {
                    self.buf.extend_from_slice(part);
                } else {
                    over = true;
                    self.buf = Vec::new();
                }
            }
            let used = part.len();
            self.src.consume(used);
            if done.is_some() {
                break;
            }
        }
        Ok(if over {
            Task::TooLong { bytes: seen }
        } else {
            Task::Fits { start_line }
        })
    }
}

/// The buffered bytes, reading more when there are none; empty at the end of the input.
fn fill<R: Read>(src: &mut BufReader<Source<R>>) -> io::Result<&[u8]> {
    while let Err(e) = src.fill_buf() {
        if e.kind() != ErrorKind::Interrupted {
            return Err(e);
        }
    }
    // Once filled, asking again hands back the same buffered bytes.
    src.fill_buf()
}

fn newlines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}

/// A byte for a message.
fn byte(b: u8) -> String {
    if b.is_ascii_graphic() {
        format!("`{}`", char::from(b))
    } else {
        format!("byte 0x{b:02x}")
    }
}

fn task_item(index: u64, start_line: u64, bytes: &[u8], text_key: &str) -> AnnotatedItem {
    let fail = |(field, reason): Problem| RecordError {
        line: index,
        field,
        reason,
    };
    let parsed = std::str::from_utf8(bytes)
        .map_err(|e| fail((None, utf8_reason(&e))))
        .and_then(|raw| {
            serde_json::from_str::<Value>(raw).map_err(|e| {
                let reason = format!("not valid JSON (the task starts on line {start_line}): {e}");
                fail((None, reason))
            })
        })
        .and_then(|value| record(index, value, text_key).map_err(fail));
    parsed.map_or_else(AnnotatedItem::Invalid, AnnotatedItem::Record)
}

/// One task, parsed.
fn record(index: u64, task: Value, text_key: &str) -> Result<AnnotatedRecord, Problem> {
    let Value::Object(mut task) = task else {
        let found = kind(&task);
        return Err((None, format!("expected a task object, found {found}")));
    };
    let mut data = match task.remove("data") {
        None => return Err(problem("data", "is missing")),
        Some(Value::Object(data)) => data,
        Some(other) => {
            let reason = format!("expected an object, found {}", kind(&other));
            return Err(problem("data", reason));
        }
    };
    let text_field = || format!("data.{text_key}");
    let text = match data.shift_remove(text_key) {
        None => {
            let keys: Vec<_> = data.keys().map(|k| format!("`{k}`")).collect();
            let reason = match keys.is_empty() {
                true => "is missing (`data` is empty)".to_owned(),
                false => format!("is missing (`data` has {})", keys.join(", ")),
            };
            return Err(problem(text_field(), reason));
        }
        Some(Value::String(text)) if text.trim().is_empty() => {
            return Err(problem(text_field(), "is empty or only whitespace"))
        }
        Some(Value::String(text)) => text,
        Some(other) => {
            let reason = format!("expected a string, found {}", kind(&other));
            return Err(problem(text_field(), reason));
        }
    };
    let annotations = match task.get("annotations") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(annotations)) => annotations,
        Some(other) => {
            let reason = format!("expected an array, found {}", kind(other));
            return Err(problem("annotations", reason));
        }
    };
    let mut len = TextLen::new(&text);
    let annotations = annotations
        .iter()
        .enumerate()
        .map(|(j, a)| annotation(&format!("annotations[{j}]"), a, &text, &mut len))
        .collect::<Result<_, _>>()?;
    let mut json = Map::new();
    json.insert("text".into(), Value::String(text.clone()));
    if !data.is_empty() {
        json.insert("meta".into(), Value::Object(data));
    }
    Ok(AnnotatedRecord {
        line: index,
        text,
        json: Value::Object(json).to_string(),
        annotations,
    })
}

/// One annotation of a task whose text is `text`; `path` names it (`annotations[j]`).
fn annotation(
    path: &str,
    annotation: &Value,
    text: &str,
    len: &mut TextLen,
) -> Result<Annotation, Problem> {
    let Some(a) = annotation.as_object() else {
        let reason = format!("expected an object, found {}", kind(annotation));
        return Err(problem(path, reason));
    };
    let source_id = match a.get("id") {
        Some(Value::Number(id)) => format!("ls-{id}"),
        Some(Value::String(id)) if !id.is_empty() => format!("ls-{id}"),
        None | Some(Value::Null) => return Err(problem(format!("{path}.id"), "is missing")),
        Some(other) => {
            let reason = format!("expected a number, found {}", kind(other));
            return Err(problem(format!("{path}.id"), reason));
        }
    };
    let annotator = completed_by(path, a.get("completed_by"))?;
    let cancelled = match a.get("was_cancelled") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(cancelled)) => *cancelled,
        Some(other) => {
            let reason = format!("expected a boolean, found {}", kind(other));
            return Err(problem(format!("{path}.was_cancelled"), reason));
        }
    };
    let mut out = Annotation {
        annotator,
        source_id,
        decision: Decision::Accept,
        ..Annotation::default()
    };
    if cancelled {
        out.decision = Decision::Ignore;
        return Ok(out);
    }
    let results = match a.get("result") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(results)) => results,
        Some(other) => {
            let reason = format!("expected an array, found {}", kind(other));
            return Err(problem(format!("{path}.result"), reason));
        }
    };
    for (k, result) in results.iter().enumerate() {
        let path = format!("{path}.result[{k}]");
        let Some(result) = result.as_object() else {
            let reason = format!("expected an object, found {}", kind(result));
            return Err(problem(path, reason));
        };
        let kind_of = match result.get("type") {
            None => return Err(problem(format!("{path}.type"), "is missing")),
            Some(Value::String(t)) => t.as_str(),
            Some(other) => {
                let reason = format!("expected a string, found {}", kind(other));
                return Err(problem(format!("{path}.type"), reason));
            }
        };
        if !matches!(kind_of, "labels" | "choices") {
            let reason = format!(
                "{} results are not supported: Gloss imports `labels` and `choices` on text",
                quote(kind_of)
            );
            return Err(problem(format!("{path}.type"), reason));
        }
        let value = match result.get("value") {
            None => return Err(problem(format!("{path}.value"), "is missing")),
            Some(Value::Object(value)) => value,
            Some(other) => {
                let reason = format!("expected an object, found {}", kind(other));
                return Err(problem(format!("{path}.value"), reason));
            }
        };
        let path = format!("{path}.value");
        if kind_of == "choices" {
            out.choices.extend(strings(&path, value, "choices")?);
        } else {
            let (start, end) = region(&path, value, text, len)?;
            let labels = strings(&path, value, "labels")?;
            if labels.is_empty() {
                return Err(problem(format!("{path}.labels"), "is empty"));
            }
            let spans = labels.into_iter().map(|label| Span { start, end, label });
            out.spans.extend(spans);
        }
    }
    Ok(out)
}

/// The annotator named by `completed_by`: see the module's documentation.
fn completed_by(path: &str, by: Option<&Value>) -> Result<String, Problem> {
    let field = || format!("{path}.completed_by");
    match by {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::Number(id)) => Ok(format!("ls-user-{id}")),
        Some(Value::String(name)) => Ok(name.clone()),
        Some(Value::Object(user)) => ["email", "username"]
            .iter()
            .find_map(|key| {
                user.get(*key)
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
            })
            .map(str::to_owned)
            .ok_or_else(|| problem(field(), "has neither an `email` nor a `username`")),
        Some(other) => {
            let reason = format!("expected a user id or a user object, found {}", kind(other));
            Err(problem(field(), reason))
        }
    }
}

/// The array of strings `value.<key>`.
fn strings(path: &str, value: &Map<String, Value>, key: &str) -> Result<Vec<String>, Problem> {
    let items = match value.get(key) {
        None => return Err(problem(format!("{path}.{key}"), "is missing")),
        Some(Value::Array(items)) => items,
        Some(other) => {
            let reason = format!("expected an array of strings, found {}", kind(other));
            return Err(problem(format!("{path}.{key}"), reason));
        }
    };
    items
        .iter()
        .enumerate()
        .map(|(m, item)| match item {
            Value::String(s) if !s.trim().is_empty() => Ok(s.clone()),
            Value::String(_) => Err(problem(
                format!("{path}.{key}[{m}]"),
                "is empty or only whitespace",
            )),
            other => {
                let reason = format!("expected a string, found {}", kind(other));
                Err(problem(format!("{path}.{key}[{m}]"), reason))
            }
        })
        .collect()
}

/// The code point range of a `labels` region: see "Offsets" in the module's documentation.
fn region(
    path: &str,
    value: &Map<String, Value>,
    text: &str,
    len: &mut TextLen,
) -> Result<(u64, u64), Problem> {
    let offset = |key: &str| match value.get(key) {
        None => Err(problem(format!("{path}.{key}"), "is missing")),
        Some(v) => v.as_u64().ok_or_else(|| {
            let found = match v.is_number() {
                true => v.to_string(),
                false => kind(v).to_owned(),
            };
            let reason = format!("expected a non-negative integer, found {found}");
            problem(format!("{path}.{key}"), reason)
        }),
    };
    let (start, end) = (offset("start")?, offset("end")?);
    if start >= end {
        return Err(problem(
            path,
            format!("start {start} is not before end {end}"),
        ));
    }
    let recorded = value.get("text").and_then(Value::as_str);
    let covered = slice_chars(text, start, end);
    if covered.is_some() && (recorded.is_none() || covered == recorded) {
        return Ok((start, end));
    }
    if let Some((from, to)) = recorded.and_then(|_| utf16_to_chars(text, start, end)) {
        if slice_chars(text, from, to) == recorded {
            return Ok((from, to));
        }
    }
    let chars = len.get();
    if end > chars {
        let reason = format!("{end} is past the end of the text ({chars} characters)");
        return Err(problem(format!("{path}.end"), reason));
    }
    let reason = format!(
        "span {start}..{end} covers {} but Label Studio recorded {}",
        quote(covered.unwrap_or_default()),
        quote(recorded.unwrap_or_default())
    );
    Err(problem(format!("{path}.text"), reason))
}
