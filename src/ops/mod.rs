//! The GPU ops, one module per op of SPEC.
//!
//! Every op offers the same three calls:
//! - `record_into(gpu, encoder, inputs…, out)` records into a caller's encoder, writing a tensor
//!   the caller allocated (nothing is submitted; chain as many as you like before one submit);
//! - `record(gpu, encoder, inputs…)` does the same and allocates the output;
//! - `run(gpu, arrays…)` uploads ndarray inputs, submits, waits and reads the result back.
//!
//! Shapes are checked before any GPU work, with the same checks the host references use.

pub mod gelu;
pub mod layer_norm;
pub mod softmax;

use ndarray::ArrayD;

use crate::error::Result;
use crate::gpu::Gpu;
use crate::tensor::GpuTensor;

/// Records with `f` into a fresh encoder, submits, waits and reads back every tensor `f` returns,
/// all inside wgpu error scopes so that a GPU error comes back as an `Err`.
pub(crate) fn run_many(
    gpu: &Gpu,
    f: impl FnOnce(&mut wgpu::CommandEncoder) -> Result<Vec<GpuTensor>>,
) -> Result<Vec<ArrayD<f32>>> {
    gpu.scoped(|| {
        let mut encoder = gpu.encoder();
        let outputs = f(&mut encoder)?;
        gpu.submit_and_wait(encoder)?;
        outputs.iter().map(|t| t.read(gpu)).collect()
    })
}

/// [`run_many`] for ops with one output.
pub(crate) fn run_single(
    gpu: &Gpu,
    f: impl FnOnce(&mut wgpu::CommandEncoder) -> Result<GpuTensor>,
) -> Result<ArrayD<f32>> {
    let mut outputs = run_many(gpu, |encoder| Ok(vec![f(encoder)?]))?;
    Ok(outputs.remove(0))
}

/// The longest row that the one-invocation-per-row path takes. llvmpipe (lavapipe and Mesa GL)
/// silently stops an invocation after 65535 loop iterations in all, so a single invocation must
/// not walk rows of unbounded length; real GPUs would be slow there anyway.
pub const MAX_INVOCATION_ROW_LEN: usize = 16384;

/// How rows are spread over invocations; [`RowPath::Auto`] chooses by the row length.
///
/// Shared by the row-wise ops (softmax, layer norm).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RowPath {
    /// One invocation per row up to the op's threshold elements, one workgroup per row above.
    #[default]
    Auto,
    /// One invocation per row, for rows of up to [`MAX_INVOCATION_ROW_LEN`] elements (longer rows
    /// still take the workgroup path).
    InvocationPerRow,
    /// One workgroup per row, whatever its length.
    WorkgroupPerRow,
}

impl RowPath {
    /// Whether a row of `n` elements runs one workgroup per row.
    pub(crate) fn is_wide(self, n: usize, threshold: usize) -> bool {
        match self {
            RowPath::Auto => n > threshold,
            RowPath::InvocationPerRow => n > MAX_INVOCATION_ROW_LEN,
            RowPath::WorkgroupPerRow => true,
        }
    }
}

