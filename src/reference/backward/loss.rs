//! Cross-entropy over the positions that have a target (SPEC's Gradients), forward and backward.
//!
//! `loss = mean over {p : targets[p] >= 0} of -log softmax(logits[p])[targets[p]]`, natural log.
//! Each row's log-sum-exp is shifted by the row maximum (`lse = max + ln Σ exp(x - max)`), never
//! `log(softmax)`, so that large logits neither overflow nor lose the loss to rounding. The
//! gradient is `(softmax(logits[p]) - onehot(targets[p])) / count` on counted rows and 0 elsewhere.
//!
//! Refused, naming the problem: targets whose shape is not the logits' without the last axis, a
//! target `>= d_vocab_out` (naming its position), and targets that count no position at all (the
//! mean over no positions is 0/0; a training step on such a batch would be a silent no-op, so it
//! is an error rather than 0 or NaN).

use ndarray::{ArrayD, ArrayViewD, Axis};

pub use crate::spec::loss::check_targets;

use crate::error::Result;

/// The loss and its gradient with respect to the logits.
#[derive(Clone, Debug)]
pub struct CrossEntropy {
    /// The mean loss over the counted positions.
    pub loss: f64,
    /// d loss / d logits, the logits' shape.
    pub grad: ArrayD<f64>,
    /// How many positions were counted.
    pub count: usize,
}

/// The cross-entropy of `logits [..., V]` against `targets [...]` and its gradient.
pub fn cross_entropy(logits: ArrayViewD<'_, f64>, targets: ArrayViewD<'_, i64>) -> Result<CrossEntropy> {
    let count = check_targets(logits.shape(), targets.view())?;
    let last = Axis(logits.ndim() - 1);
    let mut grad = logits.to_owned();
    let mut total = 0.0;
    for (mut row, &target) in grad.lanes_mut(last).into_iter().zip(targets.iter()) {
        if target < 0 {
            row.fill(0.0);
            continue;
        }
        let max = row.fold(f64::NEG_INFINITY, |m, &v| m.max(v));
        let picked = row[target as usize];
        row.mapv_inplace(|v| (v - max).exp());
        let sum = row.sum();
        // (max - picked) first: both are large, their difference is exact.
        total += (max - picked) + sum.ln();
        row.mapv_inplace(|e| e / sum / count as f64);
        row[target as usize] -= 1.0 / count as f64;
    }
    Ok(CrossEntropy { loss: total / count as f64, grad, count })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{arr2, arr3};

    #[test]
    fn uniform_logits_give_log_vocab() {
        let logits = arr3(&[[[0.0, 0.0, 0.0, 0.0], [5.0, 5.0, 5.0, 5.0]]]).into_dyn();
        let targets = arr2(&[[2i64, -1]]).into_dyn();
        let ce = cross_entropy(logits.view(), targets.view()).unwrap();
        assert!((ce.loss - 4f64.ln()).abs() < 1e-15);
        assert_eq!(ce.count, 1);
        assert_eq!(ce.grad.as_slice().unwrap(), &[0.25, 0.25, -0.75, 0.25, 0.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn huge_logits_stay_exact() {
        // ln(1 + e^-1) for logits (1e4, 1e4 - 1): exp(1e4) overflows without the shift, and
        // max + ln(sum) - picked would lose the last 12 bits to the size of max.
        let logits = arr2(&[[1e4, 1e4 - 1.0]]).into_dyn();
        let targets = ndarray::arr1(&[0i64]).into_dyn();
        let ce = cross_entropy(logits.view(), targets.view()).unwrap();
        assert!((ce.loss - (1.0 + (-1f64).exp()).ln()).abs() < 1e-15, "{}", ce.loss);
    }

    #[test]
    fn refusals_name_the_problem() {
        let logits = arr3(&[[[0.0; 3]; 2]]).into_dyn();
        let e = cross_entropy(logits.view(), arr2(&[[0i64, 3]]).into_dyn().view()).unwrap_err().to_string();
        assert!(e.contains("target 3 at position [0, 1]") && e.contains("d_vocab_out 3"), "{e}");
        let e = cross_entropy(logits.view(), arr2(&[[-1i64, -5]]).into_dyn().view()).unwrap_err().to_string();
        assert!(e.contains("count no position"), "{e}");
        let e = cross_entropy(logits.view(), arr2(&[[0i64, 1, 2]]).into_dyn().view()).unwrap_err().to_string();
        assert!(e.contains("targets are [1, 3] but the logits are [1, 2, 3]"), "{e}");
    }
}
