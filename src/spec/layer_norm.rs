//! `layer_norm`'s shape and eps checks and the shape of its `hook_scale`, shared by the GPU op and
//! the float64 reference.

use crate::error::{element_count, fmt_shape, Error, Result};

/// Checks `x [..., N]` (rank ≥ 1) and, when given, `w [N]` and `b [N]`; returns `(rows, n)`.
pub fn check_shapes(x: &[usize], affine: Option<(&[usize], &[usize])>) -> Result<(usize, usize)> {
    let Some((&n, batch)) = x.split_last() else {
        return Err(Error::Shape(format!(
            "layer_norm needs x of rank >= 1 (x [..., N], over the last axis) but x is a scalar of shape {}",
            fmt_shape(x)
        )));
    };
    if let Some((w, b)) = affine {
        for (name, shape) in [("w", w), ("b", b)] {
            if shape != [n] {
                return Err(Error::Shape(format!(
                    "{name} is {} but x's last dimension is {n}: {name} must be [{n}] (x is {})",
                    fmt_shape(shape),
                    fmt_shape(x)
                )));
            }
        }
    }
    element_count(x, "layer_norm x")?;
    Ok((element_count(batch, "layer_norm x's rows")?, n))
}

/// Checks that `eps` is a finite number ≥ 0.
pub fn check_eps(eps: f64) -> Result<()> {
    if eps.is_finite() && eps >= 0.0 {
        Ok(())
    } else {
        Err(Error::Input(format!("layer_norm eps is {eps} but must be a finite number >= 0")))
    }
}

/// The shape of the per-row `scale` output for `x` [..., N]: [..., 1].
pub fn scale_shape(x: &[usize]) -> Vec<usize> {
    let mut shape = x.to_vec();
    if let Some(last) = shape.last_mut() {
        *last = 1;
    }
    shape
}
