//! `matmul`'s shape rules (numpy's `matmul`: `a [..., M, K] @ b [..., K, N] -> [..., M, N]`, both
//! ranks at least 2, batch dimensions broadcast numpy-style), shared by the GPU op and the float64
//! reference so that both accept the same shapes and say the same thing about the ones they refuse.

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
