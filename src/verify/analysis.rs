//! `verify` for SPEC's `act_patch` fixtures: a model (`<case>.json` + weights in `<case>.npz`),
//! prompt pairs `clean` / `corrupt` with `answer` / `wrong`, and expected sweeps `patch.<sweep>`.
//! Each sweep the fixture holds runs batched on the GPU ([`crate::analysis::patch_gpu`]) and in
//! the float64 reference ([`crate::analysis::patch_ref`]), compared under SPEC's tolerance. A
//! `patch.*` key that names no sweep shaderlens has (or one the model lacks) fails the fixture,
//! naming the key. `attribution` fixtures hold expected `attr.<hook>` estimates: the GPU
//! ([`crate::analysis::attribution_gpu`]: clean and corrupt forwards, one backward seeded with the
//! metric's gradient) and the float64 reference ([`crate::analysis::attribution::reference`]) are
//! each compared under SPEC's tolerance; an `attr.*` key for a hook the model does not have fails
//! the fixture, naming the key.

use ndarray::ArrayD;

use crate::analysis::{attribution, attribution_gpu, patch_gpu, patch_ref, Prompts, Sweep};
use crate::compare::{Comparison, Outcome, ATTENTION};
use crate::error::{Error, Result};
use crate::fixture::Fixture;
use crate::gpu::Gpu;
use crate::transformer::{hooks, Config, Model, Names};

/// Reads `clean`, `corrupt`, `answer` and `wrong` and checks them against `config`.
pub(crate) fn prompts(config: &Config, fixture: &Fixture) -> Result<Prompts> {
    let [clean, corrupt, answer, wrong] = ["clean", "corrupt", "answer", "wrong"].map(|k| fixture.int_array(k));
    let prompts = Prompts { clean: clean?, corrupt: corrupt?, answer: answer?, wrong: wrong? };
    prompts.check(config)?;
    Ok(prompts)
}

/// Checks one `act_patch` fixture.
pub(crate) fn check_act_patch(gpu: &Gpu, fixture: &Fixture) -> Result<Outcome> {
    let config = super::model_files::config_beside(fixture)?;
    let weights = super::model_files::weights_among_others(&config, fixture)?;
    let prompts = prompts(&config, fixture)?;
    let seq = prompts.clean.shape()[1];
    let mut expected: Vec<(Sweep, String, ArrayD<f64>)> = Vec::new();
    let mut unknown = Vec::new();
    for key in fixture.names().filter(|k| k.starts_with("patch.")) {
        match Sweep::from_key(&key["patch.".len()..]).ok().filter(|s| s.available(&config)) {
            Some(s) => expected.push((s, key.to_string(), fixture.expected_shaped(key, &s.shape(&config, seq))?)),
            None => unknown.push(key.to_string()),
        }
    }
    if expected.is_empty() && unknown.is_empty() {
        return Err(Error::Input("an act_patch fixture needs at least one patch.<sweep> array".into()));
    }
    let sweeps: Vec<Sweep> = expected.iter().map(|(s, ..)| *s).collect();
    let weights64 = weights.try_map(&config, |_, a| Ok(a.mapv(f64::from)))?;
    let host = patch_ref::act_patch(&config, &weights64, &prompts, &sweeps)?;
    let problem = (!unknown.is_empty()).then(|| {
        format!("{} cannot be produced: not a sweep shaderlens has for this model (known: {})", unknown.join(", "), known(&config))
    });
    let model = Model::load(gpu, config, &weights)?;
    let on_gpu = patch_gpu::act_patch(gpu, &model, &prompts, &sweeps, &patch_gpu::Batching::default())?;
    let mut gpu_cmp = Comparison::new();
    let mut ref_cmp = Comparison::new();
    for (((_, key, want), got_gpu), got_ref) in expected.iter().zip(&on_gpu).zip(&host) {
        let allowed = ATTENTION.allowed(&want.view());
        gpu_cmp.add(key, &got_gpu.view(), &want.view(), &allowed.view())?;
        ref_cmp.add(key, &got_ref.view(), &want.view(), &allowed.view())?;
    }
    Ok(Outcome { gpu: gpu_cmp, reference: ref_cmp, problem })
}

fn known(config: &Config) -> String {
    Sweep::ALL.iter().filter(|s| s.available(config)).map(|s| format!("patch.{}", s.key())).collect::<Vec<_>>().join(", ")
}

/// Checks one `attribution` fixture.
pub(crate) fn check_attribution(gpu: &Gpu, fixture: &Fixture) -> Result<Outcome> {
    let config = super::model_files::config_beside(fixture)?;
    let weights = super::model_files::weights_among_others(&config, fixture)?;
    let prompts = prompts(&config, fixture)?;
    let (batch, seq) = (prompts.clean.shape()[0], prompts.clean.shape()[1]);
    let all = hooks(&config, batch, seq);
    let mut expected: Vec<(String, String, ArrayD<f64>)> = Vec::new();
    let mut unknown = Vec::new();
    for key in fixture.names().filter(|k| k.starts_with("attr.")) {
        let hook = &key["attr.".len()..];
        match all.iter().find(|h| h.name == hook && !h.shape.is_empty()) {
            Some(h) => {
                let shape = &h.shape[..h.shape.len() - 1];
                expected.push((hook.to_string(), key.to_string(), fixture.expected_shaped(key, shape)?));
            }
            None => unknown.push(key.to_string()),
        }
    }
    if expected.is_empty() && unknown.is_empty() {
        return Err(Error::Input("an attribution fixture needs at least one attr.<hook> array".into()));
    }
    let names = Names::only(expected.iter().map(|(hook, ..)| hook.as_str()));
    let weights64 = weights.try_map(&config, |_, a| Ok(a.mapv(f64::from)))?;
    let host = attribution::reference(&config, &weights64, &prompts, &names)?;
    let problem = (!unknown.is_empty()).then(|| format!("{} cannot be produced: no such hook in this model", unknown.join(", ")));
    let model = Model::load(gpu, config, &weights)?;
    let on_gpu = attribution_gpu::attribution_gpu(gpu, &model, &prompts, &names)?;
    let mut gpu_cmp = Comparison::new();
    let mut ref_cmp = Comparison::new();
    for (hook, key, want) in &expected {
        let allowed = ATTENTION.allowed(&want.view());
        let missing = || Error::Input(format!("{key}: the attribution of {hook} was not computed"));
        gpu_cmp.add(key, &on_gpu.get(hook).ok_or_else(missing)?.view(), &want.view(), &allowed.view())?;
        ref_cmp.add(key, &host.get(hook).ok_or_else(missing)?.view(), &want.view(), &allowed.view())?;
    }
    Ok(Outcome { gpu: gpu_cmp, reference: ref_cmp, problem })
}
