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

/// A built-in scalar metric of the logits \[B, S, V\], summed over the batch rows: what a
/// backward pass ([`crate::transformer::Seed::Logits`]) is seeded with is its gradient
/// ([`Metric::value_and_grad`]), so any of them drives attribution patching.
#[derive(Clone, Debug, PartialEq)]
pub enum Metric {
    /// `logits[b, -1, answer[b]] − logits[b, -1, wrong[b]]`, per row `(answer, wrong)`.
    LogitDiff(Vec<(usize, usize)>),
    /// `log_softmax(logits[b, position])[token[b]]`, one token per row.
    LogProb {
        /// The position read (0-based; must be below S).
        position: usize,
        /// Per row, the token whose log-probability is taken.
        tokens: Vec<usize>,
    },
    /// SPEC's loss: the mean over targets ≥ 0 of `−log_softmax(logits[b, s])[targets[b, s]]`
    /// (targets \[B, S\], −1 ignored; see [`next_token_targets`]). Not summed: one number.
    Loss(ArrayD<i64>),
}

impl Metric {
    /// The metric's value and `d value / d logits` (the logits' shape), in float64 whatever the
    /// logits' precision; refuses, by name, tokens or positions out of range and mis-shaped
    /// targets.
    pub fn value_and_grad<T: Copy + Into<f64>>(&self, logits: ArrayViewD<'_, T>) -> Result<(f64, ArrayD<f64>)> {
        let &[rows, seq, vocab] = logits.shape() else {
            return Err(Error::Shape(format!("logits are {} but must be [batch, positions, d_vocab_out]", fmt_shape(logits.shape()))));
        };
        let mut grad = ArrayD::<f64>::zeros(IxDyn(logits.shape()));
        match self {
            Metric::LogitDiff(pairs) => {
                if pairs.len() != rows {
                    return Err(Error::Shape(format!("logits are {} but there are {} prompt pairs", fmt_shape(logits.shape()), pairs.len())));
                }
                let value = logit_diff(logits.view(), pairs)?.iter().sum();
                for (b, &(a, w)) in pairs.iter().enumerate() {
                    grad[[b, seq - 1, a]] += 1.0;
                    grad[[b, seq - 1, w]] -= 1.0;
                }
                Ok((value, grad))
            }
            Metric::LogProb { position, tokens } => {
                if tokens.len() != rows || *position >= seq {
                    return Err(Error::Input(format!(
                        "log-probability at position {position} of {} tokens: logits are {} (one token per row, position below S)",
                        tokens.len(),
                        fmt_shape(logits.shape())
                    )));
                }
                let mut value = 0.0;
                for (b, &t) in tokens.iter().enumerate() {
                    let probs = softmax_row(&logits, b, *position, t, vocab)?;
                    value += probs[t].ln();
                    for (v, p) in probs.iter().enumerate() {
                        grad[[b, *position, v]] = f64::from(u8::from(v == t)) - p;
                    }
                }
                Ok((value, grad))
            }
            Metric::Loss(targets) => loss(logits, targets, grad),
        }
    }
}

/// SPEC's loss and its gradient (see [`Metric::Loss`]).
fn loss<T: Copy + Into<f64>>(logits: ArrayViewD<'_, T>, targets: &ArrayD<i64>, mut grad: ArrayD<f64>) -> Result<(f64, ArrayD<f64>)> {
    let shape = logits.shape();
    if targets.shape() != &shape[..2] {
        return Err(Error::Shape(format!("targets are {} but the logits are {}: want [batch, positions]", fmt_shape(targets.shape()), fmt_shape(shape))));
    }
    let counted = targets.iter().filter(|&&t| t >= 0).count();
    if counted == 0 {
        return Err(Error::Input("targets: every target is negative (ignored), so the loss is undefined".into()));
    }
    let mut total = 0.0;
    for ((b, s), &t) in targets.indexed_iter().map(|(i, t)| ((i[0], i[1]), t)) {
        if t < 0 {
            continue;
        }
        let t = t as usize;
        let probs = softmax_row(&logits, b, s, t, shape[2])?;
        total -= probs[t].ln();
        for (v, p) in probs.iter().enumerate() {
            grad[[b, s, v]] = (p - f64::from(u8::from(v == t))) / counted as f64;
        }
    }
    Ok((total / counted as f64, grad))
}

/// `softmax(logits[b, s])` in float64, after checking that `token` is below `vocab`.
fn softmax_row<T: Copy + Into<f64>>(logits: &ArrayViewD<'_, T>, b: usize, s: usize, token: usize, vocab: usize) -> Result<Vec<f64>> {
    if token >= vocab {
        return Err(Error::Input(format!("token {token} (row {b}) is out of range for {vocab} logits")));
    }
    let row: Vec<f64> = (0..vocab).map(|v| logits[[b, s, v]].into()).collect();
    let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let exp: Vec<f64> = row.iter().map(|x| (x - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    Ok(exp.iter().map(|e| e / sum).collect())
}

/// TransformerLens's language-model targets for `tokens` \[B, S\]: position `s` predicts token
/// `s + 1`; the last position is ignored (−1).
pub fn next_token_targets(tokens: &ArrayD<i64>) -> Result<ArrayD<i64>> {
    let &[_, seq] = tokens.shape() else {
        return Err(Error::Shape(format!("tokens are {} but must be [batch, positions]", fmt_shape(tokens.shape()))));
    };
    let mut out = ArrayD::<i64>::from_elem(tokens.raw_dim(), -1);
    for ((b, s), t) in tokens.indexed_iter().map(|(i, t)| ((i[0], i[1]), *t)) {
        if s > 0 && seq > 1 {
            out[[b, s - 1]] = t;
        }
    }
    Ok(out)
}
