//! The probe's figures: accuracy by layer (the trained model against the untrained baseline,
//! through [`crate::plot`]) and one held-out board beside the probe's reading of it (two 8×8
//! grids labelled A0…H7: black discs mine, white theirs, bare green empty, with a legend; wrong cells outlined in red).
//! Both are written through [`crate::io`].

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::error::{Error, Result};
use crate::plot::{LineChart, Series};

/// The font `crate::plot` embeds (DejaVu Sans), registered for the board picture too.
static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

/// Pixels of one board cell.
const CELL: i32 = 44;
/// Colours of empty (the board's green), mine, theirs.
const COLOURS: [RGBColor; 3] = [RGBColor(60, 120, 60), RGBColor(30, 30, 30), RGBColor(250, 250, 250)];
/// Names of the classes, in class order.
const NAMES: [&str; 3] = ["empty (no disc)", "mine (player to move)", "theirs"];

/// Writes the accuracy-by-layer PNG: one line per model, x the probed hook's index.
pub fn write_accuracy(path: &Path, hooks: &[String], series: &[(String, Vec<f64>)]) -> Result<()> {
    let chart = LineChart {
        title: format!("Board probe accuracy on held-out games ({} hooks: 0 = {}, last = {})", hooks.len(), short(hooks.first()), short(hooks.last())),
        x_label: "probed hook (layer; 0 = embeddings)".into(),
        y_label: "held-out accuracy per square".into(),
        log_y: false,
        series: series.iter().map(|(name, acc)| Series { name: name.clone(), points: acc.iter().enumerate().map(|(i, &a)| (i as f64, a)).collect() }).collect(),
    };
    crate::plot::write_line_charts(path, &[chart], 900, 520)
}

fn short(name: Option<&String>) -> String {
    name.map(|n| n.replace("hook_", "")).unwrap_or_default()
}

/// Writes the board PNG: `truth` and `predicted` (64 classes each) side by side.
pub fn write_board(path: &Path, title: &str, truth: &[i64], predicted: &[i64]) -> Result<()> {
    let image = draw_board(title, truth, predicted)?;
    crate::io::write_atomic(path, |w| image.write_to(w, image::ImageFormat::Png).map_err(|e| Error::File { path: path.display().to_string(), message: format!("cannot write the PNG: {e}") }))
}

/// Draws the board picture into an RGB image.
pub fn draw_board(title: &str, truth: &[i64], predicted: &[i64]) -> Result<image::RgbImage> {
    if truth.len() != super::SQUARES || predicted.len() != super::SQUARES {
        return Err(Error::Shape(format!("a board picture needs 64 cells each, not {} and {}", truth.len(), predicted.len())));
    }
    REGISTER.call_once(|| {
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
    let (width, height) = (2 * (9 * CELL) + 3 * CELL, 9 * CELL + 3 * CELL);
    let mut buffer = vec![255u8; (width * height * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buffer, (width as u32, height as u32)).into_drawing_area();
        let err = |e: &dyn std::fmt::Display| Error::Input(format!("board picture: {e}"));
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let text = |s: &str, x: i32, y: i32, size: i32| Text::new(s.to_string(), (x, y), ("sans-serif", size).into_font().color(&BLACK));
        root.draw(&text(title, CELL / 2, CELL / 4, 18)).map_err(|e| err(&e))?;
        for (panel, (name, cells)) in [("truth", truth), ("probe's prediction", predicted)].into_iter().enumerate() {
            let x0 = CELL + panel as i32 * (9 * CELL + CELL);
            let y0 = 2 * CELL;
            root.draw(&text(name, x0, y0 - CELL / 2 - 4, 16)).map_err(|e| err(&e))?;
            for s in 0..super::SQUARES {
                let (r, c) = ((s / 8) as i32, (s % 8) as i32);
                let (x, y) = (x0 + c * CELL, y0 + r * CELL);
                let class = cells[s].clamp(0, 2) as usize;
                root.draw(&Rectangle::new([(x, y), (x + CELL, y + CELL)], COLOURS[0].filled())).map_err(|e| err(&e))?;
                if class != 0 {
                    root.draw(&Circle::new((x + CELL / 2, y + CELL / 2), CELL / 2 - 5, COLOURS[class].filled())).map_err(|e| err(&e))?;
                }
                root.draw(&Rectangle::new([(x, y), (x + CELL, y + CELL)], BLACK.stroke_width(1))).map_err(|e| err(&e))?;
                if panel == 1 && cells[s] != truth[s] {
                    root.draw(&Rectangle::new([(x + 2, y + 2), (x + CELL - 2, y + CELL - 2)], RED.stroke_width(3))).map_err(|e| err(&e))?;
                }
                let label = crate::games::othello::label(s);
                let ink = if class == 1 { WHITE } else { BLACK };
                root.draw(&Text::new(label, (x + 3, y + 3), ("sans-serif", 11).into_font().color(&ink))).map_err(|e| err(&e))?;
            }
        }
        let y = 2 * CELL + 8 * CELL + CELL / 3;
        for (i, name) in NAMES.iter().enumerate() {
            let x = CELL + i as i32 * 4 * CELL;
            root.draw(&Circle::new((x + 8, y + 8), 8, COLOURS[i].filled())).map_err(|e| err(&e))?;
            root.draw(&Circle::new((x + 8, y + 8), 8, BLACK.stroke_width(1))).map_err(|e| err(&e))?;
            root.draw(&text(name, x + 22, y, 14)).map_err(|e| err(&e))?;
        }
        let x = CELL + 12 * CELL;
        root.draw(&Rectangle::new([(x, y), (x + 16, y + 16)], RED.stroke_width(3))).map_err(|e| err(&e))?;
        root.draw(&text("wrong", x + 22, y, 14)).map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    image::RgbImage::from_raw(width as u32, height as u32, buffer).ok_or_else(|| Error::Input("board picture: the pixel buffer has the wrong size".into()))
}
