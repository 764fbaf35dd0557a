//! The patching sweeps on the GPU, batched: the patched runs of a sweep are independent, so a
//! chunk of them runs as one forward pass (one submission) on the corrupt batch stacked `copies`
//! times along the batch axis, copy `n` patched by patch `n` of the chunk.
//!
//! The clean run's activations at the sweep's hooks are read once and stacked the same way
//! (uploaded once per sweep), so every copy's rows find their own clean rows at the same batch
//! index: the patch of copy `n` is one [`Intervention`] per row of that copy (`at_batch`), taking
//! those elements from the stacked clean tensor ([`crate::transformer::Patch::Gpu`]). The metric
//! is read per row from the logits and averaged per copy. [`Batching`] sets how many copies a chunk
//! holds: as many as the memory budget and the device's binding limit allow, or one (one forward
//! per patch, the unbatched way, for comparison).

use ndarray::{concatenate, ArrayD, ArrayViewD, Axis};

use super::metric::logit_diff;
use super::sweep::Site;
use super::{Prompts, Sweep};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::tensor::GpuTensor;
use crate::transformer::{hooks, Config, Intervention, Model, Names, Options};

/// How many patched runs share one forward pass.
#[derive(Clone, Copy, Debug)]
pub struct Batching {
    /// At most this many copies of the corrupt batch per pass (`1`: one forward per patch).
    pub max_copies: usize,
    /// The memory a chunk may use for its activations and stacked clean values, in bytes.
    pub max_bytes: u64,
}

impl Default for Batching {
    /// Up to 256 copies in 1 GiB: beyond that the per-row interventions (each a pass over the
    /// hook's tensor) start to cost more than the forward they ride on.
    fn default() -> Self {
        Batching { max_copies: 256, max_bytes: 1 << 30 }
    }
}

impl Batching {
    /// One forward pass per patch (what TransformerLens does; the baseline of the benchmark).
    pub fn one_per_patch() -> Self {
        Batching { max_copies: 1, ..Batching::default() }
    }

    /// The copies per chunk for `sweep` on \[batch, seq\] prompts, at least 1.
    pub fn copies(&self, gpu: &Gpu, config: &Config, sweep: Sweep, batch: usize, seq: usize, patches: usize) -> usize {
        let row_hooks = hooks(config, 1, seq);
        let size = |shape: &[usize]| shape.iter().product::<usize>() as u64;
        let patched = row_hooks.iter().find(|h| h.name == sweep.hook(0)).map_or(0, |h| size(&h.shape));
        let all: u64 = row_hooks.iter().map(|h| size(&h.shape)).sum();
        let per_copy = 4 * batch as u64 * (all + config.n_layers as u64 * patched);
        let largest = 4 * batch as u64 * row_hooks.iter().map(|h| size(&h.shape)).max().unwrap_or(1);
        let limits = gpu.limits();
        let binding = limits.max_storage_buffer_binding_size.min(limits.max_buffer_size);
        let fit = (self.max_bytes / per_copy.max(1)).min(binding / largest.max(1));
        (fit as usize).min(self.max_copies).min(patches).max(1)
    }
}

/// Runs `sweeps` on the GPU and returns each result (shape [`Sweep::shape`]).
pub fn act_patch(gpu: &Gpu, model: &Model, prompts: &Prompts, sweeps: &[Sweep], batching: &Batching) -> Result<Vec<ArrayD<f64>>> {
    let config = model.config();
    let (batch, seq) = prompts.check(config)?;
    if let Some(s) = sweeps.iter().find(|s| !s.available(config)) {
        return Err(Error::Input(format!("this model has no {} to patch (it is attention-only)", s.key())));
    }
    let hooks: Vec<String> = sweeps.iter().flat_map(|s| (0..config.n_layers).map(move |l| s.hook(l))).collect();
    let clean = model.run(gpu, prompts.clean.view(), &Options { names: Names::only(&hooks), interventions: &[] })?;
    let pairs = prompts.pairs();
    let mut out = Vec::with_capacity(sweeps.len());
    for &sweep in sweeps {
        let sites = sweep.sites(config, seq);
        let copies = batching.copies(gpu, config, sweep, batch, seq, sites.len());
        let corrupt = stack(prompts.corrupt.view(), copies)?;
        let mut stacked = Vec::with_capacity(config.n_layers);
        for layer in 0..config.n_layers {
            let hook = sweep.hook(layer);
            let act = clean.cache.get(&hook).ok_or_else(|| Error::Gpu(format!("the clean run did not cache {hook}")))?;
            stacked.push(GpuTensor::upload(gpu, stack(act.view(), copies)?.view(), &hook)?);
        }
        let mut values = Vec::with_capacity(sites.len());
        for chunk in sites.chunks(copies) {
            let interventions = chunk_interventions(sweep, chunk, &stacked, batch);
            let run = model.run(gpu, corrupt.view(), &Options { names: Names::Nothing, interventions: &interventions })?;
            let diffs = logit_diff(run.logits.view(), &pairs)?;
            values.extend(diffs.chunks(batch).take(chunk.len()).map(|d| d.iter().sum::<f64>() / batch as f64));
        }
        out.push(ArrayD::from_shape_vec(sweep.shape(config, seq), values).map_err(|e| Error::Shape(e.to_string()))?);
    }
    Ok(out)
}

/// Copy `n` of the chunk gets patch `chunk[n]`: one intervention per row of the copy.
fn chunk_interventions(sweep: Sweep, chunk: &[Site], stacked: &[GpuTensor], batch: usize) -> Vec<Intervention> {
    let mut out = Vec::with_capacity(chunk.len() * batch);
    for (n, site) in chunk.iter().enumerate() {
        for b in 0..batch {
            let values = stacked[site.layer].clone();
            out.push(site.intervention(sweep, |hook| Intervention::patch(hook, values)).at_batch(n * batch + b));
        }
    }
    out
}

/// `a` repeated `copies` times along the first axis.
fn stack<T: Clone>(a: ArrayViewD<'_, T>, copies: usize) -> Result<ArrayD<T>> {
    let views = vec![a; copies];
    concatenate(Axis(0), &views).map_err(|e| Error::Shape(format!("cannot stack {copies} copies: {e}")))
}
