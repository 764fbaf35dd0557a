//! Rough matmul throughput on the current adapter: `cargo run --release --example matmul_throughput [SIZE]`
//! times `matmul::run` (upload, kernel, readback) and the kernel alone for SIZE^3 (default 1024)
//! after a warmup, and prints GFLOP/s. Not a benchmark suite: on a shared CPU, read it with care.
use ndarray::{ArrayD, IxDyn};
use shaderlens::{ops::matmul, Gpu, GpuTensor};
use std::time::Instant;

fn main() {
    let gpu = Gpu::new().unwrap();
    eprintln!("{}", gpu.description());
    let s: usize = std::env::args().nth(1).map(|v| v.parse().unwrap()).unwrap_or(1024);
    let a = ArrayD::from_shape_fn(IxDyn(&[s, s]), |i| ((i[0] * 7 + i[1] * 3) % 13) as f32 - 6.0);
    let b = ArrayD::from_shape_fn(IxDyn(&[s, s]), |i| ((i[0] * 5 + i[1]) % 11) as f32 - 5.0);
    let flops = 2.0 * (s as f64).powi(3);
    matmul::run(&gpu, a.view(), b.view()).unwrap();
    for _ in 0..3 {
        let t = Instant::now();
        matmul::run(&gpu, a.view(), b.view()).unwrap();
        let dt = t.elapsed().as_secs_f64();
        println!("run: {:.3} s, {:.2} GFLOP/s", dt, flops / dt / 1e9);
    }
    let ta = GpuTensor::upload(&gpu, a.view(), "a").unwrap();
    let tb = GpuTensor::upload(&gpu, b.view(), "b").unwrap();
    let out = GpuTensor::empty(&gpu, &[s, s], "out").unwrap();
    let mut best = f64::MAX;
    for _ in 0..6 {
        let t = Instant::now();
        let mut e = gpu.encoder();
        matmul::record_into(&gpu, &mut e, &ta, &tb, &out).unwrap();
        gpu.submit_and_wait(e).unwrap();
        let dt = t.elapsed().as_secs_f64();
        best = best.min(dt);
    }
    println!("kernel only, best of 6: {:.3} s, {:.2} GFLOP/s", best, flops / best / 1e9);
}
