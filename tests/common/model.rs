//! Small random models for the whole-model tests: weights scaled as an initialiser would (so that
//! activations stay of order one whatever the shape), and a fixed batch of tokens with targets.

use ndarray::ArrayD;
use shaderlens::transformer::{Config, Weights};

/// Seeded weights for `config`: `W_*` (other than `W_E`) normal / sqrt(fan-in), layer-norm weights
/// near 1, everything else normal × 0.3.
pub fn weights(config: &Config, seed: u64) -> Weights<ArrayD<f32>> {
    let mut i = 0u64;
    Weights::build(config, |name, shape| {
        i += 1;
        let n: usize = shape.iter().product();
        let data = super::normals(seed * 1000 + i, n);
        let leaf = name.rsplit('.').next().unwrap_or("");
        let scale = if leaf.starts_with("W_") && leaf != "W_E" { 1.0 / (shape[shape.len() - 2] as f32).sqrt() } else { 0.3 };
        let data = data.iter().map(|v| if leaf == "w" { 1.0 + 0.1 * v } else { scale * v }).collect();
        Ok(super::array(shape, data))
    })
    .expect("weights")
}

/// Two rows of five tokens (ids < 7) and targets (< 5) with ignored positions.
pub fn tokens_targets() -> (ArrayD<i64>, ArrayD<i64>) {
    let tokens = ndarray::arr2(&[[1i64, 6, 2, 2, 0], [3, 4, 5, 1, 6]]).into_dyn();
    let targets = ndarray::arr2(&[[4i64, -1, 0, 3, 2], [1, 1, -1, 4, 0]]).into_dyn();
    (tokens, targets)
}
