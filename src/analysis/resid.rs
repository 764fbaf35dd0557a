//! Reading the residual stream, as TransformerLens's `ActivationCache` does, in float64 from a
//! forward cache: [`accumulated_resid`] (the stream before each block and after the last),
//! [`decompose_resid`] (the embeddings and every block's attention and MLP output, which sum to
//! the final stream), [`stack_head_results`] (each head's `hook_result`, `z @ W_O` without `b_O`),
//! [`apply_ln_to_stack`] (the final norm's centring and *its* scale, computed from the final
//! residual, so that components stay additive), [`logit_attrs`] (direct logit attribution), and
//! the logit lens ([`logit_lens`]: each accumulated residual through the final norm with its own
//! statistics, [`final_norm`], which is also TransformerLens 3.9's `accumulated_resid(apply_ln=True)`,
//! and the unembedding).
//!
//! A stack is `[components, B, S, d_model]` with one label per component, TransformerLens's
//! labels (`0_pre`, `final_post`, `embed`, `0_attn_out`, `L0H1`). The GPU path
//! ([`super::resid_gpu`]) computes the same from the GPU's cache.

use ndarray::{s, ArrayD, ArrayViewD, Axis, IxDyn};

use crate::error::{fmt_shape, Error, Result};
use crate::model::config::NormForm;
use crate::transformer::{Cache, Config, Normalization, Weights};

/// Components of the residual stream stacked on a first axis, with their labels.
#[derive(Clone, Debug)]
pub struct Stack {
    /// One TransformerLens label per component.
    pub labels: Vec<String>,
    /// `[components, B, S, d_model]`.
    pub values: ArrayD<f64>,
}

/// The hooks every reading of `config` needs from the forward cache.
pub fn needed_hooks(config: &Config) -> Vec<String> {
    let mut out = vec!["hook_embed".to_string()];
    if !config.shortformer {
        out.push("hook_pos_embed".to_string());
    }
    for l in 0..config.n_layers {
        out.push(format!("blocks.{l}.hook_resid_pre"));
        out.push(format!("blocks.{l}.attn.hook_z"));
        out.push(format!("blocks.{l}.hook_attn_out"));
        if config.mlp().is_some() {
            out.push(format!("blocks.{l}.hook_mlp_out"));
        }
    }
    if let Some(l) = config.n_layers.checked_sub(1) {
        out.push(format!("blocks.{l}.hook_resid_post"));
    }
    if config.has_ln() {
        out.push("ln_final.hook_scale".to_string());
    }
    out
}

/// Refuses, by field, the models these readings do not cover: no layers. (A shortformer's
/// positional embedding is not part of the residual stream; [`decompose_resid`] leaves it out.)
pub fn check_config(config: &Config) -> Result<()> {
    if config.n_layers == 0 {
        return Err(Error::Input("model config: n_layers is 0, so there is no residual stream to read by layer".into()));
    }
    Ok(())
}

fn get<'a>(cache: &'a Cache<ArrayD<f64>>, name: &str) -> Result<&'a ArrayD<f64>> {
    cache.get(name).ok_or_else(|| Error::Input(format!("the forward cache has no {name} (cache it to read the residual stream)")))
}

/// Stacks `parts` (each \[B, S, d\]) along a new first axis.
fn stack(labels: Vec<String>, parts: &[&ArrayD<f64>]) -> Result<Stack> {
    let views: Vec<ArrayViewD<'_, f64>> = parts.iter().map(|a| a.view()).collect();
    let values = ndarray::stack(Axis(0), &views).map_err(|e| Error::Shape(format!("cannot stack the residual components: {e}")))?;
    Ok(Stack { labels, values })
}

/// `ActivationCache.accumulated_resid()`: `blocks.{l}.hook_resid_pre` for every layer, then
/// the last block's `hook_resid_post` (`final_post`): `n_layers + 1` components.
pub fn accumulated_resid(config: &Config, cache: &Cache<ArrayD<f64>>) -> Result<Stack> {
    check_config(config)?;
    let mut labels = Vec::new();
    let mut parts = Vec::new();
    for l in 0..config.n_layers {
        labels.push(format!("{l}_pre"));
        parts.push(get(cache, &format!("blocks.{l}.hook_resid_pre"))?);
    }
    labels.push("final_post".into());
    parts.push(get(cache, &format!("blocks.{}.hook_resid_post", config.n_layers - 1))?);
    stack(labels, &parts)
}

/// `ActivationCache.decompose_resid()`: `embed`, `pos_embed`, then per layer `{l}_attn_out` and
/// (with MLPs) `{l}_mlp_out`. The components sum to the final residual stream. A shortformer
/// has no `pos_embed` component (W_pos only enters the queries and keys); TransformerLens 3.9
/// lists it all the same, so that its components do not sum to the stream; here they do.
pub fn decompose_resid(config: &Config, cache: &Cache<ArrayD<f64>>) -> Result<Stack> {
    check_config(config)?;
    let mut labels = vec!["embed".to_string()];
    let mut parts = vec![get(cache, "hook_embed")?];
    if !config.shortformer {
        labels.push("pos_embed".to_string());
        parts.push(get(cache, "hook_pos_embed")?);
    }
    for l in 0..config.n_layers {
        labels.push(format!("{l}_attn_out"));
        parts.push(get(cache, &format!("blocks.{l}.hook_attn_out"))?);
        if config.mlp().is_some() {
            labels.push(format!("{l}_mlp_out"));
            parts.push(get(cache, &format!("blocks.{l}.hook_mlp_out"))?);
        }
    }
    stack(labels, &parts)
}

/// `ActivationCache.stack_head_results()`: per layer and head (`L{l}H{h}`), `z[.., h, :] @
/// W_O[h]` \[B, S, d_model\] (TransformerLens's `hook_result`, without `b_O`).
pub fn stack_head_results(config: &Config, weights: &Weights<ArrayD<f64>>, cache: &Cache<ArrayD<f64>>) -> Result<Stack> {
    check_config(config)?;
    let mut labels = Vec::new();
    let mut parts = Vec::new();
    for (l, block) in weights.blocks.iter().enumerate() {
        let z = get(cache, &format!("blocks.{l}.attn.hook_z"))?;
        let &[batch, seq, heads, dh] = z.shape() else {
            return Err(Error::Shape(format!("blocks.{l}.attn.hook_z is {} but must be [B, S, n_heads, d_head]", fmt_shape(z.shape()))));
        };
        let w_o = &block.attn.w_o;
        if w_o.shape() != [heads, dh, config.d_model] {
            return Err(Error::Shape(format!("blocks.{l}.attn.W_O is {} for hook_z {}", fmt_shape(w_o.shape()), fmt_shape(z.shape()))));
        }
        for h in 0..heads {
            let zh = z.slice(s![.., .., h, ..]).to_owned().into_shape_with_order((batch * seq, dh)).map_err(|e| Error::Shape(e.to_string()))?.to_owned();
            let wh = w_o.slice(s![h, .., ..]).into_dimensionality::<ndarray::Ix2>().map_err(|e| Error::Shape(e.to_string()))?;
            let result = zh.dot(&wh).into_shape_with_order(IxDyn(&[batch, seq, config.d_model])).map_err(|e| Error::Shape(e.to_string()))?;
            labels.push(format!("L{l}H{h}"));
            parts.push(result);
        }
    }
    let refs: Vec<&ArrayD<f64>> = parts.iter().collect();
    stack(labels, &refs)
}

/// `ActivationCache.apply_ln_to_stack()` at the final layer (what `logit_attrs` applies): each component centred (LayerNorm
/// forms only) and divided by `ln_final.hook_scale` \[B, S, 1\], the scale of the *final*
/// residual, so the result stays a sum of components. Models without norms are unchanged.
pub fn apply_ln_to_stack(config: &Config, cache: &Cache<ArrayD<f64>>, stack: &Stack) -> Result<Stack> {
    if !config.has_ln() {
        return Ok(stack.clone());
    }
    let scale = get(cache, "ln_final.hook_scale")?;
    let sh = stack.values.shape();
    if sh.len() != 4 || scale.shape() != [sh[1], sh[2], 1] {
        return Err(Error::Shape(format!("ln_final.hook_scale is {} for a stack {}", fmt_shape(scale.shape()), fmt_shape(sh))));
    }
    let mut values = stack.values.clone();
    // TransformerLens centres exactly when normalization_type is LN or LNPre.
    if matches!(config.normalization, Normalization::Ln | Normalization::LnPre) {
        let mean = values.mean_axis(Axis(3)).ok_or_else(|| Error::Shape("the stack has d_model 0".into()))?;
        values -= &mean.insert_axis(Axis(3));
    }
    values /= &scale.view().insert_axis(Axis(0));
    Ok(Stack { labels: stack.labels.clone(), values })
}

/// `ActivationCache.logit_attrs()` with one token per row: `attrs[c, b, s] = stack[c, b, s] ·
/// (W_U[:, answer[b]] − W_U[:, wrong[b]])` (without `wrong`, just `W_U[:, answer[b]]`) \[C, B, S\].
/// Apply [`apply_ln_to_stack`] first to attribute the normalised logits.
pub fn logit_attrs(stack: &Stack, w_u: &ArrayD<f64>, answer: &[usize], wrong: Option<&[usize]>) -> Result<ArrayD<f64>> {
    let sh = stack.values.shape();
    let &[_, batch, _, dm] = sh else {
        return Err(Error::Shape(format!("the stack is {} but must be [components, B, S, d_model]", fmt_shape(sh))));
    };
    let &[wdm, vocab] = w_u.shape() else {
        return Err(Error::Shape(format!("W_U is {} but must be [d_model, d_vocab_out]", fmt_shape(w_u.shape()))));
    };
    let rows_ok = |t: &[usize]| t.len() == batch && t.iter().all(|&t| t < vocab);
    if wdm != dm || !rows_ok(answer) || !wrong.is_none_or(rows_ok) {
        return Err(Error::Input(format!("logit_attrs: want one token below {vocab} per row of {batch} and W_U [{dm}, d_vocab_out], got W_U {}", fmt_shape(w_u.shape()))));
    }
    let mut out = ArrayD::<f64>::zeros(IxDyn(&sh[..3]));
    for b in 0..batch {
        let mut dir = w_u.index_axis(Axis(1), answer[b]).to_owned();
        if let Some(wrong) = wrong {
            dir -= &w_u.index_axis(Axis(1), wrong[b]);
        }
        let rows = stack.values.index_axis(Axis(1), b);
        let dots = rows.map_axis(Axis(2), |r| r.dot(&dir.view().into_dimensionality::<ndarray::Ix1>().expect("W_U column is 1-D")));
        out.index_axis_mut(Axis(1), b).assign(&dots);
    }
    Ok(out)
}

/// The final norm of `config` applied row by row to `x` [..., d_model] (its own scale per row),
/// in float64: LayerNorm or RMS, with the weights it has.
pub fn final_norm(config: &Config, weights: &Weights<ArrayD<f64>>, x: &ArrayD<f64>) -> Result<ArrayD<f64>> {
    let Some(NormForm { rms, .. }) = config.final_norm() else {
        return Ok(x.clone());
    };
    let last = Axis(x.ndim() - 1);
    let mut out = x.clone();
    for mut row in out.lanes_mut(last) {
        if !rms {
            let mean = row.mean().unwrap_or(0.0);
            row -= mean;
        }
        let scale = (row.mapv(|v| v * v).mean().unwrap_or(0.0) + config.eps).sqrt();
        row /= scale;
        if let Some(ln) = &weights.ln_final {
            row *= &ln.w.view().into_dimensionality::<ndarray::Ix1>().map_err(|e| Error::Shape(e.to_string()))?;
            if let Some(b) = &ln.b {
                row += &b.view().into_dimensionality::<ndarray::Ix1>().map_err(|e| Error::Shape(e.to_string()))?;
            }
        }
    }
    Ok(out)
}

/// The logit lens: each accumulated residual ([`accumulated_resid`]) through the final norm
/// (its own scale, as the model would normalise it if it stopped there) and `W_U`, `b_U`:
/// `[n_layers + 1, B, S, d_vocab_out]`; the last entry is the model's logits.
pub fn logit_lens(config: &Config, weights: &Weights<ArrayD<f64>>, cache: &Cache<ArrayD<f64>>) -> Result<ArrayD<f64>> {
    let acc = accumulated_resid(config, cache)?;
    let normed = final_norm(config, weights, &acc.values)?;
    let sh = normed.shape().to_vec();
    let flat = normed.into_shape_with_order((sh[0] * sh[1] * sh[2], sh[3])).map_err(|e| Error::Shape(e.to_string()))?;
    let w_u = weights.w_u.view().into_dimensionality::<ndarray::Ix2>().map_err(|e| Error::Shape(e.to_string()))?;
    let logits = flat.dot(&w_u) + weights.b_u.view().into_dimensionality::<ndarray::Ix1>().map_err(|e| Error::Shape(e.to_string()))?;
    logits.into_shape_with_order(IxDyn(&[sh[0], sh[1], sh[2], config.d_vocab_out])).map_err(|e| Error::Shape(e.to_string()))
}

/// Per layer of a logit lens `[L, B, S, V]` at `position`, for each row's `token`: its logit,
/// its probability and its rank (0 = the top logit; ties count in its favour), each \[L, B\].
pub fn token_by_layer(lens: &ArrayD<f64>, position: usize, tokens: &[usize]) -> Result<[ArrayD<f64>; 3]> {
    let &[layers, batch, seq, vocab] = lens.shape() else {
        return Err(Error::Shape(format!("the logit lens is {} but must be [layers, B, S, V]", fmt_shape(lens.shape()))));
    };
    if position >= seq || tokens.len() != batch || tokens.iter().any(|&t| t >= vocab) {
        return Err(Error::Input(format!("token_by_layer: position {position} must be below {seq} and one token below {vocab} per row of {batch}")));
    }
    let mut out = [(); 3].map(|_| ArrayD::<f64>::zeros(IxDyn(&[layers, batch])));
    for l in 0..layers {
        for (b, &t) in tokens.iter().enumerate() {
            let row = lens.slice(s![l, b, position, ..]);
            let (x, max) = (row[t], row.fold(f64::NEG_INFINITY, |m, &v| m.max(v)));
            let sum: f64 = row.iter().map(|v| (v - max).exp()).sum();
            out[0][[l, b]] = x;
            out[1][[l, b]] = (x - max).exp() / sum;
            out[2][[l, b]] = row.iter().filter(|&&v| v > x).count() as f64;
        }
    }
    Ok(out)
}
