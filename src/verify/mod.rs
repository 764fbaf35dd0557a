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
mod analysis;
mod model_files;
mod grad;
mod train;
mod transformer;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::compare::Worst;
use crate::scalar::cut;
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
        Self {
            op,
            case,
            path: path.display().to_string(),
            status: Status::Error,
            gpu_ratio: None,
            ref_ratio: None,
            message: Some(cut(&message, MAX_MESSAGE)),
        }
    }
}

/// Every fixture under `paths` (files as given, folders searched recursively for `*.npz`,
/// sorted), or for a path that cannot be a fixture, the error to report for it.
///
/// Only regular files are fixtures: a FIFO would block `open` forever and a device never ends, so
/// either (given, or found as `*.npz`) is an error that says what it is. Symlinks are followed,
/// but each folder is walked once and each file checked once (by canonical path), so a link back
/// up the tree (`gelu/up -> ..`) or to itself (`gelu/a -> .`) neither loops nor counts a fixture
/// twice.
pub fn collect(paths: &[PathBuf]) -> Vec<Result<PathBuf, (PathBuf, String)>> {
    let mut found = Vec::new();
    let mut walked = HashSet::new();
    let mut files = HashSet::new();
    for path in paths {
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() => {
                if walked.contains(&std::fs::canonicalize(path).unwrap_or_else(|_| path.clone())) {
                    continue; // given twice, or inside a folder already given: listed once
                }
                let mut here = Vec::new();
                walk(path, &mut walked, &mut here);
                if here.is_empty() {
                    found.push(Err((path.clone(), "no *.npz fixtures in this folder".to_string())));
                }
                here.sort_by(|a, b| entry_path(a).cmp(entry_path(b)));
                for entry in here {
                    match entry {
                        Ok(file) => {
                            if files.insert(std::fs::canonicalize(&file).unwrap_or_else(|_| file.clone())) {
                                found.push(Ok(file));
                            }
                        }
                        Err(e) => found.push(Err(e)),
                    }
                }
            }
            Ok(meta) if meta.is_file() => {
                if files.insert(std::fs::canonicalize(path).unwrap_or_else(|_| path.clone())) {
                    found.push(Ok(path.clone()));
                }
            }
            Ok(meta) => found.push(Err((path.clone(), not_regular(&meta)))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                found.push(Err((path.clone(), "no such file or folder".to_string())))
            }
            Err(e) => found.push(Err((path.clone(), format!("cannot read: {e}")))),
        }
    }
    found
}

fn entry_path(entry: &Result<PathBuf, (PathBuf, String)>) -> &Path {
    match entry {
        Ok(p) | Err((p, _)) => p,
    }
}

fn not_regular(meta: &std::fs::Metadata) -> String {
    format!("is {}, not a regular file (fixtures are regular *.npz files)", crate::io::kind(meta))
}

/// Walks `dir` once (by canonical path), collecting `*.npz` entries; folders that cannot be read
/// and `*.npz` entries that are not regular files become errors, and the walk goes on.
fn walk(dir: &Path, walked: &mut HashSet<PathBuf>, out: &mut Vec<Result<PathBuf, (PathBuf, String)>>) {
    let canonical = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    if !walked.insert(canonical) {
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => return out.push(Err((dir.to_path_buf(), format!("cannot read folder: {e}")))),
    };
    for entry in entries {
        let path = match entry {
            Ok(entry) => entry.path(),
            Err(e) => {
                out.push(Err((dir.to_path_buf(), format!("cannot read folder: {e}"))));
                continue;
            }
        };
        let meta = match std::fs::metadata(&path) {
            Ok(meta) => meta,
            // A dangling symlink or a file that vanished: reported only if it looked like a fixture.
            Err(e) => {
                if path.extension().is_some_and(|x| x == "npz") {
                    out.push(Err((path, format!("cannot read: {e}"))));
                }
                continue;
            }
        };
        if meta.is_dir() {
            walk(&path, walked, out);
        } else if path.extension().is_some_and(|e| e == "npz") {
            out.push(if meta.is_file() { Ok(path) } else { Err((path.clone(), not_regular(&meta))) });
        }
    }
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
                    report.message = Some(cut(&problem, MAX_MESSAGE));
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
    report.message = report.message.map(|m| cut(&m, MAX_MESSAGE));
    report
}

fn describe_worst(side: &str, w: &Worst) -> String {
    let name = if w.output == "out" { String::new() } else { w.output.clone() };
    format!("{side}worst at {name}{:?}: got {}, want {}", w.index, fmt_g(w.got), fmt_g(w.want))
}

/// The longest message a report carries; longer ones are cut with a note of how much was left out.
pub const MAX_MESSAGE: usize = 2000;

/// The text line for a report. Names and messages are escaped (control characters, ANSI escapes
/// and bidirectional overrides written as `\n`, `\u{1b}`, …) so that a file name cannot forge a
/// line or recolour the terminal; `--json` escapes them as JSON does.
pub fn line(report: &Report) -> String {
    let name = escape(&format!("{}/{}", report.op, report.case));
    let message = report.message.as_deref().map(escape);
    let report = &Report { message, ..report.clone() };
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

/// `text` with control characters and invisible formatting characters (zero-width
/// and bidirectional marks) escaped, so that it prints as one inert line.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}') => {
                out.push_str(&format!("\\u{{{:x}}}", c as u32))
            }
            c => out.push(c),
        }
    }
    out
}
