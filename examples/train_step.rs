//! The GPU trainer's update as `shaderlens train` runs it ([`Backend::step`] of a [`GpuTrainer`]:
//! forward, loss, backward, clipping, AdamW, repack; two submissions, nothing read back) at the
//! `train_step` bench case's shapes, interleaved with the forward alone on the same model: wall
//! time each (submission and waiting included), steps/s, the dispatches and submissions each
//! update records, and the update's cost in forwards. The first update (pipeline compilation,
//! autotuning, scratch) is left out.
//!
//! `cargo run --release --example train_step [-- B,S,LAYERS,D_MODEL,HEADS [ITERATIONS]]`
//! (default `3830,3,1,128,4`, the grokking size, and 3 iterations); shapes as
//! `shaderlens::bench::train_step` reads them (a sequence of 3 is the modular-addition model).

use std::time::Instant;

use shaderlens::bench::train_step::{setup, LR};
use shaderlens::timing::median;
use shaderlens::train::gpu_trainer::{Backprop, GpuTrainer};
use shaderlens::train::Backend;
use shaderlens::transformer::Options;
use shaderlens::Gpu;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let shape: Vec<usize> = std::env::args().nth(1).unwrap_or_else(|| "3830,3,1,128,4".into()).split(',').map(str::parse).collect::<Result<_, _>>()?;
    let iterations: usize = std::env::args().nth(2).map(|a| a.parse()).transpose()?.unwrap_or(3);
    let s = setup(&shape)?;
    let gpu = Gpu::new()?;
    println!("adapter: {}", gpu.description());
    println!("shape {shape:?}: {} examples x {} tokens, {} layers, d_model {}, {} heads", shape[0], shape[1], shape[2], shape[3], shape[4]);
    let mut trainer = GpuTrainer::new(&gpu, &s.config, s.optimizer, &s.initial, Backprop)?;
    let forward = |trainer: &GpuTrainer<'_, Backprop>| -> shaderlens::Result<()> {
        let mut encoder = gpu.encoder();
        trainer.model().record(&gpu, &mut encoder, s.tokens.view().into_dyn(), &Options::default())?;
        gpu.submit_and_wait(encoder)
    };
    let counters = |gpu: &Gpu| [gpu.dispatch_count(), gpu.submit_count()];
    trainer.step(s.tokens.view(), s.targets.view(), 1, LR)?; // first update: pipelines, tuning, scratch
    forward(&trainer)?;
    let (mut steps, mut forwards) = (Vec::new(), Vec::new());
    let (mut per_step, mut per_forward) = ([0; 2], [0; 2]);
    for i in 0..iterations {
        let (before, start) = (counters(&gpu), Instant::now());
        trainer.step(s.tokens.view(), s.targets.view(), 2 + i as u64, LR)?;
        steps.push(start.elapsed().as_secs_f64());
        let (after, start) = (counters(&gpu), Instant::now());
        per_step = [after[0] - before[0], after[1] - before[1]];
        forward(&trainer)?;
        forwards.push(start.elapsed().as_secs_f64());
        let last = counters(&gpu);
        per_forward = [last[0] - after[0], last[1] - after[1]];
    }
    let (step, fwd) = (median(&steps).unwrap_or(f64::NAN), median(&forwards).unwrap_or(f64::NAN));
    println!("update : {:>10.1} ms median of {iterations} ({:.2} steps/s), {} dispatches, {} submissions", 1e3 * step, 1.0 / step, per_step[0], per_step[1]);
    println!("forward: {:>10.1} ms median of {iterations}, {} dispatches, {} submissions", 1e3 * fwd, per_forward[0], per_forward[1]);
    println!("update / forward: {:.2}x", step / fwd);
    println!("every update (ms): {:?}", steps.iter().map(|t| (1e3 * t).round()).collect::<Vec<_>>());
    Ok(())
}
