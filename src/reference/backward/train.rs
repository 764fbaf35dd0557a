//! SPEC's `train` op in float64: N updates of a model, each the loss and gradients of batch i
//! ([`super::model::transformer_grad`]), global-norm clipping when `max_grad_norm` is set
//! ([`super::adamw::clip_grad_norm`]), then AdamW with t = i + 1 and learning rate `lr[i]` on every
//! parameter, weight decay included ([`super::adamw::adamw`]). Moments start at 0.

use std::collections::BTreeMap;

use ndarray::{ArrayD, ArrayViewD, Axis};
use serde::Deserialize;

use super::adamw::{adamw, clip_grad_norm, AdamW};
use super::model::transformer_grad;
use crate::error::{fmt_shape, Error, Result};
use crate::model::hooks::Names;
use crate::model::weights::Weights;
use crate::model::config::Config;

/// The `"optimizer"` object of a `train` fixture's JSON.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Optimizer {
    /// β1.
    pub beta1: f64,
    /// β2.
    pub beta2: f64,
    /// ε.
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
    /// Clip the global gradient norm to this (null: no clipping).
    pub max_grad_norm: Option<f64>,
}

impl Optimizer {
    /// Reads the `"optimizer"` object (its keys are exactly SPEC's).
    pub fn from_value(value: &serde_json::Value) -> Result<Self> {
        Optimizer::deserialize(value).map_err(|e| Error::Input(format!("train optimizer: {e}")))
    }
}

/// What a training run produced.
#[derive(Clone, Debug)]
pub struct TrainRun {
    /// The loss of batch i, before update i.
    pub losses: Vec<f64>,
    /// The global gradient norm of update i, before clipping.
    pub grad_norms: Vec<f64>,
    /// The parameters after the last update.
    pub weights: Weights<ArrayD<f64>>,
}

/// Trains `initial` on `tokens` and `targets` \[N, B, S\] with learning rates `lr` \[N\].
pub fn train(
    config: &Config,
    initial: &Weights<ArrayD<f64>>,
    tokens: ArrayViewD<'_, i64>,
    targets: ArrayViewD<'_, i64>,
    lr: &[f64],
    optimizer: &Optimizer,
) -> Result<TrainRun> {
    if tokens.ndim() != 3 || targets.shape() != tokens.shape() || lr.len() != tokens.shape()[0] {
        return Err(Error::Shape(format!(
            "train needs tokens and targets [N, B, S] and lr [N]: tokens are {}, targets {}, lr [{}]",
            fmt_shape(tokens.shape()),
            fmt_shape(targets.shape()),
            lr.len()
        )));
    }
    let mut params: BTreeMap<String, ArrayD<f64>> = initial.named().into_iter().map(|(n, a)| (n, a.clone())).collect();
    let mut moments: BTreeMap<String, (ArrayD<f64>, ArrayD<f64>)> =
        params.iter().map(|(n, a)| (n.clone(), (ArrayD::zeros(a.raw_dim()), ArrayD::zeros(a.raw_dim())))).collect();
    let mut run = TrainRun { losses: Vec::new(), grad_norms: Vec::new(), weights: initial.clone() };
    for (i, &rate) in lr.iter().enumerate() {
        let weights = rebuild(config, &params)?;
        let step = transformer_grad(
            config,
            &weights,
            tokens.index_axis(Axis(0), i),
            targets.index_axis(Axis(0), i),
            &Names::Nothing,
            &[],
        )
        .map_err(|e| Error::Input(format!("train update {i}: {e}")))?;
        let mut grads: BTreeMap<String, ArrayD<f64>> = step.grads.named().into_iter().map(|(n, a)| (n, a.clone())).collect();
        let norm = match optimizer.max_grad_norm {
            Some(max) => clip_grad_norm(&mut grads.values_mut().collect::<Vec<_>>(), max)?,
            None => grads.values().map(|g| g.iter().map(|x| x * x).sum::<f64>()).sum::<f64>().sqrt(),
        };
        let hp = AdamW {
            lr: rate,
            beta1: optimizer.beta1,
            beta2: optimizer.beta2,
            eps: optimizer.eps,
            weight_decay: optimizer.weight_decay,
        };
        for (name, param) in params.iter_mut() {
            let (m, v) = moments.get_mut(name).ok_or_else(|| Error::Input(format!("no moments for {name}")))?;
            let g = grads.get(name).ok_or_else(|| Error::Input(format!("no gradient for {name}")))?;
            let state = adamw(param.view(), g.view(), m.view(), v.view(), i as i64 + 1, &hp)
                .map_err(|e| Error::Input(format!("train update {i}, {name}: {e}")))?;
            (*param, *m, *v) = (state.param, state.m, state.v);
        }
        run.losses.push(step.loss);
        run.grad_norms.push(norm);
    }
    run.weights = rebuild(config, &params)?;
    Ok(run)
}

/// The parameters by name as [`Weights`].
fn rebuild(config: &Config, params: &BTreeMap<String, ArrayD<f64>>) -> Result<Weights<ArrayD<f64>>> {
    Weights::build(config, |name, _| params.get(name).cloned().ok_or_else(|| Error::Input(format!("parameter {name} is missing"))))
}
