//! The GPU backward pass of the whole model (`Model::backward`) against the float64 reference
//! (`reference::backward::model::transformer_grad`): every `transformer_grad` fixture through
//! `verify`; random models with interventions on every kind of hook (the gradient flows through
//! zero, scale and replace, on the pattern and the scale too); a caller's d logits as the seed;
//! the steady state (a second step creates no buffer or bind group, and gives the same bits);
//! and refusals before any GPU work.

mod common;

use common::model::{tokens_targets, weights};

use std::path::Path;

use ndarray::{ArrayD, IxDyn};
use shaderlens::compare::Comparison;
use shaderlens::reference::backward::fixtures::GRAD;
use shaderlens::reference::backward::model::transformer_grad;
use shaderlens::tensor::GpuTensor;
use shaderlens::transformer::{Config, GradOptions, Intervention, Model, Names, Seed, Weights};
use shaderlens::verify::{self, Status};

#[test]
fn every_transformer_grad_fixture_passes_verify() {
    let gpu = common::gpu();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/transformer_grad");
    let files: Vec<_> = verify::collect(&[dir]).into_iter().map(|e| e.unwrap_or_else(|(p, e)| panic!("{}: {e}", p.display()))).collect();
    assert!(files.len() >= 9, "{} fixtures", files.len());
    for path in files {
        let report = verify::verify_file(&gpu, &path);
        assert_eq!(report.status, Status::Pass, "{}", verify::line(&report));
    }
}

fn config(norm: &str, act: &str, attn_only: bool) -> Config {
    let d_mlp = if attn_only { "null" } else { "12" };
    Config::from_json(&format!(
        r#"{{"n_layers": 2, "d_model": 8, "n_heads": 2, "d_head": 4, "d_mlp": {d_mlp}, "d_vocab": 7,
            "d_vocab_out": 5, "n_ctx": 6, "act_fn": "{act}", "normalization_type": {norm},
            "attn_only": {attn_only}, "eps": 1e-5, "positional_embedding_type": "standard"}}"#
    ))
    .expect("config")
}

/// The GPU's loss, every parameter gradient and the asked hook gradients against the reference.
fn compare(config: &Config, w: &Weights<ArrayD<f32>>, names: &[&str], interventions: &[Intervention], what: &str) {
    let gpu = common::gpu();
    let (tokens, targets) = tokens_targets();
    let w64 = w.try_map(config, |_, a| Ok(a.mapv(f64::from))).expect("widen");
    let names = Names::only(names);
    let want = transformer_grad(config, &w64, tokens.view(), targets.view(), &names, interventions).expect("reference");
    let model = Model::load(&gpu, config.clone(), w).expect("load");
    let options = GradOptions { names, interventions };
    let got = model.backward(&gpu, tokens.view(), &Seed::CrossEntropy(targets.view()), &options).expect("backward").read(&gpu, config).expect("read");
    common::model::assert_grads_match(&got, &want, what);
}

const HOOKS: &[&str] = &[
    "hook_embed",
    "blocks.0.ln1.hook_scale",
    "blocks.0.ln1.hook_normalized",
    "blocks.0.attn.hook_q",
    "blocks.0.attn.hook_attn_scores",
    "blocks.0.attn.hook_pattern",
    "blocks.1.hook_resid_pre",
    "blocks.1.attn.hook_z",
    "ln_final.hook_scale",
    "unembed.hook_out",
];

/// A layer norm's hook (absent without normalisation).
fn is_ln(hook: &str) -> bool {
    ["ln1.", "ln2.", "ln_final."].iter().any(|p| hook.contains(p))
}

#[test]
fn interventions_on_every_kind_of_hook_match_the_reference() {
    let pattern = ArrayD::from_elem(IxDyn(&[2, 2, 5, 5]), 0.2f32);
    let cases: Vec<(&str, Vec<Intervention>)> = vec![
        ("none", vec![]),
        ("zero head", vec![Intervention::zero("blocks.0.attn.hook_z").at_head(1)]),
        ("scale resid", vec![Intervention::scale("blocks.1.hook_resid_pre", 0.5).at_pos(2), Intervention::scale("hook_pos_embed", -2.0)]),
        ("replace pattern", vec![Intervention::replace("blocks.1.attn.hook_pattern", pattern).at_head(0)]),
        ("scale the scale", vec![Intervention::scale("blocks.0.ln1.hook_scale", 1.5), Intervention::zero("ln_final.hook_normalized").at_batch(1)]),
        ("branches", vec![Intervention::scale("blocks.0.hook_attn_out", 3.0), Intervention::zero("hook_embed").at_pos(0), Intervention::scale("unembed.hook_in", 0.7)]),
    ];
    for (norm, act, attn_only) in [("\"LN\"", "gelu_new", false), ("\"LNPre\"", "gelu", false), ("null", "relu", false), ("\"LN\"", "relu", true)] {
        let config = config(norm, act, attn_only);
        let w = weights(&config, 3);
        let mut hooks: Vec<&str> = HOOKS.to_vec();
        if norm == "null" {
            hooks.retain(|h| !is_ln(h));
        }
        if !attn_only {
            hooks.extend(["blocks.1.mlp.hook_pre", "blocks.1.hook_mlp_out", "blocks.0.ln2.hook_scale", "blocks.0.hook_resid_mid"]);
            if norm == "null" {
                hooks.retain(|h| !is_ln(h));
            }
        }
        for (what, interventions) in &cases {
            let interventions: Vec<Intervention> =
                interventions.iter().filter(|i| norm != "null" || !is_ln(&i.hook)).cloned().collect();
            compare(&config, &w, &hooks, &interventions, &format!("{norm} {act} attn_only={attn_only}: {what}"));
        }
    }
}

#[test]
fn a_logits_seed_gives_the_cross_entropy_gradients_without_a_loss() {
    let gpu = common::gpu();
    let config = config("\"LN\"", "gelu_new", false);
    let model = Model::load(&gpu, config.clone(), &weights(&config, 5)).expect("load");
    let (tokens, targets) = tokens_targets();
    let options = GradOptions { names: Names::only(["blocks.0.hook_resid_mid"]), interventions: &[] };
    let ce = model.backward(&gpu, tokens.view(), &Seed::CrossEntropy(targets.view()), &options).expect("ce").read(&gpu, &config).expect("read");
    let w64 = weights(&config, 5).try_map(&config, |_, a| Ok(a.mapv(f64::from))).expect("widen");
    let run = shaderlens::reference::transformer::forward(&config, &w64, tokens.view(), &Names::Nothing, &[]).expect("forward");
    let seed = shaderlens::reference::backward::loss::cross_entropy(run.logits.view(), targets.view()).expect("ce").grad.mapv(|v| v as f32);
    let seed = GpuTensor::upload(&gpu, seed.view(), "seed").expect("upload");
    let got = model.backward(&gpu, tokens.view(), &Seed::Logits(&seed), &options).expect("seeded").read(&gpu, &config).expect("read");
    assert!(got.loss.is_none());
    for ((name, a), (_, b)) in got.params.named().into_iter().zip(ce.params.named()) {
        let b64 = b.mapv(f64::from);
        let mut c = Comparison::new();
        c.add_f32(&name, &a.view(), &b64.view(), &GRAD.allowed(&b64.view()).view()).expect("compare");
        assert!(c.passed(), "{name}: {:?}", c.worst);
    }
    let bad = GpuTensor::empty(&gpu, &[2, 5, 4], "bad seed").expect("alloc");
    let e = model.backward(&gpu, tokens.view(), &Seed::Logits(&bad), &options).unwrap_err().to_string();
    assert!(e.contains("[2, 5, 4]") && e.contains("[2, 5, 5]"), "{e}");
}

#[test]
fn a_second_step_allocates_nothing_and_gives_the_same_bits() {
    let gpu = common::gpu();
    let config = config("\"LN\"", "gelu", false);
    let model = Model::load(&gpu, config.clone(), &weights(&config, 9)).expect("load");
    let (tokens, targets) = tokens_targets();
    let interventions = [Intervention::zero("blocks.0.attn.hook_z").at_head(0), Intervention::scale("blocks.1.ln1.hook_scale", 2.0)];
    let options = GradOptions { names: Names::only(["blocks.0.attn.hook_pattern", "blocks.1.ln1.hook_scale"]), interventions: &interventions };
    let step = || model.backward(&gpu, tokens.view(), &Seed::CrossEntropy(targets.view()), &options).expect("step").read(&gpu, &config).expect("read");
    let first = step();
    let counts = [gpu.buffers_created(), gpu.bind_groups_created()];
    let second = step();
    assert_eq!([gpu.buffers_created(), gpu.bind_groups_created()], counts, "the second step created buffers or bind groups");
    assert_eq!(first.loss.map(f32::to_bits), second.loss.map(f32::to_bits));
    for ((name, a), (_, b)) in first.params.named().into_iter().zip(second.params.named()) {
        assert_eq!(a, b, "{name} differs between two identical steps");
    }
}

#[test]
fn bad_inputs_are_refused_before_any_gpu_work() {
    let gpu = common::gpu();
    let config = config("\"LN\"", "relu", false);
    let model = Model::load(&gpu, config.clone(), &weights(&config, 1)).expect("load");
    let (tokens, _) = tokens_targets();
    let before = gpu.dispatch_count();
    let out_of_range = ndarray::arr2(&[[0i64, 1, 2, 3, 4], [0, 1, 5, 3, -1]]).into_dyn();
    let e = model.backward(&gpu, tokens.view(), &Seed::CrossEntropy(out_of_range.view()), &GradOptions::default()).unwrap_err().to_string();
    assert!(e.contains("target 5 at position [1, 2]"), "{e}");
    let short = ndarray::arr2(&[[0i64, 1, 2, 3]]).into_dyn();
    let e = model.backward(&gpu, tokens.view(), &Seed::CrossEntropy(short.view()), &GradOptions::default()).unwrap_err().to_string();
    assert!(e.contains("targets are [1, 4]"), "{e}");
    let typo = GradOptions { names: Names::only(["blocks.0.hook_resid_prex"]), interventions: &[] };
    let targets = tokens_targets().1;
    assert!(model.backward(&gpu, tokens.view(), &Seed::CrossEntropy(targets.view()), &typo).is_err());
    assert_eq!(gpu.dispatch_count(), before, "a refused backward dispatched work");
}
