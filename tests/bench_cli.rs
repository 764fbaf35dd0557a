//! The `bench` command as a user runs it, on the tiny `--quick` shapes (speed is never asserted):
//! one JSON object a row with the documented fields, every op present, every matmul variant with
//! `--variants`, text mode, and exit code 2 for an unknown op.

use std::collections::BTreeSet;
use std::process::{Command, Output};

use serde_json::Value;

fn shaderlens(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shaderlens"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the shaderlens binary runs")
}

/// Runs `bench` with `args`, expects exit 0, and parses every stdout line as a JSON object.
fn rows(args: &[&str]) -> Vec<Value> {
    let out = shaderlens(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    assert!(stderr.contains("adapter: "), "the adapter goes to stderr in JSON mode: {stderr}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[test]
fn json_rows_have_the_documented_fields() {
    let rows = rows(&["bench", "--quick", "--json"]);
    let mut ops = BTreeSet::new();
    for row in &rows {
        let op = row["op"].as_str().expect("op");
        ops.insert(op.to_string());
        let shape = row["shape"].as_array().expect("shape is an array");
        assert!(!shape.is_empty() && shape.iter().all(|d| d.as_u64().is_some()), "{row}");
        assert!(row["gpu_ms"].as_f64().is_some_and(|t| t > 0.0), "{row}");
        assert!(row["host_ms"].as_f64().is_some_and(|t| t >= 0.0), "{row}");
        assert!(row["gpu_reps"].as_u64().is_some_and(|n| n >= 1) && row["host_reps"].as_u64().is_some_and(|n| n >= 1));
        assert!(matches!(row["timing"].as_str(), Some("timestamp" | "wall")), "{row}");
        assert!(row["variant"].as_str().is_some_and(|v| !v.is_empty()), "{row}");
        assert!(matches!(row["choice"].as_str(), Some("autotune" | "static" | "only" | "fixed")), "{row}");
        assert!(row["adapter"].as_str().is_some_and(|a| !a.is_empty()), "{row}");
        // Exactly one rate; the peak fraction is a number or null.
        let (gflops, gbps) = (row["gflops"].as_f64(), row["gbps"].as_f64());
        assert!(gflops.is_some() != gbps.is_some(), "{row}");
        assert!(row["peak_fraction"].is_null() || row["peak_fraction"].as_f64().is_some(), "{row}");
        let expected_rate = if matches!(op, "matmul" | "attention" | "attention_backward" | "transformer" | "train_step") { gflops } else { gbps };
        assert!(expected_rate.is_some_and(|r| r > 0.0), "{row}");
    }
    let want: BTreeSet<String> = shaderlens::bench::cases::ops().map(|s| s.to_string()).collect();
    assert_eq!(ops, want);
}

#[test]
fn variants_flag_shows_every_matmul_variant() {
    let rows = rows(&["bench", "matmul", "--quick", "--json", "--variants"]);
    assert!(rows.iter().all(|r| r["op"] == "matmul"));
    let aligned: BTreeSet<&str> =
        rows.iter().filter(|r| r["shape"] == serde_json::json!([64, 64, 64])).filter_map(|r| r["variant"].as_str()).collect();
    // Every variant that computes a plain `a b` (the vec4nt kernels only compute `a bᵀ`).
    let all: BTreeSet<&str> = shaderlens::ops::matmul::Variant::ALL
        .iter()
        .filter(|v| v.kind() != shaderlens::ops::matmul::Kind::Vec4Nt)
        .map(|v| v.name())
        .collect();
    // The tiled kernel needs 256 invocations and 16 KiB of workgroup memory; every adapter
    // shaderlens targets has them, lavapipe and llvmpipe included.
    assert_eq!(aligned, all);
    let chosen = rows.iter().filter(|r| r["choice"] != "fixed").count();
    assert_eq!(chosen, 2, "one chosen row per shape");
}

#[test]
fn text_mode_prints_a_header_and_a_line_per_row() {
    let out = shaderlens(&["bench", "gelu", "--quick"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("adapter: ") && text.contains("clock: "), "{text}");
    assert!(text.lines().any(|l| l.starts_with("gelu ") && l.contains("GB/s")), "{text}");
}

#[test]
fn unknown_op_exits_2_and_names_the_ops() {
    let out = shaderlens(&["bench", "softmaxx"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("softmaxx") && stderr.contains("layer_norm"), "{stderr}");
}

#[test]
fn shape_flag_runs_one_shape_and_checks_it() {
    let rows = rows(&["bench", "softmax", "--quick", "--json", "--shape", "3,70"]);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["shape"], serde_json::json!([3, 70]));
    let out = shaderlens(&["bench", "matmul", "--shape", "3,4"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("M,K,N"));
}

#[test]
fn no_adapter_exits_2_with_the_how_to() {
    // A backend this operating system does not have.
    let absent = if cfg!(target_os = "windows") { "metal" } else { "dx12" };
    let out = Command::new(env!("CARGO_BIN_EXE_shaderlens"))
        .args(["bench", "--quick"])
        .env("WGPU_BACKEND", absent)
        .output()
        .expect("the shaderlens binary runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("mesa-vulkan-drivers"), "{stderr}");
}
