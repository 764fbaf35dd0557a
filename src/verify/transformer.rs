//! `verify` for whole-model fixtures (SPEC, "Transformer"): `<case>.npz` with `<case>.json` beside
//! it. The model runs twice on the GPU (with the cache the fixture expects, and alone, which takes
//! the fused paths) and once in the float64 host reference; the logits and every `cache.*` array
//! are compared under SPEC's `transformer` tolerance. A `cache.*` key that is not a hook shaderlens
//! produces fails the fixture, naming the key.

use crate::compare::{Comparison, ATTENTION};
use crate::error::{Error, Result};
use crate::fixture::Fixture;
use crate::gpu::Gpu;
use crate::reference;
use crate::transformer::{check_tokens, Model, Names, Options, Weights};

use crate::compare::Outcome;

/// Checks one transformer fixture.
pub(crate) fn check(gpu: &Gpu, fixture: &Fixture) -> Result<Outcome> {
    let config = super::model_files::config_beside(fixture)?;
    let weights = Weights::from_fixture(&config, fixture)?;
    let tokens = fixture.int_array("tokens")?;
    let (batch, seq) = check_tokens(&config, tokens.view())?;
    let hooks = crate::model::hooks::available(&config, batch, seq);
    let want_logits = fixture.expected_shaped("logits", &[batch, seq, config.d_vocab_out])?;

    let mut expected = Vec::new();
    let mut unknown = Vec::new();
    for key in fixture.names().filter(|k| k.starts_with("cache.")) {
        let name = &key["cache.".len()..];
        match hooks.iter().find(|h| h.name == name) {
            Some(hook) => expected.push((key.to_string(), name.to_string(), fixture.expected_shaped(key, &hook.shape)?)),
            None => unknown.push(key.to_string()),
        }
    }
    let names = Names::only(expected.iter().map(|(_, name, _)| name));

    let weights64 = weights.try_map(&config, |_, a| Ok(a.mapv(f64::from)))?;
    let host = reference::transformer::forward(&config, &weights64, tokens.view(), &names, &[])?;
    let model = Model::load(gpu, config, &weights)?;
    let cached = model.run(gpu, tokens.view(), &Options { names, interventions: &[] })?;
    let alone = model.run(gpu, tokens.view(), &Options::default())?;

    let mut gpu_cmp = Comparison::new();
    let mut ref_cmp = Comparison::new();
    let allowed = ATTENTION.allowed(&want_logits.view());
    gpu_cmp.add_f32("logits", &cached.logits.view(), &want_logits.view(), &allowed.view())?;
    gpu_cmp.add_f32("logits (nothing cached)", &alone.logits.view(), &want_logits.view(), &allowed.view())?;
    ref_cmp.add("logits", &host.logits.view(), &want_logits.view(), &allowed.view())?;
    for (key, name, want) in &expected {
        let missing = || Error::Gpu(format!("the forward pass did not cache {name}"));
        let got = cached.cache.get(name).ok_or_else(missing)?;
        let got_ref = host.cache.get(name).ok_or_else(missing)?;
        let allowed = ATTENTION.allowed(&want.view());
        gpu_cmp.add_f32(key, &got.view(), &want.view(), &allowed.view())?;
        ref_cmp.add(key, &got_ref.view(), &want.view(), &allowed.view())?;
    }
    let problem = (!unknown.is_empty()).then(|| {
        format!(
            "{} {} not {} that shaderlens can produce for this model",
            unknown.join(", "),
            if unknown.len() == 1 { "is" } else { "are" },
            if unknown.len() == 1 { "a hook" } else { "hooks" }
        )
    });
    Ok(Outcome { gpu: gpu_cmp, reference: ref_cmp, problem })
}
