//! Host references for `gelu` (tanh form) and `gelu_erf`, in float64.
//!
//! Any shape is valid (elementwise), so these cannot fail. Non-finite inputs give what numpy gives
//! for SPEC's formulas: `gelu(+inf) = +inf`, `gelu(-inf) = -inf · 0 = NaN`, `gelu(NaN) = NaN`.

use ndarray::{ArrayD, ArrayViewD};

pub use crate::spec::gelu::Gelu;

/// `gelu(x)` elementwise in float64, stable for any finite `x`.
pub fn gelu(kind: Gelu, x: ArrayViewD<'_, f64>) -> ArrayD<f64> {
    match kind {
        Gelu::Tanh => x.mapv(gelu_tanh),
        Gelu::Erf => x.mapv(gelu_erf),
    }
}

/// `0.5 x (1 + tanh(u))`, written as `x / (1 + exp(-2u))` so that neither tail cancels.
pub fn gelu_tanh(x: f64) -> f64 {
    let u = (2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x);
    x / (1.0 + (-2.0 * u).exp())
}

/// `x Phi(x) = 0.5 x erfc(-x / sqrt 2)`.
pub fn gelu_erf(x: f64) -> f64 {
    0.5 * x * erfc(-x / std::f64::consts::SQRT_2)
}

/// Complementary error function to about 1e-15 relative error: a continued fraction for
/// |z| > 2.5 and the Taylor series of erf below (where erfc ≥ 4e-4, so no cancellation matters).
pub fn erfc(z: f64) -> f64 {
    if z.is_nan() {
        return f64::NAN;
    }
    if z.is_infinite() {
        return if z > 0.0 { 0.0 } else { 2.0 };
    }
    let a = z.abs();
    let tail = if a < 2.5 {
        1.0 - erf_series(a)
    } else {
        erfc_continued_fraction(a)
    };
    if z < 0.0 { 2.0 - tail } else { tail }
}

/// erf(a) = 2/sqrt(pi) Σ (-1)^n a^(2n+1) / (n! (2n+1)), summed until terms vanish.
fn erf_series(a: f64) -> f64 {
    let mut term = a;
    let mut sum = a;
    let a2 = a * a;
    for n in 1..200 {
        term *= -a2 / n as f64;
        let contribution = term / (2 * n + 1) as f64;
        sum += contribution;
        if contribution.abs() < 1e-17 * sum.abs() {
            break;
        }
    }
    sum * 2.0 / std::f64::consts::PI.sqrt()
}

/// erfc(a) for a ≥ 2.5 by Lentz's evaluation of the continued fraction
/// erfc(a) = exp(-a²)/sqrt(pi) · 1/(a + 1/2/(a + 1/(a + 3/2/(a + …)))).
fn erfc_continued_fraction(a: f64) -> f64 {
    let tiny = 1e-300;
    let mut f = a;
    let mut c = a;
    let mut d = 0.0;
    for n in 1..500 {
        let coefficient = n as f64 / 2.0;
        d = a + coefficient * d;
        d = if d.abs() < tiny { tiny } else { d };
        c = a + coefficient / c;
        c = if c.abs() < tiny { tiny } else { c };
        d = 1.0 / d;
        let delta = c * d;
        f *= delta;
        if (delta - 1.0).abs() < 1e-16 {
            break;
        }
    }
    (-a * a).exp() / std::f64::consts::PI.sqrt() / f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erfc_matches_known_values() {
        // Values from Abramowitz & Stegun table 7.1 and standard erfc tables.
        let cases = [(0.0, 1.0), (0.5, 0.4795001221869535), (1.0, 0.15729920705028513), (2.0, 0.004677734981047266),
            (3.0, 2.209049699858544e-05), (5.0, 1.537_459_794_428_035e-12), (-1.0, 1.8427007929497148)];
        for (z, want) in cases {
            let got = erfc(z);
            assert!(((got - want) / want).abs() < 1e-12, "erfc({z}) = {got}, want {want}");
        }
    }

    #[test]
    fn gelu_tails_are_finite() {
        for x in [-1e4, -1e30, 1e4, 3e38, -3e38] {
            assert!(gelu_tanh(x).is_finite() && gelu_erf(x).is_finite(), "x = {x}");
        }
        assert_eq!(gelu_erf(1e4), 1e4);
        assert_eq!(gelu_tanh(-1e4), 0.0);
    }

    #[test]
    fn non_finite_inputs_follow_numpy() {
        // numpy's 0.5 x (1 + f(x)) gives inf at +inf and -inf * 0 = NaN at -inf.
        for f in [gelu_tanh, gelu_erf] {
            assert_eq!(f(f64::INFINITY), f64::INFINITY);
            assert!(f(f64::NEG_INFINITY).is_nan());
            assert!(f(f64::NAN).is_nan());
        }
        assert_eq!((erfc(f64::INFINITY), erfc(f64::NEG_INFINITY)), (0.0, 2.0));
    }
}
