//! The GPU forward pass's TransformerLens variants beyond SPEC's plain model, each in its own
//! function so that the plain path in `forward.rs` and `block.rs` stays as it was: the norms
//! (LayerNorm, LNPre, RMSNorm, RMSPre, the final RMS norm, `solu_ln`'s LayerNorm over d_mlp) with
//! their hooks, `hook_tokens`, the shortformer embedding, the per-head attention inputs
//! (`use_attn_in`, `use_split_qkv_input`) and projections, the per-head results
//! (`use_attn_result`), and SoLU. The float64 twin is `crate::reference::transformer::forms`.

use ndarray::{ArrayD, ArrayViewD};

use super::Pass;
use crate::error::{Error, Result};
use crate::ops::layer_norm;
use crate::tensor::GpuTensor;
use crate::transformer::config::NormForm;
use crate::transformer::hooks::Hook;
use crate::transformer::intervention::apply_host;
use crate::transformer::kernels;
use crate::transformer::variant_kernels as vk;
use crate::transformer::weights::LayerNormWeights;

/// The scratch roles of one norm's tensors (output, normalised, scale, scale before a change),
/// by the shape it normalises, so that norms of different shapes never reallocate each other's.
fn roles(x: &GpuTensor, d_model: usize) -> [&'static str; 4] {
    match (x.shape().len(), x.shape().last()) {
        (4, _) => ["head_ln_out", "head_normalized", "head_scale", "head_scale_old"],
        (_, Some(&n)) if n != d_model => ["mlp_ln_out", "mlp_normalized", "mlp_scale", "mlp_scale_old"],
        _ => ["ln_out", "normalized", "scale", "scale_old"],
    }
}

impl Pass<'_> {
    /// The norm `form` (`None`: the identity) of `x` over its last axis, with the hooks
    /// `{prefix}.hook_scale` and `{prefix}.hook_normalized`: one kernel when neither is changed
    /// and `hook_normalized` is not wanted; otherwise the weightless norm, the hooks (a changed
    /// scale divides the normalised values again), then `w` and `b`.
    pub(super) fn norm(
        &mut self,
        encoder: &mut wgpu::CommandEncoder,
        form: Option<NormForm>,
        prefix: &str,
        x: &GpuTensor,
        weights: Option<&LayerNormWeights<GpuTensor>>,
    ) -> Result<GpuTensor> {
        let Some(form) = form else { return Ok(x.clone()) };
        let eps = self.model.config.eps as f32;
        let [out_role, norm_role, scale_role, old_role] = roles(x, self.model.config.d_model);
        let (scale_name, norm_name) = (format!("{prefix}.hook_scale"), format!("{prefix}.hook_normalized"));
        let scale_shape = crate::spec::layer_norm::scale_shape(x.shape());
        let shape = x.shape().to_vec();
        let record = |pass: &Pass<'_>, encoder: &mut wgpu::CommandEncoder, w: Option<&LayerNormWeights<GpuTensor>>, out: &GpuTensor, scale: Option<&GpuTensor>| {
            if form.rms {
                vk::rms_norm(pass.gpu, encoder, x, w.map(|w| &w.w), eps, out, scale)
            } else {
                let affine = w.map(|w| w.b.as_ref().map(|b| (&w.w, b)).ok_or_else(|| Error::Input(format!("{prefix}: a LayerNorm needs b"))));
                layer_norm::record_into_full(pass.gpu, encoder, x, affine.transpose()?, eps, out, scale)
            }
        };
        if weights.is_some() && !self.wanted(&norm_name) && !self.intervened(&scale_name) {
            let out = self.scratch(out_role, &shape)?;
            let scale = if self.cached(&scale_name) { Some(self.target(&scale_name, scale_role, &scale_shape)?) } else { None };
            record(self, encoder, weights, &out, scale.as_ref())?;
            if let Some(scale) = &scale {
                self.hook(encoder, &scale_name, scale)?;
            }
            return Ok(out);
        }
        let normalized = self.target(&norm_name, norm_role, &shape)?;
        let scale = if self.wanted(&scale_name) { Some(self.target(&scale_name, scale_role, &scale_shape)?) } else { None };
        record(self, encoder, None, &normalized, scale.as_ref())?;
        if let Some(scale) = &scale {
            if self.intervened(&scale_name) {
                let old = self.scratch(old_role, &scale_shape)?;
                kernels::copy(encoder, scale, &old)?;
                self.hook(encoder, &scale_name, scale)?;
                kernels::rescale(self.gpu, encoder, &normalized, &old, scale)?;
            } else {
                self.hook(encoder, &scale_name, scale)?;
            }
        }
        self.hook(encoder, &norm_name, &normalized)?;
        match weights {
            None => Ok(normalized),
            Some(ln) => {
                let out = self.scratch(out_role, &shape)?;
                kernels::columns(self.gpu, encoder, &normalized, Some(&ln.w), ln.b.as_ref(), false, &out)?;
                Ok(out)
            }
        }
    }

    /// The token ids after `hook_tokens` (its interventions applied on the host, where the ids
    /// are), cached as float32 when asked for.
    pub(super) fn hook_tokens(&mut self, hooks: &[Hook], tokens: ArrayViewD<'_, i64>) -> Result<ArrayD<i64>> {
        let hook = crate::transformer::hooks::find(hooks, "hook_tokens")?;
        let mut values = tokens.mapv(|t| t as f64);
        for intervention in self.options.interventions.iter().filter(|i| i.hook == "hook_tokens") {
            apply_host(intervention, hook, &mut values)?;
        }
        let ids = crate::spec::tokens::token_ids(values.view(), self.model.config.d_vocab)?;
        if self.cached("hook_tokens") {
            let t = GpuTensor::upload(self.gpu, values.mapv(|v| v as f32).view(), "hook_tokens")?;
            self.cache.push("hook_tokens", t);
        }
        Ok(ids)
    }

    /// The inputs of q, k and v \[B, S, H, d_model\] after ln1 with `use_attn_in` (one hooked
    /// input, normalised once per projection as TransformerLens does) or `use_split_qkv_input`
    /// (one hooked input each); ln1's hooks keep the last (v's) values.
    pub(super) fn per_head_inputs(
        &mut self,
        encoder: &mut wgpu::CommandEncoder,
        p: &str,
        resid: &GpuTensor,
        ln1: Option<&LayerNormWeights<GpuTensor>>,
    ) -> Result<[GpuTensor; 3]> {
        let config = &self.model.config;
        let shape = [self.batch, self.seq, config.n_heads, config.d_model];
        let names: Vec<String> = if config.optional_hooks.split_qkv_input {
            ["hook_q_input", "hook_k_input", "hook_v_input"].iter().map(|n| format!("{p}.{n}")).collect()
        } else {
            vec![format!("{p}.hook_attn_in"); 3]
        };
        let roles = ["q_input", "k_input", "v_input"];
        let form = config.block_norm();
        // The inputs are all hooked before ln1 runs (TransformerLens's order): use_attn_in hooks
        // one input, which ln1 then normalises again for each projection.
        let mut inputs: Vec<GpuTensor> = Vec::with_capacity(3);
        for (i, name) in names.iter().enumerate() {
            match inputs.last() {
                Some(last) if names[i - 1] == *name => inputs.push(last.clone()),
                _ => {
                    let t = self.target(name, roles[i], &shape)?;
                    vk::repeat_heads(self.gpu, encoder, resid, &t)?;
                    self.hook(encoder, name, &t)?;
                    inputs.push(t);
                }
            }
        }
        let mut normed = Vec::with_capacity(3);
        for (i, x) in inputs.iter().enumerate() {
            // Each normalised input gets its own tensor: the next ln1 call reuses the scratch.
            let y = self.norm(encoder, form, &format!("{p}.ln1"), x, ln1)?;
            let own = self.scratch(["q_in_ln", "k_in_ln", "v_in_ln"][i], &shape)?;
            kernels::copy(encoder, &y, &own)?;
            normed.push(own);
        }
        let [q, k, v]: [GpuTensor; 3] = normed.try_into().map_err(|_| Error::Input("per-head inputs: expected three".into()))?;
        Ok([q, k, v])
    }

    /// The shortformer inputs of q and k: `ln1(resid) + W_pos` (v reads `ln1(resid)` alone).
    pub(super) fn shortformer_qk(&mut self, encoder: &mut wgpu::CommandEncoder, x: &GpuTensor, pos: &GpuTensor) -> Result<GpuTensor> {
        let qk = self.scratch("shortformer_qk", x.shape())?;
        kernels::add(self.gpu, encoder, x, pos, &qk)?;
        Ok(qk)
    }

    /// The shortformer input of q or k with per-head inputs: `x [B, S, H, d_model]` plus the
    /// positions repeated per head, into the scratch tensor of `role`.
    pub(super) fn shortformer_heads(
        &mut self,
        encoder: &mut wgpu::CommandEncoder,
        x: &GpuTensor,
        pos: &GpuTensor,
        role: &'static str,
    ) -> Result<GpuTensor> {
        let repeated = self.scratch("shortformer_heads", x.shape())?;
        vk::repeat_heads(self.gpu, encoder, pos, &repeated)?;
        let out = self.scratch(role, x.shape())?;
        kernels::add(self.gpu, encoder, x, &repeated, &out)?;
        Ok(out)
    }

    /// `use_attn_result`: each head's `z W_O[h]` through `attn.hook_result`, then their sum plus
    /// `b_O` into `out` (the `hook_attn_out` tensor).
    pub(super) fn attn_result(&mut self, encoder: &mut wgpu::CommandEncoder, p: &str, z: &GpuTensor, l: usize, out: &GpuTensor) -> Result<()> {
        let config = &self.model.config;
        let w = &self.model.weights.blocks[l].attn;
        let name = format!("{p}.attn.hook_result");
        let result = self.target(&name, "attn_result", &[self.batch, self.seq, config.n_heads, config.d_model])?;
        vk::project_heads(self.gpu, encoder, z, &w.w_o, None, &result)?;
        self.hook(encoder, &name, &result)?;
        vk::sum_heads(self.gpu, encoder, &result, &w.b_o, out)
    }

    /// SoLU on `pre` into the `hook_post` tensor `post`: `solu` alone, or (`solu_ln`)
    /// `hook_mid`, then the LayerNorm `mlp.ln` with its hooks.
    pub(super) fn solu_mlp(&mut self, encoder: &mut wgpu::CommandEncoder, p: &str, pre: &GpuTensor, l: usize, post: &GpuTensor) -> Result<()> {
        let Some(form) = self.model.config.mlp_norm() else {
            return vk::solu(self.gpu, encoder, pre, post);
        };
        let mid_name = format!("{p}.mlp.hook_mid");
        let mid = self.target(&mid_name, "mlp_mid", pre.shape())?;
        vk::solu(self.gpu, encoder, pre, &mid)?;
        self.hook(encoder, &mid_name, &mid)?;
        let model = self.model;
        let ln = model.weights.blocks[l].mlp.as_ref().and_then(|m| m.ln.as_ref());
        let y = self.norm(encoder, Some(form), &format!("{p}.mlp.ln"), &mid, ln)?;
        kernels::copy(encoder, &y, post)
    }
}
