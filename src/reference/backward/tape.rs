//! The backward walk's view of the hooks: record `<hook>_grad` when the names filter asks for it,
//! then carry the gradient back through the interventions the forward applied on that hook.
//!
//! A gradient arriving at a hook is d loss / d(the activation after the hook's interventions),
//! which is what TransformerLens's backward hooks see (PyTorch runs a module's full backward hook
//! on the output its forward hooks returned). Through an intervention, in reverse order: `Zero`
//! and `Replace` cut the selected elements (their values no longer depend on the input), `Scale`
//! multiplies them by its factor.

use ndarray::ArrayD;

use super::same_shape;
use crate::error::Result;
use crate::model::hooks::{find, Cache, Hook, Names};
use crate::model::intervention::{Action, Intervention};

/// Hook-gradient bookkeeping for one backward pass.
pub(crate) struct Tape<'a> {
    /// The run's hooks, with their shapes and axes.
    pub hooks: Vec<Hook>,
    /// Which hooks' gradients to keep.
    pub names: &'a Names,
    /// The interventions the forward applied.
    pub interventions: &'a [Intervention],
    /// `(hook name, gradient)` in backward order.
    pub grads: Vec<(String, ArrayD<f64>)>,
}

impl Tape<'_> {
    /// Takes d loss / d(hook `name`'s output), records it when asked, and returns the gradient
    /// with respect to the value before the hook's interventions.
    pub fn hook(&mut self, name: &str, g: ArrayD<f64>) -> Result<ArrayD<f64>> {
        self.hook_as(name, g, None)
    }

    /// [`Tape::hook`] that records `recorded` instead of `g` when given: for `ln1`, which
    /// TransformerLens calls three times (query, key and value inputs), so that its cached
    /// `_grad` is the gradient through one call only, the query's (its backward hook fires last
    /// and overwrites the other two), while the model's gradient is the sum of all three.
    pub fn hook_as(&mut self, name: &str, g: ArrayD<f64>, recorded: Option<&ArrayD<f64>>) -> Result<ArrayD<f64>> {
        let hook = find(&self.hooks, name)?;
        same_shape(name, g.shape(), &hook.shape)?;
        if self.names.contains(name) {
            self.grads.push((name.to_string(), recorded.unwrap_or(&g).clone()));
        }
        self.through(name, g)
    }

    /// Carries `g` back through hook `name`'s interventions without recording anything.
    pub fn through(&self, name: &str, mut g: ArrayD<f64>) -> Result<ArrayD<f64>> {
        let hook = find(&self.hooks, name)?;
        for intervention in self.interventions.iter().rev().filter(|i| i.hook == name) {
            let sel = intervention.selection(hook)?;
            let factor = match &intervention.action {
                Action::Zero | Action::Replace(_) => 0.0,
                Action::Scale(f) => f64::from(*f),
            };
            for (index, value) in g.indexed_iter_mut() {
                if sel.iter().enumerate().all(|(axis, s)| s.is_none_or(|s| index[axis] == s)) {
                    // An exact 0 for a cut element, even where the gradient is not finite.
                    *value = if factor == 0.0 { 0.0 } else { *value * factor };
                }
            }
        }
        Ok(g)
    }

    /// The recorded gradients as a cache under `<hook>_grad`, in forward order.
    pub fn into_cache(self) -> Cache<ArrayD<f64>> {
        let mut cache = Cache::default();
        for (name, g) in self.grads.into_iter().rev() {
            cache.push(&format!("{name}_grad"), g);
        }
        cache
    }
}
