//! Which matmul kernel a call uses.
//!
//! In order: `SHADERLENS_MATMUL_VARIANT=<name>` forces a variant wherever it supports the shape;
//! work under 2^24 flops (dispatch overhead dominates) takes the supported variant with the
//! smallest tile; with autotuning off (`SHADERLENS_AUTOTUNE=off`) the adapter's preference
//! ([`Variant::preferred`]) decides; otherwise the winner remembered for the shape's bucket, or,
//! on the first call in a bucket, the fastest of the supported variants measured with
//! [`crate::tune::measure`].
//!
//! The bucket is (batches, M, N, K) rounded up to powers of two plus whether the vec4 kernels
//! apply. The measurement runs on scratch buffers of the call's own shape, scaled down (batches
//! first, then K down to 256, then the larger of M and N, halving) until it is at most 2^29 flops,
//! so that tuning a 4096^3 product on a CPU adapter costs seconds, not minutes. Shrinking K before
//! M and N keeps the workgroup grid of the real call: a proxy with few workgroups favours small
//! tiles that the real call would not.

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::spec::matmul::MatmulDims;
use crate::tensor::GpuTensor;
use crate::timing::Timer;
use crate::tune::{bucket, TuneKey};

use super::variant::{Kind, Variant};

/// Below this many flops a product is not worth measuring.
const SMALL_FLOPS: f64 = (1u64 << 24) as f64;
/// K is shrunk for tuning down to this before M or N are.
const MIN_TUNE_K: usize = 256;
/// The most flops one tuning run may take.
const TUNE_FLOPS: f64 = (1u64 << 29) as f64;

/// The variant [`super::record_into`] will use for a product of these dimensions on `gpu`,
/// measuring the candidates first if this is the first call in its bucket.
pub(super) fn choose(gpu: &Gpu, dims: &MatmulDims, transpose_a: bool, transpose_b: bool) -> Result<Variant> {
    let candidates: Vec<Variant> = Variant::preferred(gpu)
        .into_iter()
        .filter(|v| v.supports_product(gpu, transpose_a, transpose_b, dims.k, dims.n))
        .collect();
    let first = *candidates.first().ok_or_else(|| Error::Gpu("no matmul kernel supports this device".into()))?;
    if let Some(forced) = forced()? {
        if candidates.contains(&forced) {
            return Ok(forced);
        }
    }
    let flops = 2.0 * dims.pairs.len() as f64 * dims.m as f64 * dims.n as f64 * dims.k as f64;
    if flops < SMALL_FLOPS {
        let smallest = candidates.iter().min_by_key(|v| v.tile()[0] * v.tile()[1]);
        return Ok(smallest.copied().unwrap_or(first));
    }
    if !gpu.tune().enabled() || candidates.len() == 1 {
        return Ok(first);
    }
    let key = TuneKey {
        op: "matmul",
        bucket: vec![
            bucket(dims.pairs.len()),
            bucket(dims.m),
            bucket(dims.n),
            bucket(dims.k),
            u32::from(candidates.iter().any(|v| matches!(v.kind(), Kind::Vec4 | Kind::Vec4Nt))),
            u32::from(transpose_a) | u32::from(transpose_b) << 1,
        ],
    };
    if let Some(name) = gpu.tune().winner(&key) {
        if let Some(v) = Variant::from_name(&name) {
            return Ok(v);
        }
    }
    let winner = measure(gpu, dims, &candidates, transpose_a, transpose_b)?;
    gpu.tune().remember(key, winner.name())?;
    Ok(winner)
}

/// The variant `SHADERLENS_MATMUL_VARIANT` names, if it is set.
fn forced() -> Result<Option<Variant>> {
    let Ok(name) = std::env::var("SHADERLENS_MATMUL_VARIANT") else { return Ok(None) };
    let name = name.trim();
    if name.is_empty() {
        return Ok(None);
    }
    Variant::from_name(name).map(Some).ok_or_else(|| {
        let names: Vec<&str> = Variant::ALL.iter().map(|v| v.name()).collect();
        Error::Input(format!("SHADERLENS_MATMUL_VARIANT={name:?} is not a matmul variant (one of {})", names.join(", ")))
    })
}

/// Times every candidate on a scaled-down copy of the product and returns the fastest.
fn measure(gpu: &Gpu, dims: &MatmulDims, candidates: &[Variant], transpose_a: bool, transpose_b: bool) -> Result<Variant> {
    let [batch, m, k, n] = proxy_shape(dims);
    // Tuning submits many times in the middle of the caller's recording: those submissions must
    // not age out the caller's cached bind groups.
    gpu.without_epochs(|| gpu.scoped(|| {
        let a_shape = if transpose_a { [batch, k, m] } else { [batch, m, k] };
        let b_shape = if transpose_b { [batch, n, k] } else { [batch, k, n] };
        let a = GpuTensor::empty(gpu, &a_shape, "matmul tuning a")?;
        let b = GpuTensor::empty(gpu, &b_shape, "matmul tuning b")?;
        let out = GpuTensor::empty(gpu, &[batch, m, n], "matmul tuning out")?;
        let timer = Timer::new(gpu);
        let gemm = super::Gemm { transpose_a, transpose_b, ..super::Gemm::default() };
        let (winner, _) = crate::tune::measure(candidates, |variant| {
            timer.time(&mut |encoder| super::record_gemm_with(gpu, encoder, &a, &b, &out, &gemm, variant))
        })?;
        Ok(winner)
    }))
}

/// `[batches, M, K, N]` of the tuning run: the product's own, halved until at most [`TUNE_FLOPS`],
/// keeping K and N multiples of 4 where they are.
fn proxy_shape(dims: &MatmulDims) -> [usize; 4] {
    let mut s = [dims.pairs.len().max(1), dims.m, dims.k, dims.n];
    let keep4 = [false, false, dims.k.is_multiple_of(4), dims.n.is_multiple_of(4)];
    let flops = |s: &[usize; 4]| 2.0 * s.iter().map(|&d| d as f64).product::<f64>();
    while flops(&s) > TUNE_FLOPS {
        // Batches first, then K (it changes the work per invocation, not the workgroup grid, so
        // the variants still compete at the call's own parallelism), then the larger of M and N.
        let axis = if s[0] > 1 {
            0
        } else if s[2] > MIN_TUNE_K {
            2
        } else if s[1] >= s[3] {
            1
        } else {
            3
        };
        let halved = s[axis].div_ceil(2);
        s[axis] = if keep4[axis] { halved.next_multiple_of(4) } else { halved };
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dims(batch: usize, m: usize, k: usize, n: usize) -> MatmulDims {
        MatmulDims { batch: vec![batch], m, k, n, pairs: (0..batch).map(|i| (i, i)).collect() }
    }

    #[test]
    fn proxy_shrinks_batches_then_k_then_the_larger_of_m_and_n() {
        assert_eq!(proxy_shape(&dims(1, 512, 512, 512)), [1, 512, 512, 512]);
        assert_eq!(proxy_shape(&dims(64, 512, 512, 512)), [2, 512, 512, 512]);
        assert_eq!(proxy_shape(&dims(1, 1024, 1024, 1024)), [1, 1024, 256, 1024]);
        let [b, m, k, n] = proxy_shape(&dims(1, 4096, 4096, 4096));
        assert_eq!(b, 1);
        assert!(2.0 * (m * k * n) as f64 <= TUNE_FLOPS && m >= 256 && k >= 256 && n >= 256);
        let [_, _, k, n] = proxy_shape(&dims(1, 3776, 2052, 8196));
        assert!(k % 4 == 0 && n % 4 == 0);
    }
}
