//! spaCy `DocBin` compatibility, checked against spaCy itself: we read a `.spacy` file spaCy
//! wrote (`tests/spacy/make_docbin.py`) and spaCy reads one we wrote (`tests/spacy/read_docbin.py`).
//! Needs `python3` with spaCy installed; without it these tests fail rather than skip.

use std::path::{Path, PathBuf};
use std::process::Command;

use gloss_import::annotations::{AnnotatedItem, AnnotatedRecord, Decision, Span};
use gloss_import::docbin::{self, DocOut};
use gloss_import::Limits;
use serde_json::Value;

const INSTALL: &str = "python3 -m pip install -q --disable-pip-version-check spacy";

/// Runs one of the Python scripts in `tests/spacy`, failing loudly when spaCy is missing.
fn python(script: &str, args: &[&Path]) -> Vec<u8> {
    let probe = Command::new("python3")
        .args(["-c", "import spacy"])
        .output();
    match probe {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "spaCy is not installed for python3 ({}); install it with `{INSTALL}` (the .ci/run \
             step) and run the tests again",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => panic!("cannot run python3 ({e}); install Python 3, then `{INSTALL}`"),
    }
    // Read at run time: cargo sets it for the test process, and a test binary built from
    // another checkout that shares the target directory would carry that checkout's path.
    let root = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf());
    let path = root.join("tests/spacy").join(script);
    let out = Command::new("python3")
        .arg(&path)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("docbin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn spans_of(ents: &Value) -> Vec<Span> {
    ents.as_array()
        .unwrap()
        .iter()
        .map(|e| Span {
            start: e[0].as_u64().unwrap(),
            end: e[1].as_u64().unwrap(),
            label: e[2].as_str().unwrap().to_owned(),
        })
        .collect()
}

#[test]
fn reads_the_docbin_files_spacy_writes() {
    let (bin, sidecar) = (scratch("spacy-wrote.spacy"), scratch("spacy-wrote.json"));
    python("make_docbin.py", &[&bin, &sidecar]);
    let expected: Vec<Value> = serde_json::from_slice(&std::fs::read(&sidecar).unwrap()).unwrap();
    let items = docbin::read(&std::fs::read(&bin).unwrap(), Limits::default()).unwrap();
    assert_eq!(items.len(), expected.len());
    assert!(
        expected.len() >= 6,
        "the script writes the docs this test is about"
    );
    for (i, (item, want)) in items.iter().zip(&expected).enumerate() {
        let AnnotatedItem::Record(record) = item else {
            panic!("doc {}: {item:?}", i + 1);
        };
        let AnnotatedRecord {
            line,
            text,
            json,
            annotations,
        } = record;
        assert_eq!(*line, i as u64 + 1);
        assert_eq!(text, want["text"].as_str().unwrap(), "doc {line}");
        let [answer] = annotations.as_slice() else {
            panic!("doc {line}: one answer expected, got {annotations:?}");
        };
        assert_eq!(answer.decision, Decision::Accept);
        assert_eq!(answer.annotator, "");
        assert_eq!(answer.source_id, format!("docbin-{line}"));
        assert_eq!(
            answer.spans,
            spans_of(&want["ents"]),
            "doc {line}: {text:?}"
        );
        let chosen: Vec<&str> = want["cats"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(_, score)| score.as_f64().unwrap() >= 0.5)
            .map(|(label, _)| label.as_str())
            .collect();
        assert_eq!(answer.choices, chosen, "doc {line}");
        let mut record_json = serde_json::json!({ "text": text });
        let meta = &want["user_data"];
        if !meta.as_object().unwrap().is_empty() {
            record_json["meta"] = meta.clone();
        }
        assert_eq!(
            serde_json::from_str::<Value>(json).unwrap(),
            record_json,
            "doc {line}"
        );
    }
    for path in [bin, sidecar] {
        std::fs::remove_file(path).unwrap();
    }
}

/// Tokens the way Gloss's word-boundary tokenizer cuts these texts: letter/digit runs (with
/// `_`) and single other characters, whitespace left out.
fn tokens(text: &str) -> Vec<(u64, u64)> {
    let word = |c: char| c.is_alphanumeric() || c == '_';
    let mut out: Vec<(u64, u64)> = Vec::new();
    let mut previous: Option<char> = None;
    for (i, c) in text.chars().enumerate() {
        let i = i as u64;
        if !c.is_whitespace() {
            match out.last_mut() {
                Some(last) if last.1 == i && word(c) && previous.is_some_and(word) => {
                    last.1 = i + 1
                }
                _ => out.push((i, i + 1)),
            }
        }
        previous = Some(c);
    }
    out
}

fn doc(text: &str, ents: &[(u64, u64, &str)], cats: &[(&str, f32)]) -> DocOut {
    DocOut {
        text: text.to_owned(),
        tokens: tokens(text),
        spans: ents
            .iter()
            .map(|&(start, end, label)| Span {
                start,
                end,
                label: label.to_owned(),
            })
            .collect(),
        cats: cats.iter().map(|&(l, s)| (l.to_owned(), s)).collect(),
    }
}

#[test]
fn spacy_reads_the_docbin_files_we_write() {
    let docs = [
        doc(
            "Zoë Müller visited Zürich.",
            &[(0, 10, "PERSON"), (19, 25, "GPE")],
            &[("travel", 0.9), ("sports", 0.1), ("edge", 0.5)],
        ),
        doc(
            "😀 naïve café  in São Paulo opened 🎉",
            &[(17, 26, "CITY_LOC"), (34, 35, "EMOJI")],
            &[("food", 0.75)],
        ),
        doc("", &[], &[]),
        doc(
            "  Apple Google\n\nbought\ttab  separated   Inc. ",
            &[(2, 7, "ORG"), (8, 14, "ORG"), (23, 37, "THING")],
            &[],
        ),
        doc(
            "ORG PERSON _ nsubj ADJ FLAG19 DEPRECATED001 IDX ENT_KB_ID IS_ALPHA",
            &[(0, 3, "_"), (4, 10, "nsubj")],
            &[("ORG", 1.0)],
        ),
    ];
    let bin = scratch("we-wrote.spacy");
    std::fs::write(&bin, docbin::write(&docs).unwrap()).unwrap();
    let seen: Vec<Value> = serde_json::from_slice(&python("read_docbin.py", &[&bin])).unwrap();
    assert_eq!(seen.len(), docs.len());
    for (i, (doc, got)) in docs.iter().zip(&seen).enumerate() {
        assert_eq!(got["text"].as_str().unwrap(), doc.text, "doc {}", i + 1);
        assert_eq!(
            spans_of(&got["ents"]),
            doc.spans,
            "doc {}: {:?}",
            i + 1,
            doc.text
        );
        let cats: Vec<(String, f32)> = got["cats"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(label, score)| (label.clone(), score.as_f64().unwrap() as f32))
            .collect();
        assert_eq!(cats, doc.cats, "doc {}", i + 1);
    }
    std::fs::remove_file(bin).unwrap();
}
