//! The model's weights, re-exported from its home in [`crate::model::weights`] (the model description
//! shared with the host reference), so that `crate::transformer::weights::...` paths keep working.

pub use crate::model::weights::*;
