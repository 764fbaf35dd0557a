//! Load: one `Gpu` shared by 8 threads making 200 mixed calls each gives results bit-identical
//! to the same calls made one by one, and 10,000 calls in a loop leave the process's memory flat
//! (no readback staging buffer, uniform buffer or bind group is kept).

mod common;

use std::sync::Arc;
use std::time::Instant;

use ndarray::{ArrayD, IxDyn};
use shaderlens::ops::{self, gelu::Gelu};
use shaderlens::{Gpu, GpuTensor};

#[allow(dead_code)]
fn assert_send_sync<T: Send + Sync>() {}

/// Compile-time: sharing a `Gpu` (and tensors) across threads needs no wrapper but an `Arc`.
const _: fn() = || {
    assert_send_sync::<Gpu>();
    assert_send_sync::<GpuTensor>();
    assert_send_sync::<shaderlens::Error>();
};

/// Small pseudo-random arrays, the same for the same seed.
fn array(seed: u64, shape: &[usize]) -> ArrayD<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    ArrayD::from_shape_fn(IxDyn(shape), |_| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % 20_000) as f32 / 5_000.0 - 2.0
    })
}

/// Call number `i` of a mix of every op (both matmul kernels, both attention paths), on inputs
/// drawn from `seed`; returns every output it read back.
fn call(gpu: &Gpu, seed: u64, i: usize) -> Vec<ArrayD<f32>> {
    let s = seed * 1000 + i as u64;
    let result = match i % 7 {
        0 => ops::matmul::run(gpu, array(s, &[5, 7]).view(), array(s + 1, &[7, 6]).view()).map(|o| vec![o]),
        1 => ops::matmul::run(gpu, array(s, &[2, 8, 8]).view(), array(s + 1, &[8, 4]).view()).map(|o| vec![o]),
        2 => ops::softmax::run(gpu, array(s, &[3, 10]).view()).map(|o| vec![o]),
        3 => ops::layer_norm::run(gpu, array(s, &[4, 12]).view(), array(s + 1, &[12]).view(), array(s + 2, &[12]).view(), 1e-5)
            .map(|o| vec![o]),
        4 => ops::gelu::run(gpu, if s.is_multiple_of(2) { Gelu::Tanh } else { Gelu::Erf }, array(s, &[50]).view()).map(|o| vec![o]),
        _ => {
            let (q, k, v) = (array(s, &[1, 2, 5, 8]), array(s + 1, &[1, 2, 6, 8]), array(s + 2, &[1, 2, 6, 4]));
            ops::attention::run(gpu, q.view(), k.view(), v.view(), true, 0.35, i % 7 == 5)
                .map(|(out, pattern)| std::iter::once(out).chain(pattern).collect())
        }
    };
    result.unwrap_or_else(|e| panic!("call {i} of seed {seed}: {e}"))
}

fn bits(arrays: &[ArrayD<f32>]) -> Vec<Vec<u32>> {
    arrays.iter().map(|a| a.iter().map(|v| v.to_bits()).collect()).collect()
}

const THREADS: u64 = 8;
const CALLS: usize = 200;

#[test]
fn eight_threads_give_the_results_of_one() {
    let gpu = common::gpu();
    let started = Instant::now();
    let one_by_one: Vec<Vec<Vec<Vec<u32>>>> =
        (0..THREADS).map(|t| (0..CALLS).map(|i| bits(&call(&gpu, t, i))).collect()).collect();
    let sequential = started.elapsed();
    let started = Instant::now();
    let shared: Arc<Gpu> = gpu.arc();
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let gpu = shared.clone();
            std::thread::spawn(move || (0..CALLS).map(|i| bits(&call(&gpu, t, i))).collect::<Vec<_>>())
        })
        .collect();
    let together: Vec<_> = handles.into_iter().map(|h| h.join().expect("a thread panicked")).collect();
    let concurrent = started.elapsed();
    eprintln!(
        "load: {THREADS} threads x {CALLS} calls on {} (serialised: {}): one by one {sequential:.2?}, concurrently {concurrent:.2?}",
        gpu.description(),
        gpu.serialized()
    );
    for t in 0..THREADS as usize {
        for i in 0..CALLS {
            assert!(together[t][i] == one_by_one[t][i], "thread {t}, call {i}: results differ from the sequential run");
        }
    }
}

/// Resident set size of this process in bytes (Linux).
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm is readable on Linux");
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).expect("statm's second field");
    pages * 4096
}

#[test]
fn ten_thousand_calls_leave_memory_flat() {
    let gpu = common::gpu();
    // Tiny calls through every op: any buffer, bind group or staging buffer kept per call would
    // add up to megabytes over 10,000 calls.
    let tiny = |i: usize| {
        let x = array(i as u64 % 16, &[2, 4]);
        let w = array(3, &[4]);
        let out = match i % 5 {
            0 => ops::gelu::run(&gpu, Gelu::Tanh, x.view()),
            1 => ops::softmax::run(&gpu, x.view()),
            2 => ops::layer_norm::run(&gpu, x.view(), w.view(), w.view(), 1e-5),
            3 => ops::matmul::run(&gpu, x.view(), array(4, &[4, 4]).view()),
            _ => {
                let q = x.clone().into_shape_with_order(IxDyn(&[1, 1, 2, 4])).expect("8 elements");
                ops::attention::run(&gpu, q.view(), q.view(), q.view(), i.is_multiple_of(2), 0.5, i.is_multiple_of(3)).map(|(o, _)| o)
            }
        };
        out.unwrap_or_else(|e| panic!("call {i}: {e}"));
    };
    for i in 0..1_000 {
        tiny(i);
    }
    let warm = rss();
    let started = Instant::now();
    for i in 0..10_000 {
        tiny(i);
    }
    let after = rss();
    let growth = after as i64 - warm as i64;
    eprintln!(
        "leak: RSS {:.1} MiB after 1,000 warm-up calls, {:.1} MiB after 10,000 more ({:+.2} MiB, {:.2?}) on {}",
        warm as f64 / 1048576.0,
        after as f64 / 1048576.0,
        growth as f64 / 1048576.0,
        started.elapsed(),
        gpu.description()
    );
    assert!(growth < 4 << 20, "RSS grew by {growth} bytes over 10,000 calls");
}
