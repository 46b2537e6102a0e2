//! JSONL records: parse one line as a JSON object and validate the fields Gloss interprets.

use serde_json::{Map, Value};

use crate::image::{self, ImageField};
use crate::{
    input_hash, too_large, utf8_reason, ImageFiles, Limits, Record, RecordError, RecordImage,
};

/// A validation failure inside one record: the field path (if any) and why.
pub(crate) type Problem = (Option<String>, String);

pub(crate) fn problem(field: impl Into<String>, reason: impl Into<String>) -> Problem {
    (Some(field.into()), reason.into())
}

/// "a string", "an object", ... for messages.
pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Parses and validates one JSONL line (already known to be within the line limit and not
/// blank). An `image` field is checked and, given inline, replaced in the stored record by its
/// digest; a path is read through `files`.
pub(crate) fn parse(
    line: u64,
    bytes: &[u8],
    limits: &Limits,
    files: Option<&mut ImageFiles>,
) -> Result<Record, RecordError> {
    let fail = |(field, reason): Problem| RecordError {
        line,
        field,
        reason,
    };
    let text = std::str::from_utf8(bytes).map_err(|e| fail((None, utf8_reason(&e))))?;
    let value: Value =
        serde_json::from_str(text).map_err(|e| fail((None, format!("not valid JSON: {e}"))))?;
    let Value::Object(mut map) = value else {
        return Err(fail((
            None,
            format!("expected a JSON object, found {}", kind(&value)),
        )));
    };
    validate(&map).map_err(fail)?;
    // The record is kept exactly as written (minus surrounding whitespace): export must give back
    // the same bytes, including number spellings and fields Gloss does not interpret.
    let mut json = text.trim().to_string();
    let image = match map.get("image") {
        Some(Value::String(field)) => {
            let field = field.clone();
            let image = image_of(&field, limits, files).map_err(|e| fail(problem("image", e)))?;
            if image.inline {
                json = without_inline(&json, &mut map, &field, &image.image.info.digest);
            }
            Some(image)
        }
        _ => None,
    };
    if json.len() > limits.max_record_bytes {
        let reason = too_large(limits.max_record_bytes, json.len() as u64);
        return Err(fail((None, reason)));
    }
    let text = match map.remove("text") {
        Some(Value::String(text)) => text,
        _ if image.is_some() => String::new(),
        _ => return Err(fail(problem("text", "is missing"))),
    };
    let input_hash = match &image {
        Some(img) => crate::image::input_hash(&img.image.info.digest, &text),
        None => input_hash(&text),
    };
    Ok(Record {
        line,
        input_hash,
        text,
        json,
        image,
    })
}

fn image_of(
    field: &str,
    limits: &Limits,
    files: Option<&mut ImageFiles>,
) -> Result<RecordImage, String> {
    match image::parse_field(field, limits.max_image_bytes)? {
        ImageField::Inline(image) => Ok(RecordImage {
            image,
            inline: true,
        }),
        ImageField::File(path) => {
            let Some(read) = files else {
                return Err(format!(
                    "`{path}` names a file, but this import has no image store to read it from; give the image inline as a data URI"
                ));
            };
            let bytes = read(&path)?;
            let image = image::inspect(&bytes, limits.max_image_bytes)
                .map_err(|e| format!("`{path}`: {e}"))?;
            Ok(RecordImage {
                image,
                inline: false,
            })
        }
    }
}

/// The record with its inline image replaced by the image's digest. The data URI is replaced
/// where it is written, so every other byte stays as it was; only a URI spelled with escapes
/// makes the record be written anew.
fn without_inline(json: &str, map: &mut Map<String, Value>, uri: &str, digest: &str) -> String {
    let written = format!("\"{uri}\"");
    let reference = format!("\"{}\"", image::stored_reference(digest));
    if json.matches(&written).count() == 1 {
        return json.replacen(&written, &reference, 1);
    }
    map.insert(
        "image".into(),
        Value::String(image::stored_reference(digest)),
    );
    serde_json::to_string(&*map).expect("a JSON object serialises")
}

/// Character (code point) length of a text, counted only when an offset needs checking.
pub(crate) struct TextLen<'a> {
    text: &'a str,
    chars: Option<u64>,
}

impl<'a> TextLen<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Self { text, chars: None }
    }

    pub(crate) fn get(&mut self) -> u64 {
        let text = self.text;
        *self
            .chars
            .get_or_insert_with(|| text.chars().count() as u64)
    }
}

pub(crate) fn validate(map: &Map<String, Value>) -> Result<(), Problem> {
    // An image needs no text: a caption is optional.
    let has_image = match map.get("image") {
        None => false,
        Some(Value::String(_)) => true,
        Some(other) => {
            return Err(problem(
                "image",
                format!(
                    "expected a string (a data URI or a path in the image store), found {}",
                    kind(other)
                ),
            ))
        }
    };
    let text = match map.get("text") {
        None if has_image => "",
        None => return Err(problem("text", "is missing")),
        Some(Value::String(text)) if !has_image && text.trim().is_empty() => {
            return Err(problem("text", "is empty or only whitespace"))
        }
        Some(Value::String(text)) => text,
        Some(other) => {
            return Err(problem(
                "text",
                format!("expected a string, found {}", kind(other)),
            ))
        }
    };
    let mut len = TextLen::new(text);
    if let Some(meta) = map.get("meta") {
        if !meta.is_object() {
            return Err(problem(
                "meta",
                format!("expected an object, found {}", kind(meta)),
            ));
        }
    }
    if let Some(label) = map.get("label") {
        if !label.is_string() {
            return Err(problem(
                "label",
                format!("expected a string, found {}", kind(label)),
            ));
        }
    }
    for (i, span) in array(map, "spans")?.iter().enumerate() {
        let path = || format!("spans[{i}]");
        let (start, end) = offsets(span, &path, &mut len)?;
        if start >= end {
            return Err(problem(
                path(),
                format!("start {start} is not before end {end}"),
            ));
        }
        if let Some(label) = span.get("label") {
            match label.as_str() {
                Some(label) if !label.trim().is_empty() => {}
                Some(_) => return Err(problem(path() + ".label", "is empty or only whitespace")),
                None => {
                    let found = kind(label);
                    return Err(problem(
                        path() + ".label",
                        format!("expected a string, found {found}"),
                    ));
                }
            }
        }
    }
    for (i, token) in array(map, "tokens")?.iter().enumerate() {
        let path = || format!("tokens[{i}]");
        let (start, end) = offsets(token, &path, &mut len)?;
        if start > end {
            return Err(problem(path(), format!("start {start} is after end {end}")));
        }
        for (key, ok, expected) in [
            ("text", Value::is_string as fn(&Value) -> bool, "a string"),
            ("id", Value::is_u64, "a non-negative integer"),
            ("ws", Value::is_boolean, "a boolean"),
        ] {
            match token.get(key) {
                Some(value) if !ok(value) => {
                    let found = kind(value);
                    return Err(problem(
                        format!("{}.{key}", path()),
                        format!("expected {expected}, found {found}"),
                    ));
                }
                _ => {}
            }
        }
    }
    for (i, option) in array(map, "options")?.iter().enumerate() {
        let path = || format!("options[{i}]");
        let Some(option) = option.as_object() else {
            return Err(problem(
                path(),
                format!("expected an object, found {}", kind(option)),
            ));
        };
        match option.get("id") {
            Some(Value::String(_) | Value::Number(_)) => {}
            None => return Err(problem(path() + ".id", "is missing")),
            Some(other) => {
                let found = kind(other);
                return Err(problem(
                    path() + ".id",
                    format!("expected a string or number, found {found}"),
                ));
            }
        }
    }
    Ok(())
}

/// The array under `key`, or an empty slice when the key is absent.
fn array<'a>(map: &'a Map<String, Value>, key: &str) -> Result<&'a [Value], Problem> {
    match map.get(key) {
        None => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(other) => Err(problem(
            key,
            format!("expected an array, found {}", kind(other)),
        )),
    }
}

/// `start` and `end` of a span or token: non-negative integers with `end` inside the text.
fn offsets(
    item: &Value,
    path: &dyn Fn() -> String,
    len: &mut TextLen,
) -> Result<(u64, u64), Problem> {
    let Some(item) = item.as_object() else {
        return Err(problem(
            path(),
            format!("expected an object, found {}", kind(item)),
        ));
    };
    let offset = |key: &str| match item.get(key) {
        None => Err(problem(format!("{}.{key}", path()), "is missing")),
        Some(value) => value.as_u64().ok_or_else(|| {
            let found = if value.is_number() {
                value.to_string()
            } else {
                kind(value).to_owned()
            };
            problem(
                format!("{}.{key}", path()),
                format!("expected a non-negative integer, found {found}"),
            )
        }),
    };
    let (start, end) = (offset("start")?, offset("end")?);
    let chars = len.get();
    if end > chars {
        let reason = format!("{end} is past the end of the text ({chars} characters)");
        return Err(problem(path() + ".end", reason));
    }
    Ok((start, end))
}
