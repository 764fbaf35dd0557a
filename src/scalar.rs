//! Scalars that cross from SPEC's float64 into a float32 kernel, and text that users supply
//! echoed back in messages.
//!
//! SPEC gives `eps` and `scale` as float64 and defines the results by float64 formulas; the
//! kernels take float32. A value that float32 cannot hold (beyond ±3.4e38, or so close to zero
//! that it would round to 0 or to a subnormal that GPUs flush) would turn into inf or 0 and give
//! NaN or wrong rows where SPEC's formula gives a number, so [`to_f32`] refuses it by name before
//! any work. Every value in float32's normal range, and exact 0, passes (rounded to nearest).

use crate::error::{Error, Result};

/// `value` as float32 for a kernel parameter called `name`, or an error naming it when float32
/// cannot carry it: NaN, ±inf, a magnitude above `f32::MAX`, or a nonzero magnitude below
/// `f32::MIN_POSITIVE` (1.2e-38).
pub fn to_f32(name: &str, value: f64) -> Result<f32> {
    if value.is_nan() || value.is_infinite() {
        return Err(Error::Input(format!("{name} is {value} but must be a finite number")));
    }
    let magnitude = value.abs();
    if magnitude > f64::from(f32::MAX) {
        return Err(Error::Input(format!(
            "{name} is {value:e}, beyond float32's range (|{name}| <= {:e}): the GPU kernels compute in float32, so it \
             would become infinite",
            f32::MAX
        )));
    }
    if magnitude != 0.0 && magnitude < f64::from(f32::MIN_POSITIVE) {
        return Err(Error::Input(format!(
            "{name} is {value:e}, below float32's normal range ({:e}): the GPU kernels compute in float32, where it \
             would round to 0 or a subnormal; use 0 or a value of at least that size",
            f32::MIN_POSITIVE
        )));
    }
    Ok(value as f32)
}

/// `text` cut to at most `max` characters, with a note of how much was left out, for echoing a
/// user's value in a message (a 100 MB config value must not become a 100 MB error line).
pub fn cut(text: &str, max: usize) -> String {
    let count = text.chars().count();
    if count <= max {
        return text.to_string();
    }
    let kept: String = text.chars().take(max).collect();
    format!("{kept}… ({} more characters)", count - max)
}
