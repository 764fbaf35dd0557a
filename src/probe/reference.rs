//! The float64 twin of a probe's update ([`super::gpu::GpuProbe::step`]): logits `x W + b`, the
//! mean cross-entropy over every (row, square) ([`crate::reference::backward::loss`]), `dW = xᵀ
//! dlogits`, `db = Σ_rows dlogits`, then AdamW ([`crate::reference::backward::adamw`]). The GPU
//! probe is checked against it by `tests/probe.rs`.

use ndarray::{Array1, Array2, ArrayView2, Axis, Ix2};

use super::{Weights, CLASSES, OUTPUTS, SQUARES};
use crate::error::{Error, Result};
use crate::reference::backward::adamw::{adamw, AdamW};
use crate::reference::backward::loss::cross_entropy;

/// A probe and its AdamW moments on the host.
#[derive(Clone, Debug)]
pub struct HostProbe {
    /// The weights.
    pub weights: Weights,
    m: Weights,
    v: Weights,
    steps: i64,
}

impl HostProbe {
    /// A probe starting from `weights` with zero moments.
    pub fn new(weights: Weights) -> Self {
        let zero = Weights { w: Array2::zeros(weights.w.raw_dim()), b: Array1::zeros(OUTPUTS) };
        Self { weights, m: zero.clone(), v: zero, steps: 0 }
    }

    /// One full-batch update on `x` \[rows, d\] and `targets` \[rows, 64\] (classes 0..3); returns
    /// the mean loss before the update.
    pub fn step(&mut self, x: ArrayView2<'_, f64>, targets: ArrayView2<'_, i64>, hp: &AdamW) -> Result<f64> {
        let rows = check(x, targets, self.weights.w.nrows())?;
        let logits = x.dot(&self.weights.w) + &self.weights.b;
        let logits = logits.into_shape_with_order((rows, SQUARES, CLASSES)).map_err(|e| Error::Shape(e.to_string()))?;
        let ce = cross_entropy(logits.view().into_dyn(), targets.into_dyn())?;
        let dlogits = ce.grad.into_shape_with_order(vec![rows, OUTPUTS]).map_err(|e| Error::Shape(e.to_string()))?;
        let dlogits = dlogits.into_dimensionality::<Ix2>().map_err(|e| Error::Shape(e.to_string()))?;
        let dw = x.t().dot(&dlogits);
        let db = dlogits.sum_axis(Axis(0));
        self.steps += 1;
        let w = adamw(self.weights.w.view().into_dyn(), dw.view().into_dyn(), self.m.w.view().into_dyn(), self.v.w.view().into_dyn(), self.steps, hp)?;
        let b = adamw(self.weights.b.view().into_dyn(), db.view().into_dyn(), self.m.b.view().into_dyn(), self.v.b.view().into_dyn(), self.steps, hp)?;
        let two = |a: ndarray::ArrayD<f64>| a.into_dimensionality::<Ix2>().map_err(|e| Error::Shape(e.to_string()));
        let one = |a: ndarray::ArrayD<f64>| a.into_dimensionality::<ndarray::Ix1>().map_err(|e| Error::Shape(e.to_string()));
        self.weights = Weights { w: two(w.param)?, b: one(b.param)? };
        self.m = Weights { w: two(w.m)?, b: one(b.m)? };
        self.v = Weights { w: two(w.v)?, b: one(b.v)? };
        Ok(ce.loss)
    }
}

/// Checks `x` \[rows, d\] against `targets` \[rows, 64\] (classes 0..3); returns `rows`.
pub fn check<A>(x: ArrayView2<'_, A>, targets: ArrayView2<'_, i64>, d: usize) -> Result<usize> {
    let rows = x.nrows();
    if x.ncols() != d || targets.dim() != (rows, SQUARES) {
        return Err(Error::Shape(format!(
            "probe data: activations {:?} and targets {:?}; expected [rows, {d}] and [rows, {SQUARES}]",
            x.shape(),
            targets.shape()
        )));
    }
    if rows == 0 {
        return Err(Error::Input("probe data: no position to train on".into()));
    }
    if let Some(bad) = targets.iter().find(|&&c| !(0..CLASSES as i64).contains(&c)) {
        return Err(Error::Input(format!("probe data: target class {bad}; classes are 0 (empty), 1 (mine), 2 (theirs)")));
    }
    Ok(rows)
}
