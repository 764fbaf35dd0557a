//! Row-wise backward kernels, one invocation per row: softmax backward
//! (`shaders/softmax_backward.wgsl`, attention's pattern path: `dS = P ⊙ (dP − Σ P dP)`, exactly
//! 0 where a key is hidden) and LayerNorm backward (`shaders/layer_norm_backward.wgsl`: LN and
//! LNPre without the affine part, in the two steps TransformerLens's `hook_scale` splits it
//! into). Float64 twins: [`crate::reference::backward::softmax::softmax_backward`] and
//! [`crate::reference::backward::layer_norm`]'s `normalize_backward` / `scale_backward`.

use super::{check_row, count, distinct, launch, rows_of, same_shape, Params, LAYER_NORM, SOFTMAX};
use crate::error::{fmt_shape, Error, Result};
use crate::gpu::Gpu;
use crate::tensor::GpuTensor;

/// Records `dx = y ⊙ (dy − Σ_row y dy)` along the last axis (`dx` not `y` or `dy`).
pub fn softmax_backward(gpu: &Gpu, encoder: &mut wgpu::CommandEncoder, y: &GpuTensor, dy: &GpuTensor, dx: &GpuTensor) -> Result<()> {
    same_shape("softmax backward", &[("y", y), ("dy", dy), ("dx", dx)])?;
    distinct("softmax backward", dy, dx)?;
    distinct("softmax backward", y, dx)?;
    let (rows, n) = rows_of(y);
    check_row("softmax backward", n, 2)?;
    let params = Params { rows: count(rows, "softmax backward rows")?, cols: n as u32, ..Params::default() };
    launch(gpu, encoder, SOFTMAX, "softmax_backward", params, &[y.buffer(), dy.buffer(), dx.buffer()], rows as u64, 64)
}

/// Records `out` = `pattern` \[..., Sq, Sk\] with the keys SPEC's causal mask hides set to 0
/// (what the forward's `pattern @ v` reads after an intervention wrote the pattern).
pub fn causal_mask(gpu: &Gpu, encoder: &mut wgpu::CommandEncoder, pattern: &GpuTensor, out: &GpuTensor) -> Result<()> {
    same_shape("causal mask", &[("pattern", pattern), ("out", out)])?;
    distinct("causal mask", pattern, out)?;
    let &[.., sq, sk] = pattern.shape() else {
        return Err(Error::Shape(format!("causal mask: the pattern is {} but must be [..., Sq, Sk]", fmt_shape(pattern.shape()))));
    };
    if sq > sk {
        return Err(Error::Shape(format!("causal mask: {sq} queries for {sk} keys")));
    }
    let (rows, n) = rows_of(pattern);
    check_row("causal mask", n, 1)?;
    let params = Params { rows: count(rows, "causal mask rows")?, cols: n as u32, a: sq as u32, ..Params::default() };
    launch(gpu, encoder, SOFTMAX, "causal_mask", params, &[pattern.buffer(), pattern.buffer(), out.buffer()], rows as u64, 64)
}

/// What one [`layer_norm_backward`] dispatch computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerNormStep {
    /// `d_scale = −Σ dn c / s'²` only (d/d`hook_scale` before its hook).
    Scale,
    /// `dx` from `dn` and the `d_scale` already in its buffer (after the hook).
    Input,
    /// Both in one pass (no hook on the scale).
    Both,
}

/// [`layer_norm_backward`] for LayerNorm (`rms` false) or TransformerLens's RMS norm (`rms`:
/// no centring, `s = sqrt(mean(x²) + eps)`, `dx = dn / s' + ds x / (N s)`; float64 twin
/// [`crate::reference::backward::model::forms::rms_scale_backward`]).
#[allow(clippy::too_many_arguments)]
pub fn norm_backward(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    rms: bool,
    x: &GpuTensor,
    scale: &GpuTensor,
    dn: &GpuTensor,
    eps: f32,
    step: LayerNormStep,
    d_scale: &GpuTensor,
    dx: &GpuTensor,
    accumulate: bool,
) -> Result<()> {
    let extra = if rms { 8 } else { 0 };
    norm_step(gpu, encoder, extra, x, scale, dn, eps, step, d_scale, dx, accumulate)
}

/// Records a LayerNorm backward step for input `x` \[..., N\], `scale` (`hook_scale` as the
/// forward used it, \[..., 1\]), d/d`hook_normalized` `dn`; writes `d_scale` \[..., 1\] and/or
/// `dx` (added to its old contents when `accumulate`).
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_backward(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    x: &GpuTensor,
    scale: &GpuTensor,
    dn: &GpuTensor,
    eps: f32,
    step: LayerNormStep,
    d_scale: &GpuTensor,
    dx: &GpuTensor,
    accumulate: bool,
) -> Result<()> {
    norm_step(gpu, encoder, 0, x, scale, dn, eps, step, d_scale, dx, accumulate)
}

/// One norm backward dispatch with `extra` flag bits (8: RMS).
#[allow(clippy::too_many_arguments)]
fn norm_step(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    extra: u32,
    x: &GpuTensor,
    scale: &GpuTensor,
    dn: &GpuTensor,
    eps: f32,
    step: LayerNormStep,
    d_scale: &GpuTensor,
    dx: &GpuTensor,
    accumulate: bool,
) -> Result<()> {
    same_shape("layer norm backward", &[("x", x), ("dn", dn), ("dx", dx)])?;
    same_shape("layer norm backward", &[("scale", scale), ("d_scale", d_scale)])?;
    for (name, t) in [("x", x), ("scale", scale), ("dn", dn)] {
        distinct(&format!("layer norm backward ({name})"), t, dx)?;
        distinct(&format!("layer norm backward ({name})"), t, d_scale)?;
    }
    let (rows, n) = rows_of(x);
    if scale.len() != rows {
        return Err(Error::Shape(format!("layer norm backward: scale is {} but x is {}", fmt_shape(scale.shape()), fmt_shape(x.shape()))));
    }
    if !(eps.is_finite() && eps >= 0.0) {
        return Err(Error::Input(format!("layer norm backward: eps {eps} must be finite and >= 0")));
    }
    check_row("layer norm backward", n, 6)?;
    let mut flags = match step {
        LayerNormStep::Scale => 1,
        LayerNormStep::Input => 2,
        LayerNormStep::Both => 3,
    };
    if accumulate {
        flags |= 4;
    }
    flags |= extra;
    let params = Params { rows: count(rows, "layer norm backward rows")?, cols: n as u32, flags, value: eps, ..Params::default() };
    let buffers = [x.buffer(), scale.buffer(), dn.buffer(), d_scale.buffer(), dx.buffer()];
    launch(gpu, encoder, LAYER_NORM, "layer_norm_backward", params, &buffers, rows as u64, 64)
}
