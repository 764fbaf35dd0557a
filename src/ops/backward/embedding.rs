//! Token and positional embedding backward (`shaders/embed_backward.wgsl`), as ordered gathers
//! rather than scatter-adds: `dW_E[v]` sums the gradient rows of the positions holding token `v`
//! in (b, s) order, `dW_pos[s]` sums over the batch in order. No float atomics, so the same bits
//! on every run. The host sorts the positions by token ([`TokenIndex`], a stable counting sort of
//! the token ids it already holds). Float64 twins: [`crate::reference::backward::embedding`].

use super::{count, launch, Params, ACCUMULATE, EMBED};
use crate::error::{fmt_shape, Error, Result};
use crate::gpu::Gpu;
use crate::tensor::GpuTensor;

/// Positions grouped by token: `offsets[v]..offsets[v + 1]` index `positions`, ascending.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenIndex {
    /// \[d_vocab + 1\].
    pub offsets: Vec<u32>,
    /// \[B·S\], the positions of token 0, then of token 1, ….
    pub positions: Vec<u32>,
}

impl TokenIndex {
    /// Groups the flat positions of `tokens` by id (each must be `< d_vocab`).
    pub fn new(tokens: &[u32], d_vocab: usize) -> Result<Self> {
        let mut offsets = vec![0u32; d_vocab + 1];
        for (p, &t) in tokens.iter().enumerate() {
            if t as usize >= d_vocab {
                return Err(Error::Input(format!("token {t} at flat position {p} is out of range: token ids must lie in [0, {d_vocab})")));
            }
            offsets[t as usize + 1] += 1;
        }
        for v in 0..d_vocab {
            offsets[v + 1] += offsets[v];
        }
        let mut next = offsets.clone();
        let mut positions = vec![0u32; tokens.len()];
        for (p, &t) in tokens.iter().enumerate() {
            positions[next[t as usize] as usize] = p as u32;
            next[t as usize] += 1;
        }
        Ok(Self { offsets, positions })
    }
}

/// Records `dW_E` \[d_vocab, d_model\] (+)= the gather of `d` \[B, S, d_model\] by the token
/// index held in `offsets` and `positions` (see [`TokenIndex`]).
pub fn embed_backward(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    d: &GpuTensor,
    offsets: &wgpu::Buffer,
    positions: &wgpu::Buffer,
    dw: &GpuTensor,
    accumulate: bool,
) -> Result<()> {
    let &[vocab, dm] = dw.shape() else { return Err(Error::Shape(format!("dW_E is {} but must be [d_vocab, d_model]", fmt_shape(dw.shape())))) };
    if d.shape().last() != Some(&dm) || offsets.size() < ((vocab + 1) * 4) as u64 {
        return Err(Error::Shape(format!("embedding backward: d is {} but dW_E is {}", fmt_shape(d.shape()), fmt_shape(dw.shape()))));
    }
    let flags = if accumulate { ACCUMULATE } else { 0 };
    let params = Params { n: count(vocab * dm, "embedding backward")?, cols: dm as u32, flags, ..Params::default() };
    launch(gpu, encoder, EMBED, "embed_backward", params, &[d.buffer(), dw.buffer(), offsets, positions], u64::from(params.n), 256)
}

/// Records `dW_pos` \[n_ctx, d_model\] (+)= `Σ_b d[b, s]` for `d` \[B, S, d_model\] (0 past S).
pub fn pos_embed_backward(gpu: &Gpu, encoder: &mut wgpu::CommandEncoder, d: &GpuTensor, dw: &GpuTensor, accumulate: bool) -> Result<()> {
    let (&[n_ctx, dm], &[batch, seq, d_dm]) = (dw.shape(), d.shape()) else {
        return Err(Error::Shape(format!("positional embedding backward: d is {} and dW_pos {}", fmt_shape(d.shape()), fmt_shape(dw.shape()))));
    };
    if d_dm != dm || seq > n_ctx {
        return Err(Error::Shape(format!("positional embedding backward: d is {} but dW_pos is {}", fmt_shape(d.shape()), fmt_shape(dw.shape()))));
    }
    let flags = if accumulate { ACCUMULATE } else { 0 };
    let params = Params { n: count(n_ctx * dm, "positional embedding backward")?, rows: batch as u32, cols: dm as u32, flags, a: seq as u32, ..Params::default() };
    launch(gpu, encoder, EMBED, "pos_embed_backward", params, &[d.buffer(), dw.buffer()], u64::from(params.n), 256)
}
