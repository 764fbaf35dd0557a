//! The training loop: data, schedule, evaluation, metrics, curves, checkpoints, resume, Ctrl-C.
//!
//! A run writes into its output folder `config.toml` (the resolved config), `metrics.jsonl` (one
//! [`Metrics`] line per evaluation), `curves.png` (redrawn at every evaluation), and at every
//! checkpoint `checkpoints/<step>.{json,npz}` and `state.npz` ([`super::checkpoint`]). Update `i`
//! (0-based) trains on batch `i mod steps_per_epoch` of epoch `i / steps_per_epoch`
//! ([`ModularData::epoch_batches`], a function of the data seed and the epoch) with the rate
//! [`super::schedule::Schedule::lr`] gives for `i`: so a run resumed from the state of update k
//! does exactly what the uninterrupted run did after k.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use super::checkpoint::{load_state, save, write_text};
use super::config::{Batch, Data, TrainConfig};
use super::Backend;
use crate::error::{Error, Result};
use crate::games::modular::ModularData;
use crate::plot::{write_line_charts, LineChart, Series};

/// One line of `metrics.jsonl`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Updates done.
    pub step: u64,
    /// Passes over the training set done (fractional for mini-batches).
    pub epoch: f64,
    /// Loss on the whole training set.
    pub train_loss: f64,
    /// Accuracy on the whole training set.
    pub train_accuracy: f64,
    /// Loss on the test set (null when the split leaves no test example).
    pub test_loss: Option<f64>,
    /// Accuracy on the test set.
    pub test_accuracy: Option<f64>,
    /// The learning rate of the last update (of update 0 at step 0).
    pub lr: f64,
    /// The last update's global gradient norm, before clipping.
    pub grad_norm: f64,
    /// The parameters' global L2 norm.
    pub weight_norm: f64,
    /// Training tokens per second since the previous evaluation.
    pub tokens_per_s: f64,
    /// Othello: the held-out games' legal-move rate ([`super::othello::legal_move_counts`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legal_move_rate: Option<f64>,
    /// Othello: the training games seen (updates × batch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub games_seen: Option<u64>,
    /// Grokking's progress measures (modular addition, `progress_key_frequencies` > 0; see
    /// [`crate::analysis::progress`]): the key frequencies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_frequencies: Option<Vec<usize>>,
    /// Loss over every pair with the logits restricted to the key frequencies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restricted_loss: Option<f64>,
    /// Loss over the training pairs with the key frequencies removed from the logits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excluded_loss: Option<f64>,
    /// The sum of squares of every parameter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_squared_weight: Option<f64>,
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every update was done.
    Finished { steps: u64 },
    /// The stop flag was raised: a checkpoint of `step` was saved.
    Stopped { step: u64 },
}

/// What the caller observes and controls while a run goes.
pub struct Control<'a> {
    /// Raised (by Ctrl-C) to save a checkpoint and stop before the next update.
    pub stop: &'a AtomicBool,
    /// Called after each update with the number of updates done, and after each evaluation with
    /// its metrics (a progress bar; a test that raises `stop`).
    pub observe: &'a mut dyn FnMut(u64, Option<&Metrics>),
}

/// Trains `backend` as `config` says, from scratch or (`resume`) from the folder's `state.npz`.
pub fn run(config: &TrainConfig, backend: &mut dyn Backend, resume: bool, control: Control<'_>) -> Result<Outcome> {
    let Data::Modular { p, op, train_fraction, seed } = config.data else {
        return super::othello_run::run(config, backend, resume, control);
    };
    let data = ModularData::new(p, op, train_fraction, seed)?;
    let n_train = data.train_tokens.nrows();
    let total = config.total_steps(n_train);
    let per_epoch = config.steps_per_epoch(n_train);
    let out = &config.out;
    std::fs::create_dir_all(out).map_err(|e| Error::File { path: out.display().to_string(), message: format!("cannot create it: {e}") })?;
    let config_path = out.join("config.toml");
    crate::io::write_atomic(&config_path, |w| write_text(&config_path, w, &config.to_toml()))?;
    let mut history = Vec::new();
    let start = if resume {
        let (step, state) = load_state(out, &config.model)?;
        backend.set_state(&state)?;
        history = read_metrics(&out.join("metrics.jsonl"))?.into_iter().filter(|m| m.step <= step).collect();
        step
    } else {
        0
    };
    let mut loop_state = Loop { config, data, total, per_epoch, history, batches: None, clock: (Instant::now(), 0), last_checkpoint: start };
    if start == 0 {
        loop_state.evaluate(backend, 0, control.observe)?;
        loop_state.checkpoint(backend, 0)?;
    }
    for step in start..total {
        if control.stop.load(Ordering::SeqCst) {
            loop_state.checkpoint(backend, step)?;
            return Ok(Outcome::Stopped { step });
        }
        let (tokens, targets) = loop_state.batch(step)?;
        let lr = config.schedule.lr(config.optimizer.adamw.lr, step, total);
        backend.step(tokens.view(), targets.view(), step + 1, lr)?;
        loop_state.clock.1 += tokens.len() as u64;
        let done = step + 1;
        (control.observe)(done, None);
        if done % config.eval_every == 0 || done == total {
            loop_state.evaluate(backend, done, control.observe)?;
        }
        if done % config.checkpoint_every == 0 || done == total {
            loop_state.checkpoint(backend, done)?;
        }
    }
    Ok(Outcome::Finished { steps: total })
}

/// An epoch's mini-batches, `(tokens, targets)`.
type Batches = Vec<(Array2<i64>, Array2<i64>)>;

/// The loop's bookkeeping.
struct Loop<'c> {
    config: &'c TrainConfig,
    data: ModularData,
    total: u64,
    per_epoch: u64,
    history: Vec<Metrics>,
    /// The current epoch's mini-batches.
    batches: Option<(u64, Batches)>,
    /// Since the last evaluation: when, and how many tokens were trained on.
    clock: (Instant, u64),
    /// The step of the newest checkpoint on disk.
    last_checkpoint: u64,
}

impl Loop<'_> {
    fn batch(&mut self, step: u64) -> Result<(Array2<i64>, Array2<i64>)> {
        let size = match self.config.batch {
            Batch::Full => return Ok((self.data.train_tokens.clone(), self.data.train_targets.clone())),
            Batch::Size(size) => size,
        };
        let epoch = step / self.per_epoch;
        if self.batches.as_ref().is_none_or(|(e, _)| *e != epoch) {
            let Data::Modular { seed, .. } = self.config.data else {
                return Err(Error::Input("modular batches of non-modular data".into()));
            };
            self.batches = Some((epoch, self.data.epoch_batches(size, seed, epoch)?));
        }
        let (_, batches) = self.batches.as_ref().ok_or_else(|| Error::Input("no batches".into()))?;
        batches.get((step % self.per_epoch) as usize).cloned().ok_or_else(|| Error::Input(format!("no batch for update {step}")))
    }

    fn evaluate(&mut self, backend: &mut dyn Backend, step: u64, observe: &mut dyn FnMut(u64, Option<&Metrics>)) -> Result<()> {
        let train = backend.evaluate(self.data.train_tokens.view(), self.data.train_targets.view())?;
        let test = if self.data.test_tokens.nrows() > 0 {
            Some(backend.evaluate(self.data.test_tokens.view(), self.data.test_targets.view())?)
        } else {
            None
        };
        let elapsed = self.clock.0.elapsed().as_secs_f64();
        let metrics = Metrics {
            step,
            epoch: step as f64 / self.per_epoch as f64,
            train_loss: train.loss,
            train_accuracy: train.accuracy,
            test_loss: test.map(|t| t.loss),
            test_accuracy: test.map(|t| t.accuracy),
            lr: self.config.schedule.lr(self.config.optimizer.adamw.lr, step.saturating_sub(1), self.total),
            grad_norm: backend.grad_norm()?,
            weight_norm: backend.weight_norm()?,
            tokens_per_s: if elapsed > 0.0 { self.clock.1 as f64 / elapsed } else { 0.0 },
            legal_move_rate: None,
            games_seen: None,
            key_frequencies: None,
            restricted_loss: None,
            excluded_loss: None,
            total_squared_weight: None,
        };
        let metrics = crate::analysis::progress_train::add_measures(self.config, &self.data, backend, metrics)?;
        self.clock = (Instant::now(), 0);
        if !(metrics.train_loss.is_finite() && metrics.test_loss.is_none_or(f64::is_finite)) {
            return Err(Error::Input(format!(
                "the loss is not finite at step {step} (train {}, test {:?}): training stopped; the last good checkpoint is step {} in {}",
                metrics.train_loss,
                metrics.test_loss,
                self.last_checkpoint,
                self.config.out.join("checkpoints").display()
            )));
        }
        self.history.push(metrics.clone());
        let path = self.config.out.join("metrics.jsonl");
        let text: String = self.history.iter().map(|m| serde_json::to_string(m).unwrap_or_default() + "\n").collect();
        crate::io::write_atomic(&path, |w| write_text(&path, w, &text))?;
        write_curves(&self.config.out.join("curves.png"), &self.history)?;
        crate::analysis::progress_train::write_progress_png(&self.config.out.join("progress.png"), &self.history)?;
        observe(step, Some(&metrics));
        Ok(())
    }

    fn checkpoint(&mut self, backend: &mut dyn Backend, step: u64) -> Result<()> {
        let state = backend.state()?;
        save(&self.config.out, &self.config.model, self.config.initializer_range, self.config.seed, step, &state)?;
        self.last_checkpoint = step;
        Ok(())
    }
}

/// Reads `metrics.jsonl` (absent: no lines).
pub fn read_metrics(path: &Path) -> Result<Vec<Metrics>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = crate::io::read_to_string(path)?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| Error::File { path: path.display().to_string(), message: format!("line {}: {e}", i + 1) })
        })
        .collect()
}

/// Draws the loss (log scale) and accuracy curves, train and test, against the step.
pub fn write_curves(path: &Path, history: &[Metrics]) -> Result<()> {
    let series = |name: &str, f: &dyn Fn(&Metrics) -> Option<f64>| Series {
        name: name.into(),
        points: history.iter().filter_map(|m| f(m).map(|y| (m.step as f64, y))).collect(),
    };
    let charts = [
        LineChart {
            title: "loss".into(),
            x_label: "step".into(),
            y_label: "cross-entropy (log scale)".into(),
            log_y: true,
            series: vec![series("train", &|m| Some(m.train_loss)), series("test", &|m| m.test_loss)],
        },
        LineChart {
            title: "accuracy".into(),
            x_label: "step".into(),
            y_label: "accuracy".into(),
            log_y: false,
            series: vec![series("train", &|m| Some(m.train_accuracy)), series("test", &|m| m.test_accuracy)],
        },
    ];
    write_line_charts(path, &charts, 640, 420)
}
