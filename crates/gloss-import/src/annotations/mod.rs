//! Annotations made in other tools, read as examples with the answers their annotators gave:
//! Prodigy answer JSONL ([`prodigy`]), Label Studio JSON exports ([`label_studio`]) and spaCy
//! `DocBin` files ([`crate::docbin`]). Each reader yields one [`AnnotatedItem`] per source record
//! (an [`AnnotatedRecord`], or a [`RecordError`] naming the record and the field), so the
//! coordinator applies the same all-or-nothing, line-numbered rules as for plain imports.
//!
//! Nothing here knows a Gloss task: labels are checked against the task's scheme, and spans
//! against the example's tokens, by the coordinator and the state machine.

use crate::RecordError;

pub mod label_studio;
pub mod prodigy;

mod offsets;
mod scan;

/// What an annotator decided about an example.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Decision {
    #[default]
    Accept,
    Reject,
    Ignore,
}

/// A labelled character range of the example's text (code points, end exclusive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub start: u64,
    pub end: u64,
    pub label: String,
}

/// One annotator's answer to one example, as the source tool recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Annotation {
    /// Who answered; empty when the source does not say (the importer then names a default).
    pub annotator: String,
    /// A stable id of this answer in the source (Label Studio's annotation id, Prodigy's
    /// `_task_hash` with the annotator, a DocBin's document index), so importing the same file
    /// twice records each answer once.
    pub source_id: String,
    pub decision: Decision,
    /// Binary interfaces: the label decided on (Prodigy's `label` with accept/reject).
    pub label: String,
    /// Choice interfaces (textcat): the chosen labels.
    pub choices: Vec<String>,
    /// Span interfaces (NER): the entities.
    pub spans: Vec<Span>,
    /// Relations interface: relations between `spans`, by index.
    pub relations: Vec<Relation>,
}

/// A directed, labelled relation between two spans of the same annotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    /// Index of the head span in the annotation's `spans`.
    pub head: usize,
    /// Index of the child span.
    pub child: usize,
    pub label: String,
}

/// One example with every answer the source holds for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnotatedRecord {
    /// 1-based position of the record in the source (its line for JSONL; its index in the
    /// array or the `DocBin` otherwise), used in every error about it.
    pub line: u64,
    /// The example's text.
    pub text: String,
    /// The example as a Gloss record (a JSON object with `text` and, when the source has them,
    /// `meta` and other fields), stored as the example.
    pub json: String,
    pub annotations: Vec<Annotation>,
}

/// One parsed source record, valid or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnnotatedItem {
    Record(AnnotatedRecord),
    Invalid(RecordError),
}
