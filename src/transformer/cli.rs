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

use std::io::BufReader;
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
///
/// Everything that can be checked is checked before anything is written: the outputs' folders,
/// that no output is an input or the other output, the model, the tokens, the cache names and
/// whether there are patterns to draw. Both files are then written to temporary names and synced
/// ([`crate::io::stage`]) and only then renamed into place, so an error leaves every existing file
/// as it was.
pub fn run(gpu: &Gpu, args: &RunArgs) -> Result<String> {
    let mut outputs = vec![("--out", args.out.as_path())];
    if let Some(png) = &args.pattern_png {
        outputs.push(("--pattern-png", png.as_path()));
    }
    let inputs = [("--model", args.model.as_path()), ("--weights", args.weights.as_path()), ("--tokens", args.tokens.as_path())];
    crate::io::check_outputs(&inputs, &outputs)?;
    let model = Model::from_files(gpu, &args.model, &args.weights)?;
    let tokens = read_tokens(&args.tokens)?;
    let config = model.config();
    let names = cache_names(config, &args.cache)?;
    if args.pattern_png.is_some() && config.n_layers == 0 {
        return Err(Error::Input("--pattern-png: the model has no layers, so no attention patterns to draw".into()));
    }
    let pattern_names: Vec<String> = (0..config.n_layers).map(|l| format!("blocks.{l}.attn.hook_pattern")).collect();
    // The run also caches the patterns the picture needs; only the asked-for names are written.
    let run_names = match (&names, &args.pattern_png) {
        (Names::Only(set), Some(_)) => Names::only(set.iter().chain(&pattern_names)),
        _ => names.clone(),
    };
    let outputs = model.run(gpu, tokens.view(), &Options { names: run_names, interventions: &[] })?;
    let picture = match &args.pattern_png {
        Some(png) => {
            let patterns: Vec<&ArrayD<f32>> = pattern_names
                .iter()
                .map(|n| outputs.cache.get(n).ok_or_else(|| Error::Gpu(format!("{n} was not cached"))))
                .collect::<Result<_>>()?;
            Some((png, draw_labelled_patterns(&patterns)?))
        }
        None => None,
    };

    let write_error = |e: ndarray_npy::WriteNpzError| Error::File { path: args.out.display().to_string(), message: format!("cannot write: {e}") };
    let (npz_file, written) = crate::io::stage(&args.out, |w| {
        let mut npz = NpzWriter::new_compressed(w);
        npz.add_array("tokens", &tokens).map_err(write_error)?;
        npz.add_array("logits", &outputs.logits).map_err(write_error)?;
        let mut written = 0;
        for (name, array) in outputs.cache.iter().filter(|(name, _)| names.contains(name)) {
            npz.add_array(format!("cache.{name}"), array).map_err(write_error)?;
            written += 1;
        }
        npz.finish().map_err(write_error)?;
        Ok(written)
    })?;
    let png_file = match &picture {
        Some((png, image)) => Some(crate::io::stage(png, |w| encode_png(png, image, w))?.0),
        None => None,
    };
    npz_file.commit()?;
    let mut summary = format!("wrote {} (logits {:?} and {written} cache entries)", args.out.display(), outputs.logits.shape());
    if let (Some(file), Some((png, image))) = (png_file, &picture) {
        file.commit()?;
        summary.push_str(&format!("; drew {} ({}x{} pixels)", png.display(), image.width(), image.height()));
    }
    Ok(summary)
}

/// The cache filter `--cache` asks for: every hook with `all`, else the names given. Every name
/// other than `all` must be a hook of the model, even next to `all` (a typo is refused by name).
pub fn cache_names(config: &crate::transformer::Config, cache: &[String]) -> Result<Names> {
    let named: Vec<&String> = cache.iter().filter(|n| n.as_str() != "all").collect();
    let only = Names::only(named.iter().copied());
    only.check(config).map_err(|e| Error::Input(format!("--cache: {e}")))?;
    Ok(if cache.iter().any(|n| n == "all") { Names::All } else { only })
}

/// Reads tokens \[B, S\] from an int64 or int32 npy file.
pub fn read_tokens(path: &Path) -> Result<ArrayD<i64>> {
    let file_error = |message: String| Error::File { path: path.display().to_string(), message };
    let file = crate::io::open_regular(path)?;
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
/// grid and writes it as a PNG (through [`crate::io::write_atomic`]); returns its width and height.
pub fn write_patterns_png(path: &Path, patterns: &[&ArrayD<f32>]) -> Result<(u32, u32)> {
    let image = draw_patterns(patterns)?;
    crate::io::write_atomic(path, |w| encode_png(path, &image, w))?;
    Ok((image.width(), image.height()))
}

fn encode_png(path: &Path, image: &image::RgbImage, w: &mut crate::io::Output) -> Result<()> {
    image.write_to(w, image::ImageFormat::Png).map_err(|e| Error::File {
        path: path.display().to_string(),
        message: format!("cannot write the PNG: {e}"),
    })
}

/// The most pixels a pattern picture may have (3 bytes each in memory: 768 MiB).
pub const MAX_PIXELS: u64 = 1 << 28;

/// The picture [`write_patterns_png`] writes, in memory.
pub fn draw_patterns(patterns: &[&ArrayD<f32>]) -> Result<image::RgbImage> {
    let first = patterns.first().ok_or_else(|| Error::Input("the model has no layers, so no attention patterns to draw".into()))?;
    let &[_, heads, seq, _] = first.shape() else {
        return Err(Error::Shape(format!("a pattern is {:?} but must be [B, H, S, S]", first.shape())));
    };
    let cell = cell_size(seq);
    let zoom = cell / seq;
    let to_u32 = |n: usize| u32::try_from(n).map_err(|_| Error::Input("the pattern picture is too large".into()));
    let side = |cells: usize| cells.checked_mul(cell + 1).map(|n| n - 1).unwrap_or(usize::MAX);
    let (width, height) = (to_u32(side(heads))?, to_u32(side(patterns.len()))?);
    if u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(Error::Input(format!("the pattern picture would be {width}x{height} pixels, more than the {MAX_PIXELS} drawn")));
    }
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
    Ok(image)
}

/// The picture `run --pattern-png` writes: one heat map per layer and head (a row per layer),
/// query position down, key position across, each with its colour bar (0 to the largest weight).
pub fn draw_labelled_patterns(patterns: &[&ArrayD<f32>]) -> Result<image::RgbImage> {
    use crate::plot::heatmap::{draw_heatmap_grid, Heatmap};
    let first = patterns.first().ok_or_else(|| Error::Input("the model has no layers, so no attention patterns to draw".into()))?;
    let &[_, heads, seq, _] = first.shape() else {
        return Err(Error::Shape(format!("a pattern is {:?} but must be [B, H, S, S]", first.shape())));
    };
    if patterns.len() * heads > 256 || seq > 128 {
        return Err(Error::Input(format!("--pattern-png: {} layers x {heads} heads of {seq} positions is too many to label; cache the patterns instead", patterns.len())));
    }
    let positions: Vec<String> = (0..seq).map(|s| s.to_string()).collect();
    let mut maps = Vec::new();
    for (layer, pattern) in patterns.iter().enumerate() {
        let pattern = pattern.view().into_dimensionality::<Ix4>().map_err(|e| Error::Shape(e.to_string()))?;
        for head in 0..heads {
            let p = pattern.slice(ndarray::s![0, head, .., ..]);
            maps.push(Heatmap {
                title: format!("layer {layer} head {head}"),
                x_label: "key position".into(),
                y_label: "query position".into(),
                columns: positions.clone(),
                rows: positions.clone(),
                values: p.outer_iter().map(|row| row.iter().map(|&v| f64::from(v)).collect()).collect(),
                diverging: false,
            });
        }
    }
    draw_heatmap_grid(&maps, heads, 360, 320)
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
