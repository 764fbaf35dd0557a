//! Interventions: change an activation at a hook point before the rest of the forward pass uses
//! it, as a TransformerLens forward hook that returns a modified tensor does. Zero- and
//! mean-style ablation, scaling, and activation patching (taking values from another run's
//! cache) are all one [`Intervention`]: an [`Action`] on the elements of one hook that a
//! selection of batch element, position and head picks.
//!
//! The GPU forward applies them in place right after the hook's tensor is written (so patching
//! `hook_z` changes `hook_attn_out` and everything after it); the float64 host reference
//! ([`crate::reference::transformer`]) applies the same ones with [`apply_host`]. A cached
//! activation is the value after the interventions on its hook, as in TransformerLens when the
//! intervening hook is added before the caching one. Several interventions on one hook apply in
//! the order given.
//!
//! On the attention scores and pattern the causal mask keeps applying: a query never sees a later
//! key, whatever an intervention writes there (TransformerLens would let a rewritten `-inf` score
//! through its softmax).
//!
//! This is the model description, shared by the GPU forward and the host reference, so it names
//! no GPU type: a patch already on the GPU is held as a [`DevicePatch`] trait object, which
//! `crate::transformer` implements for its tensor type and downcasts back when it applies it.

use std::any::Any;
use std::fmt::Debug;
use std::sync::Arc;

use ndarray::ArrayD;

use crate::error::{fmt_shape, Error, Result};
use crate::model::hooks::Hook;

/// Values held by a device (the GPU forward's tensors), seen here only through their shape so that
/// the model description and the host reference need not know the device's tensor type.
pub trait DevicePatch: Debug + Send + Sync {
    /// The tensor's shape, checked against the hook's.
    fn shape(&self) -> &[usize];
    /// The value itself, for the device code that knows its concrete type to downcast.
    fn as_any(&self) -> &dyn Any;
}

/// Values that replace an activation: the full tensor of the hook's shape, of which the selected
/// elements are taken.
#[derive(Clone, Debug)]
pub enum Patch {
    /// A host array (usable by the GPU forward and the host reference).
    Host(ArrayD<f32>),
    /// A tensor already on the GPU, e.g. from another run's GPU cache (GPU forward only; the
    /// GPU forward implements [`DevicePatch`] for its tensor type).
    Gpu(Arc<dyn DevicePatch>),
}

/// What an intervention does to the selected elements.
#[derive(Clone, Debug)]
pub enum Action {
    /// Set them to 0 (zero ablation).
    Zero,
    /// Multiply them by a factor.
    Scale(f32),
    /// Replace them with the same elements of a patch (activation patching, mean ablation).
    Replace(Patch),
}

/// One change to one hook's activation.
#[derive(Clone, Debug)]
pub struct Intervention {
    /// The hook's TransformerLens name, e.g. `blocks.0.attn.hook_z`.
    pub hook: String,
    /// What to do.
    pub action: Action,
    /// Only this batch element (all when `None`).
    pub batch: Option<usize>,
    /// Only this sequence position (the query position for scores and pattern; all when `None`).
    pub pos: Option<usize>,
    /// Only this head (hooks with a head axis: q, k, v, z, scores, pattern; all when `None`).
    pub head: Option<usize>,
}

impl Intervention {
    /// `action` on every element of `hook`.
    pub fn new(hook: impl Into<String>, action: Action) -> Self {
        Self { hook: hook.into(), action, batch: None, pos: None, head: None }
    }

    /// Zero ablation of `hook`.
    pub fn zero(hook: impl Into<String>) -> Self {
        Self::new(hook, Action::Zero)
    }

    /// Scales `hook` by `factor`.
    pub fn scale(hook: impl Into<String>, factor: f32) -> Self {
        Self::new(hook, Action::Scale(factor))
    }

    /// Replaces `hook` with (the selected elements of) `values`, a host array of its shape.
    pub fn replace(hook: impl Into<String>, values: ArrayD<f32>) -> Self {
        Self::new(hook, Action::Replace(Patch::Host(values)))
    }

    /// Replaces `hook` with (the selected elements of) a GPU tensor of its shape
    /// (a `crate::GpuTensor`, or any other [`DevicePatch`]).
    pub fn patch(hook: impl Into<String>, values: impl DevicePatch + 'static) -> Self {
        Self::new(hook, Action::Replace(Patch::Gpu(Arc::new(values))))
    }

    /// Restricts the intervention to one head.
    pub fn at_head(mut self, head: usize) -> Self {
        self.head = Some(head);
        self
    }

    /// Restricts the intervention to one sequence position.
    pub fn at_pos(mut self, pos: usize) -> Self {
        self.pos = Some(pos);
        self
    }

    /// Restricts the intervention to one batch element.
    pub fn at_batch(mut self, batch: usize) -> Self {
        self.batch = Some(batch);
        self
    }

    /// The selected index on every axis of `hook`'s tensor (`None`: the whole axis), after
    /// checking the selection and the patch's shape against the hook.
    pub fn selection(&self, hook: &Hook) -> Result<Vec<Option<usize>>> {
        let mut sel = vec![None; hook.shape.len()];
        let mut pick = |what: &str, axis: Option<usize>, index: Option<usize>| -> Result<()> {
            let Some(index) = index else { return Ok(()) };
            let Some(axis) = axis else {
                return Err(Error::Input(format!("intervention on {}: this hook has no {what} axis", hook.name)));
            };
            if index >= hook.shape[axis] {
                return Err(Error::Input(format!(
                    "intervention on {}: {what} {index} is out of range for {}",
                    hook.name,
                    fmt_shape(&hook.shape)
                )));
            }
            sel[axis] = Some(index);
            Ok(())
        };
        pick("batch", Some(0), self.batch)?;
        pick("position", Some(hook.pos_axis), self.pos)?;
        pick("head", hook.head_axis, self.head)?;
        let patch_shape = match &self.action {
            Action::Replace(Patch::Host(a)) => Some(a.shape().to_vec()),
            Action::Replace(Patch::Gpu(t)) => Some(t.shape().to_vec()),
            _ => None,
        };
        if let Some(shape) = patch_shape.filter(|s| *s != hook.shape) {
            return Err(Error::Shape(format!(
                "intervention on {}: the replacement is {} but the activation is {}",
                hook.name,
                fmt_shape(&shape),
                fmt_shape(&hook.shape)
            )));
        }
        Ok(sel)
    }
}

/// Applies `intervention` to `hook`'s float64 activation `a` (the host reference's way).
pub fn apply_host(intervention: &Intervention, hook: &Hook, a: &mut ArrayD<f64>) -> Result<()> {
    let sel = intervention.selection(hook)?;
    if a.shape() != hook.shape.as_slice() {
        return Err(Error::Shape(format!("{} is {} but should be {}", hook.name, fmt_shape(a.shape()), fmt_shape(&hook.shape))));
    }
    let patch = match &intervention.action {
        Action::Replace(Patch::Host(p)) => Some(p.mapv(f64::from)),
        Action::Replace(Patch::Gpu(_)) => {
            return Err(Error::Input(format!(
                "intervention on {}: the host reference needs a host array, not a GPU tensor (read it back first)",
                hook.name
            )))
        }
        _ => None,
    };
    for (index, value) in a.indexed_iter_mut() {
        let selected = sel.iter().enumerate().all(|(axis, s)| s.is_none_or(|s| index[axis] == s));
        if !selected {
            continue;
        }
        *value = match (&intervention.action, &patch) {
            (Action::Zero, _) => 0.0,
            (Action::Scale(f), _) => *value * f64::from(*f),
            (_, Some(p)) => p[&index],
            (Action::Replace(_), None) => *value,
        };
    }
    Ok(())
}
