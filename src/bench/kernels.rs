//! What `bench` runs for the elementwise and row ops and for matmul and attention: inputs
//! uploaded, the GPU runs (per kernel variant where an op has several) and the float64 host
//! reference to time against. The whole-model cases live in [`super::transformer`] and
//! [`super::attention_backward`].

use ndarray::ArrayD;

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::ops::gelu::Gelu;
use crate::ops::{attention, gelu, layer_norm, matmul, softmax};
use crate::reference;
use crate::tensor::GpuTensor;

use super::run::{inputs, GpuRun, Prepared, Record, Work};

/// `[M, K, N]`: the kernel the autotuner (or the static table) picks, and with `variants` every
/// other kernel that fits, each as its own run.
pub fn prepare_matmul<'a>(gpu: &'a Gpu, s: &[usize], variants: bool) -> Result<Prepared<'a>> {
    let up = |a: &ArrayD<f32>, name: &str| GpuTensor::upload(gpu, a.view(), name);
    let f64s = |a: &ArrayD<f32>| a.mapv(f64::from);
    let s = s.to_vec();
    let [m, k, n] = s[..] else {
        return Err(Error::Shape(format!(
            "matmul bench shape {s:?} is not [M, K, N]"
        )));
    };
    let (a, b) = (inputs(&[m, k], 1), inputs(&[k, n], 2));
    let (ta, tb) = (up(&a, "a")?, up(&b, "b")?);
    let out = GpuTensor::empty(gpu, &[m, n], "out")?;
    let chosen = matmul::choose(gpu, &[m, k], &[k, n])?;
    let choice = if gpu.tune().enabled() && 2.0 * (m * n * k) as f64 >= (1u64 << 24) as f64 {
        "autotune"
    } else {
        "static"
    };
    let mut runs = Vec::new();
    let all = matmul::Variant::preferred(gpu)
        .into_iter()
        .filter(|v| variants && *v != chosen && v.supports(gpu, k, n));
    for (variant, choice) in std::iter::once((chosen, choice)).chain(all.map(|v| (v, "fixed"))) {
        let (ta, tb, out) = (ta.clone(), tb.clone(), out.clone());
        let record: Record<'a> =
            Box::new(move |e| matmul::record_with(gpu, e, &ta, &tb, &out, variant));
        runs.push(GpuRun {
            variant: variant.name().into(),
            choice,
            record,
        });
    }
    let (a, b) = (f64s(&a), f64s(&b));
    let host = Box::new(move || reference::matmul::matmul(a.view(), b.view()).map(drop));
    Ok(Prepared {
        runs,
        host,
        work: Work::Flops(2.0 * (m * k * n) as f64),
    })
}

/// GELU (tanh form) over the given shape.
pub fn prepare_gelu<'a>(gpu: &'a Gpu, s: &[usize], _variants: bool) -> Result<Prepared<'a>> {
    let up = |a: &ArrayD<f32>, name: &str| GpuTensor::upload(gpu, a.view(), name);
    let f64s = |a: &ArrayD<f32>| a.mapv(f64::from);
    let only = |record: Record<'a>| {
        vec![GpuRun {
            variant: "default".into(),
            choice: "only",
            record,
        }]
    };
    let s = s.to_vec();
    let x = inputs(&s, 3);
    let (tx, out) = (up(&x, "x")?, GpuTensor::empty(gpu, &s, "out")?);
    let x = f64s(&x);
    let bytes = 8.0 * x.len() as f64;
    Ok(Prepared {
        runs: only(Box::new(move |e| {
            gelu::record_into(gpu, e, Gelu::Tanh, &tx, &out)
        })),
        host: Box::new(move || {
            reference::gelu::gelu(Gelu::Tanh, x.view());
            Ok(())
        }),
        work: Work::Bytes(bytes),
    })
}

/// Softmax along the last axis of the given shape.
pub fn prepare_softmax<'a>(gpu: &'a Gpu, s: &[usize], _variants: bool) -> Result<Prepared<'a>> {
    let up = |a: &ArrayD<f32>, name: &str| GpuTensor::upload(gpu, a.view(), name);
    let f64s = |a: &ArrayD<f32>| a.mapv(f64::from);
    let only = |record: Record<'a>| {
        vec![GpuRun {
            variant: "default".into(),
            choice: "only",
            record,
        }]
    };
    let s = s.to_vec();
    let x = inputs(&s, 4);
    let (tx, out) = (up(&x, "x")?, GpuTensor::empty(gpu, &s, "out")?);
    let x = f64s(&x);
    let bytes = 8.0 * x.len() as f64;
    Ok(Prepared {
        runs: only(Box::new(move |e| softmax::record_into(gpu, e, &tx, &out))),
        host: Box::new(move || reference::softmax::softmax(x.view()).map(drop)),
        work: Work::Bytes(bytes),
    })
}

/// Layer norm (with weight and bias) along the last axis of the given shape.
pub fn prepare_layer_norm<'a>(gpu: &'a Gpu, s: &[usize], _variants: bool) -> Result<Prepared<'a>> {
    let up = |a: &ArrayD<f32>, name: &str| GpuTensor::upload(gpu, a.view(), name);
    let f64s = |a: &ArrayD<f32>| a.mapv(f64::from);
    let only = |record: Record<'a>| {
        vec![GpuRun {
            variant: "default".into(),
            choice: "only",
            record,
        }]
    };
    let s = s.to_vec();
    let n = *s.last().unwrap_or(&1);
    let (x, w, b) = (inputs(&s, 5), inputs(&[n], 6), inputs(&[n], 7));
    let (tx, tw, tb) = (up(&x, "x")?, up(&w, "w")?, up(&b, "b")?);
    let out = GpuTensor::empty(gpu, &s, "out")?;
    let (x, w, b) = (f64s(&x), f64s(&w), f64s(&b));
    let bytes = 8.0 * (x.len() + 2 * n) as f64;
    Ok(Prepared {
        runs: only(Box::new(move |e| {
            layer_norm::record_into(gpu, e, &tx, &tw, &tb, 1e-5, &out)
        })),
        host: Box::new(move || {
            reference::layer_norm::layer_norm(x.view(), w.view(), b.view(), 1e-5).map(drop)
        }),
        work: Work::Bytes(bytes),
    })
}

/// Causal self-attention at `[B, H, S, D]`: the fused path (no pattern) and the path that writes
/// the pattern, as two variants. Work counts the multiply-adds of q kᵀ and pattern v over the
/// visible (unmasked) pairs only.
pub fn prepare_attention<'a>(gpu: &'a Gpu, s: &[usize], _variants: bool) -> Result<Prepared<'a>> {
    let &[bsz, h, seq, d] = s else {
        return Err(Error::Shape(format!(
            "attention bench shape {s:?} is not [B, H, S, D]"
        )));
    };
    let (q, k, v) = (inputs(s, 8), inputs(s, 9), inputs(s, 10));
    let (tq, tk, tv) = (
        GpuTensor::upload(gpu, q.view(), "q")?,
        GpuTensor::upload(gpu, k.view(), "k")?,
        GpuTensor::upload(gpu, v.view(), "v")?,
    );
    let out = GpuTensor::empty(gpu, s, "out")?;
    let pattern = GpuTensor::empty(gpu, &[bsz, h, seq, seq], "pattern")?;
    let scale = 1.0 / (d as f32).sqrt();
    let mut runs = Vec::new();
    for (name, with_pattern) in [("fused", false), ("pattern", true)] {
        let (tq, tk, tv, out, pattern) = (
            tq.clone(),
            tk.clone(),
            tv.clone(),
            out.clone(),
            pattern.clone(),
        );
        let record: Record<'a> = Box::new(move |e| {
            attention::record_into(
                gpu,
                e,
                &tq,
                &tk,
                &tv,
                true,
                scale,
                &out,
                with_pattern.then_some(&pattern),
            )
        });
        runs.push(GpuRun {
            variant: name.into(),
            choice: "fixed",
            record,
        });
    }
    let (q, k, v) = (q.mapv(f64::from), k.mapv(f64::from), v.mapv(f64::from));
    let visible = (seq * (seq + 1) / 2) as f64;
    Ok(Prepared {
        runs,
        host: Box::new(move || {
            reference::attention::attention(q.view(), k.view(), v.view(), true, f64::from(scale))
                .map(drop)
        }),
        work: Work::Flops(4.0 * (bsz * h * d) as f64 * visible),
    })
}
