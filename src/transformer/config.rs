//! The model's config, re-exported from its home in [`crate::model::config`] (the model description
//! shared with the host reference), so that `crate::transformer::config::...` paths keep working.

pub use crate::model::config::*;
