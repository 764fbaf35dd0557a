//! The fused (FlashAttention-2 style) backward of attention: given q, k, v, the forward's `out`
//! and row statistics (from [`super::record_fused_with_stats`]) and `d_out`, records dq, dk and dv
//! without ever storing an Sq x Sk matrix. The model uses it when no gradient of the pattern or
//! the scores is asked for; the pattern path's backward lives elsewhere.
//!
//! Three kernels (see `shaders/attention_backward_fused_common.wgsl` for the math):
//! - `attention_backward_fused_prep`: each query's log-sum-exp from the row statistics and
//!   `delta = dO · O`;
//! - `attention_backward_fused_kv`: 4 keys an invocation, walking the queries that see them 8 at
//!   a time, accumulating dk and dv;
//! - `attention_backward_fused_q`: 4 queries an invocation, walking the keys they see 8 at a
//!   time, accumulating dq.
//!
//! Every sum has one owner and a fixed order (no float atomics), so two runs give the same bits.
//! The walks are dispatched in segments (lavapipe and llvmpipe stop an invocation after 65535
//! loop iterations), with the accumulators in scratch buffers the size of the gradients. The
//! masking is the forward's: bottom-right causal, and a query that sees no key contributes
//! nothing (its dq is 0); any scale works, 0 included.
//!
//! Layouts: [`record_into`] takes contiguous \[B, H, S, ·\] tensors. For the model,
//! [`record_bshd_into`] takes TransformerLens's \[B, S, H, dh\] tensors (`hook_q`, `hook_k`,
//! `hook_v`, `hook_z` and their gradients) with no transpose, and [`record_bshd_forward`] runs the
//! fused forward on that layout keeping the row statistics it needs. A model backward that wants
//! no `hook_pattern`/`hook_attn_scores` gradient calls, per layer:
//!
//! ```text
//! forward:  record_bshd_forward(gpu, enc, q, k, v, causal, scale, z, stats)     // stats: row_stats_shape
//! backward: record_bshd_into(gpu, enc, Saved { q, k, v, out: z, row_stats: stats }, dz,
//!                            causal, scale, Grads { dq, dk, dv })              // all [B,S,H,dh]
//! ```
//!
//! (`block.rs` can equally keep the statistics by setting `row_stats: Some(stats)` in the
//! `Problem` it already builds.) `out` must be what the attention itself wrote, z before any
//! `hook_z` intervention, because `delta = dO · O` stands for `Σ_j p_ij dO_i · v_j`.
//!
//! Shapes and layouts are checked here; the dispatch lives in `backward_fused/dispatch.rs`.

mod dispatch;

use ndarray::{ArrayD, ArrayViewD};

use super::kernels::{record_problem, Problem, Strides};
use super::row_stats_shape;
use crate::error::{fmt_shape, Error, Result};
use crate::gpu::Gpu;
use crate::spec::attention::{attention_shapes, AttentionDims};
use crate::tensor::GpuTensor;
use dispatch::record_layout;

pub(crate) use dispatch::LAYOUTS;

/// What the backward reads from the forward: its inputs, its output and its row statistics.
#[derive(Clone, Copy, Debug)]
pub struct Saved<'a> {
    /// The queries.
    pub q: &'a GpuTensor,
    /// The keys.
    pub k: &'a GpuTensor,
    /// The values.
    pub v: &'a GpuTensor,
    /// The forward's output (`hook_z` in the model).
    pub out: &'a GpuTensor,
    /// \[B, H, ceil(Sq / 4), 2, 4\] ([`super::row_stats_shape`]), as the fused forward kept them.
    pub row_stats: &'a GpuTensor,
}

/// Where the gradients go (each the shape of its input; all written).
#[derive(Clone, Copy, Debug)]
pub struct Grads<'a> {
    /// d/dq.
    pub dq: &'a GpuTensor,
    /// d/dk.
    pub dk: &'a GpuTensor,
    /// d/dv.
    pub dv: &'a GpuTensor,
}

/// Records the backward for contiguous q \[B,H,Sq,D\], k \[B,H,Sk,D\], v \[B,H,Sk,Dv\], out and
/// `d_out` \[B,H,Sq,Dv\] into `grads`.
pub fn record_into(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    saved: Saved<'_>,
    d_out: &GpuTensor,
    causal: bool,
    scale: f32,
    grads: Grads<'_>,
) -> Result<()> {
    let dims = check(&saved, d_out, &grads, |s| s.to_vec(), "[B, H, S, ·]")?;
    let (h, sq, sk) = (dims.heads, dims.sq, dims.sk);
    let (qs, ks, vs, os) =
        (Strides::bhsc(h, sq, dims.d), Strides::bhsc(h, sk, dims.d), Strides::bhsc(h, sk, dims.dv), Strides::bhsc(h, sq, dims.dv));
    record_layout(gpu, encoder, dims, causal, scale, &saved, d_out, &grads, [qs, ks, vs, os])
}

/// [`record_into`] for TransformerLens's layout: q \[B,Sq,H,D\], k \[B,Sk,H,D\], v \[B,Sk,H,Dv\],
/// out (`hook_z`) and `d_out` \[B,Sq,H,Dv\], gradients likewise; the row statistics as the fused
/// forward on this layout ([`record_bshd_forward`]) kept them.
pub fn record_bshd_into(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    saved: Saved<'_>,
    d_out: &GpuTensor,
    causal: bool,
    scale: f32,
    grads: Grads<'_>,
) -> Result<()> {
    let dims = check(&saved, d_out, &grads, heads_first, "[B, S, H, ·]")?;
    let (h, sq, sk) = (dims.heads, dims.sq, dims.sk);
    let (qs, ks, vs, os) =
        (Strides::bshc(h, sq, dims.d), Strides::bshc(h, sk, dims.d), Strides::bshc(h, sk, dims.dv), Strides::bshc(h, sq, dims.dv));
    record_layout(gpu, encoder, dims, causal, scale, &saved, d_out, &grads, [qs, ks, vs, os])
}

/// The fused forward on TransformerLens's layout (q \[B,Sq,H,D\], k \[B,Sk,H,D\], v \[B,Sk,H,Dv\],
/// `z` \[B,Sq,H,Dv\]) that keeps the row statistics \[B, H, ceil(Sq / 4), 2, 4\] that
/// [`record_bshd_into`] needs.
#[allow(clippy::too_many_arguments)]
pub fn record_bshd_forward(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    q: &GpuTensor,
    k: &GpuTensor,
    v: &GpuTensor,
    causal: bool,
    scale: f32,
    z: &GpuTensor,
    row_stats: &GpuTensor,
) -> Result<()> {
    let dims = attention_shapes(&heads_first(q.shape()), &heads_first(k.shape()), &heads_first(v.shape()))?;
    expect("z", z, &heads_first(&dims.out_shape()), "q, k and v [B, S, H, ·]")?;
    expect("row_stats", row_stats, &row_stats_shape(&dims), "q, k and v [B, S, H, ·]")?;
    let (h, sq, sk) = (dims.heads, dims.sq, dims.sk);
    let problem = Problem {
        dims,
        causal,
        scale,
        q: (q, Strides::bshc(h, sq, dims.d)),
        k: (k, Strides::bshc(h, sk, dims.d)),
        v: (v, Strides::bshc(h, sk, dims.dv)),
        out: (z, Strides::bshc(h, sq, dims.dv)),
        row_stats: Some(row_stats),
    };
    record_problem(gpu, encoder, &problem, None, None)
}

/// Records the fused backward and allocates the gradients `[dq, dk, dv]` (contiguous layout).
pub fn record(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    saved: Saved<'_>,
    d_out: &GpuTensor,
    causal: bool,
    scale: f32,
) -> Result<[GpuTensor; 3]> {
    let dq = GpuTensor::empty(gpu, saved.q.shape(), "attention dq")?;
    let dk = GpuTensor::empty(gpu, saved.k.shape(), "attention dk")?;
    let dv = GpuTensor::empty(gpu, saved.v.shape(), "attention dv")?;
    record_into(gpu, encoder, saved, d_out, causal, scale, Grads { dq: &dq, dk: &dk, dv: &dv })?;
    Ok([dq, dk, dv])
}

/// Uploads q, k, v and `d_out` (contiguous \[B, H, S, ·\]), runs the fused forward with its row
/// statistics and the fused backward in one submit, and reads back `[dq, dk, dv]`.
pub fn run(
    gpu: &Gpu,
    [q, k, v]: [ArrayViewD<'_, f32>; 3],
    d_out: ArrayViewD<'_, f32>,
    causal: bool,
    scale: f32,
) -> Result<[ArrayD<f32>; 3]> {
    let dims = attention_shapes(q.shape(), k.shape(), v.shape())?;
    if d_out.shape() != dims.out_shape() {
        return Err(Error::Shape(format!(
            "d_out is {} but q {}, k {} and v {} need {}",
            fmt_shape(d_out.shape()),
            fmt_shape(q.shape()),
            fmt_shape(k.shape()),
            fmt_shape(v.shape()),
            fmt_shape(&dims.out_shape())
        )));
    }
    let arrays = super::super::run_many(gpu, |encoder| {
        let up = |x: &ArrayViewD<'_, f32>, name| GpuTensor::upload(gpu, x.view(), name);
        let (q, k, v, d_out) = (up(&q, "q")?, up(&k, "k")?, up(&v, "v")?, up(&d_out, "d_out")?);
        let out = GpuTensor::empty(gpu, &dims.out_shape(), "attention out")?;
        let stats = GpuTensor::empty(gpu, &row_stats_shape(&dims), "attention row statistics")?;
        super::record_fused_with_stats(gpu, encoder, &q, &k, &v, causal, scale, &out, &stats)?;
        let saved = Saved { q: &q, k: &k, v: &v, out: &out, row_stats: &stats };
        Ok(record(gpu, encoder, saved, &d_out, causal, scale)?.to_vec())
    })?;
    arrays.try_into().map_err(|_| Error::Gpu("attention backward returned the wrong number of gradients".into()))
}

/// A \[B, S, H, ·\] shape as \[B, H, S, ·\] (other ranks unchanged, for the rank error).
fn heads_first(shape: &[usize]) -> Vec<usize> {
    let mut s = shape.to_vec();
    if s.len() == 4 {
        s.swap(1, 2);
    }
    s
}

/// Checks every tensor's shape (through `as_bhsd`, which maps the layout's shape to \[B,H,S,·\])
/// and that no gradient shares a buffer with an input; returns the problem's dims.
fn check(
    saved: &Saved<'_>,
    d_out: &GpuTensor,
    grads: &Grads<'_>,
    as_bhsd: fn(&[usize]) -> Vec<usize>,
    layout: &str,
) -> Result<AttentionDims> {
    let dims = attention_shapes(&as_bhsd(saved.q.shape()), &as_bhsd(saved.k.shape()), &as_bhsd(saved.v.shape()))?;
    let ctx = format!("q {}, k {} and v {} ({layout})", fmt_shape(saved.q.shape()), fmt_shape(saved.k.shape()), fmt_shape(saved.v.shape()));
    let out_shape = as_bhsd(&dims.out_shape());
    expect("out", saved.out, &out_shape, &ctx)?;
    expect("d_out", d_out, &out_shape, &ctx)?;
    expect("row_stats", saved.row_stats, &row_stats_shape(&dims), &ctx)?;
    expect("dq", grads.dq, saved.q.shape(), &ctx)?;
    expect("dk", grads.dk, saved.k.shape(), &ctx)?;
    expect("dv", grads.dv, saved.v.shape(), &ctx)?;
    let inputs = [("q", saved.q), ("k", saved.k), ("v", saved.v), ("out", saved.out), ("row_stats", saved.row_stats), ("d_out", d_out)];
    let outputs = [("dq", grads.dq), ("dk", grads.dk), ("dv", grads.dv)];
    for (i, (name, t)) in outputs.iter().enumerate() {
        if let Some((other, _)) = inputs.iter().chain(&outputs[i + 1..]).find(|(_, x)| x.buffer() == t.buffer()) {
            return Err(Error::Input(format!("attention backward: {name} shares its buffer with {other}; give each gradient its own tensor")));
        }
    }
    Ok(dims)
}

/// Refuses `t` when its shape is not `want`, naming the inputs that call for it.
fn expect(name: &str, t: &GpuTensor, want: &[usize], ctx: &str) -> Result<()> {
    if t.shape() == want {
        return Ok(());
    }
    Err(Error::Shape(format!("attention backward: {name} is {} but {ctx} need {name} {}", fmt_shape(t.shape()), fmt_shape(want))))
}
