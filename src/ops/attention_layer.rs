//! TransformerLens's attention layer on the GPU: x \[B,S,d_model\] → out \[B,S,d_model\] and
//! pattern \[B,H,S,S\], with the intermediates a TransformerLens cache holds (q, k, v and z
//! \[B,S,H,d_head\], attn_scores \[B,H,S,S\]) on request.
//!
//! All recorded into the caller's encoder, every projection on the one autotuned matmul
//! ([`crate::ops::matmul::record_gemm`], bias fused) as in the model ([`crate::transformer`]):
//! 1. q, k and v: each of `W_Q`, `W_K`, `W_V` \[H, d_model, d_head\] is packed on the GPU as
//!    \[d_model, H·d_head\] (an axis swap, into one scratch buffer reused by the three), so that
//!    x \[B·S, d_model\] times it, plus the bias viewed as \[H·d_head\], is already
//!    TransformerLens's \[B,S,H,d_head\] layout;
//! 2. causal attention with scale `1/sqrt(d_head)` ([`crate::ops::attention`]'s kernels, which
//!    read that layout through strides): unfused when the pattern or the scores are wanted, fused
//!    otherwise; z comes out in \[B,S,H,d_head\];
//! 3. the output projection: z viewed as \[B·S, H·d_head\] times W_O viewed as
//!    \[H·d_head, d_model\] (no copy), plus b_O, which is exactly `Σ_h z_h W_O[h] + b_O`.
//!
//! The host twin is
//! [`crate::reference::attention_layer`]; both take their shape check from [`crate::spec::attention_layer`].

use ndarray::{ArrayD, ArrayViewD};

use crate::error::{fmt_shape, Error, Result};
use crate::gpu::Gpu;
use crate::ops::attention::{check_pattern_fits, empty_pattern};
use crate::ops::attention::kernels::{record_problem, Problem, Strides};
use crate::ops::backward::permute::swap_axes;
use crate::ops::matmul::{record_gemm, Gemm};
use crate::spec::attention::AttentionDims;
use crate::spec::attention_layer::{attention_layer_shapes, AttentionWeights, LayerDims};
use crate::tensor::GpuTensor;

/// Which of the layer's intermediates to compute and return besides `out`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Request {
    /// `hook_pattern` \[B,H,S,S\]; without it (and without `attn_scores`) the fused path runs.
    pub pattern: bool,
    /// `hook_q` \[B,S,H,d_head\].
    pub q: bool,
    /// `hook_k` \[B,S,H,d_head\].
    pub k: bool,
    /// `hook_v` \[B,S,H,d_head\].
    pub v: bool,
    /// `hook_attn_scores` \[B,H,S,S\], `-inf` where masked.
    pub attn_scores: bool,
    /// `hook_z` \[B,S,H,d_head\].
    pub z: bool,
}

impl Request {
    /// `out` and the pattern: SPEC's outputs for `attention_layer`.
    pub fn pattern() -> Self {
        Self { pattern: true, ..Self::default() }
    }

    /// Every intermediate (what a TransformerLens cache holds).
    pub fn all() -> Self {
        Self { pattern: true, q: true, k: true, v: true, attn_scores: true, z: true }
    }
}

/// The layer's outputs: `out` always, each intermediate when it was requested.
#[derive(Clone, Debug)]
pub struct LayerOutputs<T> {
    /// \[B,S,d_model\].
    pub out: T,
    /// \[B,H,S,S\].
    pub pattern: Option<T>,
    /// \[B,S,H,d_head\].
    pub q: Option<T>,
    /// \[B,S,H,d_head\].
    pub k: Option<T>,
    /// \[B,S,H,d_head\].
    pub v: Option<T>,
    /// \[B,H,S,S\], `-inf` where masked.
    pub attn_scores: Option<T>,
    /// \[B,S,H,d_head\].
    pub z: Option<T>,
}

impl<T> LayerOutputs<T> {
    /// Every present tensor in field order.
    fn into_vec(self) -> Vec<T> {
        std::iter::once(self.out)
            .chain(self.pattern)
            .chain(self.q)
            .chain(self.k)
            .chain(self.v)
            .chain(self.attn_scores)
            .chain(self.z)
            .collect()
    }

    /// Rebuilds from [`LayerOutputs::into_vec`]'s order, given which fields are present.
    fn from_vec(request: Request, items: Vec<T>) -> Result<Self> {
        let mut items = items.into_iter();
        let mut take = |present: bool| if present { items.next() } else { None };
        let out = take(true).ok_or_else(|| Error::Gpu("attention_layer returned no output".into()))?;
        Ok(Self {
            out,
            pattern: take(request.pattern),
            q: take(request.q),
            k: take(request.k),
            v: take(request.v),
            attn_scores: take(request.attn_scores),
            z: take(request.z),
        })
    }
}

/// Records the layer into `out` \[B,S,d_model\], and the pattern into `pattern` when it is `Some`
/// (with `None` the fused attention path runs). q, k, v and z are temporaries.
pub fn record_into(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    x: &GpuTensor,
    weights: &AttentionWeights<&GpuTensor>,
    out: &GpuTensor,
    pattern: Option<&GpuTensor>,
) -> Result<()> {
    let dims = check(x, weights, out, pattern)?;
    let [q, k, v, z] = intermediates(gpu, &dims)?;
    record_layer(gpu, encoder, x, weights, &dims, [&q, &k, &v, &z], out, pattern, None)
}

/// Records the layer and returns `out` and the requested intermediates, all allocated here.
pub fn record(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    x: &GpuTensor,
    weights: &AttentionWeights<&GpuTensor>,
    request: Request,
) -> Result<LayerOutputs<GpuTensor>> {
    let dims = attention_layer_shapes(x.shape(), &weights.map(|_, t| t.shape()))?;
    let attention = attention_dims(&dims);
    let pattern = request.pattern.then(|| empty_pattern(gpu, &attention, "pattern")).transpose()?;
    let scores = request.attn_scores.then(|| empty_pattern(gpu, &attention, "scores")).transpose()?;
    let out = GpuTensor::empty(gpu, &[dims.batch, dims.seq, dims.d_model], "attention_layer out")?;
    let [q, k, v, z] = intermediates(gpu, &dims)?;
    record_layer(gpu, encoder, x, weights, &dims, [&q, &k, &v, &z], &out, pattern.as_ref(), scores.as_ref())?;
    Ok(LayerOutputs {
        out,
        pattern,
        q: request.q.then_some(q),
        k: request.k.then_some(k),
        v: request.v.then_some(v),
        attn_scores: scores,
        z: request.z.then_some(z),
    })
}

/// Uploads x and the weights, runs the layer and reads back `out` and the requested
/// intermediates.
pub fn run(
    gpu: &Gpu,
    x: ArrayViewD<'_, f32>,
    weights: &AttentionWeights<ArrayViewD<'_, f32>>,
    request: Request,
) -> Result<LayerOutputs<ArrayD<f32>>> {
    let dims = attention_layer_shapes(x.shape(), &weights.map(|_, a| a.shape()))?;
    GpuTensor::check_fits(gpu, x.shape(), "x")?;
    weights.try_map(|name, a| GpuTensor::check_fits(gpu, a.shape(), name))?;
    let per_head = [dims.batch, dims.seq, dims.heads, dims.d_head];
    GpuTensor::check_fits(gpu, &per_head, "attention_layer q, k, v and z")?;
    GpuTensor::check_fits(gpu, &[dims.batch, dims.seq, dims.d_model], "attention_layer out")?;
    for (wanted, name) in [(request.pattern, "pattern"), (request.attn_scores, "scores")] {
        if wanted {
            check_pattern_fits(gpu, &attention_dims(&dims), name)?;
        }
    }
    let arrays = super::run_many(gpu, |encoder| {
        let x = GpuTensor::upload(gpu, x.view(), "x")?;
        let weights = weights.try_map(|name, a| GpuTensor::upload(gpu, a.view(), name))?;
        Ok(record(gpu, encoder, &x, &weights.map(|_, t| t), request)?.into_vec())
    })?;
    LayerOutputs::from_vec(request, arrays)
}

/// Checks x, the weights and the caller's outputs, and returns the sizes.
fn check(
    x: &GpuTensor,
    weights: &AttentionWeights<&GpuTensor>,
    out: &GpuTensor,
    pattern: Option<&GpuTensor>,
) -> Result<LayerDims> {
    let dims = attention_layer_shapes(x.shape(), &weights.map(|_, t| t.shape()))?;
    let outputs = [
        ("out", Some(out), vec![dims.batch, dims.seq, dims.d_model]),
        ("pattern", pattern, attention_dims(&dims).pattern_shape().to_vec()),
    ];
    for (name, tensor, want) in outputs {
        if let Some(t) = tensor.filter(|t| t.shape() != want.as_slice()) {
            return Err(Error::Shape(format!(
                "{name} is {} but x {} and W_Q {} need {name} {}",
                fmt_shape(t.shape()),
                fmt_shape(x.shape()),
                fmt_shape(weights.w_q.shape()),
                fmt_shape(&want)
            )));
        }
    }
    Ok(dims)
}

/// The attention inside the layer: S queries and S keys per head, head size d_head.
fn attention_dims(dims: &LayerDims) -> AttentionDims {
    AttentionDims { batch: dims.batch, heads: dims.heads, sq: dims.seq, sk: dims.seq, d: dims.d_head, dv: dims.d_head }
}

/// q, k, v and z, each \[B,S,H,d_head\].
fn intermediates(gpu: &Gpu, dims: &LayerDims) -> Result<[GpuTensor; 4]> {
    let shape = [dims.batch, dims.seq, dims.heads, dims.d_head];
    Ok([
        GpuTensor::empty(gpu, &shape, "attention_layer q")?,
        GpuTensor::empty(gpu, &shape, "attention_layer k")?,
        GpuTensor::empty(gpu, &shape, "attention_layer v")?,
        GpuTensor::empty(gpu, &shape, "attention_layer z")?,
    ])
}

/// Records the projections, the attention and the output projection.
#[allow(clippy::too_many_arguments)]
fn record_layer(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    x: &GpuTensor,
    w: &AttentionWeights<&GpuTensor>,
    dims: &LayerDims,
    [q, k, v, z]: [&GpuTensor; 4],
    out: &GpuTensor,
    pattern: Option<&GpuTensor>,
    scores: Option<&GpuTensor>,
) -> Result<()> {
    let LayerDims { batch, seq, d_model, heads, d_head } = *dims;
    let (rows, cols) = (batch * seq, heads * d_head);
    if rows == 0 {
        // No query: every output (out, pattern, scores, q, k, v, z) is empty.
        return Ok(());
    }
    let x_rows = x.reshaped(&[rows, d_model])?;
    let packed = GpuTensor::empty(gpu, &[d_model, cols], "attention_layer packed W")?;
    let projections = if cols > 0 { vec![(w.w_q, w.b_q, q), (w.w_k, w.b_k, k), (w.w_v, w.b_v, v)] } else { Vec::new() };
    for (weight, bias, target) in projections {
        swap_axes(gpu, encoder, weight, [1, heads, d_model, d_head], 1.0, &packed, false)?;
        let bias = bias.reshaped(&[cols])?;
        let gemm = Gemm { bias: Some(&bias), ..Gemm::default() };
        record_gemm(gpu, encoder, &x_rows, &packed, &target.reshaped(&[rows, cols])?, &gemm)?;
    }
    let strides = Strides::bshc(heads, seq, d_head);
    let problem = Problem {
        dims: attention_dims(dims),
        causal: true,
        scale: dims.scale() as f32,
        q: (q, strides),
        k: (k, strides),
        v: (v, strides),
        out: (z, strides),
        row_stats: None,
    };
    record_problem(gpu, encoder, &problem, pattern, scores)?;
    let gemm = Gemm { bias: Some(w.b_o), ..Gemm::default() };
    record_gemm(gpu, encoder, &z.reshaped(&[rows, cols])?, &w.w_o.reshaped(&[cols, d_model])?, &out.reshaped(&[rows, d_model])?, &gemm)
}
