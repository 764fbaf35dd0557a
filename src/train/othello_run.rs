//! The training loop of an Othello run ([`super::othello`]'s data): the same files, schedule,
//! checkpoints, resume and Ctrl-C as [`super::run`], with games instead of a fixed training set.
//!
//! Each evaluation writes a [`Metrics`] line whose `train_loss`/`train_accuracy` are those of the
//! last update's batch (after the update; at step 0 the first batch), `test_*` those of the
//! held-out games, plus `legal_move_rate` (held-out games) and `games_seen`; `epoch` counts passes
//! over a games file (0 for fresh games). `curves.png` draws the losses, the held-out accuracy and
//! the legal-move rate against the games seen.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Instant;

use ndarray::Array2;

use super::checkpoint::{load_state, save, write_text};
use super::config::{Data, TrainConfig};
use super::othello::{batch_size, evaluate_games, total_steps, OthelloSet};
use super::run::{read_metrics, Control, Metrics, Outcome};
use super::Backend;
use crate::error::{Error, Result};
use crate::plot::{write_line_charts, LineChart, Series};

/// A batch's model input and targets.
type Batch = (Array2<i64>, Array2<i64>);

/// Trains `backend` on Othello games as `config` says, from scratch or (`resume`) from the
/// folder's `state.npz`.
pub fn run(config: &TrainConfig, backend: &mut dyn Backend, resume: bool, control: Control<'_>) -> Result<Outcome> {
    let Data::Othello(data) = &config.data else {
        return Err(Error::Input("the othello loop was given modular data".into()));
    };
    let batch = batch_size(config)?;
    let total = total_steps(config)?;
    let out = &config.out;
    std::fs::create_dir_all(out).map_err(|e| Error::File { path: out.display().to_string(), message: format!("cannot create it: {e}") })?;
    let config_path = out.join("config.toml");
    crate::io::write_atomic(&config_path, |w| write_text(&config_path, w, &config.to_toml()))?;
    let (start, history) = if resume {
        let (step, state) = load_state(out, &config.model)?;
        backend.set_state(&state)?;
        (step, read_metrics(&out.join("metrics.jsonl"))?.into_iter().filter(|m| m.step <= step).collect())
    } else {
        (0, Vec::new())
    };
    let set = OthelloSet::open(data, batch, start)?;
    let mut state = Loop { config, set, batch, total, history, clock: (Instant::now(), 0), last_checkpoint: start, last: None };
    if start == 0 {
        state.last = Some(state.set.batch(0)?);
        state.evaluate(backend, 0, control.observe)?;
        state.checkpoint(backend, 0)?;
    }
    let mut pending = state.last.take();
    for step in start..total {
        if control.stop.load(Ordering::SeqCst) {
            state.checkpoint(backend, step)?;
            return Ok(Outcome::Stopped { step });
        }
        let (tokens, targets) = match pending.take() {
            Some(b) => b,
            None => state.set.batch(step)?,
        };
        let lr = config.schedule.lr(config.optimizer.adamw.lr, step, total);
        backend.step(tokens.view(), targets.view(), step + 1, lr)?;
        state.clock.1 += tokens.len() as u64;
        state.last = Some((tokens, targets));
        let done = step + 1;
        (control.observe)(done, None);
        if done % config.eval_every == 0 || done == total {
            state.evaluate(backend, done, control.observe)?;
        }
        if done % config.checkpoint_every == 0 || done == total {
            state.checkpoint(backend, done)?;
        }
    }
    Ok(Outcome::Finished { steps: total })
}

/// The loop's bookkeeping.
struct Loop<'c> {
    config: &'c TrainConfig,
    set: OthelloSet,
    batch: usize,
    total: u64,
    history: Vec<Metrics>,
    /// Since the last evaluation: when, and how many tokens were trained on.
    clock: (Instant, u64),
    /// The step of the newest checkpoint on disk.
    last_checkpoint: u64,
    /// The last update's batch (the training metrics are measured on it).
    last: Option<Batch>,
}

impl Loop<'_> {
    fn evaluate(&mut self, backend: &mut dyn Backend, step: u64, observe: &mut dyn FnMut(u64, Option<&Metrics>)) -> Result<()> {
        let (tokens, targets) = self.last.as_ref().ok_or_else(|| Error::Input("othello evaluation before any batch".into()))?;
        let train = backend.evaluate(tokens.view(), targets.view())?;
        let test = evaluate_games(backend, &self.set.test)?;
        let elapsed = self.clock.0.elapsed().as_secs_f64();
        let games_seen = step * self.batch as u64;
        let metrics = Metrics {
            step,
            epoch: self.set.n_train.map_or(0.0, |n| games_seen as f64 / n as f64),
            train_loss: train.loss,
            train_accuracy: train.accuracy,
            test_loss: Some(test.eval.loss),
            test_accuracy: Some(test.eval.accuracy),
            lr: self.config.schedule.lr(self.config.optimizer.adamw.lr, step.saturating_sub(1), self.total),
            grad_norm: backend.grad_norm()?,
            weight_norm: backend.weight_norm()?,
            tokens_per_s: if elapsed > 0.0 { self.clock.1 as f64 / elapsed } else { 0.0 },
            legal_move_rate: Some(test.legal_move_rate),
            games_seen: Some(games_seen),
            ..Metrics::default()
        };
        self.clock = (Instant::now(), 0);
        if !(metrics.train_loss.is_finite() && test.eval.loss.is_finite()) {
            return Err(Error::Input(format!(
                "the loss is not finite at step {step} (train {}, test {}): training stopped; the last good checkpoint is step {} in {}",
                metrics.train_loss,
                test.eval.loss,
                self.last_checkpoint,
                self.config.out.join("checkpoints").display()
            )));
        }
        self.history.push(metrics.clone());
        let path = self.config.out.join("metrics.jsonl");
        let text: String = self.history.iter().map(|m| serde_json::to_string(m).unwrap_or_default() + "\n").collect();
        crate::io::write_atomic(&path, |w| write_text(&path, w, &text))?;
        write_curves(&self.config.out.join("curves.png"), &self.history)?;
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

/// Draws an Othello run's loss (log scale; last batch and held-out) and its held-out accuracy and
/// legal-move rate against the training games seen.
pub fn write_curves(path: &Path, history: &[Metrics]) -> Result<()> {
    let series = |name: &str, f: &dyn Fn(&Metrics) -> Option<f64>| Series {
        name: name.into(),
        points: history.iter().filter_map(|m| Some((m.games_seen? as f64, f(m)?))).collect(),
    };
    let charts = [
        LineChart {
            title: "loss".into(),
            x_label: "games seen".into(),
            y_label: "cross-entropy (log scale)".into(),
            log_y: true,
            series: vec![series("last batch", &|m| Some(m.train_loss)), series("held-out", &|m| m.test_loss)],
        },
        LineChart {
            title: "held-out games".into(),
            x_label: "games seen".into(),
            y_label: "fraction of positions".into(),
            log_y: false,
            series: vec![series("legal-move rate (top-1)", &|m| m.legal_move_rate), series("accuracy (top-1 = move played)", &|m| m.test_accuracy)],
        },
    ];
    write_line_charts(path, &charts, 640, 420)
}
