//! `shaderlens analyze <what>`: analyses that write their numbers (npz, under the names of
//! [`super::resid`]) and a picture (PNG). Each analysis is one variant of [`AnalyzeCommand`] and
//! one function; adding one is a variant, its arguments and a line in [`run`].
//!
//! ```text
//! shaderlens analyze lens  --model m.json --weights m.npz --prompts p.npz --out lens.npz --png lens.png
//! shaderlens analyze dla   --model m.json --weights m.npz --prompts p.npz --out dla.npz  --png dla.png
//! shaderlens analyze patch --sweeps sweeps.npz --png sweeps.png
//! ```
//!
//! `p.npz` is `shaderlens patch`'s prompts file (`clean` \[B, S\], `answer`, `wrong` \[B\]; lens
//! and dla read the clean prompts only, `corrupt` may be absent). `--sweeps` is the npz
//! `shaderlens patch` wrote.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use ndarray::{ArrayD, Axis};
use ndarray_npy::NpzWriter;

use super::resid::{self, Stack};
use super::resid_gpu::{logit_attrs_gpu, Readings};
use crate::error::{Error, Result};
use crate::fixture::Fixture;
use crate::gpu::Gpu;
use crate::plot::heatmap::{write_heatmaps, Heatmap};
use crate::plot::{write_line_charts, LineChart, Series};
use crate::transformer::{check_tokens, Model};

/// What `analyze` computes.
#[derive(Clone, Debug, Subcommand)]
pub enum AnalyzeCommand {
    /// Logit lens: the answer token's logit, probability and rank after each layer (the
    /// accumulated residual through ln_final and the unembedding), at the last position.
    Lens(ModelArgs),
    /// Direct logit attribution of every head and every attention/MLP output to the logit
    /// difference answer − wrong at the last position (final norm's scale applied).
    Dla(ModelArgs),
    /// Heat maps of the sweeps `shaderlens patch` wrote: layer × position (tokens on the x axis),
    /// layer × head, and z_by_pos as head × position per layer.
    Patch(PatchPngArgs),
    /// Grokking's progress measures (Nanda et al. 2023) of a checkpoint or of every checkpoint of
    /// a run: embedding norm per frequency, key frequencies, restricted and excluded loss, total
    /// squared weight; JSON and PNGs.
    Progress(super::progress_cli::ProgressArgs),
}

/// A model, prompts, and where the numbers and the picture go.
#[derive(Clone, Debug, Args)]
pub struct ModelArgs {
    /// The model's config JSON (TransformerLens field names).
    #[arg(long)]
    pub model: PathBuf,
    /// The weights npz.
    #[arg(long)]
    pub weights: PathBuf,
    /// An npz with clean (int64 [B, S]), answer and wrong (int64 [B]).
    #[arg(long)]
    pub prompts: PathBuf,
    /// Where to write the numbers (npz).
    #[arg(long)]
    pub out: PathBuf,
    /// Where to draw the picture (PNG).
    #[arg(long)]
    pub png: PathBuf,
}

/// A sweeps npz and the picture of it.
#[derive(Clone, Debug, Args)]
pub struct PatchPngArgs {
    /// The npz `shaderlens patch` wrote.
    #[arg(long)]
    pub sweeps: PathBuf,
    /// Where to draw the heat maps (PNG).
    #[arg(long)]
    pub png: PathBuf,
    /// Draw the fraction of the clean–corrupt difference each patch restores,
    /// `(patched − corrupt) / (clean − corrupt)` (0: no effect, 1: the clean run's metric), instead
    /// of the patched metric itself.
    #[arg(long)]
    pub restored: bool,
}

/// Runs an analysis; returns its summary.
pub fn run(what: &AnalyzeCommand) -> Result<String> {
    match what {
        AnalyzeCommand::Lens(args) => lens(&Gpu::new()?, args),
        AnalyzeCommand::Dla(args) => dla(&Gpu::new()?, args),
        AnalyzeCommand::Patch(args) => super::sweep_png::patch_png(args),
        AnalyzeCommand::Progress(args) => super::progress_cli::progress(args),
    }
}

/// The model, the clean tokens \[B, S\] and each row's answer and wrong token.
type Loaded = (Model, ArrayD<i64>, Vec<usize>, Vec<usize>);

/// [`Loaded`] from the arguments, after the checks.
fn load(gpu: &Gpu, args: &ModelArgs) -> Result<Loaded> {
    let inputs = [("--model", args.model.as_path()), ("--weights", args.weights.as_path()), ("--prompts", args.prompts.as_path())];
    crate::io::check_outputs(&inputs, &[("--out", args.out.as_path()), ("--png", args.png.as_path())])?;
    if args.out == args.png {
        return Err(Error::Input("--out and --png are the same file".into()));
    }
    let model = Model::from_files(gpu, &args.model, &args.weights)?;
    let npz = Fixture::open(&args.prompts)?;
    let file = |e: Error| Error::File { path: args.prompts.display().to_string(), message: e.to_string() };
    let clean = npz.int_array("clean").map_err(file)?;
    let (batch, _) = check_tokens(model.config(), clean.view()).map_err(|e| Error::Input(format!("--prompts clean: {e}")))?;
    let mut rows = Vec::new();
    for key in ["answer", "wrong"] {
        let a = npz.int_array(key).map_err(file)?;
        let vocab = model.config().d_vocab_out;
        if a.shape() != [batch] || a.iter().any(|&t| t < 0 || t as u64 >= vocab as u64) {
            return Err(Error::Input(format!("--prompts {key}: want {batch} tokens (one per row of clean), each in [0, {vocab})")));
        }
        rows.push(a.iter().map(|&t| t as usize).collect());
    }
    let wrong = rows.pop().unwrap_or_default();
    Ok((model, clean, rows.pop().unwrap_or_default(), wrong))
}

/// Writes `arrays` (float64) and `tokens` to an npz at `path`.
fn write_npz(path: &Path, tokens: &ArrayD<i64>, arrays: &[(String, ArrayD<f64>)]) -> Result<()> {
    let write_error = |e: ndarray_npy::WriteNpzError| Error::File { path: path.display().to_string(), message: format!("cannot write: {e}") };
    crate::io::write_atomic(path, |w| {
        let mut npz = NpzWriter::new_compressed(w);
        npz.add_array("tokens", tokens).map_err(write_error)?;
        for (name, a) in arrays {
            npz.add_array(name.as_str(), a).map_err(write_error)?;
        }
        npz.finish().map_err(write_error)?;
        Ok(())
    })
}

/// `analyze lens`.
fn lens(gpu: &Gpu, args: &ModelArgs) -> Result<String> {
    let (model, tokens, answer, _) = load(gpu, args)?;
    let r = Readings::gpu(gpu, &model, &tokens)?;
    let last = tokens.shape()[1] - 1;
    let [logit, prob, rank] = resid::token_by_layer(&r.logit_lens, last, &answer)?;
    let layers = r.accumulated.labels.clone();
    let chart = |title: &str, y: &str, a: &ArrayD<f64>| LineChart {
        title: title.into(),
        x_label: "layer (residual stream before it; last: final)".into(),
        y_label: y.into(),
        log_y: false,
        series: (0..a.shape()[1].min(6)).map(|b| Series { name: format!("prompt {b} (answer {})", answer[b]), points: (0..layers.len()).map(|l| (l as f64, a[[l, b]])).collect() }).collect(),
    };
    let charts = [chart("Logit lens: answer logit", "logit", &logit), chart("answer probability", "probability", &prob), chart("answer rank (0 = top)", "rank", &rank)];
    write_npz(&args.out, &tokens, &[
        ("logit_lens".into(), r.logit_lens.clone()),
        ("accumulated_resid".into(), r.accumulated.values.clone()),
        ("lens.answer_logit".into(), logit),
        ("lens.answer_prob".into(), prob.clone()),
        ("lens.answer_rank".into(), rank),
    ])?;
    write_line_charts(&args.png, &charts, 520, 400)?;
    let final_prob = prob.index_axis(Axis(0), layers.len() - 1).mean().unwrap_or(f64::NAN);
    Ok(format!("wrote {} and {}: logit lens over {} layers ({}), final answer probability {final_prob:.4} (batch mean)", args.out.display(), args.png.display(), layers.len(), layers.join(", ")))
}

/// Batch mean of an attribution \[C, B, S\] at the last position: \[C\].
fn last_mean(attrs: &ArrayD<f64>) -> Vec<f64> {
    let last = attrs.shape()[2] - 1;
    let at = attrs.index_axis(Axis(2), last);
    at.mean_axis(Axis(1)).map(|m| m.iter().copied().collect()).unwrap_or_default()
}

/// `analyze dla`.
fn dla(gpu: &Gpu, args: &ModelArgs) -> Result<String> {
    let (model, tokens, answer, wrong) = load(gpu, args)?;
    let config = model.config().clone();
    let r = Readings::gpu(gpu, &model, &tokens)?;
    let w_u = model.weights().w_u.read(gpu)?.mapv(f64::from);
    let attrs = |stack: &Stack| -> Result<ArrayD<f64>> {
        let normed = resid::apply_ln_to_stack(&config, &r.cache, stack)?;
        logit_attrs_gpu(gpu, &normed, &w_u, &answer, Some(&wrong))
    };
    let (heads, parts) = (attrs(&r.heads)?, attrs(&r.decomposed)?);
    let (head_mean, part_mean) = (last_mean(&heads), last_mean(&parts));
    let (nl, nh) = (config.n_layers, config.n_heads);
    let grid = ArrayD::from_shape_vec(ndarray::IxDyn(&[nl, nh]), head_mean.clone()).map_err(|e| Error::Shape(e.to_string()))?;
    let part = |suffix: &str| (0..nl).map(|l| r.decomposed.labels.iter().position(|x| *x == format!("{l}_{suffix}")).map_or(f64::NAN, |i| part_mean[i])).collect::<Vec<f64>>();
    let (attn, mlp) = (part("attn_out"), part("mlp_out"));
    let layer_rows: Vec<String> = (0..nl).map(|l| l.to_string()).collect();
    let mut maps = vec![Heatmap {
        title: "Direct logit attribution per head".into(),
        x_label: "head".into(),
        y_label: "layer".into(),
        columns: (0..nh).map(|h| h.to_string()).collect(),
        rows: layer_rows.clone(),
        values: (0..nl).map(|l| head_mean[l * nh..(l + 1) * nh].to_vec()).collect(),
        diverging: true,
    }];
    let mut columns = vec!["attn".to_string()];
    if config.mlp().is_some() {
        columns.push("mlp".into());
    }
    maps.push(Heatmap {
        title: "per block output".into(),
        x_label: "component".into(),
        y_label: "layer".into(),
        rows: layer_rows,
        values: (0..nl).map(|l| if config.mlp().is_some() { vec![attn[l], mlp[l]] } else { vec![attn[l]] }).collect(),
        columns,
        diverging: true,
    });
    let vec1 = |v: Vec<f64>| ArrayD::from_shape_vec(ndarray::IxDyn(&[v.len()]), v).map_err(|e| Error::Shape(e.to_string()));
    write_npz(&args.out, &tokens, &[
        ("logit_attrs.heads".into(), heads),
        ("logit_attrs.decompose".into(), parts),
        ("dla.heads".into(), grid),
        ("dla.attn_out".into(), vec1(attn)?),
        ("dla.mlp_out".into(), vec1(mlp)?),
        ("dla.embed".into(), vec1(part_mean[..if config.shortformer { 1 } else { 2 }].to_vec())?),
    ])?;
    write_heatmaps(&args.png, &maps, 520, 420)?;
    let best = head_mean.iter().enumerate().max_by(|a, b| a.1.abs().total_cmp(&b.1.abs())).map(|(i, v)| format!("L{}H{} {v:.4}", i / nh.max(1), i % nh.max(1))).unwrap_or_default();
    Ok(format!("wrote {} and {}: direct logit attribution of {} heads; largest |attribution| {best}", args.out.display(), args.png.display(), nl * nh))
}
