//! Heat maps with a colour bar (plotters): a grid of values with labelled rows and columns, a
//! diverging colour map centred on zero (blue negative, white zero, red positive, scaled by the
//! largest |value|) or a sequential one (white to dark blue from 0 to the maximum, for
//! probabilities). Patching sweeps (layer × position, tokens on the x axis), head attributions
//! (layer × head) and attention patterns (query × key) all draw through [`draw_heatmaps`].

use std::path::Path;

use plotters::prelude::*;

use super::ticks::{integer_ticks, Ticked};
use crate::error::{Error, Result};

/// One heat map.
#[derive(Clone, Debug)]
pub struct Heatmap {
    /// The caption.
    pub title: String,
    /// The x axis's label (e.g. "position").
    pub x_label: String,
    /// The y axis's label (e.g. "layer").
    pub y_label: String,
    /// One label per column (tokens, head numbers).
    pub columns: Vec<String>,
    /// One label per row, drawn top to bottom.
    pub rows: Vec<String>,
    /// `values[row][column]`; non-finite cells are drawn grey.
    pub values: Vec<Vec<f64>>,
    /// Diverging around zero (true) or sequential from zero (false).
    pub diverging: bool,
}

/// Draws `maps` (rows of up to three), each `width` × `height` pixels, into a PNG at `path`.
pub fn write_heatmaps(path: &Path, maps: &[Heatmap], width: u32, height: u32) -> Result<()> {
    let image = draw_heatmaps(maps, width, height)?;
    crate::io::write_atomic(path, |w| {
        image.write_to(w, image::ImageFormat::Png).map_err(|e| Error::File { path: path.display().to_string(), message: format!("cannot write the PNG: {e}") })
    })
}

/// Draws `maps` in rows of up to three panels into an RGB image; refuses a map whose values
/// do not fill its rows × columns.
pub fn draw_heatmaps(maps: &[Heatmap], width: u32, height: u32) -> Result<image::RgbImage> {
    draw_heatmap_grid(maps, 3, width, height)
}

/// Draws `maps` in rows of `per_row` panels (at least 1), each `width` × `height` pixels.
pub fn draw_heatmap_grid(maps: &[Heatmap], per_row: usize, width: u32, height: u32) -> Result<image::RgbImage> {
    let groups: Vec<usize> = (0..maps.len()).collect();
    draw_heatmap_groups(maps, &groups, per_row, width, height)
}

/// [`write_heatmaps`] where maps with the same `groups` entry share one colour scale (the
/// panels of one three-dimensional sweep, one per layer, compare by colour).
pub fn write_heatmap_groups(path: &Path, maps: &[Heatmap], groups: &[usize], width: u32, height: u32) -> Result<()> {
    let image = draw_heatmap_groups(maps, groups, 3, width, height)?;
    crate::io::write_atomic(path, |w| {
        image.write_to(w, image::ImageFormat::Png).map_err(|e| Error::File { path: path.display().to_string(), message: format!("cannot write the PNG: {e}") })
    })
}

/// The largest finite |value| of a map.
fn largest(map: &Heatmap) -> f64 {
    map.values.iter().flatten().filter(|v| v.is_finite()).fold(0.0f64, |m, v| m.max(v.abs()))
}

/// [`draw_heatmap_grid`] with a colour scale per group of maps (`groups[i]` is map i's group).
pub fn draw_heatmap_groups(maps: &[Heatmap], groups: &[usize], per_row: usize, width: u32, height: u32) -> Result<image::RgbImage> {
    if groups.len() != maps.len() {
        return Err(Error::Input(format!("heat maps: {} maps but {} group numbers", maps.len(), groups.len())));
    }
    let scale = |g: usize| maps.iter().zip(groups).filter(|(_, &h)| h == g).map(|(m, _)| largest(m)).fold(0.0f64, f64::max);
    for m in maps {
        if m.values.len() != m.rows.len() || m.values.iter().any(|r| r.len() != m.columns.len()) || m.columns.is_empty() {
            return Err(Error::Input(format!("heat map \"{}\": values must be {} rows of {} columns (at least one)", m.title, m.rows.len(), m.columns.len())));
        }
    }
    super::register_font();
    let cols = maps.len().clamp(1, per_row.max(1));
    let grid_rows = maps.len().div_ceil(cols).max(1);
    let too_big = || Error::Input("plot: too large".into());
    let total = width.checked_mul(cols as u32).ok_or_else(too_big)?;
    let tall = height.checked_mul(grid_rows as u32).ok_or_else(too_big)?;
    let mut buffer = vec![255u8; total as usize * tall as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buffer, (total, tall)).into_drawing_area();
        let err = |e: &dyn std::fmt::Display| Error::Input(format!("plot: {e}"));
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let panels = root.split_evenly((grid_rows, cols));
        for ((map, panel), &g) in maps.iter().zip(panels.iter()).zip(groups) {
            draw_one(map, scale(g), panel).map_err(|e| err(&e))?;
        }
        root.present().map_err(|e| err(&e))?;
    }
    image::RgbImage::from_raw(total, tall, buffer).ok_or_else(|| Error::Input("plot: the pixel buffer has the wrong size".into()))
}

/// The colour of `v` on a scale whose ends are ±`max` (diverging) or 0..`max` (sequential).
pub fn colour(v: f64, max: f64, diverging: bool) -> RGBColor {
    if !v.is_finite() {
        return RGBColor(160, 160, 160);
    }
    let t = if max > 0.0 { (v / max).clamp(-1.0, 1.0) } else { 0.0 };
    let mix = |a: u8, b: u8, t: f64| (f64::from(a) + (f64::from(b) - f64::from(a)) * t).round() as u8;
    if !diverging {
        let t = t.max(0.0);
        return RGBColor(mix(255, 8, t), mix(255, 48, t), mix(255, 107, t));
    }
    if t >= 0.0 {
        RGBColor(mix(255, 178, t), mix(255, 24, t), mix(255, 43, t))
    } else {
        RGBColor(mix(255, 33, -t), mix(255, 102, -t), mix(255, 172, -t))
    }
}

/// At most this many labelled columns and rows; longer axes label every 2nd, 5th, 10th… cell.
const MAX_X_LABELS: usize = 16;
const MAX_Y_LABELS: usize = 24;

/// An axis of `n` cells centred on 0…n−1, its ticks on whole cells only (a layer, head or
/// position is never 0.5).
/// `flip`: rows drawn top to bottom, so the thinned ticks fall on rows 0, 5, 10… counted from
/// the top.
fn cells(n: usize, max_labels: usize, flip: bool) -> Ticked {
    let (lo, hi) = (-0.5, n as f64 - 0.5);
    let mut ticks = integer_ticks(lo, hi, max_labels);
    if flip {
        ticks = ticks.iter().rev().map(|t| (n - 1) as f64 - t).collect();
    }
    Ticked::new(lo..hi, ticks)
}

type Panel<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;
type DrawResult = std::result::Result<(), DrawingAreaErrorKind<<BitMapBackend<'static> as DrawingBackend>::ErrorType>>;

/// One map, its colours scaled to ±`max` (or 0..`max`).
fn draw_one(map: &Heatmap, max: f64, panel: &Panel<'_>) -> DrawResult {
    let (w, _) = panel.dim_in_pixel();
    let (grid, bar) = panel.split_horizontally(w.saturating_sub(110).max(1));
    let (nx, ny) = (map.columns.len(), map.rows.len());
    let mut chart = ChartBuilder::on(&grid)
        .caption(&map.title, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(cells(nx, MAX_X_LABELS, false), cells(ny, MAX_Y_LABELS, true))?;
    // Cells are centred on whole numbers; a tick there gets the cell's label, others none.
    let label = |labels: &[String], v: &f64, flip: bool| {
        let i = v.round();
        if (v - i).abs() > 1e-6 || i < 0.0 || i as usize >= labels.len() {
            return String::new();
        }
        let i = i as usize;
        labels[if flip { labels.len() - 1 - i } else { i }].clone()
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc(map.x_label.as_str())
        .y_desc(map.y_label.as_str())
        .x_label_formatter(&|v| label(&map.columns, v, false))
        .y_label_formatter(&|v| label(&map.rows, v, true))
        .label_style(("sans-serif", 12))
        .draw()?;
    chart.draw_series(map.values.iter().enumerate().flat_map(|(r, row)| {
        let y = ny - 1 - r;
        row.iter().enumerate().map(move |(c, &v)| {
            let (x, y) = (c as f64, y as f64);
            Rectangle::new([(x - 0.5, y - 0.5), (x + 0.5, y + 0.5)], colour(v, max, map.diverging).filled())
        })
    }))?;
    draw_bar(&bar, max, map.diverging)
}

/// The colour bar: the scale's range from bottom to top with its values on an axis.
fn draw_bar(bar: &Panel<'_>, max: f64, diverging: bool) -> DrawResult {
    let top = if max > 0.0 { max } else { 1.0 };
    let bottom = if diverging { -top } else { 0.0 };
    let ticks = super::ticks::linear_ticks(bottom, top, 7);
    let mut chart = ChartBuilder::on(bar).margin_top(40).margin_bottom(54).margin_right(8).y_label_area_size(60).build_cartesian_2d(0.0..1.0, Ticked::new(bottom..top, ticks))?;
    chart.configure_mesh().disable_mesh().disable_x_axis().y_label_formatter(&|v| super::tick(*v)).label_style(("sans-serif", 11)).draw()?;
    let steps = 100;
    chart.draw_series((0..steps).map(|i| {
        let (a, b) = (bottom + (top - bottom) * i as f64 / steps as f64, bottom + (top - bottom) * (i + 1) as f64 / steps as f64);
        Rectangle::new([(0.0, a), (1.0, b)], colour((a + b) / 2.0, top, diverging).filled())
    }))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(values: Vec<Vec<f64>>) -> Heatmap {
        let (rows, cols) = (values.len(), values[0].len());
        Heatmap { title: "t".into(), x_label: "x".into(), y_label: "y".into(), columns: (0..cols).map(|c| c.to_string()).collect(), rows: (0..rows).map(|r| r.to_string()).collect(), values, diverging: true }
    }

    /// Maps of one group share a scale: a small map beside a large one in its group is drawn
    /// pale, alone in its own group deep red.
    #[test]
    fn groups_share_one_colour_scale() {
        let (small, large) = (map(vec![vec![1.0]]), map(vec![vec![10.0]]));
        let reddest = |img: &image::RgbImage| img.pixels().map(|p| i32::from(p.0[0]) - i32::from(p.0[1])).max().unwrap_or(0);
        let shared = draw_heatmap_groups(&[small.clone(), large.clone()], &[0, 0], 2, 300, 240).unwrap();
        let own = draw_heatmap_groups(&[small.clone(), large.clone()], &[0, 1], 2, 300, 240).unwrap();
        let left = |img: &image::RgbImage| image::imageops::crop_imm(img, 0, 0, 190, 240).to_image();
        assert!(reddest(&left(&shared)) < reddest(&left(&own)) / 2, "{} vs {}", reddest(&left(&shared)), reddest(&left(&own)));
        let err = draw_heatmap_groups(&[small], &[0, 1], 2, 300, 240).unwrap_err().to_string();
        assert!(err.contains("group"), "{err}");
    }
}
