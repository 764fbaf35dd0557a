//! Layer norm over the last axis on the GPU, for `x` [..., N] of any rank ≥ 1:
//! `out = (x - mean) / sqrt(var + eps) * w + b` with the biased variance.
//!
//! The affine part is optional (without it this is TransformerLens's `LNPre`), and the per-row
//! `scale = sqrt(var + eps)` [..., 1] (TransformerLens's `hook_scale`) can be written as a second
//! output: see [`record_into_full`]. Short rows run one invocation per row (no barriers); long
//! rows run one workgroup per row with one merge of partial (count, mean, M2) statistics; which
//! is short, and the workgroup sizes, depend on the adapter type (see [`RowPath`]). Rows are
//! shifted by //! their first element so that a mean 10^4 times the spread costs no accuracy. The WGSL is
//! `shaders/layer_norm.wgsl`; the host twin is [`crate::reference::layer_norm`].

use ndarray::{ArrayD, ArrayViewD};

use crate::error::{fmt_shape, Error, Result};
use crate::gpu::{Gpu, Shader};
use crate::spec::layer_norm::{check_eps, check_shapes, scale_shape};
use crate::tensor::GpuTensor;

pub use super::RowPath;
use super::RowKernels;

const SHADER: Shader = crate::gpu::shaders::LAYER_NORM;
const FLAG_AFFINE: u32 = 1;
const FLAG_SCALE: u32 = 2;

/// The kernels of the two row paths.
const KERNELS: RowKernels = RowKernels { shader: SHADER, per_invocation: "layer_norm_rows", per_workgroup: "layer_norm_wide" };

/// Matches `Params` in `shaders/layer_norm.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    n: u32,
    eps: f32,
    flags: u32,
}

/// `Params` against `shaders/layer_norm.wgsl` (checked by `tests/params_layout.rs`).
pub(crate) const LAYOUTS: &[crate::gpu::layout::ParamsLayout] =
    &[crate::gpu::layout::params_layout!(Params, SHADER, [rows, n, eps, flags])];

/// Records `out = layer_norm(x, w, b, eps)` into `encoder`. `out` must have `x`'s shape.
pub fn record_into(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    x: &GpuTensor,
    w: &GpuTensor,
    b: &GpuTensor,
    eps: f32,
    out: &GpuTensor,
) -> Result<()> {
    record_into_full(gpu, encoder, x, Some((w, b)), eps, out, None)
}

/// Records layer norm with optional `(w, b)` (none: `LNPre`) into `out` (`x`'s shape) and, when
/// `scale_out` is given, the per-row `sqrt(var + eps)` into it (shape [..., 1]).
pub fn record_into_full(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    x: &GpuTensor,
    affine: Option<(&GpuTensor, &GpuTensor)>,
    eps: f32,
    out: &GpuTensor,
    scale_out: Option<&GpuTensor>,
) -> Result<()> {
    record_into_with(gpu, encoder, x, affine, eps, out, scale_out, RowPath::Auto)
}

/// [`record_into_full`] with the row path chosen by the caller (for tests and tuning).
#[allow(clippy::too_many_arguments)] // record_into_full's seven plus the path
pub fn record_into_with(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    x: &GpuTensor,
    affine: Option<(&GpuTensor, &GpuTensor)>,
    eps: f32,
    out: &GpuTensor,
    scale_out: Option<&GpuTensor>,
    path: RowPath,
) -> Result<()> {
    let (rows, n) = check_shapes(x.shape(), affine.map(|(w, b)| (w.shape(), b.shape())))?;
    check_eps(f64::from(eps))?;
    if out.shape() != x.shape() {
        return Err(Error::Shape(format!(
            "layer_norm output is {} but x is {}",
            fmt_shape(out.shape()),
            fmt_shape(x.shape())
        )));
    }
    if let Some(scale) = scale_out {
        let want = scale_shape(x.shape());
        if scale.shape() != want.as_slice() {
            return Err(Error::Shape(format!(
                "layer_norm scale output is {} but must be {} for x {}",
                fmt_shape(scale.shape()),
                fmt_shape(&want),
                fmt_shape(x.shape())
            )));
        }
    }
    // An empty row still has a (NaN) scale, so only skip when nothing at all is written.
    if rows == 0 || (n == 0 && scale_out.is_none()) {
        return Ok(());
    }
    let flags = affine.map_or(0, |_| FLAG_AFFINE) | scale_out.map_or(0, |_| FLAG_SCALE);
    let params = Params { rows: rows as u32, n: n as u32, eps, flags };
    // The shader binds every buffer; stand-ins take the place of the parts not asked for.
    let read_stand_in;
    let (w, b) = match affine {
        Some((w, b)) => (w.buffer(), b.buffer()),
        None => {
            read_stand_in = gpu.scratch("layer_norm w/b stand-in", &[1])?;
            (read_stand_in.buffer(), read_stand_in.buffer())
        }
    };
    let write_stand_in;
    let scale = match scale_out {
        Some(s) => s.buffer(),
        None => {
            write_stand_in = gpu.scratch("layer_norm scale stand-in", &[1])?;
            write_stand_in.buffer()
        }
    };
    KERNELS.record(gpu, encoder, &params, &[x.buffer(), w, b, out.buffer(), scale], rows, n, path)
}

/// Records `layer_norm(x, w, b, eps)` into `encoder` and returns the new output tensor.
pub fn record(gpu: &Gpu, encoder: &mut wgpu::CommandEncoder, x: &GpuTensor, w: &GpuTensor, b: &GpuTensor, eps: f32) -> Result<GpuTensor> {
    Ok(record_full(gpu, encoder, x, Some((w, b)), eps, false)?.0)
}

/// Records layer norm with optional `(w, b)` and returns the new output and, if `with_scale`,
/// the new per-row scale tensor [..., 1].
pub fn record_full(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    x: &GpuTensor,
    affine: Option<(&GpuTensor, &GpuTensor)>,
    eps: f32,
    with_scale: bool,
) -> Result<(GpuTensor, Option<GpuTensor>)> {
    check_shapes(x.shape(), affine.map(|(w, b)| (w.shape(), b.shape())))?;
    let out = GpuTensor::empty(gpu, x.shape(), "layer_norm out")?;
    let scale = match with_scale {
        true => Some(GpuTensor::empty(gpu, &scale_shape(x.shape()), "layer_norm scale")?),
        false => None,
    };
    record_into_full(gpu, encoder, x, affine, eps, &out, scale.as_ref())?;
    Ok((out, scale))
}

/// Uploads `x`, `w` and `b`, runs the kernel, and reads the result back.
pub fn run(gpu: &Gpu, x: ArrayViewD<'_, f32>, w: ArrayViewD<'_, f32>, b: ArrayViewD<'_, f32>, eps: f32) -> Result<ArrayD<f32>> {
    Ok(run_full(gpu, x, Some((w, b)), eps)?.0)
}

/// Uploads the inputs, runs layer norm with optional `(w, b)`, and reads back the output and the
/// per-row scale [..., 1].
pub fn run_full(
    gpu: &Gpu,
    x: ArrayViewD<'_, f32>,
    affine: Option<(ArrayViewD<'_, f32>, ArrayViewD<'_, f32>)>,
    eps: f32,
) -> Result<(ArrayD<f32>, ArrayD<f32>)> {
    run_full_with(gpu, x, affine, eps, RowPath::Auto)
}

/// [`run_full`] with the row path chosen by the caller (for tests and tuning).
pub fn run_full_with(
    gpu: &Gpu,
    x: ArrayViewD<'_, f32>,
    affine: Option<(ArrayViewD<'_, f32>, ArrayViewD<'_, f32>)>,
    eps: f32,
    path: RowPath,
) -> Result<(ArrayD<f32>, ArrayD<f32>)> {
    check_shapes(x.shape(), affine.as_ref().map(|(w, b)| (w.shape(), b.shape())))?;
    check_eps(f64::from(eps))?;
    GpuTensor::check_fits(gpu, x.shape(), "x")?;
    GpuTensor::check_fits(gpu, &scale_shape(x.shape()), "layer_norm scale")?;
    let outputs = super::run_many(gpu, |encoder| {
        let xt = GpuTensor::upload(gpu, x, "x")?;
        let affine = match affine {
            Some((w, b)) => Some((GpuTensor::upload(gpu, w, "w")?, GpuTensor::upload(gpu, b, "b")?)),
            None => None,
        };
        let out = GpuTensor::empty(gpu, xt.shape(), "layer_norm out")?;
        let scale = GpuTensor::empty(gpu, &scale_shape(xt.shape()), "layer_norm scale")?;
        let affine_refs = affine.as_ref().map(|(w, b)| (w, b));
        record_into_with(gpu, encoder, &xt, affine_refs, eps, &out, Some(&scale), path)?;
        Ok(vec![out, scale])
    })?;
    match <[ArrayD<f32>; 2]>::try_from(outputs) {
        Ok([out, scale]) => Ok((out, scale)),
        Err(_) => Err(Error::Gpu("layer_norm read back other than two tensors".into())),
    }
}
