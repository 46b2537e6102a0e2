//! The BERT encoder's forward pass for inference, written for speed on a few CPU cores:
//! - query, key and value come from one matrix product, with the 1/√d attention scale folded
//!   into the query weights when the model loads;
//! - weights are stored transposed and contiguous, as the matrix products read them;
//! - bias + activation, bias + residual and the masked softmax are fused and run on every thread
//!   ([`crate::fused`]); layer norm is candle's fused kernel.
//!
//! Weights and results are those of the standard BERT (`config.json` as Hugging Face exports
//! it; names with or without a `bert.` prefix).

use candle_core::{DType, Result, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{Config, HiddenAct};

use crate::fused::{self, Act};

struct Norm {
    weight: Tensor,
    bias: Tensor,
    eps: f32,
}

impl Norm {
    fn load(vb: VarBuilder, size: usize, eps: f64) -> Result<Norm> {
        Ok(Norm {
            weight: vb.get(size, "weight")?,
            bias: vb.get(size, "bias")?,
            eps: eps as f32,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        candle_nn::ops::layer_norm(&x.contiguous()?, &self.weight, &self.bias, self.eps)
    }
}

/// A dense layer's weight, transposed to (in, out), and its bias.
struct Dense {
    weight_t: Tensor,
    bias: Tensor,
}

impl Dense {
    fn load(vb: VarBuilder, inputs: usize, outputs: usize) -> Result<Dense> {
        Ok(Dense {
            weight_t: vb.get((outputs, inputs), "weight")?.t()?.contiguous()?,
            bias: vb.get(outputs, "bias")?,
        })
    }
}

struct Layer {
    qkv: Dense,
    attention_out: Dense,
    attention_norm: Norm,
    intermediate: Dense,
    output: Dense,
    output_norm: Norm,
}

/// A BERT encoder (embeddings and transformer layers; no pooler).
pub struct Bert {
    word: Tensor,
    position: Tensor,
    token_type: Tensor,
    embedding_norm: Norm,
    layers: Vec<Layer>,
    heads: usize,
    head_dim: usize,
    hidden: usize,
    act: Act,
}

impl Bert {
    /// Loads the weights `vb` holds for `config`.
    pub fn load(vb: VarBuilder, config: &Config) -> Result<Bert> {
        let vb = if vb.contains_tensor("embeddings.word_embeddings.weight") {
            vb
        } else {
            vb.pp("bert")
        };
        let h = config.hidden_size;
        let heads = config.num_attention_heads;
        if heads == 0 || !h.is_multiple_of(heads) {
            candle_core::bail!("hidden_size {h} is not a multiple of {heads} attention heads");
        }
        let head_dim = h / heads;
        let eps = config.layer_norm_eps;
        let e = vb.pp("embeddings");
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let l = vb.pp(format!("encoder.layer.{i}"));
            let a = l.pp("attention.self");
            let scale = 1.0 / (head_dim as f64).sqrt();
            let q = Dense::load(a.pp("query"), h, h)?;
            let k = Dense::load(a.pp("key"), h, h)?;
            let v = Dense::load(a.pp("value"), h, h)?;
            let qkv = Dense {
                weight_t: Tensor::cat(&[(q.weight_t * scale)?, k.weight_t, v.weight_t], 1)?
                    .contiguous()?,
                bias: Tensor::cat(&[(q.bias * scale)?, k.bias, v.bias], 0)?,
            };
            layers.push(Layer {
                qkv,
                attention_out: Dense::load(l.pp("attention.output.dense"), h, h)?,
                attention_norm: Norm::load(l.pp("attention.output.LayerNorm"), h, eps)?,
                intermediate: Dense::load(l.pp("intermediate.dense"), h, config.intermediate_size)?,
                output: Dense::load(l.pp("output.dense"), config.intermediate_size, h)?,
                output_norm: Norm::load(l.pp("output.LayerNorm"), h, eps)?,
            });
        }
        Ok(Bert {
            word: e.get((config.vocab_size, h), "word_embeddings.weight")?,
            position: e.get(
                (config.max_position_embeddings, h),
                "position_embeddings.weight",
            )?,
            token_type: e
                .get((config.type_vocab_size, h), "token_type_embeddings.weight")?
                .get(0)?,
            embedding_norm: Norm::load(e.pp("LayerNorm"), h, eps)?,
            layers,
            heads,
            head_dim,
            hidden: h,
            act: match config.hidden_act {
                HiddenAct::Gelu => Act::GeluErf,
                HiddenAct::GeluApproximate => Act::GeluTanh,
                HiddenAct::Relu => Act::Relu,
            },
        })
    }

    /// Last-layer hidden states (batch, tokens, hidden) for token `ids` (batch, tokens, u32)
    /// with `mask` (batch, tokens, 1 for a token, 0 for padding). All token types are 0.
    pub fn forward(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (batch, tokens) = ids.dims2()?;
        if tokens > self.position.dim(0)? {
            candle_core::bail!(
                "{tokens} tokens; the model has {} positions",
                self.position.dim(0)?
            );
        }
        let h = self.hidden;
        let words = self.word.index_select(&ids.flatten_all()?, 0)?;
        let positions = self.position.narrow(0, 0, tokens)?;
        let embedded = words
            .reshape((batch, tokens, h))?
            .broadcast_add(&positions)?
            .broadcast_add(&self.token_type)?;
        let mut x = self
            .embedding_norm
            .forward(&embedded.reshape((batch * tokens, h))?)?;
        let mask = mask.to_dtype(DType::F32)?;
        for layer in &self.layers {
            x = self.layer(layer, &x, &mask, batch, tokens)?;
        }
        x.reshape((batch, tokens, h))
    }

    fn layer(
        &self,
        layer: &Layer,
        x: &Tensor,
        mask: &Tensor,
        batch: usize,
        tokens: usize,
    ) -> Result<Tensor> {
        let (h, heads) = (self.hidden, self.heads);
        let qkv = fused::bias_act(
            &x.matmul(&layer.qkv.weight_t)?,
            &layer.qkv.bias,
            Act::Identity,
        )?;
        let context = match fused::attention(&qkv.reshape((batch, tokens, 3 * h))?, mask, heads)? {
            Some(context) => context.reshape((batch * tokens, h))?,
            None => self.composed_attention(&qkv, mask, batch, tokens)?,
        };
        let attended = fused::bias_residual(
            &context.matmul(&layer.attention_out.weight_t)?,
            &layer.attention_out.bias,
            x,
        )?;
        let x = layer.attention_norm.forward(&attended)?;
        let inner = fused::bias_act(
            &x.matmul(&layer.intermediate.weight_t)?,
            &layer.intermediate.bias,
            self.act,
        )?;
        let out = fused::bias_residual(
            &inner.matmul(&layer.output.weight_t)?,
            &layer.output.bias,
            &x,
        )?;
        layer.output_norm.forward(&out)
    }

    /// Attention from candle operations (devices without the fused CPU kernel).
    fn composed_attention(
        &self,
        qkv: &Tensor,
        mask: &Tensor,
        batch: usize,
        tokens: usize,
    ) -> Result<Tensor> {
        let (h, heads, d) = (self.hidden, self.heads, self.head_dim);
        // (batch, tokens, 3, heads, d) → three (batch, heads, tokens, d).
        let qkv = qkv.reshape((batch, tokens, 3, heads, d))?;
        let part = |i: usize| -> Result<Tensor> {
            qkv.narrow(2, i, 1)?
                .squeeze(2)?
                .transpose(1, 2)?
                .contiguous()
        };
        let (q, k, v) = (part(0)?, part(1)?, part(2)?);
        let scores = q.matmul(&k.t()?)?;
        let probs = fused::masked_softmax(&scores, mask)?;
        probs
            .matmul(&v)?
            .transpose(1, 2)?
            .reshape((batch * tokens, h))
    }
}
