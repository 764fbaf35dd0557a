//! Small random models for the whole-model tests: weights scaled as an initialiser would (so that
//! activations stay of order one whatever the shape), and a fixed batch of tokens with targets.

use ndarray::{ArrayD, IxDyn};
use shaderlens::compare::Comparison;
use shaderlens::reference::backward::fixtures::{GRAD, GRAD_LOSS};
use shaderlens::reference::backward::model::TransformerGrad;
use shaderlens::transformer::{Config, GradArrays, Weights};

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

/// Asserts that the GPU backward's loss, parameter gradients and hook gradients (`got`) agree
/// with the float64 reference's (`want`) within SPEC's gradient tolerances, naming the worst
/// element; the hook gradients must be the same hooks in the same order.
pub fn assert_grads_match(got: &GradArrays, want: &TransformerGrad, what: &str) {
    let mut c = Comparison::new();
    let loss = ArrayD::from_elem(IxDyn(&[]), got.loss.expect("a loss"));
    let want_loss = ArrayD::from_elem(IxDyn(&[]), want.loss);
    c.add_f32("loss", &loss.view(), &want_loss.view(), &GRAD_LOSS.allowed(&want_loss.view()).view()).expect("loss");
    for ((name, g), (_, r)) in got.params.named().into_iter().zip(want.grads.named()) {
        c.add_f32(&name, &g.view(), &r.view(), &GRAD.allowed(&r.view()).view()).expect("param");
    }
    assert_eq!(got.cache.len(), want.cache.len(), "{what}: hook gradients");
    for ((name, g), (want_name, r)) in got.cache.iter().zip(want.cache.iter()) {
        assert_eq!(name, want_name, "{what}");
        c.add_f32(name, &g.view(), &r.view(), &GRAD.allowed(&r.view()).view()).expect("hook");
    }
    assert!(c.passed(), "{what}: ratio {} worst {:?}", c.ratio, c.worst);
}
