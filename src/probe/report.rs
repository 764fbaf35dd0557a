//! Scoring probes and writing what they found: held-out accuracy per square cell (all cells,
//! occupied cells, cells the last move flipped), the table printed by `shaderlens probe`, the
//! JSON report and the npz of probe weights and accuracies (both through [`crate::io`]).

use std::io::Write;
use std::path::Path;

use ndarray::{Array2, ArrayView2};
use ndarray_npy::{NpzWriter, WriteNpzError};
use serde::Serialize;

use super::{Weights, CLASSES, OUTPUTS, SQUARES};
use crate::error::{Error, Result};

/// Held-out accuracies of one probe.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Accuracy {
    /// Fraction of (position, square) cells classified right.
    pub all: f64,
    /// The same over cells holding a stone (truth mine or theirs); NaN (JSON null) when none.
    pub occupied: f64,
    /// The same over cells the position's move flipped; NaN (JSON null) when none.
    pub flipped: f64,
    /// Mean cross-entropy of the probe on its training rows before its last update.
    pub train_loss: f64,
}

/// Scores `predicted` against `truth` (\[rows, 64\] classes) with the `flipped` mask.
pub fn score(predicted: ArrayView2<'_, i64>, truth: ArrayView2<'_, i64>, flipped: ArrayView2<'_, bool>) -> Result<Accuracy> {
    if predicted.shape() != truth.shape() || flipped.shape() != truth.shape() {
        return Err(Error::Shape(format!("probe scores: predicted {:?}, truth {:?} and flipped {:?} disagree", predicted.shape(), truth.shape(), flipped.shape())));
    }
    let mut counts = [(0usize, 0usize); 3];
    ndarray::Zip::from(&predicted).and(&truth).and(&flipped).for_each(|&p, &t, &f| {
        let right = usize::from(p == t);
        for (i, counted) in [true, t != crate::games::dataset::EMPTY as i64, f].into_iter().enumerate() {
            if counted {
                counts[i].0 += right;
                counts[i].1 += 1;
            }
        }
    });
    let frac = |(right, n): (usize, usize)| if n == 0 { f64::NAN } else { right as f64 / n as f64 };
    Ok(Accuracy { all: frac(counts[0]), occupied: frac(counts[1]), flipped: frac(counts[2]), train_loss: f64::NAN })
}

/// One probed hook: its name and the probes' results for the trained model and the baseline.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// The hook's TransformerLens name.
    pub hook: String,
    /// The given model's probe.
    pub trained: Accuracy,
    /// The untrained model's probe (absent with `--no-baseline`).
    pub baseline: Option<Accuracy>,
}

/// The text table: one line a hook, percentages.
pub fn table(rows: &[Row]) -> String {
    let pct = |x: f64| if x.is_nan() { "    -".to_string() } else { format!("{:5.1}", 100.0 * x) };
    let mut out = format!("{:<28} {:>9} {:>9} {:>9}   {:>9} {:>9} {:>9}\n", "hook (held-out accuracy %)", "all", "occupied", "flipped", "base all", "base occ", "base flip");
    for r in rows {
        let b = r.baseline.unwrap_or(Accuracy { all: f64::NAN, occupied: f64::NAN, flipped: f64::NAN, train_loss: f64::NAN });
        out.push_str(&format!(
            "{:<28} {:>9} {:>9} {:>9}   {:>9} {:>9} {:>9}\n",
            r.hook,
            pct(r.trained.all),
            pct(r.trained.occupied),
            pct(r.trained.flipped),
            pct(b.all),
            pct(b.occupied),
            pct(b.flipped)
        ));
    }
    out
}

fn file_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::File { path: path.display().to_string(), message: format!("cannot write: {e}") }
}

/// Stages the JSON report at `path` (renamed into place by the caller's commit).
pub fn stage_json(path: &Path, report: &serde_json::Value) -> Result<crate::io::Staged> {
    let text = serde_json::to_string_pretty(report).map_err(|e| file_error(path, e))?;
    Ok(crate::io::stage(path, |w| w.write_all(text.as_bytes()).map_err(|e| file_error(path, e)))?.0)
}

/// Stages the npz of probe weights (`<model>.<hook>.W` \[d, 64, 3\], `.b` \[64, 3\], float32) and
/// accuracies (`<model>.accuracy` \[hooks, 3\]: all, occupied, flipped).
pub fn stage_npz(path: &Path, probes: &[(String, String, Weights)], rows: &[Row]) -> Result<crate::io::Staged> {
    let err = |e: WriteNpzError| file_error(path, e);
    let accuracy = |pick: &dyn Fn(&Row) -> Option<Accuracy>| -> Array2<f64> {
        Array2::from_shape_fn((rows.len(), 3), |(i, j)| pick(&rows[i]).map_or(f64::NAN, |a| [a.all, a.occupied, a.flipped][j]))
    };
    let trained = accuracy(&|r: &Row| Some(r.trained));
    let baseline = accuracy(&|r: &Row| r.baseline);
    Ok(crate::io::stage(path, |w| {
        let mut npz = NpzWriter::new_compressed(w);
        npz.add_array("trained.accuracy", &trained).map_err(err)?;
        if rows.iter().any(|r| r.baseline.is_some()) {
            npz.add_array("baseline.accuracy", &baseline).map_err(err)?;
        }
        for (model, hook, weights) in probes {
            let d = weights.w.nrows();
            let w = weights.w.mapv(|v| v as f32).into_shape_with_order((d, SQUARES, CLASSES)).map_err(|e| file_error(path, e))?;
            let b = weights.b.mapv(|v| v as f32).into_shape_with_order((SQUARES, CLASSES)).map_err(|e| file_error(path, e))?;
            debug_assert_eq!(b.len(), OUTPUTS);
            npz.add_array(format!("{model}.{hook}.W"), &w).map_err(err)?;
            npz.add_array(format!("{model}.{hook}.b"), &b).map_err(err)?;
        }
        npz.finish().map_err(err)?;
        Ok(())
    })?
    .0)
}
