//! Linear board probes (`shaderlens::probe`): the GPU probe follows its float64 twin step for
//! step; activations that encode a board linearly are read back almost perfectly on held-out
//! positions; and `shaderlens probe` writes its report and PNGs, and refuses a missing hook, a
//! model that is not an Othello model and a games file of the wrong shape, by name.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ndarray::{s, Array2};
use ndarray_npy::NpzWriter;
use shaderlens::probe::data::targets;
use shaderlens::probe::gpu::{GpuProbe, Rows};
use shaderlens::probe::reference::HostProbe;
use shaderlens::probe::report::score;
use shaderlens::probe::{init, Hyper, SQUARES};
use shaderlens::reference::backward::adamw::AdamW;
use shaderlens::transformer::Config;

fn hyper(steps: usize, lr: f64) -> Hyper {
    Hyper { steps, adamw: AdamW { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 }, seed: 7 }
}

#[test]
fn gpu_probe_steps_follow_the_float64_twin() {
    let gpu = common::gpu();
    let (rows, d) = (40, 12);
    let x = Array2::from_shape_vec((rows, d), common::normals(3, rows * d)).unwrap();
    let y = Array2::from_shape_fn((rows, SQUARES), |(r, s)| ((r * 7 + s * 3 + r * s) % 3) as i64);
    let hp = hyper(4, 0.01);
    let start = init(d, hp.seed);
    let mut host = HostProbe::new(start.clone());
    let mut probe = GpuProbe::new(&gpu, &start, hp).unwrap();
    let on_gpu = Rows::upload(&gpu, x.view(), y.view()).unwrap();
    let x64 = x.mapv(f64::from);
    for step in 1..=hp.steps {
        let want_loss = host.step(x64.view(), y.view(), &hp.adamw).unwrap();
        probe.step(&gpu, &on_gpu).unwrap();
        let got_loss = probe.last_loss(&gpu, &on_gpu).unwrap();
        assert!((got_loss - want_loss).abs() <= 1e-5 + 1e-4 * want_loss.abs(), "step {step}: loss {got_loss} vs {want_loss}");
        let got = probe.weights(&gpu).unwrap();
        let worst = (&got.w - &host.weights.w).mapv(f64::abs).fold(0.0f64, |m, &v| m.max(v));
        let worst_b = (&got.b - &host.weights.b).mapv(f64::abs).fold(0.0f64, |m, &v| m.max(v));
        assert!(worst < 2e-5 && worst_b < 2e-5, "step {step}: W off by {worst}, b by {worst_b}");
        // The update moved the weights by far more than the tolerance.
        assert!((&got.w - &start.w).mapv(f64::abs).sum() > 1e-3 * (d * 192) as f64);
    }
}

#[test]
fn a_linearly_encoded_board_is_read_back_on_held_out_positions() {
    let gpu = common::gpu();
    let games = shaderlens::games::generate(5, 0, 64, 1).unwrap();
    let t = targets(&games, 59).unwrap();
    // Each square is two coordinates (mine, theirs), mixed by a fixed random matrix, plus noise.
    let d = 256;
    let mix = Array2::from_shape_vec((2 * SQUARES, d), common::normals(11, 2 * SQUARES * d)).unwrap();
    let onehot = t.classes.mapv(|c| c as f32);
    let code = Array2::from_shape_fn((t.classes.nrows(), 2 * SQUARES), |(r, k)| f32::from(onehot[[r, k / 2]] == (k % 2 + 1) as f32));
    let noise = Array2::from_shape_vec((t.classes.nrows(), d), common::normals(12, t.classes.nrows() * d)).unwrap();
    let x = code.dot(&mix) / 8.0 + noise.mapv(|v| 0.02 * v);
    let cut = t.positions.iter().take_while(|p| p.0 < 50).count();
    let train = Rows::upload(&gpu, x.slice(s![..cut, ..]), t.classes.slice(s![..cut, ..])).unwrap();
    let held = Rows::upload(&gpu, x.slice(s![cut.., ..]), t.classes.slice(s![cut.., ..])).unwrap();
    let probe = GpuProbe::fit(&gpu, &train, hyper(200, 0.02)).unwrap();
    let predicted = probe.predict(&gpu, &held).unwrap();
    let acc = score(predicted.view(), t.classes.slice(s![cut.., ..]), t.flipped.slice(s![cut.., ..])).unwrap();
    assert!(acc.all > 0.99 && acc.occupied > 0.98, "held-out accuracy {acc:?}");
    // An untrained probe is near chance, so the test can fail.
    let fresh = GpuProbe::new(&gpu, &init(d, 7), hyper(1, 0.05)).unwrap().predict(&gpu, &held).unwrap();
    let chance = score(fresh.view(), t.classes.slice(s![cut.., ..]), t.flipped.slice(s![cut.., ..])).unwrap();
    assert!(chance.all < 0.6, "an untrained probe scored {chance:?}");
}

fn shaderlens(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shaderlens")).args(args).output().expect("the shaderlens binary runs")
}

/// A fresh folder for one test.
fn folder(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("probe_{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes an untrained model of `d_vocab` tokens (config JSON and weights npz) into `dir`.
fn model(dir: &Path, d_vocab: usize) -> (PathBuf, PathBuf) {
    let json = format!(
        r#"{{"n_layers": 1, "d_model": 16, "n_heads": 2, "d_head": 8, "d_mlp": 32, "d_vocab": {d_vocab}, "d_vocab_out": {d_vocab},
            "n_ctx": 59, "act_fn": "gelu", "normalization_type": "LN", "attn_only": false, "eps": 1e-5,
            "positional_embedding_type": "standard"}}"#
    );
    let config = Config::from_json(&json).unwrap();
    let weights = shaderlens::train::init::init_weights(&config, 0.2, 3).unwrap();
    let (config_path, npz_path) = (dir.join(format!("model{d_vocab}.json")), dir.join(format!("model{d_vocab}.npz")));
    std::fs::write(&config_path, json).unwrap();
    let mut npz = NpzWriter::new(std::fs::File::create(&npz_path).unwrap());
    for (name, a) in weights.named() {
        npz.add_array(name, &a.mapv(|v| v as f32)).unwrap();
    }
    npz.finish().unwrap();
    (config_path, npz_path)
}

fn run_probe(model: &(PathBuf, PathBuf), out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["probe", "--model", model.0.to_str().unwrap(), "--weights", model.1.to_str().unwrap(), "--out", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    shaderlens(&args)
}

#[test]
fn probe_command_writes_report_weights_and_pngs() {
    let dir = folder("writes");
    let m = model(&dir, 61);
    let out = dir.join("out");
    let run = run_probe(&m, &out, &["--games", "6", "--heldout", "0.34", "--steps", "3"]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains("blocks.0.hook_resid_post") && stdout.contains("blocks.0.hook_resid_pre"), "{stdout}");
    for png in ["accuracy_by_layer.png", "board.png"] {
        let image = image::open(out.join(png)).unwrap().to_rgb8();
        assert!(image.width() > 400 && image.height() > 300, "{png} is {}x{}", image.width(), image.height());
        let distinct: std::collections::HashSet<[u8; 3]> = image.pixels().map(|p| p.0).collect();
        assert!(distinct.len() > 8, "{png} draws almost nothing");
    }
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("probe.json")).unwrap()).unwrap();
    let hooks = report["hooks"].as_array().unwrap();
    assert_eq!(hooks.len(), 2);
    for h in hooks {
        for key in ["trained", "baseline"] {
            let all = h[key]["all"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&all), "{key} accuracy {all}");
        }
    }
    let mut npz = ndarray_npy::NpzReader::new(std::fs::File::open(out.join("probe.npz")).unwrap()).unwrap();
    let w: ndarray::Array3<f32> = npz.by_name("trained.blocks.0.hook_resid_post.W").unwrap();
    assert_eq!(w.shape(), &[16, 64, 3]);
    let acc: Array2<f64> = npz.by_name("baseline.accuracy").unwrap();
    assert_eq!(acc.shape(), &[2, 3]);
}

#[test]
fn probe_command_refuses_bad_inputs_by_name() {
    let dir = folder("refuses");
    let good = model(&dir, 61);
    let out = dir.join("out");
    let err = |o: Output| {
        assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stdout));
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let e = err(run_probe(&good, &out, &["--hook", "blocks.3.hook_resid_post", "--games", "4"]));
    assert!(e.contains("blocks.3.hook_resid_post"), "{e}");
    let e = err(run_probe(&good, &out, &["--hook", "blocks.0.attn.hook_pattern", "--games", "4"]));
    assert!(e.contains("blocks.0.attn.hook_pattern") && e.contains("shape"), "{e}");
    let e = err(run_probe(&model(&dir, 12), &out, &["--games", "4"]));
    assert!(e.contains("d_vocab is 12") && e.contains("61"), "{e}");
    let games = dir.join("short.npz");
    let mut npz = NpzWriter::new(std::fs::File::create(&games).unwrap());
    npz.add_array("tokens", &Array2::<i64>::zeros((3, 10))).unwrap();
    npz.finish().unwrap();
    let e = err(run_probe(&good, &out, &["--games-file", games.to_str().unwrap()]));
    assert!(e.contains("short.npz") && e.contains("[3, 10]") && e.contains("60"), "{e}");
    let e = err(run_probe(&good, &out, &["--games", "4", "--steps", "0"]));
    assert!(e.contains("--steps"), "{e}");
    assert!(!out.join("probe.json").exists(), "a refused run wrote its report");
}

