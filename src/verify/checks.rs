//! One check per op: read the op's arrays from a fixture, run the host reference and the GPU
//! kernel, and compare both with the expected outputs under SPEC's tolerance.
//!
//! Shape problems surface as errors (the fixture cannot be checked), numeric disagreement as a
//! failing [`Outcome`].

use ndarray::ArrayD;

use crate::compare::{matmul_allowed, Comparison, Tolerance, ATTENTION, POINTWISE};
use crate::error::{Error, Result};
use crate::fixture::Fixture;
use crate::gpu::Gpu;
use crate::ops;
use crate::reference;

pub use crate::compare::Outcome;

/// How `verify` checks one op's fixture.
pub type Check = fn(&Gpu, &Fixture) -> Result<Outcome>;

/// The registry of ops `verify` knows: the folder name a fixture's op is read from, and its
/// check. Adding an op to `verify` is one row here (and its check function in its own home).
pub const REGISTRY: &[(&str, Check)] = &[
    ("matmul", matmul),
    ("softmax", softmax),
    ("layer_norm", layer_norm),
    ("gelu", |gpu, fixture| gelu(gpu, fixture, ops::gelu::Gelu::Tanh)),
    ("gelu_erf", |gpu, fixture| gelu(gpu, fixture, ops::gelu::Gelu::Erf)),
    ("attention", attention),
    ("attention_layer", attention_layer),
    ("transformer", super::transformer::check),
    ("transformer_grad", super::grad::check),
    ("adamw", adamw),
    ("train", super::train::check),
    ("act_patch", super::analysis::check_act_patch),
    ("attribution", super::analysis::check_attribution),
];

/// The names of the ops `verify` knows, in [`REGISTRY`]'s order.
pub fn ops() -> impl Iterator<Item = &'static str> {
    REGISTRY.iter().map(|(name, _)| *name)
}

/// Checks one fixture with the op its folder names.
pub fn check(gpu: &Gpu, fixture: &Fixture) -> Result<Outcome> {
    match REGISTRY.iter().find(|(name, _)| *name == fixture.op) {
        Some((_, check)) => check(gpu, fixture),
        None => Err(Error::Input(format!(
            "unknown op {:?} (the name of the fixture's folder); known ops: {}",
            fixture.op,
            ops().collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// One output of an op: its name, the GPU's and the reference's results, what the fixture expects
/// and the allowed error per element.
struct Checked<'a> {
    name: &'a str,
    gpu: &'a ArrayD<f32>,
    reference: &'a ArrayD<f64>,
    want: &'a ArrayD<f64>,
    allowed: ArrayD<f64>,
}

/// Folds every output into the GPU and reference comparisons.
fn outcome(outputs: &[Checked<'_>]) -> Result<Outcome> {
    let mut gpu = Comparison::new();
    let mut reference = Comparison::new();
    for o in outputs {
        gpu.add_f32(o.name, &o.gpu.view(), &o.want.view(), &o.allowed.view())?;
        reference.add(o.name, &o.reference.view(), &o.want.view(), &o.allowed.view())?;
    }
    Ok(Outcome { gpu, reference, problem: None })
}

/// Compares single-output results under an elementwise tolerance.
fn pointwise_outcome(gpu_out: &ArrayD<f32>, ref_out: &ArrayD<f64>, want: &ArrayD<f64>, tolerance: Tolerance) -> Result<Outcome> {
    let allowed = tolerance.allowed(&want.view());
    outcome(&[Checked { name: "out", gpu: gpu_out, reference: ref_out, want, allowed }])
}

fn matmul(gpu: &Gpu, fixture: &Fixture) -> Result<Outcome> {
    let a = fixture.input("a")?;
    let b = fixture.input("b")?;
    let shape = reference::matmul::output_shape(a.shape(), b.shape())?;
    let want = fixture.expected_shaped("out", &shape)?;
    let (a64, b64) = (a.mapv(f64::from), b.mapv(f64::from));
    let ref_out = reference::matmul::matmul(a64.view(), b64.view())?;
    let abs_product = reference::matmul::matmul(a64.mapv(f64::abs).view(), b64.mapv(f64::abs).view())?;
    let k = a.shape()[a.ndim() - 1];
    let allowed = matmul_allowed(&abs_product.view(), k);
    let gpu_out = ops::matmul::run(gpu, a.view(), b.view())?;
    outcome(&[Checked { name: "out", gpu: &gpu_out, reference: &ref_out, want: &want, allowed }])
}

fn softmax(gpu: &Gpu, fixture: &Fixture) -> Result<Outcome> {
    let x = fixture.input("x")?;
    reference::softmax::check_shape(x.shape())?;
    let want = fixture.expected_shaped("out", x.shape())?;
    let ref_out = reference::softmax::softmax(x.mapv(f64::from).view())?;
    let gpu_out = ops::softmax::run(gpu, x.view())?;
    pointwise_outcome(&gpu_out, &ref_out, &want, POINTWISE)
}

fn layer_norm(gpu: &Gpu, fixture: &Fixture) -> Result<Outcome> {
    let x = fixture.input("x")?;
    let w = fixture.input("w")?;
    let b = fixture.input("b")?;
    let eps = fixture.scalar_f64("eps")?;
    let eps32 = crate::scalar::to_f32("eps", eps)?; // refused up front when float32 cannot hold it
    reference::layer_norm::check_shapes(x.shape(), Some((w.shape(), b.shape())))?;
    let want = fixture.expected_shaped("out", x.shape())?;
    let ref_out = reference::layer_norm::layer_norm(x.mapv(f64::from).view(), w.mapv(f64::from).view(), b.mapv(f64::from).view(), eps)?;
    let gpu_out = ops::layer_norm::run(gpu, x.view(), w.view(), b.view(), eps32)?;
    pointwise_outcome(&gpu_out, &ref_out, &want, POINTWISE)
}

/// Checks both GPU paths: the unfused one (out and pattern) and the fused one (out only, which
/// never materialises the pattern), so that a user's `record(.., want_pattern = false)` is
/// covered by every fixture too.
fn attention(gpu: &Gpu, fixture: &Fixture) -> Result<Outcome> {
    let [q, k, v] = ["q", "k", "v"].map(|name| fixture.input(name));
    let (q, k, v) = (q?, k?, v?);
    let causal = fixture.scalar_bool("causal")?;
    let scale = fixture.scalar_f64("scale")?;
    let scale32 = crate::scalar::to_f32("scale", scale)?; // refused up front when float32 cannot hold it
    let dims = reference::attention::attention_shapes(q.shape(), k.shape(), v.shape())?;
    let want_out = fixture.expected_shaped("out", &dims.out_shape())?;
    let want_pattern = fixture.expected_shaped("pattern", &dims.pattern_shape())?;
    let (ref_out, ref_pattern) =
        reference::attention::attention(q.mapv(f64::from).view(), k.mapv(f64::from).view(), v.mapv(f64::from).view(), causal, scale)?;
    let (gpu_out, gpu_pattern) = ops::attention::run(gpu, q.view(), k.view(), v.view(), causal, scale32, true)?;
    let gpu_pattern = gpu_pattern.ok_or_else(|| Error::Gpu("the unfused attention path returned no pattern".into()))?;
    let (fused_out, _) = ops::attention::run(gpu, q.view(), k.view(), v.view(), causal, scale32, false)?;
    let allowed_out = ATTENTION.allowed(&want_out.view());
    outcome(&[
        Checked { name: "out", gpu: &gpu_out, reference: &ref_out, want: &want_out, allowed: allowed_out.clone() },
        Checked { name: "pattern", gpu: &gpu_pattern, reference: &ref_pattern, want: &want_pattern, allowed: ATTENTION.allowed(&want_pattern.view()) },
        Checked { name: "out (fused)", gpu: &fused_out, reference: &ref_out, want: &want_out, allowed: allowed_out },
    ])
}

fn attention_layer(gpu: &Gpu, fixture: &Fixture) -> Result<Outcome> {
    use reference::attention_layer::AttentionWeights;
    let x = fixture.input("x")?;
    let names = ["W_Q", "W_K", "W_V", "b_Q", "b_K", "b_V", "W_O", "b_O"];
    let [w_q, w_k, w_v, b_q, b_k, b_v, w_o, b_o] = names.map(|name| fixture.input(name));
    let weights = AttentionWeights { w_q: w_q?, w_k: w_k?, w_v: w_v?, b_q: b_q?, b_k: b_k?, b_v: b_v?, w_o: w_o?, b_o: b_o? };
    let dims = reference::attention_layer::attention_layer_shapes(x.shape(), &weights.map(|_, a| a.shape()))?;
    let want_out = fixture.expected_shaped("out", &[dims.batch, dims.seq, dims.d_model])?;
    let want_pattern = fixture.expected_shaped("pattern", &[dims.batch, dims.heads, dims.seq, dims.seq])?;
    let weights64 = weights.map(|_, a| a.mapv(f64::from));
    let reference = reference::attention_layer::attention_layer(x.mapv(f64::from).view(), &weights64.map(|_, a| a.view()))?;
    let views = weights.map(|_, a| a.view());
    let unfused = ops::attention_layer::run(gpu, x.view(), &views, ops::attention_layer::Request::pattern())?;
    let gpu_pattern = unfused.pattern.ok_or_else(|| Error::Gpu("attention_layer returned no pattern".into()))?;
    let fused = ops::attention_layer::run(gpu, x.view(), &views, ops::attention_layer::Request::default())?;
    let allowed_out = ATTENTION.allowed(&want_out.view());
    outcome(&[
        Checked { name: "out", gpu: &unfused.out, reference: &reference.out, want: &want_out, allowed: allowed_out.clone() },
        Checked { name: "pattern", gpu: &gpu_pattern, reference: &reference.pattern, want: &want_pattern, allowed: ATTENTION.allowed(&want_pattern.view()) },
        Checked { name: "out (fused)", gpu: &fused.out, reference: &reference.out, want: &want_out, allowed: allowed_out },
    ])
}

fn gelu(gpu: &Gpu, fixture: &Fixture, kind: ops::gelu::Gelu) -> Result<Outcome> {
    let x = fixture.input("x")?;
    let want = fixture.expected_shaped("out", x.shape())?;
    let ref_out = reference::gelu::gelu(kind, x.mapv(f64::from).view());
    let gpu_out = ops::gelu::run(gpu, kind, x.view())?;
    pointwise_outcome(&gpu_out, &ref_out, &want, POINTWISE)
}

/// SPEC's `adamw`: one update of `param`, `m` and `v`, by the GPU kernel and the float64 twin.
fn adamw(gpu: &Gpu, fixture: &Fixture) -> Result<Outcome> {
    use crate::reference::backward::fixtures::ADAMW;
    let [param, grad, m, v] = ["param", "grad", "m", "v"].map(|name| fixture.input(name));
    let (param, grad, m, v) = (param?, grad?, m?, v?);
    let step = fixture.int_array("step")?;
    crate::fixture::check_rank("step", step.shape(), 0)?;
    let step = step.iter().next().copied().ok_or_else(|| Error::Input("step is empty".into()))?;
    let hp = ops::adamw::AdamW {
        lr: fixture.scalar_f64("lr")?,
        beta1: fixture.scalar_f64("beta1")?,
        beta2: fixture.scalar_f64("beta2")?,
        eps: fixture.scalar_f64("eps")?,
        weight_decay: fixture.scalar_f64("weight_decay")?,
    };
    let wide = |a: &ArrayD<f32>| a.mapv(f64::from);
    let reference = reference::backward::adamw::adamw(wide(&param).view(), wide(&grad).view(), wide(&m).view(), wide(&v).view(), step, &hp)?;
    let want = |name: &str| fixture.expected_shaped(name, param.shape());
    let (want_param, want_m, want_v) = (want("param_out")?, want("m_out")?, want("v_out")?);
    let (gpu_param, gpu_m, gpu_v) = ops::adamw::run(gpu, param.view(), grad.view(), m.view(), v.view(), step, &hp)?;
    outcome(&[
        Checked { name: "param_out", gpu: &gpu_param, reference: &reference.param, want: &want_param, allowed: ADAMW.allowed(&want_param.view()) },
        Checked { name: "m_out", gpu: &gpu_m, reference: &reference.m, want: &want_m, allowed: ADAMW.allowed(&want_m.view()) },
        Checked { name: "v_out", gpu: &gpu_v, reference: &reference.v, want: &want_v, allowed: ADAMW.allowed(&want_v.view()) },
    ])
}
