//! What every criterion bench of shaderlens shares: one op's cases from `shaderlens::bench::cases`
//! (the shapes `shaderlens bench` uses), each variant timed with `iter_custom` on
//! `shaderlens::timing::Timer`, so criterion sees GPU timestamps where the device has them.
//!
//! On CPU adapters (lavapipe) the large sizes run only with `SHADERLENS_BENCH_LARGE=1`, so that
//! `cargo bench` stays quick there; on GPUs they always run.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use shaderlens::bench::cases::{self, Work};
use shaderlens::bench::Options;
use shaderlens::timing::Timer;
use shaderlens::Gpu;

/// Benches every case of `op` on the environment's adapter.
pub fn bench_op(c: &mut Criterion, op: &str) {
    let gpu = match Gpu::new() {
        Ok(gpu) => gpu,
        Err(e) => panic!("no GPU adapter for the benches: {e}"),
    };
    let options = Options::new(&gpu, Some(op.to_string()));
    if !options.large && op == "matmul" {
        eprintln!("{op}: large sizes skipped on a CPU adapter; SHADERLENS_BENCH_LARGE=1 runs them");
    }
    let timer = Timer::new(&gpu);
    eprintln!("adapter: {}, clock: {}", gpu.description(), timer.clock().as_str());
    let cases = cases::list(Some(op), None, false, options.large).expect("a known op");
    let mut group = c.benchmark_group(op);
    group.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    for case in &cases {
        let mut prepared = cases::prepare(&gpu, case, false).expect("inputs fit the device");
        group.throughput(match prepared.work {
            Work::Flops(f) => Throughput::Elements(f as u64),
            Work::Bytes(b) => Throughput::Bytes(b as u64),
        });
        let shape: Vec<String> = case.shape.iter().map(usize::to_string).collect();
        for run in &mut prepared.runs {
            let id = BenchmarkId::new(run.variant.clone(), shape.join("x"));
            group.bench_function(id, |bencher| {
                bencher.iter_custom(|iters| {
                    let mut total = 0.0;
                    for _ in 0..iters {
                        total += timer.time(&mut run.record).expect("the op runs");
                    }
                    Duration::from_secs_f64(total)
                })
            });
        }
    }
    group.finish();
}
