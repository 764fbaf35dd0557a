//! The `verify` command: check fixtures (files or folders searched recursively for `*.npz`) with
//! the host reference and the GPU kernel, one line per fixture, exactly as SPEC describes.
//!
//! Text lines look like
//! `PASS  matmul/ragged  gpu 0.031  ref 0.002`,
//! `FAIL  softmax/rolled_row  gpu 5861  ref 5861  (worst at [1, 7]: got 0.0211, want 0.0864)` and
//! `ERROR matmul/inner_mismatch: a is [3, 4] but b is [5, 6]: inner dimensions 4 and 5 differ`,
//! closed by `verify: N passed, N failed`. With `--json`, stdout holds one JSON object per fixture
//! and nothing else (the adapter line and the closing line go to stderr), so it can be piped.

pub mod checks;
mod transformer;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::compare::Worst;
use crate::fixture::{op_and_case, Fixture};
use crate::gpu::Gpu;

/// How one fixture ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Status {
    /// Both the GPU and the host reference agree with the expected outputs.
    #[serde(rename = "PASS")]
    Pass,
    /// The fixture was checked and something disagreed.
    #[serde(rename = "FAIL")]
    Fail,
    /// The fixture could not be checked (unreadable, unknown op, missing or malformed arrays).
    #[serde(rename = "ERROR")]
    Error,
}

/// One fixture's result, as printed (and as `--json` writes it).
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Op (folder name).
    pub op: String,
    /// Case (file stem).
    pub case: String,
    /// The file as given or found.
    pub path: String,
    /// PASS, FAIL or ERROR.
    pub status: Status,
    /// GPU error ratio (null on ERROR; JSON writes an infinite ratio as null too, and the
    /// message then says where).
    pub gpu_ratio: Option<f64>,
    /// Host reference error ratio (null on ERROR, or when infinite).
    pub ref_ratio: Option<f64>,
    /// Why it failed or could not be checked; null on PASS.
    pub message: Option<String>,
}

impl Report {
    /// The ERROR report for a path that could not be read at all.
    pub fn unreadable(path: &Path, message: String) -> Self {
        let (op, case) = op_and_case(path);
        Self { op, case, path: path.display().to_string(), status: Status::Error, gpu_ratio: None, ref_ratio: None, message: Some(message) }
    }
}

/// Every fixture under `paths` (files as given, folders searched recursively for `*.npz`,
/// sorted), or for a path that does not exist, the error to report for it.
pub fn collect(paths: &[PathBuf]) -> Vec<Result<PathBuf, (PathBuf, String)>> {
    let mut found = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut files = Vec::new();
            if let Err(e) = walk(path, &mut files) {
                found.push(Err((path.clone(), format!("cannot read folder: {e}"))));
            }
            if files.is_empty() {
                found.push(Err((path.clone(), "no *.npz fixtures in this folder".to_string())));
            }
            files.sort();
            found.extend(files.into_iter().map(Ok));
        } else if path.is_file() {
            found.push(Ok(path.clone()));
        } else {
            found.push(Err((path.clone(), "no such file or folder".to_string())));
        }
    }
    found
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            walk(&path, files)?;
        } else if path.extension().is_some_and(|e| e == "npz") {
            files.push(path);
        }
    }
    Ok(())
}

/// Checks one fixture file.
pub fn verify_file(gpu: &Gpu, path: &Path) -> Report {
    let (op, case) = op_and_case(path);
    let mut report = Report {
        op,
        case,
        path: path.display().to_string(),
        status: Status::Error,
        gpu_ratio: None,
        ref_ratio: None,
        message: None,
    };
    match Fixture::open(path).and_then(|fixture| checks::check(gpu, &fixture)) {
        Err(e) => report.message = Some(e.to_string()),
        Ok(outcome) => {
            report.gpu_ratio = Some(outcome.gpu.ratio);
            report.ref_ratio = Some(outcome.reference.ratio);
            if outcome.passed() {
                report.status = Status::Pass;
            } else {
                report.status = Status::Fail;
                if let Some(problem) = outcome.problem {
                    report.message = Some(problem);
                    return report;
                }
                let (side, worst) = if outcome.gpu.passed() {
                    ("reference ", outcome.reference.worst.as_ref())
                } else {
                    ("", outcome.gpu.worst.as_ref())
                };
                report.message = worst.map(|w| describe_worst(side, w));
            }
        }
    }
    report
}

fn describe_worst(side: &str, w: &Worst) -> String {
    let name = if w.output == "out" { String::new() } else { w.output.clone() };
    format!("{side}worst at {name}{:?}: got {}, want {}", w.index, fmt_g(w.got), fmt_g(w.want))
}

/// The text line for a report.
pub fn line(report: &Report) -> String {
    let name = format!("{}/{}", report.op, report.case);
    match report.status {
        Status::Pass => format!(
            "PASS  {name}  gpu {}  ref {}",
            fmt_ratio(report.gpu_ratio.unwrap_or(f64::INFINITY)),
            fmt_ratio(report.ref_ratio.unwrap_or(f64::INFINITY))
        ),
        Status::Fail => format!(
            "FAIL  {name}  gpu {}  ref {}  ({})",
            fmt_ratio(report.gpu_ratio.unwrap_or(f64::INFINITY)),
            fmt_ratio(report.ref_ratio.unwrap_or(f64::INFINITY)),
            report.message.as_deref().unwrap_or("")
        ),
        Status::Error => format!("ERROR {name}: {}", report.message.as_deref().unwrap_or("")),
    }
}

/// An error ratio as the text lines print it: 3 decimals below 100, whole numbers above.
pub fn fmt_ratio(r: f64) -> String {
    if !r.is_finite() {
        "inf".into()
    } else if r < 100.0 {
        format!("{r:.3}")
    } else {
        format!("{r:.0}")
    }
}

/// A value with 3 significant digits, like C's `%.3g`.
pub fn fmt_g(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let exponent = v.abs().log10().floor() as i32;
    if !(-4..3).contains(&exponent) {
        return format!("{v:.2e}");
    }
    let decimals = (2 - exponent).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
}
