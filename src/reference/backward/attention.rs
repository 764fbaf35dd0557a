//! Backward of causal attention on the pattern path (the forward is
//! [`crate::reference::attention`]): q \[B,H,Sq,D\], k \[B,H,Sk,D\], v \[B,H,Sk,Dv\],
//! `scores = scale q kᵀ` (masked), `pattern = softmax(scores)`, `out = pattern v`.
//!
//! Given `dout`: `dpattern = dout vᵀ` over every key (as PyTorch differentiates
//! TransformerLens's `einsum` over all keys, so hidden keys get `dout_i · v_j` too, which the
//! softmax backward then ignores); `dv = patternᵀ dout` over the visible keys;
//! `dscores = softmax_backward(pattern, dpattern)` (0 where masked); `dq = scale dscores k`,
//! `dk = scale dscoresᵀ q`. The steps are separate functions so that the model's backward can
//! apply `hook_pattern` and `hook_attn_scores` interventions between them.

use ndarray::{s, ArrayD, ArrayViewD, Ix4};

use super::shape_err;
use super::softmax::softmax_backward;
use crate::error::{fmt_shape, Error, Result};
use crate::reference::attention::{attention_shapes, AttentionDims};

/// Every gradient of one attention call, heads-first layouts.
#[derive(Clone, Debug)]
pub struct AttentionGrads {
    /// d/dq \[B,H,Sq,D\].
    pub dq: ArrayD<f64>,
    /// d/dk \[B,H,Sk,D\].
    pub dk: ArrayD<f64>,
    /// d/dv \[B,H,Sk,Dv\].
    pub dv: ArrayD<f64>,
    /// d/dpattern \[B,H,Sq,Sk\] (every key, see the module header).
    pub dpattern: ArrayD<f64>,
    /// d/dscores \[B,H,Sq,Sk\], 0 where masked.
    pub dscores: ArrayD<f64>,
}

/// `(dpattern, dv)` for `out = pattern v`, given `pattern` \[B,H,Sq,Sk\] (the one the forward
/// used), `v` and `dout` \[B,H,Sq,Dv\]. `dv` sums over the keys each query sees under `causal`.
pub fn output_backward(
    pattern: ArrayViewD<'_, f64>,
    v: ArrayViewD<'_, f64>,
    dout: ArrayViewD<'_, f64>,
    causal: bool,
) -> Result<(ArrayD<f64>, ArrayD<f64>)> {
    let p = pattern.into_dimensionality::<Ix4>().map_err(shape_err)?;
    let v = v.into_dimensionality::<Ix4>().map_err(shape_err)?;
    let dout = dout.into_dimensionality::<Ix4>().map_err(shape_err)?;
    let (b, h, sq, sk) = p.dim();
    let dv_size = v.dim().3;
    if v.dim() != (b, h, sk, dv_size) || dout.dim() != (b, h, sq, dv_size) {
        return Err(Error::Shape(format!(
            "attention backward: pattern is {}, v is {} and dout is {}; they do not fit",
            fmt_shape(p.shape()),
            fmt_shape(v.shape()),
            fmt_shape(dout.shape())
        )));
    }
    let dims = AttentionDims { batch: b, heads: h, sq, sk, d: 0, dv: dv_size };
    let mut dpattern = ndarray::Array4::<f64>::zeros((b, h, sq, sk));
    let mut dv = ndarray::Array4::<f64>::zeros((b, h, sk, dv_size));
    for bi in 0..b {
        for hi in 0..h {
            let vh = v.slice(s![bi, hi, .., ..]);
            let dz = dout.slice(s![bi, hi, .., ..]);
            dpattern.slice_mut(s![bi, hi, .., ..]).assign(&dz.dot(&vh.t()));
            for i in 0..sq {
                let n = dims.visible(causal, i);
                for j in 0..n {
                    let pij = p[[bi, hi, i, j]];
                    dv.slice_mut(s![bi, hi, j, ..]).scaled_add(pij, &dz.row(i));
                }
            }
        }
    }
    Ok((dpattern.into_dyn(), dv.into_dyn()))
}

/// `(dq, dk)` for `scores = scale q kᵀ` given `dscores` \[B,H,Sq,Sk\] (0 where masked).
pub fn scores_backward(
    q: ArrayViewD<'_, f64>,
    k: ArrayViewD<'_, f64>,
    dscores: ArrayViewD<'_, f64>,
    scale: f64,
) -> Result<(ArrayD<f64>, ArrayD<f64>)> {
    let dims = attention_shapes(q.shape(), k.shape(), k.shape())?;
    let want = dims.pattern_shape();
    if dscores.shape() != want {
        return Err(Error::Shape(format!("attention backward: dscores is {} but must be {}", fmt_shape(dscores.shape()), fmt_shape(&want))));
    }
    let q = q.into_dimensionality::<Ix4>().map_err(shape_err)?;
    let k = k.into_dimensionality::<Ix4>().map_err(shape_err)?;
    let ds = dscores.into_dimensionality::<Ix4>().map_err(shape_err)?;
    let mut dq = ndarray::Array4::<f64>::zeros(q.raw_dim());
    let mut dk = ndarray::Array4::<f64>::zeros(k.raw_dim());
    for b in 0..dims.batch {
        for h in 0..dims.heads {
            let d = ds.slice(s![b, h, .., ..]);
            dq.slice_mut(s![b, h, .., ..]).assign(&(d.dot(&k.slice(s![b, h, .., ..])) * scale));
            dk.slice_mut(s![b, h, .., ..]).assign(&(d.t().dot(&q.slice(s![b, h, .., ..])) * scale));
        }
    }
    Ok((dq.into_dyn(), dk.into_dyn()))
}

/// The whole backward of `attention(q, k, v, causal, scale)` given `dout` \[B,H,Sq,Dv\].
pub fn attention_backward(
    q: ArrayViewD<'_, f64>,
    k: ArrayViewD<'_, f64>,
    v: ArrayViewD<'_, f64>,
    causal: bool,
    scale: f64,
    dout: ArrayViewD<'_, f64>,
) -> Result<AttentionGrads> {
    let (_, pattern) = crate::reference::attention::attention(q.view(), k.view(), v.view(), causal, scale)?;
    let (dpattern, dv) = output_backward(pattern.view(), v, dout, causal)?;
    let dscores = softmax_backward(pattern.view(), dpattern.view())?;
    let (dq, dk) = scores_backward(q, k, dscores.view(), scale)?;
    Ok(AttentionGrads { dq, dk, dv, dpattern, dscores })
}
