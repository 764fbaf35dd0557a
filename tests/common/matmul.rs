//! Helpers for the matmul tests: deterministic inputs and SPEC's matmul tolerance.

use ndarray::{ArrayD, Dimension, IxDyn};
use proptest::prelude::*;
use shaderlens::reference::matmul as reference;

/// Deterministic values in [-1, 1) with varied magnitudes (splitmix64), so that sums cancel.
pub fn random(shape: &[usize], seed: u64) -> ArrayD<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1);
    ArrayD::from_shape_simple_fn(IxDyn(shape), || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let unit = (z >> 40) as f32 / (1u64 << 24) as f32;
        let scale = [1.0f32, 0.01, 100.0, 1.0][(z & 3) as usize];
        (2.0 * unit - 1.0) * scale
    })
}

/// SPEC's allowed error for every output element of `a @ b`.
pub fn allowed(a: &ArrayD<f32>, b: &ArrayD<f32>) -> ArrayD<f64> {
    let k = a.shape()[a.ndim() - 1] as f64;
    let abs_product = reference::matmul(a.mapv(|v| f64::from(v).abs()).view(), b.mapv(|v| f64::from(v).abs()).view())
        .expect("shapes were checked by the caller");
    abs_product.mapv(|p| 2.0 * k * 2f64.powi(-24) * p + 1e-30)
}

/// Asserts `got` is within SPEC's tolerance of `a @ b`; returns the error ratio (max error / allowed).
pub fn assert_matmul(got: &ArrayD<f32>, a: &ArrayD<f32>, b: &ArrayD<f32>, what: &str) -> f64 {
    let want = reference::matmul(a.mapv(f64::from).view(), b.mapv(f64::from).view()).expect("reference");
    assert_eq!(got.shape(), want.shape(), "{what}: shapes differ");
    let allowed = allowed(a, b);
    let mut worst = (0.0f64, Vec::new(), 0.0f64, 0.0f64);
    for (((index, &g), &w), &tol) in got.indexed_iter().zip(want.iter()).zip(allowed.iter()) {
        let ratio = (f64::from(g) - w).abs() / tol;
        if ratio.is_nan() || ratio > worst.0 {
            worst = (ratio, index.slice().to_vec(), f64::from(g), w);
        }
    }
    let (ratio, index, g, w) = worst;
    assert!(ratio <= 1.0, "{what}: worst at {index:?}: got {g}, want {w} (error ratio {ratio:.3})");
    ratio
}


/// Batch dims for a and b that broadcast to a common shape: each is a right-aligned suffix of the
/// output batch with some dimensions replaced by 1.
pub fn broadcast_batches() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    prop::collection::vec((1usize..=3, any::<bool>(), any::<bool>()), 0..=3).prop_flat_map(|dims| {
        let len = dims.len();
        (Just(dims), 0..=len, 0..=len).prop_map(|(dims, drop_a, drop_b)| {
            let a = dims[drop_a..].iter().map(|&(d, one, _)| if one { 1 } else { d }).collect();
            let b = dims[drop_b..].iter().map(|&(d, _, one)| if one { 1 } else { d }).collect();
            (a, b)
        })
    })
}
