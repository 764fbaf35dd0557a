//! Host references: every op of SPEC in ndarray, computed in float64.
//!
//! They are public so that users can check their own work against them, and they are what
//! `verify` checks each fixture with besides the GPU. Inputs are float64 views (convert float32
//! data with `mapv(f64::from)`: SPEC's expected values are the float64 result of float32 inputs).
//!
//! Shapes come from users, so no reference panics on one: shape checks return errors, and every
//! array a reference allocates goes through [`filled`], which refuses (rather than aborts on) an
//! output that no host memory could hold — e.g. the `[2^31, 2^31]` product of two empty matrices.

pub mod attention;
pub mod attention_layer;
pub mod backward;
pub mod gelu;
pub mod layer_norm;
pub mod matmul;
pub mod softmax;
pub mod transformer;

use ndarray::{ArrayD, IxDyn};

use crate::error::{element_count, fmt_shape, Error, Result};

/// A float64 array of `shape` filled with `value`, or an error naming `what` when its size
/// overflows or the allocation fails (ndarray and `Vec` would panic or abort instead).
pub(crate) fn filled(shape: &[usize], value: f64, what: &str) -> Result<ArrayD<f64>> {
    let count = element_count(shape, what)?;
    let too_large = || {
        Error::Input(format!(
            "{what} of shape {} needs {} bytes, more than the host can allocate",
            fmt_shape(shape),
            count as u128 * 8
        ))
    };
    if count > isize::MAX as usize / 8 {
        return Err(too_large());
    }
    let mut data = Vec::new();
    data.try_reserve_exact(count).map_err(|_| too_large())?;
    data.resize(count, value);
    ArrayD::from_shape_vec(IxDyn(shape), data).map_err(|e| Error::Shape(format!("{what}: {e}")))
}
