//! A gradient check: analytic gradients against central finite differences of the float64
//! forward.
//!
//! The derivative of a scalar function is the fourth-order central difference
//! `(-f(t+2h) + 8 f(t+h) - 8 f(t-h) + f(t-2h)) / 12h`: its truncation error is `O(h⁴)`, so a step
//! large enough to keep rounding small (`h = 1e-4` on O(1) values: rounding about
//! `1.5 ε |f| / h`, 1e-11 for a loss near 3) still leaves the truncation far below 1e-9. A value
//! passes when `|analytic - numeric| <= RTOL max(|analytic|, |numeric|) + ATOL`: relative error
//! 1e-6, with an absolute floor of 1e-9 for gradients that are (nearly) zero, like `b_K`'s.
//! Functions with kinks (ReLU) are only differentiable away from them: a perturbation of `2h` must
//! not carry a pre-activation across 0, which tiny test models with a fixed seed satisfy (and a
//! failure there names the element, so it is found rather than hidden).

use ndarray::{ArrayD, Dimension};

use crate::error::{fmt_shape, Error, Result};

/// The relative tolerance of a gradient check.
pub const RTOL: f64 = 1e-6;
/// The absolute floor of a gradient check.
pub const ATOL: f64 = 1e-9;
/// The default step for values of order 1.
pub const STEP: f64 = 1e-4;

/// The worst element of a gradient check.
#[derive(Clone, Debug)]
pub struct GradcheckReport {
    /// `max |analytic - numeric| / (RTOL max(|a|, |n|) + ATOL)`; the check passes iff ≤ 1.
    pub ratio: f64,
    /// The worst element's index.
    pub index: Vec<usize>,
    /// Its analytic gradient.
    pub analytic: f64,
    /// Its finite-difference gradient.
    pub numeric: f64,
    /// How many elements were compared.
    pub checked: usize,
}

impl GradcheckReport {
    /// Whether every element passed.
    pub fn passed(&self) -> bool {
        self.ratio <= 1.0
    }
}

impl std::fmt::Display for GradcheckReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ratio {:.3e} over {} elements (worst at {:?}: analytic {:e}, numeric {:e})",
            self.ratio, self.checked, self.index, self.analytic, self.numeric
        )
    }
}

/// One element's ratio under the check's tolerance.
pub fn ratio(analytic: f64, numeric: f64) -> f64 {
    if !analytic.is_finite() || !numeric.is_finite() {
        return f64::INFINITY;
    }
    (analytic - numeric).abs() / (RTOL * analytic.abs().max(numeric.abs()) + ATOL)
}

/// `d f / d t` at `t` by the fourth-order central difference with step `h`.
pub fn derivative(mut f: impl FnMut(f64) -> Result<f64>, t: f64, h: f64) -> Result<f64> {
    let (p1, m1, p2, m2) = (f(t + h)?, f(t - h)?, f(t + 2.0 * h)?, f(t - 2.0 * h)?);
    Ok((8.0 * (p1 - m1) - (p2 - m2)) / (12.0 * h))
}

/// The finite-difference gradient of `f` at `x`, one element at a time.
pub fn numeric_gradient(mut f: impl FnMut(&ArrayD<f64>) -> Result<f64>, x: &ArrayD<f64>, h: f64) -> Result<ArrayD<f64>> {
    let mut probe = x.clone();
    let mut out = ArrayD::<f64>::zeros(x.raw_dim());
    for (index, slot) in out.indexed_iter_mut() {
        let x0 = x[&index];
        *slot = derivative(
            |t| {
                probe[&index] = t;
                f(&probe)
            },
            x0,
            h,
        )?;
        probe[&index] = x0;
    }
    Ok(out)
}

/// Compares `analytic` (d f / d x) with the finite differences of `f` at `x`.
pub fn gradcheck(f: impl FnMut(&ArrayD<f64>) -> Result<f64>, x: &ArrayD<f64>, analytic: &ArrayD<f64>, h: f64) -> Result<GradcheckReport> {
    if analytic.shape() != x.shape() {
        return Err(Error::Shape(format!(
            "gradcheck: the gradient is {} but x is {}",
            fmt_shape(analytic.shape()),
            fmt_shape(x.shape())
        )));
    }
    let numeric = numeric_gradient(f, x, h)?;
    Ok(compare(analytic, &numeric))
}

/// The report of `analytic` against `numeric` (same shapes).
pub fn compare(analytic: &ArrayD<f64>, numeric: &ArrayD<f64>) -> GradcheckReport {
    let mut report = GradcheckReport { ratio: 0.0, index: Vec::new(), analytic: 0.0, numeric: 0.0, checked: 0 };
    for ((index, &a), &n) in analytic.indexed_iter().zip(numeric.iter()) {
        let r = ratio(a, n);
        report.checked += 1;
        if r > report.ratio || report.checked == 1 {
            report = GradcheckReport { ratio: r.max(report.ratio), index: index.slice().to_vec(), analytic: a, numeric: n, ..report };
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_polynomial_passes_and_a_wrong_gradient_fails() {
        let x = ndarray::arr1(&[0.5, -1.5, 2.0]).into_dyn();
        let f = |x: &ArrayD<f64>| Ok(x.iter().map(|v| v * v * v).sum::<f64>());
        let right = x.mapv(|v| 3.0 * v * v);
        assert!(gradcheck(f, &x, &right, STEP).unwrap().passed());
        let mut wrong = right.clone();
        wrong[1] *= 1.0 + 1e-5;
        let report = gradcheck(f, &x, &wrong, STEP).unwrap();
        assert!(!report.passed() && report.index == [1], "{report}");
    }
}
