//! spaCy `DocBin` files (`.spacy`): read their documents as annotated examples (entities and
//! text categories) and write Gloss examples back for `spacy train`.
//!
//! The layout, as spaCy 3's `DocBin.to_bytes` writes it (`spacy/tokens/_serialize.py`): zlib
//! around one msgpack map with `version` (`"0.1"`), `attrs` (the attribute ids of the token
//! array's columns, `ORTH` first), `tokens` (one row of little-endian `u64` per token, every doc's
//! rows concatenated, as raw bytes), `spaces` (one byte per token: whitespace follows it),
//! `lengths` (little-endian `i32` tokens per doc), `strings` (every string the token array refers
//! to), and per doc `cats` (label to score), `flags` (`has_unknown_spaces`), `span_groups`
//! (msgpack bytes) and, when the user data was stored, `user_data` (msgpack bytes). String
//! attributes hold ids from spaCy's string store ([`strings`]). Entities are the `ENT_IOB`
//! (0 missing, 1 I, 2 O, 3 B) and `ENT_TYPE` columns; offsets here are code points of the text.
//!
//! Span groups, lemmas, tags and parses are not read; the writer stores only what it knows
//! (`ORTH`, `ENT_IOB`, `ENT_TYPE`, spaces and cats).

mod strings;
mod write;

use std::collections::HashMap;
use std::io::Read;

use rmpv::ValueRef;
use serde_json::{Map, Value};

use crate::annotations::{AnnotatedItem, AnnotatedRecord, Annotation, Decision, Span};
use crate::{ImportError, Limits, RecordError};

pub use write::{write, DocOut};

/// Attribute ids (`spacy/attrs.pxd`) of the token-array columns used here.
const ORTH: u64 = 65;
const ENT_IOB: u64 = 77;
const ENT_TYPE: u64 = 78;

/// `ENT_IOB` values: indexes into spaCy's `("", "I", "O", "B")`.
const IOB_MISSING: u64 = 0;
const IOB_INSIDE: u64 = 1;
const IOB_OUTSIDE: u64 = 2;
const IOB_BEGIN: u64 = 3;

/// Categories scoring at least this are the example's choices.
const CHOSEN: f64 = 0.5;

/// A DocBin is one compressed message, decompressed whole; this bounds what a small hostile file
/// can make us allocate.
const MAX_DECOMPRESSED_BYTES: u64 = 1 << 30;

/// Nesting a DocBin needs (message, cats list, cats map, numpy scalar) with room to spare.
const MAX_DEPTH: usize = 16;

/// Reads every document of a `DocBin`, in order: each becomes an [`AnnotatedRecord`] (`line`
/// is its 1-based index) with one accepted [`Annotation`] holding its entities and the
/// categories scoring at least 0.5, or a [`RecordError`] naming the document and what is wrong
/// with it. Bytes that are not a `DocBin` at all give [`ImportError::NotDocBin`].
pub fn read(bytes: &[u8], limits: Limits) -> Result<Vec<AnnotatedItem>, ImportError> {
    let message = inflate(bytes)?;
    let value = rmpv::decode::read_value_ref_with_max_depth(&mut &message[..], MAX_DEPTH)
        .map_err(|e| not_docbin(format!("the decompressed data is not msgpack ({e})")))?;
    let bin = DocBin::parse(&value)?;
    Ok((0..bin.lengths.len())
        .map(|i| bin.item(i, limits))
        .collect())
}

fn not_docbin(reason: String) -> ImportError {
    ImportError::NotDocBin(reason)
}

fn inflate(bytes: &[u8]) -> Result<Vec<u8>, ImportError> {
    let mut out = Vec::new();
    flate2::read::ZlibDecoder::new(bytes)
        .take(MAX_DECOMPRESSED_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(|e| not_docbin(format!("the data is not zlib-compressed ({e})")))?;
    if out.len() as u64 > MAX_DECOMPRESSED_BYTES {
        return Err(not_docbin(format!(
            "it decompresses to more than {MAX_DECOMPRESSED_BYTES} bytes"
        )));
    }
    Ok(out)
}

/// The message's file-wide parts, checked for consistency; documents are decoded one by one.
struct DocBin<'a> {
    /// Columns per token row.
    width: usize,
    orth: usize,
    ent_iob: Option<usize>,
    ent_type: Option<usize>,
    tokens: &'a [u8],
    spaces: &'a [u8],
    lengths: Vec<usize>,
    /// First token row of each document.
    starts: Vec<usize>,
    strings: HashMap<u64, String>,
    cats: &'a [ValueRef<'a>],
    flags: Option<&'a [ValueRef<'a>]>,
    user_data: Option<&'a [ValueRef<'a>]>,
}

impl<'a> DocBin<'a> {
    fn parse(value: &'a ValueRef<'a>) -> Result<Self, ImportError> {
        let ValueRef::Map(entries) = value else {
            return Err(not_docbin("the message is not a map".to_owned()));
        };
        let field = |key: &str| lookup(entries, key);
        let required =
            |key: &str| field(key).ok_or_else(|| not_docbin(format!("the message has no `{key}`")));
        let attrs = attr_ids(required("attrs")?)?;
        let column = |id: u64| attrs.iter().position(|&a| a == id);
        let orth = column(ORTH).ok_or_else(|| not_docbin("`attrs` lacks ORTH (65)".to_owned()))?;
        let tokens = binary(required("tokens")?, "tokens")?;
        let spaces = binary(required("spaces")?, "spaces")?;
        let lengths = doc_lengths(binary(required("lengths")?, "lengths")?)?;
        let width = attrs.len();
        let total = lengths
            .iter()
            .try_fold(0usize, |sum, &n| sum.checked_add(n))
            .ok_or_else(|| not_docbin("`lengths` overflow".to_owned()))?;
        let token_bytes = width.checked_mul(8).and_then(|row| total.checked_mul(row));
        if token_bytes != Some(tokens.len()) {
            return Err(not_docbin(format!(
                "`lengths` add up to {total} tokens of {width} attributes, but `tokens` holds \
                 {} bytes",
                tokens.len()
            )));
        }
        if spaces.len() != total {
            return Err(not_docbin(format!(
                "`lengths` add up to {total} tokens, but `spaces` holds {}",
                spaces.len()
            )));
        }
        let starts = lengths
            .iter()
            .scan(0, |row, &len| {
                let start = *row;
                *row += len;
                Some(start)
            })
            .collect();
        let list = |key: &str| match field(key) {
            None => Ok(None),
            Some(ValueRef::Array(items)) => Ok(Some(items.as_slice())),
            Some(_) => Err(not_docbin(format!("`{key}` is not a list"))),
        };
        // spaCy indexes `cats` and `flags` by doc, and tolerates a short `user_data`.
        let one_per_doc = |key: &str, items: Option<&[ValueRef<'_>]>| match items {
            Some(items) if items.len() != lengths.len() => Err(not_docbin(format!(
                "`{key}` has {} entries for {} docs",
                items.len(),
                lengths.len()
            ))),
            _ => Ok(()),
        };
        let cats =
            list("cats")?.ok_or_else(|| not_docbin("the message has no `cats`".to_owned()))?;
        let flags = list("flags")?;
        one_per_doc("cats", Some(cats))?;
        one_per_doc("flags", flags)?;
        Ok(Self {
            width,
            orth,
            ent_iob: column(ENT_IOB),
            ent_type: column(ENT_TYPE),
            tokens,
            spaces,
            strings: string_table(required("strings")?)?,
            cats,
            flags,
            user_data: list("user_data")?,
            lengths,
            starts,
        })
    }

    fn item(&self, doc: usize, limits: Limits) -> AnnotatedItem {
        let line = doc as u64 + 1;
        match self.record(doc, line, limits) {
            Ok(record) => AnnotatedItem::Record(record),
            Err((field, reason)) => AnnotatedItem::Invalid(RecordError {
                line,
                field,
                reason: format!("doc {line}: {reason}"),
            }),
        }
    }

    fn record(&self, doc: usize, line: u64, limits: Limits) -> Result<AnnotatedRecord, Problem> {
        let tokens = self.doc_tokens(doc, limits)?;
        let text: String = tokens.iter().map(|t| t.text.as_str()).collect();
        let spans = self.entities(doc, &tokens)?;
        let choices = chosen_cats(&self.cats[doc])?;
        let mut json = Map::new();
        json.insert("text".to_owned(), Value::String(text.clone()));
        if let Some(meta) = self.meta(doc) {
            json.insert("meta".to_owned(), Value::Object(meta));
        }
        Ok(AnnotatedRecord {
            line,
            text,
            json: Value::Object(json).to_string(),
            annotations: vec![Annotation {
                source_id: format!("docbin-{line}"),
                decision: Decision::Accept,
                choices,
                spans,
                ..Annotation::default()
            }],
        })
    }

    /// The value in `column` of token row `row` (rows of every doc, concatenated).
    fn attr(&self, row: usize, column: usize) -> u64 {
        let at = (row * self.width + column) * 8;
        let mut word = [0; 8];
        word.copy_from_slice(&self.tokens[at..at + 8]);
        u64::from_le_bytes(word)
    }

    fn doc_tokens(&self, doc: usize, limits: Limits) -> Result<Vec<DocToken>, Problem> {
        let unknown_spaces = self.flags.is_some_and(|flags| {
            matches!(
                lookup_in(&flags[doc], "has_unknown_spaces"),
                Some(ValueRef::Boolean(true))
            )
        });
        let start = self.starts[doc];
        let mut tokens = Vec::with_capacity(self.lengths[doc]);
        let (mut chars, mut bytes) = (0, 0);
        for (i, row) in (start..start + self.lengths[doc]).enumerate() {
            let orth = self.attr(row, self.orth);
            let word = self
                .strings
                .get(&orth)
                .ok_or_else(|| unknown(i, "ORTH", orth))?;
            let space = unknown_spaces || self.spaces[row] != 0;
            let mut text = word.clone();
            if space {
                text.push(' ');
            }
            bytes += text.len();
            if bytes > limits.max_record_bytes {
                let reason = crate::too_large(limits.max_record_bytes, bytes as u64);
                return Err((None, reason));
            }
            let start = chars;
            let end = start + word.chars().count() as u64;
            chars = end + u64::from(space);
            tokens.push(DocToken { text, start, end });
        }
        Ok(tokens)
    }

    /// The doc's entities as spaCy's `Doc.ents` sees them.
    fn entities(&self, doc: usize, tokens: &[DocToken]) -> Result<Vec<Span>, Problem> {
        let Some(iob_column) = self.ent_iob else {
            return Ok(Vec::new());
        };
        let mut spans = Vec::new();
        let mut open: Option<Span> = None;
        let row0 = self.starts[doc];
        for (i, token) in tokens.iter().enumerate() {
            let row = row0 + i;
            match self.attr(row, iob_column) {
                IOB_INSIDE => match open.as_mut() {
                    Some(span) => span.end = token.end,
                    None => {
                        let reason = "ENT_IOB is I (inside an entity) but no entity is open";
                        return Err((field(i, "ENT_IOB"), reason.to_owned()));
                    }
                },
                IOB_MISSING | IOB_OUTSIDE => spans.extend(open.take()),
                IOB_BEGIN => {
                    spans.extend(open.take());
                    let label = self.ent_type.map_or(0, |column| self.attr(row, column));
                    if label != 0 {
                        let name = self
                            .strings
                            .get(&label)
                            .ok_or_else(|| unknown(i, "ENT_TYPE", label))?;
                        open = Some(Span {
                            start: token.start,
                            end: token.end,
                            label: name.clone(),
                        });
                    }
                }
                other => {
                    let reason =
                        format!("ENT_IOB is {other}, not 0 (missing), 1 (I), 2 (O) or 3 (B)");
                    return Err((field(i, "ENT_IOB"), reason));
                }
            }
        }
        spans.extend(open);
        spans.retain(|s| !s.label.is_empty());
        Ok(spans)
    }

    /// The doc's user data entries with string keys (extension attributes, keyed by tuples,
    /// are left out), when there are any.
    fn meta(&self, doc: usize) -> Option<Map<String, Value>> {
        let ValueRef::Binary(bytes) = self.user_data?.get(doc)? else {
            return None;
        };
        let value = rmpv::decode::read_value_ref_with_max_depth(&mut &bytes[..], MAX_DEPTH).ok()?;
        let ValueRef::Map(entries) = value else {
            return None;
        };
        let meta: Map<String, Value> = entries
            .iter()
            .filter_map(|(k, v)| Some((str_of(k)?.to_owned(), to_json(v)?)))
            .collect();
        (!meta.is_empty()).then_some(meta)
    }
}

/// What is wrong with one doc: the field to blame (e.g. `tokens[3].ENT_IOB`) and why.
type Problem = (Option<String>, String);

/// A token as it appears in the doc's text, with its code point range (trailing space excluded).
struct DocToken {
    text: String,
    start: u64,
    end: u64,
}

fn field(token: usize, attr: &str) -> Option<String> {
    Some(format!("tokens[{token}].{attr}"))
}

fn unknown(token: usize, attr: &str, id: u64) -> Problem {
    let reason = format!("{attr} {id} is not the id of any string in the DocBin's `strings`");
    (field(token, attr), reason)
}

fn lookup<'v>(entries: &'v [(ValueRef<'v>, ValueRef<'v>)], key: &str) -> Option<&'v ValueRef<'v>> {
    entries
        .iter()
        .find(|(k, _)| {
            str_of(k) == Some(key) || matches!(k, ValueRef::Binary(b) if *b == key.as_bytes())
        })
        .map(|(_, v)| v)
}

fn lookup_in<'v>(map: &'v ValueRef<'v>, key: &str) -> Option<&'v ValueRef<'v>> {
    match map {
        ValueRef::Map(entries) => lookup(entries, key),
        _ => None,
    }
}

fn str_of<'v>(value: &ValueRef<'v>) -> Option<&'v str> {
    match value {
        ValueRef::String(s) => s.into_str(),
        _ => None,
    }
}

fn binary<'a>(value: &ValueRef<'a>, key: &str) -> Result<&'a [u8], ImportError> {
    match value {
        ValueRef::Binary(bytes) => Ok(*bytes),
        _ => Err(not_docbin(format!("`{key}` is not a byte string"))),
    }
}

fn attr_ids(value: &ValueRef<'_>) -> Result<Vec<u64>, ImportError> {
    let bad = || not_docbin("`attrs` is not a non-empty list of attribute ids".to_owned());
    let ValueRef::Array(list) = value else {
        return Err(bad());
    };
    let ids = list
        .iter()
        .map(|v| match v {
            ValueRef::Integer(n) => n.as_u64().ok_or_else(bad),
            _ => Err(bad()),
        })
        .collect::<Result<Vec<_>, _>>()?;
    if ids.is_empty() {
        return Err(bad());
    }
    Ok(ids)
}

fn doc_lengths(bytes: &[u8]) -> Result<Vec<usize>, ImportError> {
    let chunks = bytes.chunks_exact(4);
    if !chunks.remainder().is_empty() {
        return Err(not_docbin(format!(
            "`lengths` holds {} bytes, not a whole number of int32 values",
            bytes.len()
        )));
    }
    chunks
        .enumerate()
        .map(|(i, chunk)| {
            let n = i32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            usize::try_from(n)
                .map_err(|_| not_docbin(format!("doc {} has a negative length ({n})", i + 1)))
        })
        .collect()
}

/// Every id the token array may hold: the reserved symbols, and each listed string under the
/// id spaCy gives it now and under its plain hash (what spaCy versions predating a symbol wrote).
fn string_table(value: &ValueRef<'_>) -> Result<HashMap<u64, String>, ImportError> {
    let ValueRef::Array(list) = value else {
        return Err(not_docbin("`strings` is not a list".to_owned()));
    };
    let interner = strings::Interner::new();
    let mut table: HashMap<u64, String> = strings::symbols()
        .map(|(id, name)| (id, name.into_owned()))
        .collect();
    for (i, v) in list.iter().enumerate() {
        let s = str_of(v)
            .ok_or_else(|| not_docbin(format!("`strings[{i}]` is not a valid UTF-8 string")))?;
        table.insert(interner.id(s), s.to_owned());
        table.insert(strings::hash(s), s.to_owned());
    }
    Ok(table)
}

/// The labels of `cats` scoring at least [`CHOSEN`], in the doc's order.
fn chosen_cats(cats: &ValueRef<'_>) -> Result<Vec<String>, Problem> {
    let ValueRef::Map(entries) = cats else {
        return Err((
            Some("cats".to_owned()),
            "is not a map of label to score".to_owned(),
        ));
    };
    let mut chosen = Vec::new();
    for (k, v) in entries {
        let label = str_of(k).ok_or_else(|| {
            (
                Some("cats".to_owned()),
                "a label is not a string".to_owned(),
            )
        })?;
        let score = score(v).ok_or_else(|| {
            (
                Some(format!("cats.{label}")),
                "the score is not a number".to_owned(),
            )
        })?;
        if score >= CHOSEN {
            chosen.push(label.to_owned());
        }
    }
    Ok(chosen)
}

/// A category score: a msgpack number or boolean, or a numpy float scalar as `srsly` packs it
/// (`{b"nd": false, b"type": "<f4", b"data": <bytes>}`).
fn score(value: &ValueRef<'_>) -> Option<f64> {
    match value {
        ValueRef::F64(x) => Some(*x),
        ValueRef::F32(x) => Some(f64::from(*x)),
        ValueRef::Integer(n) => n.as_f64(),
        ValueRef::Boolean(b) => Some(f64::from(u8::from(*b))),
        ValueRef::Map(_) => {
            let ValueRef::Binary(data) = lookup_in(value, "data")? else {
                return None;
            };
            match (str_of(lookup_in(value, "type")?)?, data.len()) {
                ("<f4", 4) => Some(f64::from(f32::from_le_bytes(data[..4].try_into().ok()?))),
                ("<f8", 8) => Some(f64::from_le_bytes(data[..8].try_into().ok()?)),
                _ => None,
            }
        }
        _ => None,
    }
}

/// A msgpack value as JSON, when it has a faithful JSON form.
fn to_json(value: &ValueRef<'_>) -> Option<Value> {
    Some(match value {
        ValueRef::Nil => Value::Null,
        ValueRef::Boolean(b) => Value::Bool(*b),
        ValueRef::Integer(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Value::from(i),
            (None, Some(u)) => Value::from(u),
            (None, None) => return None,
        },
        ValueRef::F32(x) => serde_json::Number::from_f64(f64::from(*x)).map(Value::Number)?,
        ValueRef::F64(x) => serde_json::Number::from_f64(*x).map(Value::Number)?,
        ValueRef::String(s) => Value::String(s.into_str()?.to_owned()),
        ValueRef::Array(items) => Value::Array(items.iter().map(to_json).collect::<Option<_>>()?),
        ValueRef::Map(entries) => Value::Object(
            entries
                .iter()
                .map(|(k, v)| Some((str_of(k)?.to_owned(), to_json(v)?)))
                .collect::<Option<_>>()?,
        ),
        ValueRef::Binary(_) | ValueRef::Ext(..) => return None,
    })
}

#[cfg(test)]
mod tests;
