//! The GPU ops, one module per op of SPEC.
//!
//! Every op offers the same three calls:
//! - `record_into(gpu, encoder, inputs…, out)` records into a caller's encoder, writing a tensor
//!   the caller allocated (nothing is submitted; chain as many as you like before one submit);
//! - `record(gpu, encoder, inputs…)` does the same and allocates the output;
//! - `run(gpu, arrays…)` uploads ndarray inputs, submits, waits and reads the result back.
//!
//! Shapes are checked before any GPU work, with the same checks the host references use.

pub mod attention;
pub mod attention_layer;
pub mod gelu;

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
