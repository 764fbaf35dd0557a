//! Float64 backward references: the gradient of every op of the forward pass, the whole model's
//! loss and gradients, AdamW and a float64 training loop.
//!
//! Each file holds the backward of one forward op beside (or next to a pointer at) the forward it
//! differentiates, so that a GPU backward kernel has one float64 twin to be checked against:
//! [`loss`] (cross-entropy over the positions with a target), [`linear`] (matmul, `x W + b`,
//! column sums), [`softmax`] (plain and causal), [`layer_norm`] (LN and LNPre, with the
//! `hook_scale` path), [`activation`] (GELU in both forms, ReLU), [`attention`] (the pattern
//! path), [`embedding`] (deterministic scatter-adds) and [`model`] (the whole
//! `HookedTransformer`, with TransformerLens's `<hook>_grad` cache). [`gradcheck`] checks any of
//! them against central finite differences of the float64 forward; [`adamw`] and [`train`] are
//! SPEC's `adamw` and `train` ops.
//!
//! The conventions are the forward references': float64 views in, owned float64 arrays out, and
//! an error value (never a panic) for shapes or values a user could pass.

pub mod activation;
pub mod adamw;
pub mod attention;
pub mod embedding;
pub mod fixtures;
pub mod gradcheck;
pub mod layer_norm;
pub mod linear;
pub mod loss;
pub mod model;
pub mod softmax;
mod tape;
pub mod train;

use crate::error::{fmt_shape, Error, Result};

/// The error for an ndarray reshape or rank conversion (shapes are checked before, so this is a
/// defect, reported as a value).
pub(crate) fn shape_err(e: ndarray::ShapeError) -> Error {
    Error::Shape(e.to_string())
}

/// `a` in C order with shape `shape`, whatever its memory layout (ndarray's `dot` may return
/// column-major products, which `into_shape_with_order` cannot reshape in place).
pub(crate) fn reshaped<D: ndarray::Dimension>(a: &ndarray::Array<f64, D>, shape: &[usize]) -> Result<ndarray::ArrayD<f64>> {
    a.as_standard_layout().into_owned().into_shape_with_order(ndarray::IxDyn(shape)).map_err(shape_err)
}

/// Errors unless `got` has the same shape as `want`; `what` names the pair in the message.
pub(crate) fn same_shape(what: &str, got: &[usize], want: &[usize]) -> Result<()> {
    if got == want {
        return Ok(());
    }
    Err(Error::Shape(format!("{what}: the gradient is {} but the activation is {}", fmt_shape(got), fmt_shape(want))))
}
