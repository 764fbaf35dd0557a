//! Backward of `softmax` along the last axis, and the causal softmax the attention pattern uses.
//!
//! For `y = softmax(x)`: `dx = y ⊙ (dy - Σ_k y_k dy_k)` per row. Masked entries (`y = 0`, from
//! `-inf` scores) get 0 whatever `dy` holds there, which is what PyTorch's softmax backward gives
//! TransformerLens. The forward is [`crate::reference::softmax`]; [`causal_softmax`] is the
//! pattern's forward (the same as the model reference's), kept here beside its backward.

use ndarray::{s, ArrayD, ArrayViewD, Axis, Zip};

use super::same_shape;
use crate::error::Result;
use crate::spec::attention::visible_keys;

/// `dx` for `y = softmax(x)` along the last axis, given `y` and `dy` of one shape.
pub fn softmax_backward(y: ArrayViewD<'_, f64>, dy: ArrayViewD<'_, f64>) -> Result<ArrayD<f64>> {
    same_shape("softmax backward dy", dy.shape(), y.shape())?;
    crate::reference::softmax::check_shape(y.shape())?;
    let mut dx = dy.to_owned();
    if dx.is_empty() {
        return Ok(dx);
    }
    let last = Axis(y.ndim() - 1);
    for (mut row, y_row) in dx.lanes_mut(last).into_iter().zip(y.lanes(last)) {
        let dot: f64 = Zip::from(&row).and(&y_row).fold(0.0, |acc, &d, &p| acc + d * p);
        Zip::from(&mut row).and(&y_row).for_each(|d, &p| *d = p * (*d - dot));
    }
    Ok(dx)
}

/// The causal softmax of scores \[..., S, S\] (query `i` sees keys `j <= i`), shifted by the
/// maximum of the visible scores; hidden keys give 0, and so does a row whose visible scores are
/// all `-inf` (TransformerLens turns that row's NaN into 0).
pub fn causal_softmax(scores: ArrayViewD<'_, f64>) -> ArrayD<f64> {
    let mut pattern = scores.to_owned();
    let Some(&seq) = scores.shape().get(scores.ndim().wrapping_sub(2)) else {
        return pattern;
    };
    let last = Axis(scores.ndim() - 1);
    for (n, mut row) in pattern.lanes_mut(last).into_iter().enumerate() {
        let seen = visible_keys(true, seq, seq, n % seq.max(1)).min(row.len());
        let max = row.slice(s![..seen]).fold(f64::NEG_INFINITY, |m, &v| m.max(v));
        if max == f64::NEG_INFINITY {
            row.fill(0.0);
            continue;
        }
        row.slice_mut(s![..seen]).mapv_inplace(|v| (v - max).exp());
        let sum = row.slice(s![..seen]).sum();
        row.slice_mut(s![..seen]).mapv_inplace(|v| v / sum);
        row.slice_mut(s![seen..]).fill(0.0);
    }
    pattern
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::arr2;

    #[test]
    fn gradient_rows_sum_to_zero_and_masked_entries_are_zero() {
        let scores = arr2(&[[0.5, f64::NEG_INFINITY], [1.0, -2.0]]).into_dyn();
        let y = causal_softmax(scores.view());
        let dy = arr2(&[[3.0, 7.0], [1.0, -4.0]]).into_dyn();
        let dx = softmax_backward(y.view(), dy.view()).unwrap();
        assert_eq!(dx[[0, 0]], 0.0);
        assert_eq!(dx[[0, 1]], 0.0);
        assert!((dx[[1, 0]] + dx[[1, 1]]).abs() < 1e-15);
        let e = softmax_backward(y.view(), dy.slice(s![.., ..1]).into_dyn()).unwrap_err().to_string();
        assert!(e.contains("[2, 1] but the activation is [2, 2]"), "{e}");
    }
}
