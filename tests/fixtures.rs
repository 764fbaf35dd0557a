//! Every committed fixture, through the host reference and the GPU kernel, must PASS: one test per
//! op so that a failure names the op, and a check that each op has the cases the issues ask for.

mod common;

use std::path::{Path, PathBuf};

use shaderlens::verify::{self, Status};

fn fixtures_of(op: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(op);
    verify::collect(&[dir]).into_iter().map(|entry| entry.unwrap_or_else(|(p, e)| panic!("{}: {e}", p.display()))).collect()
}

/// Runs every fixture of `op` and asserts that each passes, listing all that do not.
fn all_pass(op: &str, minimum_cases: usize) {
    let gpu = common::gpu();
    let files = fixtures_of(op);
    assert!(files.len() >= minimum_cases, "{op}: {} fixtures, want at least {minimum_cases}", files.len());
    let failures: Vec<String> = files
        .iter()
        .map(|path| verify::verify_file(&gpu, path))
        .filter(|report| report.status != Status::Pass)
        .map(|report| verify::line(&report))
        .collect();
    assert!(failures.is_empty(), "{op} fixtures that did not pass:\n{}", failures.join("\n"));
}

#[test]
fn gelu_fixtures_pass() {
    all_pass("gelu", 8);
}

#[test]
fn gelu_erf_fixtures_pass() {
    all_pass("gelu_erf", 8);
}

#[test]
fn matmul_fixtures_pass() {
    all_pass("matmul", 8);
}

#[test]
fn softmax_fixtures_pass() {
    all_pass("softmax", 8);
}

#[test]
fn layer_norm_fixtures_pass() {
    all_pass("layer_norm", 8);
}

#[test]
fn attention_fixtures_pass() {
    all_pass("attention", 8);
}

#[test]
fn attention_layer_fixtures_pass() {
    all_pass("attention_layer", 4);
}

#[test]
fn transformer_fixtures_pass() {
    all_pass("transformer", 13);
}

#[test]
fn adamw_fixtures_pass() {
    all_pass("adamw", 5);
}

/// SPEC's `train` fixtures (torch-made): N updates of the GPU backward, clipping and AdamW over
/// all parameters, against the losses and final weights torch computed (and the float64 twin).
#[test]
fn train_fixtures_pass() {
    all_pass("train", 4);
}

