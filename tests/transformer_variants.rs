//! The TransformerLens variants shaderlens implements (attention scale, scale by layer,
//! bidirectional attention, the tanh GELUs, grouped-query attention with groups of one), under
//! interventions: the GPU forward against the float64 reference on the fixtures TransformerLens
//! made, with scores, pattern and z changed, so that a path the fixtures' plain runs do not take
//! (the unfused attention with a changed pattern, the mask after an intervention) is compared too.

mod common;

use std::path::{Path, PathBuf};

use ndarray::ArrayD;
use shaderlens::fixture::Fixture;
use shaderlens::reference::transformer::forward as reference_forward;
use shaderlens::transformer::{Config, Intervention, Model, Names, Options, Weights};

fn fixture(case: &str, ext: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("fixtures/transformer/{case}.{ext}"))
}

#[test]
fn variants_under_interventions_match_the_reference() {
    let gpu = common::gpu();
    for case in ["attn_scale_off", "attn_scale_custom", "attn_scale_by_layer", "bidirectional", "gelu_fast", "gqa_equal_heads", "parallel_attn_mlp"] {
        let config = Config::from_file(&fixture(case, "json")).unwrap();
        let npz = Fixture::open(&fixture(case, "npz")).unwrap();
        let weights = Weights::from_fixture(&config, &npz).unwrap();
        let tokens: ArrayD<i64> = npz.int_array("tokens").unwrap();
        let interventions = [
            Intervention::scale("blocks.0.attn.hook_attn_scores", 0.5).at_head(1),
            Intervention::zero("blocks.1.attn.hook_pattern").at_head(2).at_pos(1),
            Intervention::zero("blocks.1.attn.hook_z").at_head(0),
            // In a parallel block ln2 reads resid_pre: change its scale and the attention output.
            Intervention::scale("blocks.0.ln2.hook_scale", 2.0).at_pos(3),
            Intervention::scale("blocks.1.hook_attn_out", 0.25),
        ];
        let names = Names::only([
            "blocks.0.attn.hook_pattern",
            "blocks.0.hook_resid_pre",
            "blocks.0.ln2.hook_normalized",
            "blocks.1.attn.hook_z",
            "blocks.1.hook_resid_post",
        ]);
        let model = Model::load(&gpu, config.clone(), &weights).unwrap();
        let got = model.run(&gpu, tokens.view(), &Options { names: names.clone(), interventions: &interventions }).unwrap();
        let w64 = weights.try_map(&config, |_, a| Ok(a.mapv(f64::from))).unwrap();
        let want = reference_forward(&config, &w64, tokens.view(), &names, &interventions).unwrap();
        common::assert_close(&got.logits, &want.logits, 1e-4, 1e-3, &format!("{case}: logits"));
        for (name, a) in got.cache.iter() {
            common::assert_close(a, want.cache.get(name).unwrap(), 1e-4, 1e-3, &format!("{case}: {name}"));
        }
        // The interventions changed the run (the comparison above is not of two plain runs).
        let plain = model.forward(&gpu, tokens.view()).unwrap();
        let moved = (&plain - &got.logits).mapv(f32::abs).fold(0.0f32, |m, &v| m.max(v));
        assert!(moved > 1e-3, "{case}: the interventions moved the logits by only {moved}");
    }
}

#[test]
fn bidirectional_attention_sees_later_keys() {
    let gpu = common::gpu();
    let config = Config::from_file(&fixture("bidirectional", "json")).unwrap();
    assert!(!config.causal);
    let model = Model::from_files(&gpu, &fixture("bidirectional", "json"), &fixture("bidirectional", "npz")).unwrap();
    let tokens = ndarray::arr2(&[[1i64, 2, 3, 4]]).into_dyn();
    let changed = ndarray::arr2(&[[1i64, 2, 3, 5]]).into_dyn();
    // Changing the last token changes the first position's logits (a causal model's would not).
    let a = model.forward(&gpu, tokens.view()).unwrap();
    let b = model.forward(&gpu, changed.view()).unwrap();
    let first = |x: &ArrayD<f32>| x.index_axis(ndarray::Axis(1), 0).to_owned();
    let moved = (&first(&a) - &first(&b)).mapv(f32::abs).fold(0.0f32, |m, &v| m.max(v));
    assert!(moved > 1e-4, "position 0 did not see position 3: moved {moved}");
    // Every score is finite (no mask).
    let run = model.run_with_cache(&gpu, tokens.view(), Names::only(["blocks.0.attn.hook_attn_scores"])).unwrap();
    assert!(run.cache.get("blocks.0.attn.hook_attn_scores").unwrap().iter().all(|v| v.is_finite()));
}
