//! Backward of the token and positional embeddings: scatter-adds in a fixed order.
//!
//! `hook_embed[b, s] = W_E[tokens[b, s]]`, so `dW_E[t] = Σ_{(b, s): tokens[b, s] = t}
//! d_embed[b, s]`, added in (b, s) order; `hook_pos_embed[b, s] = W_pos[s]`, so `dW_pos[s] =
//! Σ_b d_pos[b, s]` and the rows past the sequence length are 0. A fixed order gives the same
//! bits on every run (what the GPU kernel must match exactly, not just within a tolerance).

use ndarray::{s, ArrayD, ArrayViewD, Ix2, Ix3};

use super::shape_err;
use crate::error::{fmt_shape, Error, Result};

/// `dW_E` \[d_vocab, d_model\] from `tokens` \[B, S\] and `d_embed` \[B, S, d_model\].
pub fn embedding_backward(tokens: ArrayViewD<'_, i64>, d_embed: ArrayViewD<'_, f64>, d_vocab: usize) -> Result<ArrayD<f64>> {
    let tokens = tokens.into_dimensionality::<Ix2>().map_err(|_| Error::Shape("tokens must be [B, S]".into()))?;
    let d = d_embed.into_dimensionality::<Ix3>().map_err(shape_err)?;
    let (b, s_len, dm) = d.dim();
    if tokens.dim() != (b, s_len) {
        return Err(Error::Shape(format!(
            "embedding backward: tokens are {} but d_embed is {}",
            fmt_shape(tokens.shape()),
            fmt_shape(d.shape())
        )));
    }
    let mut dw = crate::reference::filled(&[d_vocab, dm], 0.0, "dW_E")?.into_dimensionality::<Ix2>().map_err(shape_err)?;
    for ((bi, si), &t) in tokens.indexed_iter() {
        if t < 0 || t as u64 >= d_vocab as u64 {
            return Err(Error::Input(format!("token {t} at [{bi}, {si}] is out of range: token ids must lie in [0, {d_vocab})")));
        }
        dw.row_mut(t as usize).scaled_add(1.0, &d.slice(s![bi, si, ..]));
    }
    Ok(dw.into_dyn())
}

/// `dW_pos` \[n_ctx, d_model\] from `d_pos` \[B, S, d_model\] (S ≤ n_ctx).
pub fn pos_embedding_backward(d_pos: ArrayViewD<'_, f64>, n_ctx: usize) -> Result<ArrayD<f64>> {
    let d = d_pos.into_dimensionality::<Ix3>().map_err(shape_err)?;
    let (b, s_len, dm) = d.dim();
    if s_len > n_ctx {
        return Err(Error::Shape(format!("d_pos has {s_len} positions but n_ctx is {n_ctx}")));
    }
    let mut dw = crate::reference::filled(&[n_ctx, dm], 0.0, "dW_pos")?.into_dimensionality::<Ix2>().map_err(shape_err)?;
    for bi in 0..b {
        for si in 0..s_len {
            dw.row_mut(si).scaled_add(1.0, &d.slice(s![bi, si, ..]));
        }
    }
    Ok(dw.into_dyn())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{arr2, Array3};

    #[test]
    fn repeated_tokens_add_and_unused_rows_stay_zero() {
        let tokens = arr2(&[[2i64, 0, 2]]).into_dyn();
        let d = Array3::from_shape_vec((1, 3, 2), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap().into_dyn();
        let dw = embedding_backward(tokens.view(), d.view(), 4).unwrap();
        assert_eq!(dw, arr2(&[[3.0, 4.0], [0.0, 0.0], [6.0, 8.0], [0.0, 0.0]]).into_dyn());
        let dp = pos_embedding_backward(d.view(), 4).unwrap();
        assert_eq!(dp.shape(), &[4, 2]);
        assert_eq!(dp[[3, 1]], 0.0);
        let e = embedding_backward(tokens.view(), d.view(), 2).unwrap_err().to_string();
        assert!(e.contains("token 2 at [0, 0]"), "{e}");
    }
}
