//! The GPU trainer: a [`super::Backend`] whose model, gradients and optimizer live on the GPU.
//!
//! The gradients come from a [`GpuGradients`] source: [`Backprop`], the GPU backward of the whole
//! model ([`Model::backward`]), or any other source (the tests feed the float64 reference's
//! gradients through it). The update is [`GpuOptimizer::record_step`] followed by
//! [`Model::record_repack`] (the model's packed `W_Q`/`W_K`/`W_V` follow the updated weights), one
//! submission with no readback. Evaluation reads back the logits of the evaluated set, the norms
//! one number each.

use ndarray::{ArrayD, ArrayView2};

use super::config::Optimizer;
use super::gpu_optimizer::GpuOptimizer;
use super::{evaluate_logits, Backend, Evaluation, State};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::tensor::GpuTensor;
use crate::model::weights::Weights;
use crate::transformer::{Config, GradOptions, Model, Seed};

/// Where a GPU trainer's gradients come from.
pub trait GpuGradients {
    /// The gradients of the mean loss of `tokens`/`targets` \[B, S\] (SPEC's Gradients) with
    /// respect to every parameter of `model` as it is now, as GPU tensors of the parameters'
    /// shapes.
    fn gradients(&mut self, gpu: &Gpu, model: &Model, tokens: ArrayView2<'_, i64>, targets: ArrayView2<'_, i64>) -> Result<Weights<GpuTensor>>;
}

/// The GPU backward of the whole model: SPEC's mean cross-entropy and every parameter's gradient,
/// forward and backward in one submission ([`Model::backward`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct Backprop;

impl GpuGradients for Backprop {
    fn gradients(&mut self, gpu: &Gpu, model: &Model, tokens: ArrayView2<'_, i64>, targets: ArrayView2<'_, i64>) -> Result<Weights<GpuTensor>> {
        let seed = Seed::CrossEntropy(targets.into_dyn());
        Ok(model.backward(gpu, tokens.into_dyn(), &seed, &GradOptions::default())?.params)
    }
}

/// A trainer on one GPU.
pub struct GpuTrainer<'g, G> {
    gpu: &'g Gpu,
    model: Model,
    optimizer: GpuOptimizer,
    gradients: G,
}

impl<'g, G: GpuGradients> GpuTrainer<'g, G> {
    /// A trainer starting from `initial` (float32 values held in float64) with zero moments.
    pub fn new(gpu: &'g Gpu, config: &Config, optimizer: Optimizer, initial: &Weights<ArrayD<f64>>, gradients: G) -> Result<Self> {
        let model = Model::load(gpu, config.clone(), &initial.try_map(config, |_, a| Ok(a.mapv(|x| x as f32)))?)?;
        let optimizer = GpuOptimizer::new(gpu, config, optimizer, model.weights())?;
        Ok(Self { gpu, model, optimizer, gradients })
    }

    /// The model with its current parameters.
    pub fn model(&self) -> &Model {
        &self.model
    }
}

impl<G: GpuGradients> Backend for GpuTrainer<'_, G> {
    fn describe(&self) -> String {
        format!("GPU trainer on {}", self.gpu.description())
    }

    fn step(&mut self, tokens: ArrayView2<'_, i64>, targets: ArrayView2<'_, i64>, t: u64, lr: f64) -> Result<()> {
        let grads = self.gradients.gradients(self.gpu, &self.model, tokens, targets)?;
        let mut encoder = self.gpu.encoder();
        self.optimizer.record_step(self.gpu, &mut encoder, &grads, self.model.weights(), t, lr)?;
        self.model.record_repack(self.gpu, &mut encoder)?;
        self.gpu.submit_and_wait(encoder)
    }

    fn evaluate(&mut self, tokens: ArrayView2<'_, i64>, targets: ArrayView2<'_, i64>) -> Result<Evaluation> {
        let gpu = self.gpu;
        let logits = self.model.forward(gpu, tokens.into_dyn())?;
        evaluate_logits(logits.mapv(f64::from).view(), targets)
    }

    fn logits(&mut self, tokens: ArrayView2<'_, i64>) -> Result<ArrayD<f64>> {
        Ok(self.model.forward(self.gpu, tokens.into_dyn())?.mapv(f64::from))
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
        let mut encoder = self.gpu.encoder();
        self.model.record_repack(self.gpu, &mut encoder)?;
        self.gpu.submit_and_wait(encoder)
    }
}
