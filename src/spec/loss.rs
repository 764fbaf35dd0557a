//! Cross-entropy's target rules (SPEC's Gradients): targets have the logits' shape without the last
//! axis, a target `>= d_vocab_out` is refused naming its position, and at least one position must
//! count. Shared by the GPU loss kernel and the float64 reference.

use ndarray::{ArrayViewD, Dimension};

use crate::error::{fmt_shape, Error, Result};

/// Checks `targets` against `logits [..., V]` and returns the number of counted positions.
pub fn check_targets(logits: &[usize], targets: ArrayViewD<'_, i64>) -> Result<usize> {
    let Some((&vocab, rows)) = logits.split_last() else {
        return Err(Error::Shape("cross-entropy needs logits [..., d_vocab_out], not a scalar".into()));
    };
    if targets.shape() != rows {
        return Err(Error::Shape(format!(
            "targets are {} but the logits are {}: targets must be {} (one per position)",
            fmt_shape(targets.shape()),
            fmt_shape(logits),
            fmt_shape(rows)
        )));
    }
    if let Some((index, &bad)) = targets.indexed_iter().find(|(_, &t)| t >= 0 && t as u64 >= vocab as u64) {
        return Err(Error::Input(format!(
            "target {bad} at position {:?} is out of range: targets must be < d_vocab_out {vocab} (or negative for no loss)",
            index.slice()
        )));
    }
    let count = targets.iter().filter(|&&t| t >= 0).count();
    if count == 0 {
        return Err(Error::Input(format!(
            "targets {} count no position (all are negative), so the mean loss is undefined",
            fmt_shape(targets.shape())
        )));
    }
    Ok(count)
}
