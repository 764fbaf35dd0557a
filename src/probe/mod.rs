//! Linear probes of a model's world model (issue 16 item 4, the Othello-GPT result): from a hook's
//! activation at position t (the model has seen moves 0..t) to the board after move t in the
//! "mine / theirs / empty" form relative to the player to move next
//! ([`crate::games::dataset::relative_boards`]).
//!
//! A probe is one affine map `d_model → 64 squares × 3 classes` (`W` \[d, 192\], `b` \[192\],
//! column `3·square + class`), trained with the mean cross-entropy over squares and positions.
//!
//! - [`gpu`]: the probe trained ON THE GPU with the training kernels (matmul with transposed
//!   operands, the cross-entropy loss and d logits, column sums, AdamW), full batch, the
//!   activations uploaded once (in chunks of rows) and kept on the GPU;
//! - [`reference`]: its float64 host twin, step for step;
//! - [`data`]: activations collected from the model's forward cache in chunks of games, and the
//!   targets and masks (non-empty, flipped squares) of every position;
//! - [`report`]: accuracies, the printed table, the JSON report and the weights npz;
//! - [`figures`]: accuracy by layer, and one held-out board beside the probe's reading of it;
//! - [`cli`]: the `shaderlens probe` command.

pub mod cli;
pub mod data;
pub mod figures;
pub mod gpu;
pub mod reference;
pub mod report;

use crate::error::{Error, Result};
use crate::reference::backward::adamw::AdamW;

/// Classes per square: [`crate::games::dataset::EMPTY`], `MINE`, `THEIRS`.
pub const CLASSES: usize = 3;
/// Squares on the board.
pub const SQUARES: usize = crate::games::dataset::SQUARES;
/// Outputs of a probe: one logit per (square, class).
pub const OUTPUTS: usize = SQUARES * CLASSES;

/// Salt that keeps the probes' initial weights off the streams of the games and of model init.
const PROBE_SALT: u64 = 0x9_0BE0_0000_0000;

/// How a probe is trained.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hyper {
    /// Full-batch AdamW updates.
    pub steps: usize,
    /// AdamW's hyper-parameters.
    pub adamw: AdamW,
    /// Seed of the initial weights.
    pub seed: u64,
}

impl Default for Hyper {
    fn default() -> Self {
        Self { steps: 300, adamw: AdamW { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 }, seed: 0 }
    }
}

impl Hyper {
    /// Refuses what cannot train: no step, or AdamW values PyTorch refuses.
    pub fn check(&self) -> Result<()> {
        if self.steps == 0 {
            return Err(Error::Input("probe --steps is 0; a probe needs at least one update".into()));
        }
        self.adamw.check()
    }
}

/// A probe's weights on the host: `w` \[d, 192\] and `b` \[192\] (float32 values held exactly).
#[derive(Clone, Debug, PartialEq)]
pub struct Weights {
    /// \[d, 192\], column `3·square + class`.
    pub w: ndarray::Array2<f64>,
    /// \[192\].
    pub b: ndarray::Array1<f64>,
}

/// The initial weights of a probe of width `d` for `seed`: `w` uniform in ±1/√d (PyTorch's
/// `nn.Linear` bound), rounded to float32; `b` zero.
pub fn init(d: usize, seed: u64) -> Weights {
    use rand::RngExt;
    let mut rng = crate::games::dataset::game_rng(seed, PROBE_SALT);
    let bound = 1.0 / (d.max(1) as f64).sqrt();
    let w = ndarray::Array2::from_shape_simple_fn((d, OUTPUTS), || rng.random_range(-bound..bound) as f32 as f64);
    Weights { w, b: ndarray::Array1::zeros(OUTPUTS) }
}

/// The class of every square from logits \[rows, 192\]: the arg-max of each square's three.
pub fn classes(logits: ndarray::ArrayView2<'_, f32>) -> ndarray::Array2<i64> {
    let rows = logits.nrows();
    ndarray::Array2::from_shape_fn((rows, SQUARES), |(r, s)| {
        let l = [logits[[r, 3 * s]], logits[[r, 3 * s + 1]], logits[[r, 3 * s + 2]]];
        let mut best = 0;
        for c in 1..CLASSES {
            if l[c] > l[best] {
                best = c;
            }
        }
        best as i64
    })
}
