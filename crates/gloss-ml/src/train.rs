//! A seeded, reproducible training loop for students: AdamW over shuffled mini-batches, early
//! stopping on a dev split, a progress callback and cooperative cancellation.
//!
//! Reproducibility: the only randomness is the shuffling RNG (seeded from the config) and the
//! student's own seeded initialisation; candle's CPU kernels are deterministic for a fixed thread
//! count, so the same seed, data and machine give the same weights.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use candle_core::{DType, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarMap};
use serde::{Deserialize, Serialize};

use crate::error::{CandleContext, Error, Result};
use crate::hash::SplitMix64;
use crate::metrics;

/// A student the loop can train: it owns its variables and maps a batch to logits.
pub trait Trainable {
    /// What one example's input is (a text, a cached embedding, ...).
    type Input;

    /// Every trainable variable, as the optimiser should see them.
    fn var_map(&self) -> &VarMap;

    /// Number of output labels.
    fn num_labels(&self) -> usize;

    /// Whether labels are independent (sigmoid) rather than exclusive (softmax).
    fn multi_label(&self) -> bool;

    /// Unnormalised scores, shape `(batch, num_labels)`.
    fn logits(&self, inputs: &[&Self::Input]) -> Result<Tensor>;

    /// Per-label probabilities (softmax, or sigmoid when multi-label), one row per input.
    fn scores(&self, inputs: &[&Self::Input]) -> Result<Vec<Vec<f32>>> {
        let logits = self.logits(inputs)?;
        let probs = if self.multi_label() {
            candle_nn::ops::sigmoid(&logits)
        } else {
            candle_nn::ops::softmax_last_dim(&logits)
        };
        probs
            .and_then(|p| p.to_vec2::<f32>())
            .ctx(|| "student scores".into())
    }
}

/// Gold labels of one example: a single index (`usize`) or a set (`Vec<usize>`, multi-label).
pub trait Gold {
    /// The gold label indices.
    fn label_indices(&self) -> &[usize];
}

impl Gold for usize {
    fn label_indices(&self) -> &[usize] {
        std::slice::from_ref(self)
    }
}

impl Gold for Vec<usize> {
    fn label_indices(&self) -> &[usize] {
        self
    }
}

/// The dev-set score that drives early stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DevMetric {
    /// Accuracy (subset accuracy when multi-label).
    #[default]
    Accuracy,
    /// Macro-averaged F1, better when labels are imbalanced.
    MacroF1,
}

/// Hyper-parameters of a training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Upper bound on passes over the training data.
    pub max_epochs: usize,
    /// Examples per optimiser step.
    pub batch_size: usize,
    /// AdamW learning rate.
    pub learning_rate: f64,
    /// AdamW decoupled weight decay.
    pub weight_decay: f64,
    /// Stop after this many epochs without a better dev score.
    pub patience: usize,
    /// Seeds the shuffling order.
    pub seed: u64,
    /// Score used for early stopping and best-epoch selection.
    pub dev_metric: DevMetric,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            max_epochs: 20,
            batch_size: 32,
            learning_rate: 1e-3,
            weight_decay: 1e-4,
            patience: 3,
            seed: 0,
            dev_metric: DevMetric::Accuracy,
        }
    }
}

/// What the progress callback sees after each epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochReport {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss over the epoch's batches.
    pub train_loss: f64,
    /// Dev score after the epoch (see [`DevMetric`]).
    pub dev_score: f64,
}

/// Why training ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// `max_epochs` ran.
    MaxEpochs,
    /// The dev score stopped improving for `patience` epochs.
    EarlyStopped,
    /// The cancel flag was raised.
    Cancelled,
}

/// The result of a run; the student holds the weights of `best_epoch` afterwards.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainOutcome {
    /// Epoch whose weights were kept (0 if no epoch finished).
    pub best_epoch: usize,
    /// Dev score of that epoch.
    pub best_dev_score: f64,
    /// Epochs completed.
    pub epochs_run: usize,
    /// Why the loop ended.
    pub stop: StopReason,
}

/// Anything the loop can fit: variables, a differentiable loss over a batch of examples and a
/// dev score to maximise. [`train`] adapts a [`Trainable`] classifier to it; the entity students
/// implement it directly (their loss is per token and their dev score is span F1).
pub trait Objective {
    /// One training example (input and gold).
    type Example;

    /// Every trainable variable, as the optimiser should see them.
    fn var_map(&self) -> &VarMap;

    /// Rejects data the model cannot learn from, naming `part` and the example.
    fn check(&self, part: &str, data: &[Self::Example]) -> Result<()>;

    /// Mean loss of a batch, a scalar.
    fn loss(&self, batch: &[&Self::Example]) -> Result<Tensor>;

    /// Score on held-out data (higher is better), predicting `batch_size` examples at a time.
    fn score(&self, data: &[Self::Example], batch_size: usize) -> Result<f64>;
}

/// [`Trainable`] classifiers as an [`Objective`]: cross-entropy (or binary cross-entropy when
/// multi-label) and the configured [`DevMetric`].
struct Classification<'m, M, G> {
    model: &'m M,
    metric: DevMetric,
    gold: std::marker::PhantomData<G>,
}

impl<M: Trainable, G: Gold> Objective for Classification<'_, M, G> {
    type Example = (M::Input, G);

    fn var_map(&self) -> &VarMap {
        self.model.var_map()
    }

    fn check(&self, part: &str, data: &[Self::Example]) -> Result<()> {
        check_labels(self.model, part, data)
    }

    fn loss(&self, batch: &[&Self::Example]) -> Result<Tensor> {
        let inputs: Vec<&M::Input> = batch.iter().map(|(x, _)| x).collect();
        let golds: Vec<&[usize]> = batch.iter().map(|(_, g)| g.label_indices()).collect();
        batch_loss(self.model, &inputs, &golds)
    }

    fn score(&self, data: &[Self::Example], batch_size: usize) -> Result<f64> {
        evaluate(self.model, data, self.metric, batch_size)
    }
}

/// Trains `model` on `train`, selecting the epoch with the best score on `dev`.
///
/// `on_epoch` is called after every completed epoch; raising `cancel` stops the run between
/// batches. Either way the model ends with the best weights seen so far.
pub fn train<M, G>(
    model: &M,
    train: &[(M::Input, G)],
    dev: &[(M::Input, G)],
    config: &TrainConfig,
    cancel: &Arc<AtomicBool>,
    on_epoch: impl FnMut(EpochReport),
) -> Result<TrainOutcome>
where
    M: Trainable,
    G: Gold,
{
    let objective = Classification {
        model,
        metric: config.dev_metric,
        gold: std::marker::PhantomData,
    };
    fit(&objective, train, dev, config, cancel, on_epoch)
}

/// Accept/reject decisions on some labels of one example (binary tasks): `(label index,
/// accepted)`. Labels an example has no decision on teach nothing about it.
pub type Decisions = Vec<(usize, bool)>;

/// A multi-label [`Trainable`] taught by decisions: binary cross-entropy on the decided labels
/// only, scored by the share of decisions it gets right.
struct DecisionObjective<'m, M> {
    model: &'m M,
}

impl<M: Trainable> Objective for DecisionObjective<'_, M> {
    type Example = (M::Input, Decisions);

    fn var_map(&self) -> &VarMap {
        self.model.var_map()
    }

    fn check(&self, part: &str, data: &[Self::Example]) -> Result<()> {
        if !self.model.multi_label() {
            return Err(Error::InvalidInput(
                "decisions train a multi-label model (one sigmoid per label)".into(),
            ));
        }
        let n = self.model.num_labels();
        for (i, (_, decisions)) in data.iter().enumerate() {
            if decisions.is_empty() {
                return Err(Error::InvalidInput(format!(
                    "{part} example {i}: no decision on any label"
                )));
            }
            if let Some((bad, _)) = decisions.iter().find(|(l, _)| *l >= n) {
                return Err(Error::InvalidInput(format!(
                    "{part} example {i}: label index {bad} but the model has {n} labels"
                )));
            }
        }
        Ok(())
    }

    fn loss(&self, batch: &[&Self::Example]) -> Result<Tensor> {
        let inputs: Vec<&M::Input> = batch.iter().map(|(x, _)| x).collect();
        let logits = self.model.logits(&inputs)?;
        let n = self.model.num_labels();
        let mut targets = vec![0f32; batch.len() * n];
        let mut mask = vec![0f32; batch.len() * n];
        for (row, (_, decisions)) in batch.iter().enumerate() {
            for &(label, accepted) in decisions {
                mask[row * n + label] = 1.0;
                targets[row * n + label] = if accepted { 1.0 } else { 0.0 };
            }
        }
        let device = logits.device().clone();
        let decided = mask.iter().sum::<f32>().max(1.0);
        let masked = || -> candle_core::Result<Tensor> {
            let logits = logits.to_dtype(DType::F32)?;
            let t = Tensor::from_vec(targets, (batch.len(), n), &device)?;
            let m = Tensor::from_vec(mask, (batch.len(), n), &device)?;
            // Binary cross-entropy with logits, stable form: max(x, 0) - x t + log(1 + e^-|x|).
            let softplus = logits.abs()?.neg()?.exp()?.affine(1.0, 1.0)?.log()?;
            let per = ((logits.relu()? - (&logits * &t)?)? + softplus)?;
            (per * m)?.sum_all()?.affine(1.0 / f64::from(decided), 0.0)
        };
        masked().ctx(|| "computing the decision loss".into())
    }

    fn score(&self, data: &[Self::Example], batch_size: usize) -> Result<f64> {
        decision_accuracy(self.model, data, batch_size)
    }
}

/// Trains a multi-label `model` on accept/reject decisions, selecting the epoch with the best
/// share of dev decisions right; otherwise as [`train`].
pub fn train_decisions<M: Trainable>(
    model: &M,
    train: &[(M::Input, Decisions)],
    dev: &[(M::Input, Decisions)],
    config: &TrainConfig,
    cancel: &Arc<AtomicBool>,
    on_epoch: impl FnMut(EpochReport),
) -> Result<TrainOutcome> {
    fit(
        &DecisionObjective { model },
        train,
        dev,
        config,
        cancel,
        on_epoch,
    )
}

/// The share of `data`'s decisions a multi-label `model` gets right: it accepts a label when
/// that label scores at least 0.5.
pub fn decision_accuracy<M: Trainable>(
    model: &M,
    data: &[(M::Input, Decisions)],
    batch_size: usize,
) -> Result<f64> {
    let (mut right, mut all) = (0usize, 0usize);
    for chunk in data.chunks(batch_size.max(1)) {
        let inputs: Vec<&M::Input> = chunk.iter().map(|(x, _)| x).collect();
        for (row, (_, decisions)) in model.scores(&inputs)?.iter().zip(chunk) {
            for &(label, accepted) in decisions {
                all += 1;
                right += usize::from((row[label] >= 0.5) == accepted);
            }
        }
    }
    Ok(if all == 0 {
        0.0
    } else {
        right as f64 / all as f64
    })
}

/// Fits any [`Objective`] with the same loop as [`train`]; `config.dev_metric` is not used (the
/// objective's own [`score`](Objective::score) selects the best epoch).
pub fn fit<O: Objective>(
    model: &O,
    train: &[O::Example],
    dev: &[O::Example],
    config: &TrainConfig,
    cancel: &Arc<AtomicBool>,
    mut on_epoch: impl FnMut(EpochReport),
) -> Result<TrainOutcome> {
    validate(config, train.len(), dev.len())?;
    model.check("train", train)?;
    model.check("dev", dev)?;
    let params = ParamsAdamW {
        lr: config.learning_rate,
        weight_decay: config.weight_decay,
        ..ParamsAdamW::default()
    };
    // Sorted by name so that nothing depends on the VarMap's hash order.
    let mut named = model.var_map().data().lock().map_or_else(
        |poisoned| poisoned.into_inner().clone(),
        |data| data.clone(),
    );
    let mut names: Vec<String> = named.keys().cloned().collect();
    names.sort();
    let vars: Vec<candle_core::Var> = names.iter().filter_map(|n| named.remove(n)).collect();
    let mut optimizer = AdamW::new(vars.clone(), params).ctx(|| "creating AdamW".into())?;

    let mut rng = SplitMix64::new(config.seed);
    let mut order: Vec<usize> = (0..train.len()).collect();
    let mut best: Option<(usize, f64, Vec<Tensor>)> = None;
    let mut since_best = 0;
    let mut epochs_run = 0;
    let mut stop = StopReason::MaxEpochs;

    'epochs: for epoch in 1..=config.max_epochs {
        rng.shuffle(&mut order);
        let mut loss_sum = 0.0;
        let mut batches = 0;
        for chunk in order.chunks(config.batch_size) {
            if cancel.load(Ordering::Relaxed) {
                stop = StopReason::Cancelled;
                break 'epochs;
            }
            let batch: Vec<&O::Example> = chunk.iter().map(|&i| &train[i]).collect();
            let loss = model.loss(&batch)?;
            optimizer
                .backward_step(&loss)
                .ctx(|| format!("epoch {epoch}: optimiser step"))?;
            loss_sum += f64::from(
                loss.to_scalar::<f32>()
                    .ctx(|| format!("epoch {epoch}: reading loss"))?,
            );
            batches += 1;
        }
        epochs_run = epoch;
        let dev_score = model.score(dev, config.batch_size.max(64))?;
        on_epoch(EpochReport {
            epoch,
            train_loss: loss_sum / batches.max(1) as f64,
            dev_score,
        });
        if best.as_ref().is_none_or(|(_, score, _)| dev_score > *score) {
            best = Some((epoch, dev_score, snapshot(&vars)?));
            since_best = 0;
        } else {
            since_best += 1;
            if since_best >= config.patience {
                stop = StopReason::EarlyStopped;
                break;
            }
        }
    }

    let (best_epoch, best_dev_score) = match best {
        Some((epoch, score, weights)) => {
            for (var, saved) in vars.iter().zip(&weights) {
                var.set(saved).ctx(|| "restoring best weights".into())?;
            }
            (epoch, score)
        }
        None => (0, 0.0),
    };
    Ok(TrainOutcome {
        best_epoch,
        best_dev_score,
        epochs_run,
        stop,
    })
}

fn validate(config: &TrainConfig, train: usize, dev: usize) -> Result<()> {
    if config.batch_size == 0 || config.max_epochs == 0 {
        return Err(Error::InvalidInput(
            "batch_size and max_epochs must be at least 1".into(),
        ));
    }
    if train == 0 || dev == 0 {
        return Err(Error::InvalidInput(format!(
            "need training and dev examples (got {train} and {dev})"
        )));
    }
    Ok(())
}

fn check_labels<M: Trainable, G: Gold>(
    model: &M,
    part: &str,
    data: &[(M::Input, G)],
) -> Result<()> {
    let n = model.num_labels();
    for (i, (_, gold)) in data.iter().enumerate() {
        let labels = gold.label_indices();
        if let Some(bad) = labels.iter().find(|&&l| l >= n) {
            return Err(Error::InvalidInput(format!(
                "{part} example {i}: label index {bad} but the model has {n} labels"
            )));
        }
        if !model.multi_label() && labels.len() != 1 {
            return Err(Error::InvalidInput(format!(
                "{part} example {i}: single-label model needs exactly one label, found {}",
                labels.len()
            )));
        }
    }
    Ok(())
}

fn batch_loss<M: Trainable>(model: &M, inputs: &[&M::Input], golds: &[&[usize]]) -> Result<Tensor> {
    let logits = model.logits(inputs)?;
    let device = logits.device().clone();
    let n = model.num_labels();
    let loss = if model.multi_label() {
        let mut targets = vec![0f32; golds.len() * n];
        for (row, gold) in golds.iter().enumerate() {
            gold.iter().for_each(|&l| targets[row * n + l] = 1.0);
        }
        Tensor::from_vec(targets, (golds.len(), n), &device)
            .and_then(|t| candle_nn::loss::binary_cross_entropy_with_logit(&logits, &t))
    } else {
        let targets: Vec<u32> = golds.iter().map(|g| g[0] as u32).collect();
        Tensor::from_vec(targets, golds.len(), &device)
            .and_then(|t| candle_nn::loss::cross_entropy(&logits, &t))
    };
    loss.and_then(|l| l.to_dtype(DType::F32))
        .ctx(|| "computing the loss".into())
}

/// Label indices a student predicts: the arg-max, or every label scoring at least 0.5 when
/// multi-label.
pub fn predict_labels<M: Trainable>(
    model: &M,
    inputs: &[&M::Input],
    batch_size: usize,
) -> Result<Vec<Vec<usize>>> {
    let mut out = Vec::with_capacity(inputs.len());
    for chunk in inputs.chunks(batch_size.max(1)) {
        for row in model.scores(chunk)? {
            out.push(if model.multi_label() {
                (0..row.len()).filter(|&l| row[l] >= 0.5).collect()
            } else {
                vec![argmax(&row)]
            });
        }
    }
    Ok(out)
}

/// Scores `model` on labelled data with `metric`.
pub fn evaluate<M: Trainable, G: Gold>(
    model: &M,
    data: &[(M::Input, G)],
    metric: DevMetric,
    batch_size: usize,
) -> Result<f64> {
    let inputs: Vec<&M::Input> = data.iter().map(|(x, _)| x).collect();
    let predicted = predict_labels(model, &inputs, batch_size)?;
    let gold: Vec<Vec<usize>> = data
        .iter()
        .map(|(_, g)| g.label_indices().to_vec())
        .collect();
    let names: Vec<String> = (0..model.num_labels()).map(|i| i.to_string()).collect();
    let report = if model.multi_label() {
        metrics::multilabel_report(&names, &gold, &predicted)?.1
    } else {
        let g: Vec<usize> = gold.iter().map(|g| g[0]).collect();
        let p: Vec<usize> = predicted.iter().map(|p| p[0]).collect();
        metrics::classification_report(&names, &g, &p)?
    };
    Ok(match metric {
        DevMetric::Accuracy => report.accuracy,
        DevMetric::MacroF1 => report.macro_f1,
    })
}

/// Index of the largest score (the first one on ties).
pub fn argmax(scores: &[f32]) -> usize {
    scores
        .iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| {
            if v > bv {
                (i, v)
            } else {
                (bi, bv)
            }
        })
        .0
}

fn snapshot(vars: &[candle_core::Var]) -> Result<Vec<Tensor>> {
    vars.iter()
        .map(|v| v.as_tensor().copy().ctx(|| "snapshotting weights".into()))
        .collect()
}
