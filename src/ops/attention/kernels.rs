//! The attention kernels' dispatch: their parameters, the strided view of q, k, v and out, the
//! packing of head sizes that are not a multiple of 4, and the recording of the unfused and fused
//! paths. [`super`] (the attention op) and [`crate::ops::attention_layer`] both record through
//! [`record_problem`].

use crate::error::{Error, Result};
use crate::gpu::{shaders, Gpu, Shader};
use crate::spec::attention::AttentionDims;
use crate::tensor::GpuTensor;

const SCORES: Shader = shaders::ATTENTION_SCORES;
const SOFTMAX: Shader = shaders::ATTENTION_SOFTMAX;
const PV: Shader = shaders::ATTENTION_PV;
const FUSED: Shader = shaders::ATTENTION_FUSED;
const PACK: Shader = shaders::ATTENTION_PACK;

/// Invocations per workgroup in every attention kernel (`WG` in the WGSL).
const WORKGROUP: u64 = 64;
/// Queries per register tile.
const TILE: usize = 4;
/// Keys per register tile of `attention_scores`.
const SCORES_KEYS: usize = 8;
/// Value columns per register tile of `attention_pv`.
const PV_COLUMNS: usize = 8;
/// Loop iterations one invocation may spend in one dispatch. lavapipe and llvmpipe silently stop
/// an invocation after 65535 loop iterations in total, so the kernels that walk the keys are
/// dispatched once per segment of keys, each segment staying well inside that.
const LOOP_BUDGET: usize = 32768;

/// Matches `Params` in `shaders/attention_common.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    heads: u32,
    sq: u32,
    sk: u32,
    d4: u32,
    dv: u32,
    dv4: u32,
    causal: u32,
    scale: f32,
    neg_inf: f32,
    q: [u32; 3],
    k: [u32; 3],
    v: [u32; 3],
    o: [u32; 3],
    count: u32,
    tiles_i: u32,
    tiles_j: u32,
    j_begin: u32,
    j_end: u32,
    keep_stats: u32,
    _pad: u32,
}

/// `Params` against every attention shader (checked by `tests/params_layout.rs`).
pub(crate) const LAYOUTS: &[crate::gpu::layout::ParamsLayout] = {
    use crate::gpu::layout::params_layout;
    &[
        params_layout!(Params, SCORES, [heads, sq, sk, d4, dv, dv4, causal, scale, neg_inf, q[3], k[3], v[3], o[3], count, tiles_i, tiles_j, j_begin, j_end, keep_stats]),
        params_layout!(Params, SOFTMAX, [heads, sq, sk, d4, dv, dv4, causal, scale, neg_inf, q[3], k[3], v[3], o[3], count, tiles_i, tiles_j, j_begin, j_end, keep_stats]),
        params_layout!(Params, PV, [heads, sq, sk, d4, dv, dv4, causal, scale, neg_inf, q[3], k[3], v[3], o[3], count, tiles_i, tiles_j, j_begin, j_end, keep_stats]),
        params_layout!(Params, FUSED, [heads, sq, sk, d4, dv, dv4, causal, scale, neg_inf, q[3], k[3], v[3], o[3], count, tiles_i, tiles_j, j_begin, j_end, keep_stats]),
        params_layout!(Params, PACK, [heads, sq, sk, d4, dv, dv4, causal, scale, neg_inf, q[3], k[3], v[3], o[3], count, tiles_i, tiles_j, j_begin, j_end, keep_stats]),
    ]
};

/// Strides, in elements, of a tensor read as \[B, H, rows, columns\] with contiguous columns.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Strides {
    batch: usize,
    head: usize,
    row: usize,
}

impl Strides {
    /// A contiguous \[B, H, rows, cols\] tensor.
    pub(crate) fn bhsc(heads: usize, rows: usize, cols: usize) -> Self {
        Self { batch: heads * rows * cols, head: rows * cols, row: cols }
    }

    /// A contiguous \[B, rows, H, cols\] tensor (TransformerLens's \[B, S, H, dh\]).
    pub(crate) fn bshc(heads: usize, rows: usize, cols: usize) -> Self {
        Self { batch: rows * heads * cols, head: cols, row: heads * cols }
    }

    fn all(self) -> [usize; 3] {
        [self.batch, self.head, self.row]
    }

    /// The strides in units of `unit` elements (4 for the kernels' vec4 view).
    pub(crate) fn in_units(self, unit: usize) -> Result<[u32; 3]> {
        let [b, h, r] = self.all().map(|x| x / unit);
        Ok([u32_of(b, "batch stride")?, u32_of(h, "head stride")?, u32_of(r, "row stride")?])
    }
}

/// An attention problem on GPU tensors already checked against `dims` (for scores alone, v may
/// be k and out the scores).
pub(crate) struct Problem<'a> {
    pub dims: AttentionDims,
    pub causal: bool,
    pub scale: f32,
    pub q: (&'a GpuTensor, Strides),
    pub k: (&'a GpuTensor, Strides),
    pub v: (&'a GpuTensor, Strides),
    pub out: (&'a GpuTensor, Strides),
    /// On the fused path: where to keep every query's final running maximum and sum, \[B, H,
    /// ceil(Sq / 4), 2, 4\] (see [`crate::ops::attention::row_stats_shape`]); `None` keeps them
    /// in scratch.
    pub row_stats: Option<&'a GpuTensor>,
}

/// Where [`record_problem_staged`] hands the pattern buffer to its caller on the unfused path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stage {
    /// The buffer holds the scaled, masked scores (`-inf` where masked), before the softmax.
    Scores,
    /// The buffer holds the pattern, before it multiplies v.
    Pattern,
}

/// A caller's work between the stages of the unfused path: it may record kernels that read or
/// change the pattern buffer in place (TransformerLens's hooks on `attn_scores` and `pattern`).
pub(crate) type StageHook<'h> = &'h mut dyn FnMut(&mut wgpu::CommandEncoder, Stage, &GpuTensor) -> Result<()>;

/// Records the kernels for `problem`: unfused when `pattern` is given, fused otherwise; `scores`
/// in either case when given.
pub(crate) fn record_problem(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    problem: &Problem<'_>,
    pattern: Option<&GpuTensor>,
    scores: Option<&GpuTensor>,
) -> Result<()> {
    record_problem_staged(gpu, encoder, problem, pattern, scores, &mut |_, _, _| Ok(()))
}

/// [`record_problem`] that, on the unfused path, calls `hook` with the pattern buffer once it
/// holds the scores (before they are copied to `scores` and normalised) and once it holds the
/// pattern (before pattern @ v). The softmax and pattern @ v keep applying the causal mask by
/// index, so masked keys never contribute whatever the hook writes there.
pub(crate) fn record_problem_staged(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    problem: &Problem<'_>,
    pattern: Option<&GpuTensor>,
    scores: Option<&GpuTensor>,
    hook: StageHook<'_>,
) -> Result<()> {
    let dims = problem.dims;
    let bh = dims.batch * dims.heads;
    if bh == 0 || dims.sq == 0 {
        return Ok(()); // every output is empty
    }
    let (base, [q, k, v]) = prepare(gpu, encoder, problem, true)?;
    let query_tiles = dims.sq.div_ceil(TILE);
    // The unfused path writes the logits into the pattern buffer (and copies them to the scores
    // before the softmax); the fused path writes them only when the scores are wanted.
    if let Some(target) = pattern.or(scores) {
        launch_scores(gpu, encoder, &base, &dims, [&q, &k, target])?;
    }
    match pattern {
        Some(pattern) => {
            hook(encoder, Stage::Scores, pattern)?;
            if let Some(scores) = scores {
                let bytes = (pattern.len() * 4) as u64;
                if bytes > 0 {
                    encoder.copy_buffer_to_buffer(pattern.buffer(), 0, scores.buffer(), 0, bytes);
                }
            }
            if dims.sk > 0 {
                let stats = gpu.scratch("attention softmax statistics", &[bh * dims.sq, 2])?;
                let rows = (bh * dims.sq, 1, 1);
                for entry in ["softmax_stats", "softmax_normalize"] {
                    for params in segments(&base, dims.sk, LOOP_BUDGET)? {
                        launch(gpu, encoder, SOFTMAX, entry, &params, rows, &[pattern.buffer(), stats.buffer()])?;
                    }
                }
            }
            hook(encoder, Stage::Pattern, pattern)?;
            let grid = (bh, query_tiles, dims.dv.div_ceil(PV_COLUMNS));
            for params in segments(&base, dims.sk, LOOP_BUDGET)? {
                let buffers = [pattern.buffer(), v.buffer(), problem.out.0.buffer()];
                launch(gpu, encoder, PV, "pattern_v", &params, grid, &buffers)?;
            }
            Ok(())
        }
        None => {
            if dims.dv == 0 {
                return Ok(());
            }
            // The online softmax's state between key segments: accumulators [B·H, query tiles · 4,
            // Dv/4] vec4s (out's size), and the running maximum and sum of each query tile.
            let tiles = bh * query_tiles;
            let acc = gpu.scratch("attention fused accumulators", &[tiles * TILE, dims.dv.div_ceil(4) * 4])?;
            let stats = match problem.row_stats {
                Some(t) if t.len() == tiles * 2 * TILE => t.clone(),
                Some(t) => {
                    return Err(Error::Shape(format!(
                        "attention row statistics hold {} floats but this problem needs {}",
                        t.len(),
                        tiles * 2 * TILE
                    )))
                }
                None => gpu.scratch("attention fused statistics", &[tiles, 2, TILE])?,
            };
            let base = Params { keep_stats: u32::from(problem.row_stats.is_some()), ..base };
            let buffers = [q.buffer(), k.buffer(), v.buffer(), problem.out.0.buffer(), acc.buffer(), stats.buffer()];
            // Each 8-key block costs an invocation one iteration plus one per q/k vec4 and per v vec4.
            let per_block = 2 + dims.d.div_ceil(4) + dims.dv.div_ceil(4);
            let keys = 8 * (LOOP_BUDGET / per_block).max(1);
            for params in segments(&base, dims.sk, keys)? {
                launch(gpu, encoder, FUSED, "attention_fused", &params, (bh, query_tiles, 1), &buffers)?;
            }
            Ok(())
        }
    }
}

/// The scores kernel: scaled, masked logits of q and k into `target` \[B, H, Sq, Sk\].
fn launch_scores(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    base: &Params,
    dims: &AttentionDims,
    [q, k, target]: [&GpuTensor; 3],
) -> Result<()> {
    let grid = (dims.batch * dims.heads, dims.sq.div_ceil(TILE), dims.sk.div_ceil(SCORES_KEYS));
    launch(gpu, encoder, SCORES, "scores_kernel", base, grid, &[q.buffer(), k.buffer(), target.buffer()])
}

/// `base` once per segment of at most `len` keys covering 0..sk (one empty segment when sk = 0,
/// so that the kernels still write their zero outputs).
fn segments(base: &Params, sk: usize, len: usize) -> Result<Vec<Params>> {
    let mut out = Vec::new();
    let mut begin = 0;
    loop {
        let end = (begin + len).min(sk);
        out.push(Params { j_begin: u32_of(begin, "key segment")?, j_end: u32_of(end, "key segment")?, ..*base });
        if end >= sk {
            return Ok(out);
        }
        begin = end;
    }
}

/// Records only the scores kernel for `problem` (whose v is ignored) into `scores`.
pub(crate) fn record_scores(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    problem: &Problem<'_>,
    scores: &GpuTensor,
) -> Result<()> {
    let dims = problem.dims;
    if dims.batch * dims.heads * dims.sq * dims.sk == 0 {
        return Ok(());
    }
    let (base, [q, k, _]) = prepare(gpu, encoder, problem, false)?;
    launch_scores(gpu, encoder, &base, &dims, [&q, &k, scores])
}

/// The parameters every attention kernel shares, and q, k and v (v only `with_v`) readable as
/// zero-padded vec4 rows (packed on the way when a head size or a stride is not a multiple of 4).
fn prepare(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    problem: &Problem<'_>,
    with_v: bool,
) -> Result<(Params, [GpuTensor; 3])> {
    let dims = problem.dims;
    let (q, q_strides) = vec4_rows(gpu, encoder, &dims, problem.q, dims.sq, dims.d, "q")?;
    let (k, k_strides) = vec4_rows(gpu, encoder, &dims, problem.k, dims.sk, dims.d, "k")?;
    let (v, v_strides) =
        if with_v { vec4_rows(gpu, encoder, &dims, problem.v, dims.sk, dims.dv, "v")? } else { (k.clone(), k_strides) };
    let params = Params {
        heads: u32_of(dims.heads, "heads")?,
        sq: u32_of(dims.sq, "Sq")?,
        sk: u32_of(dims.sk, "Sk")?,
        d4: u32_of(dims.d.div_ceil(4), "D")?,
        dv: u32_of(dims.dv, "Dv")?,
        dv4: u32_of(dims.dv.div_ceil(4), "Dv")?,
        causal: u32::from(problem.causal),
        scale: problem.scale,
        neg_inf: f32::NEG_INFINITY,
        q: q_strides,
        k: k_strides,
        v: v_strides,
        o: problem.out.1.in_units(1)?,
        ..Params::default()
    };
    Ok((params, [q, k, v]))
}

/// `input` (\[B, H, rows, cols\] through its strides) as the kernels read it: rows of
/// ceil(cols / 4) vec4s, and the strides in vec4s. Used as it is when cols and the strides are
/// multiples of 4; otherwise packed by `attention_pack` into a new zero-padded contiguous tensor.
/// An empty input becomes a 16-byte placeholder (the kernels never read it, but a vec4 array
/// binding needs at least one vec4).
pub(crate) fn vec4_rows(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    dims: &AttentionDims,
    (tensor, strides): (&GpuTensor, Strides),
    rows: usize,
    cols: usize,
    name: &str,
) -> Result<(GpuTensor, [u32; 3])> {
    let (batch, heads) = (dims.batch, dims.heads);
    if batch * heads * rows * cols == 0 {
        return Ok((gpu.scratch(&format!("attention {name} placeholder"), &[4])?, [0; 3]));
    }
    if cols.is_multiple_of(4) && strides.all().iter().all(|s| s.is_multiple_of(4)) {
        return Ok((tensor.clone(), strides.in_units(4)?));
    }
    let cols4 = cols.div_ceil(4);
    let packed =
        gpu.scratch(&format!("attention {name} padded to vec4 rows"), &[batch, heads, rows, cols4 * 4])?;
    let params = Params {
        heads: u32_of(heads, "heads")?,
        sq: u32_of(rows, "rows")?,
        dv: u32_of(cols, "head size")?,
        dv4: u32_of(cols4, "head size")?,
        q: strides.in_units(1)?,
        ..Params::default()
    };
    launch(gpu, encoder, PACK, "pack", &params, (batch * heads, rows, cols4), &[tensor.buffer(), packed.buffer()])?;
    Ok((packed, Strides::bhsc(heads, rows, cols4 * 4).in_units(4)?))
}

/// Dispatches `entry` over `n0 x tiles_i x tiles_j` work items with `base`'s parameters
/// (nothing when there are no work items).
fn launch(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    shader: Shader,
    entry: &'static str,
    base: &Params,
    (n0, tiles_i, tiles_j): (usize, usize, usize),
    buffers: &[&wgpu::Buffer],
) -> Result<()> {
    let count = n0 as u64 * tiles_i as u64 * tiles_j as u64;
    if count == 0 {
        return Ok(());
    }
    let params = Params {
        count: u32::try_from(count).map_err(|_| too_large(entry, count))?,
        tiles_i: u32_of(tiles_i, "query tiles")?,
        tiles_j: u32_of(tiles_j, "column tiles")?,
        ..*base
    };
    let grid = gpu.grid(count.div_ceil(WORKGROUP), &format!("attention {entry} workgroups"))?;
    gpu.kernel::<Params>(shader, entry, &[])?.record(gpu, encoder, &params, buffers, grid);
    Ok(())
}

/// `x` as a u32 for the kernels' parameters, or a shape error naming `what`.
pub(crate) fn u32_of(x: usize, what: &str) -> Result<u32> {
    u32::try_from(x).map_err(|_| too_large(what, x as u64))
}

fn too_large(what: &str, x: u64) -> Error {
    Error::Shape(format!("attention {what} is {x}, more than the 32-bit indices of the kernels allow"))
}
