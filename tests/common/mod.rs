//! Shared test helpers: the one way tests get a GPU, and comparisons that name the worst element.
#![allow(dead_code)]

use std::sync::{Arc, OnceLock};

use ndarray::Dimension;
use shaderlens::Gpu;

/// The test GPU, opened once per test binary. A test that cannot get an adapter FAILS with the
/// how-to message (never skips): a GPU test that passes without a GPU proves nothing.
pub fn gpu() -> Arc<Gpu> {
    static GPU: OnceLock<Result<Arc<Gpu>, String>> = OnceLock::new();
    match GPU.get_or_init(|| Gpu::new().map(Arc::new).map_err(|e| e.to_string())) {
        Ok(gpu) => gpu.clone(),
        Err(message) => panic!("no GPU adapter for the GPU tests: {message}"),
    }
}

/// Asserts `|got - want| <= atol + rtol |want|` everywhere, naming the worst element on failure.
pub fn assert_close(got: &ndarray::ArrayD<f32>, want: &ndarray::ArrayD<f64>, atol: f64, rtol: f64, what: &str) {
    assert_eq!(got.shape(), want.shape(), "{what}: shapes differ");
    let mut worst: Option<(f64, Vec<usize>, f64, f64)> = None;
    for ((index, &g), &w) in got.indexed_iter().zip(want.iter()) {
        let g = f64::from(g);
        let ok = (g.is_nan() && w.is_nan()) || g == w || (g - w).abs() <= atol + rtol * w.abs();
        if !ok {
            let ratio = if (g - w).is_finite() { (g - w).abs() / (atol + rtol * w.abs()) } else { f64::INFINITY };
            if worst.as_ref().is_none_or(|(r, ..)| ratio > *r) {
                worst = Some((ratio, index.slice().to_vec(), g, w));
            }
        }
    }
    if let Some((ratio, index, g, w)) = worst {
        panic!("{what}: worst at {index:?}: got {g}, want {w} (error ratio {ratio:.3})");
    }
}
