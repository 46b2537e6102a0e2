//! Pure annotation logic for Gloss: tokenising example texts, checking and normalising answers
//! against a task's label scheme, deciding when answers disagree, computing inter-annotator
//! agreement, and rendering export lines (Prodigy JSONL, CoNLL, Hugging Face JSONL).
//!
//! Everything here is a deterministic function of its arguments, because the replicated state
//! machine calls some of it ([`check_scheme`], [`disagreement`]) and every node must reach the
//! same verdict. This crate must never do I/O, spawn tasks or threads, read clocks, use
//! randomness or hash maps whose iteration order leaks into results, or depend on storage or
//! networking crates.

mod agree;
mod boxes;
mod check;
mod export;
mod tokenize;

pub use agree::{
    agreement_report, cohen_kappa, f1_score, fleiss_kappa, krippendorff_alpha_nominal,
    pairwise_percent_agreement, span_f1,
};
pub use boxes::{check_box_bounds, check_boxes, iou, matched_boxes, IOU_MATCH};
pub use check::{
    check_answer, check_relations, check_scheme, disagreement, is_image_interface, proposed_label,
    sort_spans, FieldError,
};
pub use export::{coco_document, conll_block, hf_line, prodigy_line, CocoImage, ExportError};
pub use tokenize::{char_len, snap_span, tokenize};

/// Builders shared by the unit tests of every module.
#[cfg(test)]
mod test_support {
    use gloss_proto::v1::{Interface, Span, Task};

    pub fn task(interface: Interface, labels: &[&str]) -> Task {
        Task {
            project: "p".into(),
            name: "t".into(),
            interface: interface as i32,
            labels: labels.iter().map(|l| l.to_string()).collect(),
            ..Default::default()
        }
    }

    pub fn span(start: u32, end: u32, label: &str) -> Span {
        Span {
            start,
            end,
            label: label.into(),
            ..Default::default()
        }
    }
}
