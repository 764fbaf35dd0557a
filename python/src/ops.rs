//! The ops on the GPU (`shaderlens::ops::<op>::run`, float32) and their float64 host references
//! (`shaderlens::reference::<op>`), numpy in and numpy out. `shaderlens.ops` and
//! `shaderlens.reference` (Python) convert dtypes and fill in defaults before calling these.

use numpy::{IntoPyArray, PyArrayDyn, PyReadonlyArrayDyn};
use pyo3::prelude::*;

use shaderlens::ops::gelu::Gelu;
use shaderlens::{ops, reference};

use crate::{gpu, to_numpy, InputError, IntoPy};

type F32<'py> = PyReadonlyArrayDyn<'py, f32>;
type F64<'py> = PyReadonlyArrayDyn<'py, f64>;
type Out32<'py> = Bound<'py, PyArrayDyn<f32>>;
type Out64<'py> = Bound<'py, PyArrayDyn<f64>>;

/// `"tanh"` (TransformerLens's `gelu_new`) or `"none"` (the exact, erf-based GELU), as PyTorch's
/// `approximate` argument names them.
fn gelu_kind(approximate: &str) -> PyResult<Gelu> {
    match approximate {
        "tanh" => Ok(Gelu::Tanh),
        "none" => Ok(Gelu::Erf),
        other => Err(InputError::new_err(format!("gelu: approximate is {other:?} but must be \"none\" (erf) or \"tanh\""))),
    }
}

/// `a @ b` on the GPU.
#[pyfunction]
fn matmul<'py>(py: Python<'py>, a: F32<'py>, b: F32<'py>) -> PyResult<Out32<'py>> {
    let (gpu, a, b) = (gpu()?, a.as_array(), b.as_array());
    let out = py.detach(|| ops::matmul::run(gpu, a, b)).py_err()?;
    Ok(to_numpy(py, out))
}

/// Softmax over the last axis on the GPU.
#[pyfunction]
fn softmax<'py>(py: Python<'py>, x: F32<'py>) -> PyResult<Out32<'py>> {
    let (gpu, x) = (gpu()?, x.as_array());
    let out = py.detach(|| ops::softmax::run(gpu, x)).py_err()?;
    Ok(to_numpy(py, out))
}

/// Layer norm over the last axis on the GPU, with weights `w` and biases `b` or without.
#[pyfunction]
#[pyo3(signature = (x, w, b, eps))]
fn layer_norm<'py>(py: Python<'py>, x: F32<'py>, w: Option<F32<'py>>, b: Option<F32<'py>>, eps: f32) -> PyResult<Out32<'py>> {
    let gpu = gpu()?;
    let affine = match (&w, &b) {
        (Some(w), Some(b)) => Some((w.as_array(), b.as_array())),
        (None, None) => None,
        _ => return Err(InputError::new_err("layer_norm: give both w and b, or neither")),
    };
    let x = x.as_array();
    let (out, _scale) = py.detach(|| ops::layer_norm::run_full(gpu, x, affine, eps)).py_err()?;
    Ok(to_numpy(py, out))
}

/// GELU on the GPU.
#[pyfunction]
fn gelu<'py>(py: Python<'py>, x: F32<'py>, approximate: &str) -> PyResult<Out32<'py>> {
    let (gpu, kind, x) = (gpu()?, gelu_kind(approximate)?, x.as_array());
    let out = py.detach(|| ops::gelu::run(gpu, kind, x)).py_err()?;
    Ok(to_numpy(py, out))
}

/// Attention `[B, H, S, D]` on the GPU: `(out, pattern)`.
#[pyfunction]
fn attention<'py>(
    py: Python<'py>,
    q: F32<'py>,
    k: F32<'py>,
    v: F32<'py>,
    causal: bool,
    scale: f32,
) -> PyResult<(Out32<'py>, Out32<'py>)> {
    let (gpu, q, k, v) = (gpu()?, q.as_array(), k.as_array(), v.as_array());
    let (out, pattern) = py.detach(|| ops::attention::run(gpu, q, k, v, causal, scale, true)).py_err()?;
    let pattern = pattern.ok_or_else(|| InputError::new_err("attention: no pattern came back"))?;
    Ok((to_numpy(py, out), to_numpy(py, pattern)))
}

/// The float64 reference of [`matmul`].
#[pyfunction]
fn ref_matmul<'py>(py: Python<'py>, a: F64<'py>, b: F64<'py>) -> PyResult<Out64<'py>> {
    Ok(reference::matmul::matmul(a.as_array(), b.as_array()).py_err()?.into_pyarray(py))
}

/// The float64 reference of [`softmax`].
#[pyfunction]
fn ref_softmax<'py>(py: Python<'py>, x: F64<'py>) -> PyResult<Out64<'py>> {
    Ok(reference::softmax::softmax(x.as_array()).py_err()?.into_pyarray(py))
}

/// The float64 reference of [`layer_norm`].
#[pyfunction]
#[pyo3(signature = (x, w, b, eps))]
fn ref_layer_norm<'py>(py: Python<'py>, x: F64<'py>, w: Option<F64<'py>>, b: Option<F64<'py>>, eps: f64) -> PyResult<Out64<'py>> {
    let affine = match (&w, &b) {
        (Some(w), Some(b)) => Some((w.as_array(), b.as_array())),
        (None, None) => None,
        _ => return Err(InputError::new_err("layer_norm: give both w and b, or neither")),
    };
    let (out, _scale) = reference::layer_norm::layer_norm_full(x.as_array(), affine, eps).py_err()?;
    Ok(out.into_pyarray(py))
}

/// The float64 reference of [`gelu`].
#[pyfunction]
fn ref_gelu<'py>(py: Python<'py>, x: F64<'py>, approximate: &str) -> PyResult<Out64<'py>> {
    Ok(reference::gelu::gelu(gelu_kind(approximate)?, x.as_array()).into_pyarray(py))
}

/// The float64 reference of [`attention`]: `(out, pattern)`.
#[pyfunction]
fn ref_attention<'py>(
    py: Python<'py>,
    q: F64<'py>,
    k: F64<'py>,
    v: F64<'py>,
    causal: bool,
    scale: f64,
) -> PyResult<(Out64<'py>, Out64<'py>)> {
    let (out, pattern) = reference::attention::attention(q.as_array(), k.as_array(), v.as_array(), causal, scale).py_err()?;
    Ok((out.into_pyarray(py), pattern.into_pyarray(py)))
}

/// Adds the ops and references to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(matmul, m)?)?;
    m.add_function(wrap_pyfunction!(softmax, m)?)?;
    m.add_function(wrap_pyfunction!(layer_norm, m)?)?;
    m.add_function(wrap_pyfunction!(gelu, m)?)?;
    m.add_function(wrap_pyfunction!(attention, m)?)?;
    m.add_function(wrap_pyfunction!(ref_matmul, m)?)?;
    m.add_function(wrap_pyfunction!(ref_softmax, m)?)?;
    m.add_function(wrap_pyfunction!(ref_layer_norm, m)?)?;
    m.add_function(wrap_pyfunction!(ref_gelu, m)?)?;
    m.add_function(wrap_pyfunction!(ref_attention, m)?)?;
    Ok(())
}
