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
//! interventions, so a gradient can be taken on a patched run. Every TransformerLens variant the
//! forward runs (norm forms, SoLU, shortformer, parallel blocks, attention scales and direction,
//! the optional hooks) is differentiated too, in [`forms`].
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
use super::linear::linear_backward;
use super::loss::cross_entropy;
use super::softmax::{causal_softmax, softmax_backward};
use super::tape::Tape;
use super::{reshaped, shape_err};
use crate::error::{Error, Result};
use crate::reference::attention_layer::AttentionWeights;
use crate::reference::transformer::forward;
use crate::model::hooks::{hooks, Cache, Names};
use crate::model::intervention::Intervention;
use crate::model::weights::Weights;

#[path = "model_forms.rs"]
pub mod forms;
use crate::model::config::Config;

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
    let (batch, seq) = crate::model::hooks::check_tokens(config, tokens.view())?;
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
    names.check(config)?;
    let (batch, seq) = crate::model::hooks::check_tokens(config, tokens.view())?;
    let run = forward(config, weights, tokens.view(), &Names::All, interventions)?;
    let (metric, d_logits) = seed(&run.logits)?;
    super::same_shape("the metric's d/d logits", d_logits.shape(), run.logits.shape())?;
    // attn.hook_result on request: the forward computed it head by head, as with use_attn_result.
    let config = &*crate::model::hooks::run_config(config, names, interventions);
    let mut walk = Walk {
        config,
        acts: run.cache,
        tape: Tape { hooks: hooks(config, batch, seq), names, interventions, grads: Vec::new() },
        grads: BTreeMap::new(),
        d_pos: ArrayD::zeros(IxDyn(&[batch, seq, config.d_model])),
    };
    let g = walk.tape.hook("unembed.hook_out", d_logits)?;
    let lin = linear_backward(walk.act("unembed.hook_in")?.view(), weights.w_u.view(), g.view())?;
    walk.grads.insert("unembed.W_U".into(), lin.dw);
    walk.grads.insert("unembed.b_U".into(), lin.db);
    let g = walk.tape.hook("unembed.hook_in", lin.dx)?;
    let last = match config.n_layers {
        0 if config.shortformer => walk.act("hook_embed")?.clone(),
        0 => walk.act("hook_embed")? + walk.act("hook_pos_embed")?,
        n => walk.act(&format!("blocks.{}.hook_resid_post", n - 1))?.clone(),
    };
    let mut g = walk.norm("ln_final", config.final_norm(), &last, weights.ln_final.as_ref(), g, None, true)?;
    for (l, block) in weights.blocks.iter().enumerate().rev() {
        let p = format!("blocks.{l}");
        g = walk.tape.hook(&format!("{p}.hook_resid_post"), g)?;
        // parallel_attn_mlp: the MLP's input gradient goes to resid_pre, past the attention.
        let mut g_parallel = None;
        if let Some(mlp) = block.mlp.as_ref().filter(|_| config.mlp().is_some()) {
            let g_out = walk.tape.hook(&format!("{p}.hook_mlp_out"), g.clone())?;
            let lin = linear_backward(walk.act(&format!("{p}.mlp.hook_post"))?.view(), mlp.w_out.view(), g_out.view())?;
            walk.grads.insert(format!("{p}.mlp.W_out"), lin.dw);
            walk.grads.insert(format!("{p}.mlp.b_out"), lin.db);
            let g_post = walk.tape.hook(&format!("{p}.mlp.hook_post"), lin.dx)?;
            let pre = walk.act(&format!("{p}.mlp.hook_pre"))?.clone();
            let g_pre = walk.activation(&p, &pre, mlp.ln.as_ref(), g_post)?;
            let g_pre = walk.tape.hook(&format!("{p}.mlp.hook_pre"), g_pre)?;
            let input = match (config.optional_hooks.mlp_in, config.parallel_attn_mlp) {
                (true, _) => format!("{p}.hook_mlp_in"),
                (false, true) => format!("{p}.hook_resid_pre"),
                (false, false) => format!("{p}.hook_resid_mid"),
            };
            let mlp_in = walk.act(&input)?.clone();
            let ln2 = format!("{p}.ln2");
            let x = walk.norm_output(&ln2, config.block_norm(), &mlp_in, block.ln2.as_ref())?;
            let lin = linear_backward(x.view(), mlp.w_in.view(), g_pre.view())?;
            walk.grads.insert(format!("{p}.mlp.W_in"), lin.dw);
            walk.grads.insert(format!("{p}.mlp.b_in"), lin.db);
            let mut d_in = walk.norm(&ln2, config.block_norm(), &mlp_in, block.ln2.as_ref(), lin.dx, None, true)?;
            if config.optional_hooks.mlp_in {
                d_in = walk.tape.hook(&format!("{p}.hook_mlp_in"), d_in)?;
            }
            if config.parallel_attn_mlp {
                g_parallel = Some(d_in);
            } else {
                g = g + d_in;
                g = walk.tape.hook(&format!("{p}.hook_resid_mid"), g)?;
            }
        }
        let g_attn = walk.tape.hook(&format!("{p}.hook_attn_out"), g.clone())?;
        let pre = walk.act(&format!("{p}.hook_resid_pre"))?.clone();
        g = g + walk.attention_block(&p, l, &pre, block, g_attn)?;
        if let Some(d) = g_parallel {
            g = g + d;
        }
        g = walk.tape.hook(&format!("{p}.hook_resid_pre"), g)?;
    }
    let g_embed = walk.tape.hook("hook_embed", g.clone())?;
    let g_pos = if config.shortformer { std::mem::take(&mut walk.d_pos) } else { g };
    let g_pos = walk.tape.hook("hook_pos_embed", g_pos)?;
    let hooked_tokens = match config.optional_hooks.tokens {
        true => Some(crate::reference::transformer::forms::token_ids(walk.act("hook_tokens")?.view(), config.d_vocab)?),
        false => None,
    };
    let tokens = hooked_tokens.as_ref().map_or(tokens, |t| t.view());
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
    /// `shortformer`: d/d`hook_pos_embed`, gathered from the queries' and keys' inputs.
    d_pos: ArrayD<f64>,
}

impl Walk<'_> {
    fn act(&self, name: &str) -> Result<&ArrayD<f64>> {
        self.acts.get(name).ok_or_else(|| Error::Input(format!("the forward did not produce hook {name}")))
    }

    /// Block `p` (layer `l`)'s attention backward from the inputs of q, k and v (\[B,S,dm\], or
    /// \[B,S,H,dm\] per head) given d/d(its output): every attention weight's gradient, the hooks
    /// from `hook_z` (or `hook_result`) back to `hook_q`, and d/d each input.
    fn attention(&mut self, p: &str, l: usize, inputs: &[ArrayD<f64>; 3], w: &AttentionWeights<ArrayD<f64>>, g_out: ArrayD<f64>) -> Result<[ArrayD<f64>; 3]> {
        let (dm, h, dh) = (self.config.d_model, self.config.n_heads, self.config.d_head);
        let (batch, seq) = (inputs[0].shape()[0], inputs[0].shape()[1]);
        let z4 = self.act(&format!("{p}.attn.hook_z"))?.clone();
        let dz = if self.config.optional_hooks.attn_result {
            let d_result = self.tape.hook(&format!("{p}.attn.hook_result"), forms::result_grad(&g_out, h)?)?;
            let (dz, dw) = forms::heads_backward(&z4, &w.w_o, &d_result)?;
            self.grads.insert(format!("{p}.attn.W_O"), dw);
            self.grads.insert(format!("{p}.attn.b_O"), super::linear::column_sums(g_out.view())?);
            dz
        } else {
            let z = z4.to_shape(IxDyn(&[batch, seq, h * dh])).map_err(shape_err)?.into_owned();
            let w_o = w.w_o.to_shape(IxDyn(&[h * dh, dm])).map_err(shape_err)?.into_owned();
            let lin = linear_backward(z.view(), w_o.view(), g_out.view())?;
            self.grads.insert(format!("{p}.attn.W_O"), reshaped(&lin.dw, &[h, dh, dm])?);
            self.grads.insert(format!("{p}.attn.b_O"), lin.db);
            reshaped(&lin.dx, &[batch, seq, h, dh])?
        };
        let dz = self.tape.hook(&format!("{p}.attn.hook_z"), dz)?;
        let heads_first = |a: &ArrayD<f64>| a.view().permuted_axes(IxDyn(&[0, 2, 1, 3])).as_standard_layout().into_owned();
        let [q, k, v] = ["q", "k", "v"].map(|n| self.act(&format!("{p}.attn.hook_{n}")).map(heads_first));
        let (q, k, v) = (q?, k?, v?);
        let causal = self.config.causal;
        let pattern = self.act(&format!("{p}.attn.hook_pattern"))?;
        let (dpattern, dv) = output_backward(pattern.view(), v.view(), heads_first(&dz).view(), causal)?;
        let dpattern = self.tape.hook(&format!("{p}.attn.hook_pattern"), dpattern)?;
        // The pattern before hook_pattern's interventions: the softmax of the scores it saw.
        let scores = self.act(&format!("{p}.attn.hook_attn_scores"))?;
        let before = if causal { causal_softmax(scores.view()) } else { crate::reference::softmax::softmax(scores.view())? };
        let dscores = softmax_backward(before.view(), dpattern.view())?;
        let dscores = self.tape.hook(&format!("{p}.attn.hook_attn_scores"), dscores)?;
        let (dq, dk) = scores_backward(q.view(), k.view(), dscores.view(), self.config.score_scale(l))?;
        let mut out = Vec::with_capacity(3);
        for ((name, d, w_in, b_name), x) in [("q", dq, &w.w_q, "Q"), ("k", dk, &w.w_k, "K"), ("v", dv, &w.w_v, "V")].into_iter().zip(inputs) {
            let d = heads_first(&d); // [B,H,S,dh] back to [B,S,H,dh]: the same permutation.
            let d = self.tape.hook(&format!("{p}.attn.hook_{name}"), d)?;
            let mut dw = ArrayD::<f64>::zeros(IxDyn(&[h, dm, dh]));
            let mut db = ArrayD::<f64>::zeros(IxDyn(&[h, dh]));
            let mut dx = ArrayD::<f64>::zeros(x.raw_dim());
            let per_head = x.ndim() == 4;
            for head in 0..h {
                let dh_rows = d.slice(ndarray::s![.., .., head, ..]).to_shape((batch * seq, dh)).map_err(shape_err)?.into_owned();
                let rows = match per_head {
                    true => x.slice(ndarray::s![.., .., head, ..]).to_shape((batch * seq, dm)).map_err(shape_err)?.into_owned(),
                    false => x.to_shape((batch * seq, dm)).map_err(shape_err)?.into_owned(),
                };
                let wh = w_in.slice(ndarray::s![head, .., ..]);
                dw.slice_mut(ndarray::s![head, .., ..]).assign(&rows.t().dot(&dh_rows));
                db.slice_mut(ndarray::s![head, ..]).assign(&dh_rows.sum_axis(ndarray::Axis(0)));
                let back = reshaped(&dh_rows.dot(&wh.t()), &[batch, seq, dm])?;
                match per_head {
                    true => dx.slice_mut(ndarray::s![.., .., head, ..]).assign(&back),
                    false => dx += &back,
                }
            }
            self.grads.insert(format!("{p}.attn.W_{b_name}"), dw);
            self.grads.insert(format!("{p}.attn.b_{b_name}"), db);
            out.push(dx);
        }
        out.try_into().map_err(|_| Error::Input("three attention input gradients".into()))
    }
}
