//! Gloss examples as a `DocBin` that spaCy 3 loads with `DocBin().from_bytes(..)`.

use std::collections::BTreeSet;
use std::io::Write;
use std::iter;

use flate2::write::ZlibEncoder;
use flate2::Compression;
use rmpv::Value;

use super::strings::Interner;
use super::{ENT_IOB, ENT_TYPE, IOB_BEGIN, IOB_INSIDE, IOB_OUTSIDE, ORTH};
use crate::annotations::Span;
use crate::ImportError;

/// What spaCy's `SpanGroups.to_bytes` writes for a doc without span groups (an empty msgpack
/// list).
const NO_SPAN_GROUPS: [u8; 1] = [0x90];

/// One example to write: its text, Gloss's tokens of it and its answers.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DocOut {
    pub text: String,
    /// Token ranges in code points, end exclusive, sorted and non-overlapping (Gloss's tokenizer
    /// output). Text between tokens is kept: a single space as the previous token's trailing
    /// space, anything else as a token of its own, the way spaCy's tokenizer keeps whitespace.
    pub tokens: Vec<(u64, u64)>,
    /// Entities; each must start where a token starts and end where a token ends.
    pub spans: Vec<Span>,
    /// Text categories and their scores.
    pub cats: Vec<(String, f32)>,
}

/// One spaCy token: its text, whether one space follows it, and its entity tag.
struct Token<'a> {
    orth: &'a str,
    space: bool,
    iob: u64,
    label: &'a str,
}

/// Serialises `docs` as spaCy 3's `DocBin.to_bytes` would: token texts and spaces, entities as
/// `ENT_IOB`/`ENT_TYPE` (tokens outside every span are `O`), and cats. Fails, naming the doc
/// (1-based) and the span or token, when a token range is not inside the text or out of order,
/// when a span does not line up with token boundaries or overlaps another, or when a category
/// repeats or scores NaN or infinity.
pub fn write(docs: &[DocOut]) -> Result<Vec<u8>, ImportError> {
    let interner = Interner::new();
    let mut strings = BTreeSet::from([""]);
    let (mut rows, mut spaces, mut lengths) = (Vec::new(), Vec::new(), Vec::new());
    for (i, doc) in docs.iter().enumerate() {
        let failed = |reason| ImportError::DocBinWrite {
            doc: i as u64 + 1,
            reason,
        };
        check_cats(&doc.cats).map_err(failed)?;
        let tokens = spacy_tokens(doc).map_err(failed)?;
        let count = i32::try_from(tokens.len())
            .map_err(|_| failed(format!("{} tokens are too many for spaCy", tokens.len())))?;
        lengths.extend_from_slice(&count.to_le_bytes());
        for token in tokens {
            strings.insert(token.orth);
            strings.insert(token.label);
            for value in [interner.id(token.orth), token.iob, interner.id(token.label)] {
                rows.extend_from_slice(&value.to_le_bytes());
            }
            spaces.push(u8::from(token.space));
        }
    }
    let each_doc =
        |value: &dyn Fn(&DocOut) -> Value| Value::Array(docs.iter().map(value).collect());
    let message = Value::Map(vec![
        entry("version", Value::from("0.1")),
        entry(
            "attrs",
            Value::Array(vec![ORTH.into(), ENT_IOB.into(), ENT_TYPE.into()]),
        ),
        entry("tokens", Value::Binary(rows)),
        entry("spaces", Value::Binary(spaces)),
        entry("lengths", Value::Binary(lengths)),
        entry(
            "strings",
            Value::Array(strings.into_iter().map(Value::from).collect()),
        ),
        entry("cats", each_doc(&|doc| cats_value(&doc.cats))),
        entry(
            "flags",
            each_doc(&|_| Value::Map(vec![entry("has_unknown_spaces", Value::Boolean(false))])),
        ),
        entry(
            "span_groups",
            each_doc(&|_| Value::Binary(NO_SPAN_GROUPS.to_vec())),
        ),
    ]);
    let mut packed = Vec::new();
    rmpv::encode::write_value(&mut packed, &message)
        .map_err(|e| ImportError::Io(std::io::Error::other(e.to_string())))?;
    let mut zlib = ZlibEncoder::new(Vec::new(), Compression::default());
    zlib.write_all(&packed)?;
    Ok(zlib.finish()?)
}

fn entry(key: &str, value: Value) -> (Value, Value) {
    (Value::from(key), value)
}

fn cats_value(cats: &[(String, f32)]) -> Value {
    Value::Map(
        cats.iter()
            .map(|(label, score)| (Value::from(label.as_str()), Value::F64(f64::from(*score))))
            .collect(),
    )
}

fn check_cats(cats: &[(String, f32)]) -> Result<(), String> {
    let mut seen = BTreeSet::new();
    for (label, score) in cats {
        if !seen.insert(label.as_str()) {
            return Err(format!("category `{label}` appears twice"));
        }
        if !score.is_finite() {
            return Err(format!("category `{label}` scores {score}"));
        }
    }
    Ok(())
}

/// The doc as spaCy tokens, whitespace between Gloss tokens included, so that joining them gives
/// back the text exactly.
fn spacy_tokens(doc: &DocOut) -> Result<Vec<Token<'_>>, String> {
    let text = doc.text.as_str();
    // Byte offset of every code point, and of the end.
    let bytes: Vec<usize> = text
        .char_indices()
        .map(|(b, _)| b)
        .chain(iter::once(text.len()))
        .collect();
    let chars = bytes.len() as u64 - 1;
    check_tokens(&doc.tokens, chars)?;
    let tags = entity_tags(doc)?;
    let slice = |start: u64, end: u64| &text[bytes[start as usize]..bytes[end as usize]];
    let mut out = Vec::with_capacity(doc.tokens.len());
    let mut at = 0;
    for (&(start, end), &(iob, label)) in doc.tokens.iter().zip(&tags) {
        // Whitespace inside an entity belongs to it, as spaCy's own whitespace tokens do.
        let gap_tag = if iob == IOB_INSIDE {
            (IOB_INSIDE, label)
        } else {
            (IOB_OUTSIDE, "")
        };
        push_gap(&mut out, slice(at, start), gap_tag);
        out.push(Token {
            orth: slice(start, end),
            space: false,
            iob,
            label,
        });
        at = end;
    }
    push_gap(&mut out, slice(at, chars), (IOB_OUTSIDE, ""));
    Ok(out)
}

fn push_gap<'a>(out: &mut Vec<Token<'a>>, mut gap: &'a str, (iob, label): (u64, &'a str)) {
    if let (Some(last), Some(rest)) = (out.last_mut(), gap.strip_prefix(' ')) {
        last.space = true;
        gap = rest;
    }
    if !gap.is_empty() {
        out.push(Token {
            orth: gap,
            space: false,
            iob,
            label,
        });
    }
}

fn check_tokens(tokens: &[(u64, u64)], chars: u64) -> Result<(), String> {
    let mut previous_end = 0;
    for (i, &(start, end)) in tokens.iter().enumerate() {
        if start >= end {
            return Err(format!("token {i} ({start}..{end}) is empty"));
        }
        if end > chars {
            return Err(format!(
                "token {i} ({start}..{end}) ends past the text ({chars} code points)"
            ));
        }
        if start < previous_end {
            return Err(format!(
                "token {i} ({start}..{end}) starts before the previous token ends ({previous_end})"
            ));
        }
        previous_end = end;
    }
    Ok(())
}

/// `ENT_IOB` and entity label of each Gloss token.
fn entity_tags(doc: &DocOut) -> Result<Vec<(u64, &str)>, String> {
    let tokens = &doc.tokens;
    let mut tags = vec![(IOB_OUTSIDE, ""); tokens.len()];
    let mut spans: Vec<&Span> = doc.spans.iter().collect();
    spans.sort_by_key(|s| (s.start, s.end));
    let mut previous: Option<&Span> = None;
    for span in spans {
        let name = || format!("span {}..{} `{}`", span.start, span.end, span.label);
        if span.label.is_empty() {
            return Err(format!("{} has an empty label", name()));
        }
        if span.start >= span.end {
            return Err(format!("{} is empty", name()));
        }
        let first = tokens.partition_point(|t| t.0 < span.start);
        if tokens.get(first).map(|t| t.0) != Some(span.start) {
            return Err(format!("{} does not start where a token starts", name()));
        }
        let last = tokens.partition_point(|t| t.1 < span.end);
        if tokens.get(last).map(|t| t.1) != Some(span.end) {
            return Err(format!("{} does not end where a token ends", name()));
        }
        if let Some(p) = previous.filter(|p| span.start < p.end) {
            return Err(format!(
                "{} overlaps span {}..{} `{}`",
                name(),
                p.start,
                p.end,
                p.label
            ));
        }
        tags[first] = (IOB_BEGIN, span.label.as_str());
        for tag in &mut tags[first + 1..=last] {
            *tag = (IOB_INSIDE, span.label.as_str());
        }
        previous = Some(span);
    }
    Ok(tags)
}
