//! `matmul` on the GPU: numpy `matmul` of float32 arrays, `a [..., M, K] @ b [..., K, N] ->
//! [..., M, N]`, batch dimensions broadcast.
//!
//! One dispatch of `shaders/matmul.wgsl`, register-blocked without workgroup memory: when K and N
//! are multiples of 4 the `matmul_vec4` kernel (8x8 outputs an invocation, 8x8 invocations, a
//! 64x64 tile, vec4 loads), otherwise the scalar `matmul` kernel (4x4 outputs an invocation, a
//! 32x32 tile). All (batch, tile) workgroups are flattened into one linear index on a 2-D grid,
//! so any number of batches and tiles dispatches at once.
//!
//! Broadcasting is resolved on the host by [`crate::reference::matmul::batch_pairs`]: a small
//! storage buffer holds, for every output batch, the element offsets of the `a` and `b` matrices
//! it multiplies. That handles every numpy broadcast (any rank, size-1 dimensions anywhere) with
//! one shader and costs 8 bytes per output batch, against a shader that would need one stride
//! per batch dimension. The host twin is [`crate::reference::matmul::matmul`].

use ndarray::{ArrayD, ArrayViewD};

use crate::error::{fmt_shape, Error, Result};
use crate::gpu::{Gpu, Shader};
use crate::reference::matmul::batch_pairs;
use crate::tensor::GpuTensor;

const SHADER: Shader = Shader { name: "matmul", source: include_str!("../../shaders/matmul.wgsl") };
/// Output tile of a workgroup, `[rows, columns]`: the scalar kernel's 8x8 invocations of 4x4
/// outputs, the vec4 kernel's 8x8 invocations of 8 rows x 2 vec4s.
const TILE_SCALAR: [u64; 2] = [32, 32];
const TILE_VEC4: [u64; 2] = [64, 64];

/// Matches `Params` in `shaders/matmul.wgsl`.
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

/// Records `out = a @ b` into `encoder`. `out` must have the shape of [`crate::reference::matmul::output_shape`]
/// and may not share a buffer with `a` or `b`.
pub fn record_into(gpu: &Gpu, encoder: &mut wgpu::CommandEncoder, a: &GpuTensor, b: &GpuTensor, out: &GpuTensor) -> Result<()> {
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
    if out.is_empty() {
        return Ok(());
    }
    let (m, k, n) = (dims.m as u64, dims.k as u64, dims.n as u64);
    // The vec4 kernel needs every row of a, b and out to start on a 16-byte boundary (and a
    // non-empty a, since a vec4 binding must hold at least one vec4).
    let vec4 = k % 4 == 0 && n % 4 == 0 && k > 0;
    let (entry, [tile_m, tile_n]) = if vec4 { ("matmul_vec4", TILE_VEC4) } else { ("matmul", TILE_SCALAR) };
    let tiles_n = n.div_ceil(tile_n);
    let tiles_per_batch = m.div_ceil(tile_m) * tiles_n;
    let workgroups = tiles_per_batch * dims.pairs.len() as u64;
    let grid = gpu.grid(workgroups, "matmul workgroups")?;
    check_indexing(a, b, out)?;
    // Every element offset below fits in u32 (checked just above); the workgroup count is under
    // 2^32 by `grid`.
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
    let pipeline = gpu.pipeline(SHADER, entry, &[])?;
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
