//! SPEC's tolerance table and the comparison that turns results into error ratios.
//!
//! A value passes when `|got - want| <= allowed`; infinities must match exactly; NaN passes only
//! against NaN. An output's error ratio is `max |got - want| / allowed`; a result passes iff its
//! ratio is ≤ 1. The worst element is kept with its index so that a failure says where to look.

use ndarray::{ArrayD, ArrayViewD, Dimension};

use crate::error::{fmt_shape, Error, Result};

/// SPEC's elementwise tolerance `atol + rtol |want|` for every op but matmul.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    /// Absolute part.
    pub atol: f64,
    /// Relative part.
    pub rtol: f64,
}

/// `softmax`, `layer_norm`, `gelu`, `gelu_erf`: `1e-5 + 1e-4 |want|`.
pub const POINTWISE: Tolerance = Tolerance { atol: 1e-5, rtol: 1e-4 };
/// `attention`, `attention_layer`, `transformer`: `1e-4 + 1e-3 |want|`.
pub const ATTENTION: Tolerance = Tolerance { atol: 1e-4, rtol: 1e-3 };

impl Tolerance {
    /// The allowed error for each element of `want`.
    pub fn allowed(&self, want: &ArrayViewD<'_, f64>) -> ArrayD<f64> {
        want.mapv(|w| self.atol + self.rtol * w.abs())
    }
}

/// matmul's allowed error `2 K 2^-24 (|a| |b|)_ij + 1e-30`, given `abs_product = |a| @ |b|`:
/// the classic bound for float32 summation in any order.
pub fn matmul_allowed(abs_product: &ArrayViewD<'_, f64>, k: usize) -> ArrayD<f64> {
    let factor = 2.0 * k as f64 * 2f64.powi(-24);
    abs_product.mapv(|p| factor * p + 1e-30)
}

/// The element that came closest to (or furthest past) its allowance.
#[derive(Clone, Debug, PartialEq)]
pub struct Worst {
    /// Output array name (`out`, `pattern`, `cache.blocks.0.hook_q`, …).
    pub output: String,
    /// Its index.
    pub index: Vec<usize>,
    /// What was computed.
    pub got: f64,
    /// What the fixture expects.
    pub want: f64,
}

/// The result of comparing one or more outputs.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    /// `max |got - want| / allowed` over every element compared (0 for no elements; infinite when
    /// a NaN or an infinity does not match).
    pub ratio: f64,
    /// Where the ratio was reached.
    pub worst: Option<Worst>,
}

impl Comparison {
    /// Nothing compared yet: ratio 0.
    pub fn new() -> Self {
        Self { ratio: 0.0, worst: None }
    }

    /// Whether every element passed.
    pub fn passed(&self) -> bool {
        self.ratio <= 1.0
    }

    /// Compares `got` with `want` under `allowed` (same shapes) and folds it into this comparison.
    pub fn add(&mut self, output: &str, got: &ArrayViewD<'_, f64>, want: &ArrayViewD<'_, f64>, allowed: &ArrayViewD<'_, f64>) -> Result<()> {
        if got.shape() != want.shape() || allowed.shape() != want.shape() {
            return Err(Error::Shape(format!(
                "{output}: computed {} but expected {}",
                fmt_shape(got.shape()),
                fmt_shape(want.shape())
            )));
        }
        for ((index, &w), (&g, &a)) in want.indexed_iter().zip(got.iter().zip(allowed.iter())) {
            let r = element_ratio(g, w, a);
            if r > self.ratio || self.worst.is_none() {
                self.ratio = self.ratio.max(r);
                self.worst = Some(Worst { output: output.to_string(), index: index.slice().to_vec(), got: g, want: w });
            }
        }
        Ok(())
    }

    /// [`Comparison::add`] for float32 results.
    pub fn add_f32(&mut self, output: &str, got: &ArrayViewD<'_, f32>, want: &ArrayViewD<'_, f64>, allowed: &ArrayViewD<'_, f64>) -> Result<()> {
        self.add(output, &got.mapv(f64::from).view(), want, allowed)
    }
}

impl Default for Comparison {
    fn default() -> Self {
        Self::new()
    }
}

/// One element's error ratio under SPEC's rules.
pub fn element_ratio(got: f64, want: f64, allowed: f64) -> f64 {
    if want.is_nan() || got.is_nan() {
        return if want.is_nan() && got.is_nan() { 0.0 } else { f64::INFINITY };
    }
    if want.is_infinite() || got.is_infinite() {
        return if got == want { 0.0 } else { f64::INFINITY };
    }
    (got - want).abs() / allowed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_values_follow_spec() {
        assert_eq!(element_ratio(f64::NAN, f64::NAN, 1.0), 0.0);
        assert_eq!(element_ratio(0.0, f64::NAN, 1.0), f64::INFINITY);
        assert_eq!(element_ratio(f64::NAN, 0.0, 1.0), f64::INFINITY);
        assert_eq!(element_ratio(f64::NEG_INFINITY, f64::NEG_INFINITY, 1.0), 0.0);
        assert_eq!(element_ratio(f64::INFINITY, f64::NEG_INFINITY, 1.0), f64::INFINITY);
        assert_eq!(element_ratio(1e300, f64::INFINITY, 1.0), f64::INFINITY);
        assert_eq!(element_ratio(1.5, 1.0, 0.25), 2.0);
    }

    #[test]
    fn worst_element_is_reported() {
        let want = ndarray::arr2(&[[1.0, 2.0], [3.0, 4.0]]).into_dyn();
        let got = ndarray::arr2(&[[1.0, 2.0], [3.5, 4.0]]).into_dyn();
        let allowed = POINTWISE.allowed(&want.view());
        let mut c = Comparison::new();
        c.add("out", &got.view(), &want.view(), &allowed.view()).unwrap();
        assert!(!c.passed());
        let w = c.worst.unwrap();
        assert_eq!((w.index, w.got, w.want), (vec![1, 0], 3.5, 3.0));
    }
}

/// The two comparisons SPEC asks for: GPU kernel and host reference, each against the fixture.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// GPU result against expected.
    pub gpu: Comparison,
    /// Host reference against expected.
    pub reference: Comparison,
    /// Something that fails the fixture whatever the ratios (e.g. an expected array that the
    /// implementation cannot produce), said in words.
    pub problem: Option<String>,
}

impl Outcome {
    /// A fixture passes only if both comparisons do and there is no other problem.
    pub fn passed(&self) -> bool {
        self.problem.is_none() && self.gpu.passed() && self.reference.passed()
    }
}
