//! `shaderlens bench`: the speed of every op at the shapes small transformers use, on the adapter
//! at hand, next to the float64 host reference on the same machine in the same run.
//!
//! For each case ([`cases::list`]) and each way of running it ([`cases::Prepared::runs`]: the
//! variant the op picks, autotuned where it has several, then with `variants` every other one),
//! one untimed warm-up (pipeline compilation, first touch), then timed runs until at least
//! `min_seconds` have passed (at least `min_reps`, at most 50), each its own submission timed by
//! [`crate::timing::Timer`] (GPU timestamps where the device has them, else wall time from
//! submit to completion; the row says which). The row reports the median, the rate (GFLOP/s or
//! GB/s, see [`cases::Work`]), the fraction of the adapter's peak where [`peaks`] knows it, and
//! the host reference's median time (fewer repetitions when it is slow, never none).
//!
//! Inputs are uploaded once per case; the timed region holds only the op's own recording and its
//! GPU work.

pub mod attention_backward;
pub mod cases;
pub mod kernels;
pub mod peaks;
pub mod run;
pub mod size;
pub mod train_step;
pub mod transformer;

use std::time::Instant;

use serde::Serialize;

use crate::error::Result;
use crate::gpu::Gpu;
use crate::timing::{median, Timer};
use cases::{Case, Work};

/// What to measure and how long ([`Options::new`] gives the `bench` command's defaults).
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Only this op (one of [`cases::REGISTRY`]'s ops); every op when `None`.
    pub op: Option<String>,
    /// Only this shape of `op` (see [`cases::Case::shape`]) instead of the standard ones.
    pub shape: Option<Vec<usize>>,
    /// Tiny shapes and a single timed run each: for tests.
    pub quick: bool,
    /// Include the sizes over 2^33 flops (matmul 2048^3, 4096^3, the 64-game transformer forward).
    pub large: bool,
    /// One row per kernel variant too, not just the op's own choice.
    pub variants: bool,
    /// Time each GPU run at least this long in total.
    pub min_seconds: f64,
    /// At least this many timed GPU runs.
    pub min_reps: usize,
}

impl Options {
    /// The defaults of the `bench` command: `large` on non-CPU adapters or with
    /// `SHADERLENS_BENCH_LARGE=1`, half a second and at least 3 timed runs a row.
    pub fn new(gpu: &Gpu, op: Option<String>) -> Self {
        let large_env = std::env::var("SHADERLENS_BENCH_LARGE").is_ok_and(|v| !matches!(v.trim(), "" | "0"));
        let cpu = gpu.adapter_info().device_type == wgpu::DeviceType::Cpu;
        Self { op, shape: None, quick: false, large: large_env || !cpu, variants: false, min_seconds: 0.5, min_reps: 3 }
    }

    /// Tiny shapes, one timed run: what the tests use.
    pub fn quick(mut self) -> Self {
        self.quick = true;
        self.min_seconds = 0.0;
        self.min_reps = 1;
        self
    }
}

/// One measured row: an op at a shape with one variant. Field names are `bench --json`'s.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// The op.
    pub op: &'static str,
    /// matmul: `[M, K, N]`; attention: `[B, H, S, D]`; transformer: `[B, S, layers, d_model]`;
    /// the others: the input's shape.
    pub shape: Vec<usize>,
    /// The kernel variant that ran.
    pub variant: String,
    /// How the variant was chosen: `autotune`, `static`, `only` or `fixed`.
    pub choice: &'static str,
    /// The adapter, as [`Gpu::description`] says it.
    pub adapter: String,
    /// `timestamp` (GPU timestamp queries) or `wall` (submit to completion).
    pub timing: &'static str,
    /// Median GPU time of one run, milliseconds.
    pub gpu_ms: f64,
    /// Timed GPU runs.
    pub gpu_reps: usize,
    /// GFLOP/s, for ops counted in flops.
    pub gflops: Option<f64>,
    /// GB/s, for ops counted in bytes moved.
    pub gbps: Option<f64>,
    /// Rate over the adapter's known peak (null when the peak is unknown).
    pub peak_fraction: Option<f64>,
    /// Median time of the float64 host reference on the same inputs, milliseconds.
    pub host_ms: f64,
    /// Timed host runs.
    pub host_reps: usize,
    /// `host_ms / gpu_ms`.
    pub speedup: f64,
}

/// Runs every case of `options`, handing each row to `emit` as soon as it is measured. A case
/// that fails is reported to `failed` and the rest still run; returns how many failed.
pub fn run(
    gpu: &Gpu,
    options: &Options,
    mut emit: impl FnMut(&Row),
    mut failed: impl FnMut(&Case, &crate::Error),
) -> Result<usize> {
    let cases = cases::list(options.op.as_deref(), options.shape.as_deref(), options.quick, options.large)?;
    let timer = Timer::new(gpu);
    let peak = peaks::lookup(&gpu.adapter_info().name);
    let mut failures = 0;
    for case in &cases {
        let rows = size::check(gpu, case).and_then(|()| gpu.scoped(|| measure_case(gpu, &timer, case, options, peak)));
        match rows {
            Ok(rows) => rows.iter().for_each(&mut emit),
            Err(e) => {
                failures += 1;
                failed(case, &e);
            }
        }
    }
    Ok(failures)
}

/// Measures one case: every GPU run, and the host reference once for them all.
fn measure_case(gpu: &Gpu, timer: &Timer<'_>, case: &Case, options: &Options, peak: Option<peaks::Peak>) -> Result<Vec<Row>> {
    let mut prepared = cases::prepare(gpu, case, options.variants)?;
    let mut measured = Vec::new();
    for run in &mut prepared.runs {
        timer.time(&mut run.record)?; // warm-up
        let mut samples = Vec::new();
        let start = Instant::now();
        while samples.len() < options.min_reps
            || (start.elapsed().as_secs_f64() < options.min_seconds && samples.len() < 50)
        {
            samples.push(timer.time(&mut run.record)?);
        }
        measured.push((run.variant.clone(), run.choice, samples));
    }
    let (host_s, host_reps) = time_host(&mut prepared.host, options)?;
    let rows = measured.into_iter().map(|(variant, choice, samples)| {
        let gpu_s = median(&samples).unwrap_or(f64::NAN);
        let (gflops, gbps, peak_fraction) = match prepared.work {
            Work::Flops(f) => (Some(f / gpu_s / 1e9), None, peak.map(|p| f / gpu_s / 1e12 / p.fp32_tflops)),
            Work::Bytes(b) => (None, Some(b / gpu_s / 1e9), peak.map(|p| b / gpu_s / 1e9 / p.bandwidth_gbps)),
        };
        Row {
            op: case.op,
            shape: case.shape.clone(),
            variant,
            choice,
            adapter: gpu.description().to_string(),
            timing: timer.clock().as_str(),
            gpu_ms: gpu_s * 1e3,
            gpu_reps: samples.len(),
            gflops,
            gbps,
            peak_fraction,
            host_ms: host_s * 1e3,
            host_reps,
            speedup: host_s / gpu_s,
        }
    });
    Ok(rows.collect())
}

/// Times the host reference: once, then again while the total stays under a second (at most 5
/// runs; 1 in quick mode). Returns the median in seconds and the count.
fn time_host(host: &mut dyn FnMut() -> Result<()>, options: &Options) -> Result<(f64, usize)> {
    let mut samples = Vec::new();
    let start = Instant::now();
    loop {
        let t = Instant::now();
        host()?;
        samples.push(t.elapsed().as_secs_f64());
        let spent = start.elapsed().as_secs_f64();
        if options.quick || samples.len() >= 5 || spent + samples[0] > 1.0 {
            break;
        }
    }
    Ok((median(&samples).unwrap_or(f64::NAN), samples.len()))
}

/// The text line for `row` (see [`HEADER`]).
pub fn line(row: &Row) -> String {
    let shape = format!("{:?}", row.shape);
    let rate = match (row.gflops, row.gbps) {
        (Some(g), _) => format!("{g:.1} GFLOP/s"),
        (_, Some(b)) => format!("{b:.1} GB/s"),
        _ => String::new(),
    };
    let peak = row.peak_fraction.map_or("-".to_string(), |f| format!("{:.1}%", 100.0 * f));
    let variant = format!("{} ({})", row.variant, row.choice);
    format!(
        "{:<20}{:<21}{:<24}{:>10.3}{:>17}{:>7}{:>12.3}{:>9.1}x",
        row.op, shape, variant, row.gpu_ms, rate, peak, row.host_ms, row.speedup
    )
}

/// Column titles for [`line()`].
pub const HEADER: &str = "op                  shape                variant                     gpu ms             rate   peak     host ms  host/gpu";
