//! Character offsets. Gloss, Prodigy (Python string indices) and Label Studio since its
//! frontend stored code points count Unicode code points; older Label Studio versions counted
//! UTF-16 units (JavaScript string indices), which differ after any character outside the BMP.

/// The code point range `start..end` of `text`, or `None` when it runs past the end.
pub(crate) fn slice_chars(text: &str, start: u64, end: u64) -> Option<&str> {
    let mut bounds = text
        .char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(text.len()));
    let from = bounds.nth(usize::try_from(start).ok()?)?;
    let to = if end > start {
        bounds.nth(usize::try_from(end - start - 1).ok()?)?
    } else {
        from
    };
    text.get(from..to)
}

/// The code point offsets of the UTF-16 offsets `start..end` in `text`, or `None` when either
/// falls past the end or inside a surrogate pair.
pub(crate) fn utf16_to_chars(text: &str, start: u64, end: u64) -> Option<(u64, u64)> {
    let (mut units, mut chars) = (0u64, 0u64);
    let (mut from, mut to) = (None, None);
    for c in text.chars() {
        if units == start {
            from = Some(chars);
        }
        if units == end {
            to = Some(chars);
            break;
        }
        units += c.len_utf16() as u64;
        chars += 1;
    }
    if units == end {
        to = Some(chars);
    }
    Some((from?, to?))
}

/// `s` for a message: in backquotes, cut after 40 characters.
pub(crate) fn quote(s: &str) -> String {
    match s.char_indices().nth(40) {
        Some((cut, _)) => format!("`{}…`", &s[..cut]),
        None => format!("`{s}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_count_code_points() {
        let text = "l'été 😀 ok";
        assert_eq!(slice_chars(text, 2, 5), Some("été"));
        assert_eq!(slice_chars(text, 6, 7), Some("😀"));
        assert_eq!(slice_chars(text, 8, 10), Some("ok"));
        assert_eq!(slice_chars(text, 10, 10), Some(""));
        assert_eq!(slice_chars(text, 8, 11), None);
        assert_eq!(slice_chars(text, 11, 12), None);
    }

    #[test]
    fn utf16_offsets_become_code_points() {
        // "😀" is two UTF-16 units but one code point.
        let text = "😀 Alice";
        assert_eq!(utf16_to_chars(text, 3, 8), Some((2, 7)));
        assert_eq!(utf16_to_chars(text, 0, 2), Some((0, 1)));
        assert_eq!(
            utf16_to_chars(text, 1, 3),
            None,
            "inside the surrogate pair"
        );
        assert_eq!(utf16_to_chars(text, 3, 9), None, "past the end");
    }

    #[test]
    fn quotes_are_short() {
        assert_eq!(quote("Alice"), "`Alice`");
        assert_eq!(quote(&"é".repeat(50)), format!("`{}…`", "é".repeat(40)));
    }
}
