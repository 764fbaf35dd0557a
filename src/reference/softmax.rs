//! Host reference for `softmax` along the last axis, in float64 (its shape check, shared with the GPU
//! op, is [`crate::spec::softmax::check_shape`]).
//!
//! Each row is shifted by its maximum before `exp`, so logits of any finite magnitude work; `-inf`
//! entries give 0 and a row that is entirely `-inf` gives all 0 (not `0/0`). Otherwise NaN and
//! `+inf` behave as in numpy: a row holding either is NaN throughout (`inf - inf` is NaN).

use ndarray::{ArrayD, ArrayViewD, Axis};

pub use crate::spec::softmax::check_shape;

use crate::error::Result;

/// `softmax(x)` along the last axis, in float64.
pub fn softmax(x: ArrayViewD<'_, f64>) -> Result<ArrayD<f64>> {
    check_shape(x.shape())?;
    let mut out = x.to_owned();
    if out.is_empty() {
        return Ok(out);
    }
    let last = Axis(out.ndim() - 1);
    for mut row in out.lanes_mut(last) {
        // numpy's max: a NaN anywhere makes the maximum (and so the whole row) NaN.
        let max = row.fold(f64::NEG_INFINITY, |m, &v| if v > m || v.is_nan() { v } else { m });
        if max == f64::NEG_INFINITY {
            // Every entry is -inf (or the row is empty): all zero rather than 0/0.
            row.fill(0.0);
            continue;
        }
        row.mapv_inplace(|v| (v - max).exp());
        let sum: f64 = row.sum();
        row.mapv_inplace(|e| e / sum);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{arr1, arr2, IxDyn};

    #[test]
    fn shifts_by_the_maximum() {
        let x = arr2(&[[3e38, -3e38, 3e38], [1.0, 2.0, 3.0]]).into_dyn();
        let y = softmax(x.view()).unwrap();
        assert_eq!(y[[0, 0]], 0.5);
        assert_eq!(y[[0, 1]], 0.0);
        let e = [(-2.0f64).exp(), (-1.0f64).exp(), 1.0];
        let s: f64 = e.iter().sum();
        assert!((y[[1, 2]] - 1.0 / s).abs() < 1e-15);
    }

    #[test]
    fn neg_inf_entries_and_rows_give_zero() {
        let inf = f64::INFINITY;
        let x = arr2(&[[-inf, -inf], [-inf, 0.0]]).into_dyn();
        let y = softmax(x.view()).unwrap();
        assert_eq!(y, arr2(&[[0.0, 0.0], [0.0, 1.0]]).into_dyn());
    }

    #[test]
    fn scalar_is_an_error() {
        let x = ArrayD::<f64>::zeros(IxDyn(&[]));
        let e = softmax(x.view()).unwrap_err().to_string();
        assert!(e.contains("rank >= 1") && e.contains("[]"), "{e}");
        assert_eq!(softmax(arr1(&[5.0]).into_dyn().view()).unwrap()[[0]], 1.0);
    }
}
