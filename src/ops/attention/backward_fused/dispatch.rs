//! Dispatch of the fused attention backward ([`super`]): the three kernels' shaders and
//! `Params`, the vec4 views of q, k, v and d_out, the scratch buffers (lse and delta per query,
//! the accumulators), and the segments of each walk that keep an invocation under llvmpipe's
//! 65535 loop iterations.

use super::{Grads, Saved};
use crate::error::{Error, Result};
use crate::gpu::{shaders, Gpu, Shader};
use crate::ops::attention::kernels::{u32_of, vec4_rows, Strides};
use crate::spec::attention::AttentionDims;
use crate::tensor::GpuTensor;

const PREP: Shader = shaders::ATTENTION_BACKWARD_PREP;
const KV: Shader = shaders::ATTENTION_BACKWARD_KV;
const Q: Shader = shaders::ATTENTION_BACKWARD_Q;

/// Invocations per workgroup (`WG` in the WGSL).
const WORKGROUP: u64 = 64;
/// Queries (or keys) an invocation owns.
const TILE: usize = 4;
/// Keys (or queries) an invocation takes a step of its walk.
const BLOCK: usize = 8;
/// Loop iterations one invocation may spend in one dispatch: lavapipe and llvmpipe silently stop
/// an invocation after 65535 in all, so walks are split into segments that stay under this (with
/// the forward's margin).
const LOOP_BUDGET: usize = 32768;

/// Matches `Params` in `shaders/attention_backward_fused_common.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    heads: u32,
    sq: u32,
    sk: u32,
    d: u32,
    d4: u32,
    dv: u32,
    dv4: u32,
    causal: u32,
    scale: f32,
    count: u32,
    tiles: u32,
    tiles_q: u32,
    seg_begin: u32,
    seg_end: u32,
    last: u32,
    _pad0: u32,
    q: [u32; 3],
    k: [u32; 3],
    v: [u32; 3],
    gz: [u32; 3],
    o: [u32; 3],
    gq: [u32; 3],
    gk: [u32; 3],
    gv: [u32; 3],
}

/// `Params` against every backward shader (checked by `tests/params_layout.rs`).
pub(crate) const LAYOUTS: &[crate::gpu::layout::ParamsLayout] = {
    use crate::gpu::layout::params_layout;
    &[
        params_layout!(Params, PREP, [heads, sq, sk, d, d4, dv, dv4, causal, scale, count, tiles, tiles_q, seg_begin, seg_end, last, q[3], k[3], v[3], gz[3], o[3], gq[3], gk[3], gv[3]]),
        params_layout!(Params, KV, [heads, sq, sk, d, d4, dv, dv4, causal, scale, count, tiles, tiles_q, seg_begin, seg_end, last, q[3], k[3], v[3], gz[3], o[3], gq[3], gk[3], gv[3]]),
        params_layout!(Params, Q, [heads, sq, sk, d, d4, dv, dv4, causal, scale, count, tiles, tiles_q, seg_begin, seg_end, last, q[3], k[3], v[3], gz[3], o[3], gq[3], gk[3], gv[3]]),
    ]
};

/// Records the kernels for checked tensors read through `[q, k, v, out]` strides (the gradients
/// share their input's strides, d_out out's).
#[allow(clippy::too_many_arguments)]
pub(super) fn record_layout(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    dims: AttentionDims,
    causal: bool,
    scale: f32,
    saved: &Saved<'_>,
    d_out: &GpuTensor,
    grads: &Grads<'_>,
    [qs, ks, vs, os]: [Strides; 4],
) -> Result<()> {
    if dims.batch * dims.heads * dims.sq * dims.sk * dims.dv == 0 {
        // No query, no key or no value column: every gradient that has elements is 0.
        for t in [grads.dq, grads.dk, grads.dv] {
            if !t.is_empty() {
                encoder.clear_buffer(t.buffer(), 0, Some((t.len() * 4) as u64));
            }
        }
        return Ok(());
    }
    let (q, q4) = vec4_rows(gpu, encoder, &dims, (saved.q, qs), dims.sq, dims.d, "q")?;
    let (k, k4) = vec4_rows(gpu, encoder, &dims, (saved.k, ks), dims.sk, dims.d, "k")?;
    let (v, v4) = vec4_rows(gpu, encoder, &dims, (saved.v, vs), dims.sk, dims.dv, "v")?;
    let (gz, gz4) = vec4_rows(gpu, encoder, &dims, (d_out, os), dims.sq, dims.dv, "d_out")?;
    let (d4, dv4) = (dims.d.div_ceil(TILE), dims.dv.div_ceil(TILE));
    let (bh, tiles_q, tiles_k) = (dims.batch * dims.heads, dims.sq.div_ceil(TILE), dims.sk.div_ceil(TILE));
    let base = Params {
        heads: u32_of(dims.heads, "heads")?,
        sq: u32_of(dims.sq, "Sq")?,
        sk: u32_of(dims.sk, "Sk")?,
        d: u32_of(dims.d, "D")?,
        d4: u32_of(d4, "D")?,
        dv: u32_of(dims.dv, "Dv")?,
        dv4: u32_of(dv4, "Dv")?,
        causal: u32::from(causal),
        scale,
        tiles_q: u32_of(tiles_q, "query tiles")?,
        q: q4,
        k: k4,
        v: v4,
        gz: gz4,
        o: os.in_units(1)?,
        gq: qs.in_units(1)?,
        gk: ks.in_units(1)?,
        gv: vs.in_units(1)?,
        ..Params::default()
    };
    // Loop iterations an invocation spends besides its walk (the prep's rows; clearing and
    // writing the accumulators), and per block of its walk.
    if 4 + 4 * dv4 > LOOP_BUDGET {
        return Err(too_wide(&dims));
    }
    let kv_step = walk_step(TILE + 5 * (d4 + dv4), 1 + 2 * (d4 + dv4), &dims)?;
    let q_step = walk_step(TILE + 5 * d4, 1 + 2 * d4 + dv4, &dims)?;
    let info = scratch(gpu, "attention backward lse and delta", bh * tiles_q * 2 * TILE)?;
    let prep_params = Params { tiles: base.tiles_q, seg_end: base.sq, last: 1, ..base };
    let buffers = [saved.out.buffer(), gz.buffer(), saved.row_stats.buffer(), info.buffer()];
    launch(gpu, encoder, PREP, "prep", &prep_params, bh * tiles_q, &buffers)?;

    let (dq, dk) = (bindable(gpu, grads.dq, "dq")?, bindable(gpu, grads.dk, "dk")?);
    let acc = scratch(gpu, "attention backward dk dv accumulators", bh * tiles_k * TILE * (d4 + dv4) * 4)?;
    let buffers = [q.buffer(), k.buffer(), v.buffer(), gz.buffer(), info.buffer(), acc.buffer(), dk.buffer(), grads.dv.buffer()];
    for params in segments(&Params { tiles: u32_of(tiles_k, "key tiles")?, ..base }, dims.sq, kv_step)? {
        launch(gpu, encoder, KV, "dkdv", &params, bh * tiles_k, &buffers)?;
    }
    let acc = scratch(gpu, "attention backward dq accumulators", bh * tiles_q * TILE * d4 * 4)?;
    let buffers = [q.buffer(), k.buffer(), v.buffer(), gz.buffer(), info.buffer(), acc.buffer(), dq.buffer()];
    for params in segments(&Params { tiles: base.tiles_q, ..base }, dims.sk, q_step)? {
        launch(gpu, encoder, Q, "dq", &params, bh * tiles_q, &buffers)?;
    }
    Ok(())
}

/// A scratch buffer of `len` floats (at least 4, so that it can be bound).
fn scratch(gpu: &Gpu, name: &str, len: usize) -> Result<GpuTensor> {
    gpu.scratch(name, &[len.max(TILE)])
}

/// `t`, or a placeholder when it is empty (a zero-sized buffer cannot be bound; nothing is
/// written to it then).
fn bindable(gpu: &Gpu, t: &GpuTensor, name: &str) -> Result<GpuTensor> {
    if t.is_empty() {
        return scratch(gpu, &format!("attention backward {name} placeholder"), TILE);
    }
    Ok(t.clone())
}

/// How far one dispatch may walk (a multiple of [`BLOCK`]: the kernels walk blocks of 8 from a
/// multiple of 8) when an invocation spends `fixed` loop iterations besides the walk and
/// `per_block` on each block; an error when not even one block fits.
fn walk_step(fixed: usize, per_block: usize, dims: &AttentionDims) -> Result<usize> {
    match LOOP_BUDGET.checked_sub(fixed).map(|room| room / per_block) {
        Some(blocks) if blocks > 0 => Ok(BLOCK * blocks),
        _ => Err(too_wide(dims)),
    }
}

fn too_wide(dims: &AttentionDims) -> Error {
    Error::Shape(format!(
        "attention backward: head sizes D {} and Dv {} are too large for one invocation's loops \
         (CPU drivers stop an invocation after 65535 loop iterations)",
        dims.d, dims.dv
    ))
}

/// `base` once per segment of `step` (the last one shorter, with `last` set) covering `0..len`.
fn segments(base: &Params, len: usize, step: usize) -> Result<Vec<Params>> {
    let mut out = Vec::new();
    let mut begin = 0;
    loop {
        let end = (begin + step).min(len);
        let last = u32::from(end >= len);
        out.push(Params { seg_begin: u32_of(begin, "segment")?, seg_end: u32_of(end, "segment")?, last, ..*base });
        if end >= len {
            return Ok(out);
        }
        begin = end;
    }
}

/// Dispatches `entry` over `count` invocations with `params`.
fn launch(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    shader: Shader,
    entry: &'static str,
    params: &Params,
    count: usize,
    buffers: &[&wgpu::Buffer],
) -> Result<()> {
    let params = Params { count: u32_of(count, &format!("backward {entry} invocations"))?, ..*params };
    let grid = gpu.grid((count as u64).div_ceil(WORKGROUP), &format!("attention backward {entry} workgroups"))?;
    gpu.kernel::<Params>(shader, entry, &[])?.record(gpu, encoder, &params, buffers, grid);
    Ok(())
}
