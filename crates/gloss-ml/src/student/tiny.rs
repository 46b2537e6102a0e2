//! A tiny text classifier that needs no pretrained encoder: hashed lexical embeddings, a small
//! window-3 convolutional encoder and a softmax (or sigmoid) head over max+mean pooled features.
//!
//! Each token contributes four hashed features (normalised form, 3-char prefix, 3-char suffix,
//! word shape), each looked up in its own table; hashing means no vocabulary to build or ship,
//! and unseen words still share prefix/suffix/shape rows with seen ones. The four vectors are
//! concatenated and mixed to `width`, then each conv layer sees a token with its neighbours and
//! adds a residual ReLU update. Every activation is non-negative and padding is zeroed, so max
//! pooling over a padded batch equals max pooling over the real tokens alone. The same trunk
//! under a per-token head is the entity tagger ([`TinyTagger`](super::tiny_tagger::TinyTagger)).
//!
//! Weights are initialised from `config.seed` with our own RNG (candle's CPU RNG cannot be
//! seeded), saved as safetensors next to a JSON config, and loaded back bit-identically.

use std::path::Path;

use candle_core::{DType, Device, Tensor, Var, D};
use candle_nn::{Linear, Module, VarMap};
use serde::{Deserialize, Serialize};
use unicode_segmentation::UnicodeSegmentation;

use crate::error::{CandleContext, Error, Result};
use crate::hash::{stable_hash, SplitMix64};
use crate::train::Trainable;

/// Artifact format this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Rows of each hashed feature table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureRows {
    /// Lower-cased token.
    pub norm: usize,
    /// First three characters (lower-cased).
    pub prefix: usize,
    /// Last three characters (lower-cased).
    pub suffix: usize,
    /// Word shape such as `Xxxx` or `dd`.
    pub shape: usize,
}

impl FeatureRows {
    fn as_array(self) -> [usize; 4] {
        [self.norm, self.prefix, self.suffix, self.shape]
    }
}

/// Everything needed to rebuild a tiny student; stored as `config.json` beside the weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TinyConfig {
    /// Artifact format version ([`FORMAT_VERSION`]).
    pub format_version: u32,
    /// Version of `gloss-ml` that wrote the artifact (informational).
    pub crate_version: String,
    /// Output labels, in score order.
    pub labels: Vec<String>,
    /// Independent labels (sigmoid) instead of exclusive ones (softmax).
    pub multi_label: bool,
    /// Hash table sizes.
    pub rows: FeatureRows,
    /// Width of each feature embedding.
    pub embed_dim: usize,
    /// Width of the token vectors inside the encoder.
    pub width: usize,
    /// Number of window-3 convolution layers.
    pub conv_layers: usize,
    /// Tokens kept per text; the rest is ignored.
    pub max_tokens: usize,
    /// Seeds weight initialisation and the feature hashes.
    pub seed: u64,
    /// What the head predicts: one label per text, or BIO entity tags per token.
    #[serde(default)]
    pub task: TinyTask,
}

/// What a tiny model's head predicts, so that an artifact cannot be loaded as the wrong kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TinyTask {
    /// Text classification ([`TinyStudent`]): `labels` are the classes.
    #[default]
    Classify,
    /// Entity tagging ([`TinyTagger`](super::tiny_tagger::TinyTagger)): `labels` are the entity
    /// types, the head scores their BIO tags.
    Entities,
}

impl TinyConfig {
    /// Defaults sized for a ≈6.5 MB artifact: 25,600 hash rows × 64 dims, width 64, 2 layers.
    pub fn new(labels: Vec<String>) -> TinyConfig {
        TinyConfig {
            format_version: FORMAT_VERSION,
            crate_version: env!("CARGO_PKG_VERSION").to_string(),
            labels,
            multi_label: false,
            rows: FeatureRows {
                norm: 16_384,
                prefix: 4_096,
                suffix: 4_096,
                shape: 1_024,
            },
            embed_dim: 64,
            width: 64,
            conv_layers: 2,
            max_tokens: 256,
            seed: 0,
            task: TinyTask::Classify,
        }
    }

    pub(super) fn validate(&self, task: TinyTask) -> Result<()> {
        let problem = if self.format_version != FORMAT_VERSION {
            Some(format!(
                "format_version {} is not supported (expected {FORMAT_VERSION})",
                self.format_version
            ))
        } else if self.task != task {
            Some(format!(
                "the config is for task {:?}, this model does {task:?} (load it with {})",
                self.task,
                match self.task {
                    TinyTask::Classify => "TinyStudent",
                    TinyTask::Entities => "TinyTagger",
                }
            ))
        } else if self.labels.is_empty() {
            Some("labels must not be empty".into())
        } else if self.task == TinyTask::Entities && self.multi_label {
            Some("an entity tagger cannot be multi-label".into())
        } else if self.rows.as_array().contains(&0) {
            Some("every feature table needs at least one row".into())
        } else if self.embed_dim == 0 || self.width == 0 || self.max_tokens == 0 {
            Some("embed_dim, width and max_tokens must be at least 1".into())
        } else {
            None
        };
        problem.map_or(Ok(()), |p| {
            Err(Error::InvalidInput(format!("tiny student: {p}")))
        })
    }
}

/// The tiny hash-embedding CNN classifier.
pub struct TinyStudent {
    config: TinyConfig,
    vars: VarMap,
    device: Device,
    trunk: Trunk,
    head: Linear,
}

impl std::fmt::Debug for TinyStudent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TinyStudent")
            .field("config", &self.config)
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

impl TinyStudent {
    /// A freshly initialised student; the same config gives the same initial weights.
    pub fn new(config: TinyConfig, device: &Device) -> Result<TinyStudent> {
        config.validate(TinyTask::Classify)?;
        let vars = VarMap::new();
        let mut init = Init::new(&vars, config.seed, device);
        let trunk = Trunk::new(&config, &mut init)?;
        let head = init.linear("head", 2 * config.width, config.labels.len())?;
        Ok(TinyStudent {
            config,
            vars,
            device: device.clone(),
            trunk,
            head,
        })
    }

    /// Loads `config.json` and `model.safetensors` from `dir`.
    pub fn load(dir: &Path, device: &Device) -> Result<TinyStudent> {
        let mut student = TinyStudent::new(super::artifact::read_config(dir)?, device)?;
        super::artifact::read_weights(dir, &mut student.vars)?;
        Ok(student)
    }

    /// Writes `config.json` and `model.safetensors` into `dir` (created if missing).
    pub fn save(&self, dir: &Path) -> Result<()> {
        super::artifact::write(dir, &self.config, &self.vars)
    }

    /// The configuration this student was built from.
    pub fn config(&self) -> &TinyConfig {
        &self.config
    }

    /// Label names in score order.
    pub fn labels(&self) -> &[String] {
        &self.config.labels
    }

    /// Per-label probabilities for each text (softmax, or sigmoid when multi-label).
    ///
    /// Texts are batched in order of length so that little time goes on padding; padding never
    /// changes a text's scores, so the result does not depend on batching.
    pub fn predict(&self, texts: &[&str], batch_size: usize) -> Result<Vec<Vec<f32>>> {
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| texts[i].len());
        let mut out = vec![Vec::new(); texts.len()];
        for chunk in order.chunks(batch_size.max(1)) {
            let batch: Vec<&str> = chunk.iter().map(|&i| texts[i]).collect();
            for (&i, scores) in chunk.iter().zip(self.probabilities(&batch)?) {
                out[i] = scores;
            }
        }
        Ok(out)
    }

    fn forward(&self, texts: &[&str]) -> candle_core::Result<Tensor> {
        let features: Vec<Vec<[u32; 4]>> = texts
            .iter()
            .map(|t| {
                let mut ids = featurize(&self.config, t);
                if ids.is_empty() {
                    // An empty text still needs a row for pooling; a dedicated hash keeps it
                    // distinct.
                    ids.push(feature_ids(&self.config, &["\0empty"; 4]));
                }
                ids
            })
            .collect();
        let h = self.trunk.encode(&features, &self.device)?;
        let max = h.max(1)?;
        let lengths: Vec<f32> = features.iter().map(|f| f.len() as f32).collect();
        let lengths = Tensor::from_vec(lengths, (texts.len(), 1), &self.device)?;
        let mean = h.sum(1)?.broadcast_div(&lengths)?;
        self.head.forward(&Tensor::cat(&[&max, &mean], D::Minus1)?)
    }
}

/// Seeded weight initialisation into a [`VarMap`], with our own RNG (candle's CPU RNG cannot be
/// seeded). Variables are drawn in creation order, so the same sequence of calls gives the same
/// weights.
pub(super) struct Init<'v> {
    vars: &'v VarMap,
    rng: SplitMix64,
    device: Device,
}

impl<'v> Init<'v> {
    pub(super) fn new(vars: &'v VarMap, seed: u64, device: &Device) -> Init<'v> {
        Init {
            vars,
            rng: SplitMix64::new(seed),
            device: device.clone(),
        }
    }

    /// A `shape` variable uniform in `[-scale, scale)`.
    pub(super) fn tensor(
        &mut self,
        name: &str,
        shape: (usize, usize),
        scale: f64,
    ) -> Result<Tensor> {
        let data: Vec<f32> = (0..shape.0 * shape.1)
            .map(|_| ((self.rng.next_f64() * 2.0 - 1.0) * scale) as f32)
            .collect();
        let var = Tensor::from_vec(data, shape, &self.device)
            .and_then(|t| Var::from_tensor(&t))
            .ctx(|| format!("initialising {name}"))?;
        let tensor = var.as_tensor().clone();
        self.vars
            .data()
            .lock()
            .map_err(|_| Error::InvalidInput("tiny student: variable map poisoned".into()))?
            .insert(name.to_string(), var);
        Ok(tensor)
    }

    /// A linear layer with Glorot-uniform weights and zero biases.
    pub(super) fn linear(&mut self, name: &str, fan_in: usize, fan_out: usize) -> Result<Linear> {
        let limit = (6.0 / (fan_in + fan_out) as f64).sqrt();
        let w = self.tensor(&format!("{name}.weight"), (fan_out, fan_in), limit)?;
        let b = self
            .tensor(&format!("{name}.bias"), (1, fan_out), 0.0)?
            .squeeze(0)
            .ctx(|| format!("{name}.bias"))?;
        Ok(Linear::new(w, Some(b)))
    }
}

/// The shared body of the tiny models: hashed feature tables, the mixer and the conv layers.
pub(super) struct Trunk {
    tables: Vec<Tensor>,
    mixer: Linear,
    convs: Vec<Linear>,
    width: usize,
}

impl Trunk {
    pub(super) fn new(config: &TinyConfig, init: &mut Init<'_>) -> Result<Trunk> {
        let e = config.embed_dim;
        let w = config.width;
        let tables = ["norm", "prefix", "suffix", "shape"]
            .iter()
            .zip(config.rows.as_array())
            .map(|(name, rows)| init.tensor(&format!("embed.{name}"), (rows, e), 0.1))
            .collect::<Result<Vec<_>>>()?;
        let mixer = init.linear("mixer", 4 * e, w)?;
        let convs = (0..config.conv_layers)
            .map(|i| init.linear(&format!("conv{i}"), 3 * w, w))
            .collect::<Result<Vec<_>>>()?;
        Ok(Trunk {
            tables,
            mixer,
            convs,
            width: w,
        })
    }

    /// Token vectors `(batch, len, width)` for texts given as feature ids; padding rows are
    /// zero, `len` is at least 1.
    pub(super) fn encode(
        &self,
        features: &[Vec<[u32; 4]>],
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        let batch = features.len();
        let len = features.iter().map(Vec::len).max().unwrap_or(0).max(1);
        let mut mask = vec![0f32; batch * len];
        let mut ids = vec![vec![0u32; batch * len]; 4];
        for (b, tokens) in features.iter().enumerate() {
            for (t, token) in tokens.iter().enumerate() {
                mask[b * len + t] = 1.0;
                for f in 0..4 {
                    ids[f][b * len + t] = token[f];
                }
            }
        }
        let mask = Tensor::from_vec(mask, (batch, len, 1), device)?;
        let mut embedded = Vec::with_capacity(4);
        for (table, ids) in self.tables.iter().zip(ids) {
            let ids = Tensor::from_vec(ids, batch * len, device)?;
            embedded.push(table.index_select(&ids, 0)?);
        }
        let mixed = self.mixer.forward(&Tensor::cat(&embedded, 1)?)?.relu()?;
        let mut h = mixed
            .reshape((batch, len, self.width))?
            .broadcast_mul(&mask)?;
        for conv in &self.convs {
            // Each position sees [left, self, right]; zero padding stands in past either end.
            let left = h.pad_with_zeros(1, 1, 0)?.narrow(1, 0, len)?;
            let right = h.pad_with_zeros(1, 0, 1)?.narrow(1, 1, len)?;
            let window = Tensor::cat(&[&left, &h, &right], 2)?;
            let update = conv.forward(&window)?.relu()?;
            h = (h + update)?.broadcast_mul(&mask)?;
        }
        Ok(h)
    }
}

/// Hashed feature ids of the first `config.max_tokens` tokens of `text` (none for a blank text).
pub(super) fn featurize(config: &TinyConfig, text: &str) -> Vec<[u32; 4]> {
    tokenize(text)
        .take(config.max_tokens)
        .map(|token| feature_ids(config, &token_features(token)))
        .collect()
}

fn feature_ids<S: AsRef<str>>(config: &TinyConfig, features: &[S; 4]) -> [u32; 4] {
    let rows = config.rows.as_array();
    std::array::from_fn(|f| {
        let h = stable_hash(config.seed ^ f as u64, features[f].as_ref().as_bytes());
        (h % rows[f] as u64) as u32
    })
}

impl Trainable for TinyStudent {
    type Input = String;

    fn var_map(&self) -> &VarMap {
        &self.vars
    }

    fn num_labels(&self) -> usize {
        self.config.labels.len()
    }

    fn multi_label(&self) -> bool {
        self.config.multi_label
    }

    fn logits(&self, inputs: &[&String]) -> Result<Tensor> {
        let texts: Vec<&str> = inputs.iter().map(|s| s.as_str()).collect();
        self.logits_for(&texts)
    }
}

impl TinyStudent {
    fn logits_for(&self, texts: &[&str]) -> Result<Tensor> {
        if texts.is_empty() {
            return Tensor::zeros((0, self.num_labels()), DType::F32, &self.device)
                .ctx(|| "tiny student: empty batch".into());
        }
        self.forward(texts)
            .ctx(|| format!("tiny student forward ({} texts)", texts.len()))
    }

    fn probabilities(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let logits = self.logits_for(texts)?;
        let probs = if self.config.multi_label {
            candle_nn::ops::sigmoid(&logits)
        } else {
            candle_nn::ops::softmax_last_dim(&logits)
        };
        probs
            .and_then(|p| p.to_vec2::<f32>())
            .ctx(|| "tiny student scores".into())
    }
}

/// Words and punctuation per Unicode word boundaries (UAX #29), whitespace dropped.
pub fn tokenize(text: &str) -> impl Iterator<Item = &str> {
    token_ranges(text).map(move |r| &text[r])
}

/// Byte ranges of the tokens [`tokenize`] yields.
pub fn token_ranges(text: &str) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
    text.split_word_bound_indices()
        .filter(|(_, s)| !s.chars().all(char::is_whitespace))
        .map(|(start, s)| start..start + s.len())
}

/// The four hashed features of a token: lower-cased form, prefix, suffix and shape.
pub fn token_features(token: &str) -> [String; 4] {
    let lower = token.to_lowercase();
    let chars: Vec<char> = lower.chars().collect();
    let prefix: String = chars.iter().take(3).collect();
    let suffix: String = chars[chars.len().saturating_sub(3)..].iter().collect();
    [lower, prefix, suffix, word_shape(token)]
}

/// spaCy-style shape: `X` upper, `x` lower, `d` digit, other characters kept; runs of the same
/// class are cut after four, so "Gloss" is `Xxxxx` → `Xxxxx`, and "123456" is `dddd`.
pub fn word_shape(token: &str) -> String {
    let mut shape = String::new();
    let (mut last, mut run) = (None, 0);
    for c in token.chars() {
        let class = if c.is_uppercase() {
            'X'
        } else if c.is_lowercase() {
            'x'
        } else if c.is_numeric() {
            'd'
        } else {
            c
        };
        run = if last == Some(class) { run + 1 } else { 1 };
        last = Some(class);
        if run <= 4 {
            shape.push(class);
        }
    }
    shape
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer_and_features() {
        let tokens: Vec<&str> = tokenize("Don't panic, café 2024!").collect();
        assert_eq!(tokens, ["Don't", "panic", ",", "café", "2024", "!"]);
        assert_eq!(
            token_features("Cafés"),
            [
                "cafés".to_string(),
                "caf".into(),
                "fés".into(),
                "Xxxxx".into()
            ]
        );
        assert_eq!(word_shape("Gloss-ML"), "Xxxxx-XX");
        assert_eq!(word_shape("1234567"), "dddd");
        assert_eq!(token_features("a")[2], "a");
    }

    #[test]
    fn scores_are_probabilities_and_empty_text_works() {
        let mut config = TinyConfig::new(vec!["a".into(), "b".into(), "c".into()]);
        config.rows = FeatureRows {
            norm: 64,
            prefix: 32,
            suffix: 32,
            shape: 16,
        };
        config.embed_dim = 8;
        config.width = 16;
        let student = TinyStudent::new(config, &Device::Cpu).unwrap();
        let scores = student
            .predict(&["", "hello world", "a b c d e f"], 2)
            .unwrap();
        assert_eq!(scores.len(), 3);
        for row in &scores {
            assert_eq!(row.len(), 3);
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }
        // Padding must not change a text's scores: alone or next to a longer text.
        let alone = student.predict(&["hello world"], 1).unwrap();
        assert_eq!(alone[0], scores[1]);
    }

    #[test]
    fn bad_config_is_rejected() {
        let mut config = TinyConfig::new(vec![]);
        assert!(TinyStudent::new(config.clone(), &Device::Cpu).is_err());
        config.labels = vec!["x".into()];
        config.format_version = 99;
        let err = TinyStudent::new(config, &Device::Cpu).unwrap_err();
        assert!(err.to_string().contains("format_version 99"), "{err}");
    }
}
