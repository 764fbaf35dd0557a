//! A whole training run on the float64 reference trainer with a tiny modular-addition model:
//! the loss falls, the files are written (metrics lines, curves PNG, checkpoints that
//! `Model::from_files` loads and that compute what the trained weights compute), a run stopped by
//! the stop flag and resumed equals one that never stopped, a diverging run stops with an error
//! naming the step, and the CLI's Ctrl-C handler saves a checkpoint and exits cleanly.

mod common;
#[path = "common/files.rs"]
mod files;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use files::Scratch;
use shaderlens::fixture::{Fixture, NpyArray};
use shaderlens::train::cli::trainer;
use shaderlens::train::config::TrainConfig;
use shaderlens::train::run::{read_metrics, run, Control, Metrics, Outcome};

/// p = 7 (49 pairs, 29 for training), one layer of width 16, mini-batches of 8 (4 per epoch,
/// reshuffled each epoch), cosine schedule with warm-up, clipping.
fn config(out: &Path, sets: &[&str]) -> TrainConfig {
    let text = format!(
        r#"seed = 5
out = "{}"
steps = 12
batch = 8
eval_every = 3
checkpoint_every = 4
[model]
n_layers = 1
d_model = 16
n_heads = 2
d_head = 8
d_mlp = 32
[data]
p = 7
train_fraction = 0.6
[optimizer]
lr = 1e-2
weight_decay = 0.5
max_grad_norm = 1.0
decay_biases_and_norms = false
[schedule]
kind = "cosine"
warmup_steps = 2
final_lr = 1e-3
"#,
        out.display()
    );
    TrainConfig::from_toml(&text, &sets.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
}

fn train(config: &TrainConfig, resume: bool, stop_at: Option<u64>) -> Outcome {
    let mut backend = trainer("reference", config, None).unwrap();
    let stop = AtomicBool::new(false);
    let mut observe = |step: u64, _: Option<&Metrics>| {
        if Some(step) == stop_at {
            stop.store(true, Ordering::SeqCst);
        }
    };
    run(config, backend.as_mut(), resume, Control { stop: &stop, observe: &mut observe }).unwrap()
}

fn arrays(path: &Path) -> Vec<(String, Vec<f64>)> {
    let npz = Fixture::open(path).unwrap();
    let mut out: Vec<(String, Vec<f64>)> = npz
        .names()
        .map(|n| {
            let values = match npz.get(n).unwrap() {
                NpyArray::F64(a) => a.iter().copied().collect(),
                NpyArray::F32(a) => a.iter().map(|&x| x as f64).collect(),
                NpyArray::I64(a) => a.iter().map(|&x| x as f64).collect(),
                other => panic!("{n}: {}", other.dtype()),
            };
            (n.to_string(), values)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn a_tiny_run_learns_and_writes_its_files() {
    let dir = Scratch::new("train-run");
    let c = config(&dir.0, &["steps=300", "batch=full", "eval_every=100", "checkpoint_every=150", "schedule.kind=constant"]);
    assert_eq!(train(&c, false, None), Outcome::Finished { steps: 300 });
    let metrics = read_metrics(&dir.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.iter().map(|m| m.step).collect::<Vec<_>>(), [0, 100, 200, 300]);
    let (first, last) = (&metrics[0], &metrics[3]);
    // From ln(7) = 1.95 at the start; 300 full-batch steps memorise the 29 training pairs.
    assert!(last.train_loss < first.train_loss / 20.0, "train loss {} -> {}", first.train_loss, last.train_loss);
    assert_eq!(last.train_accuracy, 1.0);
    assert!(last.test_loss.is_some() && last.grad_norm > 0.0 && last.weight_norm > 0.0 && last.tokens_per_s > 0.0);
    assert_eq!(last.lr, 1e-2);
    let png = std::fs::read(dir.join("curves.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    let picture = image::load_from_memory(&png).unwrap();
    assert_eq!((picture.width(), picture.height()), (1280, 420));
    for step in [0, 150, 300] {
        assert!(dir.join(&format!("checkpoints/{step}.json")).is_file() && dir.join(&format!("checkpoints/{step}.npz")).is_file());
    }
    let again = TrainConfig::from_file(&dir.join("config.toml"), &[]).unwrap();
    assert_eq!(again, c, "config.toml is the resolved config");
}

#[test]
fn checkpoints_load_as_models_that_compute_the_trained_weights() {
    let gpu = common::gpu();
    let dir = Scratch::new("train-checkpoint");
    let c = config(&dir.0, &["steps=8"]);
    train(&c, false, None);
    let model = shaderlens::transformer::Model::from_files(&gpu, &dir.join("checkpoints/8.json"), &dir.join("checkpoints/8.npz")).unwrap();
    let (_, state) = shaderlens::train::checkpoint::load_state(&dir.0, &c.model).unwrap();
    let tokens = ndarray::arr2(&[[1i64, 2, 7], [6, 6, 7]]).into_dyn();
    let got = model.forward(&gpu, tokens.view()).unwrap();
    let want = shaderlens::reference::transformer::forward(&c.model, &state.params, tokens.view(), &shaderlens::transformer::hooks::Names::Nothing, &[]).unwrap();
    common::assert_close(&got, &want.logits, 1e-4, 1e-3, "checkpoint logits");
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("checkpoints/8.json")).unwrap()).unwrap();
    assert_eq!((json["d_vocab"].as_u64(), json["init_mode"].as_str(), json["seed"].as_u64()), (Some(8), Some("gpt2"), Some(5)));
}

#[test]
fn a_stopped_and_resumed_run_equals_one_that_never_stopped() {
    let whole = Scratch::new("train-whole");
    let parts = Scratch::new("train-parts");
    train(&config(&whole.0, &[]), false, None);
    let c = config(&parts.0, &[]);
    // Stopped after update 5: mid-epoch, between checkpoints, in the cosine decay.
    assert_eq!(train(&c, false, Some(5)), Outcome::Stopped { step: 5 });
    assert_eq!(arrays(&parts.join("state.npz")).iter().find(|(n, _)| n == "step").unwrap().1, [5.0]);
    assert_eq!(train(&c, true, None), Outcome::Finished { steps: 12 });
    assert_eq!(arrays(&whole.join("state.npz")), arrays(&parts.join("state.npz")), "bit-identical state");
    assert_eq!(arrays(&whole.join("checkpoints/12.npz")), arrays(&parts.join("checkpoints/12.npz")));
    let strip = |p: &Path| read_metrics(p).unwrap().into_iter().map(|m| Metrics { tokens_per_s: 0.0, ..m }).collect::<Vec<_>>();
    assert_eq!(strip(&whole.join("metrics.jsonl")), strip(&parts.join("metrics.jsonl")));
    // The same config and seed give the same weights again.
    let twice = Scratch::new("train-twice");
    train(&config(&twice.0, &[]), false, None);
    assert_eq!(arrays(&whole.join("state.npz")), arrays(&twice.join("state.npz")));
}

#[test]
fn a_diverging_run_stops_naming_the_step_and_keeps_its_checkpoint() {
    let dir = Scratch::new("train-nan");
    let c = config(&dir.0, &["optimizer.lr=1e300", "optimizer.max_grad_norm=none", "schedule.kind=constant", "optimizer.weight_decay=0"]);
    let mut backend = trainer("reference", &c, None).unwrap();
    let stop = AtomicBool::new(false);
    let e = run(&c, backend.as_mut(), false, Control { stop: &stop, observe: &mut |_, _| {} }).unwrap_err().to_string();
    assert!(e.contains("not finite at step 3") && e.contains("checkpoint is step 0"), "{e}");
    assert!(dir.join("checkpoints/0.npz").is_file() && !dir.join("checkpoints/4.npz").exists());
}

#[test]
fn ctrl_c_saves_a_checkpoint_and_exits_cleanly() {
    let dir = Scratch::new("train-ctrlc");
    let c = config(&dir.0, &["steps=1000000", "eval_every=1000000", "checkpoint_every=1000000"]);
    let path = dir.join("run.toml");
    std::fs::write(&path, c.to_toml()).unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_shaderlens"))
        .args(["train", path.to_str().unwrap(), "--quiet"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The step-0 checkpoint's state is written before the first update.
    let start = std::time::Instant::now();
    while !dir.join("state.npz").exists() {
        assert!(start.elapsed().as_secs() < 60, "no state.npz within a minute");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let killed = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "exit {:?}: {text}", out.status);
    assert!(text.contains("stopped at step") && text.contains("--resume"), "{text}");
    let step = arrays(&dir.join("state.npz")).into_iter().find(|(n, _)| n == "step").unwrap().1[0] as u64;
    assert!(step > 0 && dir.join(&format!("checkpoints/{step}.npz")).is_file(), "stopped at {step}");
}

#[test]
fn the_cli_refuses_bad_arguments_with_exit_2() {
    let dir = Scratch::new("train-cli");
    let c = config(&dir.0, &["steps=2"]);
    let own = dir.join("config.toml");
    std::fs::write(&own, c.to_toml()).unwrap();
    let cli = |args: &[&str]| std::process::Command::new(env!("CARGO_BIN_EXE_shaderlens")).arg("train").args(args).output().unwrap();
    for (args, says) in [
        (vec![own.to_str().unwrap()], "is the config.toml this run would write"),
        (vec![own.to_str().unwrap(), "--set", "optimizer.momentum=1"], "unknown config key `optimizer.momentum`"),
        (vec!["--preset", "nope"], "no preset \"nope\""),
        (vec![], "needs a CONFIG.toml"),
        (vec!["--resume", dir.0.to_str().unwrap(), "--preset", "grokking"], "give one of"),
        (vec!["--resume", dir.0.to_str().unwrap()], "state.npz"),
    ] {
        let out = cli(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}
