//! The whole model's backward pass on the GPU: the loss (or a caller's d metric / d logits) and
//! the gradient of every parameter, and `<hook>_grad` for the hooks a names filter picks, in one
//! encoder and one submission.
//!
//! [`Model::record_backward`] records the forward pass through the forward's own code
//! (`forward.rs`), with every activation the backward needs cached in the model's scratch (and
//! the caller's interventions applied, as in [`Model::run`]), then the backward walk in reverse
//! hook order, the GPU twin of [`crate::reference::backward::model`]: cross-entropy
//! ([`crate::ops::backward::loss`]), the unembedding, the final layer norm, each block (MLP, then
//! attention, in `backward_block.rs`), the embeddings. Attention takes the fused path
//! (`backward_attention.rs`: row statistics kept by the forward, no \[B, H, S, S\] tensor) in
//! every block whose pattern and scores no gradient or intervention asks about, else the pattern path. At each hook the
//! gradient is copied out when asked for and carried back through that hook's interventions
//! (`Zero` and `Replace` cut the selected elements, `Scale` multiplies them), exactly as
//! [`crate::reference::backward`]'s tape does. Matrix products go through
//! [`crate::ops::matmul::record_gemm`]; everything else is a kernel of [`crate::ops::backward`].
//!
//! Every tensor a step uses (activations, gradients, parameter gradients, hook gradients) is
//! kept in the model by role and shape, so a second call with the same shapes creates no buffer
//! and no bind group: the returned [`Gradients`] are overwritten by the next call.

use std::collections::HashMap;

use ndarray::{ArrayD, ArrayViewD};

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::ops::backward::{embedding::TokenIndex, loss, permute};
use crate::tensor::GpuTensor;
use crate::transformer::hooks::{check_interventions, check_tokens, find, hooks, Cache, Names};
use crate::transformer::intervention::{Action, Intervention};
use crate::transformer::kernels::{self, Change, ALL};
use crate::transformer::{Model, Options, Weights};

#[path = "backward_block.rs"]
mod block;

/// Where the backward pass starts.
#[derive(Clone, Debug)]
pub enum Seed<'a> {
    /// SPEC's cross-entropy of `targets` \[B, S\] (negative: no loss at that position).
    CrossEntropy(ArrayViewD<'a, i64>),
    /// A caller's d metric / d logits \[B, S, d_vocab_out\] (attribution patching from any
    /// metric); no loss is computed.
    Logits(&'a GpuTensor),
}

/// What a backward pass keeps and changes.
#[derive(Clone, Debug, Default)]
pub struct GradOptions<'a> {
    /// The hooks whose gradient `<hook>_grad` is returned (nothing extra is kept for none).
    pub names: Names,
    /// Changes applied in the forward, as in [`Model::run`]; the gradient flows through them.
    pub interventions: &'a [Intervention],
}

/// The outputs of a backward pass, on the GPU (overwritten by the model's next backward).
#[derive(Clone, Debug)]
pub struct Gradients {
    /// The mean cross-entropy (one element), for [`Seed::CrossEntropy`].
    pub loss: Option<GpuTensor>,
    /// The forward's logits \[B, S, d_vocab_out\].
    pub logits: GpuTensor,
    /// d loss / d parameter, every parameter.
    pub params: Weights<GpuTensor>,
    /// `<hook>_grad` for the hooks [`GradOptions::names`] picked, in forward order.
    pub cache: Cache<GpuTensor>,
}

/// [`Gradients`] read back.
#[derive(Clone, Debug)]
pub struct GradArrays {
    /// The loss, for [`Seed::CrossEntropy`].
    pub loss: Option<f32>,
    /// The logits.
    pub logits: ArrayD<f32>,
    /// d loss / d parameter.
    pub params: Weights<ArrayD<f32>>,
    /// `<hook>_grad`, in forward order.
    pub cache: Cache<ArrayD<f32>>,
}

impl Gradients {
    /// Reads every output back (one submission of copies).
    pub fn read(&self, gpu: &Gpu, config: &crate::transformer::Config) -> Result<GradArrays> {
        let named = self.params.named();
        let mut tensors: Vec<&GpuTensor> = vec![&self.logits];
        tensors.extend(self.loss.iter());
        tensors.extend(named.iter().map(|(_, t)| *t));
        tensors.extend(self.cache.iter().map(|(_, t)| t));
        let mut arrays = GpuTensor::read_all(gpu, &tensors)?.into_iter();
        let mut next = || arrays.next().ok_or_else(|| Error::Gpu("a gradient was not read back".into()));
        let logits = next()?;
        let loss = match self.loss {
            Some(_) => Some(next()?.iter().next().copied().unwrap_or(f32::NAN)),
            None => None,
        };
        let mut by_name = HashMap::new();
        for (name, _) in &named {
            by_name.insert(name.clone(), next()?);
        }
        let params = Weights::build(config, |name, _| by_name.remove(name).ok_or_else(|| Error::Gpu(format!("no gradient for {name}"))))?;
        let mut cache = Cache::default();
        for (name, _) in self.cache.iter() {
            cache.push(name, next()?);
        }
        Ok(GradArrays { loss, logits, params, cache })
    }
}

/// The tensors and buffers the backward keeps between calls.
#[derive(Debug, Default)]
pub(crate) struct State {
    tensors: HashMap<String, GpuTensor>,
    buffers: HashMap<&'static str, wgpu::Buffer>,
    params: Option<Weights<GpuTensor>>,
}

impl State {
    /// The tensor of `role`, made on first use and when its shape changes.
    fn get(&mut self, gpu: &Gpu, role: &str, shape: &[usize]) -> Result<GpuTensor> {
        if let Some(t) = self.tensors.get(role).filter(|t| t.shape() == shape) {
            return Ok(t.clone());
        }
        let t = GpuTensor::empty(gpu, shape, role)?;
        self.tensors.insert(role.to_string(), t.clone());
        Ok(t)
    }

    /// A storage buffer called `role` holding `data` (rewritten through the queue when its size
    /// matches: one backward per submission).
    fn upload(&mut self, gpu: &Gpu, role: &'static str, data: &[u8]) -> wgpu::Buffer {
        let size = (data.len() as u64).max(4);
        if let Some(b) = self.buffers.get(role).filter(|b| b.size() == size) {
            if !data.is_empty() {
                gpu.queue().write_buffer(b, 0, data);
            }
            return b.clone();
        }
        let bytes: &[u8] = if data.is_empty() { &[0; 4] } else { data };
        let b = gpu.buffer_with(role, bytes, wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST);
        self.buffers.insert(role, b.clone());
        b
    }
}

impl Model {
    /// Records the repacking of every block's `W_Q`, `W_K`, `W_V` \[H, d_model, d_head\] into the
    /// packed \[d_model, H·d_head\] copies the forward projects with. A trainer that updates the
    /// weights in place (on the GPU) records this after each update, so that the next forward and
    /// backward see the new values.
    pub fn record_repack(&self, gpu: &Gpu, encoder: &mut wgpu::CommandEncoder) -> Result<()> {
        for (block, packed) in self.weights.blocks.iter().zip(&self.packed) {
            let a = &block.attn;
            for (w, out) in [&a.w_q, &a.w_k, &a.w_v].into_iter().zip(packed) {
                let &[h, dm, dh] = w.shape() else {
                    return Err(Error::Shape(format!("{} must be [H, d_model, d_head]", crate::error::fmt_shape(w.shape()))));
                };
                permute::swap_axes(gpu, encoder, w, [1, h, dm, dh], 1.0, out, false)?;
            }
        }
        Ok(())
    }

    /// The bytes of GPU memory a backward step of the last shapes holds beyond the weights: the
    /// forward's activations and scratch, every gradient, and the parameter gradients (the
    /// matmul's and column sums' small shared scratch left out).
    pub fn backward_bytes(&self) -> Result<u64> {
        let forward = self.scratch.lock().map_err(|_| Error::Gpu("model scratch poisoned".into()))?.bytes();
        let state = self.backward.lock().map_err(|_| Error::Gpu("model backward state poisoned".into()))?;
        let tensors: u64 = state.tensors.values().map(|t| t.len() as u64 * 4).sum();
        let params: u64 = state.params.as_ref().map_or(0, |p| p.named().iter().map(|(_, t)| t.len() as u64 * 4).sum());
        let buffers: u64 = state.buffers.values().map(wgpu::Buffer::size).sum();
        Ok(forward + tensors + params + buffers)
    }

    /// Runs a forward and backward pass (one submission) and leaves the gradients on the GPU;
    /// [`Gradients::read`] brings them back.
    pub fn backward(&self, gpu: &Gpu, tokens: ArrayViewD<'_, i64>, seed: &Seed<'_>, options: &GradOptions<'_>) -> Result<Gradients> {
        gpu.scoped(|| {
            let mut encoder = gpu.encoder();
            let grads = self.record_backward(gpu, &mut encoder, tokens, seed, options)?;
            gpu.submit_and_wait(encoder)?;
            Ok(grads)
        })
    }

    /// Records a forward and backward pass into `encoder` (nothing is submitted). Every input is
    /// checked first (tokens, targets, names, interventions, the config's variants), before any
    /// GPU work. The outputs live in the model and are rewritten by the next call, whose uploads
    /// (tokens, targets) go through the queue: record one backward per submission.
    pub fn record_backward(
        &self,
        gpu: &Gpu,
        encoder: &mut wgpu::CommandEncoder,
        tokens: ArrayViewD<'_, i64>,
        seed: &Seed<'_>,
        options: &GradOptions<'_>,
    ) -> Result<Gradients> {
        let config = &self.config;
        config.refuse_gpu_backward_variants()?;
        let (batch, seq) = check_tokens(config, tokens.view())?;
        options.names.check(config)?;
        // attn.hook_result on request: the forward computes it head by head, as with use_attn_result.
        let attn_result = crate::transformer::hooks::run_config(config, &options.names, options.interventions).optional_hooks.attn_result;
        let all_hooks = hooks(&crate::transformer::hooks::run_config(config, &options.names, options.interventions), batch, seq);
        check_interventions(&all_hooks, options.interventions)?;
        let logits_shape = [batch, seq, config.d_vocab_out];
        let targets = match seed {
            Seed::CrossEntropy(t) => Some(loss::prepare_targets(&logits_shape, t.view())?),
            Seed::Logits(d) if d.shape() != logits_shape => {
                return Err(Error::Shape(format!(
                    "the seed d logits is {} but the logits are {}",
                    crate::error::fmt_shape(d.shape()),
                    crate::error::fmt_shape(&logits_shape)
                )))
            }
            Seed::Logits(_) => None,
        };
        let hooked = block::forms::hooked_tokens(config, &all_hooks, tokens.view(), options.interventions)?;
        let ids: Vec<u32> = hooked.iter().map(|&t| t as u32).collect();
        let index = TokenIndex::new(&ids, config.d_vocab)?;

        let mut state = self.backward.lock().map_err(|_| Error::Gpu("model backward state poisoned".into()))?;
        let forward_names = Names::only(needed(self, options));
        let forward_options = Options { names: forward_names, interventions: options.interventions };
        let row_stats = block::attention::row_stats(&mut state, gpu, config, (&options.names, options.interventions), batch, seq)?;
        let outputs = {
            let mut scratch = self.scratch.lock().map_err(|_| Error::Gpu("model scratch poisoned".into()))?;
            scratch.row_stats = row_stats;
            let outputs = super::forward::record(gpu, encoder, self, &mut scratch, tokens.view(), all_hooks.clone(), &forward_options, true);
            scratch.row_stats.clear();
            outputs?
        };
        let params = match &state.params {
            Some(p) => p.clone(),
            None => {
                let p = Weights::build(config, |name, shape| GpuTensor::empty(gpu, shape, &format!("grad {name}")))?;
                state.params = Some(p.clone());
                p
            }
        };
        let dlogits = state.get(gpu, "dlogits", &logits_shape)?;
        let loss_tensor = match (seed, targets) {
            (Seed::CrossEntropy(_), Some((ids, counted))) => {
                let buffer = state.upload(gpu, "targets", bytemuck::cast_slice(&ids));
                let rows = state.get(gpu, "row losses", &[batch * seq])?;
                let loss_t = state.get(gpu, "loss", &[1])?;
                loss::record(gpu, encoder, &outputs.logits, &buffer, counted, &dlogits, &rows, &loss_t)?;
                Some(loss_t)
            }
            (Seed::Logits(d), _) => {
                kernels::copy(encoder, d, &dlogits)?;
                None
            }
            _ => None,
        };
        let offsets = state.upload(gpu, "token offsets", bytemuck::cast_slice(&index.offsets));
        let positions = state.upload(gpu, "token positions", bytemuck::cast_slice(&index.positions));
        let d_pos = match config.shortformer {
            true => {
                let t = state.get(gpu, "d pos", &[batch, seq, config.d_model])?;
                encoder.clear_buffer(t.buffer(), 0, None);
                Some(t)
            }
            false => None,
        };
        let mut walk = block::Walk {
            gpu,
            model: self,
            state: &mut state,
            acts: &outputs.cache,
            tape: Tape { names: &options.names, hooks: &all_hooks, interventions: options.interventions, recorded: Vec::new() },
            params: &params,
            batch,
            seq,
            attn_result,
            d_pos,
        };
        walk.run(encoder, &dlogits, &offsets, &positions)?;
        let recorded = std::mem::take(&mut walk.tape.recorded);
        let mut cache = Cache::default();
        for (name, t) in recorded.into_iter().rev() {
            cache.push(&format!("{name}_grad"), t);
        }
        Ok(Gradients { loss: loss_tensor, logits: outputs.logits, params, cache })
    }
}

/// The forward hooks whose activations the backward reads.
fn needed(model: &Model, options: &GradOptions<'_>) -> Vec<String> {
    let interventions = options.interventions;
    let config = &model.config;
    let mut names = vec!["unembed.hook_in".to_string()];
    let ln = |prefix: &str, names: &mut Vec<String>| {
        if config.has_ln() {
            names.push(format!("{prefix}.hook_scale"));
            names.push(format!("{prefix}.hook_normalized"));
        }
    };
    ln("ln_final", &mut names);
    if config.shortformer {
        names.push("hook_pos_embed".to_string());
    }
    match config.n_layers {
        0 => names.extend(["hook_embed".to_string(), "hook_pos_embed".to_string()]),
        n => names.push(format!("blocks.{}.hook_resid_post", n - 1)),
    }
    for l in 0..config.n_layers {
        let p = format!("blocks.{l}");
        names.push(format!("{p}.hook_resid_pre"));
        ln(&format!("{p}.ln1"), &mut names);
        if config.optional_hooks.split_qkv_input {
            names.extend(["hook_q_input", "hook_k_input", "hook_v_input"].map(|h| format!("{p}.{h}")));
        } else if config.optional_hooks.attn_in {
            names.push(format!("{p}.hook_attn_in"));
        }
        for h in ["hook_q", "hook_k", "hook_v", "hook_z"] {
            names.push(format!("{p}.attn.{h}"));
        }
        if block::attention::pattern_path(&options.names, interventions, l) {
            names.push(format!("{p}.attn.hook_pattern"));
        }
        let pattern = format!("{p}.attn.hook_pattern");
        if interventions.iter().any(|i| i.hook == pattern) {
            names.push(format!("{p}.attn.hook_attn_scores"));
        }
        if config.mlp().is_some() {
            names.push(block::forms::mlp_input(config, &p));
            ln(&format!("{p}.ln2"), &mut names);
            names.push(format!("{p}.mlp.hook_pre"));
            names.push(format!("{p}.mlp.hook_post"));
            if config.mlp_norm().is_some() {
                names.push(format!("{p}.mlp.hook_mid"));
                names.extend(["hook_scale", "hook_normalized"].map(|h| format!("{p}.mlp.ln.{h}")));
            }
        }
    }
    names
}

/// The backward walk's view of the hooks (the GPU twin of the reference's tape).
pub(super) struct Tape<'a> {
    names: &'a Names,
    hooks: &'a [crate::transformer::hooks::Hook],
    interventions: &'a [Intervention],
    /// `(hook, gradient)` in backward order.
    recorded: Vec<(String, GpuTensor)>,
}

impl Tape<'_> {
    /// Whether a gradient must be recorded or changed at hook `name`.
    pub(super) fn touches(&self, name: &str) -> bool {
        self.names.contains(name) || self.intervened(name)
    }

    /// Whether some intervention acts on hook `name`.
    pub(super) fn intervened(&self, name: &str) -> bool {
        self.interventions.iter().any(|i| i.hook == name)
    }

    /// Whether `<name>_grad` is asked for.
    pub(super) fn wanted(&self, name: &str) -> bool {
        self.names.contains(name)
    }

    /// Records `recorded` (or `g`) as `<name>_grad` when asked, into a tensor of the state.
    pub(super) fn record(&mut self, gpu: &Gpu, state: &mut State, encoder: &mut wgpu::CommandEncoder, name: &str, g: &GpuTensor) -> Result<()> {
        if self.names.contains(name) {
            let hook = find(self.hooks, name)?;
            let out = state.get(gpu, &format!("hook grad {name}"), &hook.shape)?;
            kernels::copy(encoder, &g.reshaped(&hook.shape)?, &out)?;
            self.recorded.push((name.to_string(), out));
        }
        Ok(())
    }

    /// Carries `g` back through hook `name`'s interventions, in place, in reverse order.
    pub(super) fn through(&self, gpu: &Gpu, encoder: &mut wgpu::CommandEncoder, name: &str, g: &GpuTensor) -> Result<()> {
        let hook = find(self.hooks, name)?;
        for intervention in self.interventions.iter().rev().filter(|i| i.hook == name) {
            let sel: Vec<u32> = intervention.selection(hook)?.iter().map(|s| s.map_or(ALL, |i| i as u32)).collect();
            let change = match &intervention.action {
                Action::Zero | Action::Replace(_) => Change::Zero,
                Action::Scale(f) => Change::Scale(*f),
            };
            kernels::intervene(gpu, encoder, &g.reshaped(&hook.shape)?, &sel, change)?;
        }
        Ok(())
    }
}

/// `out += x` (same number of elements), through the axis-swap kernel with nothing swapped.
pub(super) fn add_into(gpu: &Gpu, encoder: &mut wgpu::CommandEncoder, x: &GpuTensor, out: &GpuTensor) -> Result<()> {
    permute::swap_axes(gpu, encoder, x, [1, 1, 1, x.len()], 1.0, out, true)
}
