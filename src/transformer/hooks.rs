//! The model's hooks, re-exported from its home in [`crate::model::hooks`] (the model description
//! shared with the host reference), so that `crate::transformer::hooks::...` paths keep working.

pub use crate::model::hooks::*;
