//! Softmax along the last axis on the GPU, for `x` [..., N] of any rank ≥ 1.
//!
//! Short rows run one invocation per row (no barriers); long rows run one workgroup per row
//! with a single (max, sum) reduction. Which is short, and the workgroup sizes, depend on the
//! adapter type: see [`RowPath`] and [`super::AUTO_INVOCATION_ROW_LEN_CPU`]. Both paths lay their
//! workgroups on a 2-D grid, so any number of rows dispatches. The WGSL is `shaders/softmax.wgsl`; the host twin is [`crate::reference::softmax`].

use ndarray::{ArrayD, ArrayViewD};

use crate::error::{fmt_shape, Error, Result};
use crate::gpu::{Gpu, Shader};
use crate::spec::softmax::check_shape;
use crate::tensor::GpuTensor;

pub use super::RowPath;
use super::RowKernels;

const SHADER: Shader = crate::gpu::shaders::SOFTMAX;

/// The kernels of the two row paths.
const KERNELS: RowKernels = RowKernels { shader: SHADER, per_invocation: "softmax_rows", per_workgroup: "softmax_wide" };

/// Matches `Params` in `shaders/softmax.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    n: u32,
    _pad: [u32; 2],
}

/// `Params` against `shaders/softmax.wgsl` (checked by `tests/params_layout.rs`).
pub(crate) const LAYOUTS: &[crate::gpu::layout::ParamsLayout] =
    &[crate::gpu::layout::params_layout!(Params, SHADER, [rows, n])];

/// Records `out = softmax(x)` along the last axis into `encoder`. `out` must have `x`'s shape
/// (and may not alias `x`).
pub fn record_into(gpu: &Gpu, encoder: &mut wgpu::CommandEncoder, x: &GpuTensor, out: &GpuTensor) -> Result<()> {
    record_into_with(gpu, encoder, x, out, RowPath::Auto)
}

/// [`record_into`] with the row path chosen by the caller (for tests and tuning).
pub fn record_into_with(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    x: &GpuTensor,
    out: &GpuTensor,
    path: RowPath,
) -> Result<()> {
    let (rows, n) = check_shape(x.shape())?;
    if out.shape() != x.shape() {
        return Err(Error::Shape(format!(
            "softmax output is {} but x is {}",
            fmt_shape(out.shape()),
            fmt_shape(x.shape())
        )));
    }
    if rows == 0 || n == 0 {
        return Ok(());
    }
    let params = Params { rows: rows as u32, n: n as u32, _pad: [0; 2] };
    KERNELS.record(gpu, encoder, &params, &[x.buffer(), out.buffer()], rows, n, path)
}

/// Records `softmax(x)` into `encoder` and returns the new output tensor.
pub fn record(gpu: &Gpu, encoder: &mut wgpu::CommandEncoder, x: &GpuTensor) -> Result<GpuTensor> {
    check_shape(x.shape())?;
    let out = GpuTensor::empty(gpu, x.shape(), "softmax out")?;
    record_into(gpu, encoder, x, &out)?;
    Ok(out)
}

/// Uploads `x`, runs the kernel, and reads the result back.
pub fn run(gpu: &Gpu, x: ArrayViewD<'_, f32>) -> Result<ArrayD<f32>> {
    run_with(gpu, x, RowPath::Auto)
}

/// [`run`] with the row path chosen by the caller.
pub fn run_with(gpu: &Gpu, x: ArrayViewD<'_, f32>, path: RowPath) -> Result<ArrayD<f32>> {
    check_shape(x.shape())?;
    GpuTensor::check_fits(gpu, x.shape(), "x")?;
    super::run_single(gpu, |encoder| {
        let x = GpuTensor::upload(gpu, x, "x")?;
        let out = GpuTensor::empty(gpu, x.shape(), "softmax out")?;
        record_into_with(gpu, encoder, &x, &out, path)?;
        Ok(out)
    })
}
