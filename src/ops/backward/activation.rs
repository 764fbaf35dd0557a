//! GELU (tanh and erf) and ReLU backward, elementwise (`shaders/activation_backward.wgsl`):
//! `dx = dy f'(x)`. Float64 twins: [`crate::reference::backward::activation`].

use super::{count, distinct, launch, same_shape, Params, ACTIVATION};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::ops::gelu::Gelu;
use crate::tensor::GpuTensor;

/// Records `dx = dy · f'(x)` for `f` = GELU of `kind`, or ReLU for `None`.
pub fn record_into(gpu: &Gpu, encoder: &mut wgpu::CommandEncoder, kind: Option<Gelu>, x: &GpuTensor, dy: &GpuTensor, dx: &GpuTensor) -> Result<()> {
    same_shape("activation backward", &[("x", x), ("dy", dy), ("dx", dx)])?;
    distinct("activation backward", x, dx)?;
    distinct("activation backward", dy, dx)?;
    let entry = match kind {
        Some(Gelu::Tanh) => "gelu_tanh_backward",
        Some(Gelu::Erf) => "gelu_erf_backward",
        None => "relu_backward",
    };
    let params = Params { n: count(x.len(), "activation backward")?, ..Params::default() };
    launch(gpu, encoder, ACTIVATION, entry, params, &[x.buffer(), dy.buffer(), dx.buffer()], x.len() as u64, 256)
}
