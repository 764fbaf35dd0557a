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
//!
//! [`flash_backward`] is the fused path's twin: it never holds a pattern, but recomputes each
//! entry from the forward's saved row statistics ([`row_stats`]: the maximum `m_i` of the visible
//! scores and `l_i = Σ_j exp(s_ij - m_i)`), as `P_ij = exp(s_ij - m_i) / l_i`, and uses
//! `D_i = dout_i · out_i` for the softmax backward: `dS_ij = P_ij (dout_i · v_j - D_i)`.

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

/// The fused forward's saved statistics of each query row, \[B,H,Sq\] each.
#[derive(Clone, Debug)]
pub struct RowStats {
    /// `m_i`: the maximum of the visible scores (`-inf` for a row that sees no key).
    pub max: ArrayD<f64>,
    /// `l_i = Σ_j exp(s_ij - m_i)` over the visible keys (0 for a row that sees no key).
    pub sum: ArrayD<f64>,
}

/// The row statistics of `scores = scale q kᵀ` under the (bottom-right) causal mask.
pub fn row_stats(q: ArrayViewD<'_, f64>, k: ArrayViewD<'_, f64>, causal: bool, scale: f64) -> Result<RowStats> {
    let scores = crate::reference::attention::attention_scores(q.view(), k.view(), k.view(), causal, scale)?;
    let scores = scores.into_dimensionality::<Ix4>().map_err(shape_err)?;
    let (b, h, sq, _) = scores.dim();
    let mut max = ndarray::Array3::<f64>::from_elem((b, h, sq), f64::NEG_INFINITY);
    let mut sum = ndarray::Array3::<f64>::zeros((b, h, sq));
    for ((bi, hi, i), m) in max.indexed_iter_mut() {
        let row = scores.slice(s![bi, hi, i, ..]);
        *m = row.fold(f64::NEG_INFINITY, |a, &v| a.max(v));
        if *m > f64::NEG_INFINITY {
            sum[[bi, hi, i]] = row.iter().map(|&v| (v - *m).exp()).sum();
        }
    }
    Ok(RowStats { max: max.into_dyn(), sum: sum.into_dyn() })
}

/// A rank-4 view (shapes already checked).
fn four(a: ArrayViewD<'_, f64>) -> Result<ndarray::ArrayView4<'_, f64>> {
    a.into_dimensionality::<Ix4>().map_err(shape_err)
}

/// `(dq, dk, dv)` of attention from the forward's `out` and row statistics, recomputing the
/// pattern entry by entry (the fused backward's float64 twin).
#[allow(clippy::too_many_arguments)]
pub fn flash_backward(
    q: ArrayViewD<'_, f64>,
    k: ArrayViewD<'_, f64>,
    v: ArrayViewD<'_, f64>,
    out: ArrayViewD<'_, f64>,
    dout: ArrayViewD<'_, f64>,
    stats: &RowStats,
    causal: bool,
    scale: f64,
) -> Result<(ArrayD<f64>, ArrayD<f64>, ArrayD<f64>)> {
    let dims = attention_shapes(q.shape(), k.shape(), v.shape())?;
    let rows = [dims.batch, dims.heads, dims.sq];
    for (name, shape) in [("out", out.shape()), ("dout", dout.shape())] {
        if shape != dims.out_shape() {
            return Err(Error::Shape(format!("flash backward: {name} is {} but must be {}", fmt_shape(shape), fmt_shape(&dims.out_shape()))));
        }
    }
    for (name, shape) in [("row max", stats.max.shape()), ("row sum", stats.sum.shape())] {
        if shape != rows {
            return Err(Error::Shape(format!("flash backward: {name} is {} but must be {}", fmt_shape(shape), fmt_shape(&rows))));
        }
    }
    let (q, k, v, out, dout) = (four(q)?, four(k)?, four(v)?, four(out)?, four(dout)?);
    let mut dq = ndarray::Array4::<f64>::zeros(q.raw_dim());
    let mut dk = ndarray::Array4::<f64>::zeros(k.raw_dim());
    let mut dv = ndarray::Array4::<f64>::zeros(v.raw_dim());
    for b in 0..dims.batch {
        for h in 0..dims.heads {
            for i in 0..dims.sq {
                let (m, l) = (stats.max[[b, h, i]], stats.sum[[b, h, i]]);
                if l == 0.0 || m == f64::NEG_INFINITY {
                    continue;
                }
                let (qi, doi) = (q.slice(s![b, h, i, ..]), dout.slice(s![b, h, i, ..]));
                let d_i = doi.dot(&out.slice(s![b, h, i, ..]));
                for j in 0..dims.visible(causal, i) {
                    let kj = k.slice(s![b, h, j, ..]);
                    let p = (scale * qi.dot(&kj) - m).exp() / l;
                    let ds = p * (doi.dot(&v.slice(s![b, h, j, ..])) - d_i);
                    dq.slice_mut(s![b, h, i, ..]).scaled_add(scale * ds, &kj);
                    dk.slice_mut(s![b, h, j, ..]).scaled_add(scale * ds, &qi);
                    dv.slice_mut(s![b, h, j, ..]).scaled_add(p, &doi);
                }
            }
        }
    }
    Ok((dq.into_dyn(), dk.into_dyn(), dv.into_dyn()))
}
