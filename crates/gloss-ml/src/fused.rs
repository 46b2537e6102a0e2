//! Fused element-wise steps of the encoder for the CPU, run on every thread: bias + activation,
//! bias + residual, and masked softmax. Candle's own element-wise kernels run on one core, which
//! left the second core idle for about 40% of an encoder pass. On other devices each step falls
//! back to the equivalent candle operations.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Activations of the feed-forward block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    /// `x + b` only.
    Identity,
    /// GELU with the exact (erf) form.
    GeluErf,
    /// GELU with the tanh approximation.
    GeluTanh,
    Relu,
}

/// Rows handed to one task: enough work per task to hide scheduling, small enough to balance.
const ROWS_PER_TASK: usize = 8;

/// erf to within 1.5e-7 (Abramowitz & Stegun 7.1.26).
#[inline]
fn erf(x: f32) -> f32 {
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let poly = t
        * (0.254_829_6
            + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152 + t * 1.061_405_4))));
    let y = 1.0 - poly * (-x * x).exp();
    y.copysign(x)
}

#[inline]
fn activate(act: Act, x: f32) -> f32 {
    match act {
        Act::Identity => x,
        Act::GeluErf => 0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2)),
        Act::GeluTanh => {
            let inner = 0.797_884_6 * (x + 0.044_715 * x * x * x);
            0.5 * x * (1.0 + inner.tanh())
        }
        Act::Relu => x.max(0.0),
    }
}

/// The contiguous f32 data behind `storage` as `layout` sees it.
fn data<'a>(storage: &'a CpuStorage, layout: &Layout, what: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(values) = storage else {
        candle_core::bail!("{what}: f32 only");
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&values[start..end]),
        None => candle_core::bail!("{what}: input must be contiguous"),
    }
}

/// `act(x + bias [+ residual])` row by row, `bias` broadcast over the rows, on every thread.
fn add_bias(
    what: &str,
    x: &[f32],
    bias: &[f32],
    residual: Option<&[f32]>,
    act: Act,
) -> Result<Vec<f32>> {
    let width = bias.len();
    if width == 0 || !x.len().is_multiple_of(width) || residual.is_some_and(|r| r.len() != x.len())
    {
        candle_core::bail!("{what}: {} values do not fit a bias of {width}", x.len());
    }
    let chunk = width * ROWS_PER_TASK;
    let mut out = vec![0f32; x.len()];
    out.par_chunks_mut(chunk)
        .zip(x.par_chunks(chunk))
        .enumerate()
        .for_each(|(i, (dst, src))| {
            let res = residual.map(|r| &r[i * chunk..i * chunk + src.len()]);
            for (row, (d_row, s_row)) in dst.chunks_mut(width).zip(src.chunks(width)).enumerate() {
                match res.map(|r| &r[row * width..(row + 1) * width]) {
                    Some(r_row) => {
                        for (((d, &s), &b), &r) in d_row.iter_mut().zip(s_row).zip(bias).zip(r_row)
                        {
                            *d = activate(act, s + b + r);
                        }
                    }
                    None => {
                        for ((d, &s), &b) in d_row.iter_mut().zip(s_row).zip(bias) {
                            *d = activate(act, s + b);
                        }
                    }
                }
            }
        });
    Ok(out)
}

struct BiasAct(Act);

impl CustomOp2 for BiasAct {
    fn name(&self) -> &'static str {
        "bias-act"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = data(s1, l1, "bias-act")?;
        let bias = data(s2, l2, "bias-act bias")?;
        let out = add_bias("bias-act", x, bias, None, self.0)?;
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

struct BiasResidual;

impl CustomOp3 for BiasResidual {
    fn name(&self) -> &'static str {
        "bias-residual"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = data(s1, l1, "bias-residual")?;
        let bias = data(s2, l2, "bias-residual bias")?;
        let residual = data(s3, l3, "bias-residual residual")?;
        let out = add_bias("bias-residual", x, bias, Some(residual), Act::Identity)?;
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

struct Attention {
    heads: usize,
}

impl CustomOp2 for Attention {
    fn name(&self) -> &'static str {
        "attention"
    }

    /// `qkv` (batch, tokens, 3 × hidden: queries already scaled, keys, values; heads side by
    /// side in each) and `mask` (batch, tokens) → context (batch, tokens, hidden).
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let qkv = data(s1, l1, "attention")?;
        let mask = data(s2, l2, "attention mask")?;
        let &[batch, tokens, width] = l1.dims() else {
            candle_core::bail!("attention: qkv must be (batch, tokens, 3 × hidden)");
        };
        if !width.is_multiple_of(3)
            || !(width / 3).is_multiple_of(self.heads)
            || l2.dims() != [batch, tokens]
        {
            candle_core::bail!("attention: shapes do not match");
        }
        let hidden = width / 3;
        let d = hidden / self.heads;
        // Keys transposed per sequence, (hidden, tokens): a query's scores against every key
        // then accumulate along contiguous rows (vectorised), with no horizontal sums.
        let mut keys_t = vec![0f32; batch * hidden * tokens];
        keys_t
            .par_chunks_mut(hidden * tokens)
            .enumerate()
            .for_each(|(b, dst)| {
                for j in 0..tokens {
                    let k = &qkv[(b * tokens + j) * width + hidden..][..hidden];
                    for (c, &x) in k.iter().enumerate() {
                        dst[c * tokens + j] = x;
                    }
                }
            });
        let mut out = vec![0f32; batch * tokens * hidden];
        // One task per query token: it reads its sequence's keys and values and writes its own
        // row of the context, every head.
        out.par_chunks_mut(hidden)
            .enumerate()
            .for_each(|(row, ctx)| {
                let b = row / tokens;
                let seq = &qkv[b * tokens * width..(b + 1) * tokens * width];
                let kt = &keys_t[b * hidden * tokens..(b + 1) * hidden * tokens];
                let m = &mask[b * tokens..(b + 1) * tokens];
                let q_row = &qkv[row * width..row * width + hidden];
                let mut weights = vec![0f32; tokens];
                for head in 0..self.heads {
                    weights.iter_mut().for_each(|w| *w = 0.0);
                    for t in 0..d {
                        let c = head * d + t;
                        let qc = q_row[c];
                        for (w, &k) in weights.iter_mut().zip(&kt[c * tokens..(c + 1) * tokens]) {
                            *w += qc * k;
                        }
                    }
                    let mut max = f32::NEG_INFINITY;
                    for (&w, &keep) in weights.iter().zip(m) {
                        if keep != 0.0 {
                            max = max.max(w);
                        }
                    }
                    let mut sum = 0f32;
                    for (w, &keep) in weights.iter_mut().zip(m) {
                        *w = if keep != 0.0 { (*w - max).exp() } else { 0.0 };
                        sum += *w;
                    }
                    let out = &mut ctx[head * d..(head + 1) * d];
                    out.iter_mut().for_each(|o| *o = 0.0);
                    if sum == 0.0 {
                        continue;
                    }
                    let inv = 1.0 / sum;
                    for (j, &w) in weights.iter().enumerate() {
                        if w == 0.0 {
                            continue;
                        }
                        let v = &seq[j * width + 2 * hidden + head * d..][..d];
                        let w = w * inv;
                        for (o, &x) in out.iter_mut().zip(v) {
                            *o += w * x;
                        }
                    }
                }
            });
        Ok((
            CpuStorage::F32(out),
            Shape::from_dims(&[batch, tokens, hidden]),
        ))
    }
}

/// Multi-head self-attention on the CPU from the fused projection `qkv` (batch, tokens,
/// 3 × hidden; queries pre-scaled by 1/√d) and `mask` (batch, tokens, f32 0/1); returns the
/// context (batch, tokens, hidden). `None` on other devices: the caller composes it from
/// candle operations.
pub fn attention(qkv: &Tensor, mask: &Tensor, heads: usize) -> Result<Option<Tensor>> {
    if !qkv.device().is_cpu() {
        return Ok(None);
    }
    qkv.contiguous()?
        .apply_op2_no_bwd(&mask.contiguous()?, &Attention { heads })
        .map(Some)
}

/// `act(x + bias)` with `bias` broadcast over the rows of `x`.
pub fn bias_act(x: &Tensor, bias: &Tensor, act: Act) -> Result<Tensor> {
    if x.device().is_cpu() {
        return x.contiguous()?.apply_op2_no_bwd(bias, &BiasAct(act));
    }
    let y = x.broadcast_add(bias)?;
    match act {
        Act::Identity => Ok(y),
        Act::GeluErf => y.gelu_erf(),
        Act::GeluTanh => y.gelu(),
        Act::Relu => y.relu(),
    }
}

/// `x + bias + residual`, `bias` broadcast over the rows.
pub fn bias_residual(x: &Tensor, bias: &Tensor, residual: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() {
        return x
            .contiguous()?
            .apply_op3_no_bwd(bias, &residual.contiguous()?, &BiasResidual);
    }
    x.broadcast_add(bias)?.add(residual)
}

/// Softmax over the last dimension of `scores` (batch, heads, queries, keys), leaving out the
/// keys whose `mask` (batch, keys, f32 0/1) is 0, from candle operations (the CPU computes it
/// inside [`attention`]).
pub fn masked_softmax(scores: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let (batch, keys) = mask.dims2()?;
    let bias = ((mask.ones_like()? - mask)? * -1e9)?.reshape((batch, 1, 1, keys))?;
    candle_nn::ops::softmax_last_dim(&scores.broadcast_add(&bias)?.contiguous()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn close(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    #[test]
    fn erf_is_accurate() {
        let small: Vec<f32> = (-8000..=8000).map(|i| i as f32 / 1000.0).collect();
        let want = Tensor::new(small.as_slice(), &Device::Cpu)
            .unwrap()
            .erf()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        for (&x, w) in small.iter().zip(want) {
            assert!((erf(x) - w).abs() < 5e-7, "erf({x}) = {}, want {w}", erf(x));
        }
    }

    #[test]
    fn fused_ops_match_candles_own() {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 2.0, (37, 24), &dev).unwrap();
        let b = Tensor::randn(0f32, 1.0, 24, &dev).unwrap();
        let r = Tensor::randn(0f32, 1.0, (37, 24), &dev).unwrap();
        let y = x.broadcast_add(&b).unwrap();
        assert!(
            close(
                &bias_act(&x, &b, Act::GeluErf).unwrap(),
                &y.gelu_erf().unwrap()
            ) < 1e-6
        );
        assert!(
            close(
                &bias_act(&x, &b, Act::GeluTanh).unwrap(),
                &y.gelu().unwrap()
            ) < 1e-5
        );
        assert!(close(&bias_act(&x, &b, Act::Relu).unwrap(), &y.relu().unwrap()) < 1e-7);
        assert!(close(&bias_act(&x, &b, Act::Identity).unwrap(), &y) < 1e-7);
        assert!(close(&bias_residual(&x, &b, &r).unwrap(), &(&y + &r).unwrap()) < 1e-6);

        // Attention: the fused kernel against the same computation from candle operations.
        let (batch, tokens, heads, d) = (2, 5, 3, 4);
        let hidden = heads * d;
        let qkv = Tensor::randn(0f32, 1.0, (batch, tokens, 3 * hidden), &dev).unwrap();
        let mask = Tensor::new(&[[1f32, 1., 1., 1., 1.], [1., 1., 1., 0., 0.]], &dev).unwrap();
        let fused = attention(&qkv, &mask, heads).unwrap().unwrap();
        let split = qkv.reshape((batch, tokens, 3, heads, d)).unwrap();
        let part = |i: usize| {
            split
                .narrow(2, i, 1)
                .unwrap()
                .squeeze(2)
                .unwrap()
                .transpose(1, 2)
                .unwrap()
                .contiguous()
                .unwrap()
        };
        let (q, k, v) = (part(0), part(1), part(2));
        let probs = masked_softmax(&q.matmul(&k.t().unwrap()).unwrap(), &mask).unwrap();
        let composed = probs
            .matmul(&v)
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .reshape((batch, tokens, hidden))
            .unwrap();
        assert!(close(&fused, &composed) < 1e-5);
    }
}
