//! The `transformer` bench case: the whole forward pass of an Othello-GPT-shaped model (random
//! weights), on the GPU with nothing cached (`logits`) and with every hook cached on the GPU
//! (`cache`), and the loss with every parameter's gradient (`backward`: forward and backward in
//! one submission, next-token targets), against the float64 host forward of
//! [`crate::reference::transformer`] (the rate of `backward` counts the forward's flops only, so
//! the time ratio to `logits` is the cost of a training step over a forward).
//!
//! The case's shape is `[B, S, layers, d_model]`: heads of 64 (one head when d_model < 64),
//! d_mlp = 4 d_model, a vocabulary of 61, GELU and LayerNorm as Othello-GPT. The standard case is
//! `[64, 59, 8, 512]`: 64 games of 59 moves through Othello-GPT's 8 layers of 512.

use ndarray::{ArrayD, IxDyn};

use super::run::{inputs, GpuRun, Prepared, Record, Work};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::transformer::{Config, GradOptions, Model, Names, Options, Seed, Weights};

const VOCAB: usize = 61;

/// Uploads a random model of the case's size and returns its two GPU runs and the host forward.
pub fn prepare<'a>(gpu: &'a Gpu, shape: &[usize]) -> Result<Prepared<'a>> {
    let &[batch, seq, layers, d_model] = shape else {
        return Err(Error::Shape(format!("transformer bench shape {shape:?} is not [B, S, layers, d_model]")));
    };
    let heads = (d_model / 64).max(1);
    let (d_head, d_mlp) = (d_model / heads, 4 * d_model);
    let config = Config::from_json(&format!(
        r#"{{"n_layers": {layers}, "d_model": {d_model}, "n_heads": {heads}, "d_head": {d_head}, "d_mlp": {d_mlp},
            "d_vocab": {VOCAB}, "d_vocab_out": {VOCAB}, "n_ctx": {seq}, "act_fn": "gelu", "normalization_type": "LN",
            "attn_only": false, "eps": 1e-5, "positional_embedding_type": "standard"}}"#
    ))?;
    let mut seed = 100;
    let weights = Weights::build(&config, |_, shape| {
        seed += 1;
        Ok(inputs(shape, seed).mapv(|x| 0.1 * x))
    })?;
    let tokens = ArrayD::from_shape_fn(IxDyn(&[batch, seq]), |ix| ((ix[0] * 17 + ix[1] * 5) % VOCAB) as i64);
    let model = std::sync::Arc::new(Model::load(gpu, config.clone(), &weights)?);
    let mut runs = Vec::new();
    for (variant, names) in [("logits", Names::Nothing), ("cache", Names::All)] {
        let (model, tokens) = (model.clone(), tokens.clone());
        let record: Record<'a> = Box::new(move |encoder| {
            let options = Options { names: names.clone(), interventions: &[] };
            model.record(gpu, encoder, tokens.view(), &options).map(drop)
        });
        runs.push(GpuRun { variant: variant.into(), choice: "fixed", record });
    }
    let targets = ArrayD::from_shape_fn(IxDyn(&[batch, seq]), |ix| if ix[1] + 1 < seq { ((ix[0] * 17 + (ix[1] + 1) * 5) % VOCAB) as i64 } else { -1 });
    let (model_b, tokens_b) = (model.clone(), tokens.clone());
    let record: Record<'a> = Box::new(move |encoder| {
        let seed = Seed::CrossEntropy(targets.view());
        model_b.record_backward(gpu, encoder, tokens_b.view(), &seed, &GradOptions::default()).map(drop)
    });
    runs.push(GpuRun { variant: "backward".into(), choice: "fixed", record });
    let weights64 = weights.try_map(&config, |_, w| Ok(w.mapv(f64::from)))?;
    let host = Box::new(move || {
        crate::reference::transformer::forward(&config, &weights64, tokens.view(), &Names::Nothing, &[]).map(drop)
    });
    // Per token and layer: q, k, v and o projections (8 d_model^2), the MLP (4 d_model d_mlp);
    // per visible (query, key) pair and head, 4 d_head for scores and pattern @ v; the unembedding.
    let tokens_n = (batch * seq) as f64;
    let (dm, dmlp, l) = (d_model as f64, d_mlp as f64, layers as f64);
    let visible = (seq * (seq + 1) / 2) as f64;
    let flops = tokens_n * (l * (8.0 * dm * dm + 4.0 * dm * dmlp) + 2.0 * dm * VOCAB as f64)
        + l * (batch * heads) as f64 * 4.0 * d_head as f64 * visible;
    Ok(Prepared { runs, host, work: Work::Flops(flops) })
}
