//! Pure parsing of teacher answers: labels out of free text, entities out of (maybe broken) JSON.
//!
//! Small models answer loosely ("Positive.", "the answer is: NEGATIVE", a JSON list cut off by
//! the token limit), so these functions are lenient about form and strict about content: a label
//! must be one of the caller's labels and an entity's text must occur in the input.

use std::ops::Range;

use super::Entity;

/// Index of the label that `answer` mentions first, ignoring case, punctuation and quotes; `None`
/// when it names none. At equal positions the longer label wins ("not spam" over "not").
pub fn parse_label(answer: &str, labels: &[&str]) -> Option<usize> {
    let haystack = normalise(answer);
    labels
        .iter()
        .enumerate()
        .filter_map(|(i, label)| {
            let needle = normalise(label);
            if needle.trim().is_empty() {
                return None;
            }
            haystack
                .find(&needle)
                .map(|pos| (pos, usize::MAX - needle.len(), i))
        })
        .min()
        .map(|(_, _, i)| i)
}

/// Lowercase words of `s` separated by single spaces, with a space at each end so that
/// `find(" label ")` only matches whole words.
fn normalise(s: &str) -> String {
    let words: Vec<String> = s
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    format!(" {} ", words.join(" "))
}

/// Geometric mean of the probabilities of the answer tokens overlapping the byte range `span`
/// (`ends[i]` is the byte offset just past token `i`); 0 when no token overlaps.
pub fn span_confidence(ends: &[usize], probs: &[f32], span: Range<usize>) -> f32 {
    let logs: Vec<f32> = ends
        .iter()
        .zip(probs)
        .enumerate()
        .filter(|(i, (end, _))| {
            let start = if *i == 0 { 0 } else { ends[i - 1] };
            start < span.end && **end > span.start
        })
        .map(|(_, (_, p))| p.max(f32::MIN_POSITIVE).ln())
        .collect();
    if logs.is_empty() {
        return 0.0;
    }
    (logs.iter().sum::<f32>() / logs.len() as f32).exp()
}

/// One `{"text", "label"}` pair read from an answer, with the bytes of the answer it came from.
#[derive(Debug, Clone, PartialEq)]
struct RawEntity {
    text: String,
    label: String,
    span: Range<usize>,
}

/// Turns a model's entity answer into spans of `text` (offsets in code points, end exclusive).
///
/// The answer is read as a JSON list of `{"text", "label"}` objects; if it is not valid JSON the
/// pairs are salvaged from `"text": ..., "label": ...` fragments. Labels are matched to `labels`
/// ignoring case (others are dropped); each entity text maps to its first occurrence in `text`
/// that no earlier entity claimed (exact case first, then ignoring case); texts not found are
/// dropped. `confidence` receives the byte range of the answer an entity came from.
pub fn entities_from_answer(
    text: &str,
    answer: &str,
    labels: &[&str],
    confidence: impl Fn(Range<usize>) -> f32,
) -> Vec<Entity> {
    let chars: Vec<char> = text.chars().collect();
    let mut claimed: Vec<Range<usize>> = Vec::new();
    let mut entities = Vec::new();
    for raw in read_pairs(answer) {
        let Some(label) = labels
            .iter()
            .find(|l| l.trim().to_lowercase() == raw.label.trim().to_lowercase())
        else {
            continue;
        };
        let needle: Vec<char> = raw.text.trim().chars().collect();
        let Some(range) = find_unclaimed(&chars, &needle, &claimed) else {
            continue;
        };
        claimed.push(range.clone());
        entities.push(Entity {
            start: range.start,
            end: range.end,
            label: (*label).to_string(),
            confidence: confidence(raw.span.clone()),
        });
    }
    entities.sort_by_key(|e| (e.start, e.end));
    entities
}

/// First occurrence of `needle` in `hay` overlapping no claimed range: exact, then ignoring case.
fn find_unclaimed(hay: &[char], needle: &[char], claimed: &[Range<usize>]) -> Option<Range<usize>> {
    if needle.is_empty() || needle.len() > hay.len() {
        return None;
    }
    let free = |r: &Range<usize>| claimed.iter().all(|c| r.end <= c.start || c.end <= r.start);
    let exact = |a: &char, b: &char| a == b;
    let folded = |a: &char, b: &char| a.to_lowercase().eq(b.to_lowercase());
    for same in [&exact as &dyn Fn(&char, &char) -> bool, &folded] {
        let found = (0..=hay.len() - needle.len())
            .map(|s| s..s + needle.len())
            .find(|r| free(r) && hay[r.clone()].iter().zip(needle).all(|(a, b)| same(a, b)));
        if found.is_some() {
            return found;
        }
    }
    None
}

/// The pairs of an answer: strict JSON when it parses, salvaged fragments otherwise.
/// Whether `answer` is a list of entities at all (a JSON list, or `"text"`/`"label"` pairs to
/// salvage), as opposed to prose: an empty list is an answer, prose is an abstention.
pub fn lists_entities(answer: &str) -> bool {
    strict_pairs(answer).is_some() || !salvage_pairs(answer).is_empty()
}

fn read_pairs(answer: &str) -> Vec<RawEntity> {
    let salvaged = salvage_pairs(answer);
    let Some(strict) = strict_pairs(answer) else {
        return salvaged;
    };
    // Strict JSON decides the pairs; the salvage scan, when it agrees, supplies their positions.
    let agrees = strict.len() == salvaged.len()
        && strict
            .iter()
            .zip(&salvaged)
            .all(|((t, l), s)| *t == s.text && *l == s.label);
    if agrees {
        return salvaged;
    }
    strict
        .into_iter()
        .map(|(text, label)| RawEntity {
            text,
            label,
            span: 0..answer.len(),
        })
        .collect()
}

/// `[{"text": .., "label": ..}, ..]` between the first `[` and the last `]`, if that is valid JSON.
fn strict_pairs(answer: &str) -> Option<Vec<(String, String)>> {
    let start = answer.find('[')?;
    let end = answer.rfind(']')?;
    if end < start {
        return None;
    }
    let items: Vec<serde_json::Value> = serde_json::from_str(&answer[start..=end]).ok()?;
    Some(
        items
            .iter()
            .filter_map(|item| {
                let text = item.get("text")?.as_str()?;
                let label = item.get("label")?.as_str()?;
                Some((text.to_string(), label.to_string()))
            })
            .collect(),
    )
}

/// Scans for `"text": "..."` and `"label": "..."` fragments (either quote style, either order)
/// and pairs each text with the nearest label.
fn salvage_pairs(answer: &str) -> Vec<RawEntity> {
    let mut pairs = Vec::new();
    let mut pending: Option<(&str, String, usize)> = None;
    let mut pos = 0;
    while let Some((key, value, span)) = next_field(answer, pos) {
        pos = span.end;
        match pending.take() {
            Some((first_key, first_value, start)) if first_key != key => {
                let (text, label) = if key == "label" {
                    (first_value, value)
                } else {
                    (value, first_value)
                };
                pairs.push(RawEntity {
                    text,
                    label,
                    span: start..span.end,
                });
            }
            // A key repeated before its partner: the earlier one had no pair, start again.
            _ => pending = Some((key, value, span.start)),
        }
    }
    pairs
}

/// The next `text`/`label` key at or after `from` with a quoted string value.
fn next_field(s: &str, from: usize) -> Option<(&'static str, String, Range<usize>)> {
    let mut at = from;
    while at < s.len() {
        let rel = s[at..].find(['"', '\''])?;
        let quote_at = at + rel;
        at = quote_at + 1;
        for key in ["text", "label"] {
            if let Some(r) = field_at(s, quote_at, key) {
                return Some((key, r.0, quote_at..r.1));
            }
        }
    }
    None
}

/// If `s[at..]` is `"key" : "value"`, returns the value and the byte index just past it.
fn field_at(s: &str, at: usize, key: &str) -> Option<(String, usize)> {
    let rest = &s[at..];
    let quote = rest.chars().next()?;
    let after_key = rest
        .strip_prefix(quote)?
        .strip_prefix(key)?
        .strip_prefix(quote)?;
    let after_colon = after_key.trim_start().strip_prefix(':')?.trim_start();
    let value_at = s.len() - after_colon.len();
    let (value, len) = read_quoted(after_colon)?;
    Some((value, value_at + len))
}

/// Reads a quoted string (JSON escapes) at the start of `s`; returns it and the bytes consumed.
fn read_quoted(s: &str) -> Option<(String, usize)> {
    let quote = s.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let mut out = String::new();
    let mut chars = s.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            c if c == quote => return Some((out, i + 1)),
            '\\' => {
                let (_, esc) = chars.next()?;
                match esc {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    'b' => out.push('\u{8}'),
                    'f' => out.push('\u{c}'),
                    'u' => {
                        let hex: String = (0..4)
                            .filter_map(|_| chars.next().map(|(_, h)| h))
                            .collect();
                        let code = u32::from_str_radix(&hex, 16).ok()?;
                        out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                    }
                    other => out.push(other),
                }
            }
            // An unclosed string runs to the end of the line at most.
            '\n' => return None,
            c => out.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const SENTIMENT: &[&str] = &["positive", "negative"];

    #[test]
    fn parse_label_tolerates_case_punctuation_and_quotes() {
        assert_eq!(parse_label("Positive.", SENTIMENT), Some(0));
        assert_eq!(parse_label("the answer is: NEGATIVE", SENTIMENT), Some(1));
        assert_eq!(parse_label("'positive'", SENTIMENT), Some(0));
        assert_eq!(parse_label("\"Negative\"!\n", SENTIMENT), Some(1));
        assert_eq!(parse_label("Label: **positive**", SENTIMENT), Some(0));
    }

    #[test]
    fn parse_label_returns_none_for_garbage() {
        assert_eq!(parse_label("garbage", SENTIMENT), None);
        assert_eq!(parse_label("", SENTIMENT), None);
        assert_eq!(parse_label("positively glowing", SENTIMENT), None);
    }

    #[test]
    fn parse_label_first_mention_wins_and_prefers_longer_labels() {
        assert_eq!(parse_label("negative, not positive", SENTIMENT), Some(1));
        assert_eq!(parse_label("positive or negative", SENTIMENT), Some(0));
        let spam = &["spam", "not spam"];
        assert_eq!(parse_label("Not spam.", spam), Some(1));
        assert_eq!(parse_label("It is spam", spam), Some(0));
        let dashed = &["sci-fi", "drama"];
        assert_eq!(parse_label("SCI FI", dashed), Some(0));
    }

    fn spans(text: &str, answer: &str, labels: &[&str]) -> Vec<(usize, usize, String)> {
        entities_from_answer(text, answer, labels, |_| 1.0)
            .into_iter()
            .map(|e| (e.start, e.end, e.label))
            .collect()
    }

    const NER: &[&str] = &["PERSON", "LOCATION"];

    #[test]
    fn entities_map_to_code_point_offsets() {
        let text = "Zoë flew to Paris 🇫🇷 then Berlin.";
        let answer =
            r#"[{"text": "Zoë", "label": "PERSON"}, {"text": "Berlin", "label": "location"}]"#;
        let got = spans(text, answer, NER);
        assert_eq!(
            got,
            vec![(0, 3, "PERSON".into()), (26, 32, "LOCATION".into())]
        );
        let chars: Vec<char> = text.chars().collect();
        assert_eq!(chars[26..32].iter().collect::<String>(), "Berlin");
    }

    #[test]
    fn duplicates_take_the_first_unused_occurrence() {
        let text = "Paris met Paris in Paris.";
        let answer = r#"[{"text":"Paris","label":"PERSON"},{"text":"Paris","label":"PERSON"},{"text":"Paris","label":"LOCATION"},{"text":"Paris","label":"LOCATION"}]"#;
        let got = spans(text, answer, NER);
        assert_eq!(
            got,
            vec![
                (0, 5, "PERSON".into()),
                (10, 15, "PERSON".into()),
                (19, 24, "LOCATION".into())
            ]
        );
    }

    #[test]
    fn missing_strings_and_unknown_labels_are_dropped() {
        let text = "Ada Lovelace lived in London.";
        let answer = r#"[{"text":"Charles Babbage","label":"PERSON"},{"text":"London","label":"CITY"},{"text":"ada lovelace","label":"PERSON"}]"#;
        assert_eq!(spans(text, answer, NER), vec![(0, 12, "PERSON".into())]);
    }

    #[test]
    fn malformed_json_is_salvaged() {
        let text = "Marie Curie worked in Paris and Warsaw.";
        // Single quotes, a missing comma, a trailing object cut off by the token limit.
        let answer = "Sure! [{'text': 'Marie Curie', 'label': 'PERSON'} {\"label\": \"LOCATION\", \"text\": \"Paris\"}, {\"text\": \"Warsaw\", \"lab";
        assert_eq!(
            spans(text, answer, NER),
            vec![(0, 11, "PERSON".into()), (22, 27, "LOCATION".into())]
        );
        assert!(spans(text, "no entities here", NER).is_empty());
        assert!(spans(text, "[]", NER).is_empty());
    }

    #[test]
    fn confidence_gets_the_answer_bytes_of_each_entity() {
        let answer = r#"[{"text": "Oslo", "label": "LOCATION"}]"#;
        let got = entities_from_answer("Oslo", answer, NER, |r| r.len() as f32);
        let expected = answer.find("\"LOCATION\"").unwrap() + "\"LOCATION\"".len() - 2;
        assert_eq!(got[0].confidence, expected as f32);
    }

    #[test]
    fn span_confidence_is_the_geometric_mean_of_overlapping_tokens() {
        let ends = [2, 5, 9];
        let probs = [0.5, 0.25, 1.0];
        assert!((span_confidence(&ends, &probs, 0..3) - (0.125f32).sqrt()).abs() < 1e-6);
        assert!((span_confidence(&ends, &probs, 5..9) - 1.0).abs() < 1e-6);
        assert_eq!(span_confidence(&ends, &probs, 9..12), 0.0);
    }

    #[test]
    fn escaped_strings_are_unescaped() {
        let text = "He said \"hi\" to Bob";
        let answer =
            r#"[{"text": "\"hi\"", "label": "PERSON"}, {"text": "B\u006fb", "label": "PERSON"}]"#;
        assert_eq!(
            spans(text, answer, NER),
            vec![(8, 12, "PERSON".into()), (16, 19, "PERSON".into())]
        );
    }
}
