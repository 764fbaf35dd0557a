//! The GPU backward's TransformerLens variants beyond SPEC's plain model (the GPU twin of
//! [`crate::reference::backward::model::forms`]): RMS norms (`RMS`, `RMSPre`, `final_rms`, through
//! the LayerNorm backward kernel's RMS flag), `parallel_attn_mlp` (the MLP's input gradient goes
//! to `resid_pre`, beside the attention's), `hook_mlp_in`, `hook_tokens` (its interventions pick
//! the rows of `W_E` that get gradient). The attention-field variants (`attn_scale`, by-layer
//! scale, bidirectional) need nothing here: the walk reads [`Config::score_scale`] and masks only
//! for causal models, and the GELU forms share the tanh kernel.
//!
//! What the GPU backward does not implement yet is refused by name, before any GPU work
//! ([`Config::refuse_gpu_backward_variants`]); the float64 reference implements all of them.

use ndarray::{ArrayD, ArrayViewD};

use super::Walk;
use crate::error::{Error, Result};
use crate::tensor::GpuTensor;
use crate::transformer::config::{Activation, Config};
use crate::transformer::hooks::{find, Hook};
use crate::transformer::intervention::{apply_host, Intervention};
use crate::transformer::weights::LayerNormWeights;

impl Config {
    /// The variants this config uses that the GPU backward does not implement yet, as
    /// `field value`: SoLU (`solu`, `solu_ln`), `shortformer`, the per-head attention inputs
    /// (`use_attn_in`, `use_split_qkv_input`) and `use_attn_result`.
    pub fn gpu_backward_gaps(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.mlp().is_some() && matches!(self.act_fn, Activation::Solu | Activation::SoluLn) {
            out.push(format!("act_fn \"{}\"", self.act_fn.name()));
        }
        if self.shortformer {
            out.push("positional_embedding_type \"shortformer\"".to_string());
        }
        let hooks = &self.optional_hooks;
        for (key, on) in [("use_attn_in", hooks.attn_in), ("use_split_qkv_input", hooks.split_qkv_input), ("use_attn_result", hooks.attn_result)] {
            if on {
                out.push(format!("{key} true"));
            }
        }
        out
    }

    /// Refuses, naming the field, a config that uses a variant the GPU backward does not
    /// implement yet ([`Config::gpu_backward_gaps`]), so that it errors instead of computing
    /// another model's gradients.
    pub fn refuse_gpu_backward_variants(&self) -> Result<()> {
        match self.gpu_backward_gaps().first() {
            None => Ok(()),
            Some(v) => Err(Error::Input(format!("model config: the GPU backward pass does not implement {v} yet"))),
        }
    }
}

/// The hook whose activation is block `p`'s MLP input (before ln2): `hook_mlp_in` when the config
/// asks for it, else `hook_resid_pre` (`parallel_attn_mlp`) or `hook_resid_mid`.
pub(crate) fn mlp_input(config: &Config, p: &str) -> String {
    match (config.optional_hooks.mlp_in, config.parallel_attn_mlp) {
        (true, _) => format!("{p}.hook_mlp_in"),
        (false, true) => format!("{p}.hook_resid_pre"),
        (false, false) => format!("{p}.hook_resid_mid"),
    }
}

/// Whether norm `prefix` (`ln_final`, `blocks.l.ln1`, `blocks.l.ln2`) is an RMS norm.
pub(super) fn is_rms(config: &Config, prefix: &str) -> bool {
    let form = if prefix == "ln_final" { config.final_norm() } else { config.block_norm() };
    form.is_some_and(|f| f.rms)
}

/// The token ids the embedding read: `tokens` after `hook_tokens`'s interventions (as the
/// forward applies them, on the host).
pub(crate) fn hooked_tokens(config: &Config, hooks: &[Hook], tokens: ArrayViewD<'_, i64>, interventions: &[Intervention]) -> Result<ArrayD<i64>> {
    if !config.optional_hooks.tokens || !interventions.iter().any(|i| i.hook == "hook_tokens") {
        return Ok(tokens.to_owned());
    }
    let hook = find(hooks, "hook_tokens")?;
    let mut values = tokens.mapv(|t| t as f64);
    for intervention in interventions.iter().filter(|i| i.hook == "hook_tokens") {
        apply_host(intervention, hook, &mut values)?;
    }
    crate::reference::transformer::forms::token_ids(values.view(), config.d_vocab)
}

type Enc = wgpu::CommandEncoder;

impl Walk<'_> {
    /// `parallel_attn_mlp`'s block `l` from its residual gradient `g` (after `hook_resid_post`):
    /// d/d`hook_attn_out` as a copy of `g`, taken before the MLP's input gradient is added to `g`
    /// (both branches read `resid_pre`; there is no `hook_resid_mid`).
    pub(super) fn parallel_mlp(&mut self, encoder: &mut Enc, l: usize, g: &GpuTensor) -> Result<GpuTensor> {
        let name = format!("blocks.{l}.hook_attn_out");
        let copy = self.scratch("g parallel attn", g.shape())?;
        crate::transformer::kernels::copy(encoder, g, &copy)?;
        self.mlp(encoder, l, g)?;
        // Hooked after the MLP, so that the hook gradients come in the reference's order.
        self.hook(encoder, &name, &copy)?;
        Ok(copy)
    }

    /// The MLP's input gradient from d/d(ln2's output) `d_x` on input `x`, added into `g`
    /// through `hook_mlp_in` when the config has it.
    pub(super) fn mlp_input_backward(
        &mut self,
        encoder: &mut Enc,
        p: &str,
        x: &GpuTensor,
        ln2: Option<(&LayerNormWeights<GpuTensor>, &LayerNormWeights<GpuTensor>)>,
        d_x: &GpuTensor,
        g: &GpuTensor,
    ) -> Result<()> {
        let name = format!("{p}.hook_mlp_in");
        if !self.model.config.optional_hooks.mlp_in || !self.tape.touches(&name) {
            return self.layer_norm(encoder, &format!("{p}.ln2"), x, ln2, d_x, None, g, true);
        }
        let d_in = self.scratch("d mlp in", g.shape())?;
        self.layer_norm(encoder, &format!("{p}.ln2"), x, ln2, d_x, None, &d_in, false)?;
        self.hook(encoder, &name, &d_in)?;
        super::add_into(self.gpu, encoder, &d_in, g)
    }
}
