//! The float64 side of `verify` for SPEC's `transformer_grad`, `adamw` and `train` fixtures: one
//! function per op that reads a [`Fixture`], runs the reference and compares every expected
//! array SPEC names under SPEC's tolerance, returning the [`Comparison`] (error ratio and worst
//! element). `verify` calls these for the reference column (and will compare the GPU's outputs
//! with the same expected arrays); tests call them directly.
//!
//! The model config comes from the caller (the `.json` beside the npz, parsed by [`Config`]), so
//! that the strictness of config parsing stays in one place. Weights are read by state-dict name
//! and must be float32 of the config's shapes; other keys (`targets`, `grad.*`, `final.*`, ...)
//! are not weights here and are not refused.

use ndarray::{ArrayD, IxDyn};

use super::adamw::{adamw, AdamW};
use super::model::transformer_grad;
use super::train::{train, Optimizer};
use crate::compare::{Comparison, Tolerance};
use crate::error::{fmt_shape, Error, Result};
use crate::fixture::Fixture;
use crate::model::hooks::Names;
use crate::model::weights::Weights;
use crate::model::config::Config;

/// `transformer_grad`'s `loss`: `1e-5 + 1e-4 |want|`.
pub const GRAD_LOSS: Tolerance = Tolerance { atol: 1e-5, rtol: 1e-4 };
/// `transformer_grad`'s `grad.*` and `cache.*_grad`: `1e-6 + 1e-3 |want|`.
pub const GRAD: Tolerance = Tolerance { atol: 1e-6, rtol: 1e-3 };
/// `adamw`: `1e-6 + 1e-5 |want|`.
pub const ADAMW: Tolerance = Tolerance { atol: 1e-6, rtol: 1e-5 };
/// `train`'s `losses` and `final.*`: `1e-4 + 1e-3 |want|`.
pub const TRAIN: Tolerance = Tolerance { atol: 1e-4, rtol: 1e-3 };

/// The float32 weights of `config` from `npz`, by state-dict name, widened to float64.
pub fn weights_from_fixture(config: &Config, npz: &Fixture) -> Result<Weights<ArrayD<f64>>> {
    Weights::build(config, |name, shape| {
        let a = npz.input(name)?;
        if a.shape() != shape {
            return Err(Error::Shape(format!("weight {name} is {} but this config needs {}", fmt_shape(a.shape()), fmt_shape(shape))));
        }
        Ok(a.mapv(f64::from))
    })
}

/// Adds output `name` to `comparison`: `got` against the fixture's expected array of that name.
fn add(comparison: &mut Comparison, npz: &Fixture, name: &str, got: &ArrayD<f64>, tolerance: Tolerance) -> Result<()> {
    let want = npz.expected_shaped(name, got.shape())?;
    comparison.add(name, &got.view(), &want.view(), &tolerance.allowed(&want.view()).view())
}

/// Checks a `transformer_grad` fixture with the float64 reference: `loss`, every `grad.*` and
/// every `cache.*_grad` present (a key the reference cannot produce is an error naming it).
pub fn check_transformer_grad(config: &Config, npz: &Fixture) -> Result<Comparison> {
    let weights = weights_from_fixture(config, npz)?;
    let tokens = npz.int_array("tokens")?;
    let targets = npz.int_array("targets")?;
    let hooks: Vec<String> = npz
        .names()
        .filter_map(|k| k.strip_prefix("cache.").and_then(|h| h.strip_suffix("_grad")))
        .map(str::to_string)
        .collect();
    if let Some(name) = npz.names().find(|k| k.starts_with("cache.") && !k.ends_with("_grad")) {
        return Err(Error::Input(format!("{name}: a transformer_grad fixture's cache keys are <hook>_grad gradients")));
    }
    let run = transformer_grad(config, &weights, tokens.view(), targets.view(), &Names::only(&hooks), &[])?;
    let mut comparison = Comparison::new();
    let loss = ArrayD::from_elem(IxDyn(&[]), run.loss);
    add(&mut comparison, npz, "loss", &loss, GRAD_LOSS)?;
    let named = run.grads.named();
    for key in npz.names().filter(|k| k.starts_with("grad.")) {
        let param = &key["grad.".len()..];
        let (_, got) = named
            .iter()
            .find(|(n, _)| n == param)
            .ok_or_else(|| Error::Input(format!("{key}: {param} is not a parameter of this model")))?;
        add(&mut comparison, npz, key, got, GRAD)?;
    }
    for (name, got) in run.cache.iter() {
        add(&mut comparison, npz, &format!("cache.{name}"), got, GRAD)?;
    }
    Ok(comparison)
}

/// Checks an `adamw` fixture with the float64 reference: `param_out`, `m_out`, `v_out`.
pub fn check_adamw(npz: &Fixture) -> Result<Comparison> {
    let [param, grad, m, v] = ["param", "grad", "m", "v"].map(|n| npz.input(n).map(|a| a.mapv(f64::from)));
    let (param, grad, m, v) = (param?, grad?, m?, v?);
    let step = npz.int_array("step")?;
    crate::fixture::check_rank("step", step.shape(), 0)?;
    let step = step.iter().next().copied().ok_or_else(|| Error::Input("step is empty".into()))?;
    let hp = AdamW {
        lr: npz.scalar_f64("lr")?,
        beta1: npz.scalar_f64("beta1")?,
        beta2: npz.scalar_f64("beta2")?,
        eps: npz.scalar_f64("eps")?,
        weight_decay: npz.scalar_f64("weight_decay")?,
    };
    let state = adamw(param.view(), grad.view(), m.view(), v.view(), step, &hp)?;
    let mut comparison = Comparison::new();
    add(&mut comparison, npz, "param_out", &state.param, ADAMW)?;
    add(&mut comparison, npz, "m_out", &state.m, ADAMW)?;
    add(&mut comparison, npz, "v_out", &state.v, ADAMW)?;
    Ok(comparison)
}

/// Checks a `train` fixture with the float64 reference: `losses` and every `final.*` present.
pub fn check_train(config: &Config, optimizer: &Optimizer, npz: &Fixture) -> Result<Comparison> {
    let weights = weights_from_fixture(config, npz)?;
    let tokens = npz.int_array("tokens")?;
    let targets = npz.int_array("targets")?;
    let lr = npz.expected("lr")?;
    crate::fixture::check_rank("lr", lr.shape(), 1)?;
    let run = train(config, &weights, tokens.view(), targets.view(), &lr.iter().copied().collect::<Vec<_>>(), optimizer)?;
    let mut comparison = Comparison::new();
    add(&mut comparison, npz, "losses", &ArrayD::from_shape_vec(IxDyn(&[run.losses.len()]), run.losses).map_err(super::shape_err)?, TRAIN)?;
    let named = run.weights.named();
    for key in npz.names().filter(|k| k.starts_with("final.")) {
        let param = &key["final.".len()..];
        let (_, got) = named
            .iter()
            .find(|(n, _)| n == param)
            .ok_or_else(|| Error::Input(format!("{key}: {param} is not a parameter of this model")))?;
        add(&mut comparison, npz, key, got, TRAIN)?;
    }
    Ok(comparison)
}
