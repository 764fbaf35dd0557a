//! `verify` for SPEC's `transformer_grad` fixtures (`<case>.npz` with `<case>.json` beside it):
//! the loss, every `grad.<param>` and every `cache.<hook>_grad` present, under SPEC's gradient
//! tolerances, from the GPU ([`crate::transformer::Model::backward`], one submission) and from the
//! float64 reference ([`crate::reference::backward::fixtures::check_transformer_grad`]).
//!
//! Targets that are missing, mis-shaped or out of range make the fixture an ERROR (it cannot be
//! checked), before any GPU work. An expected key that this model has no such parameter or hook
//! for fails the fixture, naming the key.

use ndarray::{ArrayD, IxDyn};

use crate::compare::{Comparison, Outcome};
use crate::error::{Error, Result};
use crate::fixture::Fixture;
use crate::gpu::Gpu;
use crate::reference::backward::fixtures::{check_transformer_grad, GRAD, GRAD_LOSS};
use crate::transformer::{check_tokens, hooks, GradOptions, Model, Names, Seed};

/// Checks one `transformer_grad` fixture.
pub(crate) fn check(gpu: &Gpu, fixture: &Fixture) -> Result<Outcome> {
    let config = super::model_files::config_beside(fixture)?;
    config.refuse_gpu_backward_variants()?;
    // By state-dict name, other keys (`grad.*`, `targets`, ...) ignored; float32 widened exactly.
    let weights = super::model_files::weights_among_others(&config, fixture)?;
    let tokens = fixture.int_array("tokens")?;
    let targets = fixture.int_array("targets")?;
    let (batch, seq) = check_tokens(&config, tokens.view())?;
    crate::ops::backward::loss::prepare_targets(&[batch, seq, config.d_vocab_out], targets.view())?;
    let hooks = hooks(&config, batch, seq);
    let params = weights.named().into_iter().map(|(name, a)| (name, a.shape().to_vec())).collect::<Vec<_>>();

    let mut expected = Vec::new(); // (key, hook or parameter, want)
    let mut unknown = Vec::new();
    let mut hook_names = Vec::new();
    for key in fixture.names() {
        if let Some(param) = key.strip_prefix("grad.") {
            match params.iter().find(|(n, _)| n == param) {
                Some((_, shape)) => expected.push((key.to_string(), fixture.expected_shaped(key, shape)?)),
                None => unknown.push(key.to_string()),
            }
        } else if let Some(rest) = key.strip_prefix("cache.") {
            match rest.strip_suffix("_grad").and_then(|h| hooks.iter().find(|hook| hook.name == h)) {
                Some(hook) => {
                    hook_names.push(hook.name.clone());
                    expected.push((key.to_string(), fixture.expected_shaped(key, &hook.shape)?));
                }
                None => unknown.push(key.to_string()),
            }
        }
    }
    let want_loss = fixture.expected_shaped("loss", &[])?;

    let model = Model::load(gpu, config.clone(), &weights)?;
    let options = GradOptions { names: Names::only(&hook_names), interventions: &[] };
    let got = model.backward(gpu, tokens.view(), &Seed::CrossEntropy(targets.view()), &options)?.read(gpu, &config)?;
    let mut gpu_cmp = Comparison::new();
    let loss = ArrayD::from_elem(IxDyn(&[]), got.loss.ok_or_else(|| Error::Gpu("the backward pass returned no loss".into()))?);
    gpu_cmp.add_f32("loss", &loss.view(), &want_loss.view(), &GRAD_LOSS.allowed(&want_loss.view()).view())?;
    let named = got.params.named();
    for (key, want) in &expected {
        let got = match key.strip_prefix("grad.") {
            Some(param) => named.iter().find(|(n, _)| n == param).map(|(_, a)| *a),
            None => got.cache.get(&key["cache.".len()..]),
        };
        let got = got.ok_or_else(|| Error::Gpu(format!("the backward pass did not produce {key}")))?;
        gpu_cmp.add_f32(key, &got.view(), &want.view(), &GRAD.allowed(&want.view()).view())?;
    }
    if !unknown.is_empty() {
        let problem = format!(
            "{} {} not a gradient that shaderlens can produce for this model",
            unknown.join(", "),
            if unknown.len() == 1 { "is" } else { "are" }
        );
        return Ok(Outcome { gpu: gpu_cmp, reference: Comparison::new(), problem: Some(problem) });
    }
    let reference = check_transformer_grad(&config, fixture)?;
    Ok(Outcome { gpu: gpu_cmp, reference, problem: None })
}
