//! What `bench` measures: the shapes of each op, and for one shape, the GPU work to time (per
//! variant), the host reference to time, and how much work one run does.
//!
//! Shapes are the ones small transformer models use: square matmuls 256 to 4096 and the MLP of
//! Othello-GPT (3776 tokens = 64 games x 59 moves, d_model 512, d_mlp 2048) both ways; softmax and
//! layer norm over the residual stream [3776, 512] and over attention rows [64*8*59, 59];
//! attention at B=64 H=8 S=59 D=64 and a long S=1024; the whole forward pass of an
//! Othello-GPT-sized model on 8 games, and on 64 with `large`. The large sizes (matmul 2048^3 and
//! up, the 64-game forward: over 2^33 flops) run only with `large` (`SHADERLENS_BENCH_LARGE=1` or
//! `--large`, and always on non-CPU adapters). `quick` replaces everything with tiny shapes, for
//! tests.

use ndarray::ArrayD;

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::ops::gelu::Gelu;
use crate::ops::{attention, gelu, layer_norm, matmul, softmax};
use crate::reference;
use crate::tensor::GpuTensor;

pub use super::run::{inputs, GpuRun, Prepared, Record, Work};

/// The ops `bench` knows, in the order it runs them.
pub const OPS: &[&str] = &["matmul", "gelu", "softmax", "layer_norm", "attention", "attention_backward", "transformer"];

/// One op at one shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Case {
    /// The op's name (one of [`OPS`]).
    pub op: &'static str,
    /// matmul: `[M, K, N]`; attention: `[B, H, S, D]` (causal); transformer: `[B, S, layers,
    /// d_model]` (see [`super::transformer`]); the others: the input's shape.
    pub shape: Vec<usize>,
}

/// The cases for `op` (every op when `None`) at the given size settings, or only `op` at
/// `shape` when a shape is given (it then needs an op).
pub fn list(op: Option<&str>, shape: Option<&[usize]>, quick: bool, large: bool) -> Result<Vec<Case>> {
    if let Some(op) = op {
        if !OPS.contains(&op) {
            return Err(Error::Input(format!("unknown op {op:?} (bench knows {})", OPS.join(", "))));
        }
    }
    if let Some(shape) = shape {
        let op = OPS.iter().find(|&&o| Some(o) == op).ok_or_else(|| Error::Input("a shape needs an op".into()))?;
        let rank_ok = match *op {
            "matmul" => shape.len() == 3,
            "attention" | "attention_backward" | "transformer" => shape.len() == 4,
            _ => !shape.is_empty(),
        };
        if !rank_ok || shape.contains(&0) {
            return Err(Error::Shape(format!(
                "bench shape {shape:?} does not fit {op} (matmul: M,K,N; attention: B,H,S,D; transformer: B,S,layers,d_model; others: the input's shape; no zeros)"
            )));
        }
        return Ok(vec![Case { op, shape: shape.to_vec() }]);
    }
    let mut cases = Vec::new();
    let mut add = |name: &'static str, shape: &[usize]| {
        if op.is_none_or(|o| o == name) {
            cases.push(Case { op: name, shape: shape.to_vec() });
        }
    };
    if quick {
        add("matmul", &[64, 64, 64]);
        add("matmul", &[33, 17, 29]);
        add("gelu", &[1000]);
        add("softmax", &[64, 59]);
        add("layer_norm", &[64, 59]);
        add("attention", &[1, 2, 9, 8]);
        add("attention_backward", &[1, 2, 9, 8]);
        add("transformer", &[2, 5, 2, 64]);
        return Ok(cases);
    }
    for s in [256, 512, 1024] {
        add("matmul", &[s, s, s]);
    }
    if large {
        add("matmul", &[2048, 2048, 2048]);
        add("matmul", &[4096, 4096, 4096]);
    }
    add("matmul", &[3776, 512, 2048]);
    add("matmul", &[3776, 2048, 512]);
    add("gelu", &[3776, 2048]);
    for op in ["softmax", "layer_norm"] {
        add(op, &[3776, 512]);
        add(op, &[64 * 8 * 59, 59]);
    }
    add("attention", &[64, 8, 59, 64]);
    add("attention", &[1, 8, 1024, 64]);
    add("attention_backward", &[64, 8, 59, 64]);
    add("attention_backward", &[1, 8, 1024, 64]);
    add("transformer", &[8, 59, 8, 512]);
    if large {
        add("transformer", &[64, 59, 8, 512]);
    }
    Ok(cases)
}

/// Uploads the inputs of `case` and returns its runs, host reference and work. With `variants`,
/// ops that have several kernels get one extra run per kernel.
pub fn prepare<'a>(gpu: &'a Gpu, case: &Case, variants: bool) -> Result<Prepared<'a>> {
    let up = |a: &ArrayD<f32>, name: &str| GpuTensor::upload(gpu, a.view(), name);
    let f64s = |a: &ArrayD<f32>| a.mapv(f64::from);
    let only = |record: Record<'a>| vec![GpuRun { variant: "default".into(), choice: "only", record }];
    let s = case.shape.clone();
    match case.op {
        "matmul" => {
            let [m, k, n] = s[..] else { return Err(Error::Shape(format!("matmul bench shape {s:?} is not [M, K, N]"))) };
            let (a, b) = (inputs(&[m, k], 1), inputs(&[k, n], 2));
            let (ta, tb) = (up(&a, "a")?, up(&b, "b")?);
            let out = GpuTensor::empty(gpu, &[m, n], "out")?;
            let chosen = matmul::choose(gpu, &[m, k], &[k, n])?;
            let choice = if gpu.tune().enabled() && 2.0 * (m * n * k) as f64 >= (1u64 << 24) as f64 { "autotune" } else { "static" };
            let mut runs = Vec::new();
            let all = matmul::Variant::preferred(gpu).into_iter().filter(|v| variants && *v != chosen && v.supports(gpu, k, n));
            for (variant, choice) in std::iter::once((chosen, choice)).chain(all.map(|v| (v, "fixed"))) {
                let (ta, tb, out) = (ta.clone(), tb.clone(), out.clone());
                let record: Record<'a> = Box::new(move |e| matmul::record_with(gpu, e, &ta, &tb, &out, variant));
                runs.push(GpuRun { variant: variant.name().into(), choice, record });
            }
            let (a, b) = (f64s(&a), f64s(&b));
            let host = Box::new(move || reference::matmul::matmul(a.view(), b.view()).map(drop));
            Ok(Prepared { runs, host, work: Work::Flops(2.0 * (m * k * n) as f64) })
        }
        "gelu" => {
            let x = inputs(&s, 3);
            let (tx, out) = (up(&x, "x")?, GpuTensor::empty(gpu, &s, "out")?);
            let x = f64s(&x);
            let bytes = 8.0 * x.len() as f64;
            Ok(Prepared {
                runs: only(Box::new(move |e| gelu::record_into(gpu, e, Gelu::Tanh, &tx, &out))),
                host: Box::new(move || {
                    reference::gelu::gelu(Gelu::Tanh, x.view());
                    Ok(())
                }),
                work: Work::Bytes(bytes),
            })
        }
        "softmax" => {
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
        "layer_norm" => {
            let n = *s.last().unwrap_or(&1);
            let (x, w, b) = (inputs(&s, 5), inputs(&[n], 6), inputs(&[n], 7));
            let (tx, tw, tb) = (up(&x, "x")?, up(&w, "w")?, up(&b, "b")?);
            let out = GpuTensor::empty(gpu, &s, "out")?;
            let (x, w, b) = (f64s(&x), f64s(&w), f64s(&b));
            let bytes = 8.0 * (x.len() + 2 * n) as f64;
            Ok(Prepared {
                runs: only(Box::new(move |e| layer_norm::record_into(gpu, e, &tx, &tw, &tb, 1e-5, &out))),
                host: Box::new(move || reference::layer_norm::layer_norm(x.view(), w.view(), b.view(), 1e-5).map(drop)),
                work: Work::Bytes(bytes),
            })
        }
        "attention" => prepare_attention(gpu, &s),
        "attention_backward" => super::attention_backward::prepare(gpu, &s),
        "transformer" => super::transformer::prepare(gpu, &s),
        other => Err(Error::Input(format!("bench knows no op {other:?}"))),
    }
}

/// Causal self-attention at `[B, H, S, D]`: the fused path (no pattern) and the path that writes
/// the pattern, as two variants. Work counts the multiply-adds of q kᵀ and pattern v over the
/// visible (unmasked) pairs only.
fn prepare_attention<'a>(gpu: &'a Gpu, s: &[usize]) -> Result<Prepared<'a>> {
    let &[bsz, h, seq, d] = s else { return Err(Error::Shape(format!("attention bench shape {s:?} is not [B, H, S, D]"))) };
    let (q, k, v) = (inputs(s, 8), inputs(s, 9), inputs(s, 10));
    let (tq, tk, tv) = (GpuTensor::upload(gpu, q.view(), "q")?, GpuTensor::upload(gpu, k.view(), "k")?, GpuTensor::upload(gpu, v.view(), "v")?);
    let out = GpuTensor::empty(gpu, s, "out")?;
    let pattern = GpuTensor::empty(gpu, &[bsz, h, seq, seq], "pattern")?;
    let scale = 1.0 / (d as f32).sqrt();
    let mut runs = Vec::new();
    for (name, with_pattern) in [("fused", false), ("pattern", true)] {
        let (tq, tk, tv, out, pattern) = (tq.clone(), tk.clone(), tv.clone(), out.clone(), pattern.clone());
        let record: Record<'a> = Box::new(move |e| {
            attention::record_into(gpu, e, &tq, &tk, &tv, true, scale, &out, with_pattern.then_some(&pattern))
        });
        runs.push(GpuRun { variant: name.into(), choice: "fixed", record });
    }
    let (q, k, v) = (q.mapv(f64::from), k.mapv(f64::from), v.mapv(f64::from));
    let visible = (seq * (seq + 1) / 2) as f64;
    Ok(Prepared {
        runs,
        host: Box::new(move || reference::attention::attention(q.view(), k.view(), v.view(), true, f64::from(scale)).map(drop)),
        work: Work::Flops(4.0 * (bsz * h * d) as f64 * visible),
    })
}
