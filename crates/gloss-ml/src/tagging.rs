//! Token classification plumbing shared by the entity students: BIO tag sets, alignment of
//! character-offset gold spans onto tokens, and constrained (Viterbi) decoding back to spans.
//!
//! Everything here is pure: tokens are given as character ranges of the text (code points, end
//! exclusive, like [`Entity`]), so the same code serves word tokens and word pieces. Decoding
//! only ever yields well-formed BIO sequences: an `I-X` can follow only `B-X` or `I-X`, so every
//! span starts with a `B-` tag and has exactly one label.

use std::ops::Range;

use crate::error::{Error, Result};
use crate::metrics::Span;
use crate::teacher::Entity;

/// The tags for a list of entity labels: index 0 is `O`, label `k` has `B-` at `2k + 1` and
/// `I-` at `2k + 2`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagSet {
    labels: Vec<String>,
}

/// What a tag index means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    /// Outside any entity.
    Outside,
    /// First token of an entity of this label index.
    Begin(usize),
    /// A following token of an entity of this label index.
    Inside(usize),
}

impl TagSet {
    /// A tag set over `labels`, which must be non-empty, distinct and free of blanks.
    pub fn new(labels: Vec<String>) -> Result<TagSet> {
        if labels.is_empty() {
            return Err(Error::InvalidInput("tag set: no entity labels".into()));
        }
        for (i, label) in labels.iter().enumerate() {
            if label.trim().is_empty() {
                return Err(Error::InvalidInput(format!("tag set: label {i} is empty")));
            }
            if labels[..i].contains(label) {
                return Err(Error::InvalidInput(format!(
                    "tag set: label {label:?} is given twice"
                )));
            }
        }
        Ok(TagSet { labels })
    }

    /// The entity labels, in index order.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// Number of tags: `O` plus `B-` and `I-` per label.
    pub fn len(&self) -> usize {
        1 + 2 * self.labels.len()
    }

    /// Always false: a tag set has at least `O` and one label.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// What tag index `tag` stands for.
    pub fn tag(&self, tag: usize) -> Tag {
        match tag {
            0 => Tag::Outside,
            t if t % 2 == 1 => Tag::Begin((t - 1) / 2),
            t => Tag::Inside((t - 2) / 2),
        }
    }

    /// The conventional name of a tag: `O`, `B-label` or `I-label`.
    pub fn name(&self, tag: usize) -> String {
        match self.tag(tag) {
            Tag::Outside => "O".into(),
            Tag::Begin(l) => format!("B-{}", self.labels[l]),
            Tag::Inside(l) => format!("I-{}", self.labels[l]),
        }
    }

    /// Whether `next` may follow `prev` (`None`: the first token).
    pub fn allowed(&self, prev: Option<usize>, next: usize) -> bool {
        match self.tag(next) {
            Tag::Inside(l) => prev
                .is_some_and(|p| matches!(self.tag(p), Tag::Begin(k) | Tag::Inside(k) if k == l)),
            _ => true,
        }
    }

    /// Gold tag of each token: the first token overlapping a span gets `B-`, the other
    /// overlapping ones `I-`, the rest `O`. A span that covers no token (cut off by truncation)
    /// tags nothing.
    ///
    /// Fails, naming the span, when a span is empty, ends past `text_len` (in characters), has a
    /// label outside the set, or overlaps another span.
    pub fn align(
        &self,
        tokens: &[Range<usize>],
        spans: &[Span],
        text_len: usize,
    ) -> std::result::Result<Vec<usize>, String> {
        let mut sorted: Vec<&Span> = spans.iter().collect();
        sorted.sort();
        for (i, span) in sorted.iter().enumerate() {
            if span.start >= span.end {
                return Err(format!("span {}..{} is empty", span.start, span.end));
            }
            if span.end > text_len {
                return Err(format!(
                    "span {}..{} ends past the text (length {text_len})",
                    span.start, span.end
                ));
            }
            if i > 0 && sorted[i - 1].end > span.start {
                let prev = sorted[i - 1];
                return Err(format!(
                    "span {}..{} overlaps span {}..{}",
                    span.start, span.end, prev.start, prev.end
                ));
            }
        }
        let mut tags = vec![0; tokens.len()];
        for span in sorted {
            let label = self
                .labels
                .iter()
                .position(|l| *l == span.label)
                .ok_or_else(|| {
                    format!(
                        "span {}..{} has label {:?}, which is not one of {:?}",
                        span.start, span.end, span.label, self.labels
                    )
                })?;
            let mut first = true;
            for (tag, token) in tags.iter_mut().zip(tokens) {
                if token.start < span.end && span.start < token.end {
                    *tag = if first { 2 * label + 1 } else { 2 * label + 2 };
                    first = false;
                }
            }
        }
        Ok(tags)
    }

    /// The best well-formed tag sequence under per-token probabilities `probs` (row-major,
    /// `tokens × self.len()`): Viterbi over log-probabilities with forbidden transitions removed.
    pub fn viterbi(&self, probs: &[f32]) -> Vec<usize> {
        let n = self.len();
        let steps = probs.len() / n;
        if steps == 0 {
            return Vec::new();
        }
        let log = |t: usize, tag: usize| probs[t * n + tag].max(f32::MIN_POSITIVE).ln();
        let mut score: Vec<f32> = (0..n)
            .map(|tag| {
                if self.allowed(None, tag) {
                    log(0, tag)
                } else {
                    f32::NEG_INFINITY
                }
            })
            .collect();
        let mut back = vec![0usize; steps * n];
        for t in 1..steps {
            let mut next = vec![f32::NEG_INFINITY; n];
            for tag in 0..n {
                let best = (0..n)
                    .filter(|&p| score[p] > f32::NEG_INFINITY && self.allowed(Some(p), tag))
                    .map(|p| (p, score[p]))
                    .fold(None, |acc: Option<(usize, f32)>, (p, s)| match acc {
                        Some((_, bs)) if bs >= s => acc,
                        _ => Some((p, s)),
                    });
                if let Some((p, s)) = best {
                    next[tag] = s + log(t, tag);
                    back[t * n + tag] = p;
                }
            }
            score = next;
        }
        let mut tag = crate::train::argmax(&score);
        let mut path = vec![0; steps];
        for t in (0..steps).rev() {
            path[t] = tag;
            tag = back[t * n + tag];
        }
        path
    }

    /// Spans of a well-formed tag sequence, in token indices.
    pub fn token_spans(&self, tags: &[usize]) -> Vec<(Range<usize>, usize)> {
        let mut spans = Vec::new();
        let mut open: Option<(usize, usize)> = None;
        for (i, &tag) in tags.iter().enumerate() {
            let continues = matches!(
                (self.tag(tag), open),
                (Tag::Inside(l), Some((_, k))) if l == k
            );
            if continues {
                continue;
            }
            if let Some((start, label)) = open.take() {
                spans.push((start..i, label));
            }
            match self.tag(tag) {
                Tag::Begin(l) | Tag::Inside(l) => open = Some((i, l)),
                Tag::Outside => {}
            }
        }
        if let Some((start, label)) = open {
            spans.push((start..tags.len(), label));
        }
        spans
    }

    /// Entities of a text from its tokens' character ranges and their tag probabilities
    /// (row-major, `tokens × self.len()`): constrained decoding, then each token span mapped to
    /// the characters from its first token's start to its last token's end. An entity's
    /// confidence is the geometric mean of the probabilities of its tokens' decoded tags.
    pub fn decode(&self, tokens: &[Range<usize>], probs: &[f32]) -> Vec<Entity> {
        let n = self.len();
        let tags = self.viterbi(&probs[..tokens.len() * n]);
        self.token_spans(&tags)
            .into_iter()
            .map(|(span, label)| {
                let mean_log = span
                    .clone()
                    .map(|t| probs[t * n + tags[t]].max(f32::MIN_POSITIVE).ln())
                    .sum::<f32>()
                    / span.len() as f32;
                Entity {
                    start: tokens[span.start].start,
                    end: tokens[span.end - 1].end,
                    label: self.labels[label].clone(),
                    confidence: mean_log.exp(),
                }
            })
            .collect()
    }
}

/// A lookup tagger remembering every gold entity string (the baseline a student must beat):
/// it tags exact, case-insensitive occurrences of whole whitespace-separated words, longest
/// first, with the label that string most often had in training.
#[derive(Debug, Clone, Default)]
pub struct Gazetteer {
    /// Lower-cased entity text → label → count.
    entries: std::collections::HashMap<String, std::collections::BTreeMap<String, usize>>,
    longest: usize,
}

impl Gazetteer {
    /// Remembers the entities of `(text, spans)` examples (code-point spans).
    pub fn from_examples(examples: &[(String, Vec<Span>)]) -> Gazetteer {
        let mut g = Gazetteer::default();
        for (text, spans) in examples {
            let chars: Vec<char> = text.chars().collect();
            for span in spans.iter().filter(|s| s.end <= chars.len()) {
                let words: Vec<String> = chars[span.start..span.end]
                    .iter()
                    .collect::<String>()
                    .split_whitespace()
                    .map(str::to_lowercase)
                    .collect();
                g.longest = g.longest.max(words.len());
                *g.entries
                    .entry(words.join(" "))
                    .or_default()
                    .entry(span.label.clone())
                    .or_default() += 1;
            }
        }
        g
    }

    /// Entities found in `text`, left to right, confidence 1.
    pub fn tag(&self, text: &str) -> Vec<Entity> {
        let bytes: Vec<Range<usize>> = text
            .split_whitespace()
            .map(|w| {
                let start = w.as_ptr() as usize - text.as_ptr() as usize;
                start..start + w.len()
            })
            .collect();
        let words = byte_to_char_ranges(text, &bytes);
        let lower: Vec<String> = bytes
            .iter()
            .map(|r| text[r.clone()].to_lowercase())
            .collect();
        let mut out = Vec::new();
        let mut i = 0;
        while i < words.len() {
            let found = (1..=self.longest.min(words.len() - i)).rev().find_map(|n| {
                let key = lower[i..i + n].join(" ");
                let labels = self.entries.get(&key)?;
                // Most frequent label; ties go to the first in label order.
                let label = labels
                    .iter()
                    .fold(None, |best: Option<(&String, usize)>, (l, &c)| match best {
                        Some((_, bc)) if bc >= c => best,
                        _ => Some((l, c)),
                    })?
                    .0;
                Some((n, label.clone()))
            });
            match found {
                Some((n, label)) => {
                    out.push(Entity {
                        start: words[i].start,
                        end: words[i + n - 1].end,
                        label,
                        confidence: 1.0,
                    });
                    i += n;
                }
                None => i += 1,
            }
        }
        out
    }
}

/// Entities as plain spans, for [`span_report`](crate::metrics::span_report).
pub fn entity_spans(entities: &[Entity]) -> Vec<Span> {
    entities
        .iter()
        .map(|e| Span {
            start: e.start,
            end: e.end,
            label: e.label.clone(),
        })
        .collect()
}

/// Character (code point) range of each byte range of `text`; byte ranges must lie on
/// character boundaries and be sorted by start.
pub fn byte_to_char_ranges(text: &str, ranges: &[Range<usize>]) -> Vec<Range<usize>> {
    // One pass over the text: char index of every byte boundary we need.
    let mut boundaries: Vec<usize> = ranges.iter().flat_map(|r| [r.start, r.end]).collect();
    boundaries.sort_unstable();
    boundaries.dedup();
    let mut at = Vec::with_capacity(boundaries.len());
    let mut chars = 0;
    let mut next = boundaries.iter().peekable();
    for (byte, _) in text.char_indices().chain([(text.len(), ' ')]) {
        while next.peek().is_some_and(|&&b| b <= byte) {
            at.push((*next.next().unwrap_or(&byte), chars));
        }
        chars += 1;
    }
    let char_of = |b: usize| {
        at.binary_search_by_key(&b, |&(byte, _)| byte)
            .map_or(chars - 1, |i| at[i].1)
    };
    ranges
        .iter()
        .map(|r| char_of(r.start)..char_of(r.end))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> TagSet {
        TagSet::new(vec!["PER".into(), "LOC".into()]).unwrap()
    }

    fn span(start: usize, end: usize, label: &str) -> Span {
        Span {
            start,
            end,
            label: label.into(),
        }
    }

    #[test]
    fn tag_indices_and_names() {
        let s = set();
        assert_eq!(s.len(), 5);
        let names: Vec<String> = (0..5).map(|t| s.name(t)).collect();
        assert_eq!(names, ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]);
        assert_eq!(s.tag(4), Tag::Inside(1));
        assert!(TagSet::new(vec![]).is_err());
        assert!(TagSet::new(vec!["a".into(), "a".into()]).is_err());
    }

    #[test]
    fn only_b_or_i_of_the_same_label_precede_i() {
        let s = set();
        assert!(!s.allowed(None, 2));
        assert!(s.allowed(None, 1));
        assert!(s.allowed(Some(1), 2) && s.allowed(Some(2), 2));
        assert!(!s.allowed(Some(0), 2) && !s.allowed(Some(3), 2) && !s.allowed(Some(4), 2));
        assert!(s.allowed(Some(2), 3) && s.allowed(Some(4), 0));
    }

    #[test]
    fn alignment_tags_first_token_b_and_the_rest_i() {
        // "Ann Lee went to New York ." with word tokens.
        let tokens = [0..3, 4..7, 8..12, 13..15, 16..19, 20..24, 25..26];
        let spans = [span(16, 24, "LOC"), span(0, 7, "PER")];
        let tags = set().align(&tokens, &spans, 26).unwrap();
        assert_eq!(tags, [1, 2, 0, 0, 3, 4, 0]);
        // Word pieces: a span over "York" split in "Yo" "##rk" tags both pieces.
        let pieces = [16..19, 20..22, 22..24];
        let tags = set().align(&pieces, &[span(20, 24, "LOC")], 24).unwrap();
        assert_eq!(tags, [0, 3, 4]);
        // A span past a truncated token list tags nothing.
        assert_eq!(
            set().align(&pieces[..1], &[span(20, 24, "LOC")], 24),
            Ok(vec![0])
        );
    }

    #[test]
    fn alignment_rejects_bad_spans_by_name() {
        let tokens = [0..3, 4..7];
        let err = |spans: &[Span]| set().align(&tokens, spans, 7).unwrap_err();
        assert_eq!(
            err(&[span(4, 9, "PER")]),
            "span 4..9 ends past the text (length 7)"
        );
        assert!(err(&[span(0, 3, "ORG")]).contains("label \"ORG\""));
        assert_eq!(
            err(&[span(0, 5, "PER"), span(4, 7, "LOC")]),
            "span 4..7 overlaps span 0..5"
        );
        assert_eq!(err(&[span(3, 3, "PER")]), "span 3..3 is empty");
    }

    /// Probabilities from a list of (tag, p) per token, the rest spread evenly.
    fn probs(rows: &[(usize, f32)]) -> Vec<f32> {
        let n = 5;
        rows.iter()
            .flat_map(|&(tag, p)| (0..n).map(move |t| if t == tag { p } else { (1.0 - p) / 4.0 }))
            .collect()
    }

    #[test]
    fn viterbi_never_starts_a_span_with_i() {
        let s = set();
        // Greedy would say I-PER I-PER O: not well formed.
        let p = probs(&[(2, 0.6), (2, 0.6), (0, 0.9)]);
        let tags = s.viterbi(&p);
        assert_ne!(tags[0], 2);
        for (i, &t) in tags.iter().enumerate() {
            assert!(s.allowed(i.checked_sub(1).map(|j| tags[j]), t), "{tags:?}");
        }
        // The best legal repair here is B-PER I-PER O.
        assert_eq!(tags, [1, 2, 0]);
        // I-LOC after B-PER is illegal, whatever the probabilities say.
        let p = probs(&[(1, 0.9), (4, 0.9)]);
        let tags = s.viterbi(&p);
        assert!(s.allowed(Some(tags[0]), tags[1]), "{tags:?}");
        assert!(s.viterbi(&[]).is_empty());
    }

    #[test]
    fn decoding_maps_token_spans_to_characters_with_scores() {
        let s = set();
        let tokens = [0..3, 4..7, 8..12, 13..18];
        let p = probs(&[(1, 0.9), (2, 0.8), (0, 0.9), (3, 0.5)]);
        let entities = s.decode(&tokens, &p);
        assert_eq!(
            entity_spans(&entities),
            [span(0, 7, "PER"), span(13, 18, "LOC")]
        );
        assert!((entities[0].confidence - (0.9f32 * 0.8).sqrt()).abs() < 1e-5);
        assert!((entities[1].confidence - 0.5).abs() < 1e-5);
        // B-PER B-PER are two spans; I-PER after O is never produced.
        let p = probs(&[(1, 0.9), (1, 0.9)]);
        assert_eq!(s.decode(&tokens[..2], &p).len(), 2);
    }

    #[test]
    fn token_spans_of_well_formed_tags() {
        let s = set();
        assert_eq!(
            s.token_spans(&[1, 2, 0, 3, 1, 2, 2]),
            vec![(0..2, 0), (3..4, 1), (4..7, 0)]
        );
    }

    #[test]
    fn byte_ranges_become_char_ranges() {
        let text = "café au lait";
        // "café" is bytes 0..5, "au" 6..8, "lait" 9..13.
        assert_eq!(
            byte_to_char_ranges(text, &[0..5, 6..8, 9..13]),
            vec![0..4, 5..7, 8..12]
        );
        assert_eq!(byte_to_char_ranges("é", &[0..0, 0..2]), vec![0..0, 0..1]);
    }

    #[test]
    fn gazetteer_tags_remembered_strings_longest_first() {
        let train = vec![
            ("I love New York".to_string(), vec![span(7, 15, "LOC")]),
            ("York is old".to_string(), vec![span(0, 4, "PER")]),
            ("york again".to_string(), vec![span(0, 4, "LOC")]),
            ("York too".to_string(), vec![span(0, 4, "PER")]),
        ];
        let g = Gazetteer::from_examples(&train);
        let found = g.tag("new  york and York, yorkshire");
        // "York," is not the word "york": only whole words match.
        assert_eq!(entity_spans(&found), [span(0, 9, "LOC")]);
        assert_eq!(entity_spans(&g.tag("see York")), [span(4, 8, "PER")]);
    }
}
