//! The model a whole-model fixture carries, read one way for every op that has one
//! (`transformer`, `transformer_grad`, `act_patch`, `attribution`): the config in `<case>.json`
//! beside the npz, and the float32 weights under their state-dict names among the fixture's other
//! arrays.

use ndarray::ArrayD;

use crate::error::{fmt_shape, Error, Result};
use crate::fixture::Fixture;
use crate::transformer::{Config, Weights};

/// Reads a fixture's model config (`<case>.json` beside the npz); its absence is an error naming
/// the file and the fixture's op.
pub(crate) fn config_beside(fixture: &Fixture) -> Result<Config> {
    let json = fixture.path.with_extension("json");
    if !json.is_file() {
        return Err(Error::Input(format!(
            "missing model config {}: a {} fixture is <case>.npz with <case>.json beside it",
            json.display(),
            fixture.op
        )));
    }
    Config::from_file(&json)
}

/// The model's float32 weights by state-dict name. The fixture's other arrays (tokens, prompts,
/// expected results) are ignored rather than refused, as [`Weights::from_fixture`] would refuse
/// them as strangers to a model file.
pub(crate) fn weights_among_others(config: &Config, fixture: &Fixture) -> Result<Weights<ArrayD<f32>>> {
    // A config claiming far more layers than the file could hold is refused before any table of
    // names is built for it.
    if config.n_layers > fixture.names().count() / 4 {
        return Err(Error::Input(format!(
            "the config says n_layers {} but the fixture holds only {} arrays: the config and the weights disagree",
            config.n_layers,
            fixture.names().count()
        )));
    }
    Weights::build(config, |name, shape| {
        let a = fixture.input(name)?;
        if a.shape() != shape {
            return Err(Error::Shape(format!("weight {name} is {} but this config needs {}", fmt_shape(a.shape()), fmt_shape(shape))));
        }
        Ok(a)
    })
}
