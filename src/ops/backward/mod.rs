//! Backward kernels: the gradients of the forward pass's ops on the GPU, each beside a float64
//! twin in [`crate::reference::backward`] and checked against it by `tests/backward_kernels.rs`.
//!
//! - [`loss`]: cross-entropy over the positions with a target and d loss / d logits;
//! - [`reduce`]: deterministic column sums (bias and LayerNorm weight gradients) and totals;
//! - [`rows`]: softmax backward (attention's pattern path) and LayerNorm backward (LN and
//!   LNPre, through `hook_scale`);
//! - [`activation`]: GELU (tanh and erf) and ReLU backward;
//! - [`embedding`]: token and positional embedding backward as ordered gathers;
//! - [`permute`]: the axis swap between TransformerLens's \[B, S, H, d\] and \[B, H, S, d\].
//!
//! Matrix products (every weight gradient and every `dx`) go through
//! [`crate::ops::matmul::record_gemm`] with its transposed operands. Every kernel here records
//! into a caller's encoder, allocates nothing in a steady state, and runs in a fixed order, so
//! that the same inputs give the same bits on every run. The shaders share one `Params` layout.

pub mod activation;
pub mod embedding;
pub mod loss;
pub mod permute;
pub mod reduce;
pub mod rows;

use crate::error::{fmt_shape, Error, Result};
use crate::gpu::{shaders, Gpu, Shader};
use crate::tensor::GpuTensor;

const CROSS_ENTROPY: Shader = shaders::CROSS_ENTROPY_BACKWARD;
const REDUCE: Shader = shaders::REDUCE_BACKWARD;
const SOFTMAX: Shader = shaders::SOFTMAX_BACKWARD;
const LAYER_NORM: Shader = shaders::LAYER_NORM_BACKWARD;
const ACTIVATION: Shader = shaders::ACTIVATION_BACKWARD;
const EMBED: Shader = shaders::EMBED_BACKWARD;
const PERMUTE: Shader = shaders::PERMUTE_BACKWARD;

/// `flags` bit: add the result to the output's old contents.
pub(crate) const ACCUMULATE: u32 = 2;

/// Matches `Params` in every `shaders/*_backward.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct Params {
    n: u32,
    rows: u32,
    cols: u32,
    flags: u32,
    value: f32,
    a: u32,
    b: u32,
    c: u32,
}

macro_rules! layout {
    ($shader:expr) => {
        crate::gpu::layout::params_layout!(Params, $shader, [n, rows, cols, flags, value, a, b, c])
    };
}

/// `Params` against each backward shader (checked by `tests/params_layout.rs`).
pub(crate) const LAYOUTS: &[crate::gpu::layout::ParamsLayout] = &[
    layout!(CROSS_ENTROPY),
    layout!(REDUCE),
    layout!(SOFTMAX),
    layout!(LAYER_NORM),
    layout!(ACTIVATION),
    layout!(EMBED),
    layout!(PERMUTE),
];

/// Records `entry` of `shader` over `invocations` invocations in workgroups of `workgroup`
/// (nothing for none).
#[allow(clippy::too_many_arguments)]
fn launch(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    shader: Shader,
    entry: &'static str,
    params: Params,
    buffers: &[&wgpu::Buffer],
    invocations: u64,
    workgroup: u64,
) -> Result<()> {
    if invocations == 0 {
        return Ok(());
    }
    let kernel = gpu.kernel::<Params>(shader, entry, &[])?;
    let grid = gpu.grid(invocations.div_ceil(workgroup), &format!("{entry} workgroups"))?;
    kernel.record(gpu, encoder, &params, buffers, grid);
    Ok(())
}

/// `n` as a u32 element count, or the limit error naming `what`.
fn count(n: usize, what: &str) -> Result<u32> {
    u32::try_from(n).map_err(|_| Error::Limit {
        what: what.to_string(),
        limit: "32-bit element indexing in the backward kernels",
        needed: n as u64,
        allowed: u64::from(u32::MAX),
    })
}

/// Errors unless every tensor has the first one's shape.
fn same_shape(what: &str, tensors: &[(&str, &GpuTensor)]) -> Result<()> {
    let (first_name, first) = tensors[0];
    for &(name, t) in &tensors[1..] {
        if t.shape() != first.shape() {
            return Err(Error::Shape(format!("{what}: {name} is {} but {first_name} is {}", fmt_shape(t.shape()), fmt_shape(first.shape()))));
        }
    }
    Ok(())
}

/// Errors unless `a` and `b` are different buffers (a kernel cannot read and write one buffer).
fn distinct(what: &str, a: &GpuTensor, b: &GpuTensor) -> Result<()> {
    if a.buffer() == b.buffer() {
        return Err(Error::Input(format!("{what}: the output may not be an input")));
    }
    Ok(())
}

/// Rows and row length of a tensor \[..., n\] (a 0-d tensor is one row of one).
fn rows_of(t: &GpuTensor) -> (usize, usize) {
    let n = t.shape().last().copied().unwrap_or(1);
    (t.len().checked_div(n).unwrap_or(0), n)
}

/// Errors when a row of `n` is longer than one invocation may walk `passes` times on llvmpipe
/// (see [`crate::ops::MAX_INVOCATION_ROW_LEN`]).
fn check_row(what: &str, n: usize, passes: usize) -> Result<()> {
    let allowed = 65535 / passes;
    if n > allowed.min(crate::ops::MAX_INVOCATION_ROW_LEN) {
        return Err(Error::Limit {
            what: format!("{what} row of {n}"),
            limit: "one invocation per row (llvmpipe stops an invocation after 65535 loop iterations)",
            needed: n as u64,
            allowed: allowed.min(crate::ops::MAX_INVOCATION_ROW_LEN) as u64,
        });
    }
    Ok(())
}
