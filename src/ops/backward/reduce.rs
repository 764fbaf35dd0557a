//! Deterministic reductions (`shaders/reduce_backward.wgsl`): column sums for bias gradients
//! (`db = Σ_rows dy`) and LayerNorm weight gradients (`dw = Σ_rows dy n`), and the total of a
//! vector (the loss). Column sums run over chunks of [`CHUNK`] rows, one invocation per (chunk,
//! column), then over the chunks' partial sums, until one row is left: the same order on every
//! run, and no invocation walks more than [`CHUNK`] rows. Float64 twin:
//! [`crate::reference::backward::linear::column_sums`].

use super::{count, launch, Params, ACCUMULATE, REDUCE};
use crate::error::{fmt_shape, Error, Result};
use crate::gpu::Gpu;
use crate::tensor::GpuTensor;

/// Rows summed by one invocation per pass.
pub const CHUNK: usize = 256;

/// Records `out[c] (+)= Σ_r x[r, c] (· y[r, c])` for `x` (and `y`) \[..., cols\] and `out` \[cols\]
/// (any shape of `cols` elements).
pub fn column_sums(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    x: &GpuTensor,
    y: Option<&GpuTensor>,
    out: &GpuTensor,
    accumulate: bool,
) -> Result<()> {
    let cols = out.len();
    if cols == 0 || !x.len().is_multiple_of(cols) || y.is_some_and(|y| y.shape() != x.shape()) {
        return Err(Error::Shape(format!(
            "column sums of {}{} into {}",
            fmt_shape(x.shape()),
            y.map(|y| format!(" times {}", fmt_shape(y.shape()))).unwrap_or_default(),
            fmt_shape(out.shape())
        )));
    }
    let mut rows = x.len() / cols;
    let mut input = x.clone();
    let mut factor = y.cloned();
    let mut level = 0;
    loop {
        let chunks = rows.div_ceil(CHUNK).max(1);
        let last = chunks == 1;
        let target = if last { out.clone() } else { gpu.scratch(&format!("column sums {level} {chunks}x{cols}"), &[chunks, cols])? };
        let mut flags = u32::from(factor.is_some());
        if last && accumulate {
            flags |= ACCUMULATE;
        }
        let params = Params { n: count(chunks * cols, "column sums")?, rows: count(rows, "column sums")?, cols: cols as u32, flags, a: CHUNK as u32, ..Params::default() };
        let y_buffer = factor.take().unwrap_or_else(|| input.clone());
        launch(gpu, encoder, REDUCE, "column_sum", params, &[input.buffer(), y_buffer.buffer(), target.buffer()], u64::from(params.n), 256)?;
        if last {
            return Ok(());
        }
        input = target;
        rows = chunks;
        level += 1;
    }
}

/// Records `out[0] (+)= factor · Σ x` in one workgroup (fixed order).
pub fn total(gpu: &Gpu, encoder: &mut wgpu::CommandEncoder, x: &GpuTensor, factor: f32, out: &GpuTensor, accumulate: bool) -> Result<()> {
    if out.len() != 1 {
        return Err(Error::Shape(format!("a total goes into one element, not {}", fmt_shape(out.shape()))));
    }
    let flags = if accumulate { ACCUMULATE } else { 0 };
    let params = Params { n: count(x.len(), "total")?, flags, value: factor, ..Params::default() };
    launch(gpu, encoder, REDUCE, "total", params, &[x.buffer(), x.buffer(), out.buffer()], 1, 1)
}
