//! Timing GPU work, for `bench` and the autotuner.
//!
//! [`Timer::time`] records the work into a fresh encoder, submits it and waits. Where the device
//! has `Features::TIMESTAMP_QUERY` ([`Gpu::new`] requests it when the adapter offers it), the work
//! is bracketed by two empty compute passes whose timestamp writes mark its start and end on the
//! GPU's own clock, so submission, driver and readback overheads are left out; this needs no
//! `TIMESTAMP_QUERY_INSIDE_ENCODERS`, which Metal lacks. Elsewhere (or with
//! `SHADERLENS_CLOCK=wall`) it is the wall time from submit to completion. [`Timer::clock`] says
//! which, and a timer whose timestamps come back unusable (zero or backwards) falls back to wall
//! time for good.

use std::cell::Cell;
use std::time::Instant;

use crate::error::Result;
use crate::gpu::Gpu;

/// Which clock a [`Timer`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    /// GPU timestamp queries around the work.
    Timestamp,
    /// Host wall time from submit to completion.
    Wall,
}

impl Clock {
    /// `"timestamp"` or `"wall"`, as `bench --json` writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Clock::Timestamp => "timestamp",
            Clock::Wall => "wall",
        }
    }
}

/// Times recorded GPU work on one device; see the module documentation.
pub struct Timer<'g> {
    gpu: &'g Gpu,
    queries: Option<(wgpu::QuerySet, wgpu::Buffer)>,
    timestamps_ok: Cell<bool>,
}

impl<'g> Timer<'g> {
    /// A timer on `gpu`, with timestamps where the device has them.
    pub fn new(gpu: &'g Gpu) -> Self {
        let wall_wanted = std::env::var("SHADERLENS_CLOCK").is_ok_and(|v| v.eq_ignore_ascii_case("wall"));
        let queries = (!wall_wanted && gpu.device().features().contains(wgpu::Features::TIMESTAMP_QUERY)).then(|| {
            let set = gpu.device().create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("shaderlens timer"),
                ty: wgpu::QueryType::Timestamp,
                count: 2,
            });
            let resolve = gpu.create_buffer(&wgpu::BufferDescriptor {
                label: Some("shaderlens timer resolve"),
                size: 16,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            });
            (set, resolve)
        });
        let timestamps_ok = Cell::new(queries.is_some());
        Self { gpu, queries, timestamps_ok }
    }

    /// The clock the next measurement will use.
    pub fn clock(&self) -> Clock {
        if self.timestamps_ok.get() {
            Clock::Timestamp
        } else {
            Clock::Wall
        }
    }

    /// Records the work with `record` into a fresh encoder, runs it and returns its duration in
    /// seconds on [`Timer::clock`].
    pub fn time(&self, record: &mut dyn FnMut(&mut wgpu::CommandEncoder) -> Result<()>) -> Result<f64> {
        let mut encoder = self.gpu.encoder();
        let queries = self.queries.as_ref().filter(|_| self.timestamps_ok.get());
        if let Some((set, _)) = queries {
            mark(&mut encoder, set, Some(0), None);
        }
        record(&mut encoder)?;
        if let Some((set, resolve)) = queries {
            mark(&mut encoder, set, None, Some(1));
            encoder.resolve_query_set(set, 0..2, resolve, 0);
        }
        let start = Instant::now();
        self.gpu.submit_and_wait(encoder)?;
        let wall = start.elapsed().as_secs_f64();
        let Some((_, resolve)) = queries else { return Ok(wall) };
        let ticks: Vec<u64> = bytemuck::pod_collect_to_vec(&self.gpu.read_bytes(resolve, 16)?);
        let period_ns = f64::from(self.gpu.queue().get_timestamp_period());
        match ticks.as_slice() {
            &[begin, end] if begin > 0 && end > begin && period_ns > 0.0 => Ok((end - begin) as f64 * period_ns * 1e-9),
            _ => {
                self.timestamps_ok.set(false);
                Ok(wall)
            }
        }
    }

    /// [`Timer::time`] `reps` times (at least once); the durations in run order.
    pub fn repeat(&self, reps: usize, record: &mut dyn FnMut(&mut wgpu::CommandEncoder) -> Result<()>) -> Result<Vec<f64>> {
        (0..reps.max(1)).map(|_| self.time(record)).collect()
    }
}

/// An empty compute pass that only writes timestamps: the marks around the timed work.
fn mark(encoder: &mut wgpu::CommandEncoder, set: &wgpu::QuerySet, begin: Option<u32>, end: Option<u32>) {
    let timestamp_writes =
        wgpu::ComputePassTimestampWrites { query_set: set, beginning_of_pass_write_index: begin, end_of_pass_write_index: end };
    drop(encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
        label: Some("shaderlens timer mark"),
        timestamp_writes: Some(timestamp_writes),
    }));
}

/// The median of `samples` (the mean of the middle two for an even count); `None` when empty.
pub fn median(samples: &[f64]) -> Option<f64> {
    let mut sorted: Vec<f64> = samples.iter().copied().filter(|x| !x.is_nan()).collect();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}
