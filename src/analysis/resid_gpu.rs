//! The residual-stream readings of [`super::resid`] for one batch of tokens, from the GPU's
//! forward cache ([`Readings::gpu`]) or from the float64 reference forward ([`Readings::reference`]).
//!
//! On the GPU: one forward pass caches the hooks [`super::resid::needed_hooks`] names; the head
//! results are one batched matmul (`z` as \[H, B·S, d_head\] times `W_O` \[H, d_head, d_model\]);
//! the logit lens is the layer-norm kernel over every accumulated residual (its own statistics)
//! and one matmul with `W_U`; direct logit attribution is one batched matmul of the (normalised)
//! stack with each row's unembedding direction. Only the stacking, the centring and the division
//! by `ln_final.hook_scale` (elementwise, O(size of the stack)) run on the host, in float64.
//! An RMS final norm runs the model's own RMS-norm kernel (no centring, `w` when it has one).

use ndarray::{ArrayD, Axis, IxDyn};

use super::resid::{self, Stack};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::tensor::GpuTensor;
use crate::transformer::{Cache, Config, Model, Names, Weights};

/// Everything `analyze lens` and `analyze dla` read from one forward pass.
#[derive(Clone, Debug)]
pub struct Readings {
    /// [`resid::accumulated_resid`].
    pub accumulated: Stack,
    /// The accumulated residual through the final norm, each with its own statistics
    /// (TransformerLens 3.9's `accumulated_resid(apply_ln=True)`, [`resid::final_norm`]).
    pub accumulated_ln: Stack,
    /// [`resid::decompose_resid`].
    pub decomposed: Stack,
    /// [`resid::stack_head_results`].
    pub heads: Stack,
    /// [`resid::logit_lens`] \[L + 1, B, S, d_vocab_out\].
    pub logit_lens: ArrayD<f64>,
    /// The cache the readings came from (float64), for [`resid::apply_ln_to_stack`].
    pub cache: Cache<ArrayD<f64>>,
}

impl Readings {
    /// The float64 twin: the reference forward's cache, the readings computed on the host.
    pub fn reference(config: &Config, weights: &Weights<ArrayD<f64>>, tokens: &ArrayD<i64>) -> Result<Self> {
        resid::check_config(config)?;
        let names = Names::only(resid::needed_hooks(config));
        let run = crate::reference::transformer::forward(config, weights, tokens.view(), &names, &[])?;
        let cache = run.cache;
        let accumulated = resid::accumulated_resid(config, &cache)?;
        let accumulated_ln = Stack { labels: accumulated.labels.clone(), values: resid::final_norm(config, weights, &accumulated.values)? };
        Ok(Readings {
            accumulated,
            accumulated_ln,
            decomposed: resid::decompose_resid(config, &cache)?,
            heads: resid::stack_head_results(config, weights, &cache)?,
            logit_lens: resid::logit_lens(config, weights, &cache)?,
            cache,
        })
    }

    /// The readings from the GPU's forward cache, the products on the GPU (module header).
    pub fn gpu(gpu: &Gpu, model: &Model, tokens: &ArrayD<i64>) -> Result<Self> {
        let config = model.config();
        resid::check_config(config)?;
        let run = model.run_with_cache(gpu, tokens.view(), Names::only(resid::needed_hooks(config)))?;
        let mut cache = Cache::default();
        for (name, a) in run.cache.iter() {
            cache.push(name, a.mapv(f64::from));
        }
        let weights = model.weights();
        let w_u = weights.w_u.read(gpu)?;
        let accumulated = resid::accumulated_resid(config, &cache)?;
        let mut heads = Vec::new();
        for (l, block) in weights.blocks.iter().enumerate() {
            let z = run.cache.get(&format!("blocks.{l}.attn.hook_z")).ok_or_else(|| Error::Gpu(format!("the forward did not cache blocks.{l}.attn.hook_z")))?;
            heads.push(head_results(gpu, z, &block.attn.w_o.read(gpu)?)?);
        }
        let labels = (0..config.n_layers).flat_map(|l| (0..config.n_heads).map(move |h| format!("L{l}H{h}"))).collect();
        let views: Vec<_> = heads.iter().map(|a| a.view()).collect();
        let heads = ndarray::concatenate(Axis(0), &views).map_err(|e| Error::Shape(e.to_string()))?;
        let (normed, logit_lens) = lens_gpu(gpu, config, weights, &accumulated.values.mapv(|v| v as f32), &w_u)?;
        Ok(Readings {
            accumulated_ln: Stack { labels: accumulated.labels.clone(), values: normed },
            decomposed: resid::decompose_resid(config, &cache)?,
            heads: Stack { labels, values: heads },
            logit_lens,
            accumulated,
            cache,
        })
    }
}

fn shape_err(e: ndarray::ShapeError) -> Error {
    Error::Shape(e.to_string())
}

/// `z` \[B, S, H, dh\] times `W_O` \[H, dh, dm\] per head, on the GPU: \[H, B, S, dm\] (float64).
fn head_results(gpu: &Gpu, z: &ArrayD<f32>, w_o: &ArrayD<f32>) -> Result<ArrayD<f64>> {
    let &[b, s, h, dh] = z.shape() else {
        return Err(Error::Shape(format!("hook_z is {:?} but must be [B, S, H, d_head]", z.shape())));
    };
    let per_head = z.view().permuted_axes(IxDyn(&[2, 0, 1, 3])).as_standard_layout().into_owned();
    let per_head = per_head.into_shape_with_order(IxDyn(&[h, b * s, dh])).map_err(shape_err)?;
    let out = crate::ops::matmul::run(gpu, per_head.view(), w_o.view())?;
    let dm = w_o.shape()[2];
    Ok(out.into_shape_with_order(IxDyn(&[h, b, s, dm])).map_err(shape_err)?.mapv(f64::from))
}

/// Every accumulated residual \[L+1, B, S, d\] through the final norm (layer-norm kernel) and
/// `W_U` (matmul kernel), plus `b_U` on the host: the normalised stack and the logits
/// \[L+1, B, S, V\].
fn lens_gpu(gpu: &Gpu, config: &Config, weights: &Weights<GpuTensor>, acc: &ArrayD<f32>, w_u: &ArrayD<f32>) -> Result<(ArrayD<f64>, ArrayD<f64>)> {
    let normed = match &weights.ln_final {
        _ if config.final_norm().is_some_and(|f| f.rms) => rms_gpu(gpu, acc, weights.ln_final.as_ref().map(|ln| &ln.w), config.eps as f32)?,
        Some(ln) => {
            let w = ln.w.read(gpu)?;
            let b = match &ln.b {
                Some(b) => b.read(gpu)?,
                None => ArrayD::zeros(w.raw_dim()),
            };
            crate::ops::layer_norm::run(gpu, acc.view(), w.view(), b.view(), config.eps as f32)?
        }
        None if config.has_ln() => crate::ops::layer_norm::run_full(gpu, acc.view(), None, config.eps as f32)?.0,
        None => acc.clone(),
    };
    let sh = normed.shape().to_vec();
    let wide = normed.mapv(f64::from);
    let flat = normed.into_shape_with_order(IxDyn(&[sh[0] * sh[1] * sh[2], sh[3]])).map_err(shape_err)?;
    let logits = crate::ops::matmul::run(gpu, flat.view(), w_u.view())?.mapv(f64::from);
    let b_u = weights.b_u.read(gpu)?.mapv(f64::from);
    let logits = logits + &b_u;
    Ok((wide, logits.into_shape_with_order(IxDyn(&[sh[0], sh[1], sh[2], config.d_vocab_out])).map_err(shape_err)?))
}

/// TransformerLens's RMS norm of every row of `acc` (its own scale), times `w` when given, with
/// the forward pass's kernel.
fn rms_gpu(gpu: &Gpu, acc: &ArrayD<f32>, w: Option<&GpuTensor>, eps: f32) -> Result<ArrayD<f32>> {
    GpuTensor::check_fits(gpu, acc.shape(), "the accumulated residual")?;
    let mut out = crate::ops::run_many(gpu, |encoder| {
        let x = GpuTensor::upload(gpu, acc.view(), "accumulated residual")?;
        let out = GpuTensor::empty(gpu, acc.shape(), "rms final norm out")?;
        crate::transformer::variant_kernels::rms_norm(gpu, encoder, &x, w, eps, &out, None)?;
        Ok(vec![out])
    })?;
    out.pop().ok_or_else(|| Error::Gpu("the RMS norm read back nothing".into()))
}

/// [`resid::logit_attrs`] on the GPU: the stack \[C, B, S, d\] as \[B, C·S, d\] times each
/// row's direction \[B, d, 1\] in one batched matmul; \[C, B, S\] (float64).
pub fn logit_attrs_gpu(gpu: &Gpu, stack: &Stack, w_u: &ArrayD<f64>, answer: &[usize], wrong: Option<&[usize]>) -> Result<ArrayD<f64>> {
    let sh = stack.values.shape().to_vec();
    // The reference checks every shape and token; its cost is that of the product itself.
    let _ = resid::logit_attrs(&Stack { labels: vec![], values: stack.values.slice_axis(Axis(0), (0..0).into()).to_owned() }, w_u, answer, wrong)?;
    let (c, b, s, d) = (sh[0], sh[1], sh[2], sh[3]);
    let rows = stack.values.view().permuted_axes(IxDyn(&[1, 0, 2, 3])).mapv(|v| v as f32);
    let rows = rows.as_standard_layout().into_owned().into_shape_with_order(IxDyn(&[b, c * s, d])).map_err(shape_err)?;
    let mut dirs = ArrayD::<f32>::zeros(IxDyn(&[b, d, 1]));
    for (r, &a) in answer.iter().enumerate() {
        for k in 0..d {
            let wrong_part = wrong.map_or(0.0, |w| w_u[[k, w[r]]]);
            dirs[[r, k, 0]] = (w_u[[k, a]] - wrong_part) as f32;
        }
    }
    let out = crate::ops::matmul::run(gpu, rows.view(), dirs.view())?;
    let out = out.into_shape_with_order(IxDyn(&[b, c, s])).map_err(shape_err)?;
    Ok(out.permuted_axes(IxDyn(&[1, 0, 2])).as_standard_layout().mapv(f64::from))
}
