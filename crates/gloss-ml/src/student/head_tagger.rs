//! The encoder entity student: a token-classification head over an [`Encoder`](crate::Encoder)'s
//! word-piece states, scoring BIO tags per word piece.
//!
//! Like the classification [`head`](super::head), it never runs the encoder: the caller computes
//! [`TokenStates`] once (a frozen encoder) and trains on them. Gold character spans are aligned
//! onto word pieces through the tokenizer's character offsets (the first piece of a span gets
//! `B-`, the rest `I-`); predictions are decoded with constrained Viterbi and mapped back to
//! character offsets. The artifact is `config.json` beside `model.safetensors` (the head's
//! weights only), loaded back bit-identically.

use std::path::Path;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::entities::{gold_tags, span_f1, token_loss};
use super::head::{HeadConfig, HeadStudent};
use crate::encoder::TokenStates;
use crate::error::{CandleContext, Error, Result};
use crate::metrics::Span;
use crate::tagging::TagSet;
use crate::teacher::Entity;
use crate::train::Objective;

/// Artifact format this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Word pieces per forward pass in [`HeadTagger::predict`].
const PREDICT_ROWS: usize = 4096;

/// Everything needed to rebuild a head tagger; stored as `config.json` beside the weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadTaggerConfig {
    /// Artifact format version ([`FORMAT_VERSION`]).
    pub format_version: u32,
    /// Version of `gloss-ml` that wrote the artifact (informational).
    pub crate_version: String,
    /// Entity labels (without `B-`/`I-`).
    pub labels: Vec<String>,
    /// The BIO tags the head scores, in output order (`O`, then `B-`/`I-` per label); written
    /// for readers of the artifact and checked against `labels` on load.
    pub tags: Vec<String>,
    /// Width of the word-piece states (the encoder's [`dim`](crate::Encoder::dim)).
    pub input_dim: usize,
    /// Width of the ReLU hidden layer; 0 means a linear head.
    pub hidden: usize,
    /// Seeds weight initialisation.
    pub seed: u64,
    /// Which encoder produced the training states (informational); the head is only meaningful
    /// on states from that same encoder.
    #[serde(default)]
    pub encoder: String,
}

impl HeadTaggerConfig {
    /// A linear tagging head for `labels` over `input_dim`-wide states, seed 0.
    pub fn new(labels: Vec<String>, input_dim: usize) -> Result<HeadTaggerConfig> {
        let tags = TagSet::new(labels.clone())?;
        Ok(HeadTaggerConfig {
            format_version: FORMAT_VERSION,
            crate_version: env!("CARGO_PKG_VERSION").to_string(),
            labels,
            tags: (0..tags.len()).map(|t| tags.name(t)).collect(),
            input_dim,
            hidden: 0,
            seed: 0,
            encoder: String::new(),
        })
    }
}

/// A linear or one-hidden-layer BIO tagger over word-piece states.
#[derive(Debug)]
pub struct HeadTagger {
    config: HeadTaggerConfig,
    tags: TagSet,
    head: HeadStudent,
    device: Device,
}

impl HeadTagger {
    /// A freshly initialised tagger; the same config gives the same initial weights.
    pub fn new(config: HeadTaggerConfig, device: &Device) -> Result<HeadTagger> {
        let problem = |p: String| Error::InvalidInput(format!("head tagger: {p}"));
        if config.format_version != FORMAT_VERSION {
            return Err(problem(format!(
                "format_version {} is not supported (expected {FORMAT_VERSION})",
                config.format_version
            )));
        }
        let tags = TagSet::new(config.labels.clone())?;
        let names: Vec<String> = (0..tags.len()).map(|t| tags.name(t)).collect();
        if names != config.tags {
            return Err(problem(format!(
                "tags {:?} do not match the labels (expected {names:?})",
                config.tags
            )));
        }
        let mut head_config = HeadConfig::new(names, config.input_dim);
        head_config.hidden = config.hidden;
        head_config.seed = config.seed;
        head_config.encoder = config.encoder.clone();
        let head = HeadStudent::new(head_config, device)?;
        Ok(HeadTagger {
            config,
            tags,
            head,
            device: device.clone(),
        })
    }

    /// Loads `config.json` and `model.safetensors` from `dir`.
    pub fn load(dir: &Path, device: &Device) -> Result<HeadTagger> {
        let mut tagger = HeadTagger::new(super::artifact::read_config(dir)?, device)?;
        super::artifact::read_weights(dir, tagger.head.vars_mut())?;
        Ok(tagger)
    }

    /// Writes `config.json` and `model.safetensors` into `dir` (created if missing).
    pub fn save(&self, dir: &Path) -> Result<()> {
        use crate::train::Trainable;
        super::artifact::write(dir, &self.config, self.head.var_map())
    }

    /// The configuration this tagger was built from.
    pub fn config(&self) -> &HeadTaggerConfig {
        &self.config
    }

    /// The BIO tags the head scores.
    pub fn tag_set(&self) -> &TagSet {
        &self.tags
    }

    /// Entities of each text from its word-piece states, as code-point spans with confidences.
    ///
    /// Word pieces are scored independently, so batching changes scores by float rounding at
    /// most; the same inputs in the same order always give the same result.
    pub fn predict(&self, texts: &[TokenStates]) -> Result<Vec<Vec<Entity>>> {
        self.predict_refs(&texts.iter().collect::<Vec<_>>())
    }

    fn predict_refs(&self, texts: &[&TokenStates]) -> Result<Vec<Vec<Entity>>> {
        let n = self.tags.len();
        let mut out = Vec::with_capacity(texts.len());
        let mut start = 0;
        while start < texts.len() {
            // Whole texts per pass, up to PREDICT_ROWS pieces (always at least one text).
            let mut end = start + 1;
            let mut rows = texts[start].offsets.len();
            while end < texts.len() && rows + texts[end].offsets.len() <= PREDICT_ROWS {
                rows += texts[end].offsets.len();
                end += 1;
            }
            let batch = &texts[start..end];
            let probs = self.logits(batch).and_then(|l| {
                candle_nn::ops::softmax_last_dim(&l)
                    .and_then(|p| p.flatten_all()?.to_vec1::<f32>())
                    .ctx(|| "head tagger probabilities".into())
            })?;
            let mut at = 0;
            for states in batch {
                let len = states.offsets.len() * n;
                out.push(self.tags.decode(&states.offsets, &probs[at..at + len]));
                at += len;
            }
            start = end;
        }
        Ok(out)
    }

    /// Logits `(pieces, tags)` of every word piece of the batch, in order.
    fn logits(&self, batch: &[&TokenStates]) -> Result<Tensor> {
        let dim = self.config.input_dim;
        let mut flat = Vec::new();
        for (i, states) in batch.iter().enumerate() {
            if states.dim != dim || states.states.len() != states.offsets.len() * dim {
                return Err(Error::InvalidInput(format!(
                    "head tagger: text {i} has {} values for {} pieces of width {}, the head \
                     expects width {dim}",
                    states.states.len(),
                    states.offsets.len(),
                    states.dim
                )));
            }
            flat.extend_from_slice(&states.states);
        }
        let rows = flat.len() / dim;
        let x = Tensor::from_vec(flat, (rows, dim), &self.device)
            .ctx(|| "head tagger: building the input batch".into())?;
        self.head.forward_rows(&x)
    }
}

impl Objective for HeadTagger {
    type Example = (TokenStates, Vec<Span>);

    fn var_map(&self) -> &candle_nn::VarMap {
        use crate::train::Trainable;
        self.head.var_map()
    }

    fn check(&self, part: &str, data: &[Self::Example]) -> Result<()> {
        for (i, (states, spans)) in data.iter().enumerate() {
            if states.dim != self.config.input_dim {
                return Err(Error::InvalidInput(format!(
                    "{part} example {i}: states of width {}, the head expects {}",
                    states.dim, self.config.input_dim
                )));
            }
            gold_tags(&self.tags, &states.offsets, spans, states.text_len, part, i)?;
        }
        Ok(())
    }

    fn loss(&self, batch: &[&Self::Example]) -> Result<Tensor> {
        let states: Vec<&TokenStates> = batch.iter().map(|(s, _)| s).collect();
        let logits = self.logits(&states)?;
        let mut targets = Vec::with_capacity(logits.dims()[0]);
        for (b, (s, spans)) in batch.iter().enumerate() {
            targets.extend(gold_tags(
                &self.tags, &s.offsets, spans, s.text_len, "batch", b,
            )?);
        }
        token_loss(&logits, targets)
    }

    fn score(&self, data: &[Self::Example], _batch_size: usize) -> Result<f64> {
        let states: Vec<&TokenStates> = data.iter().map(|(s, _)| s).collect();
        let predicted = self.predict_refs(&states)?;
        let gold: Vec<Vec<Span>> = data.iter().map(|(_, s)| s.clone()).collect();
        span_f1(&gold, &predicted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tagging::entity_spans;

    fn states(pieces: usize, dim: usize, seed: f32) -> TokenStates {
        TokenStates {
            offsets: (0..pieces).map(|i| 2 * i..2 * i + 1).collect(),
            states: (0..pieces * dim)
                .map(|i| ((i as f32 + seed) * 0.37).sin())
                .collect(),
            dim,
            text_len: 2 * pieces,
        }
    }

    fn toy(hidden: usize) -> HeadTagger {
        let mut config = HeadTaggerConfig::new(vec!["PER".into(), "LOC".into()], 6).unwrap();
        config.hidden = hidden;
        HeadTagger::new(config, &Device::Cpu).unwrap()
    }

    #[test]
    fn predictions_are_well_formed_and_independent_of_batching() {
        for hidden in [0, 8] {
            let tagger = toy(hidden);
            // 3000-piece texts force several passes through PREDICT_ROWS.
            let texts = vec![states(3000, 6, 0.0), states(5, 6, 1.0), states(0, 6, 2.0)];
            let all = tagger.predict(&texts).unwrap();
            assert_eq!(all.len(), 3);
            assert!(all[2].is_empty());
            for (t, entities) in all.iter().enumerate() {
                // Alone or batched: same spans, scores equal up to float rounding (the matrix
                // product blocks differently for different row counts).
                let alone = &tagger.predict(&texts[t..t + 1]).unwrap()[0];
                assert_eq!(entity_spans(alone), entity_spans(entities));
                for (a, b) in alone.iter().zip(entities) {
                    assert!((a.confidence - b.confidence).abs() < 1e-5);
                }
                for e in entities {
                    assert!(e.start < e.end && e.end <= texts[t].text_len);
                }
            }
        }
    }

    #[test]
    fn mismatched_tags_or_widths_are_rejected() {
        let mut config = HeadTaggerConfig::new(vec!["PER".into()], 6).unwrap();
        config.tags = vec!["O".into(), "B-PER".into()];
        let err = HeadTagger::new(config, &Device::Cpu).unwrap_err();
        assert!(err.to_string().contains("do not match"), "{err}");
        let err = toy(0).predict(&[states(2, 5, 0.0)]).unwrap_err();
        assert!(err.to_string().contains("expects width 6"), "{err}");
        let data = vec![(states(2, 5, 0.0), vec![])];
        let err = toy(0).check("dev", &data).unwrap_err();
        assert!(err.to_string().contains("dev example 0"), "{err}");
    }
}
