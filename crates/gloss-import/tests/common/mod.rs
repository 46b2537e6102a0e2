//! Helpers shared by the tests of the answer readers (Prodigy, Label Studio).

#![allow(dead_code)] // each test binary uses its own share of these

use std::io::{self, Read};

use gloss_import::annotations::{AnnotatedItem, AnnotatedRecord, Span};
use gloss_import::RecordError;

/// Hands out its bytes `piece` at a time, as a slow network or pipe would.
struct Trickle<'a> {
    bytes: &'a [u8],
    piece: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = self.piece.min(out.len()).min(self.bytes.len());
        out[..n].copy_from_slice(&self.bytes[..n]);
        self.bytes = &self.bytes[n..];
        Ok(n)
    }
}

/// What `read` makes of `input` read at once, checked to be the same when the bytes arrive 1, 3
/// or 7 at a time.
pub fn read_every_way(
    input: &[u8],
    read: impl Fn(&mut dyn Read) -> Vec<AnnotatedItem>,
) -> Vec<AnnotatedItem> {
    let items = read(&mut &input[..]);
    for piece in [1, 3, 7] {
        let mut trickle = Trickle {
            bytes: input,
            piece,
        };
        assert_eq!(read(&mut trickle), items, "read {piece} bytes at a time");
    }
    items
}

/// Fails on its first read.
pub struct Broken;

impl Read for Broken {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(io::Error::other("disk on fire"))
    }
}

pub fn records(items: Vec<AnnotatedItem>) -> Vec<AnnotatedRecord> {
    items
        .into_iter()
        .map(|item| match item {
            AnnotatedItem::Record(record) => record,
            AnnotatedItem::Invalid(error) => panic!("unexpected error: {error}"),
        })
        .collect()
}

/// Splits `items` into the texts of the good records and the errors, in order.
pub fn split(items: Vec<AnnotatedItem>) -> (Vec<String>, Vec<RecordError>) {
    let (mut good, mut bad) = (Vec::new(), Vec::new());
    for item in items {
        match item {
            AnnotatedItem::Record(record) => good.push(record.text),
            AnnotatedItem::Invalid(error) => bad.push(error),
        }
    }
    (good, bad)
}

/// Checks each error's line, field and (part of its) reason.
#[track_caller]
pub fn assert_errors(errors: &[RecordError], expected: &[(u64, Option<&str>, &str)]) {
    let got: Vec<_> = errors
        .iter()
        .map(|e| (e.line, e.field.as_deref()))
        .collect();
    let want: Vec<_> = expected.iter().map(|&(l, f, _)| (l, f)).collect();
    assert_eq!(got, want, "{errors:#?}");
    for (error, (_, _, reason)) in errors.iter().zip(expected) {
        assert!(error.reason.contains(reason), "{error}: wanted {reason:?}");
    }
}

pub fn span(start: u64, end: u64, label: &str) -> Span {
    Span {
        start,
        end,
        label: label.into(),
    }
}
