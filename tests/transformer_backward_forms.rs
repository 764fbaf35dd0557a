//! The GPU backward pass for TransformerLens's variants (RMS and RMSPre, `final_rms`,
//! `parallel_attn_mlp`, `hook_mlp_in`, `hook_tokens`, any `attn_scale`, the by-layer scale,
//! bidirectional attention, the GELU forms) against the float64 reference, with interventions on
//! the variants' own hooks; and no variant left without a GPU backward.

mod common;

use common::model::{tokens_targets, weights};

use ndarray::{ArrayD, IxDyn};
use shaderlens::reference::backward::model::transformer_grad;
use shaderlens::transformer::{hooks, Config, GradOptions, Intervention, Model, Names, Seed};

/// A two-layer config with TransformerLens fields added (`"key": value, ...`).
fn config(norm: &str, act: &str, extra: &str) -> Config {
    let pos = if extra.contains("positional_embedding_type") { "" } else { r#", "positional_embedding_type": "standard""# };
    Config::from_json(&format!(
        r#"{{"n_layers": 2, "d_model": 8, "n_heads": 2, "d_head": 4, "d_mlp": 12, "d_vocab": 7,
            "d_vocab_out": 5, "n_ctx": 6, "act_fn": "{act}", "normalization_type": "{norm}",
            "attn_only": false, "eps": 1e-5{pos}{extra}}}"#
    ))
    .expect("config")
}

/// The GPU's loss, every parameter gradient and every hook gradient against the reference.
fn compare(gpu: &common::TestGpu, config: &Config, interventions: &[Intervention], what: &str) {
    let (tokens, targets) = tokens_targets();
    let w = weights(config, 5);
    let w64 = w.try_map(config, |_, a| Ok(a.mapv(f64::from))).expect("widen");
    let all: Vec<String> = hooks(config, 2, 5).into_iter().map(|h| h.name).filter(|n| n != "hook_tokens").collect();
    let names = Names::only(&all);
    let want = transformer_grad(config, &w64, tokens.view(), targets.view(), &names, interventions).expect("reference");
    let model = Model::load(gpu, config.clone(), &w).expect("load");
    let options = GradOptions { names, interventions };
    let got = model.backward(gpu, tokens.view(), &Seed::CrossEntropy(targets.view()), &options).expect("backward").read(gpu, config).expect("read");
    assert!(!got.cache.is_empty(), "{what}");
    common::model::assert_grads_match(&got, &want, what);
}

#[test]
fn variants_match_the_reference() {
    let gpu = common::gpu();
    let cases = [
        ("RMS", config("RMS", "gelu", "")),
        ("RMSPre", config("RMSPre", "relu", "")),
        ("LN final_rms", config("LN", "gelu_fast", r#", "final_rms": true"#)),
        ("LNPre final_rms", config("LNPre", "gelu_pytorch_tanh", r#", "final_rms": true"#)),
        ("attn_scale by layer", config("LN", "gelu", r#", "attn_scale": 1.7, "scale_attn_by_inverse_layer_idx": true"#)),
        ("no attn scale", config("LN", "relu", r#", "use_attn_scale": false"#)),
        ("bidirectional", config("LN", "gelu", r#", "attention_dir": "bidirectional""#)),
        ("parallel mlp_in tokens", config("RMS", "gelu", r#", "parallel_attn_mlp": true, "use_hook_mlp_in": true, "use_hook_tokens": true"#)),
        ("mlp_in", config("LN", "gelu", r#", "use_hook_mlp_in": true"#)),
    ];
    for (what, config) in &cases {
        compare(&gpu, config, &[], what);
    }
}

#[test]
fn interventions_on_the_variants_hooks_match_the_reference() {
    let gpu = common::gpu();
    let config = config("RMS", "gelu", r#", "parallel_attn_mlp": true, "use_hook_mlp_in": true, "use_hook_tokens": true, "attention_dir": "bidirectional""#);
    let pattern = ArrayD::from_elem(IxDyn(&[2, 2, 5, 5]), 0.2f32);
    let tokens = ArrayD::from_elem(IxDyn(&[2, 5]), 3.0f32);
    let iv = [
        Intervention::scale("blocks.0.hook_mlp_in", -1.5).at_pos(2),
        Intervention::scale("blocks.1.ln2.hook_scale", 1.5),
        Intervention::replace("blocks.1.attn.hook_pattern", pattern).at_head(0),
        Intervention::replace("hook_tokens", tokens).at_pos(1),
        Intervention::zero("blocks.0.hook_attn_out").at_batch(1),
    ];
    compare(&gpu, &config, &iv, "patched variants");
}

#[test]
fn every_variant_has_a_gpu_backward() {
    // SoLU, solu_ln, shortformer and the per-head hooks landed last (tests/transformer_backward_variants2.rs).
    for (act, extra) in [
        ("solu_ln", ""),
        ("solu", ""),
        ("gelu", r#", "positional_embedding_type": "shortformer""#),
        ("gelu", r#", "use_attn_result": true"#),
        ("gelu", r#", "use_split_qkv_input": true"#),
        ("gelu", r#", "use_attn_in": true"#),
    ] {
        let config = config("LN", act, extra);
        assert!(config.gpu_backward_gaps().is_empty(), "{act}{extra}: {:?}", config.gpu_backward_gaps());
        assert!(config.refuse_gpu_backward_variants().is_ok(), "{act}{extra}");
    }
}

/// The RMS flag of the norm backward kernel against its float64 twin over awkward shapes: both
/// steps in one pass, and the hooked path's two steps with accumulation.
fn check_rms_norm(gpu: &common::TestGpu, rows_n: usize, n: usize, seed: u64) {
    use shaderlens::ops::backward::rows;
    use shaderlens::reference::backward::model::forms::rms_scale_backward;
    use shaderlens::reference::backward::layer_norm::normalize_backward;
    use shaderlens::reference::transformer::forms::rms_norm;
    use shaderlens::tensor::GpuTensor;
    let eps = 1e-5;
    let x = common::array(&[rows_n, n], common::normals(seed, rows_n * n).iter().map(|v| 3.0 * v + 1.0).collect());
    let dn = common::array(&[rows_n, n], common::normals(seed + 1, rows_n * n));
    let (x64, dn64) = (x.mapv(f64::from), dn.mapv(f64::from));
    let (_, scale) = rms_norm(&x64, eps);
    let (dc, d_scale) = normalize_backward(x64.view(), scale.view(), dn64.view()).expect("reference");
    let want = rms_scale_backward(x64.view(), eps, d_scale.view(), dc.view()).expect("reference");
    let up = |a: &ArrayD<f32>| GpuTensor::upload(gpu, a.view(), "input").expect("upload");
    let (xt, st, dnt) = (up(&x), up(&scale.mapv(|v| v as f32)), up(&dn));
    let ds = GpuTensor::empty(gpu, scale.shape(), "d scale").expect("alloc");
    let dx = GpuTensor::empty(gpu, &[rows_n, n], "dx").expect("alloc");
    let what = format!("rms norm backward {rows_n}x{n}");
    for split in [false, true] {
        let mut e = gpu.encoder();
        if split {
            rows::norm_backward(gpu, &mut e, true, &xt, &st, &dnt, eps as f32, rows::LayerNormStep::Scale, &ds, &dx, false).expect("record");
            rows::norm_backward(gpu, &mut e, true, &xt, &st, &dnt, eps as f32, rows::LayerNormStep::Input, &ds, &dx, true).expect("record");
        } else {
            rows::norm_backward(gpu, &mut e, true, &xt, &st, &dnt, eps as f32, rows::LayerNormStep::Both, &ds, &dx, false).expect("record");
        }
        gpu.submit_and_wait(e).expect("submit");
        let factor = if split { 2.0 } else { 1.0 };
        common::assert_close(&ds.read(gpu).expect("read"), &d_scale, 1e-6, 1e-3, &format!("{what} d_scale"));
        common::assert_close(&dx.read(gpu).expect("read"), &(&want * factor), 1e-6, 1e-3, &format!("{what} dx split {split}"));
    }
}

#[test]
fn rms_norm_backward_kernel_over_awkward_shapes() {
    let gpu = common::gpu();
    for (i, (r, n)) in [(1, 1), (1, 2), (3, 7), (65, 5), (2, 257), (130, 33)].into_iter().enumerate() {
        check_rms_norm(&gpu, r, n, 40 + i as u64);
    }
}
