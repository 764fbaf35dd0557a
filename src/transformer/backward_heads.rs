//! The GPU backward of the attention block's TransformerLens variants (the GPU twin of the
//! reference's `attention_block` and `attention` in `model_forms.rs` / `model.rs`):
//!
//! - `use_attn_result`: d/d`hook_result` \[B, S, H, d_model\] is d/d`hook_attn_out` repeated per
//!   head; when the hook is asked for or changed, `W_O` and z get their gradients head by head
//!   (heads first, one batched product each), else through the one product of the plain model.
//! - `use_attn_in` / `use_split_qkv_input`: per-head inputs \[B, S, H, d_model\], each normalised
//!   by ln1 and projected by its head's `W[h]` (heads first, batched products). ln1's backward runs
//!   once on the sum of the three gradients when the three inputs are the same values and no
//!   input hook's gradient is asked for (it is linear in its output gradient); otherwise once per
//!   input (v, k, q, as TransformerLens's backward hooks fire: ln1's hooks keep the query's), on
//!   that input's own normalised values, recomputed when an intervention made the inputs differ.
//!   The residual gradient is the sum over heads of the inputs' gradients.
//! - `shortformer`: q and k read `ln1(x) + W_pos`; their input gradients also go to `W_pos`.

use super::{add_into, Walk};
use crate::error::{Error, Result};
use crate::ops::backward::{permute, reduce};
use crate::ops::matmul::{record_gemm, Gemm};
use crate::tensor::GpuTensor;
use crate::transformer::kernels;
use crate::transformer::variant_kernels as vk;
use crate::transformer::weights::LayerNormWeights;

type Enc = wgpu::CommandEncoder;

/// Where one projection's input gradient goes: the input (0 q, 1 k, 2 v), the target, and
/// whether it is added to the target's old contents.
pub(super) type InputGrad<'t> = (usize, &'t GpuTensor, bool);

/// How one norm backward call differs from the plain one (the per-head ln1's calls).
#[derive(Default)]
pub(crate) struct NormCall {
    /// `(normalized, scale)` as the forward computed them for this input; `None`: the cached hooks.
    pub parts: Option<(GpuTensor, GpuTensor)>,
    /// Record no hook gradient (only carry through the interventions): ln1's key and value calls.
    pub quiet: bool,
    /// Add the weight gradients to their old values (ln1's second and third calls).
    pub accumulate_weights: bool,
}

impl Walk<'_> {
    /// Block `l`'s attention and ln1 backward from d/d`hook_attn_out` `g_attn`: adds the
    /// gradient of `hook_resid_pre` into `g` (and shortformer's into `d_pos`).
    pub(super) fn attention_block(&mut self, encoder: &mut Enc, l: usize, g_attn: &GpuTensor, g: &GpuTensor) -> Result<()> {
        if self.model.config.optional_hooks.per_head_inputs() {
            return self.per_head_block(encoder, l, g_attn, g);
        }
        let (w, params) = (&self.model.weights, self.params);
        let p = format!("blocks.{l}");
        let resid = [self.batch, self.seq, self.model.config.d_model];
        let pre = self.act(&format!("{p}.hook_resid_pre"))?;
        let ln1 = w.blocks[l].ln1.as_ref().zip(params.blocks[l].ln1.as_ref());
        let x = self.ln_output(encoder, &format!("{p}.ln1"), &pre, ln1.map(|(w, _)| w))?;
        let query = self.tape.wanted(&format!("{p}.ln1.hook_normalized")) || self.tape.wanted(&format!("{p}.ln1.hook_scale"));
        let d_x = self.scratch("d ln out", &resid)?;
        let d_query = if query { Some(self.scratch("d ln query", &resid)?) } else { None };
        let d_pos = self.d_pos.clone();
        let qk = match &d_pos {
            Some(_) => {
                let t = self.scratch("shortformer qk", &resid)?;
                kernels::add(self.gpu, encoder, &x, &self.act("hook_pos_embed")?, &t)?;
                Some(t)
            }
            None => None,
        };
        let xs = match &qk {
            Some(qk) => [qk, qk, &x],
            None => [&x, &x, &x],
        };
        let mut outs: Vec<InputGrad<'_>> = vec![(0, &d_x, false), (1, &d_x, true), (2, &d_x, true)];
        if let Some(q) = &d_query {
            outs.push((0, q, false));
        }
        if let Some(dp) = &d_pos {
            outs.extend([(0, dp, true), (1, dp, true)]);
        }
        self.attention(encoder, l, xs, g_attn, &outs)?;
        self.layer_norm(encoder, &format!("{p}.ln1"), &pre, ln1, &d_x, d_query.as_ref(), g, true)
    }

    /// [`Walk::attention_block`] with per-head inputs (`use_attn_in`, `use_split_qkv_input`).
    fn per_head_block(&mut self, encoder: &mut Enc, l: usize, g_attn: &GpuTensor, g: &GpuTensor) -> Result<()> {
        let config = &self.model.config;
        let (w, params) = (&self.model.weights, self.params);
        let p = format!("blocks.{l}");
        let ln1_name = format!("{p}.ln1");
        let heads_shape = [self.batch, self.seq, config.n_heads, config.d_model];
        let split = config.optional_hooks.split_qkv_input;
        let names: [String; 3] = match split {
            true => ["hook_q_input", "hook_k_input", "hook_v_input"].map(|n| format!("{p}.{n}")),
            false => [0, 1, 2].map(|_| format!("{p}.hook_attn_in")),
        };
        let ins: Vec<GpuTensor> = names.iter().map(|n| self.act(n)).collect::<Result<_>>()?;
        // Interventions on split inputs make the three differ: ln1's values are then recomputed
        // per input, which cannot also apply ln1's own interventions.
        let differ = split && names.iter().any(|n| self.tape.intervened(n));
        let ln_hooks = [format!("{ln1_name}.hook_scale"), format!("{ln1_name}.hook_normalized")];
        if differ && config.has_ln() && ln_hooks.iter().any(|n| self.tape.intervened(n)) {
            return Err(Error::Input(format!(
                "the GPU backward pass does not implement interventions on both {p}'s split q/k/v inputs and {ln1_name}'s hooks in one pass yet"
            )));
        }
        let ln1 = w.blocks[l].ln1.as_ref().zip(params.blocks[l].ln1.as_ref());
        let mut parts = Vec::with_capacity(3);
        let mut ys = Vec::with_capacity(3);
        for (i, x) in ins.iter().enumerate() {
            let part = if differ && config.has_ln() { Some(self.recompute_norm(encoder, x, i)?) } else { None };
            let y = match (&part, i) {
                (None, 1 | 2) if !differ => ys.last().cloned().ok_or_else(|| Error::Gpu("per-head inputs: no ln1 output".into()))?,
                _ => self.head_norm_output(encoder, &ln1_name, x, part.as_ref().map(|p| &p.0), ln1.map(|(w, _)| w), i)?,
            };
            ys.push(y);
            parts.push(part);
        }
        let mut xs = ys.clone();
        if self.d_pos.is_some() {
            let repeated = self.scratch("pos heads", &heads_shape)?;
            vk::repeat_heads(self.gpu, encoder, &self.act("hook_pos_embed")?, &repeated)?;
            for (i, x) in xs.iter_mut().enumerate().take(2) {
                let t = self.scratch(&format!("pos input {i}"), &heads_shape)?;
                kernels::add(self.gpu, encoder, &ys[i], &repeated, &t)?;
                *x = t;
            }
        }
        let dxs: Vec<GpuTensor> = (0..3).map(|i| self.scratch(&format!("d head input {i}"), &heads_shape)).collect::<Result<_>>()?;
        let outs: Vec<InputGrad<'_>> = dxs.iter().enumerate().map(|(i, t)| (i, t, false)).collect();
        self.attention(encoder, l, [&xs[0], &xs[1], &xs[2]], g_attn, &outs)?;
        if let Some(d_pos) = self.d_pos.clone() {
            for d in &dxs[..2] {
                self.add_heads(encoder, d, &d_pos)?;
            }
        }
        let separate = differ || (split && names.iter().any(|n| self.tape.touches(n)));
        if !separate {
            // One ln1 backward on the sum (the same input values): linear in its gradient.
            let sum = self.scratch("d head input sum", &heads_shape)?;
            kernels::add(self.gpu, encoder, &dxs[0], &dxs[1], &sum)?;
            add_into(self.gpu, encoder, &dxs[2], &sum)?;
            let d_in = self.scratch("d head input ln", &heads_shape)?;
            self.layer_norm(encoder, &ln1_name, &ins[0], ln1, &sum, Some(&dxs[0]), &d_in, false)?;
            if !split {
                self.hook(encoder, &names[0], &d_in)?;
            }
            return self.add_heads(encoder, &d_in, g);
        }
        let d_ins: Vec<GpuTensor> = (0..3).map(|i| self.scratch(&format!("d split input {i}"), &heads_shape)).collect::<Result<_>>()?;
        for i in [2, 1, 0] {
            let call = NormCall { parts: parts[i].take(), quiet: i != 0, accumulate_weights: i != 2 };
            self.layer_norm_call(encoder, &ln1_name, &ins[i], ln1, &dxs[i], None, &d_ins[i], false, call)?;
        }
        for i in [2, 1, 0] {
            self.hook(encoder, &names[i], &d_ins[i])?;
            self.add_heads(encoder, &d_ins[i], g)?;
        }
        Ok(())
    }

    /// ln1's normalised values and scale of per-head input `x` (number `i`), as the forward
    /// computed them (no interventions on ln1's hooks: see [`Walk::per_head_block`]).
    fn recompute_norm(&mut self, encoder: &mut Enc, x: &GpuTensor, i: usize) -> Result<(GpuTensor, GpuTensor)> {
        let config = &self.model.config;
        let eps = config.eps as f32;
        let normalized = self.scratch(&format!("recomputed normalized {i}"), x.shape())?;
        let scale = self.scratch(&format!("recomputed scale {i}"), &crate::spec::layer_norm::scale_shape(x.shape()))?;
        if config.block_norm().is_some_and(|f| f.rms) {
            vk::rms_norm(self.gpu, encoder, x, None, eps, &normalized, Some(&scale))?;
        } else {
            crate::ops::layer_norm::record_into_full(self.gpu, encoder, x, None, eps, &normalized, Some(&scale))?;
        }
        Ok((normalized, scale))
    }

    /// What ln1 gave projection `i` for per-head input `x`: `normalized w + b` from `normalized`
    /// (the cached hook when `None`), or `x` without a norm.
    fn head_norm_output(
        &mut self,
        encoder: &mut Enc,
        prefix: &str,
        x: &GpuTensor,
        normalized: Option<&GpuTensor>,
        w: Option<&LayerNormWeights<GpuTensor>>,
        i: usize,
    ) -> Result<GpuTensor> {
        if !self.model.config.has_ln() {
            return Ok(x.clone());
        }
        let n = match normalized {
            Some(n) => n.clone(),
            None => self.act(&format!("{prefix}.hook_normalized"))?,
        };
        let Some(ln) = w else { return Ok(n) };
        let out = self.scratch(&format!("head ln x {i}"), x.shape())?;
        kernels::columns(self.gpu, encoder, &n, Some(&ln.w), ln.b.as_ref(), false, &out)?;
        Ok(out)
    }

    /// `out += Σ_h x[.., h, :]` for x \[B, S, H, d_model\] and out \[B, S, d_model\].
    fn add_heads(&mut self, encoder: &mut Enc, x: &GpuTensor, out: &GpuTensor) -> Result<()> {
        let dm = self.model.config.d_model;
        let zero = self.scratch("zero bias", &[dm])?;
        encoder.clear_buffer(zero.buffer(), 0, None);
        let sum = self.scratch("head sum", out.shape())?;
        vk::sum_heads(self.gpu, encoder, x, &zero, &sum)?;
        add_into(self.gpu, encoder, &sum, out)
    }

    /// The output projection's backward from d/d`hook_attn_out` `g_attn`: `W_O`'s and `b_O`'s
    /// gradients and d/d`hook_z` into `dz`, through `attn.hook_result` head by head when the run
    /// has it and a gradient or intervention asks about it.
    pub(super) fn output_backward(&mut self, encoder: &mut Enc, l: usize, z: &GpuTensor, g_attn: &GpuTensor, dz: &GpuTensor) -> Result<()> {
        let (gpu, model, params) = (self.gpu, self.model, self.params);
        let config = &model.config;
        let (w, grads) = (&model.weights.blocks[l].attn, &params.blocks[l].attn);
        let (rows, dm, h, dh) = (self.rows(), config.d_model, config.n_heads, config.d_head);
        let name = format!("blocks.{l}.attn.hook_result");
        if !self.attn_result || !self.tape.touches(&name) {
            let inner = h * dh;
            return self.linear(encoder, &z.reshaped(&[rows, inner])?, &w.w_o.reshaped(&[inner, dm])?, g_attn, &grads.w_o, &grads.b_o, Some((dz, false)));
        }
        let d_result = self.scratch("d result", &[self.batch, self.seq, h, dm])?;
        vk::repeat_heads(gpu, encoder, g_attn, &d_result)?;
        self.hook(encoder, &name, &d_result)?;
        reduce::column_sums(gpu, encoder, &g_attn.reshaped(&[rows, dm])?, None, &grads.b_o, false)?;
        let z_h = self.heads_first(encoder, z, "z heads first", dh)?;
        let dr_h = self.heads_first(encoder, &d_result, "d result heads first", dm)?;
        record_gemm(gpu, encoder, &z_h, &dr_h, &grads.w_o, &Gemm { transpose_a: true, ..Gemm::default() })?;
        let dz_h = self.scratch("dz heads first", &[h, rows, dh])?;
        record_gemm(gpu, encoder, &dr_h, &w.w_o, &dz_h, &Gemm { transpose_b: true, ..Gemm::default() })?;
        permute::swap_axes(gpu, encoder, &dz_h, [1, h, rows, dh], 1.0, dz, false)
    }

    /// `x` \[B, S, H, n\] as \[H, B·S, n\], in the scratch tensor of `role`.
    fn heads_first(&mut self, encoder: &mut Enc, x: &GpuTensor, role: &str, n: usize) -> Result<GpuTensor> {
        let (rows, h) = (self.rows(), self.model.config.n_heads);
        let out = self.scratch(role, &[h, rows, n])?;
        permute::swap_axes(self.gpu, encoder, x, [1, rows, h, n], 1.0, &out, false)?;
        Ok(out)
    }

    /// The q, k and v projections' backward from their output gradients `d` (\[B, S, H, d_head\],
    /// in q, k, v order) on their inputs `xs` (\[B, S, d_model\], or \[B, S, H, d_model\] per
    /// head): each hook, `W` and `b` gradients, and the inputs' gradients into `outs`.
    pub(super) fn projections_backward(&mut self, encoder: &mut Enc, l: usize, xs: [&GpuTensor; 3], d: &[GpuTensor], outs: &[InputGrad<'_>]) -> Result<()> {
        let (gpu, model, params) = (self.gpu, self.model, self.params);
        let config = &model.config;
        let (attn, grads) = (&model.weights.blocks[l].attn, &params.blocks[l].attn);
        let (rows, dm, h, dh) = (self.rows(), config.d_model, config.n_heads, config.d_head);
        let inner = h * dh;
        let packed = &model.packed[l];
        let dw_packed = self.scratch("dw packed", &[dm, inner])?;
        let parts = [("q", &grads.w_q, &grads.b_q, &attn.w_q), ("k", &grads.w_k, &grads.b_k, &attn.w_k), ("v", &grads.w_v, &grads.b_v, &attn.w_v)];
        let mut x_t = None;
        for (i, ((name, dw, db, w), d)) in parts.into_iter().zip(d).enumerate() {
            self.hook(encoder, &format!("blocks.{l}.attn.hook_{name}"), d)?;
            let d_rows = d.reshaped(&[rows, inner])?;
            reduce::column_sums(gpu, encoder, &d_rows, None, db, false)?;
            let mine: Vec<(&GpuTensor, bool)> = outs.iter().filter(|o| o.0 == i).map(|o| (o.1, o.2)).collect();
            if xs[i].shape().len() == 4 {
                self.head_projection_backward(encoder, xs[i], w, d, dw, &mine)?;
                continue;
            }
            if i == 0 || !std::ptr::eq(xs[i], xs[i - 1]) || x_t.is_none() {
                x_t = Some(self.transposed(encoder, xs[i], dm)?);
            }
            let x_t = x_t.as_ref().ok_or_else(|| Error::Gpu("no transposed input".into()))?;
            record_gemm(gpu, encoder, x_t, &d_rows, &dw_packed, &Gemm::default())?;
            permute::swap_axes(gpu, encoder, &dw_packed, [1, dm, h, dh], 1.0, dw, false)?;
            for (target, accumulate) in mine {
                let back = Gemm { transpose_b: true, accumulate, ..Gemm::default() };
                record_gemm(gpu, encoder, &d_rows, &packed[i], &target.reshaped(&[rows, dm])?, &back)?;
            }
        }
        Ok(())
    }

    /// One projection's backward with per-head inputs `x` \[B, S, H, d_model\] and weights `w`
    /// \[H, d_model, d_head\]: `dw[h] = x_hᵀ d_h` and `d_h w[h]ᵀ` into each of `outs`.
    fn head_projection_backward(&mut self, encoder: &mut Enc, x: &GpuTensor, w: &GpuTensor, d: &GpuTensor, dw: &GpuTensor, outs: &[(&GpuTensor, bool)]) -> Result<()> {
        let (gpu, config) = (self.gpu, &self.model.config);
        let (rows, dm, h, dh) = (self.rows(), config.d_model, config.n_heads, config.d_head);
        let x_h = self.heads_first(encoder, x, "x heads first", dm)?;
        let d_h = self.heads_first(encoder, d, "d heads first", dh)?;
        record_gemm(gpu, encoder, &x_h, &d_h, dw, &Gemm { transpose_a: true, ..Gemm::default() })?;
        if outs.is_empty() {
            return Ok(());
        }
        let back = self.scratch("dx heads first", &[h, rows, dm])?;
        record_gemm(gpu, encoder, &d_h, w, &back, &Gemm { transpose_b: true, ..Gemm::default() })?;
        for &(target, accumulate) in outs {
            permute::swap_axes(gpu, encoder, &back, [1, h, rows, dm], 1.0, target, accumulate)?;
        }
        Ok(())
    }
}
