//! Attribution patching (Nanda; Syed et al.): the first-order estimate of every activation
//! patch at once, `Σ_last axis (a_clean − a_corrupt) · g` with `g` the gradient of `Σ_b metric_b`
//! with respect to the activation on the corrupt run, from one clean forward, one corrupt forward
//! and one backward (SPEC's `attribution`).
//!
//! [`attribution`] combines activations and hook gradients from any source, so the GPU path needs
//! only the GPU's activations and hook gradients; [`reference`] gets them from the float64 forward
//! and backward ([`crate::reference::backward::model::metric_grad`], seeded with the metric's
//! gradient). Where both activations are `-inf` (masked attention scores) the term is 0, not NaN.

use ndarray::{ArrayD, Axis, Zip};

use super::metric::summed_logit_diff_grad;
use super::Prompts;
use crate::error::{fmt_shape, Error, Result};
use crate::reference::backward::model::metric_grad;
use crate::reference::transformer::forward;
use crate::transformer::{Cache, Config, Names, Weights};

/// Per hook of `clean`, the attribution estimate (the hook's shape without its last axis), from
/// the clean and corrupt activations and the corrupt run's gradients (`<hook>_grad`).
pub fn attribution(clean: &Cache<ArrayD<f64>>, corrupt: &Cache<ArrayD<f64>>, grads: &Cache<ArrayD<f64>>) -> Result<Cache<ArrayD<f64>>> {
    let mut out = Cache::default();
    for (name, a_clean) in clean.iter() {
        let missing = |what: &str| Error::Input(format!("attribution of {name}: no {what}"));
        let a_corrupt = corrupt.get(name).ok_or_else(|| missing("corrupt activation"))?;
        let g = grads.get(&format!("{name}_grad")).ok_or_else(|| missing("gradient"))?;
        if a_corrupt.shape() != a_clean.shape() || g.shape() != a_clean.shape() || a_clean.ndim() == 0 {
            return Err(Error::Shape(format!(
                "attribution of {name}: clean {}, corrupt {} and gradient {} must share one shape of rank >= 1",
                fmt_shape(a_clean.shape()),
                fmt_shape(a_corrupt.shape()),
                fmt_shape(g.shape())
            )));
        }
        let mut terms = ArrayD::<f64>::zeros(a_clean.raw_dim());
        Zip::from(&mut terms).and(a_clean).and(a_corrupt).and(g).for_each(|t, &c, &k, &g| {
            let both_masked = c == f64::NEG_INFINITY && k == f64::NEG_INFINITY;
            *t = if both_masked { 0.0 } else { (c - k) * g };
        });
        out.push(name, terms.sum_axis(Axis(a_clean.ndim() - 1)));
    }
    Ok(out)
}

/// The float64 attribution estimate of every hook `names` picks, for `prompts`.
pub fn reference(config: &Config, weights: &Weights<ArrayD<f64>>, prompts: &Prompts, names: &Names) -> Result<Cache<ArrayD<f64>>> {
    prompts.check(config)?;
    let pairs = prompts.pairs();
    let clean = forward(config, weights, prompts.clean.view(), names, &[])?;
    let corrupt = forward(config, weights, prompts.corrupt.view(), names, &[])?;
    let grads = metric_grad(config, weights, prompts.corrupt.view(), |logits| summed_logit_diff_grad(logits, &pairs), names, &[])?;
    attribution(&clean.cache, &corrupt.cache, &grads.cache)
}

/// Node scores from an attribution cache: per head, the estimate of patching its `hook_z` at every
/// position (\[n_layers, n_heads\], comparable to the `z_all_pos` sweep minus the corrupt metric),
/// and per MLP, of patching `hook_mlp_out` everywhere (\[n_layers\]; `None` for attention-only
/// models). Sums over rows and positions, divided by the batch size (the sweeps report the batch
/// mean, attribution differentiates the batch sum).
pub fn node_scores(config: &Config, attr: &Cache<ArrayD<f64>>) -> Result<(ArrayD<f64>, Option<ArrayD<f64>>)> {
    let get = |name: String| attr.get(&name).ok_or_else(|| Error::Input(format!("node scores need the attribution of {name}")));
    let mut heads = ArrayD::<f64>::zeros(ndarray::IxDyn(&[config.n_layers, config.n_heads]));
    let mut mlps = config.mlp().map(|_| ArrayD::<f64>::zeros(ndarray::IxDyn(&[config.n_layers])));
    for l in 0..config.n_layers {
        let z = get(format!("blocks.{l}.attn.hook_z"))?;
        let &[batch, _, h] = z.shape() else {
            return Err(Error::Shape(format!("attribution of blocks.{l}.attn.hook_z is {} but must be [B, S, n_heads]", fmt_shape(z.shape()))));
        };
        if h != config.n_heads || batch == 0 {
            return Err(Error::Shape(format!("attribution of blocks.{l}.attn.hook_z is {} for {} heads", fmt_shape(z.shape()), config.n_heads)));
        }
        for head in 0..h {
            heads[[l, head]] = z.index_axis(Axis(2), head).sum() / batch as f64;
        }
        if let Some(m) = mlps.as_mut() {
            m[[l]] = get(format!("blocks.{l}.hook_mlp_out"))?.sum() / batch as f64;
        }
    }
    Ok((heads, mlps))
}
