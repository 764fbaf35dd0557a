//! One error type for the whole crate.
//!
//! Every public function that takes user data returns [`Result`]; messages name the array, its
//! shape and what was expected, so that a user reading a `verify` line or a log knows what to fix.

use thiserror::Error;

/// Everything that can go wrong in shaderlens, as a value rather than a panic.
#[derive(Debug, Error)]
pub enum Error {
    /// No wgpu adapter could be had; the message says how to get one.
    #[error("{0}")]
    NoAdapter(String),

    /// The adapter refused to give us a device.
    #[error("could not open a device on adapter {adapter}: {source}")]
    RequestDevice {
        /// Adapter name.
        adapter: String,
        /// What wgpu said.
        source: wgpu::RequestDeviceError,
    },

    /// Shapes that do not fit the operation (the message names the arrays and shapes).
    #[error("{0}")]
    Shape(String),

    /// An input value that cannot be used (wrong dtype, wrong rank of a scalar, …).
    #[error("{0}")]
    Input(String),

    /// The work is larger than a device limit allows; names the limit.
    #[error("{what} needs {needed} but the device's {limit} is {allowed}")]
    Limit {
        /// What was too large (e.g. "tensor [4096, 4096, 64]").
        what: String,
        /// The wgpu limit's name (e.g. `max_storage_buffer_binding_size`).
        limit: &'static str,
        /// What the work needs.
        needed: u64,
        /// What the device allows.
        allowed: u64,
    },

    /// wgpu reported a validation error, an out-of-memory error, or a lost device.
    #[error("GPU error: {0}")]
    Gpu(String),

    /// A fixture or model file could not be read.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
}

/// `Result` with shaderlens's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Formats a shape the way numpy users read it: `[3, 4]`.
pub fn fmt_shape(shape: &[usize]) -> String {
    format!("{shape:?}")
}

/// The number of elements of `shape`, or a shape error naming `what` when the product overflows
/// `usize` (shapes that users type, or that broadcasting derives, can be any size).
pub fn element_count(shape: &[usize], what: &str) -> Result<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)).ok_or_else(|| {
        Error::Shape(format!("{what} of shape {} has more elements than a usize can count", fmt_shape(shape)))
    })
}
