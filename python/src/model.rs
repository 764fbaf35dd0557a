//! `_shaderlens.Model`: a `shaderlens::transformer::Model` on the shared GPU, loaded from files or
//! from numpy arrays, run on int64 tokens with a list of hook names to cache and the crate's
//! declarative interventions. The Python class `shaderlens.Model` wraps it (names filters, hooks
//! written in Python, broadcasting).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use ndarray::ArrayD;
use numpy::{PyArrayDyn, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use shaderlens::transformer::weights::{is_not_a_weight, weight_shapes};
use shaderlens::transformer::{self, Action, Config, Intervention, Names, Options, Weights};
use shaderlens::Error;

use crate::{gpu, to_numpy, InputError, IntoPy};

/// One declarative intervention as Python passes it: `(hook, action, factor, values, batch, pos,
/// head)`, where `action` is `"zero"`, `"scale"` (with `factor`) or `"replace"` (with `values`, an
/// array of the hook's shape).
type InterventionSpec<'py> =
    (String, String, Option<f32>, Option<PyReadonlyArrayDyn<'py, f32>>, Option<usize>, Option<usize>, Option<usize>);

/// A model on the GPU (`shaderlens::transformer::Model`).
#[pyclass(module = "shaderlens._shaderlens", frozen)]
pub struct Model {
    inner: transformer::Model,
    /// Seconds of the last `run`'s Rust call, as f64 bits.
    last_run: AtomicU64,
}

/// The activations asked for, as `[(name, array)]` in forward order, after the logits.
type RunOutput<'py> = (Bound<'py, PyArrayDyn<f32>>, Vec<(String, Bound<'py, PyArrayDyn<f32>>)>);

#[pymethods]
impl Model {
    /// Reads a config JSON and a weights npz (SPEC's format) and uploads the weights.
    #[staticmethod]
    fn from_files(py: Python<'_>, config: PathBuf, weights: PathBuf) -> PyResult<Self> {
        let gpu = gpu()?;
        let inner = py.detach(|| transformer::Model::from_files(gpu, &config, &weights)).py_err()?;
        Ok(Self { inner, last_run: AtomicU64::new(0) })
    }

    /// Builds a model from a config JSON text and a dict of float32 arrays under TransformerLens's
    /// state-dict names (buffers such as `attn.mask` may be present and are skipped; any other
    /// name that is not a weight of this config is refused).
    #[staticmethod]
    fn from_arrays(py: Python<'_>, config: &str, weights: &Bound<'_, PyDict>) -> PyResult<Self> {
        let config = Config::from_json(config).py_err()?;
        let shapes = weight_shapes(&config);
        let mut arrays: HashMap<String, ArrayD<f32>> = HashMap::new();
        for (key, value) in weights.iter() {
            let name: String = key
                .extract()
                .map_err(|_| InputError::new_err(format!("weight names must be strings, not {}", key.get_type())))?;
            if is_not_a_weight(&name) {
                continue;
            }
            // TransformerLens stores K/V as `_W_K`, `_W_V`, ... when n_key_value_heads is set (equal
            // to n_heads here; the config refuses fewer).
            let name = transformer::ungrouped_name(&name);
            if !shapes.iter().any(|(n, _)| *n == name) {
                return Err(InputError::new_err(format!(
                    "the weights hold {name:?}, which is not a weight of this config; the config and the weights disagree"
                )));
            }
            let array: PyReadonlyArrayDyn<'_, f32> = value.extract().map_err(|_| {
                InputError::new_err(format!("weight {name} must be a float32 numpy array, not {}", value.get_type()))
            })?;
            arrays.insert(name, array.as_array().to_owned());
        }
        let weights = Weights::build(&config, |name, shape| {
            arrays.remove(name).ok_or_else(|| {
                Error::Input(format!("weight {name} {shape:?} is missing (a model with this config needs it)"))
            })
        })
        .py_err()?;
        let gpu = gpu()?;
        let inner = py.detach(|| transformer::Model::load(gpu, config, &weights)).py_err()?;
        Ok(Self { inner, last_run: AtomicU64::new(0) })
    }

    /// The config as SPEC's JSON.
    fn config_json(&self) -> String {
        self.inner.config().to_json()
    }

    /// Every hook of a run on `[batch, seq]` tokens, in forward order: `(name, shape, pos_axis,
    /// head_axis)`.
    fn hooks(&self, batch: usize, seq: usize) -> Vec<(String, Vec<usize>, usize, Option<usize>)> {
        transformer::hooks(self.inner.config(), batch, seq)
            .into_iter()
            .map(|h| (h.name, h.shape, h.pos_axis, h.head_axis))
            .collect()
    }

    /// One forward pass on int64 tokens `[B, S]`: the logits and the activations of `names`
    /// (`None`: every hook; empty: none), with `interventions` applied on the GPU.
    #[pyo3(signature = (tokens, names=None, interventions=Vec::new()))]
    fn run<'py>(
        &self,
        py: Python<'py>,
        tokens: PyReadonlyArrayDyn<'py, i64>,
        names: Option<Vec<String>>,
        interventions: Vec<InterventionSpec<'py>>,
    ) -> PyResult<RunOutput<'py>> {
        let interventions = interventions.into_iter().map(to_intervention).collect::<PyResult<Vec<_>>>()?;
        let options = Options { names: to_names(names), interventions: &interventions };
        let gpu = gpu()?;
        let tokens = tokens.as_array();
        let start = Instant::now();
        let outputs = py.detach(|| self.inner.run(gpu, tokens, &options)).py_err()?;
        self.last_run.store(start.elapsed().as_secs_f64().to_bits(), Ordering::Relaxed);
        let cache = outputs.cache.into_entries().into_iter().map(|(name, a)| (name, to_numpy(py, a))).collect();
        Ok((to_numpy(py, outputs.logits), cache))
    }

    /// Seconds that the Rust `Model::run` took inside the last `run` (forward and read back, no
    /// Python objects): what the benchmark sets against the whole Python call.
    fn last_run_seconds(&self) -> f64 {
        f64::from_bits(self.last_run.load(Ordering::Relaxed))
    }
}

/// `None`: every hook; an empty list: nothing; else exactly those names.
fn to_names(names: Option<Vec<String>>) -> Names {
    match names {
        None => Names::All,
        Some(list) if list.is_empty() => Names::Nothing,
        Some(list) => Names::only(list),
    }
}

/// The crate's intervention for one Python spec (the patch array is copied once, to be uploaded).
fn to_intervention(spec: InterventionSpec<'_>) -> PyResult<Intervention> {
    let (hook, action, factor, values, batch, pos, head) = spec;
    let action = match (action.as_str(), factor, values) {
        ("zero", _, _) => Action::Zero,
        ("scale", Some(f), _) => Action::Scale(f),
        ("replace", _, Some(v)) => {
            if v.ndim() == 0 {
                return Err(InputError::new_err(format!("intervention on {hook}: the replacement is a scalar")));
            }
            return Ok(Intervention { batch, pos, head, ..Intervention::replace(hook, v.as_array().to_owned()) });
        }
        (other, _, _) => {
            return Err(InputError::new_err(format!(
                "intervention on {hook}: {other:?} needs its argument (zero; scale with a factor; replace with values)"
            )))
        }
    };
    Ok(Intervention { batch, pos, head, ..Intervention::new(hook, action) })
}
