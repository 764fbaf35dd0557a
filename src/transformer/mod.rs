//! A TransformerLens `HookedTransformer` forward pass on the GPU, with its activation cache and
//! interventions.
//!
//! A [`Model`] is a checked [`Config`] plus its [`Weights`] uploaded once as GPU tensors; every
//! forward pass then records all its kernels into one command encoder (one submission), with the
//! activations staying on the GPU between kernels: the embedding, per block the layer norms
//! ([`crate::ops::layer_norm`]), the attention projections and causal attention
//! ([`crate::ops::attention`]'s kernels), the residual additions, the MLP (projection with bias,
//! activation, projection), and the unembedding. [`Model::run`] returns the logits and the
//! activations that a [`Names`] filter asks for, under TransformerLens's hook names and shapes,
//! and applies [`Intervention`]s where they hook in. The float64 twin is
//! [`crate::reference::transformer`]; `verify` checks both against fixtures made by
//! TransformerLens itself.
//!
//! ```no_run
//! # fn demo() -> shaderlens::Result<()> {
//! use shaderlens::transformer::{Intervention, Model, Names, Options};
//! let gpu = shaderlens::Gpu::new()?;
//! let model = Model::from_files(&gpu, "fixtures/transformer/tiny.json".as_ref(), "fixtures/transformer/tiny.npz".as_ref())?;
//! let tokens = ndarray::arr2(&[[4i64, 2, 3, 0]]).into_dyn();
//! let ablate = [Intervention::zero("blocks.0.attn.hook_z").at_head(0)];
//! let options = Options { names: Names::only(["blocks.0.attn.hook_pattern"]), interventions: &ablate };
//! let run = model.run(&gpu, tokens.view(), &options)?;
//! println!("{:?}", run.cache.get("blocks.0.attn.hook_pattern").map(|p| p.shape()));
//! # Ok(()) }
//! ```

pub mod backward;
pub mod cli;
pub mod config;
mod forward;
pub mod hooks;
pub mod intervention;
mod load;
pub(crate) mod kernels;
pub(crate) mod variant_kernels;
pub mod weights;

use std::sync::Mutex;

use ndarray::{ArrayD, ArrayViewD};

pub use config::{Activation, Config, Normalization};
pub use hooks::{check_interventions, check_tokens, hook_names, hooks, Cache, Hook, Names};
pub use intervention::{Action, Intervention, Patch};
pub use load::ungrouped_name;
pub use weights::Weights;
pub use backward::{GradArrays, GradOptions, Gradients, Seed};

use crate::error::{fmt_shape, Error, Result};
use crate::gpu::Gpu;
use crate::tensor::GpuTensor;

/// What a run caches and changes.
#[derive(Clone, Debug, Default)]
pub struct Options<'a> {
    /// The hooks whose activations are returned.
    pub names: Names,
    /// Changes applied to activations as they are produced, in order.
    pub interventions: &'a [Intervention],
}

/// The outputs of a forward pass: logits and the cached activations.
#[derive(Clone, Debug)]
pub struct Outputs<T> {
    /// \[B, S, d_vocab_out\].
    pub logits: T,
    /// The activations the run's [`Names`] asked for, in forward order.
    pub cache: Cache<T>,
}

/// A model on the GPU: its config and its weights, uploaded once.
#[derive(Debug)]
pub struct Model {
    config: Config,
    weights: Weights<GpuTensor>,
    /// Per block, `W_Q`, `W_K` and `W_V` \[H, d_model, d_head\] packed as \[d_model, H·d_head\]
    /// so that each projection is one matmul whose output is already TransformerLens's
    /// \[B, S, H, d_head\] (made once, at load, from the same arrays as `weights`).
    packed: Vec<[GpuTensor; 3]>,
    /// Intermediate tensors reused by every forward pass of the same batch shape (activations
    /// that are not cached never leave them).
    scratch: Mutex<forward::Scratch>,
    /// What the backward pass keeps between calls (see [`backward`]).
    backward: Mutex<backward::State>,
}

impl Model {
    /// Uploads `weights` (float32, checked against `config`).
    pub fn load(gpu: &Gpu, config: Config, weights: &Weights<ArrayD<f32>>) -> Result<Self> {
        weights.check_shapes(&config, |a| a.shape())?;
        let mut packed = Vec::with_capacity(weights.blocks.len());
        for block in &weights.blocks {
            let a = &block.attn;
            let pack = |w: &ArrayD<f32>, name: &str| {
                let &[h, dm, dh] = w.shape() else { return Err(Error::Shape(format!("{name} must be [H, d_model, d_head]"))) };
                let p = w.view().permuted_axes(vec![1, 0, 2]).as_standard_layout().into_owned();
                let p = p.into_shape_with_order(vec![dm, h * dh]).map_err(|e| Error::Shape(e.to_string()))?;
                GpuTensor::upload(gpu, p.view(), name)
            };
            packed.push([pack(&a.w_q, "packed W_Q")?, pack(&a.w_k, "packed W_K")?, pack(&a.w_v, "packed W_V")?]);
        }
        let weights = weights.try_map(&config, |name, a| GpuTensor::upload(gpu, a.view(), name))?;
        Ok(Self { config, weights, packed, scratch: Mutex::new(forward::Scratch::default()), backward: Mutex::default() })
    }

    /// The model's config.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The weights on the GPU.
    pub fn weights(&self) -> &Weights<GpuTensor> {
        &self.weights
    }

    /// Records a forward pass on `tokens` \[B, S\] into `encoder` (nothing is submitted) and
    /// returns the logits and cached activations as GPU tensors, valid once the encoder has run.
    pub fn record(
        &self,
        gpu: &Gpu,
        encoder: &mut wgpu::CommandEncoder,
        tokens: ArrayViewD<'_, i64>,
        options: &Options<'_>,
    ) -> Result<Outputs<GpuTensor>> {
        let hooks = self.check_run(tokens.view(), options)?;
        let mut scratch = self.scratch.lock().map_err(|_| Error::Gpu("model scratch poisoned".into()))?;
        forward::record(gpu, encoder, self, &mut scratch, tokens, hooks, options, false)
    }

    /// Checks tokens, names and interventions before any GPU work; returns the run's hooks.
    fn check_run(&self, tokens: ArrayViewD<'_, i64>, options: &Options<'_>) -> Result<Vec<Hook>> {
        let (batch, seq) = check_tokens(&self.config, tokens)?;
        options.names.check(&self.config)?;
        let hooks = hooks::hooks(&hooks::run_config(&self.config, &options.names, options.interventions), batch, seq);
        check_interventions(&hooks, options.interventions)?;
        Ok(hooks)
    }

    /// Runs a forward pass (one submission) and leaves the outputs on the GPU, e.g. to patch
    /// another run with them.
    pub fn run_gpu(&self, gpu: &Gpu, tokens: ArrayViewD<'_, i64>, options: &Options<'_>) -> Result<Outputs<GpuTensor>> {
        gpu.scoped(|| {
            let mut encoder = gpu.encoder();
            let outputs = self.record(gpu, &mut encoder, tokens, options)?;
            gpu.submit_and_wait(encoder)?;
            Ok(outputs)
        })
    }

    /// Runs a forward pass and reads the logits and the cached activations back.
    ///
    /// The outputs live in the model's scratch until they are read, so a second run of the same
    /// shapes creates no buffer and no bind group ([`Gpu::buffers_created`]).
    pub fn run(&self, gpu: &Gpu, tokens: ArrayViewD<'_, i64>, options: &Options<'_>) -> Result<Outputs<ArrayD<f32>>> {
        let hooks = self.check_run(tokens.view(), options)?;
        let mut scratch = self.scratch.lock().map_err(|_| Error::Gpu("model scratch poisoned".into()))?;
        let (outputs, arrays) = gpu.scoped(|| {
            let mut encoder = gpu.encoder();
            let outputs = forward::record(gpu, &mut encoder, self, &mut scratch, tokens, hooks, options, true)?;
            gpu.submit_and_wait(encoder)?;
            let mut tensors = vec![&outputs.logits];
            tensors.extend(outputs.cache.iter().map(|(_, t)| t));
            let arrays = GpuTensor::read_all(gpu, &tensors)?;
            Ok((outputs, arrays))
        })?;
        drop(scratch);
        let names: Vec<String> = outputs.cache.names().map(str::to_string).collect();
        let mut arrays = arrays.into_iter();
        let logits = arrays.next().ok_or_else(|| Error::Gpu("no logits were read back".into()))?;
        let mut cache = Cache::default();
        for (name, array) in names.iter().zip(arrays) {
            cache.push(name, array);
        }
        Ok(Outputs { logits, cache })
    }

    /// The logits \[B, S, d_vocab_out\] alone (the fastest path: fused attention, nothing cached).
    pub fn forward(&self, gpu: &Gpu, tokens: ArrayViewD<'_, i64>) -> Result<ArrayD<f32>> {
        Ok(self.run(gpu, tokens, &Options::default())?.logits)
    }

    /// TransformerLens's `run_with_cache`: the logits and the activations `names` picks.
    pub fn run_with_cache(&self, gpu: &Gpu, tokens: ArrayViewD<'_, i64>, names: Names) -> Result<Outputs<ArrayD<f32>>> {
        self.run(gpu, tokens, &Options { names, interventions: &[] })
    }
}

impl<T> Weights<T> {
    /// Checks every weight's shape (as `shape_of` reads it) against `config`.
    pub fn check_shapes(&self, config: &Config, shape_of: impl Fn(&T) -> &[usize]) -> Result<()> {
        let want = weights::weight_shapes(config);
        let have = self.named();
        if want.len() != have.len() {
            return Err(Error::Shape(format!("the weights hold {} tensors but this config needs {}", have.len(), want.len())));
        }
        for ((name, shape), (have_name, t)) in want.iter().zip(&have) {
            if name != have_name || shape_of(t) != shape.as_slice() {
                return Err(Error::Shape(format!(
                    "weight {have_name} is {} but this config needs {name} {}",
                    fmt_shape(shape_of(t)),
                    fmt_shape(shape)
                )));
            }
        }
        Ok(())
    }
}
