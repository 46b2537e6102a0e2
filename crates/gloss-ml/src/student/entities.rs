//! What the two entity students share: the per-token loss, gold checks that name the example,
//! and the span F1 that selects their best epoch.

use std::ops::Range;

use candle_core::{DType, Tensor, D};

use crate::error::{CandleContext, Error, Result};
use crate::metrics::{span_report, Span};
use crate::tagging::{entity_spans, TagSet};
use crate::teacher::Entity;

/// Weight of `O` tokens in the loss relative to entity tags. About nine tokens in ten are `O`;
/// counting them fully makes the taggers shy of predicting entities at all (high precision,
/// low recall), and exact-match F1 rewards the balance.
pub(super) const OUTSIDE_WEIGHT: f32 = 0.5;

/// Weighted mean cross-entropy of `logits` (rows, tags) against one gold tag per row (`O`
/// weighs [`OUTSIDE_WEIGHT`]). A batch without a single token gives a zero loss that still
/// depends on the weights, so the optimiser can step.
pub(super) fn token_loss(logits: &Tensor, targets: Vec<u32>) -> Result<Tensor> {
    if targets.is_empty() {
        return logits
            .sum_all()
            .and_then(|s| s.affine(0.0, 0.0))
            .ctx(|| "token loss of an empty batch".into());
    }
    let n = targets.len();
    let weights: Vec<f32> = targets
        .iter()
        .map(|&t| if t == 0 { OUTSIDE_WEIGHT } else { 1.0 })
        .collect();
    let total: f32 = weights.iter().sum();
    let device = logits.device();
    (|| {
        let targets = Tensor::from_vec(targets, (n, 1), device)?;
        let weights = Tensor::from_vec(weights, n, device)?;
        let logp = candle_nn::ops::log_softmax(logits, D::Minus1)?
            .gather(&targets, 1)?
            .squeeze(1)?;
        (logp * weights)?
            .sum_all()?
            .affine(-1.0 / f64::from(total), 0.0)?
            .to_dtype(DType::F32)
    })()
    .ctx(|| format!("token loss over {n} tokens"))
}

/// Gold tags of one example, with the problem prefixed by `part` and the example index.
pub(super) fn gold_tags(
    tags: &TagSet,
    tokens: &[Range<usize>],
    spans: &[Span],
    text_len: usize,
    part: &str,
    index: usize,
) -> Result<Vec<u32>> {
    tags.align(tokens, spans, text_len)
        .map(|t| t.into_iter().map(|t| t as u32).collect())
        .map_err(|p| Error::InvalidInput(format!("{part} example {index}: {p}")))
}

/// Exact-match micro F1 of predicted entities against gold spans.
pub(super) fn span_f1(gold: &[Vec<Span>], predicted: &[Vec<Entity>]) -> Result<f64> {
    let predicted: Vec<Vec<Span>> = predicted.iter().map(|p| entity_spans(p)).collect();
    Ok(span_report(gold, &predicted)?.micro.f1)
}
