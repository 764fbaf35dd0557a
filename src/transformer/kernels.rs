//! The forward pass's own small kernels, beside the ops it reuses: the embedding
//! (`shaders/embed.wgsl`) and the elementwise kernels of `shaders/elementwise.wgsl` (residual
//! additions, LayerNorm's affine part, ReLU, the rescaling after a changed `hook_scale`, and
//! interventions). Each records one dispatch of one invocation per element, 256 a workgroup, on
//! a 2-D grid; nothing is dispatched for an empty tensor.

use crate::error::{fmt_shape, Error, Result};
use crate::gpu::{Gpu, Shader};
use crate::tensor::GpuTensor;

const EMBED: Shader = crate::gpu::shaders::EMBED;
const ELEMENTWISE: Shader = crate::gpu::shaders::ELEMENTWISE;
const WORKGROUP: u64 = 256;
/// `sel` value that selects a whole axis (`ALL` in the WGSL).
pub(crate) const ALL: u32 = u32::MAX;

/// Matches `Params` in `shaders/embed.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct EmbedParams {
    n: u32,
    seq: u32,
    d_model: u32,
    flags: u32,
}

/// Matches `Params` in `shaders/elementwise.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    cols: u32,
    flags: u32,
    value: f32,
    dims: [u32; 4],
    sel: [u32; 4],
}

/// `EmbedParams` and `Params` against their shaders (checked by `tests/params_layout.rs`).
pub(crate) const LAYOUTS: &[crate::gpu::layout::ParamsLayout] = &[
    crate::gpu::layout::params_layout!(EmbedParams, EMBED, [n, seq, d_model, flags]),
    crate::gpu::layout::params_layout!(Params, ELEMENTWISE, [n, cols, flags, value, dims[4], sel[4]]),
];

/// Which parts of the embedding [`embed`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EmbedParts {
    /// `W_E[token]` (`hook_embed`).
    Token,
    /// `W_pos[s]` (`hook_pos_embed`).
    Position,
    /// Their sum (`blocks.0.hook_resid_pre`).
    Both,
}

/// Records `out [B, S, d_model]` from `tokens` (u32, \[B·S\]), `W_E` and `W_pos`.
pub(crate) fn embed(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    tokens: &wgpu::Buffer,
    w_e: &GpuTensor,
    w_pos: &GpuTensor,
    parts: EmbedParts,
    out: &GpuTensor,
) -> Result<()> {
    let &[_, seq, d_model] = out.shape() else {
        return Err(Error::Shape(format!("embedding output is {} but must be [B, S, d_model]", fmt_shape(out.shape()))));
    };
    let flags = match parts {
        EmbedParts::Token => 1,
        EmbedParts::Position => 2,
        EmbedParts::Both => 3,
    };
    let n = u32_len(out)?;
    if n == 0 {
        return Ok(());
    }
    let params = EmbedParams { n, seq: seq as u32, d_model: d_model as u32, flags };
    let kernel = gpu.kernel::<EmbedParams>(EMBED, "embed", &[])?;
    let grid = gpu.grid(u64::from(n).div_ceil(WORKGROUP), "embedding workgroups")?;
    kernel.record(gpu, encoder, &params, &[tokens, w_e.buffer(), w_pos.buffer(), out.buffer()], grid);
    Ok(())
}

/// Records `out = a + b` (all three the same shape; `out` may not be `a` or `b`).
pub(crate) fn add(gpu: &Gpu, encoder: &mut wgpu::CommandEncoder, a: &GpuTensor, b: &GpuTensor, out: &GpuTensor) -> Result<()> {
    same_shape("add", &[("a", a), ("b", b), ("out", out)])?;
    let params = Params { n: u32_len(out)?, ..Params::default() };
    launch(gpu, encoder, "add", params, &[out.buffer(), a.buffer(), b.buffer()])
}

/// Records `out = relu?(x * w[col] + b[col])` over the last axis, each part optional (`w` and
/// `b` \[cols\]); `out` has `x`'s shape and may not be `x`.
pub(crate) fn columns(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    x: &GpuTensor,
    w: Option<&GpuTensor>,
    b: Option<&GpuTensor>,
    relu: bool,
    out: &GpuTensor,
) -> Result<()> {
    same_shape("columns", &[("x", x), ("out", out)])?;
    let cols = x.shape().last().copied().unwrap_or(1);
    for (name, t) in [("w", w), ("b", b)] {
        if let Some(t) = t.filter(|t| t.shape() != [cols]) {
            return Err(Error::Shape(format!("{name} is {} but x is {}", fmt_shape(t.shape()), fmt_shape(x.shape()))));
        }
    }
    let stand_in = |t: Option<&GpuTensor>, name| t.map_or_else(|| gpu.scratch(name, &[1]), |t| Ok(t.clone()));
    let (w_buffer, b_buffer) = (stand_in(w, "columns w stand-in")?, stand_in(b, "columns b stand-in")?);
    let flags = u32::from(w.is_some()) | u32::from(b.is_some()) << 1 | u32::from(relu) << 2;
    let params = Params { n: u32_len(out)?, cols: cols.max(1) as u32, flags, ..Params::default() };
    launch(gpu, encoder, "columns", params, &[out.buffer(), x.buffer(), w_buffer.buffer(), b_buffer.buffer()])
}

/// Records `x[.., i] *= old[..] / new[..]` in place: x \[..., n\], old and new \[..., 1\].
pub(crate) fn rescale(gpu: &Gpu, encoder: &mut wgpu::CommandEncoder, x: &GpuTensor, old: &GpuTensor, new: &GpuTensor) -> Result<()> {
    same_shape("rescale", &[("old", old), ("new", new)])?;
    let cols = x.shape().last().copied().unwrap_or(1);
    if old.len() * cols != x.len() {
        return Err(Error::Shape(format!("scale is {} but x is {}", fmt_shape(old.shape()), fmt_shape(x.shape()))));
    }
    let params = Params { n: u32_len(x)?, cols: cols.max(1) as u32, ..Params::default() };
    launch(gpu, encoder, "rescale", params, &[x.buffer(), old.buffer(), new.buffer()])
}

/// What [`intervene`] does to the selected elements.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Change<'a> {
    /// Set to 0.
    Zero,
    /// Multiply by a factor.
    Scale(f32),
    /// Take the element of this tensor (of `x`'s shape) at the same index.
    Take(&'a GpuTensor),
}

/// Records an in-place change of the elements of `x` (rank ≤ 4) whose index matches `sel` on
/// every axis (`sel` is aligned to the last axes; [`ALL`] selects a whole axis).
pub(crate) fn intervene(gpu: &Gpu, encoder: &mut wgpu::CommandEncoder, x: &GpuTensor, sel: &[u32], change: Change<'_>) -> Result<()> {
    let rank = x.shape().len();
    if rank > 4 || sel.len() != rank {
        return Err(Error::Shape(format!("an intervention needs a tensor of rank <= 4, not {}", fmt_shape(x.shape()))));
    }
    let (mut dims, mut padded_sel) = ([1u32; 4], [ALL; 4]);
    for (axis, (&d, &s)) in x.shape().iter().zip(sel).enumerate() {
        dims[4 - rank + axis] = u32::try_from(d).map_err(|_| Error::Shape(format!("axis of {d} elements")))?;
        padded_sel[4 - rank + axis] = s;
    }
    let (flags, value, source) = match change {
        Change::Zero => (0, 0.0, None),
        Change::Scale(f) => (1, f, None),
        Change::Take(t) => {
            same_shape("intervene", &[("replacement", t), ("x", x)])?;
            if t.buffer() == x.buffer() {
                return Ok(()); // replacing a tensor by itself changes nothing
            }
            (2, 0.0, Some(t.clone()))
        }
    };
    let source = match source {
        Some(t) => t,
        None => gpu.scratch("intervention stand-in", &[1])?,
    };
    let params = Params { n: u32_len(x)?, cols: 1, flags, value, dims, sel: padded_sel };
    launch(gpu, encoder, "intervene", params, &[x.buffer(), source.buffer()])
}

/// Records a copy of `from` into `to` (same number of elements).
pub(crate) fn copy(encoder: &mut wgpu::CommandEncoder, from: &GpuTensor, to: &GpuTensor) -> Result<()> {
    if from.len() != to.len() {
        return Err(Error::Shape(format!("cannot copy {} into {}", fmt_shape(from.shape()), fmt_shape(to.shape()))));
    }
    if !from.is_empty() && from.buffer() != to.buffer() {
        encoder.copy_buffer_to_buffer(from.buffer(), 0, to.buffer(), 0, (from.len() * 4) as u64);
    }
    Ok(())
}

fn launch(gpu: &Gpu, encoder: &mut wgpu::CommandEncoder, entry: &'static str, params: Params, buffers: &[&wgpu::Buffer]) -> Result<()> {
    if params.n == 0 {
        return Ok(());
    }
    let kernel = gpu.kernel::<Params>(ELEMENTWISE, entry, &[])?;
    let grid = gpu.grid(u64::from(params.n).div_ceil(WORKGROUP), &format!("{entry} workgroups"))?;
    kernel.record(gpu, encoder, &params, buffers, grid);
    Ok(())
}

fn same_shape(what: &str, tensors: &[(&str, &GpuTensor)]) -> Result<()> {
    let (first_name, first) = tensors[0];
    for &(name, t) in &tensors[1..] {
        if t.shape() != first.shape() {
            return Err(Error::Shape(format!(
                "{what}: {name} is {} but {first_name} is {}",
                fmt_shape(t.shape()),
                fmt_shape(first.shape())
            )));
        }
    }
    Ok(())
}

fn u32_len(t: &GpuTensor) -> Result<u32> {
    u32::try_from(t.len()).map_err(|_| Error::Limit {
        what: format!("tensor {}", fmt_shape(t.shape())),
        limit: "32-bit element indexing in the forward pass's kernels",
        needed: t.len() as u64,
        allowed: u64::from(u32::MAX),
    })
}
