//! The GPU trainer: a [`super::Backend`] whose model, gradients and optimizer live on the GPU.
//!
//! The gradients come from a [`GpuGradients`] source: the GPU backward of the whole model once it
//! lands (issue 11; its `impl GpuGradients` is the one piece left to add), or any other source (the
//! tests feed the float64 reference's gradients through it). The update is
//! [`GpuOptimizer::record_step`]: no readback in a step. Evaluation reads back the logits of the
//! evaluated set, the norms one number each.
//!
//! [`Model`] keeps `W_Q`/`W_K`/`W_V` packed beside the weights it was loaded with; the optimizer
//! updates the weights in place, so before an evaluation the model is rebuilt from the current
//! parameters (read back). A `Model` method that repacks on the GPU would remove that round trip.

use ndarray::{ArrayD, ArrayView2};

use super::config::Optimizer;
use super::gpu_optimizer::GpuOptimizer;
use super::{evaluate_logits, Backend, Evaluation, State};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::tensor::GpuTensor;
use crate::transformer::weights::Weights;
use crate::transformer::{Config, Model};

/// Where a GPU trainer's gradients come from.
pub trait GpuGradients {
    /// The gradients of the mean loss of `tokens`/`targets` \[B, S\] (SPEC's Gradients) with
    /// respect to every parameter of `model` as it is now, as GPU tensors of the parameters'
    /// shapes.
    fn gradients(&mut self, gpu: &Gpu, model: &Model, tokens: ArrayView2<'_, i64>, targets: ArrayView2<'_, i64>) -> Result<Weights<GpuTensor>>;
}

/// A trainer on one GPU.
pub struct GpuTrainer<'g, G> {
    gpu: &'g Gpu,
    config: Config,
    model: Model,
    optimizer: GpuOptimizer,
    gradients: G,
    /// The packed Q/K/V of `model` predate the last update.
    stale: bool,
}

impl<'g, G: GpuGradients> GpuTrainer<'g, G> {
    /// A trainer starting from `initial` (float32 values held in float64) with zero moments.
    pub fn new(gpu: &'g Gpu, config: &Config, optimizer: Optimizer, initial: &Weights<ArrayD<f64>>, gradients: G) -> Result<Self> {
        let model = Model::load(gpu, config.clone(), &initial.try_map(config, |_, a| Ok(a.mapv(|x| x as f32)))?)?;
        let optimizer = GpuOptimizer::new(gpu, config, optimizer, model.weights())?;
        Ok(Self { gpu, config: config.clone(), model, optimizer, gradients, stale: false })
    }

    /// The model with its current parameters (rebuilt after updates; see the module's note).
    pub fn model(&mut self) -> Result<&Model> {
        if self.stale {
            let state = self.optimizer.state(self.gpu)?;
            let weights = state.params.try_map(&self.config, |_, a| Ok(a.mapv(|x| x as f32)))?;
            self.model = Model::load(self.gpu, self.config.clone(), &weights)?;
            self.stale = false;
        }
        Ok(&self.model)
    }
}

impl<G: GpuGradients> Backend for GpuTrainer<'_, G> {
    fn describe(&self) -> String {
        format!("GPU trainer on {}", self.gpu.description())
    }

    fn step(&mut self, tokens: ArrayView2<'_, i64>, targets: ArrayView2<'_, i64>, t: u64, lr: f64) -> Result<()> {
        let grads = self.gradients.gradients(self.gpu, &self.model, tokens, targets)?;
        self.optimizer.step(self.gpu, &grads, self.model.weights(), t, lr)?;
        self.stale = true;
        Ok(())
    }

    fn evaluate(&mut self, tokens: ArrayView2<'_, i64>, targets: ArrayView2<'_, i64>) -> Result<Evaluation> {
        let gpu = self.gpu;
        let logits = self.model()?.forward(gpu, tokens.into_dyn())?;
        evaluate_logits(logits.mapv(f64::from).view(), targets)
    }

    fn grad_norm(&mut self) -> Result<f64> {
        self.optimizer.grad_norm(self.gpu)
    }

    fn weight_norm(&mut self) -> Result<f64> {
        self.optimizer.weight_norm(self.gpu)
    }

    fn state(&mut self) -> Result<State> {
        self.optimizer.state(self.gpu)
    }

    fn set_state(&mut self, state: &State) -> Result<()> {
        self.optimizer.set_state(self.gpu, state, self.model.weights())?;
        self.stale = true;
        Ok(())
    }
}
