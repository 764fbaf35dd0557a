//! One check per op: read the op's arrays from a fixture, run the host reference and the GPU
//! kernel, and compare both with the expected outputs under SPEC's tolerance.
//!
//! Shape problems surface as errors (the fixture cannot be checked), numeric disagreement as a
//! failing [`Outcome`].

use ndarray::ArrayD;

use crate::compare::{Comparison, Tolerance, POINTWISE};
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
        "gelu" => gelu(gpu, fixture, ops::gelu::Gelu::Tanh),
        "gelu_erf" => gelu(gpu, fixture, ops::gelu::Gelu::Erf),
        other => Err(Error::Input(format!(
            "unknown op {other:?} (the name of the fixture's folder); known ops: {}",
            OPS.join(", ")
        ))),
    }
}

/// Compares single-output results under an elementwise tolerance.
fn pointwise_outcome(gpu_out: &ArrayD<f32>, ref_out: &ArrayD<f64>, want: &ArrayD<f64>, tolerance: Tolerance) -> Result<Outcome> {
    let allowed = tolerance.allowed(&want.view());
    let mut gpu = Comparison::new();
    gpu.add_f32("out", &gpu_out.view(), &want.view(), &allowed.view())?;
    let mut reference = Comparison::new();
    reference.add("out", &ref_out.view(), &want.view(), &allowed.view())?;
    Ok(Outcome { gpu, reference })
}

fn gelu(gpu: &Gpu, fixture: &Fixture, kind: ops::gelu::Gelu) -> Result<Outcome> {
    let x = fixture.input("x")?;
    let want = fixture.expected_shaped("out", x.shape())?;
    let ref_out = reference::gelu::gelu(kind, x.mapv(f64::from).view());
    let gpu_out = ops::gelu::run(gpu, kind, x.view())?;
    pointwise_outcome(&gpu_out, &ref_out, &want, POINTWISE)
}
