//! The float64 reference of the patching sweeps: one reference forward
//! ([`crate::reference::transformer::forward`]) per patch, on the corrupt batch, with the clean
//! run's activation replacing the patched elements in every row, and the metric averaged over the
//! batch. Written from TransformerLens's `patching.generic_activation_patch`, independently of the
//! batched GPU path ([`super::patch_gpu`]).
//!
//! The interventions carry their values as float32 host arrays, so the patched values are the
//! clean float64 activations rounded to float32 (a relative change of at most 2^-24, far inside
//! SPEC's `1e-4 + 1e-3 |want|`).

use ndarray::ArrayD;

use super::metric::mean_logit_diff;
use super::{Prompts, Sweep};
use crate::error::{Error, Result};
use crate::reference::transformer::forward;
use crate::transformer::{Config, Intervention, Names, Weights};

/// Runs `sweeps` in float64 and returns each result (shape [`Sweep::shape`]).
pub fn act_patch(config: &Config, weights: &Weights<ArrayD<f64>>, prompts: &Prompts, sweeps: &[Sweep]) -> Result<Vec<ArrayD<f64>>> {
    let (_, seq) = prompts.check(config)?;
    let pairs = prompts.pairs();
    let hooks: Vec<String> = sweeps.iter().flat_map(|s| (0..config.n_layers).map(move |l| s.hook(l))).collect();
    let clean = forward(config, weights, prompts.clean.view(), &Names::only(&hooks), &[])?;
    let mut out = Vec::with_capacity(sweeps.len());
    for &sweep in sweeps {
        if !sweep.available(config) {
            return Err(Error::Input(format!("this model has no {} to patch (it is attention-only)", sweep.key())));
        }
        let mut values = Vec::new();
        for site in sweep.sites(config, seq) {
            let hook = sweep.hook(site.layer);
            let act = clean.cache.get(&hook).ok_or_else(|| Error::Input(format!("the clean run did not cache {hook}")))?;
            let patch = site.intervention(sweep, |h| Intervention::replace(h, act.mapv(|v| v as f32)));
            let run = forward(config, weights, prompts.corrupt.view(), &Names::Nothing, &[patch])?;
            values.push(mean_logit_diff(run.logits.view(), &pairs)?);
        }
        let shape = sweep.shape(config, seq);
        out.push(ArrayD::from_shape_vec(shape, values).map_err(|e| Error::Shape(e.to_string()))?);
    }
    Ok(out)
}

/// The metric of the clean and of the corrupt run, unpatched (the two ends of every sweep's scale).
pub fn baselines(config: &Config, weights: &Weights<ArrayD<f64>>, prompts: &Prompts) -> Result<(f64, f64)> {
    prompts.check(config)?;
    let pairs = prompts.pairs();
    let metric = |tokens: &ArrayD<i64>| -> Result<f64> {
        let run = forward(config, weights, tokens.view(), &Names::Nothing, &[])?;
        mean_logit_diff(run.logits.view(), &pairs)
    };
    Ok((metric(&prompts.clean)?, metric(&prompts.corrupt)?))
}
