//! A llama-family GGUF model that runs several prompts at once: the teacher's forward pass.
//!
//! Prompts of different lengths are left-padded into one batch. Padding is masked out of every
//! attention, and a pad query attends to itself only so that nothing in the batch becomes NaN.
//! Rotary embeddings use the column as the position. Llama has no absolute position embedding and
//! rotary attention depends only on the distance between tokens, so each row computes what it
//! would compute alone (up to floating-point rounding).
//!
//! Weights ([`Weights`]): on the CPU a small model's quantized matrices are expanded to f32 at
//! load, because the f32 matrix multiply picks the CPU's vector instructions at run time while
//! the quantized kernels only use those the binary was compiled for. Large models, and every
//! model on a GPU, keep their quantized weights.

use candle_core::quantized::{gguf_file, QMatMul, QTensor};
use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::Embedding;
use candle_transformers::quantized_nn::RmsNorm;

use crate::error::{CandleContext, Error, Result};

/// Positions the rotary tables cover.
pub const MAX_POSITIONS: usize = 4096;

/// How a model's matrices are held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weights {
    /// f32 on the CPU when the expanded model fits [`Weights::AUTO_F32_BYTES`], quantized
    /// otherwise.
    Auto,
    /// As stored in the file.
    Quantized,
    /// Expanded to f32.
    F32,
}

impl Weights {
    /// The largest expanded size [`Weights::Auto`] expands to f32 (2 GiB).
    pub const AUTO_F32_BYTES: usize = 2 << 30;
}

struct Layer {
    wq: QMatMul,
    wk: QMatMul,
    wv: QMatMul,
    wo: QMatMul,
    gate: QMatMul,
    up: QMatMul,
    down: QMatMul,
    attn_norm: RmsNorm,
    ffn_norm: RmsNorm,
}

/// The model's weights; the key/value cache lives outside it ([`KvCache`]), so one model serves
/// many batches and a cache can be cloned to look ahead.
pub struct Llama {
    embed: Embedding,
    layers: Vec<Layer>,
    norm: RmsNorm,
    output: QMatMul,
    n_head: usize,
    n_kv_head: usize,
    head_dim: usize,
    cos: Tensor,
    sin: Tensor,
    device: Device,
    f32_weights: bool,
}

/// What a batch has seen so far: per layer its keys and values `(batch, kv heads, len, dim)`,
/// and how many pad columns each row starts with.
#[derive(Clone)]
pub struct KvCache {
    k: Vec<Tensor>,
    v: Vec<Tensor>,
    pads: Vec<usize>,
    len: usize,
}

impl KvCache {
    /// Columns seen so far (padding included).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing has been seen yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Rows in the batch.
    pub fn rows(&self) -> usize {
        self.pads.len()
    }
}

impl std::fmt::Debug for Llama {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Llama")
            .field("layers", &self.layers.len())
            .field("n_head", &self.n_head)
            .field("n_kv_head", &self.n_kv_head)
            .field("head_dim", &self.head_dim)
            .field("f32_weights", &self.f32_weights)
            .finish_non_exhaustive()
    }
}

impl Llama {
    /// Loads the weights of a llama-family GGUF file whose header is `content`.
    pub fn load<R: std::io::Seek + std::io::Read>(
        content: &gguf_file::Content,
        reader: &mut R,
        device: &Device,
        weights: Weights,
    ) -> Result<Llama> {
        let ctx = |what: &str| format!("loading the llama weights: {what}");
        let number = |key: &str| -> Result<usize> {
            content
                .metadata
                .get(key)
                .and_then(|v| v.to_u32().ok())
                .map(|n| n as usize)
                .ok_or_else(|| Error::InvalidInput(format!("GGUF metadata has no number {key}")))
        };
        let float = |key: &str, default: f32| -> f32 {
            content
                .metadata
                .get(key)
                .and_then(|v| v.to_f32().ok())
                .unwrap_or(default)
        };
        if number("llama.expert_count").unwrap_or(0) > 1 {
            return Err(Error::InvalidInput(
                "mixture-of-experts llama models are not supported".into(),
            ));
        }
        let n_head = number("llama.attention.head_count")?;
        let n_kv_head = number("llama.attention.head_count_kv")?;
        let blocks = number("llama.block_count")?;
        let hidden = number("llama.embedding_length")?;
        let rope_dim = number("llama.rope.dimension_count")?;
        let eps = f64::from(float("llama.attention.layer_norm_rms_epsilon", 1e-5));
        let freq_base = float("llama.rope.freq_base", 10_000.0);
        if n_head == 0 || n_kv_head == 0 || n_head % n_kv_head != 0 || hidden % n_head != 0 {
            return Err(Error::InvalidInput(format!(
                "GGUF metadata: {n_head} heads, {n_kv_head} key/value heads and width {hidden} \
                 do not fit together"
            )));
        }

        let f32_weights = match weights {
            Weights::Quantized => false,
            Weights::F32 => true,
            Weights::Auto => {
                let params: usize = content
                    .tensor_infos
                    .values()
                    .map(|t| t.shape.elem_count())
                    .sum();
                device.is_cpu() && params * 4 <= Weights::AUTO_F32_BYTES
            }
        };
        let mut tensor = |name: &str| -> Result<QTensor> {
            content
                .tensor(reader, name, device)
                .ctx(|| ctx(&format!("tensor {name}")))
        };
        let matmul = |t: QTensor| -> Result<QMatMul> {
            if f32_weights {
                let w = t.dequantize(device).ctx(|| ctx("expanding to f32"))?;
                Ok(QMatMul::Tensor(w))
            } else {
                QMatMul::from_qtensor(t).ctx(|| ctx("quantized matrix"))
            }
        };
        let norm = |t: QTensor| RmsNorm::from_qtensor(t, eps).ctx(|| ctx("norm"));

        let embed_q = tensor("token_embd.weight")?;
        let embed = embed_q.dequantize(device).ctx(|| ctx("token_embd"))?;
        let output = match content.tensor_infos.contains_key("output.weight") {
            true => tensor("output.weight")?,
            false => embed_q,
        };
        let mut layers = Vec::with_capacity(blocks);
        for i in 0..blocks {
            let mut t = |part: &str| tensor(&format!("blk.{i}.{part}.weight"));
            layers.push(Layer {
                wq: matmul(t("attn_q")?)?,
                wk: matmul(t("attn_k")?)?,
                wv: matmul(t("attn_v")?)?,
                wo: matmul(t("attn_output")?)?,
                gate: matmul(t("ffn_gate")?)?,
                up: matmul(t("ffn_up")?)?,
                down: matmul(t("ffn_down")?)?,
                attn_norm: norm(t("attn_norm")?)?,
                ffn_norm: norm(t("ffn_norm")?)?,
            });
        }
        let (cos, sin) = rotary_tables(rope_dim, freq_base, device)?;
        Ok(Llama {
            embed: Embedding::new(embed, hidden),
            layers,
            norm: norm(tensor("output_norm.weight")?)?,
            output: matmul(output)?,
            n_head,
            n_kv_head,
            head_dim: hidden / n_head,
            cos,
            sin,
            device: device.clone(),
            f32_weights,
        })
    }

    /// Whether the matrices were expanded to f32.
    pub fn f32_weights(&self) -> bool {
        self.f32_weights
    }

    /// Runs the prompts (left-padded into one batch) and returns each row's next-token logits
    /// and the cache to go on from.
    pub fn prefill(&self, prompts: &[Vec<u32>]) -> Result<(Vec<Vec<f32>>, KvCache)> {
        let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
        if longest == 0 || prompts.iter().any(Vec::is_empty) {
            return Err(Error::InvalidInput("llama: an empty prompt".into()));
        }
        let pads: Vec<usize> = prompts.iter().map(|p| longest - p.len()).collect();
        let mut cache = KvCache {
            k: Vec::new(),
            v: Vec::new(),
            pads,
            len: 0,
        };
        let block: Vec<Vec<u32>> = prompts
            .iter()
            .map(|p| {
                // Pad with the prompt's own first token: masked out, any id would do.
                let mut row = vec![p[0]; longest - p.len()];
                row.extend_from_slice(p);
                row
            })
            .collect();
        let logits = self.forward(&mut cache, &block, false)?;
        Ok((rows(&logits)?, cache))
    }

    /// Feeds one token per row after the cache; returns each row's next-token logits.
    pub fn step(&self, cache: &mut KvCache, tokens: &[u32]) -> Result<Vec<Vec<f32>>> {
        let block: Vec<Vec<u32>> = tokens.iter().map(|&t| vec![t]).collect();
        rows(&self.forward(cache, &block, false)?)
    }

    /// Feeds `tokens` (the same ids for every row) after the cache and returns the logits after
    /// each of them, `[row][position][vocab]`.
    pub fn look_ahead(&self, cache: &mut KvCache, tokens: &[u32]) -> Result<Vec<Vec<Vec<f32>>>> {
        let block = vec![tokens.to_vec(); cache.rows()];
        self.forward(cache, &block, true)?
            .to_dtype(DType::F32)
            .and_then(|l| l.to_vec3::<f32>())
            .ctx(|| "llama: reading logits".into())
    }

    /// Runs `block` (rows of equal length) after the cache. Returns the logits of the last
    /// column `(rows, vocab)`, or of every column `(rows, len, vocab)` when `all`.
    fn forward(&self, cache: &mut KvCache, block: &[Vec<u32>], all: bool) -> Result<Tensor> {
        let rows = block.len();
        let len = block.first().map_or(0, Vec::len);
        if rows != cache.rows() || len == 0 || block.iter().any(|r| r.len() != len) {
            return Err(Error::InvalidInput(format!(
                "llama: a block of {rows} rows for a batch of {}, rows of unequal or no length",
                cache.rows()
            )));
        }
        if cache.len + len > MAX_POSITIONS.min(self.cos.dim(0).unwrap_or(0)) {
            return Err(Error::InvalidInput(format!(
                "llama: {} positions exceed the {MAX_POSITIONS} the model covers",
                cache.len + len
            )));
        }
        let mut run = || -> candle_core::Result<Tensor> {
            let ids: Vec<u32> = block.iter().flatten().copied().collect();
            let ids = Tensor::from_vec(ids, (rows, len), &self.device)?;
            let mask = self.mask(cache, len)?;
            let mut x = self.embed.forward(&ids)?;
            for (i, layer) in self.layers.iter().enumerate() {
                let h = layer.attn_norm.forward(&x)?;
                let h = self.attention(layer, i, cache, &h, &mask)?;
                x = (x + h)?;
                let h = layer.ffn_norm.forward(&x)?;
                let gate = candle_nn::ops::silu(&linear(&layer.gate, &h)?)?;
                let h = linear(&layer.down, &(gate * linear(&layer.up, &h)?)?)?;
                x = (x + h)?;
            }
            let x = self.norm.forward(&x)?;
            if all {
                linear(&self.output, &x)
            } else {
                let last = x.narrow(1, len - 1, 1)?.contiguous()?;
                linear(&self.output, &last)?.squeeze(1)
            }
        };
        let out = run().ctx(|| format!("llama forward of {rows}×{len} tokens"))?;
        cache.len += len;
        Ok(out)
    }

    /// Which keys each new query may not see, `(rows, 1, len, seen + len)`, 1 for hidden: keys
    /// after the query and the row's padding (a pad query sees itself only).
    fn mask(&self, cache: &KvCache, len: usize) -> candle_core::Result<Tensor> {
        let keys = cache.len + len;
        let mut m = Vec::with_capacity(cache.rows() * len * keys);
        for &pad in &cache.pads {
            for q in cache.len..keys {
                for k in 0..keys {
                    let visible = if q < pad { k == q } else { k >= pad && k <= q };
                    m.push(u8::from(!visible));
                }
            }
        }
        Tensor::from_vec(m, (cache.rows(), 1, len, keys), &self.device)
    }

    fn attention(
        &self,
        layer: &Layer,
        index: usize,
        cache: &mut KvCache,
        x: &Tensor,
        mask: &Tensor,
    ) -> candle_core::Result<Tensor> {
        let (rows, len, width) = x.dims3()?;
        let heads = |t: Tensor, n: usize| {
            t.reshape((rows, len, n, self.head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = heads(linear(&layer.wq, x)?, self.n_head)?;
        let k = heads(linear(&layer.wk, x)?, self.n_kv_head)?;
        let v = heads(linear(&layer.wv, x)?, self.n_kv_head)?;
        let cos = self.cos.narrow(0, cache.len, len)?;
        let sin = self.sin.narrow(0, cache.len, len)?;
        let q = candle_nn::rotary_emb::rope_i(&q, &cos, &sin)?;
        let k = candle_nn::rotary_emb::rope_i(&k, &cos, &sin)?;
        let (k, v) = match (cache.k.get(index), cache.v.get(index)) {
            (Some(pk), Some(pv)) => (Tensor::cat(&[pk, &k], 2)?, Tensor::cat(&[pv, &v], 2)?),
            _ => (k, v),
        };
        if cache.k.len() > index {
            cache.k[index] = k.clone();
            cache.v[index] = v.clone();
        } else {
            cache.k.push(k.clone());
            cache.v.push(v.clone());
        }
        let repeat = self.n_head / self.n_kv_head;
        let k = candle_transformers::utils::repeat_kv(k, repeat)?.contiguous()?;
        let v = candle_transformers::utils::repeat_kv(v, repeat)?.contiguous()?;
        let scores = (q.matmul(&k.t()?)? / (self.head_dim as f64).sqrt())?;
        let hidden = mask.broadcast_as(scores.shape())?;
        let neg_inf = Tensor::new(f32::NEG_INFINITY, &self.device)?
            .to_dtype(scores.dtype())?
            .broadcast_as(scores.shape())?;
        let scores = hidden.where_cond(&neg_inf, &scores)?;
        let weights = candle_nn::ops::softmax_last_dim(&scores)?;
        let y = weights.matmul(&v)?;
        let y = y.transpose(1, 2)?.reshape((rows, len, width))?;
        linear(&layer.wo, &y)
    }
}

/// `x (rows, len, in)` times a weight matrix, as one 2-D product.
fn linear(w: &QMatMul, x: &Tensor) -> candle_core::Result<Tensor> {
    let (rows, len, width) = x.dims3()?;
    let y = w.forward(&x.contiguous()?.reshape((rows * len, width))?)?;
    let out = y.dim(D::Minus1)?;
    y.reshape((rows, len, out))
}

fn rows(logits: &Tensor) -> Result<Vec<Vec<f32>>> {
    logits
        .to_dtype(DType::F32)
        .and_then(|l| l.to_vec2::<f32>())
        .ctx(|| "llama: reading logits".into())
}

/// cos and sin of every position times every rotary frequency, `(MAX_POSITIONS, dim / 2)`.
fn rotary_tables(dim: usize, base: f32, device: &Device) -> Result<(Tensor, Tensor)> {
    let freqs: Vec<f32> = (0..dim)
        .step_by(2)
        .map(|i| 1.0 / base.powf(i as f32 / dim as f32))
        .collect();
    let mut cos = Vec::with_capacity(MAX_POSITIONS * freqs.len());
    let mut sin = Vec::with_capacity(MAX_POSITIONS * freqs.len());
    for p in 0..MAX_POSITIONS {
        for f in &freqs {
            let angle = p as f32 * f;
            cos.push(angle.cos());
            sin.push(angle.sin());
        }
    }
    let shape = (MAX_POSITIONS, freqs.len());
    let make = |v: Vec<f32>| Tensor::from_vec(v, shape, device).ctx(|| "rotary tables".into());
    Ok((make(cos)?, make(sin)?))
}
