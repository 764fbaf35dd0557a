//! The patching sweeps on the GPU, batched: the patched runs of a sweep are independent, so a
//! chunk of them runs as one forward pass (one submission) on the corrupt batch stacked `copies`
//! times along the batch axis, copy `n` patched by patch `n` of the chunk.
//!
//! A chunk holds patches of one layer only, so that at the patched hook every copy still holds
//! the corrupt run's activation (nothing earlier has changed). The whole chunk is then one
//! intervention that replaces the hook's tensor with a host-built one: the corrupt activation in
//! every copy, with copy `n`'s selected elements (position and/or head, every row of the batch)
//! taken from the clean run. That is exactly TransformerLens's patch per copy, at the cost of one
//! upload and one pass over the tensor per chunk (per-row interventions would each pass over the
//! whole stacked tensor: quadratic in the chunk). [`Batching`] sets how many copies a chunk holds:
//! as many as the memory budget and the device's binding limit allow, or one (one forward per
//! patch, the unbatched way, for comparison).

use ndarray::{concatenate, ArrayD, ArrayViewD, Axis, Slice};

use super::metric::logit_diff;
use super::sweep::Site;
use super::{Prompts, Sweep};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::transformer::{hooks, Config, Hook, Intervention, Model, Names, Options};

/// How many patched runs share one forward pass.
#[derive(Clone, Copy, Debug)]
pub struct Batching {
    /// At most this many copies of the corrupt batch per pass (`1`: one forward per patch).
    pub max_copies: usize,
    /// The memory a chunk may use for its activations and its patch, in bytes.
    pub max_bytes: u64,
}

impl Default for Batching {
    /// Up to 1024 copies in 1 GiB.
    fn default() -> Self {
        Batching { max_copies: 1024, max_bytes: 1 << 30 }
    }
}

impl Batching {
    /// One forward pass per patch (what TransformerLens does; the baseline of the benchmark).
    pub fn one_per_patch() -> Self {
        Batching { max_copies: 1, ..Batching::default() }
    }

    /// The copies per chunk for `sweep` on \[batch, seq\] prompts with `patches` patches per
    /// layer, at least 1.
    pub fn copies(&self, gpu: &Gpu, config: &Config, sweep: Sweep, batch: usize, seq: usize, patches: usize) -> usize {
        let row_hooks = hooks(config, 1, seq);
        let size = |shape: &[usize]| shape.iter().product::<usize>() as u64;
        let patched = row_hooks.iter().find(|h| h.name == sweep.hook(0)).map_or(0, |h| size(&h.shape));
        // Every hook's activation as an upper bound of the pass's scratch, plus the patch twice
        // (host copy and upload).
        let all: u64 = row_hooks.iter().map(|h| size(&h.shape)).sum();
        let per_copy = 4 * batch as u64 * (all + 2 * patched);
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
    let names: Vec<String> = sweeps.iter().flat_map(|s| (0..config.n_layers).map(move |l| s.hook(l))).collect();
    let options = Options { names: Names::only(&names), interventions: &[] };
    let clean = model.run(gpu, prompts.clean.view(), &options)?;
    let corrupt = model.run(gpu, prompts.corrupt.view(), &options)?;
    let all_hooks = hooks(config, batch, seq);
    let pairs = prompts.pairs();
    let mut out = Vec::with_capacity(sweeps.len());
    for &sweep in sweeps {
        let sites = sweep.sites(config, seq);
        let per_layer = sites.len() / config.n_layers.max(1);
        let copies = batching.copies(gpu, config, sweep, batch, seq, per_layer);
        let tokens = stack(prompts.corrupt.view(), copies)?;
        let mut values = Vec::with_capacity(sites.len());
        for layer_sites in sites.chunks(per_layer.max(1)) {
            let name = sweep.hook(layer_sites[0].layer);
            let hook = crate::model::hooks::find(&all_hooks, &name)?;
            let missing = || Error::Gpu(format!("the forward did not cache {name}"));
            let (clean_act, corrupt_act) = (clean.cache.get(&name).ok_or_else(missing)?, corrupt.cache.get(&name).ok_or_else(missing)?);
            for chunk in layer_sites.chunks(copies) {
                let patch = patched_stack(hook, chunk, clean_act, corrupt_act, copies)?;
                let interventions = [Intervention::replace(name.clone(), patch)];
                let run = model.run(gpu, tokens.view(), &Options { names: Names::Nothing, interventions: &interventions })?;
                let diffs = logit_diff(run.logits.view(), &pairs)?;
                values.extend(diffs.chunks(batch).take(chunk.len()).map(|d| d.iter().sum::<f64>() / batch as f64));
            }
        }
        out.push(ArrayD::from_shape_vec(sweep.shape(config, seq), values).map_err(|e| Error::Shape(e.to_string()))?);
    }
    Ok(out)
}

/// The corrupt activation stacked `copies` times, copy `n`'s elements at `chunk[n]` (every row)
/// taken from the clean activation; copies past the chunk stay corrupt.
fn patched_stack(hook: &Hook, chunk: &[Site], clean: &ArrayD<f32>, corrupt: &ArrayD<f32>, copies: usize) -> Result<ArrayD<f32>> {
    let batch = clean.shape()[0];
    let mut out = stack(corrupt.view(), copies)?;
    // Axes of one row (the batch axis gone).
    let pos_axis = hook.pos_axis - 1;
    let head_axis = hook.head_axis.map(|a| a - 1);
    for (n, site) in chunk.iter().enumerate() {
        let pick = |axis: usize| match (site.pos, site.head) {
            (Some(p), _) if axis == pos_axis => Slice::from(p..p + 1),
            (_, Some(h)) if Some(axis) == head_axis => Slice::from(h..h + 1),
            _ => Slice::from(..),
        };
        for b in 0..batch {
            let src = clean.index_axis(Axis(0), b);
            let mut dst = out.index_axis_mut(Axis(0), n * batch + b);
            dst.slice_each_axis_mut(|ax| pick(ax.axis.index())).assign(&src.slice_each_axis(|ax| pick(ax.axis.index())));
        }
    }
    Ok(out)
}

/// `a` repeated `copies` times along the first axis.
fn stack<T: Clone>(a: ArrayViewD<'_, T>, copies: usize) -> Result<ArrayD<T>> {
    let views = vec![a; copies];
    concatenate(Axis(0), &views).map_err(|e| Error::Shape(format!("cannot stack {copies} copies: {e}")))
}
