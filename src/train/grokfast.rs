//! Grokfast (Lee et al. 2024, "Grokfast: Accelerated Grokking by Amplifying Slow Gradients"), the
//! EMA filter: every raw gradient `g` passes through `h ← α·h + (1−α)·g; g ← g + λ·h` before
//! clipping and AdamW, as the paper's `gradfilter_ema` runs between `loss.backward()` and
//! `optimizer.step()`. Like the paper's code, the first filtered update starts the average at the
//! gradient itself (`h = g`). The average `h` is optimizer state: it goes into `state.npz` (`h.*`)
//! so a resumed run continues exactly. This module holds the settings, reads them from the config
//! (`optimizer.grokfast_alpha`, `optimizer.grokfast_lambda`) and is the float64 filter of the
//! reference trainer; the GPU twin is `shaders/grokfast_arena.wgsl` (one dispatch over the
//! gradient arena, [`super::gpu_optimizer::GpuOptimizer`]).

use std::collections::BTreeMap;

use ndarray::ArrayD;
use toml::{Table, Value};

use super::config::{float, lookup};
use crate::error::{Error, Result};

/// The filter's settings: `alpha` the EMA's momentum, `lambda` the amplification.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Grokfast {
    /// The EMA momentum α in \[0, 1) (the paper: 0.98).
    pub alpha: f64,
    /// The amplification λ > 0 of the slow component (the paper: 2.0).
    pub lambda: f64,
}

/// The paper's α.
pub const DEFAULT_ALPHA: f64 = 0.98;
/// The paper's λ.
pub const DEFAULT_LAMBDA: f64 = 2.0;

impl Grokfast {
    /// Reads `optimizer.grokfast_alpha` / `optimizer.grokfast_lambda`: Grokfast is on when either
    /// is given (the other takes the paper's value); `grokfast_lambda = 0` turns it off.
    pub fn from_table(t: &Table) -> Result<Option<Self>> {
        let alpha = lookup(t, "optimizer.grokfast_alpha").map(float);
        let lambda = lookup(t, "optimizer.grokfast_lambda").map(float);
        if alpha.is_none() && lambda.is_none() {
            return Ok(None);
        }
        let this = Self { alpha: alpha.unwrap_or(DEFAULT_ALPHA), lambda: lambda.unwrap_or(DEFAULT_LAMBDA) };
        if !(0.0..1.0).contains(&this.alpha) {
            return Err(Error::Input(format!("config key `optimizer.grokfast_alpha` is {} but must be in [0, 1)", this.alpha)));
        }
        if this.lambda.is_nan() || this.lambda < 0.0 || this.lambda.is_infinite() {
            return Err(Error::Input(format!("config key `optimizer.grokfast_lambda` is {} but must be >= 0", this.lambda)));
        }
        Ok((this.lambda > 0.0).then_some(this))
    }

    /// Writes the settings into the resolved config's `[optimizer]` table.
    pub fn to_table(this: Option<Self>, opt: &mut Table) {
        if let Some(g) = this {
            opt.insert("grokfast_alpha".into(), Value::Float(g.alpha));
            opt.insert("grokfast_lambda".into(), Value::Float(g.lambda));
        }
    }

    /// Filters `grads` in place (float64), updating the average `ema` (`None`: the first
    /// filtered update, which starts the average at the gradient).
    pub fn apply(&self, grads: &mut BTreeMap<String, ArrayD<f64>>, ema: &mut Option<BTreeMap<String, ArrayD<f64>>>) -> Result<()> {
        let h = ema.get_or_insert_with(|| grads.clone());
        for (name, g) in grads.iter_mut() {
            let h = h.get_mut(name).ok_or_else(|| Error::Input(format!("grokfast: no average for {name}")))?;
            if h.shape() != g.shape() {
                return Err(Error::Shape(format!("grokfast: the average of {name} is {:?} but the gradient is {:?}", h.shape(), g.shape())));
            }
            ndarray::Zip::from(&mut *h).and(&mut *g).for_each(|h, g| {
                *h = self.alpha * *h + (1.0 - self.alpha) * *g;
                *g += self.lambda * *h;
            });
        }
        Ok(())
    }
}
