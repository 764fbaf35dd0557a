//! Where an axis gets its labelled ticks. plotters' own choice fails two ways that matter here: a
//! log axis spanning less than a decade gets no label at all (a loss going from 4 to 2.8), and an
//! axis that counts things (layers, heads, positions) gets ticks at 0.5, 1.5. These functions choose
//! the ticks; the charts bind them with plotters' `with_key_points`.

use std::ops::Range;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::coord::types::RangedCoordf64;

/// A linear f64 axis whose ticks are the given ones (plotters' `with_key_points` cannot be drawn
/// on an f64 axis: the mesh wants a default formatter that wrapper lacks).
pub struct Ticked {
    inner: RangedCoordf64,
    ticks: Vec<f64>,
}

impl Ticked {
    /// The axis over `range` with its labelled ticks at `ticks`.
    pub fn new(range: Range<f64>, ticks: Vec<f64>) -> Self {
        Self { inner: range.into(), ticks }
    }
}

impl Ranged for Ticked {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.inner.map(value, limit)
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        // Light (unlabelled) mesh lines: none; bold ones: the chosen ticks.
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.inner.range()
    }
}

/// "Nice" steps inside a decade: a step is one of these times a power of ten.
const NICE: [f64; 4] = [1.0, 2.0, 2.5, 5.0];

/// Ticks at multiples of a 1-2-2.5-5 step inside `[lo, hi]`, the finest step that gives at most
/// `max` of them (at least two when the range allows). Empty for a non-finite or empty range.
pub fn linear_ticks(lo: f64, hi: f64, max: usize) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite()) || hi < lo {
        return Vec::new();
    }
    if hi == lo {
        return vec![lo];
    }
    let max = max.max(2);
    let span = hi - lo;
    let mut exponent = (span / max as f64).log10().floor() as i32 - 1;
    loop {
        for m in NICE {
            let step = m * 10f64.powi(exponent);
            let ticks = multiples(lo, hi, step);
            if ticks.len() <= max {
                return ticks;
            }
        }
        exponent += 1;
    }
}

/// Whole-number ticks inside `[lo, hi]` for an axis that counts (layer, head, position): every
/// one when at most `max` fit, else every 2nd, 5th, 10th, 20th….
pub fn integer_ticks(lo: f64, hi: f64, max: usize) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite()) || hi < lo {
        return Vec::new();
    }
    let (first, last) = (lo.ceil(), hi.floor());
    if last < first {
        return Vec::new();
    }
    let max = max.max(1) as f64;
    let mut step = 1.0;
    'search: for exponent in 0..20 {
        for m in [1.0, 2.0, 5.0] {
            step = m * 10f64.powi(exponent);
            if ((last - first) / step).floor() + 1.0 <= max {
                break 'search;
            }
        }
    }
    multiples(first, last, step)
}

/// Labelled ticks for a log axis over `[lo, hi]` (both > 0): powers of ten when the range spans
/// at least two of them (every k-th decade when there are many), else 1-2-5 times powers of ten,
/// else 1…9 times them, and when even those give fewer than three (a range inside one decade,
/// where a log axis is nearly linear) plain linear steps such as 2.8, 3, 3.2…. Empty when the
/// range is not positive and finite.
pub fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    if !(lo > 0.0 && hi >= lo && hi.is_finite()) {
        return Vec::new();
    }
    let (first, last) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    let decades = last - first;
    let every = (decades + 7) / 8;
    let powers: Vec<f64> = (first..=last).filter(|k| k.rem_euclid(every.max(1)) == 0).map(|k| round_sig(10f64.powi(k))).filter(|&t| inside(t, lo, hi)).collect();
    if powers.len() >= 3 || decades > 8 {
        return powers;
    }
    for mantissas in [&[1.0, 2.0, 5.0][..], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0][..]] {
        let ticks: Vec<f64> = (first..=last).flat_map(|k| mantissas.iter().map(move |m| round_sig(m * 10f64.powi(k)))).filter(|&t| inside(t, lo, hi)).collect();
        if (3..=10).contains(&ticks.len()) {
            return ticks;
        }
    }
    linear_ticks(lo, hi, 8)
}

/// `x` within `[lo, hi]`, allowing for rounding at either end.
fn inside(x: f64, lo: f64, hi: f64) -> bool {
    let slack = (hi - lo).abs().max(hi.abs()) * 1e-9;
    x >= lo - slack && x <= hi + slack
}

/// The multiples of `step` inside `[lo, hi]`, each rounded to 12 significant digits (so 0.1·3 is
/// 0.3, not 0.30000000000000004).
fn multiples(lo: f64, hi: f64, step: f64) -> Vec<f64> {
    let (a, b) = ((lo / step - 1e-9).ceil() as i64, (hi / step + 1e-9).floor() as i64);
    (a..=b).map(|i| round_sig(i as f64 * step)).collect()
}

/// `x` rounded to 12 significant digits.
fn round_sig(x: f64) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let scale = 10f64.powi(11 - x.abs().log10().floor() as i32);
    (x * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A loss from 4 down to 2.8 (under a decade) still gets labelled ticks, inside the range.
    #[test]
    fn log_ticks_inside_one_decade() {
        let t = log_ticks(2.8, 4.0);
        assert!(t.len() >= 3, "{t:?}");
        assert!(t.iter().all(|&x| (2.8..=4.0).contains(&x)), "{t:?}");
        assert!(t.contains(&3.0), "{t:?}");
        assert!(t.windows(2).all(|w| w[0] < w[1]), "{t:?}");
    }

    /// Four decades: the powers of ten.
    #[test]
    fn log_ticks_over_decades() {
        assert_eq!(log_ticks(0.001, 10.0), vec![0.001, 0.01, 0.1, 1.0, 10.0]);
    }

    /// Exactly one decade: 1-2-5 steps.
    #[test]
    fn log_ticks_one_decade_small_numbers() {
        assert_eq!(log_ticks(1e-6, 1e-5), vec![1e-6, 2e-6, 5e-6, 1e-5]);
    }

    /// Thirty decades: at most ten ticks, still powers of ten.
    #[test]
    fn log_ticks_many_decades_thinned() {
        let t = log_ticks(1e-20, 1e10);
        assert!((3..=10).contains(&t.len()), "{t:?}");
        assert!(t.iter().all(|x| x.log10().fract().abs() < 1e-9), "{t:?}");
    }

    /// Non-positive or reversed ranges give no ticks rather than NaNs.
    #[test]
    fn log_ticks_refuse_bad_ranges() {
        assert!(log_ticks(0.0, 1.0).is_empty());
        assert!(log_ticks(2.0, 1.0).is_empty());
        assert!(log_ticks(1.0, f64::INFINITY).is_empty());
    }

    /// Linear ticks: nice steps, no float noise, at most `max`.
    #[test]
    fn linear_ticks_are_nice() {
        assert_eq!(linear_ticks(0.0, 1.0, 6), vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);
        assert_eq!(linear_ticks(0.0, 0.3, 4), vec![0.0, 0.1, 0.2, 0.3]);
        let t = linear_ticks(-3.7, 12.2, 8);
        assert!(t.len() <= 8 && t.len() >= 2, "{t:?}");
    }

    /// A count axis: whole numbers only, thinned when long.
    #[test]
    fn integer_ticks_are_whole() {
        assert_eq!(integer_ticks(0.0, 2.0, 10), vec![0.0, 1.0, 2.0]);
        assert_eq!(integer_ticks(-0.5, 3.5, 10), vec![0.0, 1.0, 2.0, 3.0]);
        let t = integer_ticks(0.0, 58.0, 12);
        assert!(t.len() <= 12 && t.iter().all(|x| x.fract() == 0.0), "{t:?}");
        assert_eq!(t[1] - t[0], 5.0);
        assert!(integer_ticks(0.2, 0.8, 5).is_empty());
    }
}
