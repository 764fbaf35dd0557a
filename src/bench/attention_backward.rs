//! The `attention_backward` bench case: the fused (FlashAttention-2 style) attention backward
//! ([`crate::ops::attention::backward_fused`]) at `[B, H, S, D]`, causal, against the float64
//! reference backward. The forward that keeps the row statistics runs once, untimed, when the case
//! is prepared; the timed run is the backward alone (its three kernels and the vec4 packing), to
//! set beside the `attention` case's `fused` row at the same shape.
//!
//! Work: `10 D` flop per visible (query, key) pair, FlashAttention-2's count for the backward
//! (2.5 times the forward's `4 D`: q kᵀ recomputed, dO vᵀ, dv, dq and dk), so the rate compares
//! with the forward's; the kernels really do `14 D` (q kᵀ and dO vᵀ are recomputed by both the
//! key-tile and the query-tile kernel).

use super::run::{inputs, GpuRun, Prepared, Record, Work};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::ops::attention::{self, backward_fused};
use crate::reference::attention::attention_shapes;
use crate::tensor::GpuTensor;

/// Uploads q, k, v and d_out, runs the forward with its row statistics, and returns the
/// backward's GPU run and host reference.
pub fn prepare<'a>(gpu: &'a Gpu, s: &[usize]) -> Result<Prepared<'a>> {
    let &[bsz, h, seq, d] = s else {
        return Err(Error::Shape(format!("attention_backward bench shape {s:?} is not [B, H, S, D]")));
    };
    let (q, k, v, d_out) = (inputs(s, 8), inputs(s, 9), inputs(s, 10), inputs(s, 11));
    let up = |a: &ndarray::ArrayD<f32>, name| GpuTensor::upload(gpu, a.view(), name);
    let (tq, tk, tv, tz) = (up(&q, "q")?, up(&k, "k")?, up(&v, "v")?, up(&d_out, "d_out")?);
    let dims = attention_shapes(s, s, s)?;
    let out = GpuTensor::empty(gpu, s, "out")?;
    let stats = GpuTensor::empty(gpu, &attention::row_stats_shape(&dims), "row statistics")?;
    let scale = 1.0 / (d as f32).sqrt();
    let mut encoder = gpu.encoder();
    attention::record_fused_with_stats(gpu, &mut encoder, &tq, &tk, &tv, true, scale, &out, &stats)?;
    gpu.submit_and_wait(encoder)?;
    let grads = [GpuTensor::empty(gpu, s, "dq")?, GpuTensor::empty(gpu, s, "dk")?, GpuTensor::empty(gpu, s, "dv")?];
    let record: Record<'a> = Box::new(move |e| {
        let saved = backward_fused::Saved { q: &tq, k: &tk, v: &tv, out: &out, row_stats: &stats };
        let [dq, dk, dv] = &grads;
        backward_fused::record_into(gpu, e, saved, &tz, true, scale, backward_fused::Grads { dq, dk, dv })
    });
    let f64s = |a: &ndarray::ArrayD<f32>| a.mapv(f64::from);
    let (q, k, v, d_out) = (f64s(&q), f64s(&k), f64s(&v), f64s(&d_out));
    let host = Box::new(move || {
        crate::reference::backward::attention::attention_backward(q.view(), k.view(), v.view(), true, f64::from(scale), d_out.view())
            .map(drop)
    });
    let visible = (seq * (seq + 1) / 2) as f64;
    Ok(Prepared {
        runs: vec![GpuRun { variant: "fused".into(), choice: "only", record }],
        host,
        work: Work::Flops(10.0 * (bsz * h * d) as f64 * visible),
    })
}
