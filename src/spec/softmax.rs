//! `softmax`'s shape check (along the last axis), shared by the GPU op and the float64 reference.

use crate::error::{element_count, fmt_shape, Error, Result};

/// Checks that `x` can be softmaxed along its last axis (rank ≥ 1); returns `(rows, n)`, the
/// number of rows and the row length.
pub fn check_shape(x: &[usize]) -> Result<(usize, usize)> {
    match x.split_last() {
        Some((&n, batch)) => {
            element_count(x, "softmax x")?;
            Ok((element_count(batch, "softmax x's rows")?, n))
        }
        None => Err(Error::Shape(format!(
            "softmax needs x of rank >= 1 (x [..., N], along the last axis) but x is a scalar of shape {}",
            fmt_shape(x)
        ))),
    }
}
