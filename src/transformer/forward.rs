//! The GPU forward pass: the order of kernels, where each hook's activation lives, and how hooks
//! act (interventions in place, then the cache).
//!
//! An activation that is cached gets a fresh tensor, which the cache keeps; any other activation
//! is written into a [`Scratch`] tensor of its role (residual streams ping-pong between two,
//! every other role has one), reused by every block and every forward pass of the same batch
//! shape. A hook that TransformerLens applies to a tensor passed on unchanged (`resid_post` →
//! next `resid_pre`, `ln_final` → `unembed.hook_in`) copies it only when that hook is cached or
//! changed, so neither hook's value can alter the other's. With nothing cached and no
//! interventions, the embedding is one kernel, each LayerNorm one kernel and attention the fused
//! path; asking for a hook adds only the work needed to expose it. Attention and the MLP are in
//! `block.rs`.

use std::collections::HashMap;

use ndarray::ArrayViewD;

use crate::error::Result;
use crate::gpu::Gpu;
use crate::tensor::GpuTensor;
use crate::transformer::hooks::{Cache, Hook};
use crate::transformer::intervention::{Action, Patch};
use crate::transformer::kernels::{self, Change, EmbedParts, ALL};
use crate::transformer::weights::LayerNormWeights;
use crate::transformer::{Model, Options, Outputs};

#[path = "block.rs"]
mod block;
#[path = "forward_forms.rs"]
mod forms;

/// Reusable intermediate tensors, by role (and, for [`crate::transformer::Model::run`], which
/// reads its outputs back before it returns, the outputs by hook name), and the token buffer.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    tensors: HashMap<String, GpuTensor>,
    tokens: Option<wgpu::Buffer>,
    /// Per block, where the fused attention keeps its row statistics (set by the backward pass
    /// around its forward, so that the fused attention backward can recompute the pattern).
    pub(super) row_stats: Vec<Option<GpuTensor>>,
}

impl Scratch {
    /// The tensor of `role`, allocated on first use or when its shape changes.
    fn get(&mut self, gpu: &Gpu, role: &str, shape: &[usize]) -> Result<GpuTensor> {
        if let Some(t) = self.tensors.get(role).filter(|t| t.shape() == shape) {
            return Ok(t.clone());
        }
        let t = GpuTensor::empty(gpu, shape, role)?;
        self.tensors.insert(role.to_string(), t.clone());
        Ok(t)
    }

    /// The bytes its tensors hold (what a pass of these shapes keeps between calls).
    pub(super) fn bytes(&self) -> u64 {
        self.tensors.values().map(|t| t.len() as u64 * 4).sum()
    }

    /// A storage buffer holding `ids`: the scratch one, rewritten, when the outputs are reused
    /// (one forward pass per submission), else a new one (a caller's encoder may hold several
    /// passes, and a queue write would reach all of them before any runs).
    fn tokens(&mut self, gpu: &Gpu, ids: &[u32], reuse: bool) -> wgpu::Buffer {
        let bytes: &[u8] = bytemuck::cast_slice(ids);
        if !reuse {
            return gpu.buffer_with("tokens", bytes, wgpu::BufferUsages::STORAGE);
        }
        let size = (bytes.len() as u64).max(4);
        match &self.tokens {
            Some(b) if b.size() == size => {
                gpu.queue().write_buffer(b, 0, bytes);
                b.clone()
            }
            _ => {
                let b = gpu.buffer_with("tokens", bytes, wgpu::BufferUsages::STORAGE);
                self.tokens = Some(b.clone());
                b
            }
        }
    }
}

/// An intervention ready to record: its hook, its selection per axis ([`ALL`] for a whole axis)
/// and its edit, with any host patch already uploaded.
struct Prepared {
    hook: String,
    sel: Vec<u32>,
    edit: Edit,
}

/// What a prepared intervention does (a [`Change`] that owns its patch).
enum Edit {
    Zero,
    Scale(f32),
    Take(GpuTensor),
}

/// One forward pass being recorded.
pub(super) struct Pass<'a> {
    gpu: &'a Gpu,
    model: &'a Model,
    scratch: &'a mut Scratch,
    options: &'a Options<'a>,
    interventions: Vec<Prepared>,
    cache: Cache<GpuTensor>,
    batch: usize,
    seq: usize,
    /// Whether outputs (logits, cached activations) live in the scratch, by hook name, instead
    /// of fresh tensors: for a caller that reads them back before the next pass.
    reuse: bool,
    /// `hook_pos_embed`'s tensor in a shortformer model, added to every block's q and k inputs.
    shortformer_pos: Option<GpuTensor>,
    /// Whether the output projection goes head by head through `attn.hook_result`
    /// (`use_attn_result`, or the hook asked for by name or by an intervention).
    attn_result: bool,
}

/// Records the whole forward pass into `encoder`; with `reuse`, the outputs are scratch tensors
/// that the next pass overwrites (see [`Pass::reuse`]).
#[allow(clippy::too_many_arguments)]
pub(super) fn record(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    model: &Model,
    scratch: &mut Scratch,
    tokens: ArrayViewD<'_, i64>,
    hooks: Vec<Hook>,
    options: &Options<'_>,
    reuse: bool,
) -> Result<Outputs<GpuTensor>> {
    let (batch, seq) = (tokens.shape()[0], tokens.shape()[1]);
    let mut interventions = Vec::new();
    for intervention in options.interventions {
        let hook = crate::transformer::hooks::find(&hooks, &intervention.hook)?;
        let sel = intervention.selection(hook)?.iter().map(|s| s.map_or(ALL, |i| i as u32)).collect();
        let edit = match &intervention.action {
            Action::Zero => Edit::Zero,
            Action::Scale(f) => Edit::Scale(*f),
            Action::Replace(Patch::Host(a)) => Edit::Take(GpuTensor::upload(gpu, a.view(), "patch")?),
            Action::Replace(Patch::Gpu(t)) => Edit::Take(crate::transformer::intervention::gpu_patch(t.as_ref(), &intervention.hook)?.clone()),
        };
        interventions.push(Prepared { hook: intervention.hook.clone(), sel, edit });
    }
    let mut pass = Pass { gpu, model, scratch, options, interventions, cache: Cache::default(), batch, seq, reuse, shortformer_pos: None, attn_result: false };
    pass.attn_result = hooks.iter().any(|h| h.name.ends_with(".attn.hook_result"));
    let config = &model.config;
    let weights = &model.weights;
    let hooked_tokens;
    let tokens = if config.optional_hooks.tokens {
        hooked_tokens = pass.hook_tokens(&hooks, tokens)?;
        hooked_tokens.view()
    } else {
        tokens
    };
    let ids: Vec<u32> = tokens.iter().map(|&t| t as u32).collect(); // checked: 0 <= t < d_vocab
    let token_buffer = pass.scratch.tokens(gpu, &ids, reuse);
    let resid_shape = pass.resid_shape();

    // The embedding: one fused kernel unless hook_embed or hook_pos_embed is wanted.
    let first = if config.n_layers > 0 { Some("blocks.0.hook_resid_pre") } else { None };
    let mut resid = match first {
        Some(name) => pass.target(name, "resid0", &resid_shape)?,
        None => pass.scratch("resid0", &resid_shape)?,
    };
    let embed_parts = [("hook_embed", EmbedParts::Token, "embed"), ("hook_pos_embed", EmbedParts::Position, "pos_embed")];
    if config.shortformer {
        // The residual stream is the token embedding alone; W_pos goes to q and k.
        let embed = pass.target("hook_embed", "embed", &resid_shape)?;
        kernels::embed(gpu, encoder, &token_buffer, &weights.w_e, &weights.w_pos, EmbedParts::Token, &embed)?;
        pass.hook(encoder, "hook_embed", &embed)?;
        let pos = pass.target("hook_pos_embed", "pos_embed", &resid_shape)?;
        kernels::embed(gpu, encoder, &token_buffer, &weights.w_e, &weights.w_pos, EmbedParts::Position, &pos)?;
        pass.hook(encoder, "hook_pos_embed", &pos)?;
        kernels::copy(encoder, &embed, &resid)?;
        pass.shortformer_pos = Some(pos);
    } else if embed_parts.iter().any(|(name, ..)| pass.wanted(name)) {
        let mut parts = Vec::new();
        for (name, which, role) in embed_parts {
            let t = pass.target(name, role, &resid_shape)?;
            kernels::embed(gpu, encoder, &token_buffer, &weights.w_e, &weights.w_pos, which, &t)?;
            pass.hook(encoder, name, &t)?;
            parts.push(t);
        }
        kernels::add(gpu, encoder, &parts[0], &parts[1], &resid)?;
    } else {
        kernels::embed(gpu, encoder, &token_buffer, &weights.w_e, &weights.w_pos, EmbedParts::Both, &resid)?;
    }

    for l in 0..config.n_layers {
        let name = format!("blocks.{l}.hook_resid_pre");
        if l == 0 {
            pass.hook(encoder, &name, &resid)?;
        } else {
            resid = pass.identity(encoder, &name, resid)?;
        }
        resid = block::record_block(&mut pass, encoder, l, resid)?;
    }
    let ln_weights = weights.ln_final.as_ref();
    let x = pass.norm(encoder, config.final_norm(), "ln_final", &resid, ln_weights)?;
    let x = pass.identity(encoder, "unembed.hook_in", x)?;
    let logits = pass.output("logits", &[batch, seq, config.d_vocab_out])?;
    block::linear(&pass, encoder, &x, &weights.w_u, &weights.b_u, &logits)?;
    pass.hook(encoder, "unembed.hook_out", &logits)?;
    Ok(Outputs { logits, cache: pass.cache })
}

impl Pass<'_> {
    fn resid_shape(&self) -> Vec<usize> {
        vec![self.batch, self.seq, self.model.config.d_model]
    }

    /// Whether hook `name` is cached.
    fn cached(&self, name: &str) -> bool {
        self.options.names.contains(name)
    }

    /// Whether some intervention acts on hook `name`.
    fn intervened(&self, name: &str) -> bool {
        self.interventions.iter().any(|i| i.hook == name)
    }

    /// Whether hook `name`'s activation must be exposed (cached or changed).
    fn wanted(&self, name: &str) -> bool {
        self.cached(name) || self.intervened(name)
    }

    /// The scratch tensor of `role`.
    fn scratch(&mut self, role: &'static str, shape: &[usize]) -> Result<GpuTensor> {
        self.scratch.get(self.gpu, role, shape)
    }

    /// A tensor for the output `name` (returned to the caller): fresh, or the scratch tensor of
    /// that name when outputs are reused.
    fn output(&mut self, name: &str, shape: &[usize]) -> Result<GpuTensor> {
        if self.reuse {
            self.scratch.get(self.gpu, &format!("output {name}"), shape)
        } else {
            GpuTensor::empty(self.gpu, shape, name)
        }
    }

    /// Where hook `name`'s activation is written: a fresh tensor when it is cached, else the
    /// scratch tensor of `role`.
    fn target(&mut self, name: &str, role: &'static str, shape: &[usize]) -> Result<GpuTensor> {
        if self.cached(name) {
            self.output(name, shape)
        } else {
            self.scratch(role, shape)
        }
    }

    /// Passes `t`, just written, through hook `name`: its interventions in place, then the cache.
    fn hook(&mut self, encoder: &mut wgpu::CommandEncoder, name: &str, t: &GpuTensor) -> Result<()> {
        self.intervene(encoder, name, t)?;
        if self.cached(name) {
            self.cache.push(name, t.clone());
        }
        Ok(())
    }

    /// Records the interventions on hook `name`, in order, in place on `t`.
    fn intervene(&self, encoder: &mut wgpu::CommandEncoder, name: &str, t: &GpuTensor) -> Result<()> {
        for i in self.interventions.iter().filter(|i| i.hook == name) {
            let change = match &i.edit {
                Edit::Zero => Change::Zero,
                Edit::Scale(f) => Change::Scale(*f),
                Edit::Take(p) => Change::Take(p),
            };
            kernels::intervene(self.gpu, encoder, t, &i.sel, change)?;
        }
        Ok(())
    }

    /// A hook on a tensor passed on unchanged: a fresh copy through the hook when it is wanted
    /// (so an earlier hook's cached value stays as it was), else `t` itself.
    fn identity(&mut self, encoder: &mut wgpu::CommandEncoder, name: &str, t: GpuTensor) -> Result<GpuTensor> {
        if !self.wanted(name) {
            return Ok(t);
        }
        let copy = if self.cached(name) { self.output(name, t.shape())? } else { self.scratch.get(self.gpu, name, t.shape())? };
        kernels::copy(encoder, &t, &copy)?;
        self.hook(encoder, name, &copy)?;
        Ok(copy)
    }

    /// Hook `name` on a tensor that is about to be overwritten (the scores in the pattern
    /// buffer): interventions in place, and a copy into the cache.
    fn hook_transient(&mut self, encoder: &mut wgpu::CommandEncoder, name: &str, t: &GpuTensor) -> Result<()> {
        self.intervene(encoder, name, t)?;
        if self.cached(name) {
            let copy = self.output(name, t.shape())?;
            kernels::copy(encoder, t, &copy)?;
            self.cache.push(name, copy);
        }
        Ok(())
    }

    /// The blocks' norm `prefix` (`blocks.0.ln1`, ...) of `x`, or `x` itself for a model without
    /// normalisation (see [`Pass::norm`]).
    fn layer_norm(
        &mut self,
        encoder: &mut wgpu::CommandEncoder,
        prefix: &str,
        x: &GpuTensor,
        weights: Option<&LayerNormWeights<GpuTensor>>,
    ) -> Result<GpuTensor> {
        self.norm(encoder, self.model.config.block_norm(), prefix, x, weights)
    }

    /// The residual scratch tensor that is not `live` (the two ping-pong).
    fn other_resid(&mut self, live: &GpuTensor) -> Result<&'static str> {
        let shape = self.resid_shape();
        let first = self.scratch("resid0", &shape)?;
        Ok(if first.buffer() == live.buffer() { "resid1" } else { "resid0" })
    }
}
