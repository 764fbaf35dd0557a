//! `verify` for SPEC's `train` fixtures: `<case>.json` holds `{"model": <config>, "optimizer":
//! {...}}`, `<case>.npz` the initial weights, `tokens` and `targets` \[N, B, S\] and `lr` \[N\].
//! The GPU runs the N updates as `shaderlens train` does — the whole model's backward
//! ([`Model::backward`]), then clipping and AdamW over all parameters at once
//! ([`GpuOptimizer`]) and the packed projections refreshed ([`Model::record_repack`]) — and the
//! float64 reference runs [`check_train`]; both are compared with `losses` and every `final.*`
//! present under SPEC's `train` tolerance.
//!
//! Every batch is checked (tokens, targets, shapes) before the first update, so a bad one is an
//! ERROR naming its update, never a half-run. A `final.*` key that names no parameter of the model
//! fails the fixture, naming the key.

use ndarray::{ArrayD, Axis, IxDyn};

use crate::compare::{Comparison, Outcome};
use crate::error::{fmt_shape, Error, Result};
use crate::fixture::Fixture;
use crate::gpu::Gpu;
use crate::reference::backward::adamw::AdamW;
use crate::reference::backward::fixtures::{check_train, weights_from_fixture, TRAIN};
use crate::reference::backward::train::Optimizer;
use crate::train::config::Optimizer as TrainOptimizer;
use crate::train::gpu_optimizer::GpuOptimizer;
use crate::transformer::{check_tokens, Config, GradOptions, Model, Seed};

/// The model config and optimizer of a `train` fixture's JSON.
fn read_json(fixture: &Fixture) -> Result<(Config, Optimizer)> {
    let path = fixture.path.with_extension("json");
    if !path.is_file() {
        return Err(Error::Input(format!("missing {}: a train fixture is <case>.npz with <case>.json beside it", path.display())));
    }
    let text = crate::io::read_to_string(&path)?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Input(format!("{}: {e}", path.display())))?;
    let (Some(model), Some(optimizer)) = (json.get("model"), json.get("optimizer")) else {
        return Err(Error::Input(format!("{}: a train config is {{\"model\": ..., \"optimizer\": ...}}", path.display())));
    };
    Ok((Config::from_json(&model.to_string())?, Optimizer::from_value(optimizer)?))
}

/// Checks one `train` fixture.
pub(crate) fn check(gpu: &Gpu, fixture: &Fixture) -> Result<Outcome> {
    let (config, optimizer) = read_json(fixture)?;
    config.refuse_gpu_backward_variants()?;
    let initial = weights_from_fixture(&config, fixture)?.try_map(&config, |_, a| Ok(a.mapv(|v| v as f32)))?;
    let tokens = fixture.int_array("tokens")?;
    let targets = fixture.int_array("targets")?;
    let lr: Vec<f64> = fixture.expected("lr")?.iter().copied().collect();
    crate::fixture::check_rank("lr", &[lr.len()], 1)?;
    if tokens.ndim() != 3 || targets.shape() != tokens.shape() || lr.len() != tokens.shape()[0] {
        return Err(Error::Shape(format!(
            "train needs tokens and targets [N, B, S] and lr [N]: tokens are {}, targets {}, lr [{}]",
            fmt_shape(tokens.shape()),
            fmt_shape(targets.shape()),
            lr.len()
        )));
    }
    for i in 0..lr.len() {
        let batch = tokens.index_axis(Axis(0), i);
        let (b, s) = check_tokens(&config, batch.view()).map_err(|e| Error::Input(format!("train update {i}: {e}")))?;
        crate::ops::backward::loss::prepare_targets(&[b, s, config.d_vocab_out], targets.index_axis(Axis(0), i))
            .map_err(|e| Error::Input(format!("train update {i}: {e}")))?;
    }
    let params = initial.named().into_iter().map(|(n, a)| (n, a.shape().to_vec())).collect::<Vec<_>>();
    let mut expected = Vec::new();
    let mut unknown = Vec::new();
    for key in fixture.names().filter(|k| k.starts_with("final.")) {
        match params.iter().find(|(n, _)| n == &key["final.".len()..]) {
            Some((_, shape)) => expected.push((key.to_string(), fixture.expected_shaped(key, shape)?)),
            None => unknown.push(key.to_string()),
        }
    }
    let want_losses = fixture.expected_shaped("losses", &[lr.len()])?;

    let (losses, finals) = run_on_gpu(gpu, &config, &optimizer, &initial, &tokens, &targets, &lr)?;
    let mut gpu_cmp = Comparison::new();
    let losses = ArrayD::from_shape_vec(IxDyn(&[losses.len()]), losses).map_err(|e| Error::Shape(e.to_string()))?;
    gpu_cmp.add_f32("losses", &losses.view(), &want_losses.view(), &TRAIN.allowed(&want_losses.view()).view())?;
    let named = finals.named();
    for (key, want) in &expected {
        let got = named.iter().find(|(n, _)| n == &key["final.".len()..]).map(|(_, a)| *a);
        let got = got.ok_or_else(|| Error::Gpu(format!("the GPU run did not produce {key}")))?;
        gpu_cmp.add_f32(key, &got.view(), &want.view(), &TRAIN.allowed(&want.view()).view())?;
    }
    if !unknown.is_empty() {
        let problem = format!("{} names no parameter of this model", unknown.join(", "));
        return Ok(Outcome { gpu: gpu_cmp, reference: Comparison::new(), problem: Some(problem) });
    }
    let reference = check_train(&config, &optimizer, fixture)?;
    Ok(Outcome { gpu: gpu_cmp, reference, problem: None })
}

/// The N updates on the GPU: the loss of each batch before its update, and the final weights.
fn run_on_gpu(
    gpu: &Gpu,
    config: &Config,
    optimizer: &Optimizer,
    initial: &crate::transformer::Weights<ArrayD<f32>>,
    tokens: &ArrayD<i64>,
    targets: &ArrayD<i64>,
    lr: &[f64],
) -> Result<(Vec<f32>, crate::transformer::Weights<ArrayD<f32>>)> {
    let model = Model::load(gpu, config.clone(), initial)?;
    let adamw = AdamW { lr: 0.0, beta1: optimizer.beta1, beta2: optimizer.beta2, eps: optimizer.eps, weight_decay: optimizer.weight_decay };
    // SPEC's training applies weight decay to every parameter (torch's default).
    let settings = TrainOptimizer { adamw, decay_biases_and_norms: true, max_grad_norm: optimizer.max_grad_norm, grokfast: None };
    let step = GpuOptimizer::new(gpu, config, settings, model.weights())?;
    let mut losses = Vec::with_capacity(lr.len());
    for (i, &rate) in lr.iter().enumerate() {
        let seed = Seed::CrossEntropy(targets.index_axis(Axis(0), i));
        let grads = model.backward(gpu, tokens.index_axis(Axis(0), i), &seed, &GradOptions::default())?;
        let loss = grads.loss.as_ref().ok_or_else(|| Error::Gpu("the backward pass returned no loss".into()))?.read(gpu)?;
        losses.push(loss.iter().next().copied().unwrap_or(f32::NAN));
        let mut encoder = gpu.encoder();
        step.record_step(gpu, &mut encoder, &grads.params, model.weights(), i as u64 + 1, rate)?;
        model.record_repack(gpu, &mut encoder)?;
        gpu.submit_and_wait(encoder)?;
    }
    let finals = model.weights().try_map(config, |_, t| t.read(gpu))?;
    Ok((losses, finals))
}
