//! Shared test helpers: the one way tests get a GPU, and comparisons that name the worst element.
#![allow(dead_code)]

pub mod matmul;
pub mod model;

use std::ops::Deref;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use ndarray::Dimension;
use shaderlens::Gpu;

/// The test GPU plus a lock held for the whole test.
///
/// Tests of one binary run on threads; wgpu's GL backend has a single context that it waits for at
/// most a few seconds before panicking ("Could not lock adapter context"), so GPU tests take turns.
/// (Concurrency itself is tested on purpose, elsewhere, with bounded work.)
pub struct TestGpu {
    gpu: Arc<Gpu>,
    /// `None` when this thread already holds the turn (a helper that calls `gpu()` again).
    _turn: Option<MutexGuard<'static, ()>>,
}

thread_local! {
    /// How many `TestGpu`s this thread holds: the turn is taken by the first only.
    static HELD: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

impl Drop for TestGpu {
    fn drop(&mut self) {
        HELD.with(|h| h.set(h.get() - 1));
    }
}

impl Deref for TestGpu {
    type Target = Gpu;
    fn deref(&self) -> &Gpu {
        &self.gpu
    }
}

impl TestGpu {
    /// The shared `Gpu` itself (for tests that hand it to threads).
    pub fn arc(&self) -> Arc<Gpu> {
        self.gpu.clone()
    }
}

/// The test GPU, opened once per test binary. A test that cannot get an adapter FAILS with the
/// how-to message (never skips): a GPU test that passes without a GPU proves nothing.
pub fn gpu() -> TestGpu {
    static GPU: OnceLock<Result<Arc<Gpu>, String>> = OnceLock::new();
    static TURN: Mutex<()> = Mutex::new(());
    let turn = (HELD.with(|h| h.get()) == 0).then(|| TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
    match GPU.get_or_init(|| Gpu::new().map(Arc::new).map_err(|e| e.to_string())) {
        Ok(gpu) => {
            HELD.with(|h| h.set(h.get() + 1));
            TestGpu { gpu: gpu.clone(), _turn: turn }
        }
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

/// Deterministic standard normal samples (splitmix64 + Box-Muller), so failures reproduce.
pub fn normals(seed: u64, count: usize) -> Vec<f32> {
    let mut state = seed;
    let mut uniform = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..count)
        .map(|_| {
            let (u, v) = (uniform().max(1e-300), uniform());
            ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32
        })
        .collect()
}

/// An f32 array of `shape` from `data` (test data always matches its shape).
pub fn array(shape: &[usize], data: Vec<f32>) -> ndarray::ArrayD<f32> {
    ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(shape), data).expect("test data matches its shape")
}
