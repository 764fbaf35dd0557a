//! One transformer block of the GPU forward pass: attention (projections, causal attention,
//! output projection) and the MLP, with every hook between them.
//!
//! Every projection is the autotuned matmul with the bias fused ([`crate::ops::matmul::record_gemm`]):
//! q, k and v multiply x \[B·S, d_model\] by `W_Q`, `W_K`, `W_V` packed as \[d_model, H·d_head\]
//! (at load), so they come out in TransformerLens's \[B, S, H, d_head\] layout; `W_O` viewed as
//! \[H·d_head, d_model\] makes `Σ_h z_h W_O[h] + b_O` one product, and `W_in`, `W_out` and `W_U`
//! are plain `x W + b`. Attention
//! takes the fused path (no S×S matrix) unless the scores or the pattern are cached or changed;
//! then the unfused path hands the pattern buffer to the hooks twice, when it holds the scores
//! and when it holds the pattern, before it is used.

use crate::error::Result;
use crate::ops::attention::kernels::{record_problem_staged, Problem, Stage, Strides};
use crate::ops::gelu;
use crate::ops::matmul::{self, Gemm};
use crate::spec::attention::AttentionDims;
use crate::tensor::GpuTensor;
use crate::transformer::config::Activation;
use crate::transformer::{kernels, variant_kernels};

use super::Pass;

/// Records block `l` on the residual stream `resid` (its `hook_resid_pre`, already hooked) and
/// returns the block's `hook_resid_post`.
pub(super) fn record_block(pass: &mut Pass<'_>, encoder: &mut wgpu::CommandEncoder, l: usize, resid: GpuTensor) -> Result<GpuTensor> {
    let model = pass.model;
    let block = &model.weights.blocks[l];
    let p = format!("blocks.{l}");
    let inputs = if model.config.optional_hooks.per_head_inputs() {
        let [q, k, v] = pass.per_head_inputs(encoder, &p, &resid, block.ln1.as_ref())?;
        match pass.shortformer_pos.clone() {
            Some(pos) => [pass.shortformer_heads(encoder, &q, &pos, "q_in_pos")?, pass.shortformer_heads(encoder, &k, &pos, "k_in_pos")?, v],
            None => [q, k, v],
        }
    } else {
        let x = pass.layer_norm(encoder, &format!("{p}.ln1"), &resid, block.ln1.as_ref())?;
        match pass.shortformer_pos.clone() {
            Some(pos) => {
                let qk = pass.shortformer_qk(encoder, &x, &pos)?;
                [qk.clone(), qk, x]
            }
            None => [x.clone(), x.clone(), x],
        }
    };
    let attn_out = attention(pass, encoder, &p, &inputs, l)?;
    let shape = pass.resid_shape();

    let Some(mlp) = &block.mlp else {
        let role = pass.other_resid(&resid)?;
        let post_name = format!("{p}.hook_resid_post");
        let post = pass.target(&post_name, role, &shape)?;
        kernels::add(pass.gpu, encoder, &resid, &attn_out, &post)?;
        pass.hook(encoder, &post_name, &post)?;
        return Ok(post);
    };
    let mid_name = format!("{p}.hook_resid_mid");
    let role = pass.other_resid(&resid)?;
    // parallel_attn_mlp: resid_pre + attn_out is not a hook, and the MLP reads ln2(resid_pre).
    let parallel = model.config.parallel_attn_mlp;
    let mid = if parallel { pass.scratch(role, &shape)? } else { pass.target(&mid_name, role, &shape)? };
    kernels::add(pass.gpu, encoder, &resid, &attn_out, &mid)?;
    if !parallel {
        pass.hook(encoder, &mid_name, &mid)?;
    }

    let ln2_in = if parallel { &resid } else { &mid };
    let ln2_in = if model.config.optional_hooks.mlp_in {
        pass.identity(encoder, &format!("{p}.hook_mlp_in"), ln2_in.clone())?
    } else {
        ln2_in.clone()
    };
    let x = pass.layer_norm(encoder, &format!("{p}.ln2"), &ln2_in, block.ln2.as_ref())?;
    let d_mlp = mlp.b_in.len();
    let hidden = [pass.batch, pass.seq, d_mlp];
    let pre_name = format!("{p}.mlp.hook_pre");
    let pre = pass.target(&pre_name, "mlp_pre", &hidden)?;
    linear(pass, encoder, &x, &mlp.w_in, &mlp.b_in, &pre)?;
    pass.hook(encoder, &pre_name, &pre)?;
    let post_name = format!("{p}.mlp.hook_post");
    let post = pass.target(&post_name, "mlp_post", &hidden)?;
    match (model.config.act_fn, model.config.act_fn.gelu()) {
        (Activation::Solu | Activation::SoluLn, _) => pass.solu_mlp(encoder, &p, &pre, l, &post)?,
        (_, Some(kind)) => gelu::record_into(pass.gpu, encoder, kind, &pre, &post)?,
        (_, None) => kernels::columns(pass.gpu, encoder, &pre, None, None, true, &post)?,
    }
    pass.hook(encoder, &post_name, &post)?;
    let out_name = format!("{p}.hook_mlp_out");
    let mlp_out = pass.target(&out_name, "block_out", &shape)?;
    linear(pass, encoder, &post, &mlp.w_out, &mlp.b_out, &mlp_out)?;
    pass.hook(encoder, &out_name, &mlp_out)?;

    let resid_name = format!("{p}.hook_resid_post");
    let role = pass.other_resid(&mid)?;
    let resid_post = pass.target(&resid_name, role, &shape)?;
    kernels::add(pass.gpu, encoder, &mid, &mlp_out, &resid_post)?;
    pass.hook(encoder, &resid_name, &resid_post)?;
    Ok(resid_post)
}

/// The attention of block `l` on the normalised inputs of q, k and v (\[B, S, d_model\], or
/// \[B, S, H, d_model\] per head), through the hooks from `hook_q` to `hook_attn_out`; returns the
/// (hooked) `hook_attn_out`.
fn attention(pass: &mut Pass<'_>, encoder: &mut wgpu::CommandEncoder, p: &str, inputs: &[GpuTensor; 3], l: usize) -> Result<GpuTensor> {
    let model = pass.model;
    let w = &model.weights.blocks[l].attn;
    let config = &model.config;
    let (batch, seq, dm, heads, d_head) = (pass.batch, pass.seq, config.d_model, config.n_heads, config.d_head);
    let rows = batch * seq;
    let head_shape = [batch, seq, heads, d_head];
    let mut qkv = Vec::with_capacity(3);
    let packed = &model.packed[l];
    let per_head = [&w.w_q, &w.w_k, &w.w_v];
    for (i, (suffix, role, bias)) in [("q", "q", &w.b_q), ("k", "k", &w.b_k), ("v", "v", &w.b_v)].into_iter().enumerate() {
        let name = format!("{p}.attn.hook_{suffix}");
        let t = pass.target(&name, role, &head_shape)?;
        let cols = heads * d_head;
        let x = &inputs[i];
        if x.shape().len() == 4 {
            variant_kernels::project_heads(pass.gpu, encoder, x, per_head[i], Some(bias), &t)?;
        } else {
            project(pass, encoder, &x.reshaped(&[rows, dm])?, &packed[i], &bias.reshaped(&[cols])?, &t.reshaped(&[rows, cols])?)?;
        }
        pass.hook(encoder, &name, &t)?;
        qkv.push(t);
    }
    let (scores_name, pattern_name) = (format!("{p}.attn.hook_attn_scores"), format!("{p}.attn.hook_pattern"));
    let z_name = format!("{p}.attn.hook_z");
    let z = pass.target(&z_name, "z", &head_shape)?;
    let pattern = if pass.wanted(&scores_name) || pass.wanted(&pattern_name) {
        Some(pass.target(&pattern_name, "pattern", &[batch, heads, seq, seq])?)
    } else {
        None
    };
    // The backward's forward keeps the fused path's row statistics (see `backward_attention.rs`).
    let row_stats = if pattern.is_none() { pass.scratch.row_stats.get(l).cloned().flatten() } else { None };
    let strides = Strides::bshc(heads, seq, d_head);
    let problem = Problem {
        dims: AttentionDims { batch, heads, sq: seq, sk: seq, d: d_head, dv: d_head },
        causal: config.causal,
        scale: config.score_scale(l) as f32,
        q: (&qkv[0], strides),
        k: (&qkv[1], strides),
        v: (&qkv[2], strides),
        out: (&z, strides),
        row_stats: row_stats.as_ref(),
    };
    let gpu = pass.gpu;
    record_problem_staged(gpu, encoder, &problem, pattern.as_ref(), None, &mut |encoder, stage, t| match stage {
        Stage::Scores => pass.hook_transient(encoder, &scores_name, t),
        Stage::Pattern => pass.hook(encoder, &pattern_name, t),
    })?;
    pass.hook(encoder, &z_name, &z)?;
    let out_name = format!("{p}.hook_attn_out");
    let out = pass.target(&out_name, "block_out", &[batch, seq, dm])?;
    let inner = heads * d_head;
    if pass.attn_result {
        pass.attn_result(encoder, p, &z, l, &out)?;
    } else {
        project(pass, encoder, &z.reshaped(&[rows, inner])?, &w.w_o.reshaped(&[inner, dm])?, &w.b_o, &out.reshaped(&[rows, dm])?)?;
    }
    pass.hook(encoder, &out_name, &out)?;
    Ok(out)
}

/// Records `out = x W + b` for x \[B, S, n\], W \[n, m\], b \[m\], out \[B, S, m\].
pub(super) fn linear(
    pass: &Pass<'_>,
    encoder: &mut wgpu::CommandEncoder,
    x: &GpuTensor,
    w: &GpuTensor,
    b: &GpuTensor,
    out: &GpuTensor,
) -> Result<()> {
    let (n, m) = (w.shape()[0], w.shape()[1]);
    let rows = x.len() / n.max(1);
    project(pass, encoder, &x.reshaped(&[rows, n])?, w, b, &out.reshaped(&[rows, m])?)
}

/// Records `out = x w + b` for x \[rows, n\], w \[n, m\], b \[m\], out \[rows, m\].
fn project(pass: &Pass<'_>, encoder: &mut wgpu::CommandEncoder, x: &GpuTensor, w: &GpuTensor, b: &GpuTensor, out: &GpuTensor) -> Result<()> {
    matmul::record_gemm(pass.gpu, encoder, x, w, out, &Gemm { bias: Some(b), ..Gemm::default() })
}
