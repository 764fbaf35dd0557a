//! `shaderlens._shaderlens`: the thin native layer under the Python package (python/shaderlens/).
//!
//! It only converts: numpy arrays in (read in place through rust-numpy's views, no copy), the
//! crate's `Model`, ops and float64 references called as they are, and arrays out (the vectors the
//! GPU read back become numpy arrays without another copy). Every crate error becomes a Python
//! exception carrying the crate's message: bad shapes and values raise `InputError` (a
//! `ValueError`), unreadable files `FileError` (an `OSError`), and adapter or device trouble
//! `GpuError` (a `RuntimeError`). Names filters, hooks written in Python, broadcasting and the
//! TransformerLens adapter live in Python, where they are easy to change.
//!
//! The GPU work runs with the GIL released, so other Python threads keep going during a forward.

mod model;
mod ops;

use std::sync::OnceLock;

use numpy::{IntoPyArray, PyArrayDyn};
use pyo3::create_exception;
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;

use shaderlens::{Error, Gpu};

create_exception!(_shaderlens, InputError, PyValueError, "Bad input: a shape, a value, a name or a size the device cannot hold.");
create_exception!(_shaderlens, FileError, PyOSError, "A model or weights file could not be read.");
create_exception!(_shaderlens, GpuError, PyRuntimeError, "No adapter, or the GPU reported an error.");

/// The crate's error as the Python exception of its kind, with the crate's message.
pub(crate) fn to_py(error: Error) -> PyErr {
    let message = error.to_string();
    match error {
        Error::Shape(_) | Error::Input(_) | Error::Limit { .. } => InputError::new_err(message),
        Error::File { .. } => FileError::new_err(message),
        _ => GpuError::new_err(message),
    }
}

/// `Result` of the crate, converted.
pub(crate) trait IntoPy<T> {
    /// The value, or the Python exception for the crate's error.
    fn py_err(self) -> PyResult<T>;
}

impl<T> IntoPy<T> for shaderlens::Result<T> {
    fn py_err(self) -> PyResult<T> {
        self.map_err(to_py)
    }
}

/// The process's one GPU, opened on first use with the adapter wgpu's environment variables pick
/// (`WGPU_BACKEND`, `WGPU_ADAPTER_NAME`, `WGPU_POWER_PREF`), like the CLI's.
static GPU: OnceLock<Gpu> = OnceLock::new();

/// The shared GPU, opening it if no call has yet (an adapter that cannot be had raises, and the
/// next call tries again).
pub(crate) fn gpu() -> PyResult<&'static Gpu> {
    if let Some(gpu) = GPU.get() {
        return Ok(gpu);
    }
    let opened = Gpu::new().py_err()?;
    // Two threads may race here; the loser's device is dropped and both use the winner's.
    let _ = GPU.set(opened);
    GPU.get().ok_or_else(|| GpuError::new_err("the GPU could not be stored"))
}

/// A float32 array read back from the GPU, handed to numpy without copying its data.
pub(crate) fn to_numpy<'py>(py: Python<'py>, array: ndarray::ArrayD<f32>) -> Bound<'py, PyArrayDyn<f32>> {
    array.into_pyarray(py)
}

/// The adapter in use, as the CLI prints it (opens the GPU).
#[pyfunction]
fn adapter() -> PyResult<String> {
    Ok(gpu()?.description().to_string())
}

#[pymodule]
fn _shaderlens(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("InputError", py.get_type::<InputError>())?;
    m.add("FileError", py.get_type::<FileError>())?;
    m.add("GpuError", py.get_type::<GpuError>())?;
    m.add_function(wrap_pyfunction!(adapter, m)?)?;
    m.add_class::<model::Model>()?;
    ops::register(m)?;
    Ok(())
}
