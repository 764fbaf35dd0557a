//! `matmul` on the GPU: numpy `matmul` of float32 arrays, `a [..., M, K] @ b [..., K, N] ->
//! [..., M, N]`, batch dimensions broadcast; and the general product every other GPU matrix
//! multiply in shaderlens goes through ([`record_gemm`]): either operand transposed (`a bᵀ`,
//! `aᵀ b`, which every weight gradient needs), an optional bias added to every row, and
//! optionally accumulated into the output (`c += a b`).
//!
//! One dispatch of one of several kernels ([`Variant`]): register-blocked kernels without
//! workgroup memory in `shaders/matmul.wgsl` (vec4 loads when K and N are multiples of 4, scalar
//! otherwise) and a double-buffered workgroup-memory kernel in `shaders/matmul_tiled.wgsl`. Which
//! one a call uses is decided per device and shape bucket by [`choose`] (autotuned, see
//! [`autotune`]); [`record_with`] and [`run_with`] run a given one. All (batch, tile) workgroups
//! are flattened into one linear index on a 2-D grid, so any number of batches and tiles
//! dispatches at once.
//!
//! Broadcasting is resolved on the host by [`crate::spec::matmul::batch_pairs`]: a small
//! storage buffer holds, for every output batch, the element offsets of the `a` and `b` matrices
//! it multiplies. That handles every numpy broadcast (any rank, size-1 dimensions anywhere) with
//! one shader and costs 8 bytes per output batch, against a shader that would need one stride
//! per batch dimension. The host twin is [`crate::spec::matmul::matmul`].

use ndarray::{ArrayD, ArrayViewD};

use crate::error::{fmt_shape, Error, Result};
use crate::gpu::Gpu;
use crate::spec::matmul::{batch_pairs, MatmulDims};
use crate::tensor::GpuTensor;

pub mod autotune;
pub mod split_k;
pub mod variant;

pub use variant::Variant;

mod table;

use table::{Params, FLAG_ACCUMULATE, FLAG_BIAS};
pub use variant::Kind;

/// `Params` against both matmul shaders (checked by `tests/params_layout.rs`).
pub(crate) const LAYOUTS: &[crate::gpu::layout::ParamsLayout] = &[
    crate::gpu::layout::params_layout!(Params, variant::BLOCKED, [m, n, k, tiles_n, tiles_per_batch, workgroups, flags, a_rs, a_ks, b_ks, b_js]),
    crate::gpu::layout::params_layout!(Params, variant::TILED, [m, n, k, tiles_n, tiles_per_batch, workgroups, flags, a_rs, a_ks, b_ks, b_js]),
];

/// How [`record_gemm`] combines its operands: `out = op(a) op(b) (+ bias) (+ out)`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Gemm<'a> {
    /// Read `a` stored \[..., K, M\] as its transpose: `aᵀ b`.
    pub transpose_a: bool,
    /// Read `b` stored \[..., N, K\] as its transpose: `a bᵀ`.
    pub transpose_b: bool,
    /// Add `bias` \[N\] to every row of the product.
    pub bias: Option<&'a GpuTensor>,
    /// Add the product to the output's old value (`c += a b`) instead of overwriting it.
    pub accumulate: bool,
}

/// The dimensions of `op(a) op(b)` for operands stored with `a_shape` and `b_shape`: numpy's
/// matmul rules on the shapes with the last two axes of each transposed operand swapped.
pub fn gemm_dims(a_shape: &[usize], b_shape: &[usize], transpose_a: bool, transpose_b: bool) -> Result<MatmulDims> {
    let logical = |shape: &[usize], transpose: bool, name: &str| -> Result<Vec<usize>> {
        let mut s = shape.to_vec();
        if transpose {
            let r = s.len();
            if r < 2 {
                return Err(Error::Shape(format!("a transposed matmul operand needs rank >= 2, but {name} is {}", fmt_shape(shape))));
            }
            s.swap(r - 2, r - 1);
        }
        Ok(s)
    };
    batch_pairs(&logical(a_shape, transpose_a, "a")?, &logical(b_shape, transpose_b, "b")?)
}

/// Records `out = a @ b` into `encoder` with the variant [`choose`] picks. `out` must have the
/// shape of [`crate::spec::matmul::output_shape`] and may not share a buffer with `a` or `b`.
///
/// The first call in a shape bucket may run the candidate kernels on scratch buffers to pick the
/// fastest (it submits that work itself; the caller's encoder only gets the product).
pub fn record_into(gpu: &Gpu, encoder: &mut wgpu::CommandEncoder, a: &GpuTensor, b: &GpuTensor, out: &GpuTensor) -> Result<()> {
    record_gemm(gpu, encoder, a, b, out, &Gemm::default())
}

/// Records `out = op(a) op(b) (+ bias) (+ out)` as `gemm` says, with the variant the autotuner
/// picks for this product (see [`record_into`]).
pub fn record_gemm(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    a: &GpuTensor,
    b: &GpuTensor,
    out: &GpuTensor,
    gemm: &Gemm<'_>,
) -> Result<()> {
    let dims = checked_dims(a, b, out, gemm)?;
    if out.is_empty() {
        return Ok(());
    }
    if let Some(plan) = split_k::plan(gpu, &dims, gemm) {
        return split_k::record(gpu, encoder, a, b, out, &dims, gemm, plan);
    }
    let variant = autotune::choose(gpu, &dims, gemm.transpose_a, gemm.transpose_b)?;
    dispatch(gpu, encoder, a, b, out, &dims, gemm, variant, &Layout::dense(&dims, gemm))
}

/// The variant [`record_into`] uses for `a_shape @ b_shape` on `gpu` (measuring the candidates
/// first if this is the first product in its shape bucket).
pub fn choose(gpu: &Gpu, a_shape: &[usize], b_shape: &[usize]) -> Result<Variant> {
    autotune::choose(gpu, &batch_pairs(a_shape, b_shape)?, false, false)
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
    record_gemm_with(gpu, encoder, a, b, out, &Gemm::default(), variant)
}

/// [`record_gemm`] with a given variant; fails with [`Error::Input`] if the variant cannot run
/// this product on this device (see [`Variant::supports_product`]).
pub fn record_gemm_with(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    a: &GpuTensor,
    b: &GpuTensor,
    out: &GpuTensor,
    gemm: &Gemm<'_>,
    variant: Variant,
) -> Result<()> {
    let dims = checked_dims(a, b, out, gemm)?;
    if out.is_empty() {
        return Ok(());
    }
    if !variant.supports_product(gpu, gemm.transpose_a, gemm.transpose_b, dims.k, dims.n) {
        let t = |yes| if yes { "ᵀ" } else { "" };
        return Err(Error::Input(format!(
            "matmul variant {variant} cannot compute a{} {} @ b{} {} on this device",
            t(gemm.transpose_a),
            fmt_shape(a.shape()),
            t(gemm.transpose_b),
            fmt_shape(b.shape())
        )));
    }
    dispatch(gpu, encoder, a, b, out, &dims, gemm, variant, &Layout::dense(&dims, gemm))
}

/// Checks `op(a) op(b) -> out` (and the bias) and returns its dimensions.
fn checked_dims(a: &GpuTensor, b: &GpuTensor, out: &GpuTensor, gemm: &Gemm<'_>) -> Result<MatmulDims> {
    let dims = gemm_dims(a.shape(), b.shape(), gemm.transpose_a, gemm.transpose_b)?;
    if let Some(bias) = gemm.bias {
        if bias.shape() != [dims.n] {
            return Err(Error::Shape(format!("matmul bias is {} but the product has {} columns", fmt_shape(bias.shape()), dims.n)));
        }
        if bias.buffer() == out.buffer() {
            return Err(Error::Input("matmul output may not share a buffer with the bias".into()));
        }
    }
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

/// Where each output batch's operands start and how they are strided: what [`dispatch`] tells
/// the kernel beyond the dimensions. [`Layout::dense`] is the ordinary product's; split-K
/// ([`split_k`]) reads K-chunks of one product as batches of a strided view.
pub(crate) struct Layout {
    /// For every output batch, the element offsets of its `a` and `b` matrices.
    pub offsets: Vec<[u64; 2]>,
    /// `a(i, k) = a[offset + i a_rs + k a_ks]`.
    pub a_rs: u64,
    pub a_ks: u64,
    /// `b(k, j) = b[offset + k b_ks + j b_js]`.
    pub b_ks: u64,
    pub b_js: u64,
}

impl Layout {
    /// Operands stored densely as their shapes say (transposed ones with the last two axes swapped).
    fn dense(dims: &MatmulDims, gemm: &Gemm<'_>) -> Self {
        let (m, k, n) = (dims.m as u64, dims.k as u64, dims.n as u64);
        let offsets = dims.pairs.iter().map(|&(i, j)| [i as u64 * m * k, j as u64 * k * n]).collect();
        let (a_rs, a_ks) = if gemm.transpose_a { (1, m) } else { (k, 1) };
        let (b_ks, b_js) = if gemm.transpose_b { (1, k) } else { (n, 1) };
        Self { offsets, a_rs, a_ks, b_ks, b_js }
    }
}

/// Records the product with `variant` (shapes already checked, output not empty), its operands
/// where `layout` says ([`Layout::dense`] for an ordinary product).
#[allow(clippy::too_many_arguments)] // private: the checked pieces of one call
pub(crate) fn dispatch(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    a: &GpuTensor,
    b: &GpuTensor,
    out: &GpuTensor,
    dims: &MatmulDims,
    gemm: &Gemm<'_>,
    variant: Variant,
    layout: &Layout,
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
    let offsets: Vec<[u32; 2]> = layout.offsets.iter().map(|&[i, j]| [i as u32, j as u32]).collect();
    let offsets = gpu.constant_storage(bytemuck::cast_slice(&offsets));
    let flags = if gemm.bias.is_some() { FLAG_BIAS } else { 0 } | if gemm.accumulate { FLAG_ACCUMULATE } else { 0 };
    let params = Params {
        m: m as u32,
        n: n as u32,
        k: k as u32,
        tiles_n: tiles_n as u32,
        tiles_per_batch: tiles_per_batch as u32,
        workgroups: workgroups as u32,
        flags,
        a_rs: layout.a_rs as u32,
        a_ks: layout.a_ks as u32,
        b_ks: layout.b_ks as u32,
        b_js: layout.b_js as u32,
        _pad0: 0,
    };
    // The shader binds a bias in every case (vec4 kernels read four at a time).
    let bias = match gemm.bias {
        Some(bias) => bias.clone(),
        None => gpu.scratch("matmul bias stand-in", &[4])?,
    };
    let (shader, entry) = variant.kernel();
    let kernel = gpu.kernel::<Params>(shader, entry, &[])?;
    let buffers = [a.buffer(), b.buffer(), &offsets, out.buffer(), bias.buffer()];
    kernel.record(gpu, encoder, &params, &buffers, grid);
    Ok(())
}

/// Records `a @ b` into `encoder` and returns the new output tensor.
pub fn record(gpu: &Gpu, encoder: &mut wgpu::CommandEncoder, a: &GpuTensor, b: &GpuTensor) -> Result<GpuTensor> {
    let shape = crate::spec::matmul::output_shape(a.shape(), b.shape())?;
    let out = GpuTensor::empty(gpu, &shape, "matmul out")?;
    record_into(gpu, encoder, a, b, &out)?;
    Ok(out)
}

/// Uploads `a` and `b`, runs the kernel, and reads the result back.
pub fn run(gpu: &Gpu, a: ArrayViewD<'_, f32>, b: ArrayViewD<'_, f32>) -> Result<ArrayD<f32>> {
    // Check shapes and sizes before uploading anything.
    let out_shape = crate::spec::matmul::output_shape(a.shape(), b.shape())?;
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
    let shape = crate::spec::matmul::output_shape(a.shape(), b.shape())?;
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
