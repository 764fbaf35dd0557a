//! GELU on the GPU, both forms of SPEC: `gelu` (GPT-2's tanh approximation, `gelu_new`) and
//! `gelu_erf` (exact). Elementwise, one invocation per element, 256 per workgroup, on a 2-D grid
//! of workgroups so that any length within the binding limit dispatches. The WGSL is
//! `shaders/gelu.wgsl`; the host twin is [`crate::reference::gelu`].

use ndarray::{ArrayD, ArrayViewD};

use crate::error::{fmt_shape, Error, Result};
use crate::gpu::{Gpu, Shader};
use crate::tensor::GpuTensor;

const SHADER: Shader = crate::gpu::shaders::GELU;
const WORKGROUP: u64 = 256;

/// Which GELU (defined beside the host reference, which must not depend on the GPU op).
pub use crate::spec::gelu::Gelu;

/// The shader entry point of each form.
fn entry(kind: Gelu) -> &'static str {
    match kind {
        Gelu::Tanh => "gelu_tanh",
        Gelu::Erf => "gelu_erf",
    }
}

/// Matches `Params` in `shaders/gelu.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    _pad: [u32; 3],
}

/// `Params` against `shaders/gelu.wgsl` (checked by `tests/params_layout.rs`).
pub(crate) const LAYOUTS: &[crate::gpu::layout::ParamsLayout] = &[crate::gpu::layout::params_layout!(Params, SHADER, [n])];

/// Records `out = gelu(x)` into `encoder`. `out` must have `x`'s shape (it may not alias `x`).
pub fn record_into(gpu: &Gpu, encoder: &mut wgpu::CommandEncoder, kind: Gelu, x: &GpuTensor, out: &GpuTensor) -> Result<()> {
    if out.shape() != x.shape() {
        return Err(Error::Shape(format!(
            "gelu output is {} but x is {}",
            fmt_shape(out.shape()),
            fmt_shape(x.shape())
        )));
    }
    let n = x.len() as u64;
    if n == 0 {
        return Ok(());
    }
    let grid = gpu.grid(n.div_ceil(WORKGROUP), "gelu workgroups")?;
    let kernel = gpu.kernel::<Params>(SHADER, entry(kind), &[])?;
    kernel.record(gpu, encoder, &Params { n: n as u32, _pad: [0; 3] }, &[x.buffer(), out.buffer()], grid);
    Ok(())
}

/// Records `gelu(x)` into `encoder` and returns the new output tensor.
pub fn record(gpu: &Gpu, encoder: &mut wgpu::CommandEncoder, kind: Gelu, x: &GpuTensor) -> Result<GpuTensor> {
    let out = GpuTensor::empty(gpu, x.shape(), "gelu out")?;
    record_into(gpu, encoder, kind, x, &out)?;
    Ok(out)
}

/// Uploads `x`, runs the kernel, and reads the result back.
pub fn run(gpu: &Gpu, kind: Gelu, x: ArrayViewD<'_, f32>) -> Result<ArrayD<f32>> {
    // out has x's shape: checking x checks both, before anything is uploaded.
    GpuTensor::check_fits(gpu, x.shape(), "x")?;
    super::run_single(gpu, |encoder| {
        let x = GpuTensor::upload(gpu, x, "x")?;
        record(gpu, encoder, kind, &x)
    })
}
