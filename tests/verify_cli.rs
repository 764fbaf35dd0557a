//! The `verify` command as a user runs it: lines, JSON, and exit codes, over the adversarial
//! fixtures in `tests/data/verify_bad` (wrong expected values must FAIL, malformed files must give
//! ERROR naming the problem) and over good ones.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};

fn shaderlens(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shaderlens"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the shaderlens binary runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `path -> expected status` from tests/data/verify_bad/MANIFEST.tsv.
fn manifest() -> HashMap<String, String> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/verify_bad/MANIFEST.tsv"))
        .expect("manifest is readable");
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            (format!("tests/data/verify_bad/{}", cols[0]), cols[1].to_string())
        })
        .collect()
}

#[test]
fn every_bad_fixture_gets_its_status_and_the_run_exits_2() {
    let out = shaderlens(&["verify", "--json", "tests/data/verify_bad"]);
    assert_eq!(out.status.code(), Some(2), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let expected = manifest();
    let mut seen = 0;
    for line in stdout(&out).lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        let path = v["path"].as_str().expect("path is a string");
        let status = v["status"].as_str().expect("status is a string");
        let want = expected.get(path).unwrap_or_else(|| panic!("{path} is not in the manifest"));
        assert_eq!(status, want, "{path}: {}", v["message"]);
        if status == "ERROR" {
            assert!(v["message"].as_str().is_some_and(|m| m.len() > 10), "{path}: ERROR must say why");
        }
        seen += 1;
    }
    assert_eq!(seen, expected.len(), "every manifest entry gets one JSON line");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("verify: 0 passed, {seen} failed")), "stderr: {stderr}");
}

#[test]
fn a_wrong_expected_value_fails_with_exit_1_and_names_the_worst_element() {
    let out = shaderlens(&["verify", "tests/data/verify_bad/gelu/erf_expected.npz"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("adapter: "), "{text}");
    assert!(lines[1].starts_with("FAIL  gelu/erf_expected  gpu "), "{text}");
    assert!(lines[1].contains("(worst at ["), "{text}");
    assert_eq!(lines.last().copied(), Some("verify: 0 passed, 1 failed"));
}

#[test]
fn malformed_fixtures_give_error_lines_naming_the_problem() {
    let out = shaderlens(&["verify", "tests/data/verify_bad/matmul/inner_mismatch.npz", "tests/data/verify_bad/gelu/x_float64.npz", "no/such/file.npz"]);
    assert_eq!(out.status.code(), Some(2));
    let text = stdout(&out);
    assert!(text.contains("ERROR matmul/inner_mismatch: a is [3, 4] but b is [5, 6]: inner dimensions 4 and 5 differ"), "{text}");
    assert!(text.contains("ERROR gelu/x_float64: x is float64"), "{text}");
    assert!(text.contains("ERROR such/file: no such file or folder"), "{text}");
    assert!(text.ends_with("verify: 0 passed, 3 failed\n"), "{text}");
}

#[test]
fn passing_fixtures_exit_0() {
    let out = shaderlens(&["verify", "fixtures/gelu/single_element.npz", "fixtures/gelu_erf"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(text.lines().nth(1).is_some_and(|l| l.starts_with("PASS  gelu/single_element  gpu ")), "{text}");
}

#[test]
fn a_wrong_command_line_exits_2() {
    assert_eq!(shaderlens(&["verify", "--no-such-flag"]).status.code(), Some(2));
    assert_eq!(shaderlens(&["no-such-command"]).status.code(), Some(2));
}
