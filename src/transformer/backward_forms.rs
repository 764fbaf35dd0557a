//! The GPU backward's TransformerLens variants beyond SPEC's plain model (the GPU twin of
//! [`crate::reference::backward::model::forms`]): RMS norms (`RMS`, `RMSPre`, `final_rms`, through
//! the LayerNorm backward kernel's RMS flag), `parallel_attn_mlp` (the MLP's input gradient goes
//! to `resid_pre`, beside the attention's), `hook_mlp_in`, `hook_tokens` (its interventions pick
//! the rows of `W_E` that get gradient). The attention-field variants (`attn_scale`, by-layer
//! scale, bidirectional) need nothing here: the walk reads [`Config::score_scale`] and masks only
//! for causal models, and the GELU forms share the tanh kernel.
//!
//! SoLU (`solu`, `solu_ln` with its `mlp.ln` and `hook_mid`) is here too; the per-head inputs,
//! `hook_result` and `shortformer` are in `backward_heads.rs`. What the GPU backward does not
//! implement is refused by name, before any GPU work ([`Config::refuse_gpu_backward_variants`]).

use ndarray::{ArrayD, ArrayViewD};

use super::Walk;
use crate::error::{Error, Result};
use crate::tensor::GpuTensor;
use crate::transformer::config::Config;
use crate::transformer::hooks::{find, Hook};
use crate::transformer::intervention::{apply_host, Intervention};
use crate::transformer::config::Activation;
use crate::transformer::variant_kernels as vk;
use crate::transformer::weights::LayerNormWeights;

impl Config {
    /// The variants this config uses that the GPU backward does not implement yet, as
    /// `field value`: none today (every variant the forward runs has its GPU backward); kept so
    /// that a variant added to the forward is refused here until its backward lands.
    pub fn gpu_backward_gaps(&self) -> Vec<String> {
        Vec::new()
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

/// The form of norm `prefix` (`ln_final`, `blocks.l.ln1`, `blocks.l.ln2`, `blocks.l.mlp.ln`),
/// `None` where the model has none.
pub(super) fn norm_form(config: &Config, prefix: &str) -> Option<crate::transformer::config::NormForm> {
    match prefix {
        "ln_final" => config.final_norm(),
        p if p.ends_with(".mlp.ln") => config.mlp_norm(),
        _ => config.block_norm(),
    }
}

/// Whether norm `prefix` is an RMS norm.
pub(super) fn is_rms(config: &Config, prefix: &str) -> bool {
    norm_form(config, prefix).is_some_and(|f| f.rms)
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
    /// The MLP's activation backward: d/d`hook_pre` into `d_pre` from d/d`hook_post` `d_post`
    /// on `pre` (SoLU through `mlp.ln` and `hook_mid` for `solu_ln`).
    pub(super) fn activation(&mut self, encoder: &mut Enc, l: usize, pre: &GpuTensor, d_post: &GpuTensor, d_pre: &GpuTensor) -> Result<()> {
        let config = &self.model.config;
        if !matches!(config.act_fn, Activation::Solu | Activation::SoluLn) {
            return crate::ops::backward::activation::record_into(self.gpu, encoder, config.act_fn.gelu(), pre, d_post, d_pre);
        }
        if config.mlp_norm().is_none() {
            return vk::solu_backward(self.gpu, encoder, pre, d_post, d_pre);
        }
        let p = format!("blocks.{l}.mlp");
        let mid = self.act(&format!("{p}.hook_mid"))?;
        let (w, grads) = (self.model.weights.blocks[l].mlp.as_ref(), self.params.blocks[l].mlp.as_ref());
        let ln = w.and_then(|m| m.ln.as_ref()).zip(grads.and_then(|m| m.ln.as_ref()));
        let d_mid = self.scratch("d mlp mid", mid.shape())?;
        self.layer_norm(encoder, &format!("{p}.ln"), &mid, ln, d_post, None, &d_mid, false)?;
        self.hook(encoder, &format!("{p}.hook_mid"), &d_mid)?;
        vk::solu_backward(self.gpu, encoder, pre, &d_mid, d_pre)
    }

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
