//! Reading a model from files: the config JSON and the weights npz (SPEC's format). The only part
//! of the model that reads files, so that the model's config, weights, hooks and interventions
//! never depend on the fixture reader.

use std::path::Path;

use ndarray::ArrayD;

use crate::error::{fmt_shape, Error, Result};
use crate::fixture::{Fixture, NpyArray};
use crate::transformer::config::Config;
use crate::gpu::Gpu;
use crate::transformer::weights::{is_not_a_weight, weight_shapes, Weights};
use crate::transformer::Model;

impl Weights<ArrayD<f32>> {
    /// Reads the weights of `config` from an npz (a fixture or a user's export): float32 arrays
    /// under TransformerLens's state-dict names. Refuses a missing, mis-shaped or non-float32
    /// weight and any array that is not a weight of this config, naming it.
    pub fn from_fixture(config: &Config, npz: &Fixture) -> Result<Self> {
        // Before any per-layer table is built: a config claiming 10^7 layers against a file
        // that holds a few arrays is refused at once, not after gigabytes of names.
        let last = config.n_layers.checked_sub(1).map(|l| format!("blocks.{l}.attn.W_Q"));
        if config.n_layers > npz.names().count() / 8 || last.is_some_and(|w| !npz.contains(&w)) {
            return Err(Error::Input(format!(
                "the config says n_layers {} but the weights hold {} arrays{}: the config and the weights disagree",
                config.n_layers,
                npz.names().count(),
                config.n_layers.checked_sub(1).map(|l| format!(" and no blocks.{l}.attn.W_Q")).unwrap_or_default()
            )));
        }
        let shapes = weight_shapes(config);
        for key in npz.names() {
            if !is_not_a_weight(key) && !shapes.iter().any(|(n, _)| *n == ungrouped_name(key)) {
                return Err(Error::Input(format!(
                    "the weights hold {key:?}, which is not a weight of this config ({}); the config and the weights \
                     disagree",
                    describe(config)
                )));
            }
        }
        Self::build(config, |name, shape| {
            let alias = grouped_name(name);
            let array = match npz.get(name).or_else(|e| alias.as_ref().map_or(Err(e), |g| npz.get(g))) {
                Ok(NpyArray::F32(a)) => a.as_standard_layout().into_owned(),
                Ok(other) => return Err(Error::Input(format!("weight {name} is {} but weights must be float32", other.dtype()))),
                Err(e) if npz.contains(name) || alias.as_ref().is_some_and(|g| npz.contains(g)) => return Err(Error::Input(format!("weight {name}: {e}"))),
                Err(_) => {
                    return Err(Error::Input(format!(
                        "weight {name} {} is missing (a model with this config needs it)",
                        fmt_shape(shape)
                    )))
                }
            };
            if array.shape() != shape {
                return Err(Error::Shape(format!(
                    "weight {name} is {} but this config needs {}",
                    fmt_shape(array.shape()),
                    fmt_shape(shape)
                )));
            }
            Ok(array)
        })
    }
}

/// TransformerLens's name for key/value weight `name` in a grouped-query attention layer
/// (`blocks.0.attn.W_K` -> `blocks.0.attn._W_K`), which a config with `n_key_value_heads` equal
/// to `n_heads` stores (same shapes, same numbers).
fn grouped_name(name: &str) -> Option<String> {
    let (prefix, leaf) = name.rsplit_once('.')?;
    matches!(leaf, "W_K" | "W_V" | "b_K" | "b_V").then(|| format!("{prefix}._{leaf}"))
}

/// The plain state-dict name of a weight that may be under its grouped-query name
/// ([`grouped_name`]): `blocks.0.attn._W_K` -> `blocks.0.attn.W_K`; other names are returned as
/// they are. Every reader of TransformerLens state dicts goes through it.
pub fn ungrouped_name(key: &str) -> String {
    match key.rsplit_once('.') {
        Some((prefix, leaf @ ("_W_K" | "_W_V" | "_b_K" | "_b_V"))) => format!("{prefix}.{}", &leaf[1..]),
        _ => key.to_string(),
    }
}

/// A short description of a config for error messages.
fn describe(config: &Config) -> String {
    format!(
        "n_layers {}, normalization_type {}, attn_only {}",
        config.n_layers,
        match config.normalization {
            crate::transformer::config::Normalization::Ln => "LN",
            crate::transformer::config::Normalization::LnPre => "LNPre",
            crate::transformer::config::Normalization::Rms => "RMS",
            crate::transformer::config::Normalization::RmsPre => "RMSPre",
            crate::transformer::config::Normalization::None => "null",
        },
        config.attn_only
    )
}

impl Model {
    /// Reads a config JSON and a weights npz (SPEC's format) and uploads the weights.
    pub fn from_files(gpu: &Gpu, config: &Path, weights: &Path) -> Result<Self> {
        let config = Config::from_file(config)?;
        let npz = Fixture::open(weights)?;
        let weights = Weights::from_fixture(&config, &npz)
            .map_err(|e| Error::File { path: weights.display().to_string(), message: e.to_string() })?;
        Self::load(gpu, config, &weights)
    }
}
