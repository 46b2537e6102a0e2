//! Evaluation metrics: classification (accuracy, macro-F1, per-label P/R/F1) and exact-match
//! entity spans (micro and per-label P/R/F1).
//!
//! Conventions, chosen to match scikit-learn's `zero_division=0` and conlleval: a ratio with a
//! zero denominator is 0; macro-F1 averages over the labels that occur in the gold data or in
//! the predictions (a label nobody used would otherwise drag the average down for no reason).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Precision, recall and F1 with the counts they came from.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Prf {
    /// correct / predicted.
    pub precision: f64,
    /// correct / gold.
    pub recall: f64,
    /// Harmonic mean of precision and recall.
    pub f1: f64,
    /// Number of gold items (the label's support).
    pub gold: usize,
    /// Number of predicted items.
    pub predicted: usize,
    /// Number of predicted items that match a gold item.
    pub correct: usize,
}

impl Prf {
    /// Scores from raw counts; zero denominators give 0.
    pub fn from_counts(correct: usize, predicted: usize, gold: usize) -> Prf {
        let ratio = |num: usize, den: usize| {
            if den == 0 {
                0.0
            } else {
                num as f64 / den as f64
            }
        };
        let precision = ratio(correct, predicted);
        let recall = ratio(correct, gold);
        let f1 = if precision + recall == 0.0 {
            0.0
        } else {
            2.0 * precision * recall / (precision + recall)
        };
        Prf {
            precision,
            recall,
            f1,
            gold,
            predicted,
            correct,
        }
    }
}

/// Single-label classification scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassificationReport {
    /// Fraction of examples whose predicted label equals the gold label.
    pub accuracy: f64,
    /// Unweighted mean of per-label F1 over labels seen in gold or predictions.
    pub macro_f1: f64,
    /// Scores per label, keyed by label name.
    pub per_label: BTreeMap<String, Prf>,
}

/// Scores predicted label indices against gold ones; `labels[i]` names index `i`.
pub fn classification_report(
    labels: &[String],
    gold: &[usize],
    predicted: &[usize],
) -> Result<ClassificationReport> {
    let predicted: Vec<Option<usize>> = predicted.iter().copied().map(Some).collect();
    classification_report_with_abstentions(labels, gold, &predicted)
}

/// [`classification_report`] where a model may abstain (`None`): an abstention is never
/// correct and misses its gold label (lowering that label's recall), but predicts no label (so
/// no label's precision is lowered by it).
pub fn classification_report_with_abstentions(
    labels: &[String],
    gold: &[usize],
    predicted: &[Option<usize>],
) -> Result<ClassificationReport> {
    if gold.len() != predicted.len() {
        return Err(Error::InvalidInput(format!(
            "{} gold labels but {} predictions",
            gold.len(),
            predicted.len()
        )));
    }
    if let Some(&bad) = gold
        .iter()
        .chain(predicted.iter().flatten())
        .find(|&&i| i >= labels.len())
    {
        return Err(Error::InvalidInput(format!(
            "label index {bad} out of range for {} labels",
            labels.len()
        )));
    }
    let n = labels.len();
    let (mut correct, mut n_pred, mut n_gold) = (vec![0; n], vec![0; n], vec![0; n]);
    for (&g, p) in gold.iter().zip(predicted) {
        n_gold[g] += 1;
        if let Some(p) = *p {
            n_pred[p] += 1;
            if g == p {
                correct[g] += 1;
            }
        }
    }
    let per_label: BTreeMap<String, Prf> = (0..n)
        .map(|i| {
            (
                labels[i].clone(),
                Prf::from_counts(correct[i], n_pred[i], n_gold[i]),
            )
        })
        .collect();
    let accuracy = if gold.is_empty() {
        0.0
    } else {
        correct.iter().sum::<usize>() as f64 / gold.len() as f64
    };
    Ok(ClassificationReport {
        accuracy,
        macro_f1: macro_f1(per_label.values()),
        per_label,
    })
}

/// Multi-label scores: micro P/R/F1 over (example, label) pairs, macro-F1 and per-label scores.
pub fn multilabel_report(
    labels: &[String],
    gold: &[Vec<usize>],
    predicted: &[Vec<usize>],
) -> Result<(Prf, ClassificationReport)> {
    if gold.len() != predicted.len() {
        return Err(Error::InvalidInput(format!(
            "{} gold label sets but {} predictions",
            gold.len(),
            predicted.len()
        )));
    }
    let n = labels.len();
    let (mut correct, mut n_pred, mut n_gold) = (vec![0; n], vec![0; n], vec![0; n]);
    let mut exact = 0;
    for (g, p) in gold.iter().zip(predicted) {
        let g: BTreeSet<usize> = g.iter().copied().collect();
        let p: BTreeSet<usize> = p.iter().copied().collect();
        if let Some(&bad) = g.iter().chain(&p).find(|&&i| i >= n) {
            return Err(Error::InvalidInput(format!(
                "label index {bad} out of range for {n} labels"
            )));
        }
        g.iter().for_each(|&i| n_gold[i] += 1);
        p.iter().for_each(|&i| n_pred[i] += 1);
        g.intersection(&p).for_each(|&i| correct[i] += 1);
        exact += usize::from(g == p);
    }
    let micro = Prf::from_counts(
        correct.iter().sum(),
        n_pred.iter().sum(),
        n_gold.iter().sum(),
    );
    let per_label: BTreeMap<String, Prf> = (0..n)
        .map(|i| {
            (
                labels[i].clone(),
                Prf::from_counts(correct[i], n_pred[i], n_gold[i]),
            )
        })
        .collect();
    let report = ClassificationReport {
        // Subset accuracy: the whole label set must match.
        accuracy: if gold.is_empty() {
            0.0
        } else {
            exact as f64 / gold.len() as f64
        },
        macro_f1: macro_f1(per_label.values()),
        per_label,
    };
    Ok((micro, report))
}

fn macro_f1<'a>(scores: impl Iterator<Item = &'a Prf>) -> f64 {
    let used: Vec<f64> = scores
        .filter(|s| s.gold + s.predicted > 0)
        .map(|s| s.f1)
        .collect();
    if used.is_empty() {
        0.0
    } else {
        used.iter().sum::<f64>() / used.len() as f64
    }
}

/// A labelled span `[start, end)` in whatever unit the caller uses (chars, bytes or tokens).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Span {
    /// First unit of the span.
    pub start: usize,
    /// One past the last unit.
    pub end: usize,
    /// Entity label.
    pub label: String,
}

/// Exact-match entity scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanReport {
    /// Scores over all spans of all labels.
    pub micro: Prf,
    /// Scores per label (labels seen in gold or predictions).
    pub per_label: BTreeMap<String, Prf>,
}

/// Scores predicted spans against gold spans, document by document; a prediction counts only
/// when start, end and label all match. Duplicate spans within a document count once.
pub fn span_report(gold: &[Vec<Span>], predicted: &[Vec<Span>]) -> Result<SpanReport> {
    if gold.len() != predicted.len() {
        return Err(Error::InvalidInput(format!(
            "{} gold documents but {} predicted",
            gold.len(),
            predicted.len()
        )));
    }
    // label -> (correct, predicted, gold)
    let mut counts: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new();
    for (doc, (g, p)) in gold.iter().zip(predicted).enumerate() {
        for span in g.iter().chain(p) {
            if span.start > span.end {
                return Err(Error::InvalidInput(format!(
                    "document {doc}: span {}..{} ends before it starts",
                    span.start, span.end
                )));
            }
        }
        let g: BTreeSet<&Span> = g.iter().collect();
        let p: BTreeSet<&Span> = p.iter().collect();
        for s in &g {
            counts.entry(s.label.clone()).or_default().2 += 1;
        }
        for s in &p {
            let entry = counts.entry(s.label.clone()).or_default();
            entry.1 += 1;
            if g.contains(s) {
                entry.0 += 1;
            }
        }
    }
    let (c, p, g) = counts.values().fold((0, 0, 0), |acc, &(c, p, g)| {
        (acc.0 + c, acc.1 + p, acc.2 + g)
    });
    Ok(SpanReport {
        micro: Prf::from_counts(c, p, g),
        per_label: counts
            .into_iter()
            .map(|(label, (c, p, g))| (label, Prf::from_counts(c, p, g)))
            .collect(),
    })
}

/// Token spans from BIO (or IOB1) tags, conlleval-style: an `I-X` that does not continue an
/// `X` entity starts a new one; anything that is not `B-`/`I-` is outside.
pub fn spans_from_bio<S: AsRef<str>>(tags: &[S]) -> Vec<Span> {
    let mut spans = Vec::new();
    let mut open: Option<(usize, &str)> = None;
    for (i, tag) in tags.iter().enumerate() {
        let tag = tag.as_ref();
        let (kind, label) = match tag.split_once('-') {
            Some((k @ ("B" | "I"), label)) => (k, label),
            _ => ("O", ""),
        };
        let continues = kind == "I" && open.is_some_and(|(_, l)| l == label);
        if !continues {
            if let Some((start, l)) = open.take() {
                spans.push(Span {
                    start,
                    end: i,
                    label: l.to_string(),
                });
            }
            if kind != "O" {
                open = Some((i, label));
            }
        }
    }
    if let Some((start, l)) = open {
        spans.push(Span {
            start,
            end: tags.len(),
            label: l.to_string(),
        });
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn classification_by_hand() {
        // gold:      a a a b b c
        // predicted: a a b b c c
        // a: correct 2, predicted 2, gold 3 -> P 1, R 2/3, F1 0.8
        // b: correct 1, predicted 2, gold 2 -> P 1/2, R 1/2, F1 1/2
        // c: correct 1, predicted 2, gold 1 -> P 1/2, R 1, F1 2/3
        let labels = names(&["a", "b", "c"]);
        let r = classification_report(&labels, &[0, 0, 0, 1, 1, 2], &[0, 0, 1, 1, 2, 2]).unwrap();
        assert!(close(r.accuracy, 4.0 / 6.0));
        let a = r.per_label["a"];
        assert!(close(a.precision, 1.0) && close(a.recall, 2.0 / 3.0) && close(a.f1, 0.8));
        assert_eq!((a.correct, a.predicted, a.gold), (2, 2, 3));
        assert!(close(r.per_label["b"].f1, 0.5));
        assert!(close(r.per_label["c"].f1, 2.0 / 3.0));
        assert!(close(r.macro_f1, (0.8 + 0.5 + 2.0 / 3.0) / 3.0));
    }

    #[test]
    fn unused_labels_do_not_lower_macro_f1_and_zero_division_is_zero() {
        let labels = names(&["pos", "neg", "never"]);
        // Everything predicted "pos": neg has P = 0/0 -> 0.
        let r = classification_report(&labels, &[0, 0, 1, 1], &[0, 0, 0, 0]).unwrap();
        assert!(close(r.accuracy, 0.5));
        let pos_f1 = 2.0 * 0.5 * 1.0 / 1.5;
        assert!(close(r.per_label["pos"].f1, pos_f1));
        assert_eq!(r.per_label["neg"].precision, 0.0);
        assert!(close(r.macro_f1, pos_f1 / 2.0));
    }

    #[test]
    fn classification_rejects_bad_input() {
        let labels = names(&["a"]);
        assert!(classification_report(&labels, &[0], &[]).is_err());
        assert!(classification_report(&labels, &[1], &[0]).is_err());
    }

    #[test]
    fn multilabel_by_hand() {
        let labels = names(&["x", "y"]);
        // doc0 gold {x,y} pred {x}; doc1 gold {y} pred {x,y}
        let (micro, r) =
            multilabel_report(&labels, &[vec![0, 1], vec![1]], &[vec![0], vec![0, 1]]).unwrap();
        // correct: x 1, y 1 = 2; predicted 3; gold 3.
        assert_eq!((micro.correct, micro.predicted, micro.gold), (2, 3, 3));
        assert!(close(micro.f1, 2.0 / 3.0));
        assert_eq!(r.accuracy, 0.0);
        assert!(close(r.per_label["x"].precision, 0.5));
        assert!(close(r.per_label["y"].recall, 0.5));
    }

    fn span(start: usize, end: usize, label: &str) -> Span {
        Span {
            start,
            end,
            label: label.into(),
        }
    }

    #[test]
    fn spans_by_hand() {
        let gold = vec![
            vec![span(0, 2, "PER"), span(5, 6, "LOC")],
            vec![span(1, 3, "ORG")],
        ];
        let predicted = vec![
            // one exact, one boundary error
            vec![span(0, 2, "PER"), span(4, 6, "LOC")],
            // label error, plus a duplicate that counts once
            vec![span(1, 3, "PER"), span(1, 3, "PER")],
        ];
        let r = span_report(&gold, &predicted).unwrap();
        assert_eq!(
            (r.micro.correct, r.micro.predicted, r.micro.gold),
            (1, 3, 3)
        );
        assert!(close(r.micro.f1, 1.0 / 3.0));
        let per = &r.per_label["PER"];
        assert_eq!((per.correct, per.predicted, per.gold), (1, 2, 1));
        assert!(close(per.precision, 0.5) && close(per.recall, 1.0));
        assert_eq!(r.per_label["LOC"].f1, 0.0);
        assert_eq!(r.per_label["ORG"].recall, 0.0);
    }

    #[test]
    fn bio_decoding_follows_conlleval() {
        let tags = [
            "B-PER", "I-PER", "O", "I-LOC", "I-LOC", "B-LOC", "I-ORG", "B-X",
        ];
        assert_eq!(
            spans_from_bio(&tags),
            vec![
                span(0, 2, "PER"),
                span(3, 5, "LOC"),
                span(5, 6, "LOC"),
                span(6, 7, "ORG"),
                span(7, 8, "X"),
            ]
        );
        assert!(spans_from_bio::<&str>(&[]).is_empty());
    }

    #[test]
    fn abstentions_are_never_correct_and_cost_recall_not_precision() {
        let labels = vec!["pos".to_string(), "neg".to_string()];
        // gold: pos pos neg neg; predicted: pos, abstain, neg, pos.
        let r = classification_report_with_abstentions(
            &labels,
            &[0, 0, 1, 1],
            &[Some(0), None, Some(1), Some(0)],
        )
        .unwrap();
        assert!((r.accuracy - 0.5).abs() < 1e-12);
        let pos = &r.per_label["pos"];
        // pos: 1 correct of 2 predicted, 1 of 2 gold.
        assert!((pos.precision - 0.5).abs() < 1e-12 && (pos.recall - 0.5).abs() < 1e-12);
        let neg = &r.per_label["neg"];
        // neg: 1 correct of 1 predicted, 1 of 2 gold.
        assert!((neg.precision - 1.0).abs() < 1e-12 && (neg.recall - 0.5).abs() < 1e-12);
    }
}
