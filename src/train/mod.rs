//! Training: `shaderlens train CONFIG.toml` trains a model from scratch and writes its metrics,
//! checkpoints (SPEC's Transformer format), optimizer state and loss curves.
//!
//! The run ([`run`]) is written against a small [`Backend`] trait, the one thing that differs
//! between the float64 reference trainer ([`reference::ReferenceTrainer`], also the reference
//! side of `verify train`) and a GPU trainer (the GPU backward of the whole model plus
//! [`gpu_optimizer::GpuOptimizer`], one AdamW dispatch over every parameter). [`config`] reads the
//! run's TOML ([`fields`] lists its keys), [`schedule`] gives the learning rate of each update,
//! [`init`] the initial weights as TransformerLens's gpt2 init draws them, [`checkpoint`] writes
//! and reads the files of a run, [`cli`] is the subcommand.

pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod fields;
pub mod gpu_optimizer;
pub mod gpu_trainer;
pub mod grokfast;
pub mod init;
pub mod othello;
pub mod othello_run;
pub mod reference;
pub mod run;
pub mod schedule;

use ndarray::{ArrayD, ArrayView2, ArrayViewD, Axis};

use crate::error::{Error, Result};
use crate::model::weights::Weights;

/// What a trainer must do; the run loop does the rest (data, schedule, evaluation, files).
///
/// A GPU implementation keeps everything on the device: [`Backend::step`] reads nothing back,
/// and only [`Backend::evaluate`], [`Backend::grad_norm`] and [`Backend::weight_norm`] (called at
/// evaluation steps) and [`Backend::state`] (at checkpoints) read back.
pub trait Backend {
    /// Names the backend for logs ("float64 reference", the adapter's name).
    fn describe(&self) -> String;
    /// Update number `t` (≥ 1): the loss and gradients of the batch (`tokens`, `targets`
    /// \[B, S\], SPEC's Gradients), clipping as configured, then AdamW with learning rate `lr`.
    fn step(&mut self, tokens: ArrayView2<'_, i64>, targets: ArrayView2<'_, i64>, t: u64, lr: f64) -> Result<()>;
    /// The loss and accuracy of the current weights on a data set (no update).
    fn evaluate(&mut self, tokens: ArrayView2<'_, i64>, targets: ArrayView2<'_, i64>) -> Result<Evaluation>;
    /// The logits \[B, S, V\] of the current weights (the Othello run takes its held-out games'
    /// top-1 moves from them).
    fn logits(&mut self, tokens: ArrayView2<'_, i64>) -> Result<ArrayD<f64>>;
    /// The global L2 norm of the last update's gradients, before clipping (0 before any update).
    fn grad_norm(&mut self) -> Result<f64>;
    /// The global L2 norm of the parameters.
    fn weight_norm(&mut self) -> Result<f64>;
    /// The parameters and the moments, exactly (float32 values are held exactly in float64).
    fn state(&mut self) -> Result<State>;
    /// Replaces the parameters and moments (a resumed run).
    fn set_state(&mut self, state: &State) -> Result<()>;
}

/// A trainer's state: parameters and AdamW's moments, by state-dict name.
#[derive(Clone, Debug)]
pub struct State {
    /// The parameters.
    pub params: Weights<ArrayD<f64>>,
    /// The first moments.
    pub m: Weights<ArrayD<f64>>,
    /// The second moments.
    pub v: Weights<ArrayD<f64>>,
    /// Grokfast's gradient average (`None`: Grokfast off, or no update filtered yet).
    pub ema: Option<Weights<ArrayD<f64>>>,
}

/// Loss and accuracy on a data set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evaluation {
    /// Mean cross-entropy over the positions with a target.
    pub loss: f64,
    /// Fraction of those positions whose largest logit is the target.
    pub accuracy: f64,
}

/// Whether parameter `name` takes weight decay: every parameter when `decay_biases_and_norms`
/// (torch's default); otherwise not biases (`b_*`, `ln*.b`) nor layer-norm weights (`ln*.w`).
pub fn decays(name: &str, decay_biases_and_norms: bool) -> bool {
    if decay_biases_and_norms {
        return true;
    }
    let leaf = name.rsplit('.').next().unwrap_or(name);
    let norm = name.split('.').any(|part| part.starts_with("ln"));
    !(leaf.starts_with('b') || norm)
}

/// The loss and accuracy of `logits` \[B, S, V\] against `targets` \[B, S\] (−1: no target).
pub fn evaluate_logits(logits: ArrayViewD<'_, f64>, targets: ArrayView2<'_, i64>) -> Result<Evaluation> {
    let ce = crate::reference::backward::loss::cross_entropy(logits.view(), targets.into_dyn())?;
    let last = Axis(logits.ndim() - 1);
    let mut right = 0usize;
    for (row, &target) in logits.lanes(last).into_iter().zip(targets.iter()) {
        if target < 0 {
            continue;
        }
        let best = row.iter().enumerate().fold((0, f64::NEG_INFINITY), |b, (i, &x)| if x > b.1 { (i, x) } else { b });
        right += usize::from(best.0 as i64 == target);
    }
    if ce.count == 0 {
        return Err(Error::Input("evaluation: no position has a target".into()));
    }
    Ok(Evaluation { loss: ce.loss, accuracy: right as f64 / ce.count as f64 })
}

/// The global L2 norm of every array of `w`.
pub fn global_norm(w: &Weights<ArrayD<f64>>) -> f64 {
    w.named().iter().map(|(_, a)| a.iter().map(|x| x * x).sum::<f64>()).sum::<f64>().sqrt()
}
