//! SPEC's metric of a run: the logit difference at the last position, `logits[b, -1, answer[b]]
//! − logits[b, -1, wrong[b]]`, per row; patching averages it over the batch, attribution
//! differentiates its sum. Its gradient with respect to the logits is ±1 at two entries per row,
//! which is what a backward pass from this metric is seeded with.

use ndarray::{ArrayD, ArrayViewD, IxDyn};

use crate::error::{fmt_shape, Error, Result};

/// The logit difference of each row of `logits` \[R, S, V\] at the last position, where row `r`
/// uses `pairs[r % pairs.len()]` (so that copies of a batch stacked along the rows share its
/// answers), in float64 whatever the logits' precision.
pub fn logit_diff<T: Copy + Into<f64>>(logits: ArrayViewD<'_, T>, pairs: &[(usize, usize)]) -> Result<Vec<f64>> {
    let &[rows, seq, vocab] = logits.shape() else {
        return Err(Error::Shape(format!("logits are {} but must be [batch, positions, d_vocab_out]", fmt_shape(logits.shape()))));
    };
    if pairs.is_empty() || rows % pairs.len() != 0 || seq == 0 {
        return Err(Error::Shape(format!("logits {} do not hold whole copies of {} prompt pairs", fmt_shape(logits.shape()), pairs.len())));
    }
    if let Some(&(a, w)) = pairs.iter().find(|&&(a, w)| a >= vocab || w >= vocab) {
        return Err(Error::Input(format!("answer {a} / wrong {w} is out of range for {vocab} logits")));
    }
    Ok((0..rows)
        .map(|r| {
            let (a, w) = pairs[r % pairs.len()];
            logits[[r, seq - 1, a]].into() - logits[[r, seq - 1, w]].into()
        })
        .collect())
}

/// The batch mean of the metric (what a patching sweep reports for one patch).
pub fn mean_logit_diff<T: Copy + Into<f64>>(logits: ArrayViewD<'_, T>, pairs: &[(usize, usize)]) -> Result<f64> {
    let diffs = logit_diff(logits, pairs)?;
    Ok(diffs.iter().sum::<f64>() / diffs.len() as f64)
}

/// `Σ_b metric_b` and its gradient with respect to `logits` \[B, S, V\] (one pair per row): the
/// seed of attribution patching's backward pass.
pub fn summed_logit_diff_grad(logits: &ArrayD<f64>, pairs: &[(usize, usize)]) -> Result<(f64, ArrayD<f64>)> {
    if logits.shape().first() != Some(&pairs.len()) {
        return Err(Error::Shape(format!("logits are {} but there are {} prompt pairs", fmt_shape(logits.shape()), pairs.len())));
    }
    let total = logit_diff(logits.view(), pairs)?.iter().sum();
    let mut grad = ArrayD::<f64>::zeros(IxDyn(logits.shape()));
    let last = logits.shape()[1] - 1;
    for (b, &(a, w)) in pairs.iter().enumerate() {
        grad[[b, last, a]] += 1.0;
        grad[[b, last, w]] -= 1.0;
    }
    Ok((total, grad))
}
