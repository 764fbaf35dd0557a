//! Charts drawn to PNG with `plotters` (bitmap backend, the embedded DejaVu Sans font): labelled
//! line charts side by side, linear or log-scale y. General on purpose: training curves use it
//! now, and heatmaps with a colour bar belong here next.
//!
//! Pixels are drawn into memory and encoded by the `image` crate, and the file is written through
//! [`crate::io::write_atomic`], so a reader never sees a half-drawn PNG.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::error::{Error, Result};

pub mod heatmap;
pub mod ticks;

/// DejaVu Sans (its licence is beside it in `assets/fonts/`), so text renders on any machine.
static FONT: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

/// One line of a chart.
#[derive(Clone, Debug)]
pub struct Series {
    /// The legend's label.
    pub name: String,
    /// `(x, y)` points in order of x; non-finite points (and, on a log scale, y ≤ 0) are skipped.
    pub points: Vec<(f64, f64)>,
}

/// A line chart: title, axis labels, scale, lines.
#[derive(Clone, Debug)]
pub struct LineChart {
    /// The caption above the chart.
    pub title: String,
    /// The x axis's label.
    pub x_label: String,
    /// The y axis's label.
    pub y_label: String,
    /// A logarithmic y axis.
    pub log_y: bool,
    /// The lines.
    pub series: Vec<Series>,
}

/// The colours of successive series.
const COLOURS: [RGBColor; 6] = [RGBColor(31, 119, 180), RGBColor(255, 127, 14), RGBColor(44, 160, 44), RGBColor(214, 39, 40), RGBColor(148, 103, 189), RGBColor(140, 86, 75)];

/// Draws `charts` side by side, each `width` × `height` pixels, into a PNG at `path`.
pub fn write_line_charts(path: &Path, charts: &[LineChart], width: u32, height: u32) -> Result<()> {
    let image = draw_line_charts(charts, width, height)?;
    crate::io::write_atomic(path, |w| {
        image
            .write_to(w, image::ImageFormat::Png)
            .map_err(|e| Error::File { path: path.display().to_string(), message: format!("cannot write the PNG: {e}") })
    })
}

/// Registers the bundled font once (every chart in this module and its children calls it).
fn register_font() {
    REGISTER.call_once(|| {
        // A font that does not parse leaves text out; the test of this module would see it.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// Draws `charts` side by side into an RGB image.
pub fn draw_line_charts(charts: &[LineChart], width: u32, height: u32) -> Result<image::RgbImage> {
    register_font();
    let total = width.checked_mul(charts.len().max(1) as u32).ok_or_else(|| Error::Input("plot: too wide".into()))?;
    let mut buffer = vec![255u8; total as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buffer, (total, height)).into_drawing_area();
        let err = |e: &dyn std::fmt::Display| Error::Input(format!("plot: {e}"));
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let panels = root.split_evenly((1, charts.len().max(1)));
        for (chart, panel) in charts.iter().zip(panels.iter()) {
            draw_one(chart, panel).map_err(|e| err(&e))?;
        }
        root.present().map_err(|e| err(&e))?;
    }
    image::RgbImage::from_raw(total, height, buffer).ok_or_else(|| Error::Input("plot: the pixel buffer has the wrong size".into()))
}

type Panel<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;
type DrawResult = std::result::Result<(), DrawingAreaErrorKind<<BitMapBackend<'static> as DrawingBackend>::ErrorType>>;

fn draw_one(chart: &LineChart, panel: &Panel<'_>) -> DrawResult {
    let keep = |&(x, y): &(f64, f64)| x.is_finite() && y.is_finite() && (!chart.log_y || y > 0.0);
    let points: Vec<(f64, f64)> = chart.series.iter().flat_map(|s| s.points.iter().copied().filter(keep)).collect();
    let (mut x0, mut x1, mut y0, mut y1) = points.iter().fold((f64::MAX, f64::MIN, f64::MAX, f64::MIN), |(a, b, c, d), &(x, y)| (a.min(x), b.max(x), c.min(y), d.max(y)));
    if points.is_empty() {
        (x0, x1, y0, y1) = (0.0, 1.0, if chart.log_y { 0.1 } else { 0.0 }, 1.0);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    if y1 <= y0 {
        (y0, y1) = if chart.log_y { (y0 / 2.0, y1 * 2.0) } else { (y0 - 0.5, y1 + 0.5) };
    }
    let mut builder = ChartBuilder::on(panel);
    builder.caption(&chart.title, ("sans-serif", 20)).margin(12).x_label_area_size(40).y_label_area_size(64);
    let style = |i: usize| COLOURS[i % COLOURS.len()].stroke_width(2);
    // Our own ticks: whole numbers when every x is one (layers, steps), and labelled ticks on a
    // log axis whatever its range (see `ticks`).
    let x_ticks = if points.iter().all(|p| p.0.fract() == 0.0) { ticks::integer_ticks(x0, x1, 10) } else { ticks::linear_ticks(x0, x1, 8) };
    let y_ticks = if chart.log_y { ticks::log_ticks(y0, y1) } else { ticks::linear_ticks(y0, y1, 8) };
    macro_rules! lines {
        ($ctx:expr) => {{
            let mut ctx = $ctx;
            ctx.configure_mesh()
                .x_desc(chart.x_label.as_str())
                .y_desc(chart.y_label.as_str())
                .x_label_formatter(&|x| tick(*x))
                .y_label_formatter(&|y| tick(*y))
                .label_style(("sans-serif", 13))
                .draw()?;
            for (i, s) in chart.series.iter().enumerate() {
                ctx.draw_series(LineSeries::new(s.points.iter().copied().filter(keep), style(i)))?
                    .label(s.name.as_str())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style(i)));
            }
            ctx.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).label_font(("sans-serif", 13)).draw()?;
        }};
    }
    let x_range = ticks::Ticked::new(x0..x1, x_ticks);
    if chart.log_y {
        lines!(builder.build_cartesian_2d(x_range, (y0..y1).log_scale().with_key_points(y_ticks))?);
    } else {
        lines!(builder.build_cartesian_2d(x_range, ticks::Ticked::new(y0..y1, y_ticks))?);
    }
    Ok(())
}

/// An axis tick: whole numbers without a decimal point (steps, epochs), others to six decimals
/// without trailing zeros, and very small or large ones in exponent form to six significant
/// digits (`1e-5` for a log axis's 9.999999e-6, `2.5e-6`).
pub fn tick(x: f64) -> String {
    let a = x.abs();
    if x == 0.0 || (x.fract() == 0.0 && a < 1e6) {
        return format!("{x:.0}");
    }
    if !(1e-3..1e6).contains(&a) {
        let scale = 10f64.powi(5 - a.log10().floor() as i32);
        return format!("{:e}", (x * scale).round() / scale);
    }
    let fixed = format!("{x:.6}");
    fixed.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::tick;

    /// Tick labels: short, and exact enough to tell neighbouring ticks apart.
    #[test]
    fn tick_labels() {
        assert_eq!(tick(3.0), "3");
        assert_eq!(tick(2.8), "2.8");
        assert_eq!(tick(9.999999e-6), "1e-5");
        assert_eq!(tick(2.5e-6), "2.5e-6");
        assert_eq!(tick(0.001), "0.001");
    }
}
