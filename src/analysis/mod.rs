//! Interpretability on top of the forward (and backward) pass: activation-patching sweeps and
//! attribution patching, as SPEC's "Analysis" defines them and TransformerLens computes them.
//!
//! Every analysis starts from a [`Prompts`] set: `clean` and `corrupt` token batches \[B, S\] (a
//! prompt pair per row) and per row an `answer` and a `wrong` token. The metric of a run is the
//! logit difference at the last position ([`metric`]). [`sweep`] names the patching sweeps and
//! what each patch touches; [`patch_gpu`] runs them on the GPU, many patches per submission
//! (the patched runs stacked along the batch axis); [`patch_ref`] is the float64 twin, one
//! reference forward per patch; [`attribution`] is the gradient estimate of the same thing,
//! `(a_clean − a_corrupt) · ∂metric/∂a`, from one clean forward, one corrupt forward and one
//! backward; [`cli`] is `shaderlens patch`.

pub mod analyze_cli;
pub mod attribution;
pub mod attribution_gpu;
pub mod cli;
pub mod metric;
pub mod patch_gpu;
pub mod patch_ref;
pub mod resid;
pub mod resid_gpu;
pub mod progress;
pub mod progress_cli;
pub mod progress_train;
pub mod sweep;
pub mod sweep_png;

use ndarray::ArrayD;

use crate::error::{fmt_shape, Error, Result};
use crate::transformer::{check_tokens, Config};

pub use sweep::Sweep;

/// A batch of prompt pairs and the two tokens whose logit difference is the metric.
#[derive(Clone, Debug)]
pub struct Prompts {
    /// The clean prompts \[B, S\], whose activations are patched in.
    pub clean: ArrayD<i64>,
    /// The corrupted prompts \[B, S\], the run that is patched.
    pub corrupt: ArrayD<i64>,
    /// Per row, the token whose logit should win \[B\].
    pub answer: ArrayD<i64>,
    /// Per row, the token it competes with \[B\].
    pub wrong: ArrayD<i64>,
}

impl Prompts {
    /// Checks every array against `config` and each other (tokens in range, the same \[B, S\],
    /// answer and wrong \[B\] below `d_vocab_out`); returns `(B, S)`.
    pub fn check(&self, config: &Config) -> Result<(usize, usize)> {
        let clean = check_tokens(config, self.clean.view()).map_err(|e| named("clean", e))?;
        let corrupt = check_tokens(config, self.corrupt.view()).map_err(|e| named("corrupt", e))?;
        if clean != corrupt {
            return Err(Error::Shape(format!(
                "clean is {} but corrupt is {}: they must be the same prompt pairs, row by row",
                fmt_shape(self.clean.shape()),
                fmt_shape(self.corrupt.shape())
            )));
        }
        for (name, a) in [("answer", &self.answer), ("wrong", &self.wrong)] {
            if a.shape() != [clean.0] {
                return Err(Error::Shape(format!("{name} is {} but must be [{}]: one token per prompt pair", fmt_shape(a.shape()), clean.0)));
            }
            if let Some((i, &t)) = a.iter().enumerate().find(|(_, &t)| t < 0 || t as u64 >= config.d_vocab_out as u64) {
                return Err(Error::Input(format!("{name}[{i}] is {t}: it must lie in [0, {}) (d_vocab_out)", config.d_vocab_out)));
            }
        }
        Ok(clean)
    }

    /// The rows' `(answer, wrong)` as indices (after [`Prompts::check`]).
    pub(crate) fn pairs(&self) -> Vec<(usize, usize)> {
        self.answer.iter().zip(self.wrong.iter()).map(|(&a, &w)| (a as usize, w as usize)).collect()
    }
}

/// `e` with `what: ` in front of its message, so that a token error says which batch it is in.
fn named(what: &str, e: Error) -> Error {
    match e {
        Error::Shape(m) => Error::Shape(format!("{what}: {m}")),
        Error::Input(m) => Error::Input(format!("{what}: {m}")),
        other => other,
    }
}
