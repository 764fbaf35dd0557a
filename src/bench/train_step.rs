//! The `train_step` bench case: one full update of the GPU trainer (forward, mean cross-entropy,
//! backward of every parameter, global-norm clipping, AdamW over the parameter arena, repacking
//! `W_Q`/`W_K`/`W_V`), beside the forward alone on the same model in the same run, against the
//! float64 host trainer's update ([`crate::train::reference::ReferenceTrainer`]) on the same batch.
//!
//! The case's shape is `[B, S, layers, d_model, heads]`, d_head = d_model / heads and d_mlp =
//! 4 d_model. A sequence of 3 is modular arithmetic's `a b =` (the grokking setup: p = 113, a
//! vocabulary of 114 in and 113 out, ReLU, no layer norm, the loss on the last position only);
//! any other length is Othello-shaped (a vocabulary of 61, GELU, LayerNorm, next-token targets).
//! Standard: the grokking size `[3830, 3, 1, 128, 4]` (3,830 examples, full batch) and the
//! othello-small preset's model on 8 games `[8, 59, 2, 128, 4]`; with `large`, Othello-GPT's
//! own model on 64 games `[64, 59, 8, 512, 8]` (a step takes tens of seconds on lavapipe).
//!
//! Rows: `step` records the whole update into one encoder and submits it once (the trainer's
//! [`crate::train::Backend::step`] submits the same work in two: see `examples/train_step.rs`,
//! which also counts dispatches and submissions per update); `forward` is the logits alone. Work:
//! the forward's flops (as the `transformer` case counts them), so both rows' GFLOP/s share one
//! numerator and `forward` GFLOP/s over `step` GFLOP/s is the update's cost in forwards.

use std::sync::Arc;

use ndarray::{Array2, ArrayD};

use super::run::{GpuRun, Prepared, Record, Work};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::spec::adamw::AdamW;
use crate::train::config::Optimizer;
use crate::train::gpu_optimizer::GpuOptimizer;
use crate::train::reference::ReferenceTrainer;
use crate::train::Backend;
use crate::model::weights::Weights;
use crate::transformer::{Config, GradOptions, Model, Options, Seed};

/// The modulus of the grokking setup (sequence length 3).
const P: usize = 113;
/// Othello's vocabulary (any other sequence length).
const OTHELLO_VOCAB: usize = 61;
/// The learning rate every timed update uses.
pub const LR: f64 = 1e-3;

/// What one training update needs: the model's config, its gpt2-initialised weights, a batch, the
/// optimizer, and the forward's flops. Shared by the bench case and `examples/train_step.rs`.
pub struct Setup {
    /// The model.
    pub config: Config,
    /// The initial weights (float32 values held in float64).
    pub initial: Weights<ArrayD<f64>>,
    /// The batch's tokens \[B, S\].
    pub tokens: Array2<i64>,
    /// The batch's targets \[B, S\] (−1: no target).
    pub targets: Array2<i64>,
    /// AdamW with clipping at 1.0 (decay on every parameter).
    pub optimizer: Optimizer,
    /// Flops of one forward pass of the batch.
    pub forward_flops: f64,
}

/// The model, batch and optimizer of the case's shape (see the module documentation).
pub fn setup(shape: &[usize]) -> Result<Setup> {
    let &[batch, seq, layers, d_model, heads] = shape else {
        return Err(Error::Shape(format!("train_step bench shape {shape:?} is not [B, S, layers, d_model, heads]")));
    };
    if heads == 0 || d_model % heads != 0 {
        return Err(Error::Shape(format!("train_step bench: d_model {d_model} is not a multiple of {heads} heads")));
    }
    let grokking = seq == 3;
    let (vocab_in, vocab_out) = if grokking { (P + 1, P) } else { (OTHELLO_VOCAB, OTHELLO_VOCAB) };
    let (act, norm) = if grokking { ("relu", "null") } else { ("gelu", "\"LN\"") };
    let (d_head, d_mlp) = (d_model / heads, 4 * d_model);
    let config = Config::from_json(&format!(
        r#"{{"n_layers": {layers}, "d_model": {d_model}, "n_heads": {heads}, "d_head": {d_head}, "d_mlp": {d_mlp},
            "d_vocab": {vocab_in}, "d_vocab_out": {vocab_out}, "n_ctx": {seq}, "act_fn": "{act}", "normalization_type": {norm},
            "attn_only": false, "eps": 1e-5, "positional_embedding_type": "standard"}}"#
    ))?;
    let initial = crate::train::init::init_weights(&config, 0.8 / (d_model as f64).sqrt(), 7)?;
    let (tokens, targets) = if grokking { modular_batch(batch) } else { othello_batch(batch, seq) };
    let optimizer = Optimizer {
        adamw: AdamW { lr: LR, beta1: 0.9, beta2: 0.98, eps: 1e-8, weight_decay: 1.0 },
        decay_biases_and_norms: true,
        max_grad_norm: Some(1.0),
        grokfast: None,
    };
    Ok(Setup { forward_flops: forward_flops(&config, batch, seq), config, initial, tokens, targets, optimizer })
}

/// `batch` pairs `a b =` with target `(a + b) mod p` on the last position (distinct pairs while
/// `batch` ≤ p²).
fn modular_batch(batch: usize) -> (Array2<i64>, Array2<i64>) {
    let pair = |i: usize| ((i * 37) % P, (i / P + i * 11) % P);
    let tokens = Array2::from_shape_fn((batch, 3), |(i, j)| {
        let (a, b) = pair(i);
        [a, b, P][j] as i64
    });
    let targets = Array2::from_shape_fn((batch, 3), |(i, j)| {
        let (a, b) = pair(i);
        if j == 2 { ((a + b) % P) as i64 } else { -1 }
    });
    (tokens, targets)
}

/// Deterministic move-like tokens and their next-token targets (−1 on the last position).
fn othello_batch(batch: usize, seq: usize) -> (Array2<i64>, Array2<i64>) {
    let token = |g: usize, s: usize| ((g * 17 + s * 5) % OTHELLO_VOCAB) as i64;
    let tokens = Array2::from_shape_fn((batch, seq), |(g, s)| token(g, s));
    let targets = Array2::from_shape_fn((batch, seq), |(g, s)| if s + 1 < seq { token(g, s + 1) } else { -1 });
    (tokens, targets)
}

/// The forward's flops: per token and layer the q, k, v, o projections and the MLP, per visible
/// (query, key) pair and head `4 d_head`, and the unembedding.
fn forward_flops(config: &Config, batch: usize, seq: usize) -> f64 {
    let (dm, dmlp, l) = (config.d_model as f64, config.d_mlp.unwrap_or(0) as f64, config.n_layers as f64);
    let visible = (seq * (seq + 1) / 2) as f64;
    let tokens = (batch * seq) as f64;
    tokens * (l * (8.0 * dm * dm + 4.0 * dm * dmlp) + 2.0 * dm * config.d_vocab_out as f64)
        + l * (batch * config.n_heads) as f64 * 4.0 * config.d_head as f64 * visible
}

/// Uploads the model and optimizer of the case's size and returns the `step` and `forward` runs
/// and the host trainer's update.
pub fn prepare<'a>(gpu: &'a Gpu, shape: &[usize]) -> Result<Prepared<'a>> {
    let Setup { config, initial, tokens, targets, optimizer, forward_flops } = setup(shape)?;
    let model = Arc::new(Model::load(gpu, config.clone(), &initial.try_map(&config, |_, a| Ok(a.mapv(|x| x as f32)))?)?);
    let adam = GpuOptimizer::new(gpu, &config, optimizer, model.weights())?;
    let (model_s, tokens_s, targets_s) = (model.clone(), tokens.clone(), targets.clone());
    let mut t = 0u64;
    let step: Record<'a> = Box::new(move |encoder| {
        t += 1;
        let seed = Seed::CrossEntropy(targets_s.view().into_dyn());
        let grads = model_s.record_backward(gpu, encoder, tokens_s.view().into_dyn(), &seed, &GradOptions::default())?;
        adam.record_step(gpu, encoder, &grads.params, model_s.weights(), t, LR)?;
        model_s.record_repack(gpu, encoder)
    });
    let tokens_f = tokens.clone();
    let forward: Record<'a> = Box::new(move |encoder| model.record(gpu, encoder, tokens_f.view().into_dyn(), &Options::default()).map(drop));
    let mut host_trainer = ReferenceTrainer::new(&config, optimizer, initial)?;
    let mut host_t = 0u64;
    let host = Box::new(move || {
        host_t += 1;
        host_trainer.step(tokens.view(), targets.view(), host_t, LR)
    });
    Ok(Prepared {
        runs: vec![
            GpuRun { variant: "step".into(), choice: "fixed", record: step },
            GpuRun { variant: "forward".into(), choice: "fixed", record: forward },
        ],
        host,
        work: Work::Flops(forward_flops),
    })
}
