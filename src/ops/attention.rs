//! Attention on the GPU: `pattern = softmax(scale q kᵀ, masked)`, `out = pattern v`, for
//! q \[B,H,Sq,D\], k \[B,H,Sk,D\], v \[B,H,Sk,Dv\], with SPEC's bottom-right causal mask.
//!
//! Two paths, both barrier-free and register-blocked (see the WGSL headers for the tiling):
//! - **unfused**, when the caller wants the pattern: `attention_scores.wgsl` writes the masked
//!   logits into the pattern buffer (4 queries x 8 keys an invocation), `attention_softmax.wgsl`
//!   normalises each row in place (one invocation a row), `attention_pv.wgsl` multiplies by v
//!   (4 queries x 8 value columns an invocation);
//! - **fused**, when it does not: `attention_fused.wgsl` walks the keys once, 8 at a time, with an
//!   online softmax (4 queries and all Dv value columns an invocation, accumulators in a scratch
//!   buffer the size of out) and never stores the Sq x Sk matrix.
//!
//! q, k and v are read as vec4s; a head size that is not a multiple of 4 is first packed into
//! zero-padded rows (`attention_pack.wgsl`). The kernels that walk the keys (softmax, pattern @ v,
//! fused) are dispatched once per segment of keys, because lavapipe and llvmpipe silently stop an
//! invocation after 65535 loop iterations; the state between segments lives in small scratch
//! buffers. Dispatch details live in `kernels.rs`.
//!
//! The pre-softmax scores (TransformerLens's `hook_attn_scores`, `-inf` where masked) are an
//! optional third output: on the unfused path they are a copy of the pattern buffer taken before
//! the softmax, on the fused path one extra scores dispatch.
//!
//! All kernels address q, k, v and out through strides, so [`crate::ops::attention_layer`] runs
//! them directly on TransformerLens's \[B, S, H, dh\] layout. The host twin is
//! [`crate::reference::attention`]; both take their shape check from [`crate::spec::attention`].

pub mod backward_fused;
pub(crate) mod kernels;

use ndarray::{ArrayD, ArrayViewD};

use crate::error::{fmt_shape, Error, Result};
use crate::gpu::Gpu;
use crate::spec::attention::{attention_shapes, AttentionDims};
use crate::tensor::GpuTensor;
use kernels::{record_problem, record_scores, Problem, Strides};

/// The outputs of [`record_outputs_into`]: `out` always, the pattern and the scores on request.
#[derive(Clone, Copy, Debug)]
pub struct Outputs<'a> {
    /// \[B, H, Sq, Dv\], written.
    pub out: &'a GpuTensor,
    /// \[B, H, Sq, Sk\]: `Some` takes the unfused path and writes the pattern; `None` the fused path.
    pub pattern: Option<&'a GpuTensor>,
    /// \[B, H, Sq, Sk\]: the scaled, masked scores before the softmax (`-inf` where masked).
    pub scores: Option<&'a GpuTensor>,
}

/// Records attention into `out`, and into `pattern` when it is `Some` (unfused path); with
/// `pattern` `None` the fused path never materialises the Sq x Sk matrix.
#[allow(clippy::too_many_arguments)]
pub fn record_into(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    q: &GpuTensor,
    k: &GpuTensor,
    v: &GpuTensor,
    causal: bool,
    scale: f32,
    out: &GpuTensor,
    pattern: Option<&GpuTensor>,
) -> Result<()> {
    record_outputs_into(gpu, encoder, q, k, v, causal, scale, Outputs { out, pattern, scores: None })
}

/// [`record_into`] with the pre-softmax scores as an optional extra output.
#[allow(clippy::too_many_arguments)]
pub fn record_outputs_into(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    q: &GpuTensor,
    k: &GpuTensor,
    v: &GpuTensor,
    causal: bool,
    scale: f32,
    outputs: Outputs<'_>,
) -> Result<()> {
    let dims = attention_shapes(q.shape(), k.shape(), v.shape())?;
    let qkv = [q, k, v];
    check_output("out", outputs.out, &dims.out_shape(), qkv)?;
    for (name, t) in [("pattern", outputs.pattern), ("scores", outputs.scores)] {
        if let Some(t) = t {
            check_output(name, t, &dims.pattern_shape(), qkv)?;
        }
    }
    let problem = contiguous_problem(dims, causal, scale, qkv, outputs.out, None);
    record_problem(gpu, encoder, &problem, outputs.pattern, outputs.scores)
}

/// Refuses an output whose shape is not `want`, the one that `q`, `k` and `v` call for, naming
/// all four shapes.
fn check_output(name: &str, t: &GpuTensor, want: &[usize], [q, k, v]: [&GpuTensor; 3]) -> Result<()> {
    if t.shape() == want {
        return Ok(());
    }
    Err(Error::Shape(format!(
        "{name} is {} but q {}, k {} and v {} need {name} {}",
        fmt_shape(t.shape()),
        fmt_shape(q.shape()),
        fmt_shape(k.shape()),
        fmt_shape(v.shape()),
        fmt_shape(want)
    )))
}

/// The [`Problem`] of contiguous \[B, H, S, ·\] tensors `q`, `k`, `v` and `out`.
fn contiguous_problem<'a>(
    dims: AttentionDims,
    causal: bool,
    scale: f32,
    [q, k, v]: [&'a GpuTensor; 3],
    out: &'a GpuTensor,
    row_stats: Option<&'a GpuTensor>,
) -> Problem<'a> {
    let (h, d, dv) = (dims.heads, dims.d, dims.dv);
    Problem {
        dims,
        causal,
        scale,
        q: (q, Strides::bhsc(h, dims.sq, d)),
        k: (k, Strides::bhsc(h, dims.sk, d)),
        v: (v, Strides::bhsc(h, dims.sk, dv)),
        out: (out, Strides::bhsc(h, dims.sq, dv)),
        row_stats,
    }
}

/// The shape of the row statistics that [`record_fused_with_stats`] keeps: \[B, H, ceil(Sq / 4),
/// 2, 4\]. Query `i`'s running maximum of its scaled, masked scores is `[b, h, i / 4, 0, i % 4]`
/// and its sum of `exp(score - max)` is `[b, h, i / 4, 1, i % 4]` (so its log-sum-exp is
/// `max + ln(sum)`; a query that sees no key has sum 0).
pub fn row_stats_shape(dims: &AttentionDims) -> [usize; 5] {
    [dims.batch, dims.heads, dims.sq.div_ceil(4), 2, 4]
}

/// The fused path ([`record_into`] without a pattern) that also keeps every query's softmax
/// statistics in `row_stats` (shape [`row_stats_shape`]), which a backward pass needs to
/// recompute the pattern without storing it. Nothing is written to `row_stats` when Sk or Dv is 0.
#[allow(clippy::too_many_arguments)]
pub fn record_fused_with_stats(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    q: &GpuTensor,
    k: &GpuTensor,
    v: &GpuTensor,
    causal: bool,
    scale: f32,
    out: &GpuTensor,
    row_stats: &GpuTensor,
) -> Result<()> {
    let dims = attention_shapes(q.shape(), k.shape(), v.shape())?;
    let qkv = [q, k, v];
    check_output("out", out, &dims.out_shape(), qkv)?;
    check_output("row_stats", row_stats, &row_stats_shape(&dims), qkv)?;
    let problem = contiguous_problem(dims, causal, scale, qkv, out, Some(row_stats));
    record_problem(gpu, encoder, &problem, None, None)
}

/// Records only the pre-softmax scores `scale q kᵀ` (`-inf` where masked) into `scores`
/// \[B, H, Sq, Sk\].
pub fn record_scores_into(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    q: &GpuTensor,
    k: &GpuTensor,
    causal: bool,
    scale: f32,
    scores: &GpuTensor,
) -> Result<()> {
    let dims = attention_shapes(q.shape(), k.shape(), k.shape())?;
    if scores.shape() != dims.pattern_shape() {
        return Err(Error::Shape(format!(
            "scores is {} but q {} and k {} need scores {}",
            fmt_shape(scores.shape()),
            fmt_shape(q.shape()),
            fmt_shape(k.shape()),
            fmt_shape(&dims.pattern_shape())
        )));
    }
    let (h, d) = (dims.heads, dims.d);
    let strides = Strides::bhsc(h, dims.sk, d);
    let problem = Problem {
        dims,
        causal,
        scale,
        q: (q, Strides::bhsc(h, dims.sq, d)),
        k: (k, strides),
        v: (k, strides),
        out: (scores, Strides::bhsc(h, dims.sq, dims.sk)),
        row_stats: None,
    };
    record_scores(gpu, encoder, &problem, scores)
}

/// Records attention and returns `(out, pattern)`, allocating both; `want_pattern = false` takes
/// the fused path and returns no pattern.
#[allow(clippy::too_many_arguments)]
pub fn record(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    q: &GpuTensor,
    k: &GpuTensor,
    v: &GpuTensor,
    causal: bool,
    scale: f32,
    want_pattern: bool,
) -> Result<(GpuTensor, Option<GpuTensor>)> {
    let dims = attention_shapes(q.shape(), k.shape(), v.shape())?;
    let pattern = want_pattern.then(|| empty_pattern(gpu, &dims, "pattern")).transpose()?;
    let out = GpuTensor::empty(gpu, &dims.out_shape(), "attention out")?;
    record_into(gpu, encoder, q, k, v, causal, scale, &out, pattern.as_ref())?;
    Ok((out, pattern))
}

/// Uploads q, k and v, runs attention and reads back `(out, pattern)` (the pattern only when
/// `want_pattern`; without it the fused path runs).
pub fn run(
    gpu: &Gpu,
    q: ArrayViewD<'_, f32>,
    k: ArrayViewD<'_, f32>,
    v: ArrayViewD<'_, f32>,
    causal: bool,
    scale: f32,
    want_pattern: bool,
) -> Result<(ArrayD<f32>, Option<ArrayD<f32>>)> {
    let dims = attention_shapes(q.shape(), k.shape(), v.shape())?;
    for (name, shape) in [("q", q.shape()), ("k", k.shape()), ("v", v.shape()), ("attention out", &dims.out_shape())] {
        GpuTensor::check_fits(gpu, shape, name)?;
    }
    if want_pattern {
        check_pattern_fits(gpu, &dims, "pattern")?;
    }
    let mut arrays = super::run_many(gpu, |encoder| {
        // Allocate the outputs first, so that a pattern too large for the device fails before
        // any upload.
        let pattern = want_pattern.then(|| empty_pattern(gpu, &dims, "pattern")).transpose()?;
        let out = GpuTensor::empty(gpu, &dims.out_shape(), "attention out")?;
        let (q, k, v) =
            (GpuTensor::upload(gpu, q, "q")?, GpuTensor::upload(gpu, k, "k")?, GpuTensor::upload(gpu, v, "v")?);
        record_into(gpu, encoder, &q, &k, &v, causal, scale, &out, pattern.as_ref())?;
        Ok(std::iter::once(out).chain(pattern).collect())
    })?;
    let pattern = if want_pattern { arrays.pop() } else { None };
    let out = arrays.pop().ok_or_else(|| Error::Gpu("attention returned no output".into()))?;
    Ok((out, pattern))
}

/// Uploads q and k and reads back the pre-softmax scores \[B, H, Sq, Sk\] (`-inf` where masked).
pub fn run_scores(
    gpu: &Gpu,
    q: ArrayViewD<'_, f32>,
    k: ArrayViewD<'_, f32>,
    causal: bool,
    scale: f32,
) -> Result<ArrayD<f32>> {
    let dims = attention_shapes(q.shape(), k.shape(), k.shape())?;
    GpuTensor::check_fits(gpu, q.shape(), "q")?;
    GpuTensor::check_fits(gpu, k.shape(), "k")?;
    check_pattern_fits(gpu, &dims, "scores")?;
    super::run_single(gpu, |encoder| {
        let scores = empty_pattern(gpu, &dims, "scores")?;
        let (q, k) = (GpuTensor::upload(gpu, q, "q")?, GpuTensor::upload(gpu, k, "k")?);
        record_scores_into(gpu, encoder, &q, &k, causal, scale, &scores)?;
        Ok(scores)
    })
}

/// Allocates a \[B, H, Sq, Sk\] tensor; when it exceeds a device limit, says so in terms of the
/// pattern (or scores) and points to the fused path.
pub(crate) fn empty_pattern(gpu: &Gpu, dims: &AttentionDims, name: &str) -> Result<GpuTensor> {
    check_pattern_fits(gpu, dims, name)?;
    GpuTensor::empty(gpu, &dims.pattern_shape(), &format!("attention {name}"))
}

/// Checks, before any GPU work, that a \[B, H, Sq, Sk\] pattern (or scores) tensor fits the
/// device; the error names the limit and points to the fused path.
pub(crate) fn check_pattern_fits(gpu: &Gpu, dims: &AttentionDims, name: &str) -> Result<()> {
    GpuTensor::check_fits(gpu, &dims.pattern_shape(), &format!("attention {name}")).map_err(|e| match e {
        Error::Limit { limit, needed, allowed, .. } => Error::Limit {
            what: format!(
                "the attention {name} {} (B·H·Sq·Sk floats; ask for no pattern and no scores to take the fused \
                 path, which never stores them, or split the batch)",
                fmt_shape(&dims.pattern_shape())
            ),
            limit,
            needed,
            allowed,
        },
        other => other,
    })
}
