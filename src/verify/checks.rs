//! One check per op: read the op's arrays from a fixture, run the host reference and the GPU
//! kernel, and compare both with the expected outputs under SPEC's tolerance.
//!
//! Shape problems surface as errors (the fixture cannot be checked), numeric disagreement as a
//! failing [`Outcome`].

use ndarray::ArrayD;

use crate::compare::{matmul_allowed, Comparison, Tolerance, POINTWISE};
use crate::error::{Error, Result};
use crate::fixture::Fixture;
use crate::gpu::Gpu;
use crate::ops;
use crate::reference;

/// The two comparisons SPEC asks for: GPU kernel and host reference, each against the fixture.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// GPU result against expected.
    pub gpu: Comparison,
    /// Host reference against expected.
    pub reference: Comparison,
}

impl Outcome {
    /// A fixture passes only if both do.
    pub fn passed(&self) -> bool {
        self.gpu.passed() && self.reference.passed()
    }
}

/// The ops `verify` knows, by folder name.
pub const OPS: &[&str] = &["matmul", "softmax", "layer_norm", "gelu", "gelu_erf", "attention", "attention_layer", "transformer"];

/// Checks one fixture with the op its folder names.
pub fn check(gpu: &Gpu, fixture: &Fixture) -> Result<Outcome> {
    match fixture.op.as_str() {
        "matmul" => matmul(gpu, fixture),
        "gelu" => gelu(gpu, fixture, ops::gelu::Gelu::Tanh),
        "gelu_erf" => gelu(gpu, fixture, ops::gelu::Gelu::Erf),
        other => Err(Error::Input(format!(
            "unknown op {other:?} (the name of the fixture's folder); known ops: {}",
            OPS.join(", ")
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
    Ok(Outcome { gpu, reference })
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

fn gelu(gpu: &Gpu, fixture: &Fixture, kind: ops::gelu::Gelu) -> Result<Outcome> {
    let x = fixture.input("x")?;
    let want = fixture.expected_shaped("out", x.shape())?;
    let ref_out = reference::gelu::gelu(kind, x.mapv(f64::from).view());
    let gpu_out = ops::gelu::run(gpu, kind, x.view())?;
    pointwise_outcome(&gpu_out, &ref_out, &want, POINTWISE)
}
