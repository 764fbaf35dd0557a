//! `matmul` on the GPU: numpy `matmul` of float32 arrays, `a [..., M, K] @ b [..., K, N] ->
//! [..., M, N]`, batch dimensions broadcast.
//!
//! One dispatch of one of several kernels ([`Variant`]): register-blocked kernels without
//! workgroup memory in `shaders/matmul.wgsl` (vec4 loads when K and N are multiples of 4, scalar
//! otherwise) and a double-buffered workgroup-memory kernel in `shaders/matmul_tiled.wgsl`. Which
//! one a call uses is decided per device and shape bucket by [`choose`] (autotuned, see
//! [`autotune`]); [`record_with`] and [`run_with`] run a given one. All (batch, tile) workgroups
//! are flattened into one linear index on a 2-D grid, so any number of batches and tiles
//! dispatches at once.
//!
//! Broadcasting is resolved on the host by [`crate::reference::matmul::batch_pairs`]: a small
//! storage buffer holds, for every output batch, the element offsets of the `a` and `b` matrices
//! it multiplies. That handles every numpy broadcast (any rank, size-1 dimensions anywhere) with
//! one shader and costs 8 bytes per output batch, against a shader that would need one stride
//! per batch dimension. The host twin is [`crate::reference::matmul::matmul`].

use ndarray::{ArrayD, ArrayViewD};

use crate::error::{fmt_shape, Error, Result};
use crate::gpu::Gpu;
use crate::reference::matmul::{batch_pairs, MatmulDims};
use crate::tensor::GpuTensor;

pub mod autotune;
pub mod variant;

pub use variant::Variant;

/// Matches `Params` in `shaders/matmul.wgsl` and `shaders/matmul_tiled.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    m: u32,
    n: u32,
    k: u32,
    tiles_n: u32,
    tiles_per_batch: u32,
    workgroups: u32,
    _pad: [u32; 2],
}

/// Records `out = a @ b` into `encoder` with the variant [`choose`] picks. `out` must have the
/// shape of [`crate::reference::matmul::output_shape`] and may not share a buffer with `a` or `b`.
///
/// The first call in a shape bucket may run the candidate kernels on scratch buffers to pick the
/// fastest (it submits that work itself; the caller's encoder only gets the product).
pub fn record_into(gpu: &Gpu, encoder: &mut wgpu::CommandEncoder, a: &GpuTensor, b: &GpuTensor, out: &GpuTensor) -> Result<()> {
    let dims = checked_dims(a, b, out)?;
    if out.is_empty() {
        return Ok(());
    }
    let variant = autotune::choose(gpu, &dims)?;
    dispatch(gpu, encoder, a, b, out, &dims, variant)
}

/// The variant [`record_into`] uses for `a_shape @ b_shape` on `gpu` (measuring the candidates
/// first if this is the first product in its shape bucket).
pub fn choose(gpu: &Gpu, a_shape: &[usize], b_shape: &[usize]) -> Result<Variant> {
    autotune::choose(gpu, &batch_pairs(a_shape, b_shape)?)
}

/// [`record_into`] with a given variant; fails with [`Error::Input`] if the variant cannot run
/// this product on this device (see [`Variant::supports`]).
pub fn record_with(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    a: &GpuTensor,
    b: &GpuTensor,
    out: &GpuTensor,
    variant: Variant,
) -> Result<()> {
    let dims = checked_dims(a, b, out)?;
    if out.is_empty() {
        return Ok(());
    }
    if !variant.supports(gpu, dims.k, dims.n) {
        return Err(Error::Input(format!(
            "matmul variant {variant} cannot compute a {} @ b {} on this device",
            fmt_shape(a.shape()),
            fmt_shape(b.shape())
        )));
    }
    dispatch(gpu, encoder, a, b, out, &dims, variant)
}

/// Checks `a @ b -> out` and returns its dimensions.
fn checked_dims(a: &GpuTensor, b: &GpuTensor, out: &GpuTensor) -> Result<MatmulDims> {
    let dims = batch_pairs(a.shape(), b.shape())?;
    let out_shape = dims.out_shape();
    if out.shape() != out_shape.as_slice() {
        return Err(Error::Shape(format!(
            "matmul output is {} but a {} @ b {} is {}",
            fmt_shape(out.shape()),
            fmt_shape(a.shape()),
            fmt_shape(b.shape()),
            fmt_shape(&out_shape)
        )));
    }
    if out.buffer() == a.buffer() || out.buffer() == b.buffer() {
        return Err(Error::Input("matmul output may not share a buffer with a or b".into()));
    }
    check_indexing(a, b, out)?;
    Ok(dims)
}

/// Records the product with `variant` (shapes already checked, output not empty).
fn dispatch(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    a: &GpuTensor,
    b: &GpuTensor,
    out: &GpuTensor,
    dims: &MatmulDims,
    variant: Variant,
) -> Result<()> {
    let (m, k, n) = (dims.m as u64, dims.k as u64, dims.n as u64);
    let [tile_m, tile_n] = variant.tile();
    let tiles_n = n.div_ceil(tile_n);
    let tiles_per_batch = m.div_ceil(tile_m) * tiles_n;
    let workgroups = tiles_per_batch * dims.pairs.len() as u64;
    let grid = gpu.grid(workgroups, "matmul workgroups")?;
    // Every element offset below fits in u32 (checked by `checked_dims`); the workgroup count is
    // under 2^32 by `grid`.
    let offset_bytes = dims.pairs.len() as u64 * 8;
    let binding_limit = gpu.limits().max_storage_buffer_binding_size;
    if offset_bytes > binding_limit {
        return Err(Error::Limit {
            what: format!("matmul batch offsets for {} output batches", dims.pairs.len()),
            limit: "max_storage_buffer_binding_size",
            needed: offset_bytes,
            allowed: binding_limit,
        });
    }
    let offsets: Vec<[u32; 2]> =
        dims.pairs.iter().map(|&(i, j)| [(i as u64 * m * k) as u32, (j as u64 * k * n) as u32]).collect();
    let offsets = gpu.buffer_with("matmul batch offsets", bytemuck::cast_slice(&offsets), wgpu::BufferUsages::STORAGE);
    let params = Params {
        m: m as u32,
        n: n as u32,
        k: k as u32,
        tiles_n: tiles_n as u32,
        tiles_per_batch: tiles_per_batch as u32,
        workgroups: workgroups as u32,
        _pad: [0; 2],
    };
    let (shader, entry) = variant.kernel();
    let pipeline = gpu.pipeline(shader, entry, &[])?;
    gpu.dispatch(encoder, &pipeline, &params, &[a.buffer(), b.buffer(), &offsets, out.buffer()], grid);
    Ok(())
}

/// Records `a @ b` into `encoder` and returns the new output tensor.
pub fn record(gpu: &Gpu, encoder: &mut wgpu::CommandEncoder, a: &GpuTensor, b: &GpuTensor) -> Result<GpuTensor> {
    let shape = crate::reference::matmul::output_shape(a.shape(), b.shape())?;
    let out = GpuTensor::empty(gpu, &shape, "matmul out")?;
    record_into(gpu, encoder, a, b, &out)?;
    Ok(out)
}

/// Uploads `a` and `b`, runs the kernel, and reads the result back.
pub fn run(gpu: &Gpu, a: ArrayViewD<'_, f32>, b: ArrayViewD<'_, f32>) -> Result<ArrayD<f32>> {
    // Check shapes and sizes before uploading anything.
    let out_shape = crate::reference::matmul::output_shape(a.shape(), b.shape())?;
    for (name, shape) in [("a", a.shape()), ("b", b.shape()), ("matmul out", out_shape.as_slice())] {
        GpuTensor::check_fits(gpu, shape, name)?;
    }
    super::run_single(gpu, |encoder| {
        let a = GpuTensor::upload(gpu, a, "a")?;
        let b = GpuTensor::upload(gpu, b, "b")?;
        record(gpu, encoder, &a, &b)
    })
}

/// [`run`] with a given variant (see [`record_with`]).
pub fn run_with(gpu: &Gpu, a: ArrayViewD<'_, f32>, b: ArrayViewD<'_, f32>, variant: Variant) -> Result<ArrayD<f32>> {
    let shape = crate::reference::matmul::output_shape(a.shape(), b.shape())?;
    super::run_single(gpu, |encoder| {
        let a = GpuTensor::upload(gpu, a, "a")?;
        let b = GpuTensor::upload(gpu, b, "b")?;
        let out = GpuTensor::empty(gpu, &shape, "matmul out")?;
        record_with(gpu, encoder, &a, &b, &out, variant)?;
        Ok(out)
    })
}

/// The shader indexes elements with u32: refuse tensors with more elements than that.
fn check_indexing(a: &GpuTensor, b: &GpuTensor, out: &GpuTensor) -> Result<()> {
    for (name, t) in [("a", a), ("b", b), ("out", out)] {
        if t.len() as u64 > u64::from(u32::MAX) {
            return Err(Error::Limit {
                what: format!("matmul {name} of shape {} (elements)", fmt_shape(t.shape())),
                limit: "32-bit element indexing in shaders/matmul.wgsl",
                needed: t.len() as u64,
                allowed: u64::from(u32::MAX),
            });
        }
    }
    Ok(())
}
