//! A classification head over cached sentence embeddings: the student to use when an
//! [`Encoder`](crate::Encoder) is available.
//!
//! The head never runs the encoder itself: the caller embeds each text once and trains on the
//! cached vectors (`Trainable::Input = Vec<f32>`), so an epoch costs a few matrix products instead
//! of a transformer pass per example. At serving time the same encoder embeds the text and
//! [`HeadStudent::predict`] scores the vector.
//!
//! The head is a linear layer, or one ReLU hidden layer when `hidden > 0`, followed by softmax
//! (single-label) or per-label sigmoid (multi-label). Weights are initialised from `config.seed`
//! with our own RNG, saved as safetensors next to a JSON config and loaded back bit-identically.

use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{Linear, Module, VarMap};
use serde::{Deserialize, Serialize};

use crate::error::{CandleContext, Error, Result};
use crate::hash::SplitMix64;
use crate::train::Trainable;

/// Artifact format this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Rows per forward pass in [`HeadStudent::predict`].
const PREDICT_BATCH: usize = 256;

/// Everything needed to rebuild a head student; stored as `config.json` beside the weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadConfig {
    /// Artifact format version ([`FORMAT_VERSION`]).
    pub format_version: u32,
    /// Version of `gloss-ml` that wrote the artifact (informational).
    pub crate_version: String,
    /// Output labels, in score order.
    pub labels: Vec<String>,
    /// Independent labels (sigmoid) instead of exclusive ones (softmax).
    pub multi_label: bool,
    /// Width of the embeddings the head reads (the encoder's [`dim`](crate::Encoder::dim)).
    pub input_dim: usize,
    /// Width of the ReLU hidden layer; 0 means a linear head.
    pub hidden: usize,
    /// Seeds weight initialisation.
    pub seed: u64,
    /// Which encoder produced the training embeddings (informational, e.g. a model directory
    /// name); a head is only meaningful on vectors from that same encoder.
    #[serde(default)]
    pub encoder: String,
}

impl HeadConfig {
    /// A linear head over `input_dim`-wide embeddings, seed 0.
    pub fn new(labels: Vec<String>, input_dim: usize) -> HeadConfig {
        HeadConfig {
            format_version: FORMAT_VERSION,
            crate_version: env!("CARGO_PKG_VERSION").to_string(),
            labels,
            multi_label: false,
            input_dim,
            hidden: 0,
            seed: 0,
            encoder: String::new(),
        }
    }

    fn validate(&self) -> Result<()> {
        let problem = if self.format_version != FORMAT_VERSION {
            Some(format!(
                "format_version {} is not supported (expected {FORMAT_VERSION})",
                self.format_version
            ))
        } else if self.labels.is_empty() {
            Some("labels must not be empty".into())
        } else if self.input_dim == 0 {
            Some("input_dim must be at least 1".into())
        } else {
            None
        };
        problem.map_or(Ok(()), |p| {
            Err(Error::InvalidInput(format!("head student: {p}")))
        })
    }
}

/// A linear or one-hidden-layer classifier over sentence embeddings.
pub struct HeadStudent {
    config: HeadConfig,
    vars: VarMap,
    device: Device,
    hidden: Option<Linear>,
    out: Linear,
}

impl std::fmt::Debug for HeadStudent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeadStudent")
            .field("config", &self.config)
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

impl HeadStudent {
    /// A freshly initialised head; the same config gives the same initial weights.
    pub fn new(config: HeadConfig, device: &Device) -> Result<HeadStudent> {
        config.validate()?;
        let vars = VarMap::new();
        let mut rng = SplitMix64::new(config.seed);
        let mut linear = |name: &str, fan_in: usize, fan_out: usize| -> Result<Linear> {
            // Glorot-uniform weights, zero biases.
            let limit = (6.0 / (fan_in + fan_out) as f64).sqrt();
            let weights: Vec<f32> = (0..fan_in * fan_out)
                .map(|_| ((rng.next_f64() * 2.0 - 1.0) * limit) as f32)
                .collect();
            let w = Tensor::from_vec(weights, (fan_out, fan_in), device)
                .and_then(|t| Var::from_tensor(&t))
                .ctx(|| format!("initialising {name}.weight"))?;
            let b = Var::zeros(fan_out, DType::F32, device)
                .ctx(|| format!("initialising {name}.bias"))?;
            let layer = Linear::new(w.as_tensor().clone(), Some(b.as_tensor().clone()));
            let mut data = vars
                .data()
                .lock()
                .map_err(|_| Error::InvalidInput("head student: variable map poisoned".into()))?;
            data.insert(format!("{name}.weight"), w);
            data.insert(format!("{name}.bias"), b);
            Ok(layer)
        };
        let n = config.labels.len();
        let (hidden, out) = if config.hidden == 0 {
            (None, linear("out", config.input_dim, n)?)
        } else {
            let h = linear("hidden", config.input_dim, config.hidden)?;
            (Some(h), linear("out", config.hidden, n)?)
        };
        Ok(HeadStudent {
            config,
            vars,
            device: device.clone(),
            hidden,
            out,
        })
    }

    /// Loads `config.json` and `model.safetensors` from `dir`.
    pub fn load(dir: &Path, device: &Device) -> Result<HeadStudent> {
        let mut student = HeadStudent::new(super::artifact::read_config(dir)?, device)?;
        super::artifact::read_weights(dir, &mut student.vars)?;
        Ok(student)
    }

    /// Writes `config.json` and `model.safetensors` into `dir` (created if missing).
    pub fn save(&self, dir: &Path) -> Result<()> {
        super::artifact::write(dir, &self.config, &self.vars)
    }

    /// The configuration this head was built from.
    pub fn config(&self) -> &HeadConfig {
        &self.config
    }

    /// Label names in score order.
    pub fn labels(&self) -> &[String] {
        &self.config.labels
    }

    /// Per-label probabilities (softmax, or sigmoid when multi-label), one row per embedding.
    ///
    /// Rows are independent, so the result does not depend on how they are batched.
    pub fn predict(&self, embeddings: &[Vec<f32>]) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(embeddings.len());
        for chunk in embeddings.chunks(PREDICT_BATCH) {
            let refs: Vec<&Vec<f32>> = chunk.iter().collect();
            out.extend(self.scores(&refs)?);
        }
        Ok(out)
    }

    /// Logits `(rows, labels)` of a `(rows, input_dim)` tensor.
    pub(super) fn forward_rows(&self, x: &Tensor) -> Result<Tensor> {
        let h = match &self.hidden {
            Some(h) => h.forward(x).and_then(|h| h.relu()),
            None => Ok(x.clone()),
        };
        h.and_then(|h| self.out.forward(&h))
            .ctx(|| format!("head student forward ({:?})", x.shape()))
    }

    /// The variables, for loading weights saved under another configuration file.
    pub(super) fn vars_mut(&mut self) -> &mut VarMap {
        &mut self.vars
    }

    fn input_tensor(&self, inputs: &[&Vec<f32>]) -> Result<Tensor> {
        let dim = self.config.input_dim;
        let mut flat = Vec::with_capacity(inputs.len() * dim);
        for (i, row) in inputs.iter().enumerate() {
            if row.len() != dim {
                return Err(Error::InvalidInput(format!(
                    "head student: embedding {i} has {} dimensions, the head expects {dim}",
                    row.len()
                )));
            }
            flat.extend_from_slice(row);
        }
        Tensor::from_vec(flat, (inputs.len(), dim), &self.device)
            .ctx(|| "head student: building the input batch".into())
    }
}

impl Trainable for HeadStudent {
    type Input = Vec<f32>;

    fn var_map(&self) -> &VarMap {
        &self.vars
    }

    fn num_labels(&self) -> usize {
        self.config.labels.len()
    }

    fn multi_label(&self) -> bool {
        self.config.multi_label
    }

    fn logits(&self, inputs: &[&Vec<f32>]) -> Result<Tensor> {
        self.forward_rows(&self.input_tensor(inputs)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy(hidden: usize, multi_label: bool) -> HeadStudent {
        let mut config = HeadConfig::new(vec!["a".into(), "b".into(), "c".into()], 4);
        config.hidden = hidden;
        config.multi_label = multi_label;
        HeadStudent::new(config, &Device::Cpu).unwrap()
    }

    #[test]
    fn scores_are_probabilities_and_batching_does_not_matter() {
        let rows: Vec<Vec<f32>> = (0..300)
            .map(|i| (0..4).map(|j| ((i * 7 + j) % 5) as f32 - 2.0).collect())
            .collect();
        for hidden in [0, 8] {
            let student = toy(hidden, false);
            let scores = student.predict(&rows).unwrap();
            assert_eq!(scores.len(), 300);
            for row in &scores {
                assert_eq!(row.len(), 3);
                assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{row:?}");
            }
            // Row 260 lands in the second internal batch; alone it must score the same.
            assert_eq!(student.predict(&rows[260..261]).unwrap()[0], scores[260]);
        }
        let multi = toy(0, true).predict(&rows[..3]).unwrap();
        assert!(multi.iter().flatten().all(|p| *p > 0.0 && *p < 1.0));
        assert!(toy(0, false).predict(&[]).unwrap().is_empty());
    }

    #[test]
    fn wrong_width_and_bad_config_are_rejected() {
        let err = toy(0, false).predict(&[vec![0.0; 5]]).unwrap_err();
        assert!(err.to_string().contains("5 dimensions"), "{err}");
        assert!(HeadStudent::new(HeadConfig::new(vec![], 4), &Device::Cpu).is_err());
        let mut config = HeadConfig::new(vec!["x".into()], 4);
        config.format_version = 7;
        let err = HeadStudent::new(config, &Device::Cpu).unwrap_err();
        assert!(err.to_string().contains("format_version 7"), "{err}");
    }

    #[test]
    fn same_seed_same_weights() {
        let rows = vec![vec![0.5, -1.0, 2.0, 0.0]];
        assert_eq!(
            toy(8, false).predict(&rows).unwrap(),
            toy(8, false).predict(&rows).unwrap()
        );
    }
    #[test]
    fn decisions_on_single_labels_teach_a_multi_label_head() {
        use crate::train::{decision_accuracy, train_decisions, Decisions, TrainConfig};
        // Label 0 applies when x0 > 0, label 1 when x1 > 0; each example carries one decision.
        let example = |i: usize| -> (Vec<f32>, Decisions) {
            let x: Vec<f32> = (0..4)
                .map(|j| ((i * 37 + j * 11) % 17) as f32 / 8.0 - 1.0)
                .collect();
            let label = i % 2;
            let accepted = x[label] > 0.0;
            (x, vec![(label, accepted)])
        };
        let train: Vec<_> = (0..400).map(example).collect();
        let dev: Vec<_> = (400..500).map(example).collect();
        let student = toy(0, true);
        let config = TrainConfig {
            max_epochs: 60,
            patience: 60,
            learning_rate: 0.05,
            ..TrainConfig::default()
        };
        let cancel = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let outcome = train_decisions(&student, &train, &dev, &config, &cancel, |_| {}).unwrap();
        assert!(outcome.best_dev_score >= 0.95, "{outcome:?}");
        let held_out: Vec<_> = (500..600).map(example).collect();
        assert!(decision_accuracy(&student, &held_out, 7).unwrap() >= 0.95);

        let undecided = vec![(vec![0.0; 4], Vec::new())];
        let err = train_decisions(&student, &undecided, &dev, &config, &cancel, |_| {});
        assert!(err
            .unwrap_err()
            .to_string()
            .contains("train example 0: no decision"));
        let single = toy(0, false);
        let err = train_decisions(&single, &train, &dev, &config, &cancel, |_| {});
        assert!(err.unwrap_err().to_string().contains("multi-label"));
    }
}
