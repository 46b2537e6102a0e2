//! Inter-annotator agreement: percent agreement, Cohen's and Fleiss' kappa, Krippendorff's alpha
//! (nominal), span F1 and box F1, and the per-task report built from them.

use std::collections::{BTreeMap, BTreeSet};

use gloss_proto::v1::{AgreementReport, Answer, Decision, Interface, LabelAgreement, Span, Task};

use crate::boxes::box_counts;
use crate::check::{is_span_interface, relation_keys};

/// Mean, over items with at least two ratings, of the share of rating pairs that agree.
///
/// Each item lists the category values its raters gave. `None` when no item has two ratings.
pub fn pairwise_percent_agreement(items: &[Vec<String>]) -> Option<f64> {
    let shares: Vec<f64> = items
        .iter()
        .filter(|ratings| ratings.len() >= 2)
        .map(|ratings| {
            let n = ratings.len() as f64;
            let agreeing: f64 = counts(ratings).values().map(|&c| pairs(c as f64)).sum();
            agreeing / pairs(n)
        })
        .collect();
    mean(&shares)
}

/// Cohen's kappa of two raters over the items both rated, given as (rater 1, rater 2) pairs.
///
/// `None` when there are no pairs or chance agreement is total (both used one same category).
pub fn cohen_kappa(pairs: &[(String, String)]) -> Option<f64> {
    if pairs.is_empty() {
        return None;
    }
    let n = pairs.len() as f64;
    let observed = pairs.iter().filter(|(a, b)| a == b).count() as f64 / n;
    let first = counts(pairs.iter().map(|(a, _)| a));
    let second = counts(pairs.iter().map(|(_, b)| b));
    if first.len() == 1 && second.len() == 1 && first.keys().eq(second.keys()) {
        return None;
    }
    let expected: f64 = first
        .iter()
        .map(|(category, &c)| {
            let other = second.get(category).copied().unwrap_or(0);
            (c as f64 / n) * (other as f64 / n)
        })
        .sum();
    Some((observed - expected) / (1.0 - expected))
}

/// Fleiss' kappa over items that each carry the same number (at least two) of ratings.
///
/// `None` when there are no items, the items' rating counts differ or are below two, or every
/// rating is in one category (chance agreement P̄e = 1).
pub fn fleiss_kappa(items: &[Vec<String>]) -> Option<f64> {
    let n = items.first()?.len();
    if n < 2 || items.iter().any(|ratings| ratings.len() != n) {
        return None;
    }
    let n = n as f64;
    let subjects = items.len() as f64;
    let mut totals: BTreeMap<&str, usize> = BTreeMap::new();
    let mut agreement_sum = 0.0;
    for ratings in items {
        let per_category = counts(ratings);
        let squares: f64 = per_category.values().map(|&c| (c * c) as f64).sum();
        agreement_sum += (squares - n) / (n * (n - 1.0));
        for (category, c) in per_category {
            *totals.entry(category).or_default() += c;
        }
    }
    if totals.len() < 2 {
        return None;
    }
    let p_bar = agreement_sum / subjects;
    let p_e: f64 = totals
        .values()
        .map(|&c| (c as f64 / (subjects * n)).powi(2))
        .sum();
    Some((p_bar - p_e) / (1.0 - p_e))
}

/// Krippendorff's alpha for nominal data; items may have any number of ratings (missing data),
/// and items with fewer than two are left out as unpairable.
///
/// `None` when fewer than one item remains or all pairable ratings are in one category (no
/// variation, so expected disagreement is zero and alpha is undefined).
pub fn krippendorff_alpha_nominal(items: &[Vec<String>]) -> Option<f64> {
    let mut observed = 0.0; // sum over units of disagreeing ordered pairs / (m_u - 1)
    let mut totals: BTreeMap<&str, usize> = BTreeMap::new();
    let mut n = 0usize;
    for ratings in items.iter().filter(|ratings| ratings.len() >= 2) {
        let m = ratings.len();
        let per_category = counts(ratings);
        let same: usize = per_category.values().map(|&c| c * c).sum();
        observed += (m * m - same) as f64 / (m - 1) as f64;
        n += m;
        for (category, c) in per_category {
            *totals.entry(category).or_default() += c;
        }
    }
    if n == 0 {
        return None;
    }
    let n = n as f64;
    let expected = n * n - totals.values().map(|&c| (c * c) as f64).sum::<f64>();
    if expected <= 0.0 {
        return None;
    }
    Some(1.0 - (n - 1.0) * observed / expected)
}

/// Exact (start, end, label) matches between two span lists: (matches, |a|, |b|).
///
/// Repeated spans match at most as often as they occur on both sides.
pub fn span_f1(a: &[Span], b: &[Span]) -> (u64, u64, u64) {
    match_counts(a.iter().map(span_key), b.iter().map(span_key))
}

/// F1 from match counts: 2·matches / (|a| + |b|); `None` when both sides are empty.
pub fn f1_score(matches: u64, a: u64, b: u64) -> Option<f64> {
    let total = a + b;
    (total > 0).then(|| 2.0 * matches as f64 / total as f64)
}

/// Agreement of one task's answers, overall and per label (in the task's label order).
///
/// Each inner `Vec` holds the current answers of distinct annotators to one example. IGNORE
/// answers count towards `annotators` but are not ratings. Metrics that do not apply or are
/// undefined are left unset.
pub fn agreement_report(task: &Task, items: &[Vec<Answer>]) -> AgreementReport {
    let annotators: BTreeSet<&str> = items
        .iter()
        .flatten()
        .map(|a| a.annotator.as_str())
        .collect();
    let rated: Vec<Vec<&Answer>> = items.iter().map(|answers| ratings_of(answers)).collect();
    let interface = task.interface();
    let (overall, labels) = if is_span_interface(interface) {
        span_report(task, &rated)
    } else if interface == Interface::ImageBoxes {
        box_report(task, &rated)
    } else {
        categorical_report(task, interface, &rated)
    };
    AgreementReport {
        project: task.project.clone(),
        task: task.name.clone(),
        annotators: annotators.len() as u64,
        overall: Some(overall),
        labels,
    }
}

/// One annotator's rating of one item.
type Rating<'a> = (&'a str, String);

/// The answers of an item that are ratings: decided (not IGNORE), one per annotator (the first).
fn ratings_of(answers: &[Answer]) -> Vec<&Answer> {
    let mut seen = BTreeSet::new();
    answers
        .iter()
        .filter(|a| matches!(a.decision(), Decision::Accept | Decision::Reject))
        .filter(|a| seen.insert(a.annotator.as_str()))
        .collect()
}

fn categorical_report(
    task: &Task,
    interface: Interface,
    rated: &[Vec<&Answer>],
) -> (LabelAgreement, Vec<LabelAgreement>) {
    // Categories are only compared for equality, so they are encoded unambiguously (JSON for
    // labels) rather than readably: a label named "reject" must not equal a rejection.
    let overall_category = |a: &Answer| -> String {
        match (interface, a.decision()) {
            (Interface::Binary, Decision::Accept) => "accept".to_owned(),
            (Interface::Binary, _) => "reject".to_owned(),
            (_, Decision::Reject) => "reject".to_owned(),
            (Interface::Choice, _) => {
                let chosen = a.choices.first().map_or("", String::as_str);
                serde_json::to_string(chosen).unwrap_or_default()
            }
            _ => {
                let chosen: BTreeSet<&str> = a.choices.iter().map(String::as_str).collect();
                serde_json::to_string(&chosen).unwrap_or_default()
            }
        }
    };
    let overall_items: Vec<Vec<Rating>> = rated
        .iter()
        .map(|answers| {
            answers
                .iter()
                .map(|a| (a.annotator.as_str(), overall_category(a)))
                .collect()
        })
        .collect();
    let overall = categorical(String::new(), task.overlap, &overall_items);
    let labels = task
        .labels
        .iter()
        .map(|label| {
            let per_label: Vec<Vec<Rating>> = rated
                .iter()
                .map(|answers| {
                    if interface == Interface::Binary {
                        answers
                            .iter()
                            .filter(|a| &a.label == label)
                            .map(|a| (a.annotator.as_str(), overall_category(a)))
                            .collect()
                    } else {
                        answers
                            .iter()
                            .map(|a| {
                                let chosen =
                                    a.decision() == Decision::Accept && a.choices.contains(label);
                                let category = if chosen { "yes" } else { "no" };
                                (a.annotator.as_str(), category.to_owned())
                            })
                            .collect()
                    }
                })
                .collect();
            categorical(label.clone(), task.overlap, &per_label)
        })
        .collect();
    (overall, labels)
}

/// The categorical figures for one label (or overall) from each item's ratings.
fn categorical(label: String, overlap: u32, items: &[Vec<Rating>]) -> LabelAgreement {
    let values =
        |ratings: &Vec<Rating>| -> Vec<String> { ratings.iter().map(|(_, c)| c.clone()).collect() };
    let multi: Vec<Vec<String>> = items
        .iter()
        .filter(|ratings| ratings.len() >= 2)
        .map(values)
        .collect();
    if multi.is_empty() {
        return LabelAgreement {
            label,
            ..Default::default()
        };
    }
    let raters: BTreeSet<&str> = items.iter().flatten().map(|(who, _)| *who).collect();
    let cohen = if raters.len() == 2 {
        let pairs: Vec<(String, String)> = items
            .iter()
            .filter(|ratings| ratings.len() == 2)
            .map(|ratings| {
                // Order each pair by annotator so rater 1 is always the same person.
                let (x, y) = (&ratings[0], &ratings[1]);
                let (x, y) = if x.0 <= y.0 { (x, y) } else { (y, x) };
                (x.1.clone(), y.1.clone())
            })
            .collect();
        cohen_kappa(&pairs)
    } else {
        None
    };
    let fleiss = if overlap >= 2 {
        let full: Vec<Vec<String>> = items
            .iter()
            .filter(|ratings| ratings.len() == overlap as usize)
            .map(values)
            .collect();
        fleiss_kappa(&full)
    } else {
        None
    };
    LabelAgreement {
        label,
        items: multi.len() as u64,
        percent_agreement: pairwise_percent_agreement(&multi),
        cohen_kappa: cohen,
        fleiss_kappa: fleiss,
        krippendorff_alpha: krippendorff_alpha_nominal(&multi),
        span_f1: None,
        relation_f1: None,
        box_f1: None,
    }
}

fn span_report(task: &Task, rated: &[Vec<&Answer>]) -> (LabelAgreement, Vec<LabelAgreement>) {
    let multi: Vec<&Vec<&Answer>> = rated.iter().filter(|answers| answers.len() >= 2).collect();
    let relations = task.interface() == Interface::Relations;
    let figures = |label: Option<&str>| -> LabelAgreement {
        let keep = |s: &&Span| label.is_none_or(|l| s.label == l);
        // An item's ratings agree when the spans (and, overall, the relations) are the same.
        let sets: Vec<Vec<String>> = multi
            .iter()
            .map(|answers| {
                answers
                    .iter()
                    .map(|a| {
                        let spans: BTreeSet<(u32, u32, &str)> =
                            a.spans.iter().filter(keep).map(span_key).collect();
                        let rels: BTreeSet<(&str, [u32; 4])> = if label.is_none() {
                            relation_keys(a).collect()
                        } else {
                            BTreeSet::new()
                        };
                        serde_json::to_string(&(spans, rels)).unwrap_or_default()
                    })
                    .collect()
            })
            .collect();
        LabelAgreement {
            span_f1: mean_pair_f1(&multi, |a| span_keys(a, label)),
            relation_f1: (relations && label.is_none())
                .then(|| mean_pair_f1(&multi, |a| relation_match_keys(a, None)))
                .flatten(),
            ..compared(label, &sets)
        }
    };
    let overall = figures(None);
    let mut labels: Vec<LabelAgreement> = task.labels.iter().map(|l| figures(Some(l))).collect();
    if relations {
        labels.extend(task.relation_labels.iter().map(|l| LabelAgreement {
            label: l.clone(),
            items: multi.len() as u64,
            relation_f1: mean_pair_f1(&multi, |a| relation_match_keys(a, Some(l))),
            ..Default::default()
        }));
    }
    (overall, labels)
}

/// An answer's spans (of `label`, when given) as match keys.
fn span_keys(a: &Answer, label: Option<&str>) -> Vec<String> {
    a.spans
        .iter()
        .filter(|s| label.is_none_or(|l| s.label == l))
        .map(|s| format!("{}\0{}\0{}", s.start, s.end, s.label))
        .collect()
}

/// An answer's relations (of `label`, when given) as match keys: the two ends' offsets and the
/// relation label.
fn relation_match_keys(a: &Answer, label: Option<&str>) -> Vec<String> {
    relation_keys(a)
        .filter(|(l, _)| label.is_none_or(|want| *l == want))
        .map(|(l, [hs, he, cs, ce])| format!("{hs}\0{he}\0{cs}\0{ce}\0{l}"))
        .collect()
}

/// The figures of `label` (overall when `None`) every comparison-based report shares: the items
/// rated twice or more and the percent agreement of their ratings, encoded in `sets`.
fn compared(label: Option<&str>, sets: &[Vec<String>]) -> LabelAgreement {
    LabelAgreement {
        label: label.unwrap_or_default().to_owned(),
        items: sets.len() as u64,
        percent_agreement: pairwise_percent_agreement(sets),
        ..Default::default()
    }
}

/// Box F1 at an intersection over union of 0.5, overall and per label, and percent agreement
/// of items whose boxes all match.
fn box_report(task: &Task, rated: &[Vec<&Answer>]) -> (LabelAgreement, Vec<LabelAgreement>) {
    let multi: Vec<&Vec<&Answer>> = rated.iter().filter(|answers| answers.len() >= 2).collect();
    let figures = |label: Option<&str>| -> LabelAgreement {
        // Whether two ratings agree is not transitive under overlap matching, so an item's
        // ratings are grouped by agreement with its first rating.
        let sets: Vec<Vec<String>> = multi
            .iter()
            .map(|answers| {
                answers
                    .iter()
                    .map(|a| {
                        let (m, x, y) = box_counts(answers[0], a, label);
                        let same = a.decision == answers[0].decision && x == y && m == x;
                        if same { "same" } else { a.annotator.as_str() }.to_owned()
                    })
                    .collect()
            })
            .collect();
        LabelAgreement {
            box_f1: mean_pair_f1_by(&multi, |a, b| box_counts(a, b, label)),
            ..compared(label, &sets)
        }
    };
    let overall = figures(None);
    let labels = task.labels.iter().map(|l| figures(Some(l))).collect();
    (overall, labels)
}

/// Mean over annotator pairs of the F1 pooled over the items both rated; pairs where neither
/// marked anything `keys` counts are skipped.
fn mean_pair_f1(items: &[&Vec<&Answer>], keys: impl Fn(&Answer) -> Vec<String>) -> Option<f64> {
    mean_pair_f1_by(items, |x, y| {
        match_counts(keys(x).into_iter(), keys(y).into_iter())
    })
}

/// [`mean_pair_f1`] with the (matches, size of one, size of the other) of a pair given by
/// `counts`.
fn mean_pair_f1_by(
    items: &[&Vec<&Answer>],
    counts: impl Fn(&Answer, &Answer) -> (u64, u64, u64),
) -> Option<f64> {
    let mut pooled: BTreeMap<(&str, &str), (u64, u64, u64)> = BTreeMap::new();
    for answers in items {
        for (i, x) in answers.iter().enumerate() {
            for y in &answers[i + 1..] {
                let (x, y) = if x.annotator <= y.annotator {
                    (x, y)
                } else {
                    (y, x)
                };
                let (m, a, b) = counts(x, y);
                let entry = pooled
                    .entry((x.annotator.as_str(), y.annotator.as_str()))
                    .or_default();
                *entry = (entry.0 + m, entry.1 + a, entry.2 + b);
            }
        }
    }
    let scores: Vec<f64> = pooled
        .values()
        .filter_map(|&(m, a, b)| f1_score(m, a, b))
        .collect();
    mean(&scores)
}

fn match_counts<K: Ord>(a: impl Iterator<Item = K>, b: impl Iterator<Item = K>) -> (u64, u64, u64) {
    let mut left: BTreeMap<K, u64> = BTreeMap::new();
    let mut size_a = 0;
    for key in a {
        *left.entry(key).or_default() += 1;
        size_a += 1;
    }
    let mut matches = 0;
    let mut size_b = 0;
    for key in b {
        size_b += 1;
        if let Some(c) = left.get_mut(&key).filter(|c| **c > 0) {
            *c -= 1;
            matches += 1;
        }
    }
    (matches, size_a, size_b)
}

fn span_key(span: &Span) -> (u32, u32, &str) {
    (span.start, span.end, span.label.as_str())
}

fn counts<'a, S: AsRef<str> + 'a>(
    values: impl IntoIterator<Item = &'a S>,
) -> BTreeMap<&'a str, usize> {
    let mut counts = BTreeMap::new();
    for v in values {
        *counts.entry(v.as_ref()).or_default() += 1;
    }
    counts
}

fn pairs(n: f64) -> f64 {
    n * (n - 1.0) / 2.0
}

fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

#[cfg(test)]
mod tests;
