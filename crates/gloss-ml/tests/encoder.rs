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

/// The same sentences through candle-transformers' reference BERT (masked mean pooling, L2).
fn reference_embeddings(texts: &[&str]) -> Vec<Vec<f32>> {
    use candle_core::{DType, Tensor, D};
    use candle_transformers::models::bert::{BertModel, Config};
    let dir = common::minilm_dir();
    let config: Config =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let vb = candle_nn::VarBuilder::from_buffered_safetensors(
        std::fs::read(dir.join("model.safetensors")).unwrap(),
        DType::F32,
        &Device::Cpu,
    )
    .unwrap();
    let model = BertModel::load(vb, &config).unwrap();
    let mut tokenizer = tokenizers::Tokenizer::from_file(dir.join("tokenizer.json")).unwrap();
    tokenizer.with_padding(None);
    texts
        .iter()
        .map(|text| {
            let mut ids = tokenizer.encode(*text, true).unwrap().get_ids().to_vec();
            ids.truncate(128);
            let n = ids.len();
            let ids = Tensor::new(ids, &Device::Cpu)
                .unwrap()
                .unsqueeze(0)
                .unwrap();
            let mask = ids.ones_like().unwrap();
            let hidden = model
                .forward(&ids, &ids.zeros_like().unwrap(), Some(&mask))
                .unwrap();
            let mean = (hidden.sum(1).unwrap() / n as f64).unwrap();
            let norm = mean
                .sqr()
                .unwrap()
                .sum_keepdim(D::Minus1)
                .unwrap()
                .sqrt()
                .unwrap();
            mean.broadcast_div(&norm)
                .unwrap()
                .squeeze(0)
                .unwrap()
                .to_vec1()
                .unwrap()
        })
        .collect()
}

#[test]
fn the_fused_forward_pass_matches_the_reference_bert() {
    let texts: Vec<&str> = SENTENCES
        .iter()
        .copied()
        .filter(|t| !t.is_empty())
        .collect();
    let ours = encoder().embed(&texts, 3).unwrap();
    for ((text, a), b) in texts.iter().zip(&ours).zip(reference_embeddings(&texts)) {
        let cosine = dot(a, &b);
        assert!(cosine > 0.99999, "{text:?}: cosine {cosine}");
        assert!(max_abs_diff(a, &b) < 1e-4, "{text:?}");
    }
}
