//! The GPU kernels of TransformerLens's variants beyond SPEC's plain model: RMS norm, SoLU and
//! SoLU's backward (`shaders/norm_rows.wgsl`, one invocation per row), and the per-head kernels of the optional
//! hooks (`shaders/heads.wgsl`: the residual repeated per head, per-head projections, the sum over
//! heads). Their float64 twins are in `crate::reference::transformer::forms`.

use crate::error::{fmt_shape, Error, Result};
use crate::gpu::{Gpu, Shader};
use crate::tensor::GpuTensor;

const NORM_ROWS: Shader = crate::gpu::shaders::NORM_ROWS;
const HEADS: Shader = crate::gpu::shaders::HEADS;
/// Rows per workgroup of `norm_rows.wgsl`, elements per workgroup of `heads.wgsl`.
const ROWS_WG: u64 = 64;
const HEADS_WG: u64 = 256;
/// The longest row `norm_rows.wgsl` takes (1.5 n loop iterations under llvmpipe's 65535).
const MAX_ROW: usize = 32768;
/// The longest loop of `heads.wgsl` (llvmpipe's cap on an invocation's loop iterations).
const MAX_LOOP: usize = 65535;

/// Matches `Params` in `shaders/norm_rows.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct RowParams {
    rows: u32,
    n: u32,
    flags: u32,
    eps: f32,
}

/// Matches `Params` in `shaders/heads.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct HeadParams {
    n: u32,
    heads: u32,
    k: u32,
    m: u32,
    flags: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

/// `RowParams` and `HeadParams` against their shaders (checked by `tests/params_layout.rs`).
pub(crate) const LAYOUTS: &[crate::gpu::layout::ParamsLayout] = &[
    crate::gpu::layout::params_layout!(RowParams, NORM_ROWS, [rows, n, flags, eps]),
    crate::gpu::layout::params_layout!(HeadParams, HEADS, [n, heads, k, m, flags]),
];

fn u32_of(v: usize, what: &str) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::Limit {
        what: what.to_string(),
        limit: "32-bit element indexing in the variants' kernels",
        needed: v as u64,
        allowed: u64::from(u32::MAX),
    })
}

/// `(rows, n)` of `x` viewed as \[rows, n\] over its last axis, refusing rows past [`MAX_ROW`].
fn rows_of(x: &GpuTensor, what: &str) -> Result<(u32, u32)> {
    let n = x.shape().last().copied().unwrap_or(1);
    if n > MAX_ROW {
        return Err(Error::Limit { what: format!("{what} rows of {n} elements"), limit: "the row kernels' loop cap", needed: n as u64, allowed: MAX_ROW as u64 });
    }
    Ok((u32_of(x.len() / n.max(1), what)?, n as u32))
}

fn dispatch<P: bytemuck::Pod>(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    (shader, entry): (Shader, &'static str),
    params: &P,
    buffers: &[&wgpu::Buffer],
    invocations: u64,
    per_workgroup: u64,
) -> Result<()> {
    if invocations == 0 {
        return Ok(());
    }
    let kernel = gpu.kernel::<P>(shader, entry, &[])?;
    let grid = gpu.grid(invocations.div_ceil(per_workgroup), &format!("{entry} workgroups"))?;
    kernel.record(gpu, encoder, params, buffers, grid);
    Ok(())
}

fn same_shape(what: &str, a: &GpuTensor, b: &GpuTensor) -> Result<()> {
    if a.shape() != b.shape() {
        return Err(Error::Shape(format!("{what}: the output is {} but x is {}", fmt_shape(b.shape()), fmt_shape(a.shape()))));
    }
    Ok(())
}

/// Records TransformerLens's RMS norm of `x` over its last axis into `out` (`x`'s shape):
/// `x / sqrt(mean(x²) + eps)`, times `w` \[n\] when given, and the per-row scale into `scale`
/// (\[..., 1\]) when given.
pub(crate) fn rms_norm(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    x: &GpuTensor,
    w: Option<&GpuTensor>,
    eps: f32,
    out: &GpuTensor,
    scale: Option<&GpuTensor>,
) -> Result<()> {
    same_shape("rms_norm", x, out)?;
    let (rows, n) = rows_of(x, "rms_norm")?;
    if let Some(w) = w.filter(|w| w.shape() != [n as usize]) {
        return Err(Error::Shape(format!("rms_norm: w is {} but rows have {n} elements", fmt_shape(w.shape()))));
    }
    if let Some(s) = scale.filter(|s| s.len() != rows as usize) {
        return Err(Error::Shape(format!("rms_norm: the scale is {} but x has {rows} rows", fmt_shape(s.shape()))));
    }
    // Two stand-ins: one dispatch may not bind a buffer both read-only and read-write.
    let (w_stand_in, scale_stand_in) = (gpu.scratch("rms_norm w stand-in", &[1])?, gpu.scratch("rms_norm scale stand-in", &[1])?);
    let flags = u32::from(w.is_some()) | u32::from(scale.is_some()) << 1;
    let params = RowParams { rows, n, flags, eps };
    let buffers = [out.buffer(), x.buffer(), w.unwrap_or(&w_stand_in).buffer(), scale.unwrap_or(&scale_stand_in).buffer()];
    dispatch(gpu, encoder, (NORM_ROWS, "rms_norm"), &params, &buffers, u64::from(rows), ROWS_WG)
}

/// Records SoLU, `out = x · softmax(x)` over the last axis (`out` has `x`'s shape).
pub(crate) fn solu(gpu: &Gpu, encoder: &mut wgpu::CommandEncoder, x: &GpuTensor, out: &GpuTensor) -> Result<()> {
    same_shape("solu", x, out)?;
    let (rows, n) = rows_of(x, "solu")?;
    let params = RowParams { rows, n, ..RowParams::default() };
    dispatch(gpu, encoder, (NORM_ROWS, "solu"), &params, &[out.buffer(), x.buffer()], u64::from(rows), ROWS_WG)
}

/// The longest row `solu_backward` takes (3.25 n loop iterations under llvmpipe's 65535).
const MAX_SOLU_BACKWARD_ROW: usize = 16384;

/// Records SoLU's backward, `dx = p ⊙ (dy + x ⊙ dy − Σ x p dy)` with `p = softmax(x)` over the
/// last axis (`dy` and `dx` have `x`'s shape); its float64 twin is
/// [`crate::reference::backward::model::forms::solu_backward`].
pub(crate) fn solu_backward(gpu: &Gpu, encoder: &mut wgpu::CommandEncoder, x: &GpuTensor, dy: &GpuTensor, dx: &GpuTensor) -> Result<()> {
    same_shape("solu_backward dy", x, dy)?;
    same_shape("solu_backward dx", x, dx)?;
    let (rows, n) = rows_of(x, "solu_backward")?;
    if n as usize > MAX_SOLU_BACKWARD_ROW {
        return Err(Error::Limit { what: format!("solu_backward rows of {n} elements"), limit: "the row kernels' loop cap", needed: u64::from(n), allowed: MAX_SOLU_BACKWARD_ROW as u64 });
    }
    let params = RowParams { rows, n, ..RowParams::default() };
    dispatch(gpu, encoder, (NORM_ROWS, "solu_backward"), &params, &[dx.buffer(), x.buffer(), dy.buffer()], u64::from(rows), ROWS_WG)
}

/// Records `out [B, S, H, d] = x [B, S, d]` repeated along the head axis.
pub(crate) fn repeat_heads(gpu: &Gpu, encoder: &mut wgpu::CommandEncoder, x: &GpuTensor, out: &GpuTensor) -> Result<()> {
    let (&[b, s, d], &[ob, os, heads, od]) = (x.shape(), out.shape()) else {
        return Err(Error::Shape(format!("repeat_heads: {} into {}", fmt_shape(x.shape()), fmt_shape(out.shape()))));
    };
    if (b, s, d) != (ob, os, od) {
        return Err(Error::Shape(format!("repeat_heads: {} into {}", fmt_shape(x.shape()), fmt_shape(out.shape()))));
    }
    let params = HeadParams { n: u32_of(out.len(), "repeat_heads")?, heads: heads as u32, m: d as u32, ..HeadParams::default() };
    dispatch(gpu, encoder, (HEADS, "repeat_heads"), &params, &[out.buffer(), x.buffer()], out.len() as u64, HEADS_WG)
}

/// Records each head's projection of its own input, `out[.., h, :] = x[.., h, :] @ w[h] (+ bias[h])`,
/// for x \[B, S, H, k\], w \[H, k, m\], bias \[H, m\] and out \[B, S, H, m\].
pub(crate) fn project_heads(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    x: &GpuTensor,
    w: &GpuTensor,
    bias: Option<&GpuTensor>,
    out: &GpuTensor,
) -> Result<()> {
    let bad = || Error::Shape(format!("project_heads: x {} w {} out {}", fmt_shape(x.shape()), fmt_shape(w.shape()), fmt_shape(out.shape())));
    let (&[b, s, heads, k], &[wh, wk, m]) = (x.shape(), w.shape()) else { return Err(bad()) };
    if (wh, wk) != (heads, k) || out.shape() != [b, s, heads, m] || bias.is_some_and(|t| t.shape() != [heads, m]) {
        return Err(bad());
    }
    if k > MAX_LOOP {
        return Err(Error::Limit { what: format!("project_heads over {k} inputs"), limit: "llvmpipe's loop cap", needed: k as u64, allowed: MAX_LOOP as u64 });
    }
    let stand_in = gpu.scratch("project_heads stand-in", &[1])?;
    let params = HeadParams {
        n: u32_of(out.len(), "project_heads")?,
        heads: heads as u32,
        k: k as u32,
        m: m as u32,
        flags: u32::from(bias.is_some()),
        ..HeadParams::default()
    };
    let buffers = [out.buffer(), x.buffer(), w.buffer(), bias.unwrap_or(&stand_in).buffer()];
    dispatch(gpu, encoder, (HEADS, "project_heads"), &params, &buffers, out.len() as u64, HEADS_WG)
}

/// Records `out [B, S, m] = Σ_h x [B, S, H, m] + bias [m]`.
pub(crate) fn sum_heads(gpu: &Gpu, encoder: &mut wgpu::CommandEncoder, x: &GpuTensor, bias: &GpuTensor, out: &GpuTensor) -> Result<()> {
    let bad = || Error::Shape(format!("sum_heads: x {} bias {} out {}", fmt_shape(x.shape()), fmt_shape(bias.shape()), fmt_shape(out.shape())));
    let &[b, s, heads, m] = x.shape() else { return Err(bad()) };
    if out.shape() != [b, s, m] || bias.shape() != [m] {
        return Err(bad());
    }
    if heads > MAX_LOOP {
        return Err(Error::Limit { what: format!("sum_heads over {heads} heads"), limit: "llvmpipe's loop cap", needed: heads as u64, allowed: MAX_LOOP as u64 });
    }
    let params = HeadParams { n: u32_of(out.len(), "sum_heads")?, heads: heads as u32, m: m as u32, ..HeadParams::default() };
    dispatch(gpu, encoder, (HEADS, "sum_heads"), &params, &[out.buffer(), x.buffer(), bias.buffer()], out.len() as u64, HEADS_WG)
}
