//! The backward walk itself (see `backward.rs`): from d logits through the unembedding, the
//! final layer norm, each block in reverse (MLP, then attention: fused in `backward_attention.rs`,
//! or on the pattern path here), to the embeddings, writing every parameter's gradient.
//!
//! The residual gradient `g` lives in one tensor: each branch's input gradient is added into it
//! (LayerNorm backward's accumulate flag), and a hook that changes a gradient which another path
//! also reads works on a copy. Attention's pattern path: `dV = Pᵀ dZ`, `dP = dZ Vᵀ` (over every
//! key, hidden ones included, as TransformerLens's `hook_pattern_grad`), `dS = P ⊙ (dP − Σ P dP)`
//! (0 where masked), `dQ = scale dS K`, `dK = scale dSᵀ Q`, with heads first (\[B, H, S, d\]) for
//! the products and the scale folded into the axis swaps back to \[B, S, H, d\].

use super::{add_into, State, Tape};

#[path = "backward_attention.rs"]
pub(super) mod attention;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::ops::backward::{embedding, permute, reduce, rows};
use crate::ops::matmul::{record_gemm, Gemm};
use crate::tensor::GpuTensor;
use crate::transformer::hooks::Cache;
use crate::transformer::kernels;
use crate::transformer::weights::LayerNormWeights;
use crate::transformer::{Model, Weights};

/// One backward walk being recorded.
pub(super) struct Walk<'a> {
    pub gpu: &'a Gpu,
    pub model: &'a Model,
    pub state: &'a mut State,
    /// The forward's activations (after their interventions).
    pub acts: &'a Cache<GpuTensor>,
    pub tape: Tape<'a>,
    pub params: &'a Weights<GpuTensor>,
    pub batch: usize,
    pub seq: usize,
    /// Whether the output projection went head by head through `attn.hook_result`.
    pub attn_result: bool,
    /// `shortformer`: d/d`hook_pos_embed`, gathered from every layer's q and k inputs.
    pub d_pos: Option<GpuTensor>,
}

type Enc = wgpu::CommandEncoder;

#[path = "backward_forms.rs"]
pub(super) mod forms;
#[path = "backward_heads.rs"]
mod heads;
pub(super) use heads::NormCall;

impl Walk<'_> {
    fn act(&self, name: &str) -> Result<GpuTensor> {
        self.acts.get(name).cloned().ok_or_else(|| Error::Gpu(format!("the forward did not keep hook {name}")))
    }

    fn scratch(&mut self, role: &str, shape: &[usize]) -> Result<GpuTensor> {
        self.state.get(self.gpu, role, shape)
    }

    fn rows(&self) -> usize {
        self.batch * self.seq
    }

    /// Hook `name` on `g`, which nothing else reads afterwards: record, then interventions in place.
    fn hook(&mut self, encoder: &mut Enc, name: &str, g: &GpuTensor) -> Result<()> {
        self.tape.record(self.gpu, self.state, encoder, name, g)?;
        self.tape.through(self.gpu, encoder, name, g)
    }

    /// Hook `name` on a branch of `g` (which other paths still read): `g` itself when the hook
    /// changes nothing, else a copy in `role` that the interventions change.
    fn branch(&mut self, encoder: &mut Enc, name: &str, g: &GpuTensor, role: &str) -> Result<GpuTensor> {
        self.tape.record(self.gpu, self.state, encoder, name, g)?;
        if !self.tape.intervened(name) {
            return Ok(g.clone());
        }
        let copy = self.scratch(role, g.shape())?;
        kernels::copy(encoder, g, &copy)?;
        self.tape.through(self.gpu, encoder, name, &copy)?;
        Ok(copy)
    }

    /// `x` \[rows, n\] transposed into a tensor of the state: a weight gradient `xᵀ dy` with K =
    /// B·S runs several times faster as a plain product of a transposed copy than through the
    /// matmul's transposed-`a` read on lavapipe (measured by `examples/backward_profile.rs`).
    fn transposed(&mut self, encoder: &mut Enc, x: &GpuTensor, n: usize) -> Result<GpuTensor> {
        let rows = self.rows();
        let out = self.scratch(&format!("transposed {n}x{rows}"), &[n, rows])?;
        permute::swap_axes(self.gpu, encoder, x, [1, rows, n, 1], 1.0, &out, false)?;
        Ok(out)
    }

    /// `y = x w + b` backward for x \[rows, n\], w \[n, m\], dy \[rows, m\]: `dw`, `db`, and `dx`
    /// into `dx` (added to it with `accumulate`).
    #[allow(clippy::too_many_arguments)]
    fn linear(&mut self, encoder: &mut Enc, x: &GpuTensor, w: &GpuTensor, dy: &GpuTensor, dw: &GpuTensor, db: &GpuTensor, dx: Option<(&GpuTensor, bool)>) -> Result<()> {
        let (n, m) = (w.shape()[0], w.shape()[1]);
        let rows = self.rows();
        let dy = dy.reshaped(&[rows, m])?;
        let x_t = self.transposed(encoder, x, n)?;
        record_gemm(self.gpu, encoder, &x_t, &dy, &dw.reshaped(&[n, m])?, &Gemm::default())?;
        reduce::column_sums(self.gpu, encoder, &dy, None, db, false)?;
        if let Some((dx, accumulate)) = dx {
            record_gemm(self.gpu, encoder, &dy, w, &dx.reshaped(&[rows, n])?, &Gemm { transpose_b: true, accumulate, ..Gemm::default() })?;
        }
        Ok(())
    }

    /// The whole walk from `dlogits` (already seeded).
    pub(super) fn run(&mut self, encoder: &mut Enc, dlogits: &GpuTensor, offsets: &wgpu::Buffer, positions: &wgpu::Buffer) -> Result<()> {
        let (model, params) = (self.model, self.params);
        let config = &model.config;
        let w = &model.weights;
        let resid = [self.batch, self.seq, config.d_model];
        self.hook(encoder, "unembed.hook_out", dlogits)?;
        let x = self.act("unembed.hook_in")?;
        let d_x = self.scratch("d ln out", &resid)?;
        self.linear(encoder, &x, &w.w_u, dlogits, &params.w_u, &params.b_u, Some((&d_x, false)))?;
        self.hook(encoder, "unembed.hook_in", &d_x)?;
        let last = match config.n_layers {
            0 if config.shortformer => self.act("hook_embed")?,
            0 => {
                let sum = self.scratch("embed sum", &resid)?;
                kernels::add(self.gpu, encoder, &self.act("hook_embed")?, &self.act("hook_pos_embed")?, &sum)?;
                sum
            }
            n => self.act(&format!("blocks.{}.hook_resid_post", n - 1))?,
        };
        let g = self.scratch("g", &resid)?;
        let ln_f = w.ln_final.as_ref().zip(params.ln_final.as_ref());
        self.layer_norm(encoder, "ln_final", &last, ln_f, &d_x, None, &g, false)?;
        for l in (0..config.n_layers).rev() {
            let p = format!("blocks.{l}");
            self.hook(encoder, &format!("{p}.hook_resid_post"), &g)?;
            let g_attn = if config.parallel_attn_mlp && config.mlp().is_some() {
                self.parallel_mlp(encoder, l, &g)?
            } else {
                if config.mlp().is_some() {
                    self.mlp(encoder, l, &g)?;
                    self.hook(encoder, &format!("{p}.hook_resid_mid"), &g)?;
                }
                self.branch(encoder, &format!("{p}.hook_attn_out"), &g, "g branch")?
            };
            self.attention_block(encoder, l, &g_attn, &g)?;
            self.hook(encoder, &format!("{p}.hook_resid_pre"), &g)?;
        }
        let g_embed = self.branch(encoder, "hook_embed", &g, "g embed")?;
        let g_pos = match self.d_pos.clone() {
            Some(d_pos) => self.branch(encoder, "hook_pos_embed", &d_pos, "g pos")?,
            None => self.branch(encoder, "hook_pos_embed", &g, "g pos")?,
        };
        embedding::embed_backward(self.gpu, encoder, &g_embed, offsets, positions, &params.w_e, false)?;
        embedding::pos_embed_backward(self.gpu, encoder, &g_pos, &params.w_pos, false)
    }

    /// Block `l`'s MLP backward from the residual gradient `g` (its `hook_resid_post`, already
    /// hooked); adds the input gradient into `g`.
    fn mlp(&mut self, encoder: &mut Enc, l: usize, g: &GpuTensor) -> Result<()> {
        let (model, params) = (self.model, self.params);
        let p = format!("blocks.{l}");
        let (Some(mlp), Some(grads)) = (&model.weights.blocks[l].mlp, &params.blocks[l].mlp) else { return Ok(()) };
        let hidden = [self.batch, self.seq, mlp.b_in.len()];
        let g_out = self.branch(encoder, &format!("{p}.hook_mlp_out"), g, "g branch")?;
        let post = self.act(&format!("{p}.mlp.hook_post"))?;
        let d_post = self.scratch("d mlp post", &hidden)?;
        self.linear(encoder, &post, &mlp.w_out, &g_out, &grads.w_out, &grads.b_out, Some((&d_post, false)))?;
        self.hook(encoder, &format!("{p}.mlp.hook_post"), &d_post)?;
        let pre = self.act(&format!("{p}.mlp.hook_pre"))?;
        let d_pre = self.scratch("d mlp pre", &hidden)?;
        self.activation(encoder, l, &pre, &d_post, &d_pre)?;
        self.hook(encoder, &format!("{p}.mlp.hook_pre"), &d_pre)?;
        let mid = self.act(&forms::mlp_input(&model.config, &p))?;
        let ln2 = model.weights.blocks[l].ln2.as_ref().zip(params.blocks[l].ln2.as_ref());
        let x = self.ln_output(encoder, &format!("{p}.ln2"), &mid, ln2.map(|(w, _)| w))?;
        let d_x = self.scratch("d ln out", mid.shape())?;
        self.linear(encoder, &x, &mlp.w_in, &d_pre, &grads.w_in, &grads.b_in, Some((&d_x, false)))?;
        self.mlp_input_backward(encoder, &p, &mid, ln2, &d_x, g)
    }

    /// What layer norm `prefix` gave the next op: `normalized w + b`, `normalized`, or `x`.
    fn ln_output(&mut self, encoder: &mut Enc, prefix: &str, x: &GpuTensor, w: Option<&LayerNormWeights<GpuTensor>>) -> Result<GpuTensor> {
        if !self.model.config.has_ln() {
            return Ok(x.clone());
        }
        let n = self.act(&format!("{prefix}.hook_normalized"))?;
        let Some(ln) = w else { return Ok(n) };
        let out = self.scratch("ln x", x.shape())?;
        kernels::columns(self.gpu, encoder, &n, Some(&ln.w), ln.b.as_ref(), false, &out)?;
        Ok(out)
    }

    /// Layer norm `prefix` backward on input `x` given `dy` = d/d(its output): its weight
    /// gradients, its two hooks, and d/dx into `dx` (added with `accumulate`). `dy_query` (ln1)
    /// is the part of `dy` through the query input alone: what the hooks record, as
    /// TransformerLens's cache does (see the reference's `Tape::hook_as`).
    #[allow(clippy::too_many_arguments)]
    fn layer_norm(
        &mut self,
        encoder: &mut Enc,
        prefix: &str,
        x: &GpuTensor,
        ln: Option<(&LayerNormWeights<GpuTensor>, &LayerNormWeights<GpuTensor>)>,
        dy: &GpuTensor,
        dy_query: Option<&GpuTensor>,
        dx: &GpuTensor,
        accumulate: bool,
    ) -> Result<()> {
        self.layer_norm_call(encoder, prefix, x, ln, dy, dy_query, dx, accumulate, NormCall::default())
    }

    /// [`Walk::layer_norm`] with the per-head ln1's changes (`call`: its own normalised values
    /// and scale, nothing recorded, weight gradients added).
    #[allow(clippy::too_many_arguments)]
    fn layer_norm_call(
        &mut self,
        encoder: &mut Enc,
        prefix: &str,
        x: &GpuTensor,
        ln: Option<(&LayerNormWeights<GpuTensor>, &LayerNormWeights<GpuTensor>)>,
        dy: &GpuTensor,
        dy_query: Option<&GpuTensor>,
        dx: &GpuTensor,
        accumulate: bool,
        call: NormCall,
    ) -> Result<()> {
        let gpu = self.gpu;
        if forms::norm_form(&self.model.config, prefix).is_none() {
            return if accumulate { add_into(gpu, encoder, dy, dx) } else { kernels::copy(encoder, dy, dx) };
        }
        let (norm_name, scale_name) = (format!("{prefix}.hook_normalized"), format!("{prefix}.hook_scale"));
        let (normalized, scale) = match call.parts {
            Some(parts) => parts,
            None => (self.act(&norm_name)?, self.act(&scale_name)?),
        };
        let record = !call.quiet;
        let (dn, dn_query) = match ln {
            Some((w, grads)) => {
                reduce::column_sums(gpu, encoder, dy, Some(&normalized), &grads.w, call.accumulate_weights)?;
                if let Some(b) = &grads.b {
                    reduce::column_sums(gpu, encoder, dy, None, b, call.accumulate_weights)?;
                }
                let dn = self.scratch(&format!("dn {:?}", dy.shape()), dy.shape())?;
                kernels::columns(gpu, encoder, dy, Some(&w.w), None, false, &dn)?;
                let dn_query = match dy_query {
                    Some(q) => {
                        let t = self.scratch(&format!("dn query {:?}", dy.shape()), dy.shape())?;
                        kernels::columns(gpu, encoder, q, Some(&w.w), None, false, &t)?;
                        Some(t)
                    }
                    None => None,
                };
                (dn, dn_query)
            }
            None => (dy.clone(), dy_query.cloned()),
        };
        if record {
            self.tape.record(gpu, self.state, encoder, &norm_name, dn_query.as_ref().unwrap_or(&dn))?;
        }
        self.tape.through(gpu, encoder, &norm_name, &dn)?;
        if let Some(q) = &dn_query {
            self.tape.through(gpu, encoder, &norm_name, q)?;
        }
        let eps = self.model.config.eps as f32;
        let rms = forms::is_rms(&self.model.config, prefix);
        let hooked = self.tape.intervened(&scale_name) || (record && self.tape.wanted(&scale_name));
        if !hooked {
            return rows::norm_backward(gpu, encoder, rms, x, &scale, &dn, eps, rows::LayerNormStep::Both, &self.scratch(&format!("d scale {:?}", scale.shape()), scale.shape())?, dx, accumulate);
        }
        let d_scale = self.scratch(&format!("d scale {:?}", scale.shape()), scale.shape())?;
        rows::norm_backward(gpu, encoder, rms, x, &scale, &dn, eps, rows::LayerNormStep::Scale, &d_scale, dx, accumulate)?;
        match &dn_query {
            Some(q) => {
                let d_scale_query = self.scratch(&format!("d scale query {:?}", scale.shape()), scale.shape())?;
                rows::norm_backward(gpu, encoder, rms, x, &scale, q, eps, rows::LayerNormStep::Scale, &d_scale_query, dx, accumulate)?;
                if record {
                    self.tape.record(gpu, self.state, encoder, &scale_name, &d_scale_query)?;
                }
            }
            None if record => self.tape.record(gpu, self.state, encoder, &scale_name, &d_scale)?,
            None => {}
        }
        self.tape.through(gpu, encoder, &scale_name, &d_scale)?;
        rows::norm_backward(gpu, encoder, rms, x, &scale, &dn, eps, rows::LayerNormStep::Input, &d_scale, dx, accumulate)
    }

    /// Block `l`'s attention backward on the inputs `xs` of q, k and v given d/d(its output)
    /// `g_attn`: every attention weight's gradient, the hooks from `hook_z` (or `hook_result`)
    /// back to `hook_q`, and the inputs' gradients into `outs`.
    fn attention(&mut self, encoder: &mut Enc, l: usize, xs: [&GpuTensor; 3], g_attn: &GpuTensor, outs: &[heads::InputGrad<'_>]) -> Result<()> {
        if self.fused(l) {
            return self.attention_fused(encoder, l, xs, g_attn, outs);
        }
        let (gpu, model) = (self.gpu, self.model);
        let config = &model.config;
        let p = format!("blocks.{l}");
        let (b, s, h, dh) = (self.batch, self.seq, config.n_heads, config.d_head);
        let (bshd, bhsd) = ([b, s, h, dh], [b, h, s, dh]);
        let z = self.act(&format!("{p}.attn.hook_z"))?;
        let dz = self.scratch("dz", &bshd)?;
        self.output_backward(encoder, l, &z, g_attn, &dz)?;
        self.hook(encoder, &format!("{p}.attn.hook_z"), &dz)?;
        let heads_first = |this: &mut Self, encoder: &mut Enc, t: &GpuTensor, role: &str| -> Result<GpuTensor> {
            let out = this.scratch(role, &bhsd)?;
            permute::swap_axes(gpu, encoder, t, [b, s, h, dh], 1.0, &out, false)?;
            Ok(out)
        };
        let dz_h = heads_first(self, encoder, &dz, "dz heads")?;
        let q_h = heads_first(self, encoder, &self.act(&format!("{p}.attn.hook_q"))?, "q heads")?;
        let k_h = heads_first(self, encoder, &self.act(&format!("{p}.attn.hook_k"))?, "k heads")?;
        let v_h = heads_first(self, encoder, &self.act(&format!("{p}.attn.hook_v"))?, "v heads")?;
        let pattern_name = format!("{p}.attn.hook_pattern");
        let pattern = self.act(&pattern_name)?;
        // pattern @ v masks by index in the forward: an intervention's writes to hidden keys count
        // for nothing there, so they must not here.
        let intervened = self.tape.intervened(&pattern_name);
        let used = if intervened && config.causal {
            let t = self.scratch("pattern used", &[b, h, s, s])?;
            rows::causal_mask(gpu, encoder, &pattern, &t)?;
            t
        } else {
            pattern.clone()
        };
        let dv_h = self.scratch("dv heads", &bhsd)?;
        record_gemm(gpu, encoder, &used, &dz_h, &dv_h, &Gemm { transpose_a: true, ..Gemm::default() })?;
        let dp = self.scratch("d pattern", &[b, h, s, s])?;
        record_gemm(gpu, encoder, &dz_h, &v_h, &dp, &Gemm { transpose_b: true, ..Gemm::default() })?;
        self.hook(encoder, &pattern_name, &dp)?;
        // The pattern before hook_pattern's interventions: the softmax of the scores it saw.
        let before = if intervened {
            let scores = self.act(&format!("{p}.attn.hook_attn_scores"))?;
            let t = self.scratch("pattern before", &[b, h, s, s])?;
            crate::ops::softmax::record_into(gpu, encoder, &scores, &t)?;
            t
        } else {
            pattern
        };
        let ds = self.scratch("d scores", &[b, h, s, s])?;
        rows::softmax_backward(gpu, encoder, &before, &dp, &ds)?;
        self.hook(encoder, &format!("{p}.attn.hook_attn_scores"), &ds)?;
        let dq_h = self.scratch("dq heads", &bhsd)?;
        record_gemm(gpu, encoder, &ds, &k_h, &dq_h, &Gemm::default())?;
        let dk_h = self.scratch("dk heads", &bhsd)?;
        record_gemm(gpu, encoder, &ds, &q_h, &dk_h, &Gemm { transpose_a: true, ..Gemm::default() })?;
        // Back to TransformerLens's [B, S, H, d_head], the score scale folded into q and k's part.
        let scale = config.score_scale(l) as f32;
        let mut d = Vec::with_capacity(3);
        for (name, d_h, factor) in [("q", &dq_h, scale), ("k", &dk_h, scale), ("v", &dv_h, 1.0)] {
            let t = self.scratch(&format!("d{name}"), &bshd)?;
            permute::swap_axes(gpu, encoder, d_h, [b, h, s, dh], factor, &t, false)?;
            d.push(t);
        }
        self.projections_backward(encoder, l, xs, &d, outs)
    }
}
