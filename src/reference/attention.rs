//! Host reference for `attention`, in float64: `pattern = softmax(scale q kᵀ, masked)`,
//! `out = pattern v`, with SPEC's bottom-right causal mask.
//!
//! Each row's softmax is shifted by the maximum over the keys that row sees, so logits of any
//! magnitude stay exact; a query that sees no key (causal with `Sq > Sk`) gets a zero pattern row
//! and a zero output row. [`attention_shapes`] ([`crate::spec::attention`]) is the one shape
//! check: the GPU op imports it too, so host and GPU reject the same inputs with the same words.

use ndarray::{s, ArrayD, ArrayView4, ArrayViewD, Ix4};

pub use crate::spec::attention::{attention_shapes, AttentionDims};

use crate::error::{Error, Result};

/// The pre-softmax scores `scale q kᵀ` \[B,H,Sq,Sk\], `-inf` where the causal mask hides a key
/// (TransformerLens's `hook_attn_scores`). `v` is only checked, so that the shapes agree with
/// [`attention`]'s.
pub fn attention_scores(
    q: ArrayViewD<'_, f64>,
    k: ArrayViewD<'_, f64>,
    v: ArrayViewD<'_, f64>,
    causal: bool,
    scale: f64,
) -> Result<ArrayD<f64>> {
    let (dims, q, k, _) = views(q, k, v)?;
    let scores = super::filled(&dims.pattern_shape(), f64::NEG_INFINITY, "attention scores")?;
    let mut scores = scores.into_dimensionality::<Ix4>().map_err(|e| Error::Shape(e.to_string()))?;
    if scores.is_empty() {
        return Ok(scores.into_dyn());
    }
    for b in 0..dims.batch {
        for h in 0..dims.heads {
            for i in 0..dims.sq {
                let qi = q.slice(s![b, h, i, ..]);
                for j in 0..dims.visible(causal, i) {
                    scores[[b, h, i, j]] = scale * qi.dot(&k.slice(s![b, h, j, ..]));
                }
            }
        }
    }
    Ok(scores.into_dyn())
}

/// Attention in float64: returns `(out [B,H,Sq,Dv], pattern [B,H,Sq,Sk])`.
pub fn attention(
    q: ArrayViewD<'_, f64>,
    k: ArrayViewD<'_, f64>,
    v: ArrayViewD<'_, f64>,
    causal: bool,
    scale: f64,
) -> Result<(ArrayD<f64>, ArrayD<f64>)> {
    let scores = attention_scores(q.view(), k.view(), v.view(), causal, scale)?;
    let (dims, _, _, v) = views(q, k, v)?;
    let mut pattern = scores.into_dimensionality::<Ix4>().map_err(|e| Error::Shape(e.to_string()))?;
    let out = super::filled(&dims.out_shape(), 0.0, "attention out")?;
    let mut out = out.into_dimensionality::<Ix4>().map_err(|e| Error::Shape(e.to_string()))?;
    if out.is_empty() && pattern.is_empty() {
        return Ok((out.into_dyn(), pattern.into_dyn()));
    }
    for b in 0..dims.batch {
        for h in 0..dims.heads {
            for i in 0..dims.sq {
                let n = dims.visible(causal, i);
                let mut row = pattern.slice_mut(s![b, h, i, ..]);
                // Shift by the maximum over the visible keys: exp never overflows and the largest
                // term is exactly 1, whatever the logits' magnitude. As in numpy, a NaN maximum
                // (or an infinite one, through inf - inf) makes the row NaN; a row that sees no
                // key, or only -inf scores, is all 0 (SPEC's softmax of an all -inf row).
                let max = row.slice(s![..n]).fold(f64::NEG_INFINITY, |m, &x| if x > m || x.is_nan() { x } else { m });
                if max == f64::NEG_INFINITY {
                    row.fill(0.0);
                    continue;
                }
                row.slice_mut(s![..n]).mapv_inplace(|x| (x - max).exp());
                let sum = row.slice(s![..n]).sum();
                row.slice_mut(s![..n]).mapv_inplace(|x| x / sum);
                // numpy's hidden entries are exp(-inf) / sum: 0, or NaN when the sum is NaN.
                row.slice_mut(s![n..]).fill(if sum.is_nan() { f64::NAN } else { 0.0 });
                let p = row.slice(s![..n]);
                out.slice_mut(s![b, h, i, ..]).assign(&p.dot(&v.slice(s![b, h, ..n, ..])));
            }
        }
    }
    Ok((out.into_dyn(), pattern.into_dyn()))
}

type Views<'a> = (AttentionDims, ArrayView4<'a, f64>, ArrayView4<'a, f64>, ArrayView4<'a, f64>);

/// Checks the shapes and views the three inputs as rank-4 arrays.
fn views<'a>(q: ArrayViewD<'a, f64>, k: ArrayViewD<'a, f64>, v: ArrayViewD<'a, f64>) -> Result<Views<'a>> {
    let dims = attention_shapes(q.shape(), k.shape(), v.shape())?;
    let four = |a: ArrayViewD<'a, f64>| a.into_dimensionality::<Ix4>().map_err(|e| Error::Shape(e.to_string()));
    Ok((dims, four(q)?, four(k)?, four(v)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array, IxDyn};

    #[test]
    fn causal_mask_is_bottom_right() {
        let dims = AttentionDims { batch: 1, heads: 1, sq: 3, sk: 5, d: 1, dv: 1 };
        assert_eq!((0..3).map(|i| dims.visible(true, i)).collect::<Vec<_>>(), [3, 4, 5]);
        let dims = AttentionDims { sq: 5, sk: 3, ..dims };
        assert_eq!((0..5).map(|i| dims.visible(true, i)).collect::<Vec<_>>(), [0, 0, 1, 2, 3]);
    }

    #[test]
    fn peaky_rows_are_one_hot_and_unseen_rows_zero() {
        let q = Array::from_shape_vec(IxDyn(&[1, 1, 3, 1]), vec![1.0, 1.0, 1.0]).unwrap();
        let k = Array::from_shape_vec(IxDyn(&[1, 1, 2, 1]), vec![-400.0, 400.0]).unwrap();
        let v = Array::from_shape_vec(IxDyn(&[1, 1, 2, 1]), vec![2.0, 3.0]).unwrap();
        let (out, pattern) = attention(q.view(), k.view(), v.view(), true, 1.0).unwrap();
        assert_eq!(pattern.as_slice().unwrap(), &[0.0, 0.0, 1.0, 0.0, 0.0, 1.0]);
        assert_eq!(out.as_slice().unwrap(), &[0.0, 2.0, 3.0]);
    }

    #[test]
    fn shape_errors_name_arrays() {
        let e = attention_shapes(&[1, 2, 3, 16], &[1, 2, 5, 8], &[1, 2, 5, 8]).unwrap_err();
        assert_eq!(e.to_string(), "k is [1, 2, 5, 8] but q is [1, 2, 3, 16]: head dims 8 and 16 differ");
        let e = attention_shapes(&[2, 3], &[1, 2, 5, 8], &[1, 2, 5, 8]).unwrap_err();
        assert_eq!(e.to_string(), "q is [2, 3] but attention needs a rank-4 q [B, H, Sq, D]");
    }
}
