//! Deterministic tokenisation on Unicode word boundaries, with offsets in code points.

use gloss_proto::v1::Token;
use unicode_segmentation::UnicodeSegmentation;

/// Splits `text` into tokens on UAX #29 word boundaries, dropping whitespace-only segments.
///
/// Offsets count Unicode code points (as Python indexes strings), `id` is the token's index and
/// `ws` tells whether whitespace directly follows the token. The result depends only on `text`
/// and the Unicode version compiled into `unicode-segmentation`, so every node of the cluster
/// tokenises an example the same way.
pub fn tokenize(text: &str) -> Vec<Token> {
    let mut tokens: Vec<Token> = Vec::new();
    let mut offset: u32 = 0;
    // Only whitespace immediately after a token sets its `ws`; a run of newlines after a
    // whitespace segment must not reach back further.
    let mut previous_was_token = false;
    for segment in text.split_word_bounds() {
        let start = offset;
        offset = offset.saturating_add(to_u32(segment.chars().count()));
        if segment.chars().all(char::is_whitespace) {
            if previous_was_token {
                if let Some(last) = tokens.last_mut() {
                    last.ws = true;
                }
            }
            previous_was_token = false;
            continue;
        }
        tokens.push(Token {
            text: segment.to_owned(),
            start,
            end: offset,
            id: to_u32(tokens.len()),
            ws: false,
        });
        previous_was_token = true;
    }
    tokens
}

/// Length of `text` in Unicode code points (saturating at `u32::MAX`).
pub fn char_len(text: &str) -> u32 {
    to_u32(text.chars().count())
}

/// Expands the code point range `start..end` to cover every token it touches.
///
/// A token is touched when it shares at least one code point with the range; an empty range
/// inside a token touches that token. Returns `None` when nothing is touched or `start > end`.
pub fn snap_span(tokens: &[Token], start: u32, end: u32) -> Option<(u32, u32)> {
    if start > end {
        return None;
    }
    let touches = |t: &&Token| {
        if start == end {
            t.start <= start && start < t.end
        } else {
            t.start < end && start < t.end
        }
    };
    let first = tokens.iter().find(touches)?;
    let last = tokens.iter().rev().find(touches)?;
    Some((first.start, last.end))
}

/// The code point slice `start..end` of `text` (clamped to the text).
pub(crate) fn slice_chars(text: &str, start: u32, end: u32) -> String {
    let start = start as usize;
    let len = (end as usize).saturating_sub(start);
    text.chars().skip(start).take(len).collect()
}

/// Index of the token that starts exactly at `offset`, if any (`tokens` sorted as produced).
pub(crate) fn token_starting_at(tokens: &[Token], offset: u32) -> Option<usize> {
    let i = tokens.partition_point(|t| t.start < offset);
    (i < tokens.len() && tokens[i].start == offset).then_some(i)
}

/// Index of the token that ends exactly at `offset`, if any (`tokens` sorted as produced).
pub(crate) fn token_ending_at(tokens: &[Token], offset: u32) -> Option<usize> {
    let i = tokens.partition_point(|t| t.end < offset);
    (i < tokens.len() && tokens[i].end == offset).then_some(i)
}

/// Of the `candidates` offsets (sorted), the one nearest to `offset`; ties go to the earlier.
pub(crate) fn nearest(candidates: impl Iterator<Item = u32>, offset: u32) -> Option<u32> {
    candidates.min_by_key(|&c| (c.abs_diff(offset), c))
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(tokens: &[Token]) -> Vec<&str> {
        tokens.iter().map(|t| t.text.as_str()).collect()
    }

    /// Every token's offsets, applied to the text by code points, give back its text.
    fn assert_round_trip(text: &str, tokens: &[Token]) {
        for (i, t) in tokens.iter().enumerate() {
            assert_eq!(t.id as usize, i);
            assert!(t.start < t.end, "{t:?}");
            assert_eq!(slice_chars(text, t.start, t.end), t.text, "{t:?}");
        }
        for pair in tokens.windows(2) {
            assert!(pair[0].end <= pair[1].start);
        }
    }

    #[test]
    fn english_sentence() {
        let text = "Hello, world! It's 3.14 o'clock.";
        let tokens = tokenize(text);
        assert_eq!(
            texts(&tokens),
            ["Hello", ",", "world", "!", "It's", "3.14", "o'clock", "."]
        );
        let ws: Vec<bool> = tokens.iter().map(|t| t.ws).collect();
        assert_eq!(ws, [false, true, false, true, true, true, false, false]);
        assert_eq!((tokens[2].start, tokens[2].end), (7, 12));
        assert_round_trip(text, &tokens);
    }

    #[test]
    fn french_and_german_with_accents_and_apostrophes() {
        let text = "l'été à Paris, die Straße über Köln";
        let tokens = tokenize(text);
        assert_eq!(
            texts(&tokens),
            ["l'été", "à", "Paris", ",", "die", "Straße", "über", "Köln"]
        );
        // Offsets count code points, not UTF-8 bytes: "l'été" is 5 code points but 7 bytes.
        assert_eq!((tokens[0].start, tokens[0].end), (0, 5));
        assert_eq!((tokens[1].start, tokens[1].end), (6, 7));
        assert_eq!((tokens[5].start, tokens[5].end), (19, 25));
        assert_round_trip(text, &tokens);
        assert_eq!(char_len(text), 35);
    }

    #[test]
    fn combining_marks_stay_inside_their_token() {
        // "é" written as e + U+0301: two code points, one token.
        let text = "cafe\u{301} noir";
        let tokens = tokenize(text);
        assert_eq!(texts(&tokens), ["cafe\u{301}", "noir"]);
        assert_eq!((tokens[0].start, tokens[0].end), (0, 5));
        assert_round_trip(text, &tokens);
    }

    #[test]
    fn emoji_are_tokens_of_their_own() {
        let text = "I ❤️ Rust 👍🏽!";
        let tokens = tokenize(text);
        assert_eq!(texts(&tokens), ["I", "❤️", "Rust", "👍🏽", "!"]);
        // "❤️" is U+2764 U+FE0F and "👍🏽" a thumb plus a skin-tone modifier: two code points each.
        assert_eq!((tokens[1].start, tokens[1].end), (2, 4));
        assert_eq!((tokens[3].start, tokens[3].end), (10, 12));
        assert_round_trip(text, &tokens);
    }

    #[test]
    fn cjk_ideographs_are_single_character_tokens() {
        let text = "我爱北京。";
        let tokens = tokenize(text);
        assert_eq!(texts(&tokens), ["我", "爱", "北", "京", "。"]);
        assert!(tokens.iter().all(|t| !t.ws));
        assert_eq!((tokens[3].start, tokens[3].end), (3, 4));
        assert_round_trip(text, &tokens);
    }

    #[test]
    fn empty_and_whitespace_only_texts_have_no_tokens() {
        assert!(tokenize("").is_empty());
        assert!(tokenize(" \t\n\r\n  ").is_empty());
        assert_eq!(char_len(""), 0);
    }

    #[test]
    fn whitespace_flags_and_line_breaks() {
        let text = "  a\n\nb c ";
        let tokens = tokenize(text);
        assert_eq!(texts(&tokens), ["a", "b", "c"]);
        assert_eq!(
            (tokens[0].start, tokens[1].start, tokens[2].start),
            (2, 5, 7)
        );
        assert!(tokens.iter().all(|t| t.ws));
        assert_round_trip(text, &tokens);
    }

    #[test]
    fn tokenisation_is_deterministic() {
        let text = "Dr. Müller's e-mail: mueller@example.org (2024-01-05) — 12,5 %";
        let tokens = tokenize(text);
        assert_eq!(tokens, tokenize(text));
        assert_round_trip(text, &tokens);
    }

    #[test]
    fn snap_span_expands_to_touched_tokens() {
        let tokens = tokenize("New York is big"); // New 0..3, York 4..8, is 9..11, big 12..15
        assert_eq!(snap_span(&tokens, 0, 8), Some((0, 8)));
        assert_eq!(snap_span(&tokens, 1, 5), Some((0, 8)));
        assert_eq!(snap_span(&tokens, 3, 4), None); // only the space
        assert_eq!(snap_span(&tokens, 3, 10), Some((4, 11)));
        assert_eq!(snap_span(&tokens, 5, 5), Some((4, 8))); // a caret inside "York"
        assert_eq!(snap_span(&tokens, 8, 8), None);
        assert_eq!(snap_span(&tokens, 14, 100), Some((12, 15)));
        assert_eq!(snap_span(&tokens, 100, 200), None);
        assert_eq!(snap_span(&tokens, 6, 2), None);
        assert_eq!(snap_span(&[], 0, 3), None);
    }

    #[test]
    fn boundary_helpers() {
        let tokens = tokenize("ab cd");
        assert_eq!(token_starting_at(&tokens, 3), Some(1));
        assert_eq!(token_starting_at(&tokens, 1), None);
        assert_eq!(token_ending_at(&tokens, 2), Some(0));
        assert_eq!(token_ending_at(&tokens, 3), None);
        assert_eq!(nearest([0, 3].into_iter(), 1), Some(0));
        assert_eq!(nearest([0, 3].into_iter(), 2), Some(3));
        assert_eq!(nearest([0, 4].into_iter(), 2), Some(0));
        assert_eq!(nearest(std::iter::empty(), 2), None);
        assert_eq!(slice_chars("été", 1, 3), "té");
    }
}
