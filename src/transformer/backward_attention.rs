//! Attention's backward on the fused path (FlashAttention-2 style, no \[B, H, S, S\] tensor), for
//! the blocks whose pattern nothing asks about: the backward's forward keeps the fused attention
//! with each query's row statistics (running max and sum), and the backward recomputes the
//! pattern from them ([`crate::ops::attention::backward_fused::record_bshd_into`]) on
//! TransformerLens's \[B, S, H, d_head\] tensors, with no axis swap.
//!
//! A block takes the pattern path (`backward_block.rs`) instead when `hook_pattern_grad` or
//! `hook_attn_scores_grad` is asked for, or an intervention acts on `hook_pattern` or
//! `hook_attn_scores` ([`pattern_path`]); the forward then materialises the pattern as before.
//!
//! Interventions on `hook_q`, `hook_k`, `hook_v`: the forward's cached q, k, v are the values
//! after them, which the attention read, so the backward reads the same. On `hook_z`: the cached
//! z is after the intervention (what `W_O` read, so `dW_O` uses it), but the fused backward's
//! `delta = dO · O` needs the attention's own output, so z is recomputed from q, k and v (one
//! fused forward of that block) only then.

use super::Walk;
use crate::error::Result;
use crate::ops::attention::backward_fused::{record_bshd_forward, record_bshd_into, Grads, Saved};
use crate::ops::attention::row_stats_shape;
use crate::reference::attention::AttentionDims;
use crate::tensor::GpuTensor;
use crate::transformer::backward::State;
use crate::transformer::intervention::Intervention;
use crate::transformer::{Config, Names};

/// Whether block `l`'s backward takes the pattern path: its `hook_pattern` or `hook_attn_scores`
/// gradient is asked for in `names`, or an intervention acts on either hook.
pub(crate) fn pattern_path(names: &Names, interventions: &[Intervention], l: usize) -> bool {
    ["hook_pattern", "hook_attn_scores"].iter().any(|h| {
        let name = format!("blocks.{l}.attn.{h}");
        names.contains(&name) || interventions.iter().any(|i| i.hook == name)
    })
}

/// The row statistics tensor of block `l` (kept in the backward's state by role, so the forward
/// writes and the backward reads the same one).
fn stats_tensor(state: &mut State, gpu: &crate::gpu::Gpu, config: &Config, l: usize, batch: usize, seq: usize) -> Result<GpuTensor> {
    state.get(gpu, &format!("attention row stats {l}"), &row_stats_shape(&dims(config, batch, seq)))
}

/// Per block, the row statistics the forward must keep: `Some` for the fused blocks.
pub(crate) fn row_stats(
    state: &mut State,
    gpu: &crate::gpu::Gpu,
    config: &Config,
    (names, interventions): (&Names, &[Intervention]),
    batch: usize,
    seq: usize,
) -> Result<Vec<Option<GpuTensor>>> {
    (0..config.n_layers)
        .map(|l| match pattern_path(names, interventions, l) {
            true => Ok(None),
            false => stats_tensor(state, gpu, config, l, batch, seq).map(Some),
        })
        .collect()
}

fn dims(config: &Config, batch: usize, seq: usize) -> AttentionDims {
    AttentionDims { batch, heads: config.n_heads, sq: seq, sk: seq, d: config.d_head, dv: config.d_head }
}

type Enc = wgpu::CommandEncoder;

impl Walk<'_> {
    /// Whether block `l`'s attention backward takes the fused path.
    pub(super) fn fused(&self, l: usize) -> bool {
        !pattern_path(self.tape.names, self.tape.interventions, l)
    }

    /// [`Walk::attention`] on the fused path: the same outputs (every attention weight's
    /// gradient, the hooks from `hook_z` back to `hook_q`, the inputs' gradients into `outs`)
    /// without the pattern.
    pub(super) fn attention_fused(&mut self, encoder: &mut Enc, l: usize, xs: [&GpuTensor; 3], g_attn: &GpuTensor, outs: &[super::heads::InputGrad<'_>]) -> Result<()> {
        let (gpu, model) = (self.gpu, self.model);
        let config = &model.config;
        let p = format!("blocks.{l}.attn");
        let (b, s, h, dh) = (self.batch, self.seq, config.n_heads, config.d_head);
        let bshd = [b, s, h, dh];
        let z = self.act(&format!("{p}.hook_z"))?;
        let dz = self.scratch("dz", &bshd)?;
        self.output_backward(encoder, l, &z, g_attn, &dz)?;
        self.hook(encoder, &format!("{p}.hook_z"), &dz)?;
        let [q, k, v] = ["q", "k", "v"].map(|n| self.act(&format!("{p}.hook_{n}")));
        let (q, k, v) = (q?, k?, v?);
        let stats = stats_tensor(self.state, gpu, config, l, b, s)?;
        let (causal, scale) = (config.causal, config.score_scale(l) as f32);
        let out = if self.tape.intervened(&format!("{p}.hook_z")) {
            // The attention's own output, before hook_z's interventions (same statistics).
            let t = self.scratch("z before hook", &bshd)?;
            record_bshd_forward(gpu, encoder, &q, &k, &v, causal, scale, &t, &stats)?;
            t
        } else {
            z
        };
        let d: Vec<GpuTensor> = ["dq", "dk", "dv"].iter().map(|n| self.scratch(n, &bshd)).collect::<Result<_>>()?;
        let saved = Saved { q: &q, k: &k, v: &v, out: &out, row_stats: &stats };
        record_bshd_into(gpu, encoder, saved, &dz, causal, scale, Grads { dq: &d[0], dk: &d[1], dv: &d[2] })?;
        self.projections_backward(encoder, l, xs, &d, outs)
    }
}
