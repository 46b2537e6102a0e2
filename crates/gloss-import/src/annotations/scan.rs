//! Byte-level JSON scanning: where a value ends, found without parsing it, so that a Label
//! Studio export can be cut into tasks as it streams in, and a Prodigy line can lose its answer
//! fields while every other field keeps the bytes it was written with.

/// Finds the end of one JSON value fed to it in pieces, starting at the value's first byte.
/// It only tracks strings and bracket depth; whoever parses the value checks the rest.
#[derive(Debug, Default)]
pub(crate) struct ValueEnd {
    state: State,
}

#[derive(Debug, Default, Clone, Copy)]
enum State {
    #[default]
    Start,
    /// A number, `true`, `false` or `null`: it ends before the next delimiter.
    Scalar,
    /// Inside a string, itself inside `depth` brackets; just after a backslash when `escape`.
    String { depth: u64, escape: bool },
    /// Inside `depth` brackets, outside any string.
    Nested { depth: u64 },
}

impl ValueEnd {
    /// Consumes `bytes`, the next piece of the value; `Some(n)` when the value ends after
    /// `bytes[..n]`, `None` when it goes on past them.
    pub(crate) fn feed(&mut self, bytes: &[u8]) -> Option<usize> {
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            self.state = match self.state {
                State::Start => match b {
                    b'"' => State::String {
                        depth: 0,
                        escape: false,
                    },
                    b'{' | b'[' => State::Nested { depth: 1 },
                    _ => State::Scalar,
                },
                State::Scalar if is_delimiter(b) => return Some(i),
                State::Scalar => State::Scalar,
                State::String {
                    depth,
                    escape: true,
                } => State::String {
                    depth,
                    escape: false,
                },
                State::String { depth, .. } => match b {
                    b'\\' => State::String {
                        depth,
                        escape: true,
                    },
                    b'"' if depth == 0 => return Some(i + 1),
                    b'"' => State::Nested { depth },
                    _ => {
                        // Long texts are most of a task: jump to the next byte that matters.
                        match bytes[i..].iter().position(|&c| c == b'"' || c == b'\\') {
                            Some(skip) => i += skip,
                            None => return None,
                        }
                        continue;
                    }
                },
                State::Nested { depth } => match b {
                    b'"' => State::String {
                        depth,
                        escape: false,
                    },
                    b'{' | b'[' => State::Nested { depth: depth + 1 },
                    b'}' | b']' if depth == 1 => return Some(i + 1),
                    b'}' | b']' => State::Nested { depth: depth - 1 },
                    _ => State::Nested { depth },
                },
            };
            i += 1;
        }
        None
    }

    /// Whether the value is complete when the input ends here (only a scalar can be).
    pub(crate) fn complete_at_end(&self) -> bool {
        matches!(self.state, State::Scalar)
    }
}

fn is_delimiter(b: u8) -> bool {
    matches!(b, b',' | b']' | b'}' | b' ' | b'\t' | b'\n' | b'\r')
}

/// Whether `b` can start a JSON value.
pub(crate) fn starts_value(b: u8) -> bool {
    matches!(
        b,
        b'{' | b'[' | b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n'
    )
}

/// The JSON object `json` (already known to be a valid object) without the members whose key
/// `drop` selects. Every kept member keeps its bytes; whitespace between members is dropped.
pub(crate) fn without_members(json: &str, drop: impl Fn(&str) -> bool) -> String {
    let bytes = json.as_bytes();
    let skip_ws = |mut i: usize| {
        while bytes.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        i
    };
    let value_len = |i: usize| {
        ValueEnd::default()
            .feed(&bytes[i..])
            .unwrap_or(json.len() - i)
    };
    let mut out = String::with_capacity(json.len());
    out.push('{');
    // Just past the opening brace.
    let mut i = skip_ws(0) + 1;
    loop {
        i = skip_ws(i);
        if bytes.get(i).is_none_or(|&b| b == b'}') {
            break;
        }
        let key_raw = &json[i..i + value_len(i)];
        let key: String = serde_json::from_str(key_raw).unwrap_or_default();
        // Past the colon.
        let start = skip_ws(skip_ws(i + key_raw.len()) + 1);
        let value_raw = &json[start..start + value_len(start)];
        i = skip_ws(start + value_raw.len());
        if bytes.get(i) == Some(&b',') {
            i += 1;
        }
        if !drop(&key) {
            if out.len() > 1 {
                out.push(',');
            }
            out.push_str(key_raw);
            out.push(':');
            out.push_str(value_raw);
        }
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where each value in `json` ends, feeding it `piece` bytes at a time.
    fn end_of(json: &str, piece: usize) -> Option<usize> {
        let mut end = ValueEnd::default();
        let mut fed = 0;
        for chunk in json.as_bytes().chunks(piece) {
            if let Some(n) = end.feed(chunk) {
                return Some(fed + n);
            }
            fed += chunk.len();
        }
        end.complete_at_end().then_some(fed)
    }

    #[test]
    fn value_ends_respect_strings_escapes_and_nesting() {
        let cases = [
            (r#"{"a": "}\"]", "b": [1, {"c": "\\"}]}, {"next": 1}"#, 36),
            (r#""a \"quoted\" \\" , 2"#, 17),
            ("[[], {}, [[\"]\"]]] tail", 17),
            ("-12.5e3, 7", 7),
            ("true]", 4),
            ("null", 4),
            ("{\"unclosed\": \"", usize::MAX),
        ];
        for (json, expected) in cases {
            for piece in [1, 2, 3, 7, json.len()] {
                let got = end_of(json, piece).unwrap_or(usize::MAX);
                assert_eq!(got, expected, "{json:?} fed {piece} bytes at a time");
            }
        }
    }

    #[test]
    fn dropping_members_keeps_the_others_byte_for_byte() {
        let json = r#" { "text" : "a \"b\" }" , "answer":"accept", "meta": {"x": 1.50, "y": [1e3]},
            "sp\u0061ns": [{"start": 0}], "_input_hash": -12 } "#;
        let kept = without_members(json, |k| k == "answer" || k == "spans");
        assert_eq!(
            kept,
            r#"{"text":"a \"b\" }","meta":{"x": 1.50, "y": [1e3]},"_input_hash":-12}"#
        );
        assert_eq!(without_members("{}", |_| true), "{}");
        assert_eq!(without_members(r#"{"a":1}"#, |_| true), "{}");
        assert_eq!(without_members(r#"{"a":true}"#, |_| false), r#"{"a":true}"#);
    }
}
