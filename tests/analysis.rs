//! Activation patching and attribution patching (SPEC's Analysis, issue 17): the committed
//! TransformerLens fixtures pass through `verify`, the batched GPU sweep gives what one forward
//! per patch gives, the float64 attribution estimate matches TransformerLens's, bad inputs are
//! refused by name, and `shaderlens patch` writes the sweeps.

mod common;
#[path = "common/files.rs"]
mod files;

use std::path::{Path, PathBuf};
use std::process::Command;

use ndarray::ArrayD;
use shaderlens::analysis::patch_gpu::{self, Batching};
use shaderlens::analysis::{attribution, patch_ref, Prompts, Sweep};
use shaderlens::compare::{Comparison, ATTENTION};
use shaderlens::fixture::Fixture;
use shaderlens::transformer::{Config, Model, Names, Weights};
use shaderlens::verify::{self, Status};

use files::{npy, npz, Scratch};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The config, float32 weights and prompts of a committed analysis fixture.
fn case_of(path: &Path) -> (Config, Weights<ArrayD<f32>>, Prompts, Fixture) {
    let config = Config::from_file(&path.with_extension("json")).unwrap();
    let fixture = Fixture::open(path).unwrap();
    let weights = Weights::build(&config, |name, _| fixture.input(name)).unwrap();
    let [clean, corrupt, answer, wrong] = ["clean", "corrupt", "answer", "wrong"].map(|k| fixture.int_array(k).unwrap());
    (config, weights, Prompts { clean, corrupt, answer, wrong }, fixture)
}

fn wide(config: &Config, w: &Weights<ArrayD<f32>>) -> Weights<ArrayD<f64>> {
    w.clone().try_map(config, |_, a| Ok(a.mapv(f64::from))).unwrap()
}

#[test]
fn every_act_patch_fixture_passes_verify() {
    let gpu = common::gpu();
    let files: Vec<PathBuf> = verify::collect(&[root().join("fixtures/act_patch")]).into_iter().map(|e| e.unwrap()).collect();
    assert!(files.len() >= 4, "want at least 4 act_patch fixtures, found {}", files.len());
    for path in files {
        let report = verify::verify_file(&gpu, &path);
        assert_eq!(report.status, Status::Pass, "{}", verify::line(&report));
    }
}

/// Attribution on the GPU (clean and corrupt forwards, one backward seeded with the metric's
/// gradient) and in float64 both match TransformerLens on every committed case, through `verify`
/// (tests/data/verify_bad/attribution holds the cases that must fail or be refused).
#[test]
fn every_attribution_fixture_passes_verify() {
    let gpu = common::gpu();
    let files: Vec<PathBuf> = verify::collect(&[root().join("fixtures/attribution")]).into_iter().map(|e| e.unwrap()).collect();
    assert!(files.len() >= 3, "want at least 3 attribution fixtures, found {}", files.len());
    for path in &files {
        let report = verify::verify_file(&gpu, path);
        assert_eq!(report.status, Status::Pass, "{}", verify::line(&report));
    }
}

/// Chunks of 1 (one forward per patch), 4 (resid_pre: 4 + a padded 2) and the default all agree, for
/// every sweep, with a batch of two prompt pairs.
#[test]
fn batched_sweeps_equal_one_forward_per_patch() {
    let gpu = common::gpu();
    let (config, weights, prompts, _) = case_of(&root().join("fixtures/act_patch/ln_gelu.npz"));
    let model = Model::load(&gpu, config, &weights).unwrap();
    let sweeps = Sweep::ALL.to_vec();
    let one = patch_gpu::act_patch(&gpu, &model, &prompts, &sweeps, &Batching::one_per_patch()).unwrap();
    for batching in [Batching { max_copies: 4, ..Batching::default() }, Batching::default()] {
        let many = patch_gpu::act_patch(&gpu, &model, &prompts, &sweeps, &batching).unwrap();
        for ((sweep, a), b) in sweeps.iter().zip(&one).zip(&many) {
            let worst = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
            assert!(worst <= 1e-5, "{} with {batching:?}: batched differs from one per patch by {worst}", sweep.key());
        }
    }
    // The chunk size follows the budget: a tiny one gives a chunk of one copy, never zero.
    let tight = Batching { max_copies: 256, max_bytes: 1 };
    assert_eq!(tight.copies(&gpu, model.config(), Sweep::ResidPre, 2, 6, 12), 1);
    assert_eq!(Batching::default().copies(&gpu, model.config(), Sweep::ResidPre, 2, 6, 12), 12);
}

/// The reference's attribution estimate against TransformerLens's, every hook, and a 1 % change
/// of one expected value is caught (the comparison can fail).
#[test]
fn attribution_reference_matches_transformer_lens() {
    let dir = root().join("fixtures/attribution");
    let mut cases = 0;
    for path in verify::collect(&[dir]).into_iter().map(|e| e.unwrap()) {
        let (config, weights, prompts, fixture) = case_of(&path);
        let got = attribution::reference(&config, &wide(&config, &weights), &prompts, &Names::All).unwrap();
        let keys: Vec<&str> = fixture.names().filter(|k| k.starts_with("attr.")).collect();
        assert_eq!(keys.len(), got.len(), "{}: one attr.<hook> per default hook", path.display());
        let mut cmp = Comparison::new();
        let mut nudged = Comparison::new();
        for key in keys {
            let want = fixture.expected(key).unwrap();
            let have = got.get(&key["attr.".len()..]).unwrap_or_else(|| panic!("{key} was not produced"));
            let allowed = ATTENTION.allowed(&want.view());
            cmp.add(key, &have.view(), &want.view(), &allowed.view()).unwrap();
            let mut off = want.clone();
            if let Some(v) = off.iter_mut().max_by(|a, b| a.abs().total_cmp(&b.abs())) {
                *v = *v * 1.01 + 1e-3;
            }
            nudged.add(key, &have.view(), &off.view(), &allowed.view()).unwrap();
        }
        assert!(cmp.passed(), "{}: {:?}", path.display(), cmp.worst);
        assert!(!nudged.passed(), "{}: a 1 % change went unnoticed", path.display());
        cases += 1;
    }
    assert!(cases >= 3, "want at least 3 attribution cases, found {cases}");
}

/// Patching where the clean and corrupt prompts are equal changes nothing: every sweep value is
/// the unpatched metric (reference and GPU).
#[test]
fn identical_prompts_give_a_flat_sweep() {
    let gpu = common::gpu();
    let (config, weights, mut prompts, _) = case_of(&root().join("fixtures/act_patch/attn_only.npz"));
    prompts.corrupt = prompts.clean.clone();
    let (clean, corrupt) = patch_ref::baselines(&config, &wide(&config, &weights), &prompts).unwrap();
    assert_eq!(clean, corrupt);
    let host = patch_ref::act_patch(&config, &wide(&config, &weights), &prompts, &[Sweep::ResidPre, Sweep::ZAllPos]).unwrap();
    let model = Model::load(&gpu, config, &weights).unwrap();
    let on_gpu = patch_gpu::act_patch(&gpu, &model, &prompts, &[Sweep::ResidPre, Sweep::ZAllPos], &Batching::default()).unwrap();
    for a in host.iter().chain(&on_gpu) {
        assert!(a.iter().all(|v| (v - clean).abs() <= 1e-4 + 1e-3 * clean.abs()), "{a:?} vs {clean}");
    }
}

#[test]
fn bad_prompts_and_sweeps_are_refused_by_name() {
    let gpu = common::gpu();
    let (config, weights, prompts, _) = case_of(&root().join("fixtures/act_patch/attn_only.npz"));
    let model = Model::load(&gpu, config.clone(), &weights).unwrap();
    let run = |p: &Prompts, sweeps: &[Sweep]| patch_gpu::act_patch(&gpu, &model, p, sweeps, &Batching::default()).unwrap_err().to_string();
    let mut p = prompts.clone();
    p.answer[0] = config.d_vocab_out as i64;
    assert!(run(&p, &[Sweep::ResidPre]).contains("answer[0]"));
    let mut p = prompts.clone();
    p.wrong[1] = -1;
    assert!(run(&p, &[Sweep::ResidPre]).contains("wrong[1]"));
    let mut p = prompts.clone();
    p.corrupt = p.corrupt.slice_move(ndarray::s![.., 1..]).into_dyn();
    assert!(run(&p, &[Sweep::ResidPre]).contains("corrupt"));
    let mut p = prompts.clone();
    p.clean[[0, 0]] = config.d_vocab as i64;
    assert!(run(&p, &[Sweep::ResidPre]).starts_with("clean: token"));
    assert!(run(&prompts, &[Sweep::MlpOut]).contains("mlp_out"));
    assert!(Sweep::from_key("resid_post").unwrap_err().to_string().contains("resid_post"));
    let host = patch_ref::act_patch(&config, &wide(&config, &weights), &prompts, &[Sweep::MlpOut]);
    assert!(host.unwrap_err().to_string().contains("mlp_out"));
}

fn shaderlens(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_shaderlens")).args(args).current_dir(root()).output().unwrap()
}

/// The ln_gelu fixture split as `patch` takes it: config, weights-only npz, prompts npz.
fn split_case(dir: &Scratch) -> (PathBuf, PathBuf, PathBuf) {
    let src = root().join("fixtures/act_patch/ln_gelu.npz");
    let (m, w, p) = (dir.join("m.json"), dir.join("w.npz"), dir.join("p.npz"));
    std::fs::copy(src.with_extension("json"), &m).unwrap();
    let fixture = Fixture::open(&src).unwrap();
    let prompt_keys = ["clean", "corrupt", "answer", "wrong"];
    let mut weights = Vec::new();
    for name in fixture.names().filter(|n| !n.starts_with("patch.") && !prompt_keys.contains(n)) {
        weights.push((format!("{name}.npy"), npy(&fixture.input(name).unwrap())));
    }
    let prompts: Vec<(String, Vec<u8>)> = prompt_keys.iter().map(|k| (format!("{k}.npy"), npy(&fixture.int_array(k).unwrap()))).collect();
    for (path, members) in [(&w, weights), (&p, prompts)] {
        let members: Vec<(&str, Vec<u8>)> = members.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
        std::fs::write(path, npz(&members, true)).unwrap();
    }
    (m, w, p)
}

#[test]
fn the_patch_command_writes_the_sweeps_transformer_lens_computes() {
    let dir = Scratch::new("patch-cli");
    let (m, w, p) = split_case(&dir);
    let out = dir.join("out.npz");
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let args = ["patch", "--model", &s(&m), "--weights", &s(&w), "--prompts", &s(&p), "--out", &s(&out)];
    let run = shaderlens(&[&args[..], &["--sweep", "all"]].concat());
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(run.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&run.stderr));
    assert!(stdout.contains("patch.resid_pre") && stdout.contains("clean"), "{stdout}");
    let written = Fixture::open(&out).unwrap();
    let want = Fixture::open(&root().join("fixtures/act_patch/ln_gelu.npz")).unwrap();
    for sweep in Sweep::ALL {
        let key = format!("patch.{}", sweep.key());
        let (got, want) = (written.expected(&key).unwrap(), want.expected(&key).unwrap());
        let allowed = ATTENTION.allowed(&want.view());
        let mut cmp = Comparison::new();
        cmp.add(&key, &got.view(), &want.view(), &allowed.view()).unwrap();
        assert!(cmp.passed(), "{key}: {:?}", cmp.worst);
    }
    assert!(written.scalar_f64("clean_metric").unwrap() > written.scalar_f64("corrupt_metric").unwrap());

    // Refused: an unknown sweep, an output that is an input; neither writes anything.
    let bad = shaderlens(&[&args[..], &["--sweep", "resid_post"]].concat());
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("resid_post"));
    let before = std::fs::read(&p).unwrap();
    let clash = shaderlens(&["patch", "--model", &s(&m), "--weights", &s(&w), "--prompts", &s(&p), "--out", &s(&p)]);
    assert_eq!(clash.status.code(), Some(2));
    assert_eq!(std::fs::read(&p).unwrap(), before, "the prompts file was not overwritten");
}

/// `patch --attribution` writes `attr.<hook>` for every default hook beside the sweeps, equal to
/// the float64 attribution of the same prompts (and so to TransformerLens's, which the reference
/// is checked against); without the flag no `attr.*` is written.
#[test]
fn the_patch_command_writes_the_attribution_beside_the_sweeps() {
    let dir = Scratch::new("patch-attr");
    let (m, w, p) = split_case(&dir);
    let (with, without) = (dir.join("with.npz"), dir.join("without.npz"));
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let args = ["patch", "--model", &s(&m), "--weights", &s(&w), "--prompts", &s(&p), "--sweep", "z_all_pos", "--out"];
    let run = shaderlens(&[&args[..], &[&s(&with), "--attribution"]].concat());
    assert_eq!(run.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&run.stderr));
    let plain = shaderlens(&[&args[..], &[&s(&without)]].concat());
    assert_eq!(plain.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&plain.stderr));
    assert!(Fixture::open(&without).unwrap().names().all(|n| !n.starts_with("attr.")));
    let (config, weights, prompts, _) = case_of(&root().join("fixtures/act_patch/ln_gelu.npz"));
    let want = attribution::reference(&config, &wide(&config, &weights), &prompts, &Names::All).unwrap();
    let written = Fixture::open(&with).unwrap();
    assert_eq!(written.names().filter(|n| n.starts_with("attr.")).count(), want.iter().count());
    for (name, want) in want.iter() {
        let got = written.expected(&format!("attr.{name}")).unwrap();
        assert_eq!(got.shape(), want.shape(), "{name}");
        let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for (g, w) in got.iter().zip(want.iter()) {
            assert!((g - w).abs() <= 1e-5 + 1e-3 * scale, "attr.{name}: {g} vs {w}");
        }
    }
}

/// Node scores are the per-head and per-MLP sums of the attribution arrays per batch row, as
/// TransformerLens's arrays give them; an attention-only model has no MLP scores.
#[test]
fn node_scores_sum_the_attribution_per_head_and_mlp() {
    for (case, has_mlp) in [("ln_gelu", true), ("attn_only", false)] {
        let path = root().join(format!("fixtures/attribution/{case}.npz"));
        let (config, weights, prompts, fixture) = case_of(&path);
        let attr = attribution::reference(&config, &wide(&config, &weights), &prompts, &Names::All).unwrap();
        let (heads, mlps) = attribution::node_scores(&config, &attr).unwrap();
        let batch = prompts.clean.shape()[0] as f64;
        let z1 = fixture.expected("attr.blocks.1.attn.hook_z").unwrap();
        let want: f64 = z1.index_axis(ndarray::Axis(2), 1).sum() / batch;
        assert!((heads[[1, 1]] - want).abs() <= 1e-6 + 1e-4 * want.abs(), "{case}: {} vs {want}", heads[[1, 1]]);
        assert_eq!(mlps.is_some(), has_mlp, "{case}");
        if let Some(m) = mlps {
            let want = fixture.expected("attr.blocks.0.hook_mlp_out").unwrap().sum() / batch;
            assert!((m[[0]] - want).abs() <= 1e-6 + 1e-4 * want.abs(), "{case}: {} vs {want}", m[[0]]);
        }
    }
}
