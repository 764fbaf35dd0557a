//! The description of a TransformerLens `HookedTransformer`: its [`config`], its [`hooks`] (names,
//! shapes, axes), the [`intervention`]s that change an activation, and its [`weights`] under
//! state-dict names.
//!
//! Both forward passes read it: the GPU model ([`crate::transformer`], which re-exports these
//! modules under its own path) and the float64 host reference ([`crate::reference`]). It therefore
//! imports nothing from the GPU side (`gpu`, `ops`, `tensor`, `transformer`) nor the fixture
//! reader; `tests/import_graph.rs` checks that.

pub mod config;
pub mod hooks;
pub mod intervention;
pub mod weights;
