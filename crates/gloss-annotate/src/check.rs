//! Answer checks against a task's label scheme and text, and the disagreement rule.

use std::collections::{BTreeMap, BTreeSet};

use gloss_proto::v1::{Answer, Decision, DisagreementPolicy, Interface, Relation, Span, Task};

use crate::boxes::{check_boxes, same_boxes};
use crate::tokenize::{
    char_len, nearest, slice_chars, token_ending_at, token_starting_at, tokenize,
};

/// Why an answer was refused, naming the answer field at fault (`spans[1].end`, `choices[0]`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}`: {reason}")]
pub struct FieldError {
    /// Path of the field, e.g. `label`, `choices[2]`, `spans[1].end`.
    pub field: String,
    /// What is wrong with it, in words.
    pub reason: String,
}

impl FieldError {
    /// A refusal of `field` for `reason`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Whether answers of this interface carry spans.
pub(crate) fn is_span_interface(interface: Interface) -> bool {
    matches!(
        interface,
        Interface::Ner | Interface::NerCorrect | Interface::Spans | Interface::Relations
    )
}

/// Checks `answer` against the task's scheme without looking at the text.
///
/// This runs inside the replicated state machine, so it must stay pure and give the same verdict
/// on every node and every version that replays the log: it uses no tokeniser, no clock and no
/// hashing with random state.
pub fn check_scheme(task: &Task, answer: &Answer) -> Result<(), FieldError> {
    let decision = match Decision::try_from(answer.decision) {
        Ok(d @ (Decision::Accept | Decision::Reject | Decision::Ignore)) => d,
        Ok(Decision::Unspecified) => {
            return Err(FieldError::new(
                "decision",
                "is unspecified; it must be ACCEPT, REJECT or IGNORE",
            ))
        }
        Err(_) => {
            return Err(FieldError::new(
                "decision",
                format!(
                    "unknown decision {}; it must be ACCEPT, REJECT or IGNORE",
                    answer.decision
                ),
            ))
        }
    };
    let interface = Interface::try_from(task.interface).unwrap_or(Interface::Unspecified);
    if interface != Interface::Relations && !answer.relations.is_empty() {
        return Err(FieldError::new(
            "relations",
            "must be empty: only a relations task has relations",
        ));
    }
    if interface != Interface::ImageBoxes && !answer.boxes.is_empty() {
        return Err(FieldError::new(
            "boxes",
            "must be empty: only an image-boxes task has boxes",
        ));
    }
    match interface {
        Interface::Unspecified => Err(FieldError::new(
            "interface",
            "the task has no known interface, so no answer can be checked",
        )),
        Interface::Binary => {
            if !task.labels.contains(&answer.label) {
                return Err(FieldError::new("label", unknown_label(task, &answer.label)));
            }
            must_be_empty(answer, "a binary task", true, true)
        }
        Interface::Choice | Interface::MultiChoice => {
            must_be_empty(answer, "a choice task", false, true)?;
            check_choices(task, answer, interface, decision)
        }
        Interface::Ner | Interface::NerCorrect | Interface::Spans => {
            must_be_empty(answer, "a span task", true, false)?;
            check_spans(task, answer, interface, decision)
        }
        Interface::Relations => {
            must_be_empty(answer, "a relations task", true, false)?;
            check_spans(task, answer, interface, decision)?;
            check_relations(task, &answer.spans, &answer.relations, decision)
        }
        Interface::ImageBoxes => {
            must_be_empty(answer, "an image-boxes task", true, true)?;
            check_boxes(task, answer, decision)
        }
        Interface::ImageChoice => {
            must_be_empty(answer, "an image-choice task", false, true)?;
            check_choices(task, answer, Interface::Choice, decision)
        }
    }
}

/// Whether the task's examples are images.
pub fn is_image_interface(interface: Interface) -> bool {
    matches!(interface, Interface::ImageBoxes | Interface::ImageChoice)
}

/// Checks relations between `spans` by index: both ends exist and differ, the label is one of the
/// task's relation labels, and no relation repeats another. Used for answers and suggestions.
pub fn check_relations(
    task: &Task,
    spans: &[Span],
    relations: &[Relation],
    decision: Decision,
) -> Result<(), FieldError> {
    if decision != Decision::Accept && !relations.is_empty() {
        return Err(FieldError::new(
            "relations",
            format!(
                "must be empty when the decision is {}; got {} relation(s)",
                decision_word(decision),
                relations.len()
            ),
        ));
    }
    for (i, r) in relations.iter().enumerate() {
        for (end, index) in [("head", r.head), ("child", r.child)] {
            if index as usize >= spans.len() {
                return Err(FieldError::new(
                    format!("relations[{i}].{end}"),
                    format!(
                        "span {index} does not exist; the answer has {} span(s)",
                        spans.len()
                    ),
                ));
            }
        }
        if r.head == r.child {
            return Err(FieldError::new(
                format!("relations[{i}]"),
                format!(
                    "relates spans[{}] ({}) to itself",
                    r.head,
                    describe(&spans[r.head as usize])
                ),
            ));
        }
        if !task.relation_labels.contains(&r.label) {
            let reason = if task.relation_labels.is_empty() {
                format!("unknown relation label {:?}; the task has none", r.label)
            } else {
                format!(
                    "unknown relation label {:?}; the task's relation labels are {}",
                    r.label,
                    task.relation_labels.join(", ")
                )
            };
            return Err(FieldError::new(format!("relations[{i}].label"), reason));
        }
    }
    let mut order: Vec<usize> = (0..relations.len()).collect();
    let key = |r: &Relation| (r.head, r.child, r.label.clone());
    order.sort_by_key(|&i| (key(&relations[i]), i));
    if let Some(pair) = order
        .windows(2)
        .find(|p| key(&relations[p[0]]) == key(&relations[p[1]]))
    {
        let (i, j) = (pair[0].max(pair[1]), pair[0].min(pair[1]));
        return Err(FieldError::new(
            format!("relations[{i}]"),
            format!("duplicates relations[{j}]"),
        ));
    }
    Ok(())
}

/// Checks `answer` like [`check_scheme`] and, for span interfaces, against the tokens of `text`;
/// then fills each span's `token_start`, `token_end` (inclusive) and `text`, and sorts the spans
/// by (start, end, label).
pub fn check_answer(task: &Task, text: &str, answer: &mut Answer) -> Result<(), FieldError> {
    check_scheme(task, answer)?;
    if !is_span_interface(task.interface()) || answer.spans.is_empty() {
        return Ok(());
    }
    let tokens = tokenize(text);
    let len = char_len(text);
    let mut located = Vec::with_capacity(answer.spans.len());
    for (i, span) in answer.spans.iter().enumerate() {
        if span.end > len {
            return Err(FieldError::new(
                format!("spans[{i}].end"),
                format!("{} ends past the text (length {len})", span.end),
            ));
        }
        let Some(first) = token_starting_at(&tokens, span.start) else {
            let hint = match nearest(tokens.iter().map(|t| t.start), span.start) {
                Some(n) => format!("nearest token starts at {n}"),
                None => "the text has no tokens".to_owned(),
            };
            return Err(FieldError::new(
                format!("spans[{i}].start"),
                format!("{} is not a token boundary; {hint}", span.start),
            ));
        };
        let Some(last) = token_ending_at(&tokens, span.end) else {
            let hint = match nearest(tokens.iter().map(|t| t.end), span.end) {
                Some(n) => format!("nearest token ends at {n}"),
                None => "the text has no tokens".to_owned(),
            };
            return Err(FieldError::new(
                format!("spans[{i}].end"),
                format!("{} is not a token boundary; {hint}", span.end),
            ));
        };
        located.push((first, last));
    }
    for (span, (first, last)) in answer.spans.iter_mut().zip(located) {
        span.token_start = tokens[first].id;
        span.token_end = tokens[last].id;
        span.text = slice_chars(text, span.start, span.end);
    }
    sort_spans(&mut answer.spans, &mut answer.relations);
    Ok(())
}

/// Sorts `spans` by (start, end, label) and keeps `relations` pointing at the same spans, then
/// sorts the relations by (head, child, label): one canonical form per answer.
pub fn sort_spans(spans: &mut Vec<Span>, relations: &mut [Relation]) {
    let mut order: Vec<usize> = (0..spans.len()).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (&spans[a], &spans[b]);
        (a.start, a.end, &a.label).cmp(&(b.start, b.end, &b.label))
    });
    let mut new_index = vec![0u32; spans.len()];
    for (new, &old) in order.iter().enumerate() {
        new_index[old] = new as u32;
    }
    let mut old: Vec<Option<Span>> = std::mem::take(spans).into_iter().map(Some).collect();
    spans.extend(order.iter().filter_map(|&i| old[i].take()));
    for r in relations.iter_mut() {
        // Indices were checked; one out of range is left as it is rather than panicking.
        if let (Some(&h), Some(&c)) = (
            new_index.get(r.head as usize),
            new_index.get(r.child as usize),
        ) {
            r.head = h;
            r.child = c;
        }
    }
    relations.sort_by(|a, b| (a.head, a.child, &a.label).cmp(&(b.head, b.child, &b.label)));
}

/// The label proposed for a binary decision on a record: its top-level `"label"` string when
/// that is one of the task's labels, else the task's first label ("" when it has none).
pub fn proposed_label(task: &Task, record_json: &str) -> String {
    let from_record = serde_json::from_str::<serde_json::Value>(record_json)
        .ok()
        .and_then(|v| v.get("label").and_then(|l| l.as_str()).map(str::to_owned))
        .filter(|l| task.labels.contains(l));
    from_record
        .or_else(|| task.labels.first().cloned())
        .unwrap_or_default()
}

/// Whether the answers to one example disagree under the task's policy: `None` when they agree
/// (or there are fewer than two), `Some(disputed labels)` when they don't, sorted; the list is
/// empty when the decisions themselves differ.
pub fn disagreement(task: &Task, answers: &[&Answer]) -> Option<Vec<String>> {
    let (first, rest) = answers.split_first()?;
    if rest.is_empty() {
        return None;
    }
    if rest.iter().any(|a| a.decision != first.decision) {
        return Some(Vec::new());
    }
    // Each answer as label -> what it says about that label; an absent label says nothing.
    let views: Vec<BTreeMap<&str, BTreeSet<[u32; 4]>>> = answers
        .iter()
        .map(|a| label_view(task.interface(), a))
        .collect();
    let mut all_labels: BTreeSet<&str> = views.iter().flat_map(|v| v.keys().copied()).collect();
    let image_boxes = task.interface() == Interface::ImageBoxes;
    if image_boxes {
        all_labels.extend(
            answers
                .iter()
                .flat_map(|a| a.boxes.iter().map(|b| b.label.as_str())),
        );
    }
    let per_label = task.disagreement() == DisagreementPolicy::PerLabel;
    let counts = |label: &str| {
        !per_label || task.review_labels.is_empty() || task.review_labels.iter().any(|r| r == label)
    };
    let disputed: Vec<String> = all_labels
        .into_iter()
        .filter(|label| counts(label))
        .filter(|label| {
            if image_boxes {
                // Boxes are never drawn to the pixel twice: the same box is one that overlaps.
                return rest.iter().any(|a| !same_boxes(first, a, label));
            }
            let first = views[0].get(label);
            views[1..].iter().any(|v| v.get(label) != first)
        })
        .map(str::to_owned)
        .collect();
    (!disputed.is_empty()).then_some(disputed)
}

/// What an answer says per label: presence for labels and choices, the (start, end) set for
/// spans, and for relation labels the (head start, head end, child start, child end) set (a task's
/// relation labels never share a name with its span labels).
fn label_view(interface: Interface, answer: &Answer) -> BTreeMap<&str, BTreeSet<[u32; 4]>> {
    let mut view: BTreeMap<&str, BTreeSet<[u32; 4]>> = BTreeMap::new();
    if is_span_interface(interface) {
        for span in &answer.spans {
            view.entry(span.label.as_str())
                .or_default()
                .insert([span.start, span.end, 0, 0]);
        }
        for (label, ends) in relation_keys(answer) {
            view.entry(label).or_default().insert(ends);
        }
    } else if interface == Interface::Binary {
        view.entry(answer.label.as_str()).or_default();
    } else {
        for choice in &answer.choices {
            view.entry(choice.as_str()).or_default();
        }
    }
    view
}

/// Each relation of an answer as (label, [head start, head end, child start, child end]); a
/// relation whose ends do not exist is left out.
pub(crate) fn relation_keys(answer: &Answer) -> impl Iterator<Item = (&str, [u32; 4])> {
    answer.relations.iter().filter_map(|r| {
        let head = answer.spans.get(r.head as usize)?;
        let child = answer.spans.get(r.child as usize)?;
        Some((
            r.label.as_str(),
            [head.start, head.end, child.start, child.end],
        ))
    })
}

pub(crate) fn unknown_label(task: &Task, label: &str) -> String {
    if task.labels.is_empty() {
        format!("unknown label {label:?}; the task has no labels")
    } else {
        format!(
            "unknown label {label:?}; the task's labels are {}",
            task.labels.join(", ")
        )
    }
}

fn must_be_empty(
    answer: &Answer,
    what: &str,
    choices: bool,
    spans: bool,
) -> Result<(), FieldError> {
    if choices && !answer.choices.is_empty() {
        return Err(FieldError::new(
            "choices",
            format!("must be empty for {what}"),
        ));
    }
    if spans && !answer.spans.is_empty() {
        return Err(FieldError::new(
            "spans",
            format!("must be empty for {what}"),
        ));
    }
    Ok(())
}

fn check_choices(
    task: &Task,
    answer: &Answer,
    interface: Interface,
    decision: Decision,
) -> Result<(), FieldError> {
    let n = answer.choices.len();
    if decision != Decision::Accept && n > 0 {
        return Err(FieldError::new(
            "choices",
            format!(
                "must be empty when the decision is {}; got {n} choice(s)",
                decision_word(decision)
            ),
        ));
    }
    if interface == Interface::Choice && decision == Decision::Accept && n != 1 {
        return Err(FieldError::new(
            "choices",
            format!("an accepted single-choice answer needs exactly one choice; got {n}"),
        ));
    }
    for (i, choice) in answer.choices.iter().enumerate() {
        if !task.labels.contains(choice) {
            return Err(FieldError::new(
                format!("choices[{i}]"),
                unknown_label(task, choice),
            ));
        }
        if let Some(j) = answer.choices[..i].iter().position(|c| c == choice) {
            return Err(FieldError::new(
                format!("choices[{i}]"),
                format!("{choice:?} repeats choices[{j}]"),
            ));
        }
    }
    Ok(())
}

fn check_spans(
    task: &Task,
    answer: &Answer,
    interface: Interface,
    decision: Decision,
) -> Result<(), FieldError> {
    if decision != Decision::Accept && !answer.spans.is_empty() {
        return Err(FieldError::new(
            "spans",
            format!(
                "must be empty when the decision is {}; got {} span(s)",
                decision_word(decision),
                answer.spans.len()
            ),
        ));
    }
    for (i, span) in answer.spans.iter().enumerate() {
        if !task.labels.contains(&span.label) {
            return Err(FieldError::new(
                format!("spans[{i}].label"),
                unknown_label(task, &span.label),
            ));
        }
        if span.start >= span.end {
            return Err(FieldError::new(
                format!("spans[{i}]"),
                format!(
                    "is empty or reversed (start {}, end {}); start must be below end",
                    span.start, span.end
                ),
            ));
        }
    }
    let spans = &answer.spans;
    // Sorting indices keeps this O(n log n): the state machine must not be stallable by one
    // answer with very many spans.
    if interface == Interface::Spans {
        let mut order: Vec<usize> = (0..spans.len()).collect();
        order.sort_by_key(|&i| (spans[i].start, spans[i].end, &spans[i].label, i));
        for pair in order.windows(2) {
            let (a, b) = (&spans[pair[0]], &spans[pair[1]]);
            if (a.start, a.end, &a.label) == (b.start, b.end, &b.label) {
                let (i, j) = (pair[0].max(pair[1]), pair[0].min(pair[1]));
                return Err(FieldError::new(
                    format!("spans[{i}]"),
                    format!("duplicates spans[{j}] ({})", describe(&spans[j])),
                ));
            }
        }
    } else {
        let mut order: Vec<usize> = (0..spans.len()).collect();
        order.sort_by_key(|&i| (spans[i].start, spans[i].end, i));
        // The span reaching furthest right so far; any later-starting span that begins before
        // its end overlaps it.
        let mut reach: Option<usize> = None;
        for &k in &order {
            if let Some(r) = reach {
                if spans[k].start < spans[r].end {
                    let (i, j) = (k.max(r), k.min(r));
                    return Err(FieldError::new(
                        format!("spans[{i}]"),
                        format!("overlaps spans[{j}] ({})", describe(&spans[j])),
                    ));
                }
            }
            if reach.is_none_or(|r| spans[k].end > spans[r].end) {
                reach = Some(k);
            }
        }
    }
    Ok(())
}

/// "3..8 ORG": a span as messages show it.
pub(crate) fn describe(span: &Span) -> String {
    format!("{}..{} {}", span.start, span.end, span.label)
}

pub(crate) fn decision_word(decision: Decision) -> &'static str {
    match decision {
        Decision::Accept => "ACCEPT",
        Decision::Reject => "REJECT",
        Decision::Ignore => "IGNORE",
        Decision::Unspecified => "UNSPECIFIED",
    }
}

#[cfg(test)]
mod tests;
