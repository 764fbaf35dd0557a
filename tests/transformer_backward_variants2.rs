//! The GPU backward pass for the TransformerLens variants beyond the first set (issue 13 item 4):
//! `use_attn_result`, the per-head inputs (`use_attn_in`, `use_split_qkv_input`), `shortformer`
//! and SoLU, against the float64 reference on awkward shapes (batch 2, S 5, d_head 3, 2 layers):
//! the loss, every parameter's gradient and every hook's, with and without interventions on the
//! variants' own hooks; and a few training steps of a variant model on the GPU.

mod common;

use common::model::{tokens_targets, weights};

use ndarray::{ArrayD, IxDyn};
use shaderlens::reference::backward::model::transformer_grad;
use shaderlens::transformer::{hooks, Config, GradOptions, Intervention, Model, Names, Seed};

/// A two-layer config with d_head 3 and TransformerLens fields added (`"key": value, ...`).
fn config(norm: &str, act: &str, extra: &str) -> Config {
    let norm = if norm.is_empty() { "null".to_string() } else { format!("\"{norm}\"") };
    let pos = if extra.contains("positional_embedding_type") { "" } else { r#", "positional_embedding_type": "standard""# };
    Config::from_json(&format!(
        r#"{{"n_layers": 2, "d_model": 8, "n_heads": 2, "d_head": 3, "d_mlp": 12, "d_vocab": 7,
            "d_vocab_out": 5, "n_ctx": 6, "act_fn": "{act}", "normalization_type": {norm},
            "attn_only": false, "eps": 1e-5{pos}{extra}}}"#
    ))
    .expect("config")
}

/// The GPU's loss, every parameter gradient and the gradients of the hooks `names` picks (every
/// hook when `None`) against the reference.
fn compare(gpu: &common::TestGpu, config: &Config, names: Option<Names>, interventions: &[Intervention], what: &str) {
    let (tokens, targets) = tokens_targets();
    let w = weights(config, 7);
    let w64 = w.try_map(config, |_, a| Ok(a.mapv(f64::from))).expect("widen");
    let names = names.unwrap_or_else(|| Names::only(hooks(config, 2, 5).into_iter().map(|h| h.name).filter(|n| n != "hook_tokens")));
    let want = transformer_grad(config, &w64, tokens.view(), targets.view(), &names, interventions).expect("reference");
    let model = Model::load(gpu, config.clone(), &w).expect("load");
    let options = GradOptions { names, interventions };
    let got = model.backward(gpu, tokens.view(), &Seed::CrossEntropy(targets.view()), &options).expect("backward").read(gpu, config).expect("read");
    common::model::assert_grads_match(&got, &want, what);
}

#[test]
fn attention_variants_match_the_reference() {
    let gpu = common::gpu();
    let cases = [
        ("attn_result", config("LN", "gelu", r#", "use_attn_result": true"#)),
        ("attn_in", config("LN", "gelu", r#", "use_attn_in": true"#)),
        ("split_qkv RMS", config("RMS", "relu", r#", "use_split_qkv_input": true"#)),
        ("split_qkv attn_result LNPre", config("LNPre", "gelu", r#", "use_split_qkv_input": true, "use_attn_result": true"#)),
        ("shortformer", config("LN", "gelu", r#", "positional_embedding_type": "shortformer""#)),
        ("shortformer split_qkv", config("LN", "relu", r#", "positional_embedding_type": "shortformer", "use_split_qkv_input": true"#)),
        ("shortformer attn_in no norm", config("", "gelu", r#", "positional_embedding_type": "shortformer", "use_attn_in": true"#)),
        ("solu", config("LN", "solu", "")),
        ("solu_ln", config("LN", "solu_ln", "")),
        ("solu_ln RMS", config("RMS", "solu_ln", r#", "use_attn_result": true"#)),
        ("solu_ln no norm", config("", "solu_ln", "")),
    ];
    for (what, config) in &cases {
        compare(&gpu, config, None, &[], what);
        // No hook gradient asked: the plain paths (one ln1 backward, one W_O product).
        compare(&gpu, config, Some(Names::Nothing), &[], &format!("{what} without hooks"));
    }
}

#[test]
fn hook_result_on_request_matches_the_reference() {
    let gpu = common::gpu();
    let config = config("LN", "gelu", "");
    let names = Names::only(["blocks.1.attn.hook_result", "blocks.0.attn.hook_z"]);
    compare(&gpu, &config, Some(names), &[], "hook_result asked by name");
    let iv = [Intervention::scale("blocks.0.attn.hook_result", 0.5).at_head(1)];
    compare(&gpu, &config, Some(Names::Nothing), &iv, "hook_result scaled without use_attn_result");
}

#[test]
fn interventions_on_the_variants_hooks_match_the_reference() {
    let gpu = common::gpu();
    let result = ArrayD::from_elem(IxDyn(&[2, 5, 2, 8]), 0.3f32);
    let split = config("LN", "gelu", r#", "use_split_qkv_input": true, "use_attn_result": true, "positional_embedding_type": "shortformer""#);
    let iv = [
        Intervention::replace("blocks.0.attn.hook_result", result).at_head(0),
        Intervention::scale("blocks.1.hook_k_input", -1.5).at_pos(2),
        Intervention::zero("blocks.0.hook_q_input").at_batch(1),
        Intervention::scale("blocks.1.ln2.hook_scale", 1.5),
        Intervention::zero("hook_pos_embed").at_pos(3),
    ];
    compare(&gpu, &split, None, &iv, "patched split inputs");
    // ln1's own hooks with split inputs that stay the same values.
    let iv = [Intervention::scale("blocks.1.ln1.hook_scale", 1.5).at_head(1), Intervention::zero("blocks.0.ln1.hook_normalized").at_pos(2)];
    compare(&gpu, &split, None, &iv, "patched ln1 with split inputs");
    let attn_in = config("RMS", "gelu", r#", "use_attn_in": true"#);
    let iv = [Intervention::scale("blocks.0.hook_attn_in", 2.0).at_head(1), Intervention::zero("blocks.1.ln1.hook_normalized").at_pos(0)];
    compare(&gpu, &attn_in, None, &iv, "patched attn_in");
    let solu = config("LN", "solu_ln", r#", "positional_embedding_type": "shortformer""#);
    let mid = ArrayD::from_elem(IxDyn(&[2, 5, 12]), 0.1f32);
    let iv = [
        Intervention::replace("blocks.0.mlp.hook_mid", mid).at_pos(1),
        Intervention::scale("blocks.1.mlp.ln.hook_scale", 0.5),
        Intervention::zero("blocks.1.mlp.ln.hook_normalized").at_batch(0),
        Intervention::scale("blocks.0.mlp.hook_pre", 2.0),
    ];
    compare(&gpu, &solu, None, &iv, "patched solu_ln");
}

#[test]
fn split_inputs_and_ln1_interventions_together_are_refused_by_name() {
    let gpu = common::gpu();
    let (tokens, targets) = tokens_targets();
    let config = config("LN", "gelu", r#", "use_split_qkv_input": true"#);
    let model = Model::load(&gpu, config.clone(), &weights(&config, 2)).expect("load");
    let iv = [Intervention::scale("blocks.0.hook_q_input", 2.0), Intervention::scale("blocks.0.ln1.hook_scale", 1.5)];
    let options = GradOptions { names: Names::Nothing, interventions: &iv };
    let e = model.backward(&gpu, tokens.view(), &Seed::CrossEntropy(targets.view()), &options).unwrap_err().to_string();
    assert!(e.contains("blocks.0") && e.contains("ln1"), "{e}");
}

/// A few AdamW steps of a model with every variant above on one batch, as `shaderlens train` and
/// verify's `train` run them (backward, optimizer step, repack): the loss falls.
#[test]
fn a_variant_model_trains_on_the_gpu() {
    use shaderlens::reference::backward::adamw::AdamW;
    use shaderlens::train::config::Optimizer;
    use shaderlens::train::gpu_optimizer::GpuOptimizer;
    let gpu = common::gpu();
    let extra = r#", "positional_embedding_type": "shortformer", "use_split_qkv_input": true, "use_attn_result": true"#;
    let config = config("LN", "solu_ln", extra);
    config.refuse_gpu_backward_variants().expect("every variant has a GPU backward");
    let model = Model::load(&gpu, config.clone(), &weights(&config, 11)).expect("load");
    let adamw = AdamW { lr: 0.0, beta1: 0.9, beta2: 0.98, eps: 1e-8, weight_decay: 0.0 };
    let settings = Optimizer { adamw, decay_biases_and_norms: true, max_grad_norm: None, grokfast: None };
    let step = GpuOptimizer::new(&gpu, &config, settings, model.weights()).expect("optimizer");
    let (tokens, targets) = tokens_targets();
    let mut losses = Vec::new();
    for t in 1..=8u64 {
        let grads = model.backward(&gpu, tokens.view(), &Seed::CrossEntropy(targets.view()), &GradOptions::default()).expect("backward");
        losses.push(grads.loss.as_ref().expect("a loss").read(&gpu).expect("read")[[0]]);
        let mut encoder = gpu.encoder();
        step.record_step(&gpu, &mut encoder, &grads.params, model.weights(), t, 3e-2).expect("step");
        model.record_repack(&gpu, &mut encoder).expect("repack");
        gpu.submit_and_wait(encoder).expect("submit");
    }
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    assert!(losses[7] < 0.7 * losses[0], "the loss did not fall: {losses:?}");
}

/// `shaderlens train`'s config takes the variants' fields under `[model]`, and its resolved
/// config (what a resumed run reads) keeps them: the same model, not the plain one.
#[test]
fn a_train_config_keeps_the_variant_fields() {
    use shaderlens::train::config::TrainConfig;
    let text = r#"
steps = 3
[model]
n_layers = 2
d_model = 8
n_heads = 2
d_head = 3
act_fn = "solu_ln"
positional_embedding_type = "shortformer"
use_split_qkv_input = true
use_attn_result = true
attn_scale = 1.7
[data]
p = 7
"#;
    let c = TrainConfig::from_toml(text, &[]).expect("a variant train config");
    assert!(c.model.shortformer && c.model.optional_hooks.split_qkv_input && c.model.optional_hooks.attn_result, "{:?}", c.model);
    assert!(c.model.refuse_gpu_backward_variants().is_ok());
    shaderlens::train::init::init_weights(&c.model, c.initializer_range, 1).expect("initial weights for every variant parameter");
    let resolved = c.to_toml();
    assert!(resolved.contains("shortformer") && resolved.contains("use_split_qkv_input"), "{resolved}");
    assert_eq!(TrainConfig::from_toml(&resolved, &[]).expect("the resolved config"), c);
}
