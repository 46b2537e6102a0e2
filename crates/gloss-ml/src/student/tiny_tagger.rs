//! The tiny entity tagger: the tiny student's trunk (hashed lexical embeddings and window-3
//! convolutions, see [`tiny`](super::tiny)) under a per-token head scoring BIO tags.
//!
//! It tags the same word tokens the tiny classifier reads (UAX #29 words and punctuation).
//! Gold character spans are aligned onto those tokens for training; predictions are decoded
//! with constrained Viterbi (never an `I-X` without a `B-X`) and mapped back to character
//! offsets of the input text, each entity with a confidence for uncertainty sampling. The
//! artifact is the tiny student's: `config.json` (with `"task": "entities"`) beside
//! `model.safetensors`, loaded back bit-identically.

use std::ops::Range;
use std::path::Path;

use candle_core::{Device, Tensor};
use candle_nn::{Linear, Module, VarMap};

use super::entities::{gold_tags, span_f1, token_loss};
use super::tiny::{featurize, token_ranges, Init, TinyConfig, TinyTask, Trunk};
use crate::error::{CandleContext, Result};
use crate::metrics::Span;
use crate::tagging::{byte_to_char_ranges, TagSet};
use crate::teacher::Entity;
use crate::train::Objective;

impl TinyConfig {
    /// Defaults of [`TinyConfig::new`] for an entity tagger over `labels` (entity types).
    pub fn entities(labels: Vec<String>) -> TinyConfig {
        TinyConfig {
            task: TinyTask::Entities,
            ..TinyConfig::new(labels)
        }
    }
}

/// The tiny hash-embedding CNN entity tagger.
pub struct TinyTagger {
    config: TinyConfig,
    tags: TagSet,
    vars: VarMap,
    device: Device,
    trunk: Trunk,
    head: Linear,
}

impl std::fmt::Debug for TinyTagger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TinyTagger")
            .field("config", &self.config)
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

impl TinyTagger {
    /// A freshly initialised tagger; `config.task` must be [`TinyTask::Entities`].
    pub fn new(config: TinyConfig, device: &Device) -> Result<TinyTagger> {
        config.validate(TinyTask::Entities)?;
        let tags = TagSet::new(config.labels.clone())?;
        let vars = VarMap::new();
        let mut init = Init::new(&vars, config.seed, device);
        let trunk = Trunk::new(&config, &mut init)?;
        let head = init.linear("head", config.width, tags.len())?;
        Ok(TinyTagger {
            config,
            tags,
            vars,
            device: device.clone(),
            trunk,
            head,
        })
    }

    /// Loads `config.json` and `model.safetensors` from `dir`.
    pub fn load(dir: &Path, device: &Device) -> Result<TinyTagger> {
        let mut tagger = TinyTagger::new(super::artifact::read_config(dir)?, device)?;
        super::artifact::read_weights(dir, &mut tagger.vars)?;
        Ok(tagger)
    }

    /// Writes `config.json` and `model.safetensors` into `dir` (created if missing).
    pub fn save(&self, dir: &Path) -> Result<()> {
        super::artifact::write(dir, &self.config, &self.vars)
    }

    /// The configuration this tagger was built from.
    pub fn config(&self) -> &TinyConfig {
        &self.config
    }

    /// The BIO tags the head scores.
    pub fn tag_set(&self) -> &TagSet {
        &self.tags
    }

    /// Entities of each text, as code-point spans with confidences, in text order.
    ///
    /// Texts are batched by length; padding never changes a text's tags, so the result does
    /// not depend on batching.
    pub fn predict(&self, texts: &[&str], batch_size: usize) -> Result<Vec<Vec<Entity>>> {
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| texts[i].len());
        let mut out = vec![Vec::new(); texts.len()];
        for chunk in order.chunks(batch_size.max(1)) {
            let batch: Vec<&str> = chunk.iter().map(|&i| texts[i]).collect();
            for (&i, entities) in chunk.iter().zip(self.predict_batch(&batch)?) {
                out[i] = entities;
            }
        }
        Ok(out)
    }

    /// Character ranges of the tokens the tagger reads (at most `max_tokens`).
    pub fn tokens(&self, text: &str) -> Vec<Range<usize>> {
        let bytes: Vec<Range<usize>> = token_ranges(text).take(self.config.max_tokens).collect();
        byte_to_char_ranges(text, &bytes)
    }

    fn predict_batch(&self, texts: &[&str]) -> Result<Vec<Vec<Entity>>> {
        let n = self.tags.len();
        let probs = self
            .tag_logits(texts)
            .and_then(|l| candle_nn::ops::softmax_last_dim(&l)?.to_vec3::<f32>())
            .ctx(|| format!("tiny tagger forward ({} texts)", texts.len()))?;
        Ok(texts
            .iter()
            .zip(probs)
            .map(|(text, rows)| {
                let tokens = self.tokens(text);
                let flat: Vec<f32> = rows.into_iter().take(tokens.len()).flatten().collect();
                debug_assert_eq!(flat.len(), tokens.len() * n);
                self.tags.decode(&tokens, &flat)
            })
            .collect())
    }

    /// Tag logits `(batch, len, tags)`; rows past a text's last token are padding.
    fn tag_logits(&self, texts: &[&str]) -> candle_core::Result<Tensor> {
        let features: Vec<Vec<[u32; 4]>> =
            texts.iter().map(|t| featurize(&self.config, t)).collect();
        self.head
            .forward(&self.trunk.encode(&features, &self.device)?)
    }
}

impl Objective for TinyTagger {
    type Example = (String, Vec<Span>);

    fn var_map(&self) -> &VarMap {
        &self.vars
    }

    fn check(&self, part: &str, data: &[Self::Example]) -> Result<()> {
        for (i, (text, spans)) in data.iter().enumerate() {
            gold_tags(
                &self.tags,
                &self.tokens(text),
                spans,
                text.chars().count(),
                part,
                i,
            )?;
        }
        Ok(())
    }

    fn loss(&self, batch: &[&Self::Example]) -> Result<Tensor> {
        let texts: Vec<&str> = batch.iter().map(|(t, _)| t.as_str()).collect();
        let logits = self
            .tag_logits(&texts)
            .ctx(|| format!("tiny tagger forward ({} texts)", texts.len()))?;
        let (_, len, n) = logits.dims3().ctx(|| "tiny tagger logits".into())?;
        // Keep the rows of real tokens only, with their gold tags.
        let mut rows = Vec::new();
        let mut targets = Vec::new();
        for (b, (text, spans)) in batch.iter().enumerate() {
            let tokens = self.tokens(text);
            let gold = gold_tags(&self.tags, &tokens, spans, text.chars().count(), "batch", b)?;
            rows.extend((0..tokens.len()).map(|t| (b * len + t) as u32));
            targets.extend(gold);
        }
        let rows_len = rows.len();
        let picked = Tensor::from_vec(rows, rows_len, &self.device)
            .and_then(|idx| logits.reshape(((), n))?.index_select(&idx, 0))
            .ctx(|| "tiny tagger: selecting token rows".into())?;
        token_loss(&picked, targets)
    }

    fn score(&self, data: &[Self::Example], batch_size: usize) -> Result<f64> {
        let texts: Vec<&str> = data.iter().map(|(t, _)| t.as_str()).collect();
        let predicted = self.predict(&texts, batch_size)?;
        let gold: Vec<Vec<Span>> = data.iter().map(|(_, s)| s.clone()).collect();
        span_f1(&gold, &predicted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::student::tiny::FeatureRows;

    fn toy() -> TinyTagger {
        let mut config = TinyConfig::entities(vec!["PER".into(), "LOC".into()]);
        config.rows = FeatureRows {
            norm: 64,
            prefix: 32,
            suffix: 32,
            shape: 16,
        };
        config.embed_dim = 8;
        config.width = 16;
        TinyTagger::new(config, &Device::Cpu).unwrap()
    }

    #[test]
    fn tokens_are_char_ranges_and_predictions_are_well_formed() {
        let tagger = toy();
        let text = "Zoë met Ann in Köln, again!";
        let tokens = tagger.tokens(text);
        let chars: Vec<char> = text.chars().collect();
        let words: Vec<String> = tokens
            .iter()
            .map(|r| chars[r.clone()].iter().collect())
            .collect();
        assert_eq!(
            words,
            ["Zoë", "met", "Ann", "in", "Köln", ",", "again", "!"]
        );
        let out = tagger.predict(&[text, "", "a b"], 2).unwrap();
        assert_eq!(out.len(), 3);
        assert!(out[1].is_empty());
        for e in out.iter().flatten() {
            assert!(e.start < e.end && e.end <= chars.len());
            assert!(e.confidence > 0.0 && e.confidence <= 1.0);
        }
        // Batching does not change predictions.
        assert_eq!(tagger.predict(&[text], 1).unwrap()[0], out[0]);
    }

    #[test]
    fn a_classifier_config_is_refused_with_a_pointer() {
        let config = TinyConfig::new(vec!["PER".into()]);
        let err = TinyTagger::new(config, &Device::Cpu).unwrap_err();
        assert!(err.to_string().contains("TinyStudent"), "{err}");
        let err = super::super::tiny::TinyStudent::new(
            TinyConfig::entities(vec!["PER".into()]),
            &Device::Cpu,
        )
        .unwrap_err();
        assert!(err.to_string().contains("TinyTagger"), "{err}");
    }

    #[test]
    fn bad_gold_is_reported_with_the_example() {
        let tagger = toy();
        let data = vec![
            ("Ann".to_string(), vec![]),
            (
                "Ann Lee".to_string(),
                vec![Span {
                    start: 4,
                    end: 9,
                    label: "PER".into(),
                }],
            ),
        ];
        let err = tagger.check("train", &data).unwrap_err().to_string();
        assert!(
            err.contains("train example 1: span 4..9 ends past the text (length 7)"),
            "{err}"
        );
    }
}
