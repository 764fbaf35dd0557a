//! `shaderlens patch`: activation-patching sweeps of a model on prompt pairs, batched on the GPU.
//!
//! ```text
//! shaderlens patch --model m.json --weights m.npz --prompts prompts.npz --out sweeps.npz \
//!     [--sweep resid_pre --sweep z_all_pos | --sweep all] [--one-per-patch] [--attribution]
//! ```
//!
//! `prompts.npz` holds `clean` and `corrupt` int64 \[B, S\] and `answer`, `wrong` int64 \[B\] (an
//! `act_patch` fixture is one). The output npz holds those four, `clean_metric` and
//! `corrupt_metric` (0-d float64: the unpatched runs' metric, the two ends of every sweep's
//! scale) and `patch.<sweep>` (float64, SPEC's shapes). Without `--sweep` the sweeps are SPEC's:
//! `resid_pre`, `attn_out`, `mlp_out` (models with an MLP) and `z_all_pos`. With
//! `--attribution` it also holds `attr.<hook>` for every default hook (SPEC's `attribution`, on
//! the GPU), so that the gradient estimate can be set beside the exact sweeps it approximates.

use std::path::PathBuf;
use std::time::Instant;

use ndarray::{arr0, ArrayD, Dimension};
use ndarray_npy::NpzWriter;

use super::attribution_gpu::attribution_gpu;
use super::patch_gpu::{act_patch, Batching};
use super::{metric, Prompts, Sweep};
use crate::error::{Error, Result};
use crate::fixture::Fixture;
use crate::gpu::Gpu;
use crate::transformer::{Config, Model, Names, Options};

/// The `patch` command's arguments.
#[derive(Clone, Debug)]
pub struct PatchArgs {
    /// The config JSON.
    pub model: PathBuf,
    /// The weights npz.
    pub weights: PathBuf,
    /// The prompt pairs npz (`clean`, `corrupt`, `answer`, `wrong`).
    pub prompts: PathBuf,
    /// Where to write the sweeps.
    pub out: PathBuf,
    /// Sweep keys (`all` for every sweep); empty: SPEC's four.
    pub sweeps: Vec<String>,
    /// One forward pass per patch instead of batched chunks (for comparison).
    pub one_per_patch: bool,
    /// Also write the attribution-patching estimate of every default hook (`attr.<hook>`).
    pub attribution: bool,
}

/// The sweeps `--sweep` asks for, checked against the model.
pub fn chosen_sweeps(config: &Config, keys: &[String]) -> Result<Vec<Sweep>> {
    let spec = [Sweep::ResidPre, Sweep::AttnOut, Sweep::MlpOut, Sweep::ZAllPos];
    if keys.is_empty() {
        return Ok(spec.into_iter().filter(|s| s.available(config)).collect());
    }
    if keys.iter().any(|k| k == "all") {
        return Ok(Sweep::ALL.into_iter().filter(|s| s.available(config)).collect());
    }
    let mut out = Vec::new();
    for key in keys {
        let sweep = Sweep::from_key(key).map_err(|e| Error::Input(format!("--sweep: {e}")))?;
        if !sweep.available(config) {
            return Err(Error::Input(format!("--sweep {key}: the model is attention-only, so it has no MLP to patch")));
        }
        if !out.contains(&sweep) {
            out.push(sweep);
        }
    }
    Ok(out)
}

/// Reads the prompt pairs from an npz.
pub fn read_prompts(path: &std::path::Path) -> Result<Prompts> {
    let npz = Fixture::open(path)?;
    let file = |e: Error| Error::File { path: path.display().to_string(), message: e.to_string() };
    let [clean, corrupt, answer, wrong] = ["clean", "corrupt", "answer", "wrong"].map(|k| npz.int_array(k).map_err(file));
    Ok(Prompts { clean: clean?, corrupt: corrupt?, answer: answer?, wrong: wrong? })
}

/// Runs the command; returns a summary (one line per sweep).
pub fn run(gpu: &Gpu, args: &PatchArgs) -> Result<String> {
    let inputs = [("--model", args.model.as_path()), ("--weights", args.weights.as_path()), ("--prompts", args.prompts.as_path())];
    crate::io::check_outputs(&inputs, &[("--out", args.out.as_path())])?;
    let model = Model::from_files(gpu, &args.model, &args.weights)?;
    let prompts = read_prompts(&args.prompts)?;
    prompts.check(model.config())?;
    let sweeps = chosen_sweeps(model.config(), &args.sweeps)?;
    let pairs = prompts.pairs();
    let metric_of = |tokens: &ArrayD<i64>| -> Result<f64> {
        let logits = model.run(gpu, tokens.view(), &Options::default())?.logits;
        metric::mean_logit_diff(logits.view(), &pairs)
    };
    let (clean, corrupt) = (metric_of(&prompts.clean)?, metric_of(&prompts.corrupt)?);
    let batching = if args.one_per_patch { Batching::one_per_patch() } else { Batching::default() };
    let start = Instant::now();
    let results = act_patch(gpu, &model, &prompts, &sweeps, &batching)?;
    let seconds = start.elapsed().as_secs_f64();
    let attr = if args.attribution { Some(attribution_gpu(gpu, &model, &prompts, &Names::All)?) } else { None };
    let write_error = |e: ndarray_npy::WriteNpzError| Error::File { path: args.out.display().to_string(), message: format!("cannot write: {e}") };
    crate::io::write_atomic(&args.out, |w| {
        let mut npz = NpzWriter::new_compressed(w);
        for (name, a) in [("clean", &prompts.clean), ("corrupt", &prompts.corrupt), ("answer", &prompts.answer), ("wrong", &prompts.wrong)] {
            npz.add_array(name, a).map_err(write_error)?;
        }
        npz.add_array("clean_metric", &arr0(clean)).map_err(write_error)?;
        npz.add_array("corrupt_metric", &arr0(corrupt)).map_err(write_error)?;
        for (sweep, a) in sweeps.iter().zip(&results) {
            npz.add_array(format!("patch.{}", sweep.key()), a).map_err(write_error)?;
        }
        for (name, a) in attr.iter().flat_map(|c| c.iter()) {
            npz.add_array(format!("attr.{name}"), a).map_err(write_error)?;
        }
        npz.finish().map_err(write_error)?;
        Ok(())
    })?;
    let mut summary = format!(
        "wrote {}: {} sweeps in {seconds:.3} s; metric (logit difference, batch mean) clean {clean:.4}, corrupt {corrupt:.4}",
        args.out.display(),
        sweeps.len()
    );
    if let Some(c) = &attr {
        summary.push_str(&format!("\n  attr.* for {} hooks", c.iter().count()));
    }
    for (sweep, a) in sweeps.iter().zip(&results) {
        summary.push_str(&format!("\n  patch.{:<16} {:?} {}", sweep.key(), a.shape(), strongest(a)));
    }
    Ok(summary)
}

/// Where a sweep's value is largest (the patch that restores the clean answer most).
fn strongest(a: &ArrayD<f64>) -> String {
    match a.indexed_iter().filter(|(_, v)| !v.is_nan()).max_by(|x, y| x.1.total_cmp(y.1)) {
        Some((i, v)) => format!("max {v:.4} at {:?}", i.slice()),
        None => "empty".into(),
    }
}
