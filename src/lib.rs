//! shaderlens: WGSL compute kernels for the insides of transformers, dispatched through wgpu on
//! any adapter, with host references in ndarray and a fixture contract (`docs/SPEC.md`) that
//! checks both. The README follows (its examples are compiled as doc tests).
#![doc = include_str!("../README.md")]

pub mod analysis;
pub mod bench;
pub mod plot;
pub mod probe;
pub mod train;
pub mod error;
pub mod games;
pub mod model;
pub mod gpu;
pub mod ops;
pub mod reference;
pub mod spec;
pub mod timing;
pub mod tune;
pub mod tensor;
pub mod transformer;

pub use error::{Error, Result};
pub use gpu::{Gpu, GpuOptions};
pub use tensor::GpuTensor;
pub mod compare;
pub mod env;
pub mod fixture;
pub mod io;
pub mod scalar;
pub mod verify;
