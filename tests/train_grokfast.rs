//! Grokfast's EMA gradient filter (`optimizer.grokfast_alpha` / `grokfast_lambda`): the float64
//! filter against a hand computation, the config keys, the GPU trainer (GPU backward, the
//! `grokfast_arena` dispatch, the arena optimizer) against the float64 trainer update by update,
//! and a stopped-and-resumed run equal, bit for bit, to one that never stopped (the average is in
//! `state.npz`).

mod common;
#[path = "common/files.rs"]
mod files;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::AtomicBool;

use ndarray::{arr1, ArrayD};
use shaderlens::train::config::{Length, TrainConfig};
use shaderlens::train::gpu_trainer::{Backprop, GpuTrainer};
use shaderlens::train::grokfast::Grokfast;
use shaderlens::train::init::init_weights;
use shaderlens::train::reference::ReferenceTrainer;
use shaderlens::train::run::{run, Control, Outcome};
use shaderlens::train::{Backend, State};

fn config(out: &Path, steps: u64) -> TrainConfig {
    let text = format!(
        "seed = 3\nout = \"{}\"\nsteps = {steps}\nbatch = 10\neval_every = 3\ncheckpoint_every = 3\n[model]\nn_layers = 1\nd_model = 16\nn_heads = 2\nd_head = 8\nd_mlp = 32\n[data]\np = 7\ntrain_fraction = 0.6\n[optimizer]\nlr = 1e-2\nweight_decay = 0.5\nmax_grad_norm = 0.5\ngrokfast_alpha = 0.9\ngrokfast_lambda = 2.0\n[schedule]\nkind = \"warmup\"\nwarmup_steps = 2\n",
        out.display()
    );
    TrainConfig::from_toml(&text, &[]).unwrap()
}

#[test]
fn the_filter_follows_the_papers_formula() {
    let filter = Grokfast { alpha: 0.5, lambda: 2.0 };
    let mut grads: BTreeMap<String, ArrayD<f64>> = [("w".to_string(), arr1(&[1.0, -2.0]).into_dyn())].into();
    let mut ema = None;
    filter.apply(&mut grads, &mut ema).unwrap();
    // First update: h = g, then g + λh = 3g.
    assert_eq!(grads["w"], arr1(&[3.0, -6.0]).into_dyn());
    let mut grads: BTreeMap<String, ArrayD<f64>> = [("w".to_string(), arr1(&[3.0, 0.0]).into_dyn())].into();
    filter.apply(&mut grads, &mut ema).unwrap();
    // h = 0.5·[1, −2] + 0.5·[3, 0] = [2, −1]; g = [3, 0] + 2·[2, −1] = [7, −2].
    assert_eq!(ema.as_ref().unwrap()["w"], arr1(&[2.0, -1.0]).into_dyn());
    assert_eq!(grads["w"], arr1(&[7.0, -2.0]).into_dyn());
    let mut wrong: BTreeMap<String, ArrayD<f64>> = [("w".to_string(), arr1(&[1.0]).into_dyn())].into();
    assert!(filter.apply(&mut wrong, &mut ema).unwrap_err().to_string().contains("grokfast"));
}

#[test]
fn the_config_reads_grokfast_and_refuses_bad_values() {
    let dir = files::Scratch::new("grokfast-config");
    let c = config(&dir.0, 6);
    assert_eq!(c.optimizer.grokfast, Some(Grokfast { alpha: 0.9, lambda: 2.0 }));
    let again = TrainConfig::from_toml(&c.to_toml(), &[]).unwrap();
    assert_eq!(again.optimizer.grokfast, c.optimizer.grokfast, "the resolved config keeps Grokfast");
    let base = TrainConfig::preset("grokking-small", &[]).unwrap();
    assert_eq!(base.optimizer.grokfast, None, "off by default");
    let on = TrainConfig::preset("grokking-small", &["optimizer.grokfast_lambda=2".into()]).unwrap();
    assert_eq!(on.optimizer.grokfast, Some(Grokfast { alpha: 0.98, lambda: 2.0 }));
    let off = TrainConfig::preset("grokking-small", &["optimizer.grokfast_lambda=0".into()]).unwrap();
    assert_eq!(off.optimizer.grokfast, None);
    for (set, says) in [("optimizer.grokfast_alpha=1.0", "grokfast_alpha"), ("optimizer.grokfast_lambda=-1", "grokfast_lambda")] {
        let e = TrainConfig::preset("grokking-small", &[set.into()]).unwrap_err().to_string();
        assert!(e.contains(says), "{set}: {e}");
    }
}

#[test]
fn gpu_trainer_with_grokfast_follows_the_reference_trainer() {
    let gpu = common::gpu();
    let dir = files::Scratch::new("grokfast-gpu");
    let c = config(&dir.0, 4);
    let initial = init_weights(&c.model, c.initializer_range, c.seed).unwrap();
    let mut ours = GpuTrainer::new(&gpu, &c.model, c.optimizer, &initial, Backprop).unwrap();
    let mut reference = ReferenceTrainer::new(&c.model, c.optimizer, initial).unwrap();
    let data = shaderlens::games::modular::ModularData::new(7, shaderlens::games::modular::Op::Add, 0.6, 2).unwrap();
    for t in 1..=4u64 {
        let lr = c.schedule.lr(c.optimizer.adamw.lr, t - 1, 4);
        for b in [&mut ours as &mut dyn Backend, &mut reference] {
            b.step(data.train_tokens.view(), data.train_targets.view(), t, lr).unwrap();
        }
        let (g, r) = (ours.grad_norm().unwrap(), reference.grad_norm().unwrap());
        assert!((g - r).abs() <= 1e-4 + 1e-3 * r, "update {t}: filtered grad norm {g} vs {r}");
    }
    let (got, want) = (ours.state().unwrap(), reference.state().unwrap());
    let (got_h, want_h) = (got.ema.expect("GPU average"), want.ema.expect("reference average"));
    for (kind, g, w) in [("param", &got.params, &want.params), ("h", &got_h, &want_h)] {
        for ((name, g), (_, w)) in g.named().into_iter().zip(w.named()) {
            if name.ends_with("b_K") {
                continue; // zero gradient in exact arithmetic: Adam steers it by rounding noise (SPEC).
            }
            common::assert_close(&g.mapv(|x| x as f32), w, 1e-4, 1e-3, &format!("{kind} {name}"));
        }
    }
    // Without the filter the weights differ: the test can tell Grokfast on from off.
    let plain = TrainConfig::from_toml(&c.to_toml(), &["optimizer.grokfast_lambda=0".into()]).unwrap();
    let mut off = ReferenceTrainer::new(&plain.model, plain.optimizer, init_weights(&c.model, c.initializer_range, c.seed).unwrap()).unwrap();
    for t in 1..=4u64 {
        off.step(data.train_tokens.view(), data.train_targets.view(), t, c.schedule.lr(c.optimizer.adamw.lr, t - 1, 4)).unwrap();
    }
    let differ = (&off.state().unwrap().params.w_e - &want.params.w_e).iter().fold(0.0f64, |a, x| a.max(x.abs()));
    assert!(differ > 1e-4, "Grokfast changed nothing ({differ})");
}

/// Runs `config` through the loop (resuming when asked) on a fresh GPU trainer; its final state.
fn train_gpu(gpu: &shaderlens::gpu::Gpu, c: &TrainConfig, resume: bool) -> State {
    let initial = init_weights(&c.model, c.initializer_range, c.seed).unwrap();
    let mut trainer = GpuTrainer::new(gpu, &c.model, c.optimizer, &initial, Backprop).unwrap();
    let stop = AtomicBool::new(false);
    let outcome = run(c, &mut trainer, resume, Control { stop: &stop, observe: &mut |_, _| {} }).unwrap();
    assert!(matches!(outcome, Outcome::Finished { .. }));
    shaderlens::train::checkpoint::load_state(&c.out, &c.model).unwrap().1
}

fn flat(s: &State) -> Vec<(String, Vec<f64>)> {
    let h = s.ema.as_ref().expect("state.npz holds the average");
    [("param.", &s.params), ("m.", &s.m), ("v.", &s.v), ("h.", h)]
        .iter()
        .flat_map(|(p, w)| w.named().into_iter().map(move |(n, a)| (format!("{p}{n}"), a.iter().copied().collect())))
        .collect()
}

#[test]
fn a_resumed_grokfast_run_equals_one_that_never_stopped() {
    let gpu = common::gpu();
    let (once, twice) = (files::Scratch::new("grokfast-once"), files::Scratch::new("grokfast-twice"));
    let whole = train_gpu(&gpu, &config(&once.0, 6), false);
    let half = config(&twice.0, 3);
    train_gpu(&gpu, &half, false);
    let resumed = train_gpu(&gpu, &TrainConfig { length: Length::Steps(6), ..half }, true);
    assert_eq!(flat(&whole), flat(&resumed), "resumed state differs");
}
