//! Attribution patching on the GPU: one clean forward and one corrupt forward with their caches,
//! and one backward of the corrupt run seeded with the metric's gradient with respect to the
//! logits ([`Seed::Logits`]), all through [`Model`]; the estimate itself is then
//! [`super::attribution::attribution`], the same code the float64 reference ends in.
//!
//! The seed is built on the host without the logits: the summed logit difference has gradient +1
//! at `[b, S-1, answer[b]]` and −1 at `[b, S-1, wrong[b]]` whatever the logits are (0 when the
//! two tokens are the same).

use ndarray::{ArrayD, IxDyn};

use super::attribution::attribution;
use super::Prompts;
use crate::error::Result;
use crate::gpu::Gpu;
use crate::tensor::GpuTensor;
use crate::transformer::{Cache, GradOptions, Model, Names, Options, Seed};

/// d (Σ_b metric_b) / d logits \[B, S, d_vocab_out\] for `prompts` (see the module header).
pub fn seed(prompts: &Prompts, vocab_out: usize) -> ArrayD<f32> {
    let (batch, seq) = (prompts.clean.shape()[0], prompts.clean.shape()[1]);
    let mut grad = ArrayD::<f32>::zeros(IxDyn(&[batch, seq, vocab_out]));
    if seq == 0 {
        return grad;
    }
    for (b, (a, w)) in prompts.answer.iter().zip(prompts.wrong.iter()).enumerate() {
        grad[[b, seq - 1, *a as usize]] += 1.0;
        grad[[b, seq - 1, *w as usize]] -= 1.0;
    }
    grad
}

/// The attribution estimate of every hook `names` picks, for `prompts`, computed on the GPU
/// (activations and gradients in float32; the products summed in float64 on the host).
pub fn attribution_gpu(gpu: &Gpu, model: &Model, prompts: &Prompts, names: &Names) -> Result<Cache<ArrayD<f64>>> {
    let config = model.config();
    prompts.check(config)?;
    let options = Options { names: names.clone(), interventions: &[] };
    let clean = model.run(gpu, prompts.clean.view(), &options)?;
    let corrupt = model.run(gpu, prompts.corrupt.view(), &options)?;
    let seed_tensor = GpuTensor::upload(gpu, seed(prompts, config.d_vocab_out).view(), "attribution seed")?;
    let grads = model.backward(
        gpu,
        prompts.corrupt.view(),
        &Seed::Logits(&seed_tensor),
        &GradOptions { names: names.clone(), interventions: &[] },
    )?;
    let grads = grads.read(gpu, config)?;
    let widen = |cache: &Cache<ArrayD<f32>>| {
        let mut out = Cache::default();
        for (name, a) in cache.iter() {
            out.push(name, a.mapv(f64::from));
        }
        out
    };
    attribution(&widen(&clean.cache), &widen(&corrupt.cache), &widen(&grads.cache))
}
