//! `shaderlens train`: reads the config (a file, a preset, or a stopped run's own `config.toml`
//! with `--resume`), applies `--set`, builds the initial weights and the trainer, and runs
//! [`super::run::run`] with a progress bar and a Ctrl-C handler that saves a checkpoint.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use super::config::TrainConfig;
use super::gpu_trainer::{Backprop, GpuTrainer};
use super::init::init_weights;
use super::reference::ReferenceTrainer;
use super::run::{run, Control, Metrics, Outcome};
use super::Backend;
use crate::error::{Error, Result};
use crate::gpu::Gpu;

/// Raised by Ctrl-C; the run saves a checkpoint and stops before its next update.
static STOP: AtomicBool = AtomicBool::new(false);

/// The arguments of `shaderlens train`.
#[derive(clap::Args, Debug, Clone)]
pub struct TrainArgs {
    /// The run's config (TOML); not with --preset or --resume.
    pub config: Option<PathBuf>,
    /// Override a config value: a dotted key and a value of its type (`--set optimizer.lr=3e-4`,
    /// `--set steps=500`, `--set optimizer.max_grad_norm=none`). Repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Start from a shipped preset: grokking (Nanda et al.), grokking-small, othello-small or
    /// othello-gpt (Li et al.'s shape).
    #[arg(long)]
    pub preset: Option<String>,
    /// Continue the stopped run in this folder (its config.toml and state.npz).
    #[arg(long, value_name = "FOLDER")]
    pub resume: Option<PathBuf>,
    /// The trainer: `gpu` (forward, backward and AdamW on the GPU that WGPU_BACKEND and
    /// WGPU_ADAPTER_NAME choose) or `reference` (the float64 host trainer: exact, slow).
    #[arg(long, default_value = "gpu")]
    pub backend: String,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// Resolves the run's config from the arguments.
pub fn resolve(args: &TrainArgs) -> Result<(TrainConfig, bool)> {
    match (&args.config, &args.preset, &args.resume) {
        (None, None, Some(folder)) => {
            let mut config = TrainConfig::from_file(&folder.join("config.toml"), &args.set)?;
            config.out = folder.clone();
            Ok((config, true))
        }
        (Some(path), None, None) => {
            let config = TrainConfig::from_file(path, &args.set)?;
            // The run writes its resolved config to out/config.toml: never over the input.
            let written = config.out.join("config.toml");
            if written.canonicalize().ok().is_some_and(|w| path.canonicalize().ok() == Some(w)) {
                return Err(Error::Input(format!(
                    "{} is the config.toml this run would write; copy it elsewhere, or continue that run with --resume {}",
                    path.display(),
                    config.out.display()
                )));
            }
            Ok((config, false))
        }
        (None, Some(name), None) => Ok((TrainConfig::preset(name, &args.set)?, false)),
        (None, None, None) => Err(Error::Input("train needs a CONFIG.toml, --preset NAME or --resume FOLDER".into())),
        _ => Err(Error::Input("give one of CONFIG.toml, --preset NAME and --resume FOLDER (a resumed run reads FOLDER/config.toml)".into())),
    }
}

/// Builds the trainer `name` for `config`, starting from its seeded initial weights; `gpu` is the
/// device of the `gpu` trainer (the `reference` trainer needs none).
pub fn trainer<'g>(name: &str, config: &TrainConfig, gpu: Option<&'g Gpu>) -> Result<Box<dyn Backend + 'g>> {
    let initial = init_weights(&config.model, config.initializer_range, config.seed)?;
    match (name, gpu) {
        ("reference", _) => Ok(Box::new(ReferenceTrainer::new(&config.model, config.optimizer, initial)?)),
        ("gpu", Some(gpu)) => Ok(Box::new(GpuTrainer::new(gpu, &config.model, config.optimizer, &initial, Backprop)?)),
        ("gpu", None) => Err(Error::Input("--backend gpu needs a GPU adapter".into())),
        (other, _) => Err(Error::Input(format!("--backend {other:?} is not a trainer: `gpu` or `reference`"))),
    }
}

/// Runs the subcommand. Exit codes: 0 finished or stopped by Ctrl-C with a checkpoint saved; 2
/// the config was refused, a file could not be written, or the loss stopped being finite.
pub fn main(args: TrainArgs) -> ExitCode {
    match train(&args) {
        Ok(message) => {
            println!("{message}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("train: {}", crate::scalar::cut(&e.to_string(), 2000));
            ExitCode::from(2)
        }
    }
}

fn train(args: &TrainArgs) -> Result<String> {
    let (config, resume) = resolve(args)?;
    let gpu = if args.backend == "gpu" { Some(Gpu::new()?) } else { None };
    let mut backend = trainer(&args.backend, &config, gpu.as_ref())?;
    // The first Ctrl-C asks for a checkpoint and a clean stop; a second one quits at once.
    ctrlc::set_handler(|| {
        if STOP.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
    }).map_err(|e| Error::Input(format!("cannot catch Ctrl-C: {e}")))?;
    let bar = if args.quiet { indicatif::ProgressBar::hidden() } else { indicatif::ProgressBar::new(0) };
    if let Ok(style) = indicatif::ProgressStyle::with_template("{bar:30} step {pos}/{len} {msg} {per_sec} eta {eta}") {
        bar.set_style(style);
    }
    let mut observe = |step: u64, metrics: Option<&Metrics>| {
        bar.set_position(step);
        if let Some(m) = metrics {
            bar.set_message(format!("train loss {:.4} acc {:.3} test acc {:.3}", m.train_loss, m.train_accuracy, m.test_accuracy.unwrap_or(f64::NAN)));
        }
    };
    bar.set_length(super::othello::total_steps(&config)?);
    let outcome = run(&config, backend.as_mut(), resume, Control { stop: &STOP, observe: &mut observe });
    bar.finish_and_clear();
    let out = config.out.display();
    match outcome? {
        Outcome::Finished { steps } => Ok(format!("trained {steps} steps with the {}; wrote {out}", backend.describe())),
        Outcome::Stopped { step } => Ok(format!("stopped at step {step}; checkpoint saved; continue with: shaderlens train --resume {out}")),
    }
}
