//! Host reference for `layer_norm` over the last axis, in float64 (its shape checks, shared with the
//! GPU op, are in [`crate::spec::layer_norm`]).
//!
//! `out = (x - mean) / scale * w + b` with `scale = sqrt(var + eps)` and the biased variance. The
//! mean is refined by a second pass (`mean += mean(x - mean)`) before the squared deviations are
//! summed, so rows whose mean is far larger than their spread keep their spread. Without `w` and
//! `b` this is TransformerLens's `LNPre`; `scale` is what TransformerLens caches as `hook_scale`.

use ndarray::{ArrayD, ArrayView1, ArrayViewD, Axis, Ix1, Zip};

pub use crate::spec::layer_norm::{check_eps, check_shapes, scale_shape};

use crate::error::{Error, Result};

/// `layer_norm(x, w, b, eps)` over the last axis, in float64.
pub fn layer_norm(x: ArrayViewD<'_, f64>, w: ArrayViewD<'_, f64>, b: ArrayViewD<'_, f64>, eps: f64) -> Result<ArrayD<f64>> {
    Ok(layer_norm_full(x, Some((w, b)), eps)?.0)
}

/// Layer norm with optional `(w, b)` (without them: TransformerLens's `LNPre`), returning the
/// output [..., N] and the per-row `scale = sqrt(var + eps)` [..., 1].
pub fn layer_norm_full(
    x: ArrayViewD<'_, f64>,
    affine: Option<(ArrayViewD<'_, f64>, ArrayViewD<'_, f64>)>,
    eps: f64,
) -> Result<(ArrayD<f64>, ArrayD<f64>)> {
    let (_, n) = check_shapes(x.shape(), affine.as_ref().map(|(w, b)| (w.shape(), b.shape())))?;
    check_eps(eps)?;
    let last = Axis(x.ndim() - 1);
    let mut out = x.to_owned();
    let mut scale = super::filled(&scale_shape(x.shape()), 0.0, "layer_norm scale")?;
    if scale.is_empty() {
        return Ok((out, scale));
    }
    let affine = match affine {
        Some((w, b)) => Some((to_vector(w)?, to_vector(b)?)),
        None => None,
    };
    let count = n as f64;
    for (mut row, mut s) in out.lanes_mut(last).into_iter().zip(scale.lanes_mut(last)) {
        let mut mean = row.sum() / count;
        mean += row.fold(0.0, |acc, &v| acc + (v - mean)) / count;
        let var = row.fold(0.0, |acc, &v| acc + (v - mean) * (v - mean)) / count;
        let row_scale = (var + eps).sqrt();
        s.fill(row_scale);
        row.mapv_inplace(|v| (v - mean) / row_scale);
        if let Some((w, b)) = &affine {
            Zip::from(&mut row).and(w).and(b).for_each(|y, &w, &b| *y = *y * w + b);
        }
    }
    Ok((out, scale))
}

/// A checked rank-1 array as a vector view.
fn to_vector(a: ArrayViewD<'_, f64>) -> Result<ArrayView1<'_, f64>> {
    a.into_dimensionality::<Ix1>().map_err(|e| Error::Shape(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{arr1, arr2, IxDyn};

    #[test]
    fn normalises_and_applies_affine() {
        let x = arr2(&[[1.0, 2.0, 3.0, 4.0]]).into_dyn();
        let w = arr1(&[1.0, 2.0, 1.0, 1.0]).into_dyn();
        let b = arr1(&[0.0, 0.0, 0.0, 10.0]).into_dyn();
        let (y, s) = layer_norm_full(x.view(), Some((w.view(), b.view())), 0.0).unwrap();
        let sd = 1.25f64.sqrt();
        assert!((s[[0, 0]] - sd).abs() < 1e-15);
        assert!((y[[0, 1]] - 2.0 * (-0.5 / sd)).abs() < 1e-15);
        assert!((y[[0, 3]] - (10.0 + 1.5 / sd)).abs() < 1e-14);
    }

    #[test]
    fn keeps_the_spread_of_offset_rows() {
        let x = arr1(&[1e8 + 1.0, 1e8 - 1.0]).into_dyn();
        let (y, s) = layer_norm_full(x.view(), None, 0.0).unwrap();
        assert_eq!(s[[0]], 1.0);
        assert_eq!(y, arr1(&[1.0, -1.0]).into_dyn());
    }

    #[test]
    fn constant_rows_give_b() {
        let x = arr2(&[[7.5; 5]]).into_dyn();
        let w = arr1(&[2.0; 5]).into_dyn();
        let b = arr1(&[1.0, 2.0, 3.0, 4.0, 5.0]).into_dyn();
        let y = layer_norm(x.view(), w.view(), b.view(), 1e-12).unwrap();
        assert_eq!(y, arr2(&[[1.0, 2.0, 3.0, 4.0, 5.0]]).into_dyn());
    }

    #[test]
    fn shape_errors_name_arrays() {
        let x = ArrayD::<f64>::zeros(IxDyn(&[2, 4]));
        let w = ArrayD::<f64>::zeros(IxDyn(&[5]));
        let b = ArrayD::<f64>::zeros(IxDyn(&[4]));
        let e = layer_norm(x.view(), w.view(), b.view(), 1e-5).unwrap_err().to_string();
        assert!(e.starts_with("w is [5] but x's last dimension is 4"), "{e}");
        let e = layer_norm(x.view(), b.view(), w.view(), 1e-5).unwrap_err().to_string();
        assert!(e.starts_with("b is [5] but x's last dimension is 4"), "{e}");
        let scalar = ArrayD::<f64>::zeros(IxDyn(&[]));
        let e = layer_norm(scalar.view(), b.view(), b.view(), 1e-5).unwrap_err().to_string();
        assert!(e.contains("rank >= 1"), "{e}");
        let e = layer_norm(x.view(), b.view(), b.view(), -1.0).unwrap_err().to_string();
        assert!(e.contains("eps"), "{e}");
    }
}
