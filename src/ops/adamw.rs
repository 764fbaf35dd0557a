//! AdamW on the GPU (SPEC's `adamw`: `torch.optim.AdamW`'s update number t), in place on one flat
//! buffer: the parameter and its moments `m`, `v` are updated, the gradient is read. Elementwise,
//! one invocation per element, 256 per workgroup, on a 2-D grid of workgroups, so that a trainer
//! that lays all of a model's parameters end to end updates them with one dispatch. The WGSL is
//! `shaders/adamw.wgsl`; the float64 twin, the hyper-parameter checks and the shape rule are in
//! [`crate::reference::backward::adamw`].

use ndarray::{ArrayD, ArrayViewD};

use crate::error::Result;
use crate::gpu::{Gpu, Shader};
use crate::tensor::GpuTensor;

pub use crate::spec::adamw::AdamW;
use crate::spec::adamw::check_shapes;

const SHADER: Shader = crate::gpu::shaders::ADAMW;
const WORKGROUP: u64 = 256;

/// Matches `Params` in `shaders/adamw.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    decay: f32,
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    step_size: f32,
    bias2_sqrt: f32,
    eps: f32,
}

/// `Params` against `shaders/adamw.wgsl` (checked by `tests/params_layout.rs`).
pub(crate) const LAYOUTS: &[crate::gpu::layout::ParamsLayout] = &[crate::gpu::layout::params_layout!(
    Params,
    SHADER,
    [n, decay, one_minus_beta1, beta2, one_minus_beta2, step_size, bias2_sqrt, eps]
)];

/// The float32 uniforms of update `step`, folded in float64 first. A constant that float32
/// cannot hold is refused by name rather than turned into inf.
fn params(n: usize, step: i64, hp: &AdamW) -> Result<Params> {
    let k = hp.step_scalars(step)?;
    let f = crate::scalar::to_f32;
    Ok(Params {
        n: u32::try_from(n).map_err(|_| crate::Error::Input(format!("adamw: {n} elements exceed a u32 index")))?,
        decay: f("adamw 1 - lr * weight_decay", k.decay)?,
        one_minus_beta1: f("adamw 1 - beta1", 1.0 - hp.beta1)?,
        beta2: f("adamw beta2", hp.beta2)?,
        one_minus_beta2: f("adamw 1 - beta2", 1.0 - hp.beta2)?,
        step_size: f("adamw lr / (1 - beta1^t)", k.step_size)?,
        bias2_sqrt: f("adamw sqrt(1 - beta2^t)", k.bias2_sqrt)?,
        eps: f("adamw eps", hp.eps)?,
    })
}

/// What AdamW updates in place: a parameter (or all of a model's, end to end) and its moments.
#[derive(Debug)]
pub struct State {
    /// The parameter.
    pub param: GpuTensor,
    /// The first moment, `m`.
    pub m: GpuTensor,
    /// The second moment, `v`.
    pub v: GpuTensor,
}

/// Records update number `step` (t ≥ 1) into `encoder`: `state`'s parameter and moments are
/// updated in place from `grad`. All four must have one shape.
pub fn record_into(gpu: &Gpu, encoder: &mut wgpu::CommandEncoder, state: &State, grad: &GpuTensor, step: i64, hp: &AdamW) -> Result<()> {
    let State { param, m, v } = state;
    check_shapes(param.shape(), grad.shape(), m.shape(), v.shape())?;
    let params = params(param.len(), step, hp)?;
    if param.is_empty() {
        return Ok(());
    }
    let grid = gpu.grid((param.len() as u64).div_ceil(WORKGROUP), "adamw workgroups")?;
    let kernel = gpu.kernel::<Params>(SHADER, "adamw", &[])?;
    kernel.record(gpu, encoder, &params, &[grad.buffer(), param.buffer(), m.buffer(), v.buffer()], grid);
    Ok(())
}

/// Uploads the four arrays, runs update `step`, and reads back `(param, m, v)`.
pub fn run(
    gpu: &Gpu,
    param: ArrayViewD<'_, f32>,
    grad: ArrayViewD<'_, f32>,
    m: ArrayViewD<'_, f32>,
    v: ArrayViewD<'_, f32>,
    step: i64,
    hp: &AdamW,
) -> Result<(ArrayD<f32>, ArrayD<f32>, ArrayD<f32>)> {
    // Everything that can be refused is refused before anything is uploaded.
    check_shapes(param.shape(), grad.shape(), m.shape(), v.shape())?;
    params(param.len(), step, hp)?;
    GpuTensor::check_fits(gpu, param.shape(), "param")?;
    let mut out = super::run_many(gpu, |encoder| {
        let state = State {
            param: GpuTensor::upload(gpu, param, "adamw param")?,
            m: GpuTensor::upload(gpu, m, "adamw m")?,
            v: GpuTensor::upload(gpu, v, "adamw v")?,
        };
        let g = GpuTensor::upload(gpu, grad, "adamw grad")?;
        record_into(gpu, encoder, &state, &g, step, hp)?;
        Ok(vec![state.param, state.m, state.v])
    })?;
    let v = out.pop();
    let m = out.pop();
    let p = out.pop();
    match (p, m, v) {
        (Some(p), Some(m), Some(v)) => Ok((p, m, v)),
        _ => Err(crate::Error::Gpu("adamw read back fewer than three arrays".into())),
    }
}
