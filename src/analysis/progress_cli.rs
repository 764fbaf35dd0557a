//! `shaderlens analyze progress PATH`: grokking's progress measures ([`super::progress`]) of a
//! modular-addition model trained by `shaderlens train`, on the host in float64.
//!
//! PATH is a checkpoint (`RUN/checkpoints/<step>.json`, its weights the `.npz` beside it): the
//! measures go to `progress-<step>.json` and the embedding's Fourier spectrum to
//! `spectrum-<step>.png`. PATH may also be a run folder: every checkpoint that has a
//! `metrics.jsonl` line is measured, in step order, into `progress.jsonl` (the metrics lines with
//! the progress fields), `progress.png` (the measures over training) and `spectrum.png` (the
//! last checkpoint's spectrum). The training split comes from the run's `config.toml`
//! (`--config` to name another); files go to `--out` (default `RUN/progress`).

use std::path::{Path, PathBuf};

use ndarray::ArrayD;

use super::progress::{measure, pairs_of, Progress};
use super::progress_train::{write_progress_png, write_spectrum_png};
use crate::error::{Error, Result};
use crate::fixture::Fixture;
use crate::games::modular::{ModularData, Op};
use crate::train::checkpoint::write_text;
use crate::train::config::{Data, TrainConfig};
use crate::train::run::{read_metrics, Metrics};
use crate::model::weights::Weights;
use crate::transformer::Config;

/// The arguments of `shaderlens analyze progress`.
#[derive(clap::Args, Debug, Clone)]
pub struct ProgressArgs {
    /// A checkpoint (`RUN/checkpoints/<step>.json`) or a run folder.
    pub path: PathBuf,
    /// The run's config.toml (default: the run folder's).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// How many key frequencies (default: the run's `progress_key_frequencies`, at most (p−1)/2).
    #[arg(long)]
    pub keys: Option<usize>,
    /// Output folder (default: RUN/progress).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `shaderlens analyze progress`: measures a checkpoint or every checkpoint of a run; the summary
/// to print.
pub fn progress(args: &ProgressArgs) -> Result<String> {
    let run = if args.path.is_dir() { args.path.clone() } else { args.path.parent().and_then(Path::parent).map(Path::to_path_buf).unwrap_or_default() };
    let config_path = args.config.clone().unwrap_or_else(|| run.join("config.toml"));
    if !config_path.is_file() {
        return Err(Error::Input(format!("analyze progress: no run config at {} (give --config RUN/config.toml)", config_path.display())));
    }
    let config = TrainConfig::from_file(&config_path, &[])?;
    let Data::Modular { p, op, train_fraction, seed } = config.data else {
        return Err(Error::Input(format!(
            "analyze progress: {} trains on Othello; the progress measures are defined for modular addition",
            config_path.display()
        )));
    };
    if op != Op::Add {
        return Err(Error::Input(format!("analyze progress: the run's op is {op:?}; the progress measures are defined for modular addition")));
    }
    let data = ModularData::new(p, op, train_fraction, seed)?;
    let keys = args.keys.unwrap_or(config.progress_key_frequencies.max(1) as usize).min((p as usize - 1) / 2);
    let out = args.out.clone().unwrap_or_else(|| run.join("progress"));
    std::fs::create_dir_all(&out).map_err(|e| Error::File { path: out.display().to_string(), message: format!("cannot create it: {e}") })?;
    let train = pairs_of(data.train_tokens.view());
    if !args.path.is_dir() {
        let (step, m) = (stem(&args.path), measure_checkpoint(&args.path, p as usize, &train, keys)?);
        let json_path = out.join(format!("progress-{step}.json"));
        let text = serde_json::to_string_pretty(&m).map_err(|e| Error::Input(format!("analyze progress: {e}")))?;
        crate::io::write_atomic(&json_path, |w| write_text(&json_path, w, &(text + "\n")))?;
        write_spectrum_png(&out.join(format!("spectrum-{step}.png")), &m, &format!("embedding Fourier spectrum, step {step}"))?;
        return Ok(summary(&step, &m, &out));
    }
    let metrics = read_metrics(&run.join("metrics.jsonl"))?;
    let mut rows: Vec<Metrics> = Vec::new();
    let mut last: Option<(String, Progress)> = None;
    for (step, json) in checkpoints(&run.join("checkpoints"))? {
        let Some(line) = metrics.iter().find(|m| m.step == step) else { continue };
        let m = measure_checkpoint(&json, p as usize, &train, keys)?;
        rows.push(Metrics {
            key_frequencies: Some(m.key_frequencies.clone()),
            restricted_loss: Some(m.restricted_loss),
            excluded_loss: Some(m.excluded_loss),
            total_squared_weight: Some(m.total_squared_weight),
            ..line.clone()
        });
        last = Some((step.to_string(), m));
    }
    let (step, m) = last.ok_or_else(|| Error::Input(format!("analyze progress: no checkpoint in {} has a metrics.jsonl line", run.display())))?;
    let path = out.join("progress.jsonl");
    let text: String = rows.iter().map(|m| serde_json::to_string(m).unwrap_or_default() + "\n").collect();
    crate::io::write_atomic(&path, |w| write_text(&path, w, &text))?;
    write_progress_png(&out.join("progress.png"), &rows)?;
    write_spectrum_png(&out.join("spectrum.png"), &m, &format!("embedding Fourier spectrum, step {step}"))?;
    Ok(format!("{} checkpoints measured\n{}", rows.len(), summary(&step, &m, &out)))
}

/// The run's checkpoints `(step, json path)`, in step order.
fn checkpoints(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::File { path: dir.display().to_string(), message: format!("cannot list it: {e}") })?;
    let mut found: Vec<(u64, PathBuf)> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter_map(|p| stem(&p).parse::<u64>().ok().map(|s| (s, p)))
        .collect();
    found.sort();
    Ok(found)
}

fn stem(path: &Path) -> String {
    path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Loads a checkpoint (`.json` + `.npz`) and measures it.
fn measure_checkpoint(json: &Path, p: usize, train: &[(usize, usize)], keys: usize) -> Result<Progress> {
    let config = Config::from_file(json)?;
    let npz_path = json.with_extension("npz");
    let npz = Fixture::open(&npz_path)?;
    let weights = Weights::from_fixture(&config, &npz).map_err(|e| Error::File { path: npz_path.display().to_string(), message: e.to_string() })?;
    let weights = weights.try_map(&config, |_, a: &ArrayD<f32>| Ok(a.mapv(f64::from)))?;
    measure(&config, &weights, p, train, keys).map_err(|e| Error::File { path: json.display().to_string(), message: e.to_string() })
}

fn summary(step: &str, m: &Progress, out: &Path) -> String {
    format!(
        "step {step}: key frequencies {:?} (embedding), {} (neuron-logit map W_out·W_U), restricted loss {:.4e}, excluded loss {:.4e}, total squared weight {:.2}\nwritten to {}",
        m.key_frequencies,
        m.neuron_logit_key_frequencies.as_ref().map_or("none: no MLP".to_string(), |k| format!("{k:?}")),
        m.restricted_loss,
        m.excluded_loss,
        m.total_squared_weight,
        out.display()
    )
}
