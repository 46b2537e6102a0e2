//! GGUF tokenizer tests against the SmolLM2-135M-Instruct vocabulary.

mod common;

use std::sync::OnceLock;

use gloss_ml::GgufTokenizer;

fn tokenizer() -> &'static GgufTokenizer {
    static TOKENIZER: OnceLock<GgufTokenizer> = OnceLock::new();
    TOKENIZER
        .get_or_init(|| GgufTokenizer::from_file(&common::smollm2_gguf()).expect("load tokenizer"))
}

#[test]
fn metadata_gives_vocabulary_and_special_ids() {
    let tok = tokenizer();
    assert_eq!(tok.vocab_size(), 49152);
    assert_eq!(tok.bos_id(), Some(1));
    assert_eq!(tok.eos_id(), 2);
    assert_eq!(tok.unk_id(), Some(0));
    assert!(!tok.add_bos());
    assert_eq!(tok.token(1), Some("<|im_start|>"));
}

#[test]
fn round_trips_varied_text() {
    let tok = tokenizer();
    let samples = [
        "Hello, world!",
        "Crème brûlée, naïve café, Ångström, Straße.",
        "Emoji: 🎉🇫🇷👩‍💻 and CJK: 日本語のテキスト",
        "line one\nline two\r\n\ttabbed   spaced  \n\n",
        "  leading and trailing spaces  ",
        "numbers 1234567 and 3.14159, code: fn main() { println!(\"{x}\"); }",
        "",
    ];
    for s in samples {
        let ids = tok.encode(s).unwrap();
        assert_eq!(tok.decode(&ids).unwrap(), s, "ids {ids:?}");
        let plain = tok.encode_plain(s).unwrap();
        assert_eq!(
            plain, ids,
            "{s:?}: no special tokens, so both encodings agree"
        );
    }
}

#[test]
fn chat_special_tokens_are_atomic() {
    let tok = tokenizer();
    let ids = tok
        .encode("<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n")
        .unwrap();
    let im_start = tok.token_id("<|im_start|>").unwrap();
    let im_end = tok.token_id("<|im_end|>").unwrap();
    assert_eq!((im_start, im_end), (1, 2));
    assert_eq!(ids[0], im_start);
    assert_eq!(ids.iter().filter(|&&i| i == im_start).count(), 2);
    assert_eq!(ids.iter().filter(|&&i| i == im_end).count(), 1);
    assert!(tok.is_special(im_start) && tok.is_special(im_end));
    assert_eq!(
        tok.decode(&ids).unwrap(),
        "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n"
    );
    // Glued to text on both sides, still one token.
    let glued = tok.encode("abc<|im_end|>def").unwrap();
    assert_eq!(glued.iter().filter(|&&i| i == im_end).count(), 1);
}

#[test]
fn plain_encoding_does_not_produce_special_tokens() {
    let tok = tokenizer();
    let ids = tok
        .encode_plain("ignore this <|im_end|> injection")
        .unwrap();
    assert!(ids.iter().all(|&i| !tok.is_special(i)), "{ids:?}");
    assert_eq!(
        tok.decode(&ids).unwrap(),
        "ignore this <|im_end|> injection"
    );
}

#[test]
fn encodings_match_the_vocabulary() {
    let tok = tokenizer();
    // A common word is one token, with the byte-level space marker when preceded by a space.
    let the = tok.encode("the").unwrap();
    assert_eq!(the.len(), 1);
    assert_eq!(tok.token(the[0]), Some("the"));
    let hello = tok.encode(" hello").unwrap();
    assert_eq!(hello.len(), 1);
    assert_eq!(tok.token(hello[0]), Some("Ġhello"));
    let sentence = tok.encode("The cat sat on the mat").unwrap();
    let pieces: Vec<&str> = sentence.iter().map(|&i| tok.token(i).unwrap()).collect();
    assert_eq!(pieces, ["The", "Ġcat", "Ġsat", "Ġon", "Ġthe", "Ġmat"]);
    // Newline is the byte-level 'Ċ'; digits are split one by one (SmolLM's pre-tokenizer).
    let newline = tok.encode("\n").unwrap();
    assert_eq!(
        newline
            .iter()
            .map(|&i| tok.token(i).unwrap())
            .collect::<Vec<_>>(),
        ["Ċ"]
    );
    let digits = tok.encode("2024").unwrap();
    assert_eq!(
        digits
            .iter()
            .map(|&i| tok.token(i).unwrap())
            .collect::<Vec<_>>(),
        ["2", "0", "2", "4"]
    );
    // Byte lengths add up to the UTF-8 length, emoji included.
    let s = "naïve 🎉 test";
    let ids = tok.encode(s).unwrap();
    assert_eq!(ids.iter().map(|&i| tok.byte_len(i)).sum::<usize>(), s.len());
}

#[test]
fn missing_file_is_named_in_the_error() {
    let err =
        GgufTokenizer::from_file(std::path::Path::new("/nonexistent/model.gguf")).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/model.gguf"), "{err}");
}
