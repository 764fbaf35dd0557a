//! The float64 reference's TransformerLens variants beyond SPEC's plain model, each in its own
//! function: the norms (LayerNorm, LNPre, RMSNorm, RMSPre) with their hooks, SoLU, the per-head
//! attention inputs of `use_attn_in` / `use_split_qkv_input`, the per-head results of
//! `use_attn_result`, and `hook_tokens`. Written from TransformerLens 3.9's components
//! (`rms_norm.py`, `mlps/mlp.py`, `transformer_block.py`, `abstract_attention.py`).

use ndarray::{s, ArrayD, Axis, Ix2, Ix4, IxDyn};

pub use crate::spec::tokens::token_ids;

use super::Run;
use crate::error::{Error, Result};
use crate::reference::layer_norm::layer_norm_full;
use crate::model::config::{Config, NormForm};
use crate::model::weights::LayerNormWeights;

fn shape_err(e: ndarray::ShapeError) -> Error {
    Error::Shape(e.to_string())
}

/// The norm `form` (or nothing, for `None`) of `x` over its last axis, with the hooks
/// `{prefix}.hook_scale` and `{prefix}.hook_normalized`; an intervention on the scale divides the
/// normalised values again by the changed scale, as TransformerLens's `x / scale` does.
pub(super) fn norm(
    run: &mut Run<'_>,
    form: Option<NormForm>,
    eps: f64,
    prefix: &str,
    x: &ArrayD<f64>,
    weights: Option<&LayerNormWeights<ArrayD<f64>>>,
) -> Result<ArrayD<f64>> {
    let Some(form) = form else { return Ok(x.clone()) };
    let (mut normalized, scale) = if form.rms { rms_norm(x, eps) } else { layer_norm_full(x.view(), None, eps)? };
    let scale_name = format!("{prefix}.hook_scale");
    if run.intervenes(&scale_name) {
        let new = run.hook(&scale_name, scale.clone())?;
        normalized = normalized * &scale / &new;
    } else {
        run.hook(&scale_name, scale)?;
    }
    let normalized = run.hook(&format!("{prefix}.hook_normalized"), normalized)?;
    Ok(match weights {
        Some(ln) => {
            let y = normalized * &ln.w;
            match &ln.b {
                Some(b) => y + b,
                None => y,
            }
        }
        None => normalized,
    })
}

/// TransformerLens's RMSNorm without its weight: `(x / scale, scale)` with
/// `scale = sqrt(mean(x²) + eps)` \[..., 1\].
pub fn rms_norm(x: &ArrayD<f64>, eps: f64) -> (ArrayD<f64>, ArrayD<f64>) {
    let last = Axis(x.ndim().saturating_sub(1));
    let n = x.len_of(last).max(1) as f64;
    let scale = x.map_axis(last, |row| {
        // Huge rows are scaled by their largest magnitude first, so that the squares cannot overflow.
        let m = row.fold(0.0f64, |m, v| m.max(v.abs()));
        if m < 1e150 || !m.is_finite() {
            return (row.iter().map(|v| v * v).sum::<f64>() / n + eps).sqrt();
        }
        let sum: f64 = row.iter().map(|v| (v / m) * (v / m)).sum();
        m * (sum / n + eps / (m * m)).sqrt()
    });
    let scale = scale.insert_axis(last);
    (x / &scale, scale)
}

/// SoLU, `x · softmax(x)` over the last axis (the softmax shifted by the row maximum).
pub fn solu(x: &ArrayD<f64>) -> ArrayD<f64> {
    let mut out = x.clone();
    for mut row in out.lanes_mut(Axis(x.ndim() - 1)) {
        let max = row.fold(f64::NEG_INFINITY, |m, &v| m.max(v));
        let sum: f64 = row.iter().map(|&v| (v - max).exp()).sum();
        row.mapv_inplace(|v| v * ((v - max).exp() / sum));
    }
    out
}

/// The MLP's activation with its hooks from `hook_pre`'s value to `hook_post`'s input, for SoLU:
/// `solu` alone, or (`solu_ln`) `hook_mid`, then the LayerNorm `mlp.ln` with its hooks.
pub(super) fn solu_mlp(
    run: &mut Run<'_>,
    config: &Config,
    prefix: &str,
    pre: &ArrayD<f64>,
    ln: Option<&LayerNormWeights<ArrayD<f64>>>,
) -> Result<ArrayD<f64>> {
    let act = solu(pre);
    match config.mlp_norm() {
        None => Ok(act),
        Some(form) => {
            let mid = run.hook(&format!("{prefix}.mlp.hook_mid"), act)?;
            norm(run, Some(form), config.eps, &format!("{prefix}.mlp.ln"), &mid, ln)
        }
    }
}

/// `x` \[B, S, d\] repeated along a new head axis: \[B, S, H, d\] (TransformerLens's
/// `repeat_along_head_dimension`).
pub fn repeat_heads(x: &ArrayD<f64>, heads: usize) -> Result<ArrayD<f64>> {
    let (b, s, d) = (x.shape()[0], x.shape()[1], x.shape()[2]);
    let view = x.view().insert_axis(Axis(2));
    let out = view.broadcast(IxDyn(&[b, s, heads, d])).ok_or_else(|| Error::Shape("cannot repeat along heads".into()))?;
    Ok(out.to_owned())
}

/// The inputs of q, k and v \[B, S, H, d_model\] with `use_attn_in` (one hooked input for all
/// three) or `use_split_qkv_input` (one hooked input each), from `resid_pre`.
pub(super) fn per_head_inputs(run: &mut Run<'_>, config: &Config, prefix: &str, resid: &ArrayD<f64>) -> Result<[ArrayD<f64>; 3]> {
    let repeated = repeat_heads(resid, config.n_heads)?;
    if config.optional_hooks.split_qkv_input {
        let q = run.hook(&format!("{prefix}.hook_q_input"), repeated.clone())?;
        let k = run.hook(&format!("{prefix}.hook_k_input"), repeated.clone())?;
        let v = run.hook(&format!("{prefix}.hook_v_input"), repeated)?;
        Ok([q, k, v])
    } else {
        let a = run.hook(&format!("{prefix}.hook_attn_in"), repeated)?;
        Ok([a.clone(), a.clone(), a])
    }
}

/// Head `h`'s projection of its own input: `x[b, s, h, :] @ w[h] + bias[h]` for x \[B, S, H, n\],
/// w \[H, n, m\], bias \[H, m\] (none: zero) → \[B, S, H, m\].
pub fn project_heads(x: &ArrayD<f64>, w: &ArrayD<f64>, bias: Option<&ArrayD<f64>>) -> Result<ArrayD<f64>> {
    let x4 = x.view().into_dimensionality::<Ix4>().map_err(shape_err)?;
    let (b, s, heads, n) = x4.dim();
    let m = w.shape()[2];
    let mut out = ndarray::Array4::<f64>::zeros((b, s, heads, m));
    for h in 0..heads {
        let wh = w.slice(s![h, .., ..]).into_dimensionality::<Ix2>().map_err(shape_err)?;
        let rows = x4.slice(s![.., .., h, ..]).to_shape((b * s, n)).map_err(shape_err)?.dot(&wh);
        let mut y = rows.into_shape_with_order((b, s, m)).map_err(shape_err)?;
        if let Some(bias) = bias {
            y += &bias.slice(s![h, ..]);
        }
        out.slice_mut(s![.., .., h, ..]).assign(&y);
    }
    Ok(out.into_dyn())
}

/// `use_attn_result`: each head's `z W_O[h]` through `attn.hook_result` \[B, S, H, d_model\],
/// then their sum plus `b_O`.
pub(super) fn attn_result(run: &mut Run<'_>, prefix: &str, z: &ArrayD<f64>, w_o: &ArrayD<f64>, b_o: &ArrayD<f64>) -> Result<ArrayD<f64>> {
    let result = run.hook(&format!("{prefix}.attn.hook_result"), project_heads(z, w_o, None)?)?;
    Ok(result.sum_axis(Axis(2)) + b_o)
}

/// `hook_tokens`: the tokens as float64 through the hook, back as token ids (an intervention
/// must leave whole numbers in `[0, d_vocab)`).
pub(super) fn hook_tokens(run: &mut Run<'_>, config: &Config, tokens: ndarray::ArrayViewD<'_, i64>) -> Result<ArrayD<i64>> {
    let hooked = run.hook("hook_tokens", tokens.mapv(|t| t as f64))?;
    token_ids(hooked.view(), config.d_vocab)
}
