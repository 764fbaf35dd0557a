//! The TransformerLens-compatible forward pass: every fixture through `verify`, the default hook
//! set against the fixtures' cache keys, the names filter, interventions against the float64
//! reference and a hand computation, odd shapes, refusals, and the `run` command.

mod common;

use std::path::{Path, PathBuf};

use ndarray::{s, Array2, ArrayD, IxDyn};
use shaderlens::fixture::Fixture;
use shaderlens::reference::transformer::{forward as reference_forward, TransformerRun};
use shaderlens::transformer::{hook_names, Config, Intervention, Model, Names, Options, Outputs, Weights};
use shaderlens::verify::{self, Status};

const ATOL: f64 = 1e-4;
const RTOL: f64 = 1e-3;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/transformer")
}

/// Config, float32 weights and tokens of fixture `case`.
fn load(case: &str) -> (Config, Weights<ArrayD<f32>>, ArrayD<i64>, Fixture) {
    let dir = fixture_dir();
    let config = Config::from_file(&dir.join(format!("{case}.json"))).unwrap();
    let npz = Fixture::open(&dir.join(format!("{case}.npz"))).unwrap();
    let weights = Weights::from_fixture(&config, &npz).unwrap();
    let tokens = npz.int_array("tokens").unwrap();
    (config, weights, tokens, npz)
}

fn reference(config: &Config, weights: &Weights<ArrayD<f32>>, tokens: &ArrayD<i64>, names: &Names, iv: &[Intervention]) -> TransformerRun {
    let w64 = weights.try_map(config, |_, a| Ok(a.mapv(f64::from))).unwrap();
    reference_forward(config, &w64, tokens.view(), names, iv).unwrap()
}

/// Asserts that a GPU run and a reference run agree on the logits and on the same cache names.
fn assert_runs_agree(gpu: &Outputs<ArrayD<f32>>, host: &TransformerRun, what: &str) {
    common::assert_close(&gpu.logits, &host.logits, ATOL, RTOL, &format!("{what}: logits"));
    let gpu_names: Vec<&str> = gpu.cache.names().collect();
    let host_names: Vec<&str> = host.cache.names().collect();
    assert_eq!(gpu_names, host_names, "{what}: cached names");
    for (name, got) in gpu.cache.iter() {
        common::assert_close(got, host.cache.get(name).unwrap(), ATOL, RTOL, &format!("{what}: {name}"));
    }
}

#[test]
fn every_transformer_fixture_passes_on_gpu_and_reference() {
    let gpu = common::gpu();
    let files: Vec<PathBuf> = verify::collect(&[fixture_dir()]).into_iter().map(|e| e.unwrap()).collect();
    assert!(files.len() >= 5, "{} transformer fixtures", files.len());
    for path in files {
        let report = verify::verify_file(&gpu, &path);
        assert_eq!(report.status, Status::Pass, "{}", verify::line(&report));
    }
}

#[test]
fn the_default_hooks_are_exactly_the_fixtures_cache_keys_in_order() {
    for case in ["tiny", "grokking", "othello_small", "attn_only_lnpre", "gelu_new_3layer"] {
        let (config, _, _, npz) = load(case);
        let keys: Vec<String> = npz.names().filter_map(|k| k.strip_prefix("cache.")).map(str::to_string).collect();
        let mut ours = hook_names(&config);
        ours.sort(); // the npz lists its keys sorted
        assert_eq!(ours, keys, "{case}");
    }
}

#[test]
fn the_names_filter_caches_only_what_is_asked_in_forward_order() {
    let gpu = common::gpu();
    let (config, weights, tokens, _) = load("gelu_new_3layer");
    let model = Model::load(&gpu, config.clone(), &weights).unwrap();
    let asked = ["blocks.2.mlp.hook_post", "hook_embed", "blocks.0.attn.hook_attn_scores", "ln_final.hook_scale"];
    let run = model.run_with_cache(&gpu, tokens.view(), Names::only(asked)).unwrap();
    let names: Vec<&str> = run.cache.names().collect();
    assert_eq!(names, ["hook_embed", "blocks.0.attn.hook_attn_scores", "blocks.2.mlp.hook_post", "ln_final.hook_scale"]);
    assert_eq!(run.cache.get("ln_final.hook_scale").unwrap().shape(), [2, 12, 1]);
    assert!(model.run_with_cache(&gpu, tokens.view(), Names::Nothing).unwrap().cache.is_empty());
    let all = model.run_with_cache(&gpu, tokens.view(), Names::All).unwrap();
    assert_eq!(all.cache.names().collect::<Vec<_>>(), hook_names(&config));
    // The logits do not depend on the path taken.
    common::assert_close(&run.logits, &all.logits.mapv(f64::from), 1e-5, 1e-5, "filtered vs full cache");
    let e = model.run_with_cache(&gpu, tokens.view(), Names::only(["blocks.0.attn.hook_zz"])).unwrap_err();
    assert!(e.to_string().contains("\"blocks.0.attn.hook_zz\" is not a hook of this model"), "{e}");
}

#[test]
fn interventions_match_the_reference() {
    let gpu = common::gpu();
    let (config, weights, tokens, _) = load("othello_small");
    let model = Model::load(&gpu, config.clone(), &weights).unwrap();
    let other_tokens = tokens.mapv(|t| (t * 7 + 3) % 61);
    let other = reference(&config, &weights, &other_tokens, &Names::All, &[]);
    let patch = |name: &str| other.cache.get(name).unwrap().mapv(|v| v as f32);
    let cases: Vec<(&str, Vec<Intervention>)> = vec![
        ("zero z head 0", vec![Intervention::zero("blocks.0.attn.hook_z").at_head(0)]),
        ("scale pattern", vec![Intervention::scale("blocks.1.attn.hook_pattern", 0.5).at_head(3).at_pos(40)]),
        ("scale scores", vec![Intervention::scale("blocks.0.attn.hook_attn_scores", 2.0).at_batch(1)]),
        ("patch q", vec![Intervention::replace("blocks.1.attn.hook_q", patch("blocks.1.attn.hook_q")).at_head(2)]),
        ("patch k and v", vec![
            Intervention::replace("blocks.0.attn.hook_k", patch("blocks.0.attn.hook_k")).at_pos(5),
            Intervention::scale("blocks.0.attn.hook_v", -1.0),
        ]),
        ("ln scale and normalized", vec![
            Intervention::scale("blocks.0.ln1.hook_scale", 2.0).at_pos(3),
            Intervention::zero("blocks.1.ln2.hook_normalized").at_batch(0),
            Intervention::scale("ln_final.hook_scale", 0.5),
        ]),
        ("mlp", vec![Intervention::zero("blocks.0.mlp.hook_post"), Intervention::scale("blocks.1.mlp.hook_pre", 3.0)]),
        ("residual patching", vec![Intervention::replace("blocks.1.hook_resid_pre", patch("blocks.1.hook_resid_pre")).at_pos(10)]),
        ("embeddings and outputs", vec![
            Intervention::zero("hook_pos_embed"),
            Intervention::scale("hook_embed", 1.5),
            Intervention::zero("blocks.1.hook_attn_out"),
            Intervention::scale("blocks.0.hook_mlp_out", 0.0),
            Intervention::scale("blocks.0.hook_resid_mid", 2.0),
            Intervention::scale("unembed.hook_in", 2.0),
            Intervention::zero("unembed.hook_out").at_pos(0),
        ]),
    ];
    let clean = reference(&config, &weights, &tokens, &Names::Nothing, &[]);
    for (what, interventions) in cases {
        let host = reference(&config, &weights, &tokens, &Names::All, &interventions);
        let options = Options { names: Names::All, interventions: &interventions };
        assert_runs_agree(&model.run(&gpu, tokens.view(), &options).unwrap(), &host, what);
        // Without a cache the fused paths run: the interventions must still take effect.
        let options = Options { names: Names::Nothing, interventions: &interventions };
        let logits = model.run(&gpu, tokens.view(), &options).unwrap().logits;
        common::assert_close(&logits, &host.logits, ATOL, RTOL, &format!("{what} (nothing cached)"));
        let change = (&host.logits - &clean.logits).mapv(f64::abs).fold(0.0f64, |m, &v| m.max(v));
        assert!(change > 1e-3, "{what}: the intervention changed the logits by only {change}");
    }
}

#[test]
fn zero_ablating_a_head_removes_its_term_from_attn_out() {
    // attn_out = Σ_h z_h W_O[h] + b_O, so without head 0 it is the clean one less z_0 W_O[0].
    let gpu = common::gpu();
    let (config, weights, tokens, _) = load("gelu_new_3layer");
    let model = Model::load(&gpu, config.clone(), &weights).unwrap();
    let names = Names::only(["blocks.0.attn.hook_z", "blocks.0.hook_attn_out"]);
    let clean = model.run(&gpu, tokens.view(), &Options { names: names.clone(), interventions: &[] }).unwrap();
    let ablate = [Intervention::zero("blocks.0.attn.hook_z").at_head(0)];
    let ablated = model.run(&gpu, tokens.view(), &Options { names, interventions: &ablate }).unwrap();
    let z = clean.cache.get("blocks.0.attn.hook_z").unwrap().mapv(f64::from);
    let w_o0: Array2<f64> = weights.blocks[0].attn.w_o.slice(s![0, .., ..]).mapv(f64::from).into_dimensionality().unwrap();
    let (b, sq) = (z.shape()[0], z.shape()[1]);
    let z0: Array2<f64> = z.slice(s![.., .., 0, ..]).to_owned().into_shape_with_order((b * sq, config.d_head)).unwrap();
    let head0 = z0.dot(&w_o0).into_shape_with_order(IxDyn(&[b, sq, config.d_model])).unwrap();
    let want = clean.cache.get("blocks.0.hook_attn_out").unwrap().mapv(f64::from) - head0;
    common::assert_close(ablated.cache.get("blocks.0.hook_attn_out").unwrap(), &want, ATOL, RTOL, "attn_out without head 0");
    let z_ablated = ablated.cache.get("blocks.0.attn.hook_z").unwrap();
    assert!(z_ablated.slice(s![.., .., 0, ..]).iter().all(|&v| v == 0.0));
    assert_eq!(z_ablated.slice(s![.., .., 1.., ..]), clean.cache.get("blocks.0.attn.hook_z").unwrap().slice(s![.., .., 1.., ..]));
}

#[test]
fn patching_the_whole_residual_from_another_run_on_the_gpu_gives_that_run() {
    let gpu = common::gpu();
    let (config, weights, tokens, _) = load("othello_small");
    let model = Model::load(&gpu, config, &weights).unwrap();
    let corrupt = tokens.mapv(|t| (t + 11) % 61);
    let source = model.run_gpu(&gpu, corrupt.view(), &Options { names: Names::only(["blocks.1.hook_resid_pre"]), interventions: &[] }).unwrap();
    let patched_tensor = source.cache.get("blocks.1.hook_resid_pre").unwrap().clone();
    let patch = [Intervention::patch("blocks.1.hook_resid_pre", patched_tensor)];
    let names = Names::only(["blocks.0.hook_resid_post", "blocks.1.hook_resid_pre"]);
    let patched = model.run(&gpu, tokens.view(), &Options { names, interventions: &patch }).unwrap();
    let want = source.logits.read(&gpu).unwrap().mapv(f64::from);
    common::assert_close(&patched.logits, &want, 1e-6, 1e-6, "logits of the patched run");
    // The hook before the patched one keeps the clean value.
    let clean = model.run_with_cache(&gpu, tokens.view(), Names::only(["blocks.0.hook_resid_post"])).unwrap();
    assert_eq!(patched.cache.get("blocks.0.hook_resid_post"), clean.cache.get("blocks.0.hook_resid_post"));
    assert_ne!(patched.cache.get("blocks.1.hook_resid_pre"), clean.cache.get("blocks.0.hook_resid_post"));
}
