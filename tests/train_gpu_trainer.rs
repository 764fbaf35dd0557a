//! The GPU trainer (model, arena optimizer and evaluation on the GPU) against the float64
//! reference trainer, with the gradients of the model's current GPU weights supplied by the
//! float64 backward or by the GPU backward: a few updates of a tiny model
//! agree within SPEC's `train` tolerance, and a run writes its files through the same loop.

mod common;
#[path = "common/files.rs"]
mod files;

use std::sync::atomic::AtomicBool;

use ndarray::{ArrayD, ArrayView2};
use shaderlens::gpu::Gpu;
use shaderlens::reference::backward::model::transformer_grad;
use shaderlens::train::config::TrainConfig;
use shaderlens::train::gpu_trainer::{Backprop, GpuGradients, GpuTrainer};
use shaderlens::train::init::init_weights;
use shaderlens::train::reference::ReferenceTrainer;
use shaderlens::train::run::{read_metrics, run, Control, Outcome};
use shaderlens::train::Backend;
use shaderlens::transformer::hooks::Names;
use shaderlens::transformer::weights::Weights;
use shaderlens::transformer::Model;
use shaderlens::{GpuTensor, Result};

/// Gradients of the GPU model's weights as they are now, by the float64 backward.
struct HostGradients;

impl GpuGradients for HostGradients {
    fn gradients(&mut self, gpu: &Gpu, model: &Model, tokens: ArrayView2<'_, i64>, targets: ArrayView2<'_, i64>) -> Result<Weights<GpuTensor>> {
        let config = model.config();
        let now = model.weights().try_map(config, |_, t| Ok(t.read(gpu)?.mapv(f64::from)))?;
        let run = transformer_grad(config, &now, tokens.into_dyn(), targets.into_dyn(), &Names::Nothing, &[])?;
        run.grads.try_map(config, |name, g: &ArrayD<f64>| GpuTensor::upload(gpu, g.mapv(|x| x as f32).view(), name))
    }
}

fn config(out: &std::path::Path) -> TrainConfig {
    let text = format!(
        "seed = 2\nout = \"{}\"\nsteps = 6\nbatch = 10\neval_every = 3\ncheckpoint_every = 3\n[model]\nn_layers = 1\nd_model = 16\nn_heads = 2\nd_head = 8\nd_mlp = 32\n[data]\np = 7\ntrain_fraction = 0.6\n[optimizer]\nlr = 1e-2\nweight_decay = 0.5\nmax_grad_norm = 0.5\ndecay_biases_and_norms = false\n[schedule]\nkind = \"warmup\"\nwarmup_steps = 2\n",
        out.display()
    );
    TrainConfig::from_toml(&text, &[]).unwrap()
}

#[test]
fn gpu_trainer_follows_the_reference_trainer() {
    follows_the_reference(HostGradients, "train-gpu");
}

/// The whole GPU path: gradients from the GPU backward ([`Backprop`]), the arena optimizer, and the
/// packed Q/K/V repacked after every update (a stale copy would make update 2 onward differ).
#[test]
fn gpu_backward_trainer_follows_the_reference_trainer() {
    follows_the_reference(Backprop, "train-gpu-backprop");
}

fn follows_the_reference(gradients: impl GpuGradients, scratch: &str) {
    let gpu = common::gpu();
    let dir = files::Scratch::new(scratch);
    let c = config(&dir.0);
    let initial = init_weights(&c.model, c.initializer_range, c.seed).unwrap();
    let mut ours = GpuTrainer::new(&gpu, &c.model, c.optimizer, &initial, gradients).unwrap();
    let mut reference = ReferenceTrainer::new(&c.model, c.optimizer, initial).unwrap();
    let data = shaderlens::games::modular::ModularData::new(7, shaderlens::games::modular::Op::Add, 0.6, 2).unwrap();
    for t in 1..=4u64 {
        let lr = c.schedule.lr(c.optimizer.adamw.lr, t - 1, 4);
        for b in [&mut ours as &mut dyn Backend, &mut reference] {
            b.step(data.train_tokens.view(), data.train_targets.view(), t, lr).unwrap();
        }
        let (g, r) = (ours.grad_norm().unwrap(), reference.grad_norm().unwrap());
        assert!((g - r).abs() <= 1e-4 + 1e-3 * r, "update {t}: grad norm {g} vs {r}");
    }
    let (got, want) = (ours.state().unwrap(), reference.state().unwrap());
    for ((name, g), (_, w)) in got.params.named().into_iter().zip(want.params.named()) {
        if name.ends_with("b_K") {
            continue; // zero gradient in exact arithmetic: Adam steers it by rounding noise (SPEC).
        }
        common::assert_close(&g.mapv(|x| x as f32), w, 1e-4, 1e-3, &name);
    }
    let (e, w) = (ours.evaluate(data.test_tokens.view(), data.test_targets.view()).unwrap(), reference.evaluate(data.test_tokens.view(), data.test_targets.view()).unwrap());
    assert!((e.loss - w.loss).abs() <= 1e-4 + 1e-3 * w.loss, "test loss {} vs {}", e.loss, w.loss);
    let (wn, rn) = (ours.weight_norm().unwrap(), reference.weight_norm().unwrap());
    assert!((wn - rn).abs() <= 1e-5 * rn, "weight norm {wn} vs {rn}");
}

#[test]
fn gpu_trainer_runs_the_loop_and_resumes() {
    let gpu = common::gpu();
    let dir = files::Scratch::new("train-gpu-run");
    let c = config(&dir.0);
    let initial = init_weights(&c.model, c.initializer_range, c.seed).unwrap();
    let stop = AtomicBool::new(false);
    let mut trainer = GpuTrainer::new(&gpu, &c.model, c.optimizer, &initial, HostGradients).unwrap();
    let outcome = run(&c, &mut trainer, false, Control { stop: &stop, observe: &mut |_, _| {} }).unwrap();
    assert_eq!(outcome, Outcome::Finished { steps: 6 });
    let metrics = read_metrics(&dir.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.iter().map(|m| m.step).collect::<Vec<_>>(), [0, 3, 6]);
    assert!(metrics[2].train_loss < metrics[0].train_loss, "{:?}", metrics);
    // Resumed from step 6's state with 3 more updates on a fresh trainer: the state round-trips.
    let more = TrainConfig { length: shaderlens::train::config::Length::Steps(9), ..c.clone() };
    let mut again = GpuTrainer::new(&gpu, &c.model, c.optimizer, &initial, HostGradients).unwrap();
    assert_eq!(run(&more, &mut again, true, Control { stop: &stop, observe: &mut |_, _| {} }).unwrap(), Outcome::Finished { steps: 9 });
    assert_eq!(read_metrics(&dir.join("metrics.jsonl")).unwrap().last().unwrap().step, 9);
}

#[test]
fn same_config_and_seed_give_bit_identical_gpu_weights() {
    let gpu = common::gpu();
    let dir = files::Scratch::new("train-gpu-determinism");
    let c = config(&dir.0);
    let initial = init_weights(&c.model, c.initializer_range, c.seed).unwrap();
    let data = shaderlens::games::modular::ModularData::new(7, shaderlens::games::modular::Op::Add, 0.6, 2).unwrap();
    let train = || {
        let mut t = GpuTrainer::new(&gpu, &c.model, c.optimizer, &initial, HostGradients).unwrap();
        for step in 1..=3 {
            t.step(data.train_tokens.view(), data.train_targets.view(), step, 1e-2).unwrap();
        }
        let s = t.state().unwrap();
        (s.params.named().into_iter().map(|(_, a)| a.clone()).collect::<Vec<_>>(), t.grad_norm().unwrap())
    };
    assert_eq!(train(), train());
}
