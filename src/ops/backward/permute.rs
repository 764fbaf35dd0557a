//! The axis swap of the attention backward (`shaders/permute_backward.wgsl`):
//! `out[a, c, b, d] (+)= factor · x[a, b, c, d]`, for TransformerLens's \[B, S, H, d_head\] ↔
//! \[B, H, S, d_head\] (folding the attention scale into dQ and dK on the way) and for the packed
//! QKV weight gradient \[d_model, H, d_head\] → \[H, d_model, d_head\].

use super::{count, distinct, launch, Params, ACCUMULATE, PERMUTE};
use crate::error::{fmt_shape, Error, Result};
use crate::gpu::Gpu;
use crate::tensor::GpuTensor;

/// Records the swap of axes 1 and 2 of `x` viewed as `dims` \[A, B, C, D\] into `out` (viewed
/// as \[A, C, B, D\]), times `factor`, added to `out`'s old contents when `accumulate`.
pub fn swap_axes(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    x: &GpuTensor,
    dims: [usize; 4],
    factor: f32,
    out: &GpuTensor,
    accumulate: bool,
) -> Result<()> {
    let n: usize = dims.iter().product();
    if x.len() != n || out.len() != n {
        return Err(Error::Shape(format!("axis swap of {dims:?}: x is {} and out {}", fmt_shape(x.shape()), fmt_shape(out.shape()))));
    }
    distinct("axis swap", x, out)?;
    let flags = if accumulate { ACCUMULATE } else { 0 };
    let params = Params { n: count(n, "axis swap")?, cols: dims[3] as u32, flags, value: factor, a: dims[1] as u32, b: dims[2] as u32, ..Params::default() };
    launch(gpu, encoder, PERMUTE, "swap_axes", params, &[x.buffer(), out.buffer()], n as u64, 256)
}
