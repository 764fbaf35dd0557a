//! `adamw`'s hyper-parameters as `torch.optim.AdamW` takes them, their checks, the constants of
//! update `t` (folded as PyTorch folds them), and the shape rule: shared by the GPU kernel, the
//! trainer and the float64 reference.

use crate::error::{fmt_shape, Error, Result};

/// AdamW's hyper-parameters for one update.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamW {
    /// Learning rate.
    pub lr: f64,
    /// β1, the first moment's decay.
    pub beta1: f64,
    /// β2, the second moment's decay.
    pub beta2: f64,
    /// ε, added to the denominator.
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
}

impl AdamW {
    /// Refuses what PyTorch refuses: negative or non-finite lr, eps or weight decay, a β outside `[0, 1)`.
    pub fn check(&self) -> Result<()> {
        for (name, value) in [("lr", self.lr), ("eps", self.eps), ("weight_decay", self.weight_decay)] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(Error::Input(format!("adamw {name} is {value} but must be a finite number >= 0")));
            }
        }
        for (name, value) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&value) {
                return Err(Error::Input(format!("adamw {name} is {value} but must lie in [0, 1)")));
            }
        }
        Ok(())
    }
}

impl AdamW {
    /// The constants of update number `step` (t ≥ 1), after checking the hyper-parameters.
    pub fn step_scalars(&self, step: i64) -> Result<StepScalars> {
        self.check()?;
        if step < 1 {
            return Err(Error::Input(format!("adamw step is {step} but updates count from t = 1")));
        }
        let t = step as f64;
        Ok(StepScalars {
            decay: 1.0 - self.lr * self.weight_decay,
            step_size: self.lr / (1.0 - self.beta1.powf(t)),
            bias2_sqrt: (1.0 - self.beta2.powf(t)).sqrt(),
        })
    }
}

/// The constants of update number `t`, folded in float64 as PyTorch folds them in Python floats:
/// the GPU kernel and the reference both apply them in the same order.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepScalars {
    /// `1 − lr·weight_decay`: the decoupled decay's factor.
    pub decay: f64,
    /// `lr / (1 − β1^t)`.
    pub step_size: f64,
    /// `sqrt(1 − β2^t)`.
    pub bias2_sqrt: f64,
}

/// SPEC's shape rule for `adamw`: `grad`, `m` and `v` have `param`'s shape. Shared by the
/// reference and the GPU op.
pub fn check_shapes(param: &[usize], grad: &[usize], m: &[usize], v: &[usize]) -> Result<()> {
    for (name, shape) in [("grad", grad), ("m", m), ("v", v)] {
        if shape != param {
            return Err(Error::Shape(format!(
                "adamw {name} is {} but param is {}: all four must have one shape",
                fmt_shape(shape),
                fmt_shape(param)
            )));
        }
    }
    Ok(())
}
