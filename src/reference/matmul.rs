//! Host reference for `matmul` in float64, with numpy's `matmul` semantics: `a [..., M, K] @
//! b [..., K, N] -> [..., M, N]`, both ranks at least 2, batch dimensions broadcast numpy-style.
//!
//! The shape rules live here ([`output_shape`], [`batch_pairs`]) and the GPU op calls them too, so
//! that host and GPU accept the same shapes and say the same thing about the ones they refuse.

use ndarray::{s, ArrayD, ArrayView3, ArrayViewD, Axis, Ix3, IxDyn};

use crate::error::{element_count, fmt_shape, Error, Result};

/// The sizes of one `matmul`: the broadcast batch shape, `M`, `K`, `N`, and which matrix of `a`
/// and of `b` each output batch multiplies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatmulDims {
    /// The broadcast batch dimensions of the output (empty when both inputs are 2-D).
    pub batch: Vec<usize>,
    /// Rows of `a` and of the output.
    pub m: usize,
    /// Columns of `a`, rows of `b`: the length of every dot product.
    pub k: usize,
    /// Columns of `b` and of the output.
    pub n: usize,
    /// For each output batch in C order, `(i, j)`: it is `a`'s matrix `i` times `b`'s matrix `j`,
    /// each counted in C order over that input's own batch dimensions. Empty when the output has
    /// no elements (there is nothing to multiply, however many batches the shape names).
    pub pairs: Vec<(usize, usize)>,
}

impl MatmulDims {
    /// The output shape `[batch..., M, N]`.
    pub fn out_shape(&self) -> Vec<usize> {
        let mut shape = self.batch.clone();
        shape.extend([self.m, self.n]);
        shape
    }
}

/// The shape of `a @ b`, or an error naming both shapes when they do not fit.
pub fn output_shape(a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let (batch, m, _k, n) = check(a, b)?;
    let mut shape = batch;
    shape.extend([m, n]);
    Ok(shape)
}

/// Checks the shapes and maps every output batch to the matrices of `a` and `b` it multiplies
/// (broadcast dimensions of size 1 map every output index to matrix index 0 along them).
pub fn batch_pairs(a: &[usize], b: &[usize]) -> Result<MatmulDims> {
    let (batch, m, k, n) = check(a, b)?;
    let a_batch = &a[..a.len() - 2];
    let b_batch = &b[..b.len() - 2];
    let count = if m == 0 || n == 0 { 0 } else { element_count(&batch, "matmul batch")? };
    let mut pairs = Vec::new();
    pairs.try_reserve_exact(count).map_err(|_| {
        Error::Input(format!("matmul of a {} and b {}: cannot allocate {count} batch pairs", fmt_shape(a), fmt_shape(b)))
    })?;
    let mut index = vec![0usize; batch.len()];
    for _ in 0..count {
        pairs.push((linear_index(&index, a_batch), linear_index(&index, b_batch)));
        // Advance the output's batch multi-index in C order.
        for axis in (0..batch.len()).rev() {
            index[axis] += 1;
            if index[axis] < batch[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
    Ok(MatmulDims { batch, m, k, n, pairs })
}

/// The C-order linear index into an input's batch dims `dims` of the output batch multi-index
/// `out_index` (right-aligned, size-1 dimensions broadcast).
fn linear_index(out_index: &[usize], dims: &[usize]) -> usize {
    let skip = out_index.len() - dims.len();
    dims.iter().zip(&out_index[skip..]).fold(0, |acc, (&d, &i)| acc * d + if d == 1 { 0 } else { i })
}

/// Validates ranks, the inner dimension and batch broadcasting; returns `(batch, M, K, N)`.
fn check(a: &[usize], b: &[usize]) -> Result<(Vec<usize>, usize, usize, usize)> {
    for (name, shape) in [("a", a), ("b", b)] {
        if shape.len() < 2 {
            return Err(Error::Shape(format!(
                "matmul needs arrays of rank at least 2, but {name} is {} (rank {})",
                fmt_shape(shape),
                shape.len()
            )));
        }
    }
    let (m, k) = (a[a.len() - 2], a[a.len() - 1]);
    let (k2, n) = (b[b.len() - 2], b[b.len() - 1]);
    if k != k2 {
        return Err(Error::Shape(format!(
            "a is {} but b is {}: inner dimensions {k} and {k2} differ",
            fmt_shape(a),
            fmt_shape(b)
        )));
    }
    let a_batch = &a[..a.len() - 2];
    let b_batch = &b[..b.len() - 2];
    let rank = a_batch.len().max(b_batch.len());
    let mut batch = Vec::with_capacity(rank);
    for axis in 0..rank {
        // Right-aligned, missing leading dimensions count as 1.
        let da = (axis + a_batch.len()).checked_sub(rank).map_or(1, |i| a_batch[i]);
        let db = (axis + b_batch.len()).checked_sub(rank).map_or(1, |i| b_batch[i]);
        if da != db && da != 1 && db != 1 {
            return Err(Error::Shape(format!(
                "a is {} but b is {}: batch dimensions {} and {} do not broadcast ({da} against {db})",
                fmt_shape(a),
                fmt_shape(b),
                fmt_shape(a_batch),
                fmt_shape(b_batch)
            )));
        }
        batch.push(if da == 1 { db } else { da });
    }
    let mut out = batch.clone();
    out.extend([m, n]);
    element_count(&out, &format!("matmul output (a {} @ b {})", fmt_shape(a), fmt_shape(b)))?;
    Ok((batch, m, k, n))
}

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
