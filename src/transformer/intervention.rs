//! Interventions, re-exported from their home in [`crate::model::intervention`] (the model
//! description shared with the host reference), and the GPU side of a patch: [`GpuTensor`] is a
//! [`DevicePatch`], and [`gpu_patch`] gets it back when the GPU forward applies the patch.

use std::any::Any;

pub use crate::model::intervention::*;

use crate::error::{Error, Result};
use crate::tensor::GpuTensor;

impl DevicePatch for GpuTensor {
    fn shape(&self) -> &[usize] {
        GpuTensor::shape(self)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The GPU tensor behind a [`Patch::Gpu`] on `hook`, or an error naming the hook when the patch
/// holds some other device's values.
pub(crate) fn gpu_patch<'a>(patch: &'a dyn DevicePatch, hook: &str) -> Result<&'a GpuTensor> {
    patch.as_any().downcast_ref::<GpuTensor>().ok_or_else(|| {
        Error::Input(format!("intervention on {hook}: the patch is not a shaderlens GPU tensor ({patch:?})"))
    })
}
