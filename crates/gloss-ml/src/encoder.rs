//! Sentence encoder: a BERT-family model (candle) producing L2-normalised mean-pooled embeddings.
//!
//! The model directory holds `config.json`, `tokenizer.json` and `model.safetensors`, as exported
//! for sentence-transformers models such as all-MiniLM-L6-v2. Padding configured in
//! `tokenizer.json` is switched off: texts are sorted by token length and padded per batch, so a
//! batch of short texts costs what short texts cost, and the attention mask keeps padding out of
//! both attention and pooling. Results therefore do not depend on batch size or order.
//!
//! [`Encoder::token_states`] exposes the per-word-piece vectors before pooling, with each piece's
//! character range in the text, for token classification (the entity head student).

use std::ops::Range;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, D};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::Config;
use tokenizers::{Tokenizer, TruncationParams};

use crate::error::{CandleContext, Error, Result};

const CONFIG_FILE: &str = "config.json";
const TOKENIZER_FILE: &str = "tokenizer.json";
const WEIGHTS_FILE: &str = "model.safetensors";

/// Rows in one forward pass on the CPU. A batch's rows share a length bucket either way (that is
/// what saves padding); past about 8 rows the activations of a pass outgrow the caches and a
/// larger pass is slower per row (BENCH.md).
const ROWS_PER_PASS: usize = 8;

/// A loaded sentence encoder; `embed` is deterministic and independent of batching.
pub struct Encoder {
    model: crate::bert::Bert,
    tokenizer: Tokenizer,
    device: Device,
    dim: usize,
    max_tokens: usize,
    pad_id: u32,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("device", &self.device)
            .field("dim", &self.dim)
            .field("max_tokens", &self.max_tokens)
            .finish_non_exhaustive()
    }
}

impl Encoder {
    /// Loads `config.json`, `tokenizer.json` and `model.safetensors` from `dir` onto `device`.
    pub fn load(dir: &Path, device: &Device) -> Result<Encoder> {
        let config_path = dir.join(CONFIG_FILE);
        let config: Config = read_json(&config_path)?;

        let tokenizer_path = dir.join(TOKENIZER_FILE);
        let tokenizer = load_tokenizer(&tokenizer_path, config.max_position_embeddings)?;
        let max_tokens = tokenizer
            .get_truncation()
            .map_or(config.max_position_embeddings, |t| t.max_length);

        let weights_path = dir.join(WEIGHTS_FILE);
        let bytes = std::fs::read(&weights_path).map_err(|e| Error::io(&weights_path, e))?;
        let vb = VarBuilder::from_buffered_safetensors(bytes, DType::F32, device)
            .ctx(|| format!("{}: reading safetensors", weights_path.display()))?;
        let model = crate::bert::Bert::load(vb, &config)
            .ctx(|| format!("{}: building BERT model", weights_path.display()))?;

        Ok(Encoder {
            model,
            tokenizer,
            device: device.clone(),
            dim: config.hidden_size,
            max_tokens,
            pad_id: u32::try_from(config.pad_token_id).unwrap_or(0),
        })
    }

    /// Width of the embeddings `embed` returns.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Longest input in tokens (special tokens included); longer texts are truncated.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// Embeds `texts` in batches of at most `batch_size`, returning one unit vector per text, in
    /// the order given.
    pub fn embed(&self, texts: &[&str], batch_size: usize) -> Result<Vec<Vec<f32>>> {
        if batch_size == 0 {
            return Err(Error::InvalidInput(
                "embed: batch_size must be at least 1".into(),
            ));
        }
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| Error::tokenizer("encoding encoder input", e))?;
        let token_ids: Vec<&[u32]> = encodings.iter().map(|e| e.get_ids()).collect();

        let mut out = vec![Vec::new(); texts.len()];
        for batch in length_buckets(&token_ids, batch_size) {
            let rows: Vec<&[u32]> = batch.iter().map(|&i| token_ids[i]).collect();
            let embeddings = self.embed_batch(&rows)?;
            for (&i, embedding) in batch.iter().zip(embeddings) {
                out[i] = embedding;
            }
        }
        Ok(out)
    }

    /// Runs one padded batch through the model, [`ROWS_PER_PASS`] rows at a time; rows may have
    /// different lengths.
    fn embed_batch(&self, rows: &[&[u32]]) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(rows.len());
        for pass in rows.chunks(ROWS_PER_PASS) {
            let ctx = || format!("encoder batch of {} texts", pass.len());
            let (ids, mask) = self.padded(pass).ctx(ctx)?;
            let hidden = self.model.forward(&ids, &mask).ctx(ctx)?;
            let pooled = masked_mean_l2(&hidden, &mask).ctx(ctx)?;
            out.extend(pooled.to_vec2::<f32>().ctx(ctx)?);
        }
        Ok(out)
    }
}

/// One text's contextual word-piece vectors, special tokens left out.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenStates {
    /// Code-point range of the text each word piece came from, in text order.
    pub offsets: Vec<Range<usize>>,
    /// Row-major `offsets.len() × dim` last-layer hidden states.
    pub states: Vec<f32>,
    /// Width of each row.
    pub dim: usize,
    /// Length of the text in code points (gold spans must end within it).
    pub text_len: usize,
}

impl Encoder {
    /// Last-layer hidden state of every word piece of each text (truncated to
    /// [`max_tokens`](Encoder::max_tokens) with the special tokens), with character offsets.
    /// Batching works as in [`embed`](Encoder::embed) and does not change the results.
    pub fn token_states(&self, texts: &[&str], batch_size: usize) -> Result<Vec<TokenStates>> {
        if batch_size == 0 {
            return Err(Error::InvalidInput(
                "token_states: batch_size must be at least 1".into(),
            ));
        }
        let encodings = self
            .tokenizer
            .encode_batch_char_offsets(texts.to_vec(), true)
            .map_err(|e| Error::tokenizer("encoding encoder input", e))?;
        let token_ids: Vec<&[u32]> = encodings.iter().map(|e| e.get_ids()).collect();
        let mut out: Vec<Option<TokenStates>> = vec![None; texts.len()];
        for batch in length_buckets(&token_ids, batch_size) {
            let rows: Vec<&[u32]> = batch.iter().map(|&i| token_ids[i]).collect();
            let hidden = self.hidden_batch(&rows)?;
            for (row, &i) in batch.iter().enumerate() {
                let encoding = &encodings[i];
                let mut offsets = Vec::new();
                let mut states = Vec::new();
                for (t, (&special, &(start, end))) in encoding
                    .get_special_tokens_mask()
                    .iter()
                    .zip(encoding.get_offsets())
                    .enumerate()
                {
                    if special == 0 && start < end {
                        offsets.push(start..end);
                        states.extend_from_slice(&hidden[row][t]);
                    }
                }
                out[i] = Some(TokenStates {
                    offsets,
                    states,
                    dim: self.dim,
                    text_len: texts[i].chars().count(),
                });
            }
        }
        out.into_iter()
            .enumerate()
            .map(|(i, s)| {
                s.ok_or_else(|| {
                    Error::InvalidInput(format!("token_states: text {i} was not encoded"))
                })
            })
            .collect()
    }

    /// Hidden states `[row][token][dim]` of one padded batch, [`ROWS_PER_PASS`] rows at a time;
    /// rows may differ in length.
    fn hidden_batch(&self, rows: &[&[u32]]) -> Result<Vec<Vec<Vec<f32>>>> {
        let mut out = Vec::with_capacity(rows.len());
        for pass in rows.chunks(ROWS_PER_PASS) {
            let ctx = || format!("encoder batch of {} texts", pass.len());
            let (ids, mask) = self.padded(pass).ctx(ctx)?;
            let hidden = self.model.forward(&ids, &mask).ctx(ctx)?;
            out.extend(hidden.to_vec3::<f32>().ctx(ctx)?);
        }
        Ok(out)
    }

    /// Token ids and attention mask, each `(rows, longest row)`, padded with the pad id and 0.
    fn padded(&self, rows: &[&[u32]]) -> candle_core::Result<(Tensor, Tensor)> {
        let width = rows.iter().map(|r| r.len()).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(rows.len() * width);
        let mut mask = Vec::with_capacity(rows.len() * width);
        for row in rows {
            ids.extend_from_slice(row);
            ids.extend(std::iter::repeat_n(self.pad_id, width - row.len()));
            mask.extend(std::iter::repeat_n(1u32, row.len()));
            mask.extend(std::iter::repeat_n(0u32, width - row.len()));
        }
        let shape = (rows.len(), width);
        Ok((
            Tensor::from_vec(ids, shape, &self.device)?,
            Tensor::from_vec(mask, shape, &self.device)?,
        ))
    }
}

/// Mean of `hidden` (batch, tokens, dim) over the tokens whose `mask` is 1, then L2-normalised.
fn masked_mean_l2(hidden: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
    let mask = mask.to_dtype(hidden.dtype())?.unsqueeze(D::Minus1)?;
    let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
    let counts = mask.sum(1)?.clamp(1e-9, f64::INFINITY)?;
    let mean = summed.broadcast_div(&counts)?;
    let norms = mean
        .sqr()?
        .sum_keepdim(1)?
        .sqrt()?
        .clamp(1e-12, f64::INFINITY)?;
    mean.broadcast_div(&norms)
}

/// Groups indices of `rows` into batches of similar length: sorted by length (stable, so equal
/// lengths keep their input order), then cut into chunks of `batch_size`.
fn length_buckets(rows: &[&[u32]], batch_size: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by_key(|&i| rows[i].len());
    order.chunks(batch_size).map(<[usize]>::to_vec).collect()
}

fn load_tokenizer(path: &Path, max_positions: usize) -> Result<Tokenizer> {
    let mut tokenizer =
        Tokenizer::from_file(path).map_err(|e| Error::tokenizer(path.display().to_string(), e))?;
    tokenizer.with_padding(None);
    let truncation = match tokenizer.get_truncation() {
        Some(t) if t.max_length <= max_positions => t.clone(),
        Some(t) => TruncationParams {
            max_length: max_positions,
            ..t.clone()
        },
        None => TruncationParams {
            max_length: max_positions,
            ..Default::default()
        },
    };
    tokenizer
        .with_truncation(Some(truncation))
        .map_err(|e| Error::tokenizer(path.display().to_string(), e))?;
    Ok(tokenizer)
}

fn read_json<T: serde::de::DeserializeOwned>(path: &PathBuf) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|source| Error::Json {
        path: path.clone(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_buckets_sort_by_length_and_cover_every_row() {
        let rows: Vec<Vec<u32>> = vec![vec![0; 5], vec![0; 1], vec![0; 3], vec![0; 1], vec![0; 9]];
        let refs: Vec<&[u32]> = rows.iter().map(Vec::as_slice).collect();
        let buckets = length_buckets(&refs, 2);
        assert_eq!(buckets, vec![vec![1, 3], vec![2, 0], vec![4]]);
    }

    #[test]
    fn masked_mean_ignores_padding_and_normalises() {
        let dev = Device::Cpu;
        let hidden = Tensor::new(&[[[3f32, 4.], [100., 100.]]], &dev).unwrap();
        let mask = Tensor::new(&[[1u32, 0]], &dev).unwrap();
        let out = masked_mean_l2(&hidden, &mask)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        assert!((out[0][0] - 0.6).abs() < 1e-6 && (out[0][1] - 0.8).abs() < 1e-6);
    }
}
