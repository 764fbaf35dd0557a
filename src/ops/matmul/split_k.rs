//! Split-K: a product with a small output and a long inner dimension, run as several K-chunks
//! side by side and then summed.
//!
//! Every weight gradient is such a product: `dW = xᵀ dy` has an output of d_model × d_mlp or
//! smaller and an inner size of batch · sequence (11,490 for the grokking batch). One workgroup
//! computes one output tile, so a 128 × 512 output is two to eight workgroups however long K is:
//! one or two CPU threads of lavapipe, a handful of a GPU's hundred-odd compute units, the rest
//! idle while those walk eleven thousand k's. Here K is cut into `s` equal chunks that run as the
//! `s` batches of one dispatch (each batch a strided view of the same operands: no copy), into
//! `s` partial outputs, which the deterministic column sums of the backward pass add in a fixed
//! order (plus the old output, for `c += a b`).
//!
//! The plan is a function of the shape and the adapter's type only (not of timing), so a product
//! gets the same bits on every run on one adapter, as the rest of the trainer does. The sum's
//! order differs from the unsplit chain (`s` partial chains, then their sum), within the same
//! `2 K 2^-24 Σ|a||b|` bound. Products with a bias, with several batches, or whose K has no
//! suitable divisor are not split.

use crate::error::Result;
use crate::gpu::Gpu;
use crate::spec::matmul::MatmulDims;
use crate::tensor::GpuTensor;

use super::{autotune, dispatch, Gemm, Layout};

/// Chunks shorter than this are not worth a partial output.
pub const MIN_CHUNK_K: usize = 256;
/// At most this many chunks.
pub const MAX_SPLITS: usize = 64;
/// The smallest output tile any variant has (64 × 64): the fewest workgroups a product can use.
const SMALLEST_TILE: usize = 64;
/// Products under this many flops are dispatch-bound: a second dispatch would cost more than it saves.
const MIN_FLOPS: f64 = (1u64 << 24) as f64;

/// How a product is split: `splits` chunks of `chunk_k`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    pub splits: usize,
    pub chunk_k: usize,
}

/// The split for this product on `gpu`, or `None` to run it whole (always, under
/// `SHADERLENS_SPLIT_K=off`, for comparing the two).
pub fn plan(gpu: &Gpu, dims: &MatmulDims, gemm: &Gemm<'_>) -> Option<Plan> {
    if dims.pairs.len() != 1 || gemm.bias.is_some() || !enabled() {
        return None;
    }
    plan_for(dims.m, dims.k, dims.n, parallelism(gpu))
}

/// Split-K is on unless `SHADERLENS_SPLIT_K` is `off`, `0` or `false` (read once: this is asked
/// on every product).
fn enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| {
        !std::env::var("SHADERLENS_SPLIT_K").is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "off" | "0" | "false"))
    })
}

/// How many workgroups the adapter wants in flight: the host's threads (twice over) for a CPU
/// adapter such as lavapipe, which runs one workgroup per thread; a few hundred for a GPU.
fn parallelism(gpu: &Gpu) -> usize {
    match gpu.adapter_info().device_type {
        wgpu::DeviceType::Cpu => {
            // available_parallelism reads the cgroup files on Linux: once per process, not per product.
            static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
            2 * *THREADS.get_or_init(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
        }
        _ => 256,
    }
}

/// The plan for an `m × k · k × n` product when `want` workgroups should be in flight: enough
/// chunks to reach `want` with the smallest tile (products of at least 2^24 flops only), at most [`MAX_SPLITS`], each at least
/// [`MIN_CHUNK_K`] long, their number a divisor of `k` (and the chunk a multiple of 4 when `k`
/// is, so the vec4 kernels still apply).
pub fn plan_for(m: usize, k: usize, n: usize, want: usize) -> Option<Plan> {
    let tiles = m.div_ceil(SMALLEST_TILE) * n.div_ceil(SMALLEST_TILE);
    if tiles >= want || k < 2 * MIN_CHUNK_K || 2.0 * m as f64 * n as f64 * (k as f64) < MIN_FLOPS {
        return None;
    }
    let most = want.div_ceil(tiles).min(MAX_SPLITS).min(k / MIN_CHUNK_K);
    (2..=most)
        .rev()
        .find(|&s| k.is_multiple_of(s) && (!k.is_multiple_of(4) || (k / s).is_multiple_of(4)))
        .map(|splits| Plan { splits, chunk_k: k / splits })
}

/// Records `out (+)= op(a) op(b)` as `plan` splits it (shapes already checked by the caller).
#[allow(clippy::too_many_arguments)] // the checked pieces of one call, as `dispatch` takes them
pub(crate) fn record(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    a: &GpuTensor,
    b: &GpuTensor,
    out: &GpuTensor,
    dims: &MatmulDims,
    gemm: &Gemm<'_>,
    plan: Plan,
) -> Result<()> {
    let (m, k, n) = (dims.m as u64, dims.k as u64, dims.n as u64);
    let (s, kc) = (plan.splits, plan.chunk_k as u64);
    let chunks = MatmulDims { batch: vec![s], m: dims.m, k: plan.chunk_k, n: dims.n, pairs: (0..s).map(|j| (j, j)).collect() };
    // Chunk j reads columns j·kc.. of a (rows of aᵀ) and rows j·kc.. of b (columns of bᵀ), with
    // the whole operand's strides.
    let (a_rs, a_ks, a_step) = if gemm.transpose_a { (1, m, kc * m) } else { (k, 1, kc) };
    let (b_ks, b_js, b_step) = if gemm.transpose_b { (1, k, kc) } else { (n, 1, kc * n) };
    let layout = Layout { offsets: (0..s as u64).map(|j| [j * a_step, j * b_step]).collect(), a_rs, a_ks, b_ks, b_js };
    let variant = autotune::choose(gpu, &chunks, gemm.transpose_a, gemm.transpose_b)?;
    let partials = gpu.scratch(&format!("matmul split-k partials {s}x{m}x{n}"), &[s, dims.m, dims.n])?;
    let plain = Gemm { transpose_a: gemm.transpose_a, transpose_b: gemm.transpose_b, bias: None, accumulate: false };
    dispatch(gpu, encoder, a, b, &partials, &chunks, &plain, variant, &layout)?;
    crate::ops::backward::reduce::column_sums(gpu, encoder, &partials, None, out, gemm.accumulate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_only_small_outputs_with_long_k_into_divisors() {
        // The grokking weight gradient: 128 x 512 output (8 tiles), K = 11,490 = 2·3·5·383.
        assert_eq!(plan_for(128, 11_490, 512, 256), Some(Plan { splits: 15, chunk_k: 766 }));
        // On a 2-thread CPU adapter (want 4) it already has 8 tiles: not split.
        assert_eq!(plan_for(128, 11_490, 512, 4), None);
        // K a multiple of 4 keeps chunks a multiple of 4.
        let p = plan_for(64, 5_220, 64, 4).unwrap();
        assert_eq!((p.splits, p.chunk_k % 4, 5_220 % p.splits), (3, 0, 0));
        // Big outputs, short K, and a prime K are left whole.
        assert_eq!(plan_for(1024, 4096, 1024, 256), None);
        assert_eq!(plan_for(64, 300, 64, 256), None);
        assert_eq!(plan_for(8, 2048, 8, 256), None); // 2^18 flops: dispatch-bound
        assert_eq!(plan_for(64, 4099, 64, 256), None);
        // Never chunks under MIN_CHUNK_K nor more than MAX_SPLITS.
        let p = plan_for(8, 1 << 24, 8, 100_000).unwrap();
        assert!(p.splits <= MAX_SPLITS && p.chunk_k >= MIN_CHUNK_K);
    }
}
