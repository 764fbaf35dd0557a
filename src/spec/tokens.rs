//! Token ids back from float values (after an intervention on `hook_tokens`): the rule the GPU
//! model and the float64 reference share.

use ndarray::{ArrayD, Dimension};

use crate::error::{Error, Result};

/// Token ids from float values (after an intervention on `hook_tokens`), refusing a value that is
/// not a whole number in `[0, d_vocab)`.
pub fn token_ids(values: ndarray::ArrayViewD<'_, f64>, d_vocab: usize) -> Result<ArrayD<i64>> {
    if let Some((index, v)) = values.indexed_iter().find(|(_, &v)| !(v.fract() == 0.0 && v >= 0.0 && v < d_vocab as f64)) {
        return Err(Error::Input(format!(
            "hook_tokens: after the interventions the token at {:?} is {v}, not a token id in [0, {d_vocab})",
            index.slice()
        )));
    }
    Ok(values.mapv(|v| v as i64))
}
