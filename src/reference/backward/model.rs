//! The whole model's backward in float64: TransformerLens's `HookedTransformer` loss and the
//! gradient of every parameter and, on request, of every hook (`run_with_cache(incl_bwd=True)`'s
//! `<hook>_grad`).
//!
//! Built on the float64 forward ([`crate::reference::transformer::forward`]), run with every hook
//! cached and with the caller's interventions applied: those cached activations are the values
//! the backward needs. The walk goes through the hooks in reverse order, from the cross-entropy
//! ([`super::loss`]) through the unembedding, the final layer norm and each block (MLP, then
//! attention, each with its layer norm and the residual branch), to the embeddings. At each hook
//! [`super::tape::Tape`] records the gradient when asked and carries it back through that hook's
//! interventions, so a gradient can be taken on a patched run.
//!
//! Two hook gradients follow TransformerLens rather than calculus, so that its fixtures pass:
//! `hook_pattern_grad` is `dz vᵀ` over every key, hidden ones included (PyTorch differentiates
//! the `einsum` over all keys), and `ln1.hook_scale_grad` / `ln1.hook_normalized_grad` are the
//! gradients through the attention's query input alone (TransformerLens 3 calls `ln1` once each
//! for the query, key and value inputs, and its cache keeps the last backward hook to fire, the
//! query's). Parameter gradients and every other hook's are the full derivatives.

use std::collections::BTreeMap;

use ndarray::{ArrayD, ArrayViewD, IxDyn};

use super::activation::{gelu_backward, relu_backward};
use super::attention::{output_backward, scores_backward};
use super::embedding::{embedding_backward, pos_embedding_backward};
use super::layer_norm::{affine_backward, centred, normalize_backward, scale_backward};
use super::linear::linear_backward;
use super::loss::cross_entropy;
use super::softmax::{causal_softmax, softmax_backward};
use super::tape::Tape;
use super::{reshaped, shape_err};
use crate::error::{Error, Result};
use crate::reference::attention_layer::AttentionWeights;
use crate::reference::transformer::forward;
use crate::transformer::hooks::{hooks, Cache, Names};
use crate::transformer::intervention::Intervention;
use crate::transformer::weights::{LayerNormWeights, Weights};
use crate::transformer::Config;

/// The result of a float64 backward pass.
#[derive(Clone, Debug)]
pub struct TransformerGrad {
    /// The mean cross-entropy over the counted positions (for [`metric_grad`], the metric).
    pub loss: f64,
    /// The forward's logits \[B, S, d_vocab_out\].
    pub logits: ArrayD<f64>,
    /// d loss / d parameter, under the parameters' own structure (see [`Weights::named`]).
    pub grads: Weights<ArrayD<f64>>,
    /// `<hook>_grad` for the hooks the names filter picked, in forward order.
    pub cache: Cache<ArrayD<f64>>,
}

/// The loss of `tokens` \[B, S\] against `targets` \[B, S\] (SPEC's Gradients) and its gradients,
/// with `interventions` applied in the forward and `<hook>_grad` kept for the hooks `names` picks.
pub fn transformer_grad(
    config: &Config,
    weights: &Weights<ArrayD<f64>>,
    tokens: ArrayViewD<'_, i64>,
    targets: ArrayViewD<'_, i64>,
    names: &Names,
    interventions: &[Intervention],
) -> Result<TransformerGrad> {
    let (batch, seq) = crate::transformer::check_tokens(config, tokens.view())?;
    // Targets first: a bad one is refused before any work.
    super::loss::check_targets(&[batch, seq, config.d_vocab_out], targets.view())?;
    metric_grad(config, weights, tokens, |logits| {
        let ce = cross_entropy(logits.view(), targets)?;
        Ok((ce.loss, ce.grad))
    }, names, interventions)
}

/// The backward pass from any scalar metric of the logits: `seed` gets the forward's logits
/// \[B, S, d_vocab_out\] and returns the metric and d metric / d logits (of the logits' shape);
/// the result's `loss` is that metric. [`transformer_grad`] is this with the cross-entropy.
/// Attribution patching ([`crate::analysis`]) seeds it with the logit difference's gradient.
pub fn metric_grad(
    config: &Config,
    weights: &Weights<ArrayD<f64>>,
    tokens: ArrayViewD<'_, i64>,
    seed: impl FnOnce(&ArrayD<f64>) -> Result<(f64, ArrayD<f64>)>,
    names: &Names,
    interventions: &[Intervention],
) -> Result<TransformerGrad> {
    // The backward walk below follows the plain model (scale 1/sqrt(d_head), causal, sequential
    // blocks): a config that changes any of these is refused by name, never answered wrongly.
    config.refuse_variants("the backward pass")?;
    names.check(config)?;
    let (batch, seq) = crate::transformer::check_tokens(config, tokens.view())?;
    let run = forward(config, weights, tokens.view(), &Names::All, interventions)?;
    let (metric, d_logits) = seed(&run.logits)?;
    super::same_shape("the metric's d/d logits", d_logits.shape(), run.logits.shape())?;
    let mut walk = Walk {
        config,
        acts: run.cache,
        tape: Tape { hooks: hooks(config, batch, seq), names, interventions, grads: Vec::new() },
        grads: BTreeMap::new(),
    };
    let g = walk.tape.hook("unembed.hook_out", d_logits)?;
    let lin = linear_backward(walk.act("unembed.hook_in")?.view(), weights.w_u.view(), g.view())?;
    walk.grads.insert("unembed.W_U".into(), lin.dw);
    walk.grads.insert("unembed.b_U".into(), lin.db);
    let g = walk.tape.hook("unembed.hook_in", lin.dx)?;
    let last = match config.n_layers {
        0 => walk.act("hook_embed")? + walk.act("hook_pos_embed")?,
        n => walk.act(&format!("blocks.{}.hook_resid_post", n - 1))?.clone(),
    };
    let mut g = walk.layer_norm("ln_final", last.view(), weights.ln_final.as_ref(), g, None)?;
    for (l, block) in weights.blocks.iter().enumerate().rev() {
        let p = format!("blocks.{l}");
        g = walk.tape.hook(&format!("{p}.hook_resid_post"), g)?;
        if let (Some(mlp), Some(act)) = (&block.mlp, config.mlp().map(|_| config.act_fn)) {
            let g_out = walk.tape.hook(&format!("{p}.hook_mlp_out"), g.clone())?;
            let lin = linear_backward(walk.act(&format!("{p}.mlp.hook_post"))?.view(), mlp.w_out.view(), g_out.view())?;
            walk.grads.insert(format!("{p}.mlp.W_out"), lin.dw);
            walk.grads.insert(format!("{p}.mlp.b_out"), lin.db);
            let g_post = walk.tape.hook(&format!("{p}.mlp.hook_post"), lin.dx)?;
            let pre = walk.act(&format!("{p}.mlp.hook_pre"))?;
            let g_pre = match act.gelu() {
                Some(kind) => gelu_backward(kind, pre.view(), g_post.view())?,
                None => relu_backward(pre.view(), g_post.view())?,
            };
            let g_pre = walk.tape.hook(&format!("{p}.mlp.hook_pre"), g_pre)?;
            let mid = walk.act(&format!("{p}.hook_resid_mid"))?.clone();
            let x = walk.ln_output(&format!("{p}.ln2"), &mid, block.ln2.as_ref())?;
            let lin = linear_backward(x.view(), mlp.w_in.view(), g_pre.view())?;
            walk.grads.insert(format!("{p}.mlp.W_in"), lin.dw);
            walk.grads.insert(format!("{p}.mlp.b_in"), lin.db);
            g = g + walk.layer_norm(&format!("{p}.ln2"), mid.view(), block.ln2.as_ref(), lin.dx, None)?;
            g = walk.tape.hook(&format!("{p}.hook_resid_mid"), g)?;
        }
        let g_attn = walk.tape.hook(&format!("{p}.hook_attn_out"), g.clone())?;
        let pre = walk.act(&format!("{p}.hook_resid_pre"))?.clone();
        let x = walk.ln_output(&format!("{p}.ln1"), &pre, block.ln1.as_ref())?;
        let (dx, dx_query) = walk.attention(&p, &x, &block.attn, g_attn)?;
        g = g + walk.layer_norm(&format!("{p}.ln1"), pre.view(), block.ln1.as_ref(), dx, Some(dx_query))?;
        g = walk.tape.hook(&format!("{p}.hook_resid_pre"), g)?;
    }
    let g_embed = walk.tape.hook("hook_embed", g.clone())?;
    let g_pos = walk.tape.hook("hook_pos_embed", g)?;
    walk.grads.insert("embed.W_E".into(), embedding_backward(tokens, g_embed.view(), config.d_vocab)?);
    walk.grads.insert("pos_embed.W_pos".into(), pos_embedding_backward(g_pos.view(), config.n_ctx)?);
    let mut grads = walk.grads;
    let grads = Weights::build(config, |name, _| {
        grads.remove(name).ok_or_else(|| Error::Input(format!("the backward produced no gradient for {name}")))
    })?;
    Ok(TransformerGrad { loss: metric, logits: run.logits, grads, cache: walk.tape.into_cache() })
}

/// The state of one backward walk.
struct Walk<'a> {
    config: &'a Config,
    /// Every hook's activation (after its interventions).
    acts: Cache<ArrayD<f64>>,
    tape: Tape<'a>,
    grads: BTreeMap<String, ArrayD<f64>>,
}

impl Walk<'_> {
    fn act(&self, name: &str) -> Result<&ArrayD<f64>> {
        self.acts.get(name).ok_or_else(|| Error::Input(format!("the forward did not produce hook {name}")))
    }

    /// What the layer norm `prefix` gave the next op: `normalized w + b`, `normalized`, or `x`.
    fn ln_output(&self, prefix: &str, x: &ArrayD<f64>, w: Option<&LayerNormWeights<ArrayD<f64>>>) -> Result<ArrayD<f64>> {
        if !self.config.has_ln() {
            return Ok(x.clone());
        }
        let n = self.act(&format!("{prefix}.hook_normalized"))?;
        Ok(match w {
            Some(ln) => n * &ln.w + ln.b.as_ref().ok_or_else(|| Error::Input(format!("{prefix}: no bias")))?,
            None => n.clone(),
        })
    }

    /// d/dx of layer norm `prefix` on input `x` given d/d(its output), through both hooks.
    /// `dy_query`, for `ln1`, is the part of `dy` that came through the attention's query input:
    /// the hooks record the gradient of that path alone, as TransformerLens's cache does (see
    /// [`Tape::hook_as`]); the returned d/dx is the whole one.
    fn layer_norm(
        &mut self,
        prefix: &str,
        x: ArrayViewD<'_, f64>,
        w: Option<&LayerNormWeights<ArrayD<f64>>>,
        dy: ArrayD<f64>,
        dy_query: Option<ArrayD<f64>>,
    ) -> Result<ArrayD<f64>> {
        if !self.config.has_ln() {
            return Ok(dy);
        }
        let (dn, dn_query) = match w {
            Some(ln) => {
                let n = self.act(&format!("{prefix}.hook_normalized"))?;
                let (dn, dw, db) = affine_backward(n.view(), ln.w.view(), dy.view())?;
                self.grads.insert(format!("{prefix}.w"), dw);
                self.grads.insert(format!("{prefix}.b"), db);
                (dn, dy_query.map(|d| d * &ln.w))
            }
            None => (dy, dy_query),
        };
        let normalized = format!("{prefix}.hook_normalized");
        let dn = self.tape.hook_as(&normalized, dn, dn_query.as_ref())?;
        let dn_query = dn_query.map(|d| self.tape.through(&normalized, d)).transpose()?;
        let c = centred(x.view())?;
        let scale = self.act(&format!("{prefix}.hook_scale"))?;
        let (dc, d_scale) = normalize_backward(c.view(), scale.view(), dn.view())?;
        let d_scale_query = match dn_query {
            Some(d) => Some(normalize_backward(c.view(), scale.view(), d.view())?.1),
            None => None,
        };
        let d_scale = self.tape.hook_as(&format!("{prefix}.hook_scale"), d_scale, d_scale_query.as_ref())?;
        scale_backward(x, self.config.eps, d_scale.view(), dc.view())
    }

    /// d/dx of block `p`'s attention on input `x` \[B,S,dm\] given d/d(its output), and the
    /// part of it that came through the query input.
    fn attention(&mut self, p: &str, x: &ArrayD<f64>, w: &AttentionWeights<ArrayD<f64>>, g_out: ArrayD<f64>) -> Result<(ArrayD<f64>, ArrayD<f64>)> {
        let (dm, h, dh) = (self.config.d_model, self.config.n_heads, self.config.d_head);
        let (batch, seq) = (x.shape()[0], x.shape()[1]);
        let z = self.act(&format!("{p}.attn.hook_z"))?.to_shape(IxDyn(&[batch, seq, h * dh])).map_err(shape_err)?.into_owned();
        let w_o = w.w_o.to_shape(IxDyn(&[h * dh, dm])).map_err(shape_err)?.into_owned();
        let lin = linear_backward(z.view(), w_o.view(), g_out.view())?;
        self.grads.insert(format!("{p}.attn.W_O"), reshaped(&lin.dw, &[h, dh, dm])?);
        self.grads.insert(format!("{p}.attn.b_O"), lin.db);
        let dz = reshaped(&lin.dx, &[batch, seq, h, dh])?;
        let dz = self.tape.hook(&format!("{p}.attn.hook_z"), dz)?;
        let heads_first = |a: &ArrayD<f64>| a.view().permuted_axes(IxDyn(&[0, 2, 1, 3])).as_standard_layout().into_owned();
        let [q, k, v] = ["q", "k", "v"].map(|n| self.act(&format!("{p}.attn.hook_{n}")).map(heads_first));
        let (q, k, v) = (q?, k?, v?);
        let pattern = self.act(&format!("{p}.attn.hook_pattern"))?;
        let (dpattern, dv) = output_backward(pattern.view(), v.view(), heads_first(&dz).view(), true)?;
        let dpattern = self.tape.hook(&format!("{p}.attn.hook_pattern"), dpattern)?;
        // The pattern before hook_pattern's interventions: the softmax of the scores it saw.
        let before = causal_softmax(self.act(&format!("{p}.attn.hook_attn_scores"))?.view());
        let dscores = softmax_backward(before.view(), dpattern.view())?;
        let dscores = self.tape.hook(&format!("{p}.attn.hook_attn_scores"), dscores)?;
        let (dq, dk) = scores_backward(q.view(), k.view(), dscores.view(), 1.0 / (dh as f64).sqrt())?;
        let mut dx = ArrayD::<f64>::zeros(x.raw_dim());
        let mut dx_query = dx.clone();
        let rows = x.to_shape((batch * seq, dm)).map_err(shape_err)?;
        for (name, d, w_in, b_name) in [("q", dq, &w.w_q, "Q"), ("k", dk, &w.w_k, "K"), ("v", dv, &w.w_v, "V")] {
            let d = heads_first(&d); // [B,H,S,dh] back to [B,S,H,dh]: the same permutation.
            let d = self.tape.hook(&format!("{p}.attn.hook_{name}"), d)?;
            let mut dw = ArrayD::<f64>::zeros(IxDyn(&[h, dm, dh]));
            let mut db = ArrayD::<f64>::zeros(IxDyn(&[h, dh]));
            for head in 0..h {
                let dh_rows = d.slice(ndarray::s![.., .., head, ..]).to_shape((batch * seq, dh)).map_err(shape_err)?.into_owned();
                let wh = w_in.slice(ndarray::s![head, .., ..]);
                dw.slice_mut(ndarray::s![head, .., ..]).assign(&rows.t().dot(&dh_rows));
                db.slice_mut(ndarray::s![head, ..]).assign(&dh_rows.sum_axis(ndarray::Axis(0)));
                let back = reshaped(&dh_rows.dot(&wh.t()), &[batch, seq, dm])?;
                if name == "q" {
                    dx_query += &back;
                }
                dx += &back;
            }
            self.grads.insert(format!("{p}.attn.W_{b_name}"), dw);
            self.grads.insert(format!("{p}.attn.b_{b_name}"), db);
        }
        Ok((dx, dx_query))
    }
}
