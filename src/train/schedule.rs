//! Learning-rate schedules: a pure function of the update's index, so that a resumed run
//! continues exactly where it stopped.
//!
//! Update `i` (0-based; AdamW's t is `i + 1`) uses `lr · f(i)`:
//! - `constant`: `f = 1`;
//! - `warmup`: `f = min(i / warmup_steps, 1)` — `LambdaLR(lambda step: min(step / 10, 1))` of
//!   Nanda et al.'s grokking code, whose first update has rate 0;
//! - `cosine`: the same warm-up, then `final_lr + (lr − final_lr) · (1 + cos(π q)) / 2` with
//!   `q = (i − warmup_steps) / (total − warmup_steps)`, reaching `final_lr` at the last update.

use toml::{Table, Value};

use super::config::{float, int, lookup};
use crate::error::{Error, Result};

/// A learning-rate schedule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Schedule {
    /// The base rate throughout.
    Constant,
    /// Linear warm-up from 0 over `warmup_steps`, then the base rate.
    Warmup { warmup_steps: u64 },
    /// Linear warm-up, then cosine decay to `final_lr` at the run's last update.
    Cosine { warmup_steps: u64, final_lr: f64 },
}

impl Schedule {
    /// Reads `[schedule]` (`kind`, `warmup_steps`, `final_lr`); absent: constant.
    pub fn from_table(t: &Table) -> Result<Self> {
        let warmup_steps = lookup(t, "schedule.warmup_steps").map(int).unwrap_or(0);
        let final_lr = lookup(t, "schedule.final_lr").map(float).unwrap_or(0.0);
        if final_lr < 0.0 {
            return Err(Error::Input(format!("config key `schedule.final_lr` is {final_lr} but must be >= 0")));
        }
        match lookup(t, "schedule.kind").and_then(Value::as_str).unwrap_or("constant") {
            "constant" => Ok(Schedule::Constant),
            "warmup" if warmup_steps == 0 => {
                Err(Error::Input("config key `schedule.warmup_steps` is 0 but a warmup schedule needs at least 1".into()))
            }
            "warmup" => Ok(Schedule::Warmup { warmup_steps }),
            "cosine" => Ok(Schedule::Cosine { warmup_steps, final_lr }),
            other => Err(Error::Input(format!(
                "config key `schedule.kind` is {other:?} but must be \"constant\", \"warmup\" or \"cosine\""
            ))),
        }
    }

    /// The `[schedule]` table that [`Schedule::from_table`] reads back.
    pub fn to_table(&self) -> Table {
        let mut t = Table::new();
        let (kind, warmup, floor) = match *self {
            Schedule::Constant => ("constant", 0, None),
            Schedule::Warmup { warmup_steps } => ("warmup", warmup_steps, None),
            Schedule::Cosine { warmup_steps, final_lr } => ("cosine", warmup_steps, Some(final_lr)),
        };
        t.insert("kind".into(), Value::String(kind.into()));
        t.insert("warmup_steps".into(), Value::Integer(warmup as i64));
        if let Some(f) = floor {
            t.insert("final_lr".into(), Value::Float(f));
        }
        t
    }

    /// The learning rate of update `step` (0-based) of `total`, for base rate `lr`.
    pub fn lr(&self, lr: f64, step: u64, total: u64) -> f64 {
        let warm = |w: u64| if w == 0 { 1.0 } else { (step as f64 / w as f64).min(1.0) };
        match *self {
            Schedule::Constant => lr,
            Schedule::Warmup { warmup_steps } => lr * warm(warmup_steps),
            Schedule::Cosine { warmup_steps, final_lr } => {
                if step < warmup_steps {
                    return lr * warm(warmup_steps);
                }
                let span = total.saturating_sub(warmup_steps).saturating_sub(1).max(1);
                let q = ((step - warmup_steps) as f64 / span as f64).min(1.0);
                final_lr + (lr - final_lr) * 0.5 * (1.0 + (std::f64::consts::PI * q).cos())
            }
        }
    }
}
