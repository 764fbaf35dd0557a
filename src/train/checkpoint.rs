//! The files of a training run, all written through [`crate::io`] (a temporary name, synced, then
//! renamed), so that a crash or a full disk never leaves a truncated file and the previous
//! checkpoint survives:
//!
//! - `checkpoints/<step>.json` + `checkpoints/<step>.npz`: the model in SPEC's Transformer format
//!   (the config's TransformerLens fields, float32 weights under state-dict names), loadable by
//!   `shaderlens run` and by `HookedTransformer(cfg).load_state_dict`;
//! - `state.npz`: what `--resume` needs, exactly: `step` int64 \[1\] (updates done) and
//!   `param.<name>`, `m.<name>`, `v.<name>` in float64 (a float32 trainer's values are exact in
//!   float64), and with Grokfast on `h.<name>`, the gradient average. The data order is a pure function of the seed and the step, and so is the
//!   learning rate, so nothing else is needed.

use std::path::{Path, PathBuf};

use ndarray::{arr1, ArrayD};
use ndarray_npy::{NpzWriter, WriteNpzError};

use super::State;
use crate::error::{Error, Result};
use crate::fixture::{Fixture, NpyArray};
use crate::io::{stage, Staged};
use crate::model::weights::Weights;
use crate::transformer::Config;

/// The checkpoint files of update `step` in `out`: `(json, npz)`.
pub fn checkpoint_paths(out: &Path, step: u64) -> (PathBuf, PathBuf) {
    let dir = out.join("checkpoints");
    (dir.join(format!("{step}.json")), dir.join(format!("{step}.npz")))
}

/// The config JSON of a checkpoint: the model's TransformerLens fields and how it was
/// initialised (fields that `Config::from_json` reads or knows to ignore).
pub fn checkpoint_json(config: &Config, initializer_range: f64, seed: u64) -> String {
    let mut value: serde_json::Value = serde_json::from_str(&config.to_json()).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        map.insert("init_mode".into(), "gpt2".into());
        map.insert("initializer_range".into(), initializer_range.into());
        map.insert("seed".into(), seed.into());
    }
    serde_json::to_string_pretty(&value).unwrap_or_default()
}

/// Writes the checkpoint of `step` and the resume state together: every file is written and
/// synced first, then all are renamed, the state last (so a state never names a missing
/// checkpoint).
pub fn save(out: &Path, config: &Config, initializer_range: f64, seed: u64, step: u64, state: &State) -> Result<()> {
    let (json_path, npz_path) = checkpoint_paths(out, step);
    let dir = out.join("checkpoints");
    std::fs::create_dir_all(&dir).map_err(|e| Error::File { path: dir.display().to_string(), message: format!("cannot create it: {e}") })?;
    let json = checkpoint_json(config, initializer_range, seed);
    let staged: Vec<Staged> = vec![
        stage(&npz_path, |w| write_npz(&npz_path, w, |npz| write_weights(npz, "", &state.params, true)))?.0,
        stage(&json_path, |w| write_text(&json_path, w, &json))?.0,
        stage(&out.join("state.npz"), |w| {
            write_npz(&out.join("state.npz"), w, |npz| {
                npz.add_array("step", &arr1(&[step as i64]))?;
                write_weights(npz, "param.", &state.params, false)?;
                write_weights(npz, "m.", &state.m, false)?;
                write_weights(npz, "v.", &state.v, false)?;
                match &state.ema {
                    Some(h) => write_weights(npz, "h.", h, false),
                    None => Ok(()),
                }
            })
        })?
        .0,
    ];
    for s in staged {
        s.commit()?;
    }
    Ok(())
}

/// Reads `state.npz` of a run folder: the updates done and the trainer's state.
pub fn load_state(out: &Path, config: &Config) -> Result<(u64, State)> {
    let path = out.join("state.npz");
    let npz = Fixture::open(&path)?;
    let in_file = |e: Error| Error::File { path: path.display().to_string(), message: e.to_string() };
    let step = match npz.get("step").map_err(in_file)? {
        NpyArray::I64(a) if a.len() == 1 && a.iter().all(|&s| s >= 0) => a.iter().next().copied().unwrap_or(0) as u64,
        other => return Err(in_file(Error::Input(format!("`step` is {} but must be int64 [1] >= 0", other.describe())))),
    };
    let read = |prefix: &str| {
        Weights::build(config, |name, shape| match npz.get(&format!("{prefix}{name}")) {
            Ok(NpyArray::F64(a)) if a.shape() == shape => Ok(a.clone()),
            Ok(other) => Err(Error::Input(format!("{prefix}{name} is {} but must be float64 {shape:?}", other.describe()))),
            Err(e) => Err(e),
        })
        .map_err(in_file)
    };
    let ema = if npz.contains("h.embed.W_E") { Some(read("h.")?) } else { None };
    Ok((step, State { params: read("param.")?, m: read("m.")?, v: read("v.")?, ema }))
}

fn write_weights<W: std::io::Write + std::io::Seek>(
    npz: &mut NpzWriter<W>,
    prefix: &str,
    w: &Weights<ArrayD<f64>>,
    as_f32: bool,
) -> std::result::Result<(), WriteNpzError> {
    for (name, a) in w.named() {
        if as_f32 {
            npz.add_array(format!("{prefix}{name}"), &a.mapv(|x| x as f32))?;
        } else {
            npz.add_array(format!("{prefix}{name}"), a)?;
        }
    }
    Ok(())
}

fn write_npz(
    path: &Path,
    w: &mut crate::io::Output,
    fill: impl FnOnce(&mut NpzWriter<&mut crate::io::Output>) -> std::result::Result<(), WriteNpzError>,
) -> Result<()> {
    let err = |e: WriteNpzError| Error::File { path: path.display().to_string(), message: format!("cannot write: {e}") };
    let mut npz = NpzWriter::new(w);
    fill(&mut npz).map_err(err)?;
    npz.finish().map_err(err)?;
    Ok(())
}

/// Writes `text` into a staged file.
pub fn write_text(path: &Path, w: &mut crate::io::Output, text: &str) -> Result<()> {
    use std::io::Write;
    w.write_all(text.as_bytes()).map_err(|e| Error::File { path: path.display().to_string(), message: format!("cannot write: {e}") })
}
