//! Backward of the MLP's activations: GELU in both forms and ReLU (forwards in
//! [`crate::reference::gelu`] and the model reference).
//!
//! - tanh GELU `0.5 x (1 + tanh u)`, `u = c (x + 0.044715 x³)`, `c = sqrt(2/π)`:
//!   `d/dx = 0.5 (1 + tanh u) + 0.5 x (1 - tanh² u) c (1 + 3 · 0.044715 x²)`;
//! - erf GELU `x Φ(x)`: `d/dx = Φ(x) + x φ(x)`;
//! - ReLU: `dy` where `x > 0`, else 0 (PyTorch's choice at 0).
//!
//! Written so that no finite `x` gives NaN: at |x| = 1e4 `1 - tanh²` and `φ` are exactly 0.

use ndarray::{ArrayD, ArrayViewD, Zip};

use super::same_shape;
use crate::error::Result;
use crate::spec::gelu::Gelu;
use crate::reference::gelu::erfc;

/// The derivative of the tanh GELU at `x`.
pub fn gelu_tanh_grad(x: f64) -> f64 {
    let c = (2.0 / std::f64::consts::PI).sqrt();
    let t = (c * (x + 0.044715 * x * x * x)).tanh();
    let sech2 = 1.0 - t * t;
    // x · sech² vanishes before x³ overflows: sech² is 0 from |u| ≈ 19 on.
    let tail = if sech2 == 0.0 { 0.0 } else { 0.5 * x * sech2 * c * (1.0 + 3.0 * 0.044715 * x * x) };
    0.5 * (1.0 + t) + tail
}

/// The derivative of the erf GELU at `x`: `Φ(x) + x φ(x)`.
pub fn gelu_erf_grad(x: f64) -> f64 {
    let cdf = 0.5 * erfc(-x / std::f64::consts::SQRT_2);
    let pdf = (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
    cdf + if pdf == 0.0 { 0.0 } else { x * pdf }
}

/// `dx` for `y = gelu(x)` given `dy` (same shape as `x`).
pub fn gelu_backward(kind: Gelu, x: ArrayViewD<'_, f64>, dy: ArrayViewD<'_, f64>) -> Result<ArrayD<f64>> {
    same_shape("gelu backward dy", dy.shape(), x.shape())?;
    let grad = match kind {
        Gelu::Tanh => gelu_tanh_grad,
        Gelu::Erf => gelu_erf_grad,
    };
    Ok(Zip::from(&x).and(&dy).map_collect(|&x, &d| d * grad(x)))
}

/// `dx` for `y = relu(x)` given `dy`: `dy` where `x > 0`, 0 elsewhere.
pub fn relu_backward(x: ArrayViewD<'_, f64>, dy: ArrayViewD<'_, f64>) -> Result<ArrayD<f64>> {
    same_shape("relu backward dy", dy.shape(), x.shape())?;
    Ok(Zip::from(&x).and(&dy).map_collect(|&x, &d| if x > 0.0 { d } else { 0.0 }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::gelu::{gelu_erf, gelu_tanh};

    #[test]
    fn derivatives_match_differences_and_tails_are_finite() {
        for x in [-6.0, -1.3, -0.2, 0.0, 0.7, 2.5, 8.0] {
            let h = 1e-5;
            let fd_tanh = (gelu_tanh(x + h) - gelu_tanh(x - h)) / (2.0 * h);
            let fd_erf = (gelu_erf(x + h) - gelu_erf(x - h)) / (2.0 * h);
            assert!((gelu_tanh_grad(x) - fd_tanh).abs() < 1e-9, "tanh at {x}");
            assert!((gelu_erf_grad(x) - fd_erf).abs() < 1e-9, "erf at {x}");
        }
        for x in [-1e4, 1e4, -3e38, 3e38] {
            assert!(gelu_tanh_grad(x).is_finite() && gelu_erf_grad(x).is_finite(), "{x}");
        }
        assert_eq!((gelu_tanh_grad(1e4), gelu_erf_grad(-1e4)), (1.0, 0.0));
    }
}
