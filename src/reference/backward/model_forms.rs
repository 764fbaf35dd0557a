//! The float64 backward of TransformerLens's variants beyond SPEC's plain model, as steps of the
//! model walk ([`super::Walk`]): every norm form (LayerNorm, LNPre, RMSNorm, RMSPre, `final_rms`,
//! the `mlp.ln` of `solu_ln`) with its two hooks, SoLU, `shortformer` positions, the per-head
//! inputs of `use_attn_in` / `use_split_qkv_input`, the per-head results of `use_attn_result`,
//! `hook_mlp_in`, and the attention-field variants (any `attn_scale`, by layer, bidirectional).
//!
//! Norms are recomputed from their input with the forward's interventions on `hook_scale` and
//! `hook_normalized` applied again (the forward caches each hook once, but `ln1` runs three times
//! with per-head inputs). RMS norm backward, per row of N with `s = sqrt(mean(x²) + eps)`,
//! `n = x / s'`: `dx = dn / s' + ds x / (N s)` with `ds' = -Σ dn x / s'²` (no centring).
//! SoLU `y = x ⊙ softmax(x)`: `dx = p ⊙ (dy + x ⊙ dy − Σ x p dy)` with `p = softmax(x)`.

use ndarray::{ArrayD, ArrayViewD, Axis, IxDyn, Zip};

use super::Walk;
use crate::error::{Error, Result};
use crate::reference::backward::layer_norm::{centred, normalize_backward, scale_backward};
use crate::reference::backward::linear::column_sums;
use crate::reference::backward::same_shape;
use crate::reference::layer_norm::layer_norm_full;
use crate::reference::transformer::forms::{repeat_heads, rms_norm, solu};
use crate::model::config::{Activation, NormForm};
use crate::model::hooks::find;
use crate::model::intervention::apply_host;
use crate::model::weights::LayerNormWeights;

/// `dx` for RMS norm on `x` given `dc` (the direct part `dn / s'`) and `d_scale` (d/d`s`, after
/// any intervention on it): `dx = dc + ds x / (N s)`.
pub fn rms_scale_backward(x: ArrayViewD<'_, f64>, eps: f64, d_scale: ArrayViewD<'_, f64>, dc: ArrayViewD<'_, f64>) -> Result<ArrayD<f64>> {
    same_shape("rms norm dc", dc.shape(), x.shape())?;
    let (_, scale) = rms_norm(&x.to_owned(), eps);
    same_shape("rms norm d scale", d_scale.shape(), scale.shape())?;
    if scale.iter().any(|&s| s == 0.0) {
        return Err(Error::Input("rms norm backward: a zero row with eps 0 has scale 0, so no gradient".into()));
    }
    let n = x.shape().last().copied().unwrap_or(1).max(1) as f64;
    Ok(&dc + &(&x * &(&d_scale / &(scale * n))))
}

/// `dx` for SoLU `y = x ⊙ softmax(x)` (last axis) given `dy`.
pub fn solu_backward(x: ArrayViewD<'_, f64>, dy: ArrayViewD<'_, f64>) -> Result<ArrayD<f64>> {
    same_shape("solu backward dy", dy.shape(), x.shape())?;
    let x = x.to_owned();
    let y = solu(&x);
    let mut dx = ArrayD::<f64>::zeros(x.raw_dim());
    if x.is_empty() {
        return Ok(dx);
    }
    let last = Axis(x.ndim() - 1);
    for (((mut d, x), y), g) in dx.lanes_mut(last).into_iter().zip(x.lanes(last)).zip(y.lanes(last)).zip(dy.lanes(last)) {
        // p = y / x is 0/0 at x = 0: take the softmax again.
        let max = x.fold(f64::NEG_INFINITY, |m, &v| m.max(v));
        let sum: f64 = x.iter().map(|&v| (v - max).exp()).sum();
        let p = x.mapv(|v| (v - max).exp() / sum);
        let dot = Zip::from(&y).and(&g).fold(0.0, |acc, &y, &g| acc + y * g);
        Zip::from(&mut d).and(&p).and(&x).and(&g).for_each(|d, &p, &x, &g| *d = p * (g + x * g - dot));
    }
    Ok(dx)
}

impl Walk<'_> {
    /// The norm `form` of `x` as the forward computed it: `(normalized, scale, c)` after the
    /// interventions on `{prefix}.hook_scale` and `{prefix}.hook_normalized`, with `c` the centred
    /// input (LayerNorm) or `x` (RMS).
    fn norm_parts(&self, prefix: &str, form: NormForm, x: &ArrayD<f64>) -> Result<(ArrayD<f64>, ArrayD<f64>, ArrayD<f64>)> {
        let eps = self.config.eps;
        let (normalized, scale) = if form.rms { rms_norm(x, eps) } else { layer_norm_full(x.view(), None, eps)? };
        let c = if form.rms { x.clone() } else { centred(x.view())? };
        let (scale_name, norm_name) = (format!("{prefix}.hook_scale"), format!("{prefix}.hook_normalized"));
        let mut used = scale.clone();
        self.intervene(&scale_name, &mut used)?;
        // As the forward: the normalised values divided again by a changed scale.
        let intervened = self.tape.interventions.iter().any(|i| i.hook == scale_name);
        let mut normalized = if intervened { normalized * &scale / &used } else { normalized };
        self.intervene(&norm_name, &mut normalized)?;
        Ok((normalized, used, c))
    }

    /// Applies the forward's interventions on hook `name` to `a`.
    fn intervene(&self, name: &str, a: &mut ArrayD<f64>) -> Result<()> {
        let hook = find(&self.tape.hooks, name)?;
        for intervention in self.tape.interventions.iter().filter(|i| i.hook == name) {
            apply_host(intervention, hook, a)?;
        }
        Ok(())
    }

    /// What norm `prefix` (form `form`, none: identity) gave the next op for input `x`.
    pub(super) fn norm_output(&self, prefix: &str, form: Option<NormForm>, x: &ArrayD<f64>, w: Option<&LayerNormWeights<ArrayD<f64>>>) -> Result<ArrayD<f64>> {
        let Some(form) = form else { return Ok(x.clone()) };
        let (n, _, _) = self.norm_parts(prefix, form, x)?;
        Ok(match w {
            Some(ln) => match &ln.b {
                Some(b) => n * &ln.w + b,
                None => n * &ln.w,
            },
            None => n,
        })
    }

    /// Adds `g` into the gradient of parameter `name`.
    fn add_grad(&mut self, name: String, g: ArrayD<f64>) {
        match self.grads.get_mut(&name) {
            Some(old) => *old += &g,
            None => {
                self.grads.insert(name, g);
            }
        }
    }

    /// d/dx of norm `prefix` (form `form`) on input `x` given `dy` = d/d(its output), through its
    /// hooks and weights. `dy_query` (ln1) is the part of `dy` through the query input alone,
    /// which the hooks record (see [`super::super::tape::Tape::hook_as`]); `record` false records
    /// nothing (the key and value calls of a per-head ln1).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn norm(
        &mut self,
        prefix: &str,
        form: Option<NormForm>,
        x: &ArrayD<f64>,
        w: Option<&LayerNormWeights<ArrayD<f64>>>,
        dy: ArrayD<f64>,
        dy_query: Option<ArrayD<f64>>,
        record: bool,
    ) -> Result<ArrayD<f64>> {
        let Some(form) = form else { return Ok(dy) };
        let (normalized, scale, c) = self.norm_parts(prefix, form, x)?;
        let (dn, dn_query) = match w {
            Some(ln) => {
                same_shape(prefix, dy.shape(), normalized.shape())?;
                self.add_grad(format!("{prefix}.w"), column_sums((&dy * &normalized).view())?);
                if ln.b.is_some() {
                    self.add_grad(format!("{prefix}.b"), column_sums(dy.view())?);
                }
                (&dy * &ln.w, dy_query.map(|d| d * &ln.w))
            }
            None => (dy, dy_query),
        };
        let normalized_name = format!("{prefix}.hook_normalized");
        let dn = self.record_through(&normalized_name, dn, dn_query.as_ref(), record)?;
        let dn_query = dn_query.map(|d| self.tape.through(&normalized_name, d)).transpose()?;
        let (dc, d_scale) = normalize_backward(c.view(), scale.view(), dn.view())?;
        let d_scale_query = match dn_query {
            Some(d) => Some(normalize_backward(c.view(), scale.view(), d.view())?.1),
            None => None,
        };
        let d_scale = self.record_through(&format!("{prefix}.hook_scale"), d_scale, d_scale_query.as_ref(), record)?;
        if form.rms {
            rms_scale_backward(x.view(), self.config.eps, d_scale.view(), dc.view())
        } else {
            scale_backward(x.view(), self.config.eps, d_scale.view(), dc.view())
        }
    }

    /// [`super::super::tape::Tape::hook_as`] when `record`, else only through the interventions.
    fn record_through(&mut self, name: &str, g: ArrayD<f64>, recorded: Option<&ArrayD<f64>>, record: bool) -> Result<ArrayD<f64>> {
        if record {
            self.tape.hook_as(name, g, recorded)
        } else {
            self.tape.through(name, g)
        }
    }

    /// The MLP's activation backward from d/d`hook_post`'s input to d/d`hook_pre`'s output, for
    /// block prefix `p` with pre-activation `pre` (through `hook_mid` and `mlp.ln` for `solu_ln`).
    pub(super) fn activation(&mut self, p: &str, pre: &ArrayD<f64>, ln: Option<&LayerNormWeights<ArrayD<f64>>>, g_post: ArrayD<f64>) -> Result<ArrayD<f64>> {
        let act = self.config.act_fn;
        if let Some(kind) = act.gelu() {
            return super::gelu_backward(kind, pre.view(), g_post.view());
        }
        if act == Activation::Relu {
            return super::relu_backward(pre.view(), g_post.view());
        }
        let g_mid = match self.config.mlp_norm() {
            Some(form) => {
                let mid = self.act(&format!("{p}.mlp.hook_mid"))?.clone();
                let g = self.norm(&format!("{p}.mlp.ln"), Some(form), &mid, ln, g_post, None, true)?;
                self.tape.hook(&format!("{p}.mlp.hook_mid"), g)?
            }
            None => g_post,
        };
        solu_backward(pre.view(), g_mid.view())
    }

    /// Block `p` (layer `l`)'s attention with its ln1 backward, given d/d`hook_attn_out` and the
    /// block's `resid_pre`: the gradient into `resid_pre` (the `shortformer` positions' part goes
    /// into `self.d_pos`).
    pub(super) fn attention_block(
        &mut self,
        p: &str,
        l: usize,
        resid: &ArrayD<f64>,
        block: &crate::model::weights::BlockWeights<ArrayD<f64>>,
        g_attn: ArrayD<f64>,
    ) -> Result<ArrayD<f64>> {
        let config = self.config;
        let form = config.block_norm();
        let ln1 = format!("{p}.ln1");
        let pos = if config.shortformer { Some(self.act("hook_pos_embed")?.clone()) } else { None };
        if !config.optional_hooks.per_head_inputs() {
            let y = self.norm_output(&ln1, form, resid, block.ln1.as_ref())?;
            let inputs = match &pos {
                Some(pos) => [&y + pos, &y + pos, y],
                None => [y.clone(), y.clone(), y],
            };
            let [dq, dk, dv] = self.attention(p, l, &inputs, &block.attn, g_attn)?;
            if pos.is_some() {
                self.d_pos = &self.d_pos + &dq + &dk;
            }
            let dy = &dq + &dk + &dv;
            return self.norm(&ln1, form, resid, block.ln1.as_ref(), dy, Some(dq), true);
        }
        let split = config.optional_hooks.split_qkv_input;
        let names = if split { ["hook_q_input", "hook_k_input", "hook_v_input"] } else { ["hook_attn_in"; 3] };
        let [xq, xk, xv] = names.map(|n| self.act(&format!("{p}.{n}")).cloned());
        let xs = [xq?, xk?, xv?];
        let pos = pos.map(|p| repeat_heads(&p, config.n_heads)).transpose()?;
        let mut inputs = Vec::with_capacity(3);
        for (i, x) in xs.iter().enumerate() {
            let y = self.norm_output(&ln1, form, x, block.ln1.as_ref())?;
            inputs.push(match &pos {
                Some(pos) if i < 2 => y + pos,
                _ => y,
            });
        }
        let inputs: [ArrayD<f64>; 3] = inputs.try_into().map_err(|_| Error::Input("three attention inputs".into()))?;
        let [dq, dk, dv] = self.attention(p, l, &inputs, &block.attn, g_attn)?;
        if pos.is_some() {
            self.d_pos = &self.d_pos + &(&dq + &dk).sum_axis(Axis(2));
        }
        // ln1 runs once per input: its weights' gradients sum over the three, and its hooks keep
        // the query call's (the last to fire in TransformerLens's backward).
        let dv = self.norm(&ln1, form, &xs[2], block.ln1.as_ref(), dv, None, false)?;
        let dk = self.norm(&ln1, form, &xs[1], block.ln1.as_ref(), dk, None, false)?;
        let dq = self.norm(&ln1, form, &xs[0], block.ln1.as_ref(), dq, None, true)?;
        let total = if split {
            let dv = self.tape.hook(&format!("{p}.hook_v_input"), dv)?;
            let dk = self.tape.hook(&format!("{p}.hook_k_input"), dk)?;
            let dq = self.tape.hook(&format!("{p}.hook_q_input"), dq)?;
            dq + dk + dv
        } else {
            self.tape.hook(&format!("{p}.hook_attn_in"), dq + dk + dv)?
        };
        Ok(total.sum_axis(Axis(2)))
    }
}

/// `use_attn_result`'s backward: d/d`hook_result` \[B, S, H, d_model\] is d/d(the attention's
/// output) repeated per head.
pub(super) fn result_grad(g_out: &ArrayD<f64>, heads: usize) -> Result<ArrayD<f64>> {
    repeat_heads(g_out, heads)
}

/// `(dz, dW_O)` for `result[b, s, h] = z[b, s, h] W_O[h]` given d/d`result`.
pub(super) fn heads_backward(z: &ArrayD<f64>, w_o: &ArrayD<f64>, d_result: &ArrayD<f64>) -> Result<(ArrayD<f64>, ArrayD<f64>)> {
    let (b, s, h, dh) = (z.shape()[0], z.shape()[1], z.shape()[2], z.shape()[3]);
    let dm = w_o.shape()[2];
    let mut dz = ArrayD::<f64>::zeros(IxDyn(&[b, s, h, dh]));
    let mut dw = ArrayD::<f64>::zeros(IxDyn(&[h, dh, dm]));
    let rows = |a: &ArrayD<f64>, head: usize, n: usize| {
        a.slice(ndarray::s![.., .., head, ..]).to_shape((b * s, n)).map(|v| v.into_owned()).map_err(super::shape_err)
    };
    for head in 0..h {
        let (zh, dr) = (rows(z, head, dh)?, rows(d_result, head, dm)?);
        let wh = w_o.slice(ndarray::s![head, .., ..]);
        dw.slice_mut(ndarray::s![head, .., ..]).assign(&zh.t().dot(&dr));
        let back = super::reshaped(&dr.dot(&wh.t()), &[b, s, dh])?;
        dz.slice_mut(ndarray::s![.., .., head, ..]).assign(&back);
    }
    Ok((dz, dw))
}
