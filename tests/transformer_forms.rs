//! The TransformerLens variants of issue 13 (RMS and RMSPre norms, final_rms, solu and solu_ln,
//! shortformer positions, the optional hooks) under interventions: the GPU forward against the
//! float64 reference on the fixtures TransformerLens made, with the new hooks changed, so that the
//! paths the fixtures' plain runs do not take (a changed RMS or `mlp.ln` scale, a changed per-head
//! input or result, patched tokens) are compared too; and what each intervention may and may not
//! reach (an intervention on `hook_q_input` changes q only).

mod common;

use std::path::{Path, PathBuf};

use ndarray::ArrayD;
use shaderlens::fixture::Fixture;
use shaderlens::reference::transformer::forward as reference_forward;
use shaderlens::transformer::{Config, Intervention, Model, Names, Options, Weights};

fn fixture(case: &str, ext: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("fixtures/transformer/{case}.{ext}"))
}

struct Case {
    config: Config,
    weights: Weights<ArrayD<f32>>,
    tokens: ArrayD<i64>,
}

fn case(name: &str) -> Case {
    let config = Config::from_file(&fixture(name, "json")).unwrap();
    let npz = Fixture::open(&fixture(name, "npz")).unwrap();
    let weights = Weights::from_fixture(&config, &npz).unwrap();
    Case { config, weights, tokens: npz.int_array("tokens").unwrap() }
}

fn max_abs_diff(a: &ArrayD<f32>, b: &ArrayD<f32>) -> f32 {
    (a - b).mapv(f32::abs).fold(0.0f32, |m, &v| m.max(v))
}

/// Runs `name` with `interventions` on the GPU and in the reference, compares the logits and
/// every cached hook of `names`, and checks that the interventions moved the logits.
fn compare(name: &str, interventions: &[Intervention], names: &[&str]) {
    let gpu = common::gpu();
    let Case { config, weights, tokens } = case(name);
    let names = Names::only(names.iter().copied());
    let model = Model::load(&gpu, config.clone(), &weights).unwrap();
    let got = model.run(&gpu, tokens.view(), &Options { names: names.clone(), interventions }).unwrap();
    let w64 = weights.try_map(&config, |_, a| Ok(a.mapv(f64::from))).unwrap();
    let want = reference_forward(&config, &w64, tokens.view(), &names, interventions).unwrap();
    common::assert_close(&got.logits, &want.logits, 1e-4, 1e-3, &format!("{name}: logits"));
    assert_eq!(got.cache.len(), want.cache.len(), "{name}: cached hooks");
    for (hook, a) in got.cache.iter() {
        common::assert_close(a, want.cache.get(hook).unwrap(), 1e-4, 1e-3, &format!("{name}: {hook}"));
    }
    let moved = max_abs_diff(&model.forward(&gpu, tokens.view()).unwrap(), &got.logits);
    assert!(moved > 1e-3, "{name}: the interventions moved the logits by only {moved}");
}

#[test]
fn norms_and_solu_under_interventions_match_the_reference() {
    for name in ["rms", "rms_pre", "final_rms", "solu", "solu_ln_lnpre_final_rms", "toy_solu_2l"] {
        let mut interventions = vec![
            Intervention::scale("blocks.0.ln1.hook_scale", 2.0).at_pos(3),
            Intervention::zero("blocks.1.ln2.hook_normalized").at_pos(1),
            Intervention::scale("ln_final.hook_scale", 0.5).at_batch(1),
            Intervention::scale("blocks.0.mlp.hook_post", 1.5),
        ];
        let mut names = vec!["blocks.0.ln1.hook_normalized", "blocks.1.mlp.hook_post", "ln_final.hook_normalized", "ln_final.hook_scale"];
        if name.contains("solu_") {
            interventions.push(Intervention::scale("blocks.1.mlp.ln.hook_scale", 3.0).at_pos(2));
            interventions.push(Intervention::zero("blocks.0.mlp.hook_mid").at_pos(0));
            names.extend(["blocks.1.mlp.ln.hook_normalized", "blocks.0.mlp.hook_mid", "blocks.1.mlp.ln.hook_scale"]);
        }
        compare(name, &interventions, &names);
    }
}

#[test]
fn shortformer_and_optional_hooks_under_interventions_match_the_reference() {
    let cases: [(&str, Vec<Intervention>, Vec<&str>); 6] = [
        (
            "shortformer_split_qkv",
            vec![Intervention::scale("hook_pos_embed", 2.0).at_pos(2), Intervention::zero("blocks.1.hook_k_input").at_head(1).at_pos(4)],
            vec!["hook_pos_embed", "blocks.1.attn.hook_q", "blocks.1.attn.hook_k", "blocks.1.ln1.hook_normalized"],
        ),
        (
            "toy_attn_only_2l",
            vec![Intervention::scale("hook_pos_embed", 2.0).at_pos(2), Intervention::zero("blocks.1.attn.hook_pattern").at_head(1)],
            vec!["hook_pos_embed", "blocks.0.hook_resid_pre", "blocks.1.attn.hook_q", "blocks.1.attn.hook_v"],
        ),
        (
            "toy_gelu_2l",
            vec![Intervention::scale("hook_embed", 0.5).at_pos(1), Intervention::scale("blocks.0.ln1.hook_scale", 2.0)],
            vec!["hook_embed", "blocks.0.hook_resid_pre", "blocks.0.attn.hook_k"],
        ),
        (
            "optional_hooks_split",
            vec![
                Intervention::scale("blocks.0.hook_q_input", 2.0).at_head(1),
                Intervention::zero("blocks.0.hook_v_input").at_pos(2),
                Intervention::scale("blocks.1.ln1.hook_scale", 1.5).at_head(0),
                Intervention::zero("blocks.1.attn.hook_result").at_head(2),
                Intervention::scale("blocks.0.hook_mlp_in", 0.5),
                Intervention::replace("hook_tokens", ndarray::Array2::<f32>::from_elem((2, 10), 3.0).into_dyn()).at_pos(4),
            ],
            vec![
                "hook_tokens",
                "blocks.0.hook_q_input",
                "blocks.0.ln1.hook_normalized",
                "blocks.1.ln1.hook_scale",
                "blocks.1.attn.hook_result",
                "blocks.0.hook_mlp_in",
                "blocks.0.hook_resid_mid",
            ],
        ),
        (
            "optional_hooks_attn_in",
            vec![Intervention::scale("blocks.1.hook_attn_in", 3.0).at_head(3), Intervention::scale("blocks.0.attn.hook_result", 2.0).at_pos(5)],
            vec!["blocks.1.hook_attn_in", "blocks.1.ln1.hook_scale", "blocks.0.attn.hook_result", "blocks.0.hook_attn_out"],
        ),
        (
            "mlp_in_parallel",
            vec![Intervention::zero("blocks.1.hook_mlp_in").at_pos(3)],
            vec!["blocks.1.hook_mlp_in", "blocks.1.ln2.hook_normalized", "blocks.1.hook_resid_post"],
        ),
    ];
    for (name, interventions, names) in cases {
        compare(name, &interventions, &names);
    }
}

#[test]
fn an_intervention_on_hook_q_input_changes_q_only() {
    let gpu = common::gpu();
    let Case { config, weights, tokens } = case("optional_hooks_split");
    let model = Model::load(&gpu, config, &weights).unwrap();
    let names = Names::only(["blocks.0.attn.hook_q", "blocks.0.attn.hook_k", "blocks.0.attn.hook_v", "blocks.0.hook_resid_pre"]);
    let plain = model.run(&gpu, tokens.view(), &Options { names: names.clone(), interventions: &[] }).unwrap();
    // (Zeroed, not scaled: ln1 would normalise a scale away.)
    let ablate = [Intervention::zero("blocks.0.hook_q_input").at_head(2).at_pos(3)];
    let run = model.run(&gpu, tokens.view(), &Options { names, interventions: &ablate }).unwrap();
    let diff = |hook: &str| max_abs_diff(plain.cache.get(hook).unwrap(), run.cache.get(hook).unwrap());
    assert!(diff("blocks.0.attn.hook_q") > 1e-3, "q did not change");
    for hook in ["blocks.0.attn.hook_k", "blocks.0.attn.hook_v", "blocks.0.hook_resid_pre"] {
        assert_eq!(diff(hook), 0.0, "{hook} changed");
    }
    // Only head 2 of q: the other heads are as before.
    let q = |o: &shaderlens::transformer::Outputs<ArrayD<f32>>, h: usize| {
        o.cache.get("blocks.0.attn.hook_q").unwrap().index_axis(ndarray::Axis(2), h).to_owned()
    };
    assert_eq!(q(&plain, 0), q(&run, 0));
    assert!(max_abs_diff(&q(&plain, 2), &q(&run, 2)) > 1e-3);
    // The whole cache comes in TransformerLens's order: the three inputs, then ln1's hooks.
    for name in ["optional_hooks_split", "optional_hooks_attn_in", "shortformer_split_qkv"] {
        let Case { config, weights, tokens } = case(name);
        let model = Model::load(&gpu, config.clone(), &weights).unwrap();
        let all = model.run_with_cache(&gpu, tokens.view(), Names::All).unwrap();
        assert_eq!(all.cache.names().collect::<Vec<_>>(), shaderlens::transformer::hook_names(&config), "{name}");
    }
}

#[test]
fn shortformer_positions_reach_q_and_k_but_not_v_or_the_residual() {
    let gpu = common::gpu();
    let Case { config, weights, tokens } = case("toy_attn_only_2l");
    let model = Model::load(&gpu, config, &weights).unwrap();
    let names = Names::only(["hook_embed", "blocks.0.hook_resid_pre", "blocks.0.attn.hook_q", "blocks.0.attn.hook_k", "blocks.0.attn.hook_v"]);
    let plain = model.run(&gpu, tokens.view(), &Options { names: names.clone(), interventions: &[] }).unwrap();
    // The residual stream starts as the token embedding alone.
    assert_eq!(plain.cache.get("hook_embed"), plain.cache.get("blocks.0.hook_resid_pre"));
    let zero = [Intervention::zero("hook_pos_embed")];
    let run = model.run(&gpu, tokens.view(), &Options { names, interventions: &zero }).unwrap();
    let diff = |hook: &str| max_abs_diff(plain.cache.get(hook).unwrap(), run.cache.get(hook).unwrap());
    assert!(diff("blocks.0.attn.hook_q") > 1e-3 && diff("blocks.0.attn.hook_k") > 1e-3);
    assert_eq!(diff("blocks.0.attn.hook_v"), 0.0);
    assert_eq!(diff("blocks.0.hook_resid_pre"), 0.0);
}

#[test]
fn patched_tokens_must_stay_token_ids() {
    let gpu = common::gpu();
    let Case { config, weights, tokens } = case("optional_hooks_split");
    let d_vocab = config.d_vocab as f32;
    let model = Model::load(&gpu, config, &weights).unwrap();
    for (bad, what) in [(d_vocab, "20"), (1.5, "1.5"), (-1.0, "-1")] {
        let patch = ndarray::Array2::<f32>::from_elem((2, 10), bad).into_dyn();
        let interventions = [Intervention::replace("hook_tokens", patch).at_pos(0)];
        let e = model.run(&gpu, tokens.view(), &Options { names: Names::Nothing, interventions: &interventions }).unwrap_err();
        let e = e.to_string();
        assert!(e.contains("hook_tokens") && e.contains(&format!("is {what}")) && e.contains("[0, 20)"), "{e}");
    }
    // Patching a token with another id is the same as running on the changed tokens.
    let mut changed = tokens.clone();
    changed[[1, 4]] = 7;
    let patch = ndarray::Array2::<f32>::from_elem((2, 10), 7.0).into_dyn();
    let interventions = [Intervention::replace("hook_tokens", patch).at_batch(1).at_pos(4)];
    let patched = model.run(&gpu, tokens.view(), &Options { names: Names::Nothing, interventions: &interventions }).unwrap();
    assert_eq!(patched.logits, model.forward(&gpu, changed.view()).unwrap());
}

#[test]
fn hook_result_is_available_on_request_without_use_attn_result() {
    let gpu = common::gpu();
    let Case { config, weights, tokens } = case("gelu_fast");
    assert!(!config.optional_hooks.attn_result);
    let model = Model::load(&gpu, config.clone(), &weights).unwrap();
    // Not in the default cache, as in TransformerLens.
    let all = model.run_with_cache(&gpu, tokens.view(), Names::All).unwrap();
    assert!(all.cache.names().all(|n| !n.ends_with("hook_result")));
    // Asked for by name: each head's z W_O, summing (with b_O) to hook_attn_out.
    let names = Names::only(["blocks.1.attn.hook_result", "blocks.1.hook_attn_out"]);
    let run = model.run(&gpu, tokens.view(), &Options { names: names.clone(), interventions: &[] }).unwrap();
    let result = run.cache.get("blocks.1.attn.hook_result").unwrap();
    assert_eq!(result.shape(), [2, 10, 4, 32]);
    let b_o = weights.blocks[1].attn.b_o.clone();
    let summed = result.sum_axis(ndarray::Axis(2)) + &b_o;
    assert!(max_abs_diff(&summed, run.cache.get("blocks.1.hook_attn_out").unwrap()) < 1e-5);
    assert!(max_abs_diff(&run.logits, &all.logits) < 1e-5);
    let w64 = weights.try_map(&config, |_, a| Ok(a.mapv(f64::from))).unwrap();
    let want = reference_forward(&config, &w64, tokens.view(), &names, &[]).unwrap();
    common::assert_close(result, want.cache.get("blocks.1.attn.hook_result").unwrap(), 1e-4, 1e-3, "hook_result");
    // An intervention on it works like on any hook: zeroing head 2's result is zeroing its z.
    let by_result = [Intervention::zero("blocks.1.attn.hook_result").at_head(2)];
    let by_z = [Intervention::zero("blocks.1.attn.hook_z").at_head(2)];
    let a = model.run(&gpu, tokens.view(), &Options { names: Names::Nothing, interventions: &by_result }).unwrap();
    let b = model.run(&gpu, tokens.view(), &Options { names: Names::Nothing, interventions: &by_z }).unwrap();
    assert!(max_abs_diff(&a.logits, &b.logits) < 1e-5 && max_abs_diff(&a.logits, &all.logits) > 1e-3);
}

#[test]
fn huge_activations_stay_finite_through_rms_norm_and_solu() {
    let gpu = common::gpu();
    // RMS: a residual stream of magnitude 1e30, whose mean square overflows float32 unless the
    // kernel scales the row first. SoLU: pre-activations in the thousands (exp overflows unless
    // shifted by the row maximum).
    for (name, weight, factor) in [("rms", "embed.W_E", 1e30f32), ("solu", "blocks.0.mlp.W_in", 3e3)] {
        let Case { config, mut weights, tokens } = case(name);
        let w = if weight == "embed.W_E" { &mut weights.w_e } else { &mut weights.blocks[0].mlp.as_mut().unwrap().w_in };
        w.mapv_inplace(|v| v * factor);
        let names = Names::only(["blocks.0.ln1.hook_scale", "blocks.0.ln1.hook_normalized", "blocks.0.mlp.hook_post"]);
        let model = Model::load(&gpu, config.clone(), &weights).unwrap();
        let got = model.run(&gpu, tokens.view(), &Options { names: names.clone(), interventions: &[] }).unwrap();
        let w64 = weights.try_map(&config, |_, a| Ok(a.mapv(f64::from))).unwrap();
        let want = reference_forward(&config, &w64, tokens.view(), &names, &[]).unwrap();
        assert!(got.logits.iter().all(|v| v.is_finite()), "{name}: logits not finite");
        common::assert_close(&got.logits, &want.logits, 1e-4, 1e-3, &format!("{name}: logits"));
        for (hook, a) in got.cache.iter() {
            let want = want.cache.get(hook).unwrap();
            // Relative to the hook's own magnitude (the scale is ~1e30).
            let m = want.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1.0);
            common::assert_close(&a.mapv(|v| (f64::from(v) / m) as f32), &want.mapv(|v| v / m), 1e-5, 1e-4, &format!("{name}: {hook}"));
        }
    }
}

#[test]
fn verify_checks_hook_result_on_request() {
    // A TransformerLens model without use_attn_result whose fixture also expects every
    // attn.hook_result (made with use_attn_result on): verify asks for them by name.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_shaderlens"))
        .args(["verify", "--json", "tests/data/on_request/transformer/result_on_request.npz"])
        .current_dir(root)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("\"status\":\"PASS\""), "{text}");
    assert!(out.status.success(), "{text}");
}
