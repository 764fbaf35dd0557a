//! The optimizer step of a GPU trainer over every parameter of a model at once.
//!
//! The parameters, AdamW's moments `m` and `v` and the gradients lie end to end in flat arena
//! buffers, one segment per parameter in state-dict order, beside a per-element decay mask
//! (0 where biases and layer-norm weights are exempt). One step, recorded into one encoder with
//! no readback: the gradients (a `Weights<GpuTensor>`, as the GPU backward gives them) are copied
//! into the arena with `copy_buffer_to_buffer`; `sum_squares` and `finish_norm` reduce their
//! global L2 norm in a fixed order (deterministic) and the clip factor
//! (`torch.nn.utils.clip_grad_norm_`) stays on the GPU; ONE `adamw_arena` dispatch updates every
//! parameter; the parameters are copied back into the model's own tensors. The norm is read back
//! only when asked ([`GpuOptimizer::grad_norm`], at evaluation steps). WGSL:
//! `shaders/adamw_arena.wgsl`; the float64 twin is [`crate::reference::backward::adamw`].
//! With Grokfast on, one `grokfast_arena` dispatch (`shaders/grokfast_arena.wgsl`) filters the
//! gradient arena first, keeping the average in an arena of its own ([`super::grokfast`]).

use std::cell::Cell;

use ndarray::ArrayD;

use super::config::Optimizer;
use super::{decays, State};
use crate::error::{Error, Result};
use crate::gpu::{Gpu, Shader};
use crate::tensor::GpuTensor;
use crate::model::weights::Weights;
use crate::transformer::Config;

const SHADER: Shader = crate::gpu::shaders::ADAMW_ARENA;
const GROKFAST: Shader = crate::gpu::shaders::GROKFAST_ARENA;
const WORKGROUP: u64 = 256;
/// Elements each `sum_squares` workgroup reduces (16 per invocation).
const CHUNK: u64 = 4096;

/// Matches `Params` in `shaders/adamw_arena.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    chunk: u32,
    count: u32,
    clip: u32,
    max_norm: f32,
    decay: f32,
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    step_size: f32,
    bias2_sqrt: f32,
    eps: f32,
}

/// Matches `Params` in `shaders/grokfast_arena.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct GrokfastParams {
    n: u32,
    first: u32,
    alpha: f32,
    one_minus_alpha: f32,
    lambda: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

/// `Params` against `shaders/adamw_arena.wgsl` and `shaders/grokfast_arena.wgsl` (checked by
/// `tests/params_layout.rs`).
pub(crate) const LAYOUTS: &[crate::gpu::layout::ParamsLayout] = &[
    crate::gpu::layout::params_layout!(
        Params,
        SHADER,
        [n, chunk, count, clip, max_norm, decay, one_minus_beta1, beta2, one_minus_beta2, step_size, bias2_sqrt, eps]
    ),
    crate::gpu::layout::params_layout!(GrokfastParams, GROKFAST, [n, first, alpha, one_minus_alpha, lambda]),
];

/// One parameter's place in the arena.
#[derive(Clone, Debug)]
struct Segment {
    name: String,
    offset: u64,
    len: u64,
}

/// AdamW over a model's parameters in flat GPU buffers.
#[derive(Debug)]
pub struct GpuOptimizer {
    config: Config,
    optimizer: Optimizer,
    segments: Vec<Segment>,
    n: u64,
    param: GpuTensor,
    m: GpuTensor,
    v: GpuTensor,
    grad: GpuTensor,
    mask: GpuTensor,
    partials: GpuTensor,
    /// `[norm, clip factor]` of the last step.
    norm: GpuTensor,
    /// `[norm, 1]` of the parameters, when asked.
    weight_norm: GpuTensor,
    /// Grokfast's gradient average (an arena), when Grokfast is on.
    ema: Option<GpuTensor>,
    /// Whether `ema` holds an average yet (false: the next update starts it at the gradient).
    ema_ready: Cell<bool>,
}

impl GpuOptimizer {
    /// An optimizer for the parameters `weights` (copied into the arena), with zero moments.
    pub fn new(gpu: &Gpu, config: &Config, optimizer: Optimizer, weights: &Weights<GpuTensor>) -> Result<Self> {
        optimizer.adamw.check()?;
        weights.check_shapes(config, |t| t.shape())?;
        let mut segments = Vec::new();
        let mut n = 0u64;
        for (name, t) in weights.named() {
            segments.push(Segment { name, offset: n, len: t.len() as u64 });
            n += t.len() as u64;
        }
        let flat = |what: &str| GpuTensor::empty(gpu, &[n as usize], &format!("train arena {what}"));
        let mask: Vec<u32> = segments
            .iter()
            .flat_map(|s| std::iter::repeat_n(u32::from(decays(&s.name, optimizer.decay_biases_and_norms)), s.len as usize))
            .collect();
        let count = n.div_ceil(CHUNK).max(1);
        let this = Self {
            config: config.clone(),
            optimizer,
            segments,
            n,
            param: flat("param")?,
            m: flat("m")?,
            v: flat("v")?,
            grad: flat("grad")?,
            mask: flat("mask")?,
            partials: GpuTensor::empty(gpu, &[count as usize], "train arena partial norms")?,
            norm: GpuTensor::empty(gpu, &[2], "train arena norm")?,
            weight_norm: GpuTensor::empty(gpu, &[2], "train arena weight norm")?,
            ema: if optimizer.grokfast.is_some() { Some(flat("grokfast average")?) } else { None },
            ema_ready: Cell::new(false),
        };
        gpu.queue().write_buffer(this.mask.buffer(), 0, bytemuck::cast_slice(&mask));
        let mut encoder = gpu.encoder();
        this.copy(&mut encoder, weights, true)?;
        gpu.submit_and_wait(encoder)?;
        Ok(this)
    }

    /// Copies between the arena's parameters and the model's tensors (`into_arena`: model → arena).
    fn copy(&self, encoder: &mut wgpu::CommandEncoder, weights: &Weights<GpuTensor>, into_arena: bool) -> Result<()> {
        for (seg, (name, t)) in self.segments.iter().zip(weights.named()) {
            if seg.name != name || seg.len != t.len() as u64 {
                return Err(Error::Shape(format!("train optimizer: the model's {name} does not match the arena's {}", seg.name)));
            }
            if seg.len == 0 {
                continue;
            }
            if into_arena {
                encoder.copy_buffer_to_buffer(t.buffer(), 0, self.param.buffer(), seg.offset * 4, seg.len * 4);
            } else {
                encoder.copy_buffer_to_buffer(self.param.buffer(), seg.offset * 4, t.buffer(), 0, seg.len * 4);
            }
        }
        Ok(())
    }

    /// Records update number `t` (≥ 1) with learning rate `lr` into `encoder`: gradients in,
    /// norm and clip factor, one AdamW dispatch, parameters back into `weights`.
    pub fn record_step(&self, gpu: &Gpu, encoder: &mut wgpu::CommandEncoder, grads: &Weights<GpuTensor>, weights: &Weights<GpuTensor>, t: u64, lr: f64) -> Result<()> {
        grads.check_shapes(&self.config, |g| g.shape())?;
        let params = self.params(t, lr)?;
        for (seg, (_, g)) in self.segments.iter().zip(grads.named()) {
            if seg.len > 0 {
                encoder.copy_buffer_to_buffer(g.buffer(), 0, self.grad.buffer(), seg.offset * 4, seg.len * 4);
            }
        }
        self.record_grokfast(gpu, encoder)?;
        self.record_norm(gpu, encoder, &params, &self.grad, &self.norm)?;
        let adamw = gpu.kernel::<Params>(SHADER, "adamw_arena", &[])?;
        let grid = gpu.grid(self.n.div_ceil(WORKGROUP), "train adamw workgroups")?;
        let buffers = [self.grad.buffer(), self.norm.buffer(), self.param.buffer(), self.m.buffer(), self.v.buffer(), self.mask.buffer()];
        adamw.record(gpu, encoder, &params, &buffers, grid);
        self.copy(encoder, weights, false)
    }

    /// Records Grokfast's filter over the gradient arena (nothing when Grokfast is off).
    fn record_grokfast(&self, gpu: &Gpu, encoder: &mut wgpu::CommandEncoder) -> Result<()> {
        let (Some(filter), Some(ema)) = (self.optimizer.grokfast, &self.ema) else {
            return Ok(());
        };
        let f = crate::scalar::to_f32;
        let params = GrokfastParams {
            n: u32::try_from(self.n).map_err(|_| Error::Input(format!("train optimizer: {} parameters exceed a u32 index", self.n)))?,
            first: u32::from(!self.ema_ready.get()),
            alpha: f("grokfast alpha", filter.alpha)?,
            one_minus_alpha: f("grokfast 1 - alpha", 1.0 - filter.alpha)?,
            lambda: f("grokfast lambda", filter.lambda)?,
            ..GrokfastParams::default()
        };
        let kernel = gpu.kernel::<GrokfastParams>(GROKFAST, "grokfast_arena", &[])?;
        let grid = gpu.grid(self.n.div_ceil(WORKGROUP), "train grokfast workgroups")?;
        kernel.record(gpu, encoder, &params, &[self.grad.buffer(), ema.buffer()], grid);
        self.ema_ready.set(true);
        Ok(())
    }

    /// Records the global L2 norm of `src` (an arena) into `out[0]` (and the clip factor into `out[1]`).
    fn record_norm(&self, gpu: &Gpu, encoder: &mut wgpu::CommandEncoder, params: &Params, src: &GpuTensor, out: &GpuTensor) -> Result<()> {
        let sum = gpu.kernel::<Params>(SHADER, "sum_squares", &[])?;
        let grid = gpu.grid(u64::from(params.count), "train norm workgroups")?;
        sum.record(gpu, encoder, params, &[src.buffer(), self.partials.buffer()], grid);
        let finish = gpu.kernel::<Params>(SHADER, "finish_norm", &[])?;
        finish.record(gpu, encoder, params, &[self.partials.buffer(), out.buffer()], [1, 1, 1]);
        Ok(())
    }

    /// The parameters' global L2 norm, reduced on the GPU (reads back one number).
    pub fn weight_norm(&self, gpu: &Gpu) -> Result<f64> {
        let params = Params { clip: 0, ..self.params(1, 0.0)? };
        let mut encoder = gpu.encoder();
        self.record_norm(gpu, &mut encoder, &params, &self.param, &self.weight_norm)?;
        gpu.submit_and_wait(encoder)?;
        read_first(gpu, &self.weight_norm)
    }

    /// Runs one update (see [`GpuOptimizer::record_step`]) and waits for it; reads nothing back.
    pub fn step(&self, gpu: &Gpu, grads: &Weights<GpuTensor>, weights: &Weights<GpuTensor>, t: u64, lr: f64) -> Result<()> {
        let mut encoder = gpu.encoder();
        self.record_step(gpu, &mut encoder, grads, weights, t, lr)?;
        gpu.submit_and_wait(encoder)
    }

    /// The float32 uniforms of update `t`, folded in float64 first.
    fn params(&self, t: u64, lr: f64) -> Result<Params> {
        let hp = crate::reference::backward::adamw::AdamW { lr, ..self.optimizer.adamw };
        let k = hp.step_scalars(t as i64)?;
        let f = crate::scalar::to_f32;
        let n = u32::try_from(self.n).map_err(|_| Error::Input(format!("train optimizer: {} parameters exceed a u32 index", self.n)))?;
        Ok(Params {
            n,
            chunk: CHUNK as u32,
            count: self.n.div_ceil(CHUNK).max(1) as u32,
            clip: u32::from(self.optimizer.max_grad_norm.is_some()),
            max_norm: f("max_grad_norm", self.optimizer.max_grad_norm.unwrap_or(0.0))?,
            decay: f("adamw 1 - lr * weight_decay", k.decay)?,
            one_minus_beta1: f("adamw 1 - beta1", 1.0 - hp.beta1)?,
            beta2: f("adamw beta2", hp.beta2)?,
            one_minus_beta2: f("adamw 1 - beta2", 1.0 - hp.beta2)?,
            step_size: f("adamw lr / (1 - beta1^t)", k.step_size)?,
            bias2_sqrt: f("adamw sqrt(1 - beta2^t)", k.bias2_sqrt)?,
            eps: f("adamw eps", hp.eps)?,
        })
    }

    /// The last update's global gradient norm, before clipping (reads back one number).
    pub fn grad_norm(&self, gpu: &Gpu) -> Result<f64> {
        read_first(gpu, &self.norm)
    }

    /// The parameters and moments, read back (for a checkpoint).
    pub fn state(&self, gpu: &Gpu) -> Result<State> {
        let mut arenas = vec![&self.param, &self.m, &self.v];
        if let (Some(ema), true) = (&self.ema, self.ema_ready.get()) {
            arenas.push(ema);
        }
        let all = GpuTensor::read_all(gpu, &arenas)?;
        let split = |flat: &ArrayD<f32>| -> Result<Weights<ArrayD<f64>>> {
            let data = flat.as_slice().ok_or_else(|| Error::Gpu("arena read back out of order".into()))?;
            Weights::build(&self.config, |name, shape| {
                let seg = self.segments.iter().find(|s| s.name == name).ok_or_else(|| Error::Input(format!("no segment {name}")))?;
                let values = data[seg.offset as usize..(seg.offset + seg.len) as usize].iter().map(|&x| x as f64).collect();
                ArrayD::from_shape_vec(shape, values).map_err(|e| Error::Shape(e.to_string()))
            })
        };
        let ema = all.get(3).map(split).transpose()?;
        Ok(State { params: split(&all[0])?, m: split(&all[1])?, v: split(&all[2])?, ema })
    }

    /// Replaces the parameters (in the arena and in `weights`) and the moments (a resumed run).
    pub fn set_state(&self, gpu: &Gpu, state: &State, weights: &Weights<GpuTensor>) -> Result<()> {
        let mut pairs = vec![(&self.param, &state.params), (&self.m, &state.m), (&self.v, &state.v)];
        if let (Some(ema), Some(h)) = (&self.ema, &state.ema) {
            pairs.push((ema, h));
        }
        self.ema_ready.set(self.ema.is_some() && state.ema.is_some());
        for (target, w) in pairs {
            w.check_shapes(&self.config, |a| a.shape())?;
            let flat: Vec<f32> = w.named().iter().flat_map(|(_, a)| a.iter().map(|&x| x as f32).collect::<Vec<_>>()).collect();
            gpu.queue().write_buffer(target.buffer(), 0, bytemuck::cast_slice(&flat));
        }
        let mut encoder = gpu.encoder();
        self.copy(&mut encoder, weights, false)?;
        gpu.submit_and_wait(encoder)
    }
}

/// The first float32 of `t`, read back.
fn read_first(gpu: &Gpu, t: &GpuTensor) -> Result<f64> {
    let bytes = gpu.read_bytes(t.buffer(), 4)?;
    let norm: &[f32] = bytemuck::try_cast_slice(&bytes).map_err(|e| Error::Gpu(format!("reading a norm: {e}")))?;
    Ok(norm.first().copied().unwrap_or(f32::NAN) as f64)
}
