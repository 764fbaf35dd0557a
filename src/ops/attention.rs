//! Attention on the GPU: `pattern = softmax(scale q kᵀ, masked)`, `out = pattern v`, for
//! q [B,H,Sq,D], k [B,H,Sk,D], v [B,H,Sk,Dv], with SPEC's bottom-right causal mask.
//!
//! Two paths, both barrier-free and register-blocked (see the WGSL headers for the tiling):
//! - **unfused**, when the caller wants the pattern: `attention_scores.wgsl` writes the masked
//!   logits into the pattern buffer (4 x 4 tiles), `attention_softmax.wgsl` normalises each row in
//!   place (one invocation a row), `attention_pv.wgsl` multiplies by v (4 x 4 tiles);
//! - **fused**, when it does not: `attention_fused.wgsl` walks the keys once with an online
//!   softmax (4 queries x 64 value columns an invocation) and never stores the Sq x Sk matrix.
//!
//! The pre-softmax scores (TransformerLens's `hook_attn_scores`, `-inf` where masked) are an
//! optional third output: on the unfused path they are a copy of the pattern buffer taken before
//! the softmax, on the fused path one extra scores dispatch.
//!
//! All kernels address q, k, v and out through strides, so [`crate::ops::attention_layer`] runs
//! them directly on TransformerLens's [B, S, H, dh] layout. The host twin is
//! [`crate::reference::attention`], whose shape check this module shares.

use ndarray::{ArrayD, ArrayViewD};

use crate::error::{fmt_shape, Error, Result};
use crate::gpu::{Gpu, Shader};
use crate::reference::attention::{attention_shapes, AttentionDims};
use crate::tensor::GpuTensor;

/// One attention kernel: the shared prelude followed by the kernel's own file.
macro_rules! attention_shader {
    ($name:literal) => {
        Shader {
            name: $name,
            source: concat!(
                include_str!("../../shaders/attention_common.wgsl"),
                include_str!(concat!("../../shaders/", $name, ".wgsl"))
            ),
        }
    };
}

const SCORES: Shader = attention_shader!("attention_scores");
const SOFTMAX: Shader = attention_shader!("attention_softmax");
const PV: Shader = attention_shader!("attention_pv");
const FUSED: Shader = attention_shader!("attention_fused");

/// Invocations per workgroup in every attention kernel (`WG` in the WGSL).
const WORKGROUP: u64 = 64;
/// Queries (and keys, and value columns) per register tile.
const TILE: usize = 4;
/// Value columns per invocation of the fused kernel (`CHUNK4 * 4` in the WGSL).
const FUSED_CHUNK: usize = 64;

/// Matches `Params` in `shaders/attention_common.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    heads: u32,
    sq: u32,
    sk: u32,
    d: u32,
    dv: u32,
    causal: u32,
    scale: f32,
    neg_inf: f32,
    q: [u32; 3],
    k: [u32; 3],
    v: [u32; 3],
    out: [u32; 3],
    count: u32,
    tiles_i: u32,
    tiles_j: u32,
    _pad: u32,
}

/// Strides, in elements, of a tensor read as [B, H, rows, columns] with contiguous columns.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Strides {
    batch: usize,
    head: usize,
    row: usize,
}

impl Strides {
    /// A contiguous [B, H, rows, cols] tensor.
    pub(crate) fn bhsc(heads: usize, rows: usize, cols: usize) -> Self {
        Self { batch: heads * rows * cols, head: rows * cols, row: cols }
    }

    /// A contiguous [B, rows, H, cols] tensor (TransformerLens's [B, S, H, dh]).
    pub(crate) fn bshc(heads: usize, rows: usize, cols: usize) -> Self {
        Self { batch: rows * heads * cols, head: cols, row: heads * cols }
    }

    fn to_u32(self) -> Result<[u32; 3]> {
        Ok([u32_of(self.batch, "batch stride")?, u32_of(self.head, "head stride")?, u32_of(self.row, "row stride")?])
    }
}

/// An attention problem on GPU tensors already checked against `dims`.
pub(crate) struct Problem<'a> {
    pub dims: AttentionDims,
    pub causal: bool,
    pub scale: f32,
    pub q: (&'a GpuTensor, Strides),
    pub k: (&'a GpuTensor, Strides),
    pub v: (&'a GpuTensor, Strides),
    pub out: (&'a GpuTensor, Strides),
}

/// The outputs of [`record_outputs_into`]: `out` always, the pattern and the scores on request.
#[derive(Clone, Copy, Debug)]
pub struct Outputs<'a> {
    /// [B, H, Sq, Dv], written.
    pub out: &'a GpuTensor,
    /// [B, H, Sq, Sk]: `Some` takes the unfused path and writes the pattern; `None` the fused path.
    pub pattern: Option<&'a GpuTensor>,
    /// [B, H, Sq, Sk]: the scaled, masked scores before the softmax (`-inf` where masked).
    pub scores: Option<&'a GpuTensor>,
}

/// Records attention into `out`, and into `pattern` when it is `Some` (unfused path); with
/// `pattern` `None` the fused path never materialises the Sq x Sk matrix.
#[allow(clippy::too_many_arguments)]
pub fn record_into(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    q: &GpuTensor,
    k: &GpuTensor,
    v: &GpuTensor,
    causal: bool,
    scale: f32,
    out: &GpuTensor,
    pattern: Option<&GpuTensor>,
) -> Result<()> {
    record_outputs_into(gpu, encoder, q, k, v, causal, scale, Outputs { out, pattern, scores: None })
}

/// [`record_into`] with the pre-softmax scores as an optional extra output.
#[allow(clippy::too_many_arguments)]
pub fn record_outputs_into(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    q: &GpuTensor,
    k: &GpuTensor,
    v: &GpuTensor,
    causal: bool,
    scale: f32,
    outputs: Outputs<'_>,
) -> Result<()> {
    let dims = attention_shapes(q.shape(), k.shape(), v.shape())?;
    let given = |name: &str, t: &GpuTensor, want: [usize; 4]| {
        if t.shape() == want {
            return Ok(());
        }
        Err(Error::Shape(format!(
            "{name} is {} but q {}, k {} and v {} need {name} {}",
            fmt_shape(t.shape()),
            fmt_shape(q.shape()),
            fmt_shape(k.shape()),
            fmt_shape(v.shape()),
            fmt_shape(&want)
        )))
    };
    given("out", outputs.out, dims.out_shape())?;
    for (name, t) in [("pattern", outputs.pattern), ("scores", outputs.scores)] {
        if let Some(t) = t {
            given(name, t, dims.pattern_shape())?;
        }
    }
    let (h, d, dv) = (dims.heads, dims.d, dims.dv);
    let problem = Problem {
        dims,
        causal,
        scale,
        q: (q, Strides::bhsc(h, dims.sq, d)),
        k: (k, Strides::bhsc(h, dims.sk, d)),
        v: (v, Strides::bhsc(h, dims.sk, dv)),
        out: (outputs.out, Strides::bhsc(h, dims.sq, dv)),
    };
    record_problem(gpu, encoder, &problem, outputs.pattern, outputs.scores)
}

/// Records only the pre-softmax scores `scale q kᵀ` (`-inf` where masked) into `scores`
/// [B, H, Sq, Sk].
pub fn record_scores_into(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    q: &GpuTensor,
    k: &GpuTensor,
    causal: bool,
    scale: f32,
    scores: &GpuTensor,
) -> Result<()> {
    let dims = attention_shapes(q.shape(), k.shape(), k.shape())?;
    if scores.shape() != dims.pattern_shape() {
        return Err(Error::Shape(format!(
            "scores is {} but q {} and k {} need scores {}",
            fmt_shape(scores.shape()),
            fmt_shape(q.shape()),
            fmt_shape(k.shape()),
            fmt_shape(&dims.pattern_shape())
        )));
    }
    let (h, d) = (dims.heads, dims.d);
    let strides = Strides::bhsc(h, dims.sk, d);
    let problem = Problem {
        dims,
        causal,
        scale,
        q: (q, Strides::bhsc(h, dims.sq, d)),
        k: (k, strides),
        v: (k, strides),
        out: (scores, Strides::bhsc(h, dims.sq, dims.sk)),
    };
    dispatch_scores(gpu, encoder, &problem, scores)
}

/// Records attention and returns `(out, pattern)`, allocating both; `want_pattern = false` takes
/// the fused path and returns no pattern.
#[allow(clippy::too_many_arguments)]
pub fn record(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    q: &GpuTensor,
    k: &GpuTensor,
    v: &GpuTensor,
    causal: bool,
    scale: f32,
    want_pattern: bool,
) -> Result<(GpuTensor, Option<GpuTensor>)> {
    let dims = attention_shapes(q.shape(), k.shape(), v.shape())?;
    let pattern = want_pattern.then(|| empty_pattern(gpu, &dims, "pattern")).transpose()?;
    let out = GpuTensor::empty(gpu, &dims.out_shape(), "attention out")?;
    record_into(gpu, encoder, q, k, v, causal, scale, &out, pattern.as_ref())?;
    Ok((out, pattern))
}

/// Uploads q, k and v, runs attention and reads back `(out, pattern)` (the pattern only when
/// `want_pattern`; without it the fused path runs).
pub fn run(
    gpu: &Gpu,
    q: ArrayViewD<'_, f32>,
    k: ArrayViewD<'_, f32>,
    v: ArrayViewD<'_, f32>,
    causal: bool,
    scale: f32,
    want_pattern: bool,
) -> Result<(ArrayD<f32>, Option<ArrayD<f32>>)> {
    let dims = attention_shapes(q.shape(), k.shape(), v.shape())?;
    let mut arrays = super::run_many(gpu, |encoder| {
        // Allocate the outputs first, so that a pattern too large for the device fails before
        // any upload.
        let pattern = want_pattern.then(|| empty_pattern(gpu, &dims, "pattern")).transpose()?;
        let out = GpuTensor::empty(gpu, &dims.out_shape(), "attention out")?;
        let (q, k, v) = (GpuTensor::upload(gpu, q, "q")?, GpuTensor::upload(gpu, k, "k")?, GpuTensor::upload(gpu, v, "v")?);
        record_into(gpu, encoder, &q, &k, &v, causal, scale, &out, pattern.as_ref())?;
        Ok(std::iter::once(out).chain(pattern).collect())
    })?;
    let pattern = if want_pattern { arrays.pop() } else { None };
    let out = arrays.pop().ok_or_else(|| Error::Gpu("attention returned no output".into()))?;
    Ok((out, pattern))
}

/// Uploads q and k and reads back the pre-softmax scores [B, H, Sq, Sk] (`-inf` where masked).
pub fn run_scores(gpu: &Gpu, q: ArrayViewD<'_, f32>, k: ArrayViewD<'_, f32>, causal: bool, scale: f32) -> Result<ArrayD<f32>> {
    let dims = attention_shapes(q.shape(), k.shape(), k.shape())?;
    super::run_single(gpu, |encoder| {
        let scores = empty_pattern(gpu, &dims, "scores")?;
        let (q, k) = (GpuTensor::upload(gpu, q, "q")?, GpuTensor::upload(gpu, k, "k")?);
        record_scores_into(gpu, encoder, &q, &k, causal, scale, &scores)?;
        Ok(scores)
    })
}

/// Allocates a [B, H, Sq, Sk] tensor; when it exceeds a device limit, says so in terms of the
/// pattern (or scores) and points to the fused path.
pub(crate) fn empty_pattern(gpu: &Gpu, dims: &AttentionDims, name: &str) -> Result<GpuTensor> {
    GpuTensor::empty(gpu, &dims.pattern_shape(), &format!("attention {name}")).map_err(|e| match e {
        Error::Limit { limit, needed, allowed, .. } => Error::Limit {
            what: format!(
                "the attention {name} {} (B·H·Sq·Sk floats; ask for no pattern and no scores to take the fused \
                 path, which never stores them, or split the batch)",
                fmt_shape(&dims.pattern_shape())
            ),
            limit,
            needed,
            allowed,
        },
        other => other,
    })
}

/// Records the kernels for `problem`: unfused when `pattern` is given, fused otherwise; `scores`
/// in either case when given.
pub(crate) fn record_problem(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    problem: &Problem<'_>,
    pattern: Option<&GpuTensor>,
    scores: Option<&GpuTensor>,
) -> Result<()> {
    let dims = problem.dims;
    match pattern {
        Some(pattern) => {
            dispatch_scores(gpu, encoder, problem, pattern)?;
            if let Some(scores) = scores {
                let bytes = (pattern.len() * 4) as u64;
                if bytes > 0 {
                    encoder.copy_buffer_to_buffer(pattern.buffer(), 0, scores.buffer(), 0, bytes);
                }
            }
            let rows = dims.batch * dims.heads * dims.sq;
            if dims.sk > 0 {
                launch(gpu, encoder, problem, SOFTMAX, "softmax_rows", (rows, 1, 1), &[pattern.buffer()])?;
            }
            let tiles = dims.dv.div_ceil(TILE);
            let buffers = [pattern.buffer(), problem.v.0.buffer(), problem.out.0.buffer()];
            let bh = dims.batch * dims.heads;
            launch(gpu, encoder, problem, PV, "pattern_v", (bh, dims.sq.div_ceil(TILE), tiles), &buffers)
        }
        None => {
            if let Some(scores) = scores {
                dispatch_scores(gpu, encoder, problem, scores)?;
            }
            let tiles = dims.dv.div_ceil(FUSED_CHUNK);
            let buffers = [problem.q.0.buffer(), problem.k.0.buffer(), problem.v.0.buffer(), problem.out.0.buffer()];
            let bh = dims.batch * dims.heads;
            launch(gpu, encoder, problem, FUSED, "attention_fused", (bh, dims.sq.div_ceil(TILE), tiles), &buffers)
        }
    }
}

/// The scores kernel, writing into `scores` (the pattern buffer or a separate scores tensor).
fn dispatch_scores(gpu: &Gpu, encoder: &mut wgpu::CommandEncoder, problem: &Problem<'_>, scores: &GpuTensor) -> Result<()> {
    let dims = problem.dims;
    let grid = (dims.batch * dims.heads, dims.sq.div_ceil(TILE), dims.sk.div_ceil(TILE));
    let buffers = [problem.q.0.buffer(), problem.k.0.buffer(), scores.buffer()];
    launch(gpu, encoder, problem, SCORES, "scores_kernel", grid, &buffers)
}

/// Dispatches `entry` over `bh x tiles_i x tiles_j` work items (nothing when that is zero).
fn launch(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    problem: &Problem<'_>,
    shader: Shader,
    entry: &'static str,
    (bh, tiles_i, tiles_j): (usize, usize, usize),
    buffers: &[&wgpu::Buffer],
) -> Result<()> {
    let count = bh as u64 * tiles_i as u64 * tiles_j as u64;
    if count == 0 {
        return Ok(());
    }
    let dims = problem.dims;
    let params = Params {
        heads: u32_of(dims.heads, "heads")?,
        sq: u32_of(dims.sq, "Sq")?,
        sk: u32_of(dims.sk, "Sk")?,
        d: u32_of(dims.d, "D")?,
        dv: u32_of(dims.dv, "Dv")?,
        causal: u32::from(problem.causal),
        scale: problem.scale,
        neg_inf: f32::NEG_INFINITY,
        q: problem.q.1.to_u32()?,
        k: problem.k.1.to_u32()?,
        v: problem.v.1.to_u32()?,
        out: problem.out.1.to_u32()?,
        count: u32::try_from(count).map_err(|_| too_large(entry, count))?,
        tiles_i: u32_of(tiles_i, "query tiles")?,
        tiles_j: u32_of(tiles_j, "column tiles")?,
        _pad: 0,
    };
    let grid = gpu.grid(count.div_ceil(WORKGROUP), &format!("attention {entry} workgroups"))?;
    let pipeline = gpu.pipeline(shader, entry, &[])?;
    gpu.dispatch(encoder, &pipeline, &params, buffers, grid);
    Ok(())
}

fn u32_of(x: usize, what: &str) -> Result<u32> {
    u32::try_from(x).map_err(|_| too_large(what, x as u64))
}

fn too_large(what: &str, x: u64) -> Error {
    Error::Shape(format!("attention {what} is {x}, more than the 32-bit indices of the kernels allow"))
}
