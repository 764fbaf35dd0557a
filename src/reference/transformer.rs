//! Host reference for the `transformer` op, in float64: TransformerLens's `HookedTransformer`
//! forward pass with its activation cache and interventions.
//!
//! Written from SPEC's "Transformer" section and TransformerLens 3.9's code, independently of the
//! GPU forward: embedding `W_E[tokens] + W_pos[:S]`; per block an optional LayerNorm (`LN`, or
//! `LNPre` without weights), attention (scores divided by the config's `attn_scale`, times `l + 1`
//! with `scale_attn_by_inverse_layer_idx`; the causal mask unless `attention_dir` is
//! bidirectional), the residual addition, and (unless attention-only) a second LayerNorm, `W_in`,
//! the activation (`gelu_fast` with TransformerLens's own constant),
//! `W_out` and the second addition; the final LayerNorm and the unembedding. Every hook of
//! [`hooks`] passes through one function, which applies the interventions on it and caches it
//! when asked, exactly where the GPU forward does.

use ndarray::{s, ArrayD, ArrayViewD, Axis, Ix2, Ix4, IxDyn};

use crate::error::{Error, Result};
use crate::reference::attention::attention_scores;
use crate::reference::gelu::gelu;
use crate::model::config::{Activation, Config};
use crate::model::hooks::{check_interventions, check_tokens, find, hooks, Cache, Hook, Names};
use crate::model::intervention::{apply_host, Intervention};
use crate::model::weights::Weights;
use crate::spec::attention::visible_keys;

#[path = "transformer_forms.rs"]
pub mod forms;

/// The result of a reference forward pass.
#[derive(Clone, Debug)]
pub struct TransformerRun {
    /// `logits` \[B, S, d_vocab_out\].
    pub logits: ArrayD<f64>,
    /// The activations asked for, in forward order.
    pub cache: Cache<ArrayD<f64>>,
}

/// Runs the model in float64 on `tokens` \[B, S\], caching the hooks `names` picks and applying
/// `interventions` (host patches only).
pub fn forward(
    config: &Config,
    weights: &Weights<ArrayD<f64>>,
    tokens: ArrayViewD<'_, i64>,
    names: &Names,
    interventions: &[Intervention],
) -> Result<TransformerRun> {
    let (batch, seq) = check_tokens(config, tokens.view())?;
    weights.check_shapes(config, |a| a.shape())?;
    names.check(config)?;
    // attn.hook_result on request: computed head by head, as with use_attn_result.
    let config = &*crate::model::hooks::run_config(config, names, interventions);
    let hooks = hooks(config, batch, seq);
    check_interventions(&hooks, interventions)?;
    let mut run = Run { hooks, names, interventions, cache: Cache::default() };
    let dm = config.d_model;
    let shape_err = |e: ndarray::ShapeError| Error::Shape(e.to_string());
    let hooked_tokens;
    let tokens = if config.optional_hooks.tokens {
        hooked_tokens = forms::hook_tokens(&mut run, config, tokens)?;
        hooked_tokens.view()
    } else {
        tokens
    };

    let w_e = weights.w_e.view().into_dimensionality::<Ix2>().map_err(shape_err)?;
    let w_pos = weights.w_pos.view().into_dimensionality::<Ix2>().map_err(shape_err)?;
    let mut embed = super::filled(&[batch, seq, dm], 0.0, "hook_embed")?;
    let mut pos = super::filled(&[batch, seq, dm], 0.0, "hook_pos_embed")?;
    for ((b, t), &token) in tokens.indexed_iter().map(|(i, v)| ((i[0], i[1]), v)) {
        embed.slice_mut(s![b, t, ..]).assign(&w_e.row(token as usize));
        pos.slice_mut(s![b, t, ..]).assign(&w_pos.row(t));
    }
    let embed = run.hook("hook_embed", embed)?;
    let pos = run.hook("hook_pos_embed", pos)?;
    // shortformer: the positions go to the queries' and keys' inputs, not the residual stream.
    let (mut resid, shortformer) = if config.shortformer { (embed, Some(pos)) } else { (embed + pos, None) };

    for (l, block) in weights.blocks.iter().enumerate() {
        let p = format!("blocks.{l}");
        resid = run.hook(&format!("{p}.hook_resid_pre"), resid)?;
        let ln1 = format!("{p}.ln1");
        let inputs = if config.optional_hooks.per_head_inputs() {
            let [q, k, v] = forms::per_head_inputs(&mut run, config, &p, &resid)?;
            let mut norm = |x: &ArrayD<f64>| forms::norm(&mut run, config.block_norm(), config.eps, &ln1, x, block.ln1.as_ref());
            let [q, k, v] = [norm(&q)?, norm(&k)?, norm(&v)?];
            match &shortformer {
                // The positions repeated per head, added to q's and k's inputs.
                Some(pos) => {
                    let pos = forms::repeat_heads(pos, config.n_heads)?;
                    [q + &pos, k + &pos, v]
                }
                None => [q, k, v],
            }
        } else {
            let x = forms::norm(&mut run, config.block_norm(), config.eps, &ln1, &resid, block.ln1.as_ref())?;
            match &shortformer {
                Some(pos) => [&x + pos, &x + pos, x],
                None => [x.clone(), x.clone(), x],
            }
        };
        let attn_out = attention(&mut run, config, l, &inputs, &block.attn)?;
        let attn_out = run.hook(&format!("{p}.hook_attn_out"), attn_out)?;
        let Some(mlp) = &block.mlp else {
            resid = run.hook(&format!("{p}.hook_resid_post"), resid + attn_out)?;
            continue;
        };
        // parallel_attn_mlp: the MLP reads ln2(resid_pre), and resid_pre + attn_out (no hook)
        // takes the MLP's output afterwards.
        let (mid, mlp_in) = if config.parallel_attn_mlp {
            let mlp_in = resid.clone();
            (resid + attn_out, mlp_in)
        } else {
            let mid = run.hook(&format!("{p}.hook_resid_mid"), resid + attn_out)?;
            (mid.clone(), mid)
        };
        let mlp_in = if config.optional_hooks.mlp_in { run.hook(&format!("{p}.hook_mlp_in"), mlp_in)? } else { mlp_in };
        let x = forms::norm(&mut run, config.block_norm(), config.eps, &format!("{p}.ln2"), &mlp_in, block.ln2.as_ref())?;
        let pre = run.hook(&format!("{p}.mlp.hook_pre"), linear(&x, &mlp.w_in, &mlp.b_in)?)?;
        let post = match (config.act_fn, config.act_fn.gelu()) {
            (Activation::Solu | Activation::SoluLn, _) => forms::solu_mlp(&mut run, config, &p, &pre, mlp.ln.as_ref())?,
            (Activation::GeluFast, _) => pre.mapv(gelu_fast),
            (_, Some(kind)) => gelu(kind, pre.view()),
            (_, None) => pre.mapv(|v| v.max(0.0)),
        };
        let post = run.hook(&format!("{p}.mlp.hook_post"), post)?;
        let mlp_out = run.hook(&format!("{p}.hook_mlp_out"), linear(&post, &mlp.w_out, &mlp.b_out)?)?;
        resid = run.hook(&format!("{p}.hook_resid_post"), mid + mlp_out)?;
    }
    let x = forms::norm(&mut run, config.final_norm(), config.eps, "ln_final", &resid, weights.ln_final.as_ref())?;
    let x = run.hook("unembed.hook_in", x)?;
    let logits = run.hook("unembed.hook_out", linear(&x, &weights.w_u, &weights.b_u)?)?;
    Ok(TransformerRun { logits, cache: run.cache })
}

/// The state of one reference run: the hooks, what to cache, what to change.
struct Run<'a> {
    hooks: Vec<Hook>,
    names: &'a Names,
    interventions: &'a [Intervention],
    cache: Cache<ArrayD<f64>>,
}

impl Run<'_> {
    /// Passes activation `a` through hook `name`: interventions first, then the cache.
    fn hook(&mut self, name: &str, mut a: ArrayD<f64>) -> Result<ArrayD<f64>> {
        let hook = find(&self.hooks, name)?;
        for intervention in self.interventions.iter().filter(|i| i.hook == name) {
            apply_host(intervention, hook, &mut a)?;
        }
        if self.names.contains(name) {
            self.cache.push(name, a.clone());
        }
        Ok(a)
    }

    fn intervenes(&self, name: &str) -> bool {
        self.interventions.iter().any(|i| i.hook == name)
    }
}

/// TransformerLens's `gelu_fast`, `0.5 x (1 + tanh(x · 0.7978845608 · (1 + 0.044715 x²)))`, with
/// its constant as written (not `sqrt(2/pi)`), in the tail-safe form of
/// [`crate::reference::gelu::gelu_tanh`].
fn gelu_fast(x: f64) -> f64 {
    let u = x * 0.7978845608 * (1.0 + 0.044715 * x * x);
    x / (1.0 + (-2.0 * u).exp())
}

/// The attention of block `layer` from the (normalised) inputs of q, k and v (\[B, S, d_model\],
/// or \[B, S, H, d_model\] per head) to z, then `z W_O + b_O`, through every attention hook.
fn attention(
    run: &mut Run<'_>,
    config: &Config,
    layer: usize,
    inputs: &[ArrayD<f64>; 3],
    w: &crate::reference::attention_layer::AttentionWeights<ArrayD<f64>>,
) -> Result<ArrayD<f64>> {
    let shape_err = |e: ndarray::ShapeError| Error::Shape(e.to_string());
    let prefix = format!("blocks.{layer}");
    let (batch, seq, dm) = (inputs[0].shape()[0], inputs[0].shape()[1], config.d_model);
    let (heads, d_head) = (config.n_heads, config.d_head);
    let project = |x: &ArrayD<f64>, w: &ArrayD<f64>, b: &ArrayD<f64>| -> Result<ArrayD<f64>> {
        if x.ndim() == 4 {
            return forms::project_heads(x, w, Some(b));
        }
        let rows = x.to_shape((batch * seq, dm)).map_err(shape_err)?;
        let out = super::filled(&[batch, seq, heads, d_head], 0.0, "hook_q, hook_k or hook_v")?;
        let mut out = out.into_dimensionality::<Ix4>().map_err(shape_err)?;
        for h in 0..heads {
            let wh = w.slice(s![h, .., ..]).into_dimensionality::<Ix2>().map_err(shape_err)?;
            let y = rows.dot(&wh) + b.slice(s![h, ..]);
            out.slice_mut(s![.., .., h, ..]).assign(&y.to_shape((batch, seq, d_head)).map_err(shape_err)?);
        }
        Ok(out.into_dyn())
    };
    let q = run.hook(&format!("{prefix}.attn.hook_q"), project(&inputs[0], &w.w_q, &w.b_q)?)?;
    let k = run.hook(&format!("{prefix}.attn.hook_k"), project(&inputs[1], &w.w_k, &w.b_k)?)?;
    let v = run.hook(&format!("{prefix}.attn.hook_v"), project(&inputs[2], &w.w_v, &w.b_v)?)?;
    let scale = config.score_scale(layer);
    let scores = attention_scores(by_head(&q), by_head(&k), by_head(&v), config.causal, scale)?;
    let scores = run.hook(&format!("{prefix}.attn.hook_attn_scores"), scores)?;
    let pattern = run.hook(&format!("{prefix}.attn.hook_pattern"), masked_softmax(&scores, config.causal))?;
    let pattern4 = pattern.view().into_dimensionality::<Ix4>().map_err(shape_err)?;
    let v4 = v.view().into_dimensionality::<Ix4>().map_err(shape_err)?;
    let z = super::filled(&[batch, seq, heads, d_head], 0.0, "hook_z")?;
    let mut z = z.into_dimensionality::<Ix4>().map_err(shape_err)?;
    for b in 0..batch {
        for h in 0..heads {
            for i in 0..seq {
                // Keys past the query stay masked whatever an intervention wrote there.
                let seen = visible_keys(config.causal, seq, seq, i);
                let p = pattern4.slice(s![b, h, i, ..seen]);
                z.slice_mut(s![b, i, h, ..]).assign(&p.dot(&v4.slice(s![b, ..seen, h, ..])));
            }
        }
    }
    let z = run.hook(&format!("{prefix}.attn.hook_z"), z.into_dyn())?;
    if config.optional_hooks.attn_result {
        return forms::attn_result(run, &prefix, &z, &w.w_o, &w.b_o);
    }
    let z_rows = z.to_shape((batch * seq, heads * d_head)).map_err(shape_err)?;
    let w_o = w.w_o.to_shape((heads * d_head, dm)).map_err(shape_err)?;
    let out = z_rows.dot(&w_o) + &w.b_o;
    out.into_shape_with_order(IxDyn(&[batch, seq, dm])).map_err(shape_err)
}

/// q, k or v \[B, S, H, d_head\] viewed heads first, \[B, H, S, d_head\].
fn by_head(a: &ArrayD<f64>) -> ArrayViewD<'_, f64> {
    a.view().permuted_axes(IxDyn(&[0, 2, 1, 3]))
}

/// The softmax of scores \[B, H, S, S\] over the keys each query sees (`j <= i` when `causal`,
/// all of them otherwise), shifted by the row maximum; masked keys get 0, and so does a row whose
/// visible scores are all `-inf` (as TransformerLens turns its NaN into 0).
fn masked_softmax(scores: &ArrayD<f64>, causal: bool) -> ArrayD<f64> {
    let mut pattern = scores.clone();
    let seq = scores.shape()[2];
    for (n, mut row) in pattern.lanes_mut(Axis(3)).into_iter().enumerate() {
        let seen = visible_keys(causal, seq, seq, n % seq);
        let max = row.slice(s![..seen]).fold(f64::NEG_INFINITY, |m, &v| m.max(v));
        if max == f64::NEG_INFINITY {
            row.fill(0.0);
            continue;
        }
        row.slice_mut(s![..seen]).mapv_inplace(|v| (v - max).exp());
        let sum = row.slice(s![..seen]).sum();
        row.slice_mut(s![..seen]).mapv_inplace(|v| v / sum);
        row.slice_mut(s![seen..]).fill(0.0);
    }
    pattern
}

/// `x [..., n] @ w [n, m] + b [m]`.
fn linear(x: &ArrayD<f64>, w: &ArrayD<f64>, b: &ArrayD<f64>) -> Result<ArrayD<f64>> {
    let shape_err = |e: ndarray::ShapeError| Error::Shape(e.to_string());
    let n = x.shape().last().copied().unwrap_or(1);
    let rows = x.len() / n.max(1);
    let w2 = w.view().into_dimensionality::<Ix2>().map_err(shape_err)?;
    let y = x.to_shape((rows, n)).map_err(shape_err)?.dot(&w2) + b;
    let mut shape = x.shape().to_vec();
    if let Some(last) = shape.last_mut() {
        *last = w2.ncols();
    }
    y.into_shape_with_order(IxDyn(&shape)).map_err(shape_err)
}
