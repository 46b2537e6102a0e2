//! Streaming import parsers for Gloss: turn a JSONL, CSV/TSV or plain-text byte stream into
//! validated [`Record`]s (text, content hash and the record as a JSON object) or per-record
//! [`RecordError`]s that name the source line and field, so one bad line never sinks an import.
//! Annotations made in other tools (Prodigy answers, Label Studio exports, spaCy `DocBin`s) are
//! read, as examples with their answers and under the same rules, in [`annotations`].
//! Depends only on `csv`, `serde_json` (with `preserve_order`, so unknown fields survive
//! unchanged and in order), `thiserror`, `xxhash-rust`, and `flate2` (zlib) with `rmpv`
//! (msgpack) for spaCy `DocBin` files ([`docbin`]). It must never do I/O besides reading the
//! reader it is given, never keep global state, and never hold more than about one record
//! (bounded by [`Limits`]) plus a fixed read buffer in memory; the exception is [`docbin`],
//! whose format is one compressed message, so it works on the whole file in memory.

pub mod annotations;
mod delimited;
pub mod docbin;
pub mod image;
mod jsonl;
mod source;

use std::fmt;
use std::io::Read;
use std::iter::FusedIterator;

use source::{Line, LineReader, Source};

/// How the import stream is laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line, Prodigy style.
    Jsonl,
    /// Delimited rows with a header; `text_column` holds the text, other columns become `meta`.
    Csv { delimiter: u8, text_column: String },
    /// One example per line.
    Text,
}

impl Format {
    /// Resolves a format name (`jsonl`/`json`, `csv`, `tsv`, `text`/`txt`, case-insensitive).
    /// `text_column` applies to CSV and TSV and defaults to `text`.
    pub fn parse_name(name: &str, text_column: Option<&str>) -> Result<Self, ImportError> {
        let column = || text_column.unwrap_or("text").to_owned();
        match name.to_ascii_lowercase().as_str() {
            "jsonl" | "json" => Ok(Self::Jsonl),
            "csv" => Ok(Self::Csv {
                delimiter: b',',
                text_column: column(),
            }),
            "tsv" => Ok(Self::Csv {
                delimiter: b'\t',
                text_column: column(),
            }),
            "text" | "txt" => Ok(Self::Text),
            _ => Err(ImportError::UnknownFormat(name.to_owned())),
        }
    }
}

/// Bounds applied to every record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest record accepted, in bytes of its line (JSONL, text) or cell contents (CSV); an
    /// inline image does not count, as it is stored apart.
    pub max_record_bytes: usize,
    /// Largest image accepted, in bytes of the encoded file.
    pub max_image_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_record_bytes: 1 << 20,
            max_image_bytes: DEFAULT_MAX_IMAGE_BYTES,
        }
    }
}

/// Default of [`Limits::max_image_bytes`]: 10 MiB.
pub const DEFAULT_MAX_IMAGE_BYTES: usize = 10 << 20;

impl Limits {
    /// Longest JSONL line read: a record plus one inline image in base64.
    fn max_line_bytes(&self) -> usize {
        self.max_record_bytes + self.max_image_bytes.div_ceil(3) * 4 + 64
    }
}

/// Reads the bytes of an image named by path in a record, or says why it cannot (missing file,
/// outside the store). Given by the caller, so this crate does no file I/O itself.
pub type ImageFiles = dyn FnMut(&str) -> Result<Vec<u8>, String> + Send;

/// A record's image, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordImage {
    pub image: image::Image,
    /// Given inline as a data URI (the stored record holds its digest instead); otherwise the
    /// record names a file and keeps the name.
    pub inline: bool,
}

/// One valid example.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// 1-based source line where the record starts.
    pub line: u64,
    /// [`input_hash`] of `text`.
    pub input_hash: u128,
    pub text: String,
    /// The record as a JSON object: for JSONL the line exactly as written (surrounding whitespace
    /// trimmed), so export gives back the same bytes (an inline image replaced by
    /// `"sha256:<digest>"`); for CSV `{"text": .., "meta": {column: value, ..}}`; for text
    /// `{"text": ..}`.
    pub json: String,
    /// The record's image (JSONL records with an `image` field).
    pub image: Option<RecordImage>,
}

/// Content address of an example: xxh3-128 of the UTF-8 bytes of its text.
pub fn input_hash(text: &str) -> u128 {
    xxhash_rust::xxh3::xxh3_128(text.as_bytes())
}

/// Why one record was rejected; the stream continues after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    /// 1-based source line where the record starts.
    pub line: u64,
    /// Path of the offending field, e.g. `spans[1].end`, when one field is to blame.
    pub field: Option<String>,
    pub reason: String,
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "line {}: field `{field}`: {}", self.line, self.reason),
            None => write!(f, "line {}: {}", self.line, self.reason),
        }
    }
}

impl std::error::Error for RecordError {}

/// One parsed record, valid or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Record(Record),
    Invalid(RecordError),
}

/// Failures that end the whole stream.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("reading the import source failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("unknown import format `{0}` (expected jsonl, json, csv, tsv, text or txt)")]
    UnknownFormat(String),
    #[error("the CSV input is empty: expected a header row")]
    EmptyCsv,
    #[error("the CSV header has no `{column}` column (its columns are: {})", list(.columns))]
    MissingTextColumn {
        column: String,
        columns: Vec<String>,
    },
    #[error("the CSV header is unreadable: {0}")]
    Header(String),
    #[error("malformed CSV: {0}")]
    Csv(String),
    #[error("the CSV row starting at line {line} runs far past the size limit of {limit} bytes; cannot resynchronise")]
    RecordTooLarge { line: u64, limit: usize },
    #[error("not a spaCy DocBin: {0}")]
    NotDocBin(String),
    #[error("cannot write the DocBin: doc {doc}: {reason}")]
    DocBinWrite { doc: u64, reason: String },
    #[error("line {line}: not a JSON array of tasks: {reason}")]
    NotJsonArray { line: u64, reason: String },
}

fn list(columns: &[String]) -> String {
    columns
        .iter()
        .map(|c| format!("`{c}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Streaming parser over any reader; yields one [`Item`] per record, in source order, and stops
/// after the first [`ImportError`].
pub struct Parser<R> {
    inner: Inner<R>,
    limits: Limits,
    files: Option<Box<ImageFiles>>,
    done: bool,
}

enum Inner<R> {
    Lines { lines: LineReader<R>, jsonl: bool },
    Csv(Box<delimited::Rows<R>>),
}

impl<R: Read> Parser<R> {
    /// Prepares to parse `reader`; reads the first bytes (BOM check) and, for CSV, the header.
    pub fn new(reader: R, format: Format, limits: Limits) -> Result<Self, ImportError> {
        let src = Source::new(reader)?;
        let max = limits.max_record_bytes;
        let inner = match format {
            Format::Jsonl => Inner::Lines {
                lines: LineReader::new(src),
                jsonl: true,
            },
            Format::Text => Inner::Lines {
                lines: LineReader::new(src),
                jsonl: false,
            },
            Format::Csv {
                delimiter,
                text_column,
            } => Inner::Csv(Box::new(delimited::Rows::new(
                src,
                delimiter,
                &text_column,
                max,
            )?)),
        };
        Ok(Self {
            inner,
            limits,
            files: None,
            done: false,
        })
    }

    /// Lets JSONL records name image files, read through `files`.
    pub fn with_image_files(mut self, files: Box<ImageFiles>) -> Self {
        self.files = Some(files);
        self
    }

    fn next_item(&mut self) -> Result<Option<Item>, ImportError> {
        let max = self.limits.max_record_bytes;
        let (lines, jsonl) = match &mut self.inner {
            Inner::Csv(rows) => return rows.next_item(),
            Inner::Lines { lines, jsonl } => (lines, *jsonl),
        };
        let line_max = if jsonl {
            self.limits.max_line_bytes()
        } else {
            max
        };
        loop {
            let Some(outcome) = lines.next_line(line_max)? else {
                return Ok(None);
            };
            let line = lines.line;
            if let Line::TooLong { bytes } = outcome {
                let reason = too_large(max, bytes);
                return Ok(Some(Item::Invalid(RecordError {
                    line,
                    field: None,
                    reason,
                })));
            }
            let bytes = &lines.buf[..];
            if bytes.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let parsed = if jsonl {
                jsonl::parse(line, bytes, &self.limits, self.files.as_deref_mut())
            } else {
                text_record(line, bytes)
            };
            return Ok(Some(parsed.map_or_else(Item::Invalid, Item::Record)));
        }
    }
}

impl<R: Read> Iterator for Parser<R> {
    type Item = Result<Item, ImportError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let next = self.next_item().transpose();
        self.done = !matches!(next, Some(Ok(_)));
        next
    }
}

impl<R: Read> FusedIterator for Parser<R> {}

fn text_record(line: u64, bytes: &[u8]) -> Result<Record, RecordError> {
    let text = std::str::from_utf8(bytes).map_err(|e| RecordError {
        line,
        field: None,
        reason: utf8_reason(&e),
    })?;
    let mut json = String::with_capacity(text.len() + 12);
    json.push_str("{\"text\":");
    push_json_str(&mut json, text);
    json.push('}');
    Ok(Record {
        line,
        input_hash: input_hash(text),
        text: text.to_owned(),
        json,
        image: None,
    })
}

fn too_large(max: usize, bytes: u64) -> String {
    format!("record is over the size limit of {max} bytes (at least {bytes} bytes)")
}

fn utf8_reason(e: &std::str::Utf8Error) -> String {
    format!(
        "not valid UTF-8 (first bad byte at offset {})",
        e.valid_up_to()
    )
}

/// Appends `s` as a JSON string literal, escaped the way `serde_json` does.
fn push_json_str(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    let mut clean = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[clean..i]);
        if escape.is_empty() {
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        } else {
            out.push_str(escape);
        }
        clean = i + 1;
    }
    out.push_str(&s[clean..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_escaping_matches_serde_json() {
        let nasty = "plain \"quoted\" back\\slash\n\r\t\u{8}\u{c}\u{1}\u{1f}\u{7f} é 😀";
        let mut out = String::new();
        push_json_str(&mut out, nasty);
        assert_eq!(out, serde_json::to_string(nasty).unwrap());
    }
}
