//! Host reference for `matmul` in float64, with numpy's `matmul` semantics: `a [..., M, K] @
//! b [..., K, N] -> [..., M, N]`, both ranks at least 2, batch dimensions broadcast numpy-style.
//!
//! The shape rules ([`output_shape`], [`batch_pairs`]) live in [`crate::spec::matmul`], which the GPU
//! op imports too, so that host and GPU accept the same shapes and say the same thing about the ones
//! they refuse.

use ndarray::{s, ArrayD, ArrayView3, ArrayViewD, Axis, Ix3, IxDyn};

pub use crate::spec::matmul::{batch_pairs, output_shape, MatmulDims};

use crate::error::{Error, Result};

/// `a @ b` in float64 with numpy's `matmul` semantics (batch dimensions broadcast).
///
/// Each output batch is one 2-D `dot` (matrixmultiply's blocked kernel), so large products are
/// fast enough to serve as the reference for any fixture.
pub fn matmul(a: ArrayViewD<'_, f64>, b: ArrayViewD<'_, f64>) -> Result<ArrayD<f64>> {
    let dims = batch_pairs(a.shape(), b.shape())?;
    let (m, n) = (dims.m, dims.n);
    let mut out = super::filled(&dims.out_shape(), 0.0, "matmul output")?;
    if out.is_empty() {
        return Ok(out);
    }
    let a = a.as_standard_layout();
    let b = b.as_standard_layout();
    let shape_err = |e: ndarray::ShapeError| Error::Shape(format!("matmul reshaping: {e}"));
    let a3 = as_stack(a.view()).map_err(shape_err)?;
    let b3 = as_stack(b.view()).map_err(shape_err)?;
    let mut out3 = out.view_mut().into_shape_with_order((dims.pairs.len(), m, n)).map_err(shape_err)?;
    for (mut dst, &(i, j)) in out3.axis_iter_mut(Axis(0)).zip(&dims.pairs) {
        let am = a3.slice(s![i, .., ..]);
        let bm = b3.slice(s![j, .., ..]);
        dst.assign(&am.dot(&bm));
    }
    Ok(out)
}

/// A C-contiguous `[..., R, C]` view as a stack of matrices `[count, R, C]`.
fn as_stack(x: ArrayViewD<'_, f64>) -> std::result::Result<ArrayView3<'_, f64>, ndarray::ShapeError> {
    let nd = x.ndim();
    let count: usize = x.shape()[..nd - 2].iter().product();
    let (rows, cols) = (x.shape()[nd - 2], x.shape()[nd - 1]);
    x.into_shape_with_order(IxDyn(&[count, rows, cols]))?.into_dimensionality::<Ix3>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_broadcast_like_numpy() {
        assert_eq!(output_shape(&[2, 1, 5, 7], &[3, 7, 4]).unwrap(), vec![2, 3, 5, 4]);
        assert_eq!(output_shape(&[5, 7], &[3, 7, 4]).unwrap(), vec![3, 5, 4]);
        assert_eq!(output_shape(&[5, 7], &[7, 4]).unwrap(), vec![5, 4]);
        let dims = batch_pairs(&[2, 1, 5, 7], &[3, 7, 4]).unwrap();
        assert_eq!(dims.pairs, vec![(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]);
    }

    #[test]
    fn shape_errors_name_both_arrays() {
        let e = output_shape(&[3, 4], &[5, 6]).unwrap_err().to_string();
        assert_eq!(e, "a is [3, 4] but b is [5, 6]: inner dimensions 4 and 5 differ");
        let e = output_shape(&[4], &[4, 2]).unwrap_err().to_string();
        assert!(e.contains("a is [4]"), "{e}");
        let e = output_shape(&[2, 3, 4], &[3, 4, 6]).unwrap_err().to_string();
        assert!(e.contains("[2, 3, 4]") && e.contains("[3, 4, 6]") && e.contains("2 against 3"), "{e}");
    }

    #[test]
    fn batched_reference_matches_loops() {
        let a = ndarray::Array::from_shape_fn(IxDyn(&[2, 1, 3, 4]), |i| (i[0] * 7 + i[2] * 3 + i[3]) as f64 - 5.0);
        let b = ndarray::Array::from_shape_fn(IxDyn(&[3, 4, 2]), |i| (i[0] * 2 + i[1] + i[2] * 5) as f64 * 0.5);
        let out = matmul(a.view(), b.view()).unwrap();
        assert_eq!(out.shape(), &[2, 3, 3, 2]);
        for p in 0..2 {
            for q in 0..3 {
                for r in 0..3 {
                    for c in 0..2 {
                        let want: f64 = (0..4).map(|t| a[[p, 0, r, t]] * b[[q, t, c]]).sum();
                        assert_eq!(out[[p, q, r, c]], want);
                    }
                }
            }
        }
        let empty = matmul(ndarray::ArrayD::zeros(IxDyn(&[0, 3])).view(), ndarray::ArrayD::zeros(IxDyn(&[3, 2])).view());
        assert_eq!(empty.unwrap().shape(), &[0, 2]);
        let zero_k = matmul(ndarray::ArrayD::zeros(IxDyn(&[2, 0])).view(), ndarray::ArrayD::zeros(IxDyn(&[0, 3])).view());
        assert_eq!(zero_k.unwrap(), ndarray::ArrayD::<f64>::zeros(IxDyn(&[2, 3])));
    }
}
