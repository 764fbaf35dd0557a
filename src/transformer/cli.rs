//! The `run` command: run a model on tokens from an npy file, write the logits and chosen cache
//! entries to an npz, and optionally draw the attention patterns of the first sequence as a PNG.
//!
//! ```text
//! shaderlens run --model m.json --weights m.npz --tokens tokens.npy --out out.npz \
//!     [--cache NAME ...] [--cache all] [--pattern-png patterns.png]
//! ```
//!
//! The npz holds `tokens` (int64), `logits` (float32 \[B, S, d_vocab_out\]) and `cache.<hook>`
//! (float32) for each hook asked for, under TransformerLens's names. The PNG is a grid of one cell
//! per layer (rows) and head (columns), each cell the S×S pattern (query down, key across) in a
//! viridis-like colour map from 0 (dark blue) to 1 (yellow), magnified to at least 64 pixels,
//! with 1-pixel white gaps between cells.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};

use ndarray::{ArrayD, Axis, Ix4};
use ndarray_npy::NpzWriter;

use crate::error::{Error, Result};
use crate::fixture::NpyArray;
use crate::gpu::Gpu;
use crate::transformer::{Model, Names, Options};

/// The `run` command's arguments.
#[derive(Clone, Debug)]
pub struct RunArgs {
    /// The config JSON.
    pub model: PathBuf,
    /// The weights npz.
    pub weights: PathBuf,
    /// Tokens \[B, S\], int64 or int32 npy.
    pub tokens: PathBuf,
    /// Where to write the npz.
    pub out: PathBuf,
    /// Hook names to cache; `all` for every hook.
    pub cache: Vec<String>,
    /// Where to draw the attention patterns of batch element 0.
    pub pattern_png: Option<PathBuf>,
}

/// Runs the command; returns a one-line summary of what was written.
pub fn run(gpu: &Gpu, args: &RunArgs) -> Result<String> {
    let model = Model::from_files(gpu, &args.model, &args.weights)?;
    let tokens = read_tokens(&args.tokens)?;
    let config = model.config();
    let names = if args.cache.iter().any(|n| n == "all") {
        Names::All
    } else {
        let names = Names::only(&args.cache);
        names.check(config)?;
        names
    };
    let pattern_names: Vec<String> = (0..config.n_layers).map(|l| format!("blocks.{l}.attn.hook_pattern")).collect();
    // The run also caches the patterns the picture needs; only the asked-for names are written.
    let run_names = match (&names, &args.pattern_png) {
        (Names::Only(set), Some(_)) => Names::only(set.iter().chain(&pattern_names)),
        _ => names.clone(),
    };
    let outputs = model.run(gpu, tokens.view(), &Options { names: run_names, interventions: &[] })?;

    let file_error = |path: &Path, e: String| Error::File { path: path.display().to_string(), message: e };
    let file = File::create(&args.out).map_err(|e| file_error(&args.out, format!("cannot create: {e}")))?;
    let mut npz = NpzWriter::new_compressed(BufWriter::new(file));
    let write_error = |e: ndarray_npy::WriteNpzError| file_error(&args.out, format!("cannot write: {e}"));
    npz.add_array("tokens", &tokens).map_err(write_error)?;
    npz.add_array("logits", &outputs.logits).map_err(write_error)?;
    let mut written = 0;
    for (name, array) in outputs.cache.iter().filter(|(name, _)| names.contains(name)) {
        npz.add_array(format!("cache.{name}"), array).map_err(write_error)?;
        written += 1;
    }
    npz.finish().map_err(write_error)?;
    let mut summary = format!("wrote {} (logits {:?} and {written} cache entries)", args.out.display(), outputs.logits.shape());
    if let Some(png) = &args.pattern_png {
        let patterns: Vec<&ArrayD<f32>> =
            pattern_names.iter().map(|n| outputs.cache.get(n).ok_or_else(|| Error::Gpu(format!("{n} was not cached")))).collect::<Result<_>>()?;
        let (width, height) = write_patterns_png(png, &patterns)?;
        summary.push_str(&format!("; drew {} ({width}x{height} pixels)", png.display()));
    }
    Ok(summary)
}

/// Reads tokens \[B, S\] from an int64 or int32 npy file.
pub fn read_tokens(path: &Path) -> Result<ArrayD<i64>> {
    let file_error = |message: String| Error::File { path: path.display().to_string(), message };
    let file = File::open(path).map_err(|e| file_error(format!("cannot open: {e}")))?;
    // The fixture reader's npy parser: it checks the header against the bytes before allocating.
    let array = crate::fixture::read_npy(&mut BufReader::new(file))
        .map_err(|e| file_error(format!("not a readable npy file: {e}")))?;
    match array {
        NpyArray::I64(a) => Ok(a),
        NpyArray::I32(a) => Ok(a.mapv(i64::from)),
        other => Err(file_error(format!("tokens are {} but must be int64 or int32", other.describe()))),
    }
}

/// The pixel size of one pattern cell for S positions: S magnified to at least 64 pixels.
pub fn cell_size(seq: usize) -> usize {
    seq * (64 / seq.max(1)).max(1)
}

/// Draws the patterns of batch element 0 (one \[B, H, S, S\] array per layer) as a layers × heads
/// grid and writes it as a PNG; returns its width and height.
pub fn write_patterns_png(path: &Path, patterns: &[&ArrayD<f32>]) -> Result<(u32, u32)> {
    let first = patterns.first().ok_or_else(|| Error::Input("the model has no layers, so no attention patterns to draw".into()))?;
    let &[_, heads, seq, _] = first.shape() else {
        return Err(Error::Shape(format!("a pattern is {:?} but must be [B, H, S, S]", first.shape())));
    };
    let cell = cell_size(seq);
    let zoom = cell / seq;
    let to_u32 = |n: usize| u32::try_from(n).map_err(|_| Error::Input("the pattern picture is too large".into()));
    let width = to_u32(heads * cell + heads - 1)?;
    let height = to_u32(patterns.len() * cell + patterns.len() - 1)?;
    let mut image = image::RgbImage::from_pixel(width, height, image::Rgb([255, 255, 255]));
    for (layer, pattern) in patterns.iter().enumerate() {
        let pattern = pattern.view().into_dimensionality::<Ix4>().map_err(|e| Error::Shape(e.to_string()))?;
        let first_sequence = pattern.index_axis(Axis(0), 0);
        for (head, p) in first_sequence.outer_iter().enumerate() {
            let (x0, y0) = (head * (cell + 1), layer * (cell + 1));
            for ((i, j), &value) in p.indexed_iter() {
                let colour = image::Rgb(colour_map(value));
                for dy in 0..zoom {
                    for dx in 0..zoom {
                        image.put_pixel((x0 + j * zoom + dx) as u32, (y0 + i * zoom + dy) as u32, colour);
                    }
                }
            }
        }
    }
    image.save_with_format(path, image::ImageFormat::Png).map_err(|e| Error::File {
        path: path.display().to_string(),
        message: format!("cannot write the PNG: {e}"),
    })?;
    Ok((width, height))
}

/// A viridis-like colour for a value in \[0, 1\] (clamped): dark blue, teal, green, yellow.
pub fn colour_map(value: f32) -> [u8; 3] {
    const STOPS: [[f32; 3]; 5] =
        [[68.0, 1.0, 84.0], [59.0, 82.0, 139.0], [33.0, 145.0, 140.0], [94.0, 201.0, 98.0], [253.0, 231.0, 37.0]];
    let v = if value.is_nan() { 0.0 } else { value.clamp(0.0, 1.0) } * (STOPS.len() - 1) as f32;
    let i = (v.floor() as usize).min(STOPS.len() - 2);
    let t = v - i as f32;
    let mix = |c: usize| (STOPS[i][c] + (STOPS[i + 1][c] - STOPS[i][c]) * t).round() as u8;
    [mix(0), mix(1), mix(2)]
}
