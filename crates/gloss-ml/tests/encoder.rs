//! Encoder tests against the real all-MiniLM-L6-v2 weights.

mod common;

use std::sync::OnceLock;

use gloss_ml::{Device, Encoder};

fn encoder() -> &'static Encoder {
    static ENCODER: OnceLock<Encoder> = OnceLock::new();
    ENCODER
        .get_or_init(|| Encoder::load(&common::minilm_dir(), &Device::Cpu).expect("load encoder"))
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

const SENTENCES: &[&str] = &[
    "A man is playing a guitar.",
    "The new movie is awesome and everybody loved it, from the opening scene to the credits.",
    "Stocks fell sharply on Monday.",
    "",
    "Der Hund schläft. 🐶",
    "Quarterly revenue grew by 12% compared with the same period last year, driven by strong demand.",
    "ok",
];

#[test]
fn embeddings_have_dimension_384_and_unit_norm() {
    let enc = encoder();
    assert_eq!(enc.dim(), 384);
    let out = enc.embed(SENTENCES, 4).unwrap();
    assert_eq!(out.len(), SENTENCES.len());
    for (text, v) in SENTENCES.iter().zip(&out) {
        assert_eq!(v.len(), 384, "{text:?}");
        let norm = dot(v, v).sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "{text:?}: norm {norm}");
    }
}

#[test]
fn paraphrases_are_closer_than_unrelated_sentences() {
    let texts = [
        "A man is playing a guitar.",
        "Someone strums an acoustic guitar.",
        "The central bank raised interest rates again.",
    ];
    let v = encoder().embed(&texts, 8).unwrap();
    let paraphrase = dot(&v[0], &v[1]);
    let unrelated = dot(&v[0], &v[2]);
    assert!(
        paraphrase > unrelated + 0.2,
        "paraphrase {paraphrase} vs unrelated {unrelated}"
    );
}

#[test]
fn batched_embeddings_equal_single_ones_for_any_batch_size_and_order() {
    let enc = encoder();
    let singles: Vec<Vec<f32>> = SENTENCES
        .iter()
        .map(|s| enc.embed(&[s], 1).unwrap().remove(0))
        .collect();
    let mut reversed: Vec<&str> = SENTENCES.to_vec();
    reversed.reverse();
    for batch_size in [1, 2, 3, 7, 64] {
        let out = enc.embed(SENTENCES, batch_size).unwrap();
        let rev = enc.embed(&reversed, batch_size).unwrap();
        for (i, single) in singles.iter().enumerate() {
            let d = max_abs_diff(single, &out[i]);
            assert!(d < 1e-4, "batch {batch_size}, text {i}: max abs diff {d}");
            let d = max_abs_diff(single, &rev[SENTENCES.len() - 1 - i]);
            assert!(
                d < 1e-4,
                "batch {batch_size} reversed, text {i}: max abs diff {d}"
            );
        }
    }
}

#[test]
fn empty_input_gives_empty_output() {
    assert!(encoder().embed(&[], 8).unwrap().is_empty());
}

#[test]
fn zero_batch_size_is_rejected() {
    let err = encoder().embed(&["x"], 0).unwrap_err();
    assert!(err.to_string().contains("batch_size"), "{err}");
}

#[test]
fn over_long_text_is_truncated_not_rejected() {
    let enc = encoder();
    assert_eq!(enc.max_tokens(), 128);
    let long = "the quick brown fox jumps over the lazy dog ".repeat(60);
    let longer = format!("{long} and then something completely different happens at the end");
    let out = enc.embed(&[&long, &longer], 2).unwrap();
    // Both are cut to the same first 128 tokens, so the differing tail cannot matter.
    assert!(max_abs_diff(&out[0], &out[1]) < 1e-5);
    assert!((dot(&out[0], &out[0]).sqrt() - 1.0).abs() < 1e-4);
}

#[test]
fn missing_model_directory_names_the_file() {
    let err = Encoder::load(std::path::Path::new("/nonexistent/minilm"), &Device::Cpu).unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent/minilm/config.json"),
        "{err}"
    );
}
