//! Issue 14 through the command line: bench shapes no machine holds (items 1, 2), `run`'s outputs
//! (items 12, 15, 16), `verify` on FIFOs and symlink loops (items 5, 6), and typos in `--cache`
//! and in environment variables, refused by name. `run` and `verify` need an adapter (lavapipe
//! will do); without one they exit 2 and these tests fail saying so.

#[path = "common/files.rs"]
mod files;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use files::Scratch;

/// Runs shaderlens with `args` and `env`, killing it (and failing) after `limit`: a hang is a bug.
fn shaderlens(args: &[&str], env: &[(&str, &str)], limit: Duration) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_shaderlens"));
    command.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            child.kill().unwrap();
            panic!("shaderlens {args:?} still ran after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const MINUTE: Duration = Duration::from_secs(60);

/// Items 1 and 2: shapes whose buffers or host copies no machine here holds are refused before
/// anything is allocated, with exit 2 and the limit named; none panics or aborts.
#[test]
fn bench_shapes_beyond_the_limits_are_refused_up_front() {
    for (op, shape) in [
        ("gelu", "18446744073709551615"),
        ("matmul", "100000,100000,100000"),
        ("transformer", "1,1,1,4294967297"),
        ("transformer", "1,1,1000000,8"),
        ("softmax", "4294967296,1"),
        ("attention", "65536,64,65536,64"),
    ] {
        let out = shaderlens(&["bench", op, "--shape", shape, "--quick"], &[], MINUTE);
        let e = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{op} {shape}: {e}");
        assert!(!e.contains("panicked"), "{op} {shape}: {e}");
        assert!(e.contains("memory") || e.contains("max_") || e.contains("too large"), "{op} {shape}: {e}");
    }
}

/// Typos in variables that change what runs are refused by name, under every command.
#[test]
fn typos_in_environment_variables_are_refused_by_name() {
    let dir = Scratch::new("rel-env");
    let (m, w, t) = files::tiny_model(&dir.0);
    let out = dir.join("out.npz");
    let run = ["run", "--model", m.to_str().unwrap(), "--weights", w.to_str().unwrap(), "--tokens", t.to_str().unwrap(), "--out", out.to_str().unwrap()];
    for (name, value) in [
        ("SHADERLENS_MATMUL_VARIANT", "bogus"),
        ("WGPU_POWER_PREF", "bogus"),
        ("SHADERLENS_AUTOTUNE", "maybe"),
        ("SHADERLENS_BENCH_LARGE", "false"),
        ("WGPU_BACKEND", "vulkan,bogus"),
    ] {
        for args in [&run[..], &["verify", "fixtures/gelu"], &["bench", "gelu", "--quick"]] {
            let result = shaderlens(args, &[(name, value)], MINUTE);
            let e = stderr(&result);
            assert_eq!(result.status.code(), Some(2), "{name}={value} {args:?}: {e}");
            assert!(e.contains(&format!("{name}=\"{value}\" is not a value it takes")), "{e}");
        }
    }
    assert!(!out.exists());
}

fn run_args<'a>(m: &'a Path, w: &'a Path, t: &'a Path, out: &'a Path) -> Vec<&'a str> {
    vec!["run", "--model", m.to_str().unwrap(), "--weights", w.to_str().unwrap(), "--tokens", t.to_str().unwrap(), "--out", out.to_str().unwrap()]
}

/// Items 12, 15, 16 and the `--cache` typo: every refusal exits 2 and leaves every file as it was.
#[test]
fn run_refuses_bad_outputs_before_writing_anything() {
    let dir = Scratch::new("rel-run");
    let (m, w, t) = files::tiny_model(&dir.0);
    let out = dir.join("out.npz");
    std::fs::write(&out, b"an older result").unwrap();
    let weights = std::fs::read(&w).unwrap();
    let base = run_args(&m, &w, &t, &out);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (run_args(&m, &w, &t, &w), "--out"),
        (run_args(&m, &w, &t, &m), "same file as --model"),
        (run_args(&m, &w, &t, &t), "same file as --tokens"),
        ([&base[..], &["--pattern-png", out.to_str().unwrap()]].concat(), "same file as --out"),
        ([&base[..], &["--pattern-png", "/nonexistent/p.png"]].concat(), "/nonexistent"),
        ([&base[..], &["--pattern-png", "/dev/full"]].concat(), "character device"),
        ([&base[..], &["--cache", "all", "bogus.name"]].concat(), "bogus.name"),
    ];
    for (args, says) in cases {
        let result = shaderlens(&args, &[], MINUTE);
        let e = stderr(&result);
        assert_eq!(result.status.code(), Some(2), "{args:?}: {e}");
        assert!(e.contains(says), "{args:?}: {e}");
        assert!(!e.contains("ZipWriter"), "{e}");
        assert_eq!(std::fs::read(&out).unwrap(), b"an older result", "{args:?} touched --out");
        assert_eq!(std::fs::read(&w).unwrap(), weights, "{args:?} touched --weights");
    }
    // A model with no layers has no patterns to draw: refused before --out is replaced.
    let mut json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&m).unwrap()).unwrap();
    json["n_layers"] = 0.into();
    let m0 = dir.join("m0.json");
    std::fs::write(&m0, json.to_string()).unwrap();
    let fixture = shaderlens::fixture::Fixture::open(&w).unwrap();
    let members: Vec<(String, Vec<u8>)> = fixture
        .names()
        .filter(|n| !n.starts_with("blocks."))
        .map(|n| (format!("{n}.npy"), files::npy(&fixture.input(n).unwrap())))
        .collect();
    let members: Vec<(&str, Vec<u8>)> = members.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    let w0 = dir.join("w0.npz");
    std::fs::write(&w0, files::npz(&members, false)).unwrap();
    let png = dir.join("p.png");
    let args = [&run_args(&m0, &w0, &t, &out)[..], &["--pattern-png", png.to_str().unwrap()]].concat();
    let result = shaderlens(&args, &[], MINUTE);
    assert_eq!(result.status.code(), Some(2), "{}", stderr(&result));
    assert!(stderr(&result).contains("no layers"), "{}", stderr(&result));
    assert_eq!(std::fs::read(&out).unwrap(), b"an older result");
    assert!(!png.exists());
    // And a good run replaces both, leaving no temporary file behind.
    let args = [&base[..], &["--pattern-png", png.to_str().unwrap(), "--cache", "blocks.0.attn.hook_pattern"]].concat();
    let result = shaderlens(&args, &[], MINUTE);
    assert_eq!(result.status.code(), Some(0), "{}", stderr(&result));
    let written = shaderlens::fixture::Fixture::open(&out).unwrap();
    assert_eq!(written.names().collect::<Vec<_>>(), ["cache.blocks.0.attn.hook_pattern", "logits", "tokens"]);
    assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"));
    assert!(dir.listing().iter().all(|n| !n.ends_with(".tmp")), "{:?}", dir.listing());
}

/// Item 3 and the message rule: a config of 10^7 layers fails at once naming n_layers, and a
/// config value of a megabyte is not echoed whole.
#[test]
fn run_refuses_absurd_configs_quickly_and_briefly() {
    let dir = Scratch::new("rel-config");
    let (m, w, t) = files::tiny_model(&dir.0);
    let out = dir.join("out.npz");
    let mut json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&m).unwrap()).unwrap();
    json["n_layers"] = 10_000_000.into();
    std::fs::write(&m, json.to_string()).unwrap();
    let result = shaderlens(&run_args(&m, &w, &t, &out), &[], MINUTE);
    assert_eq!(result.status.code(), Some(2));
    assert!(stderr(&result).contains("n_layers 10000000"), "{}", stderr(&result));
    json["n_layers"] = 1.into();
    json["act_fn"] = "x".repeat(1 << 20).into();
    std::fs::write(&m, json.to_string()).unwrap();
    let result = shaderlens(&run_args(&m, &w, &t, &out), &[], MINUTE);
    let e = stderr(&result);
    assert_eq!(result.status.code(), Some(2));
    assert!(e.contains("act_fn") && e.len() < 5000, "{} bytes: {}", e.len(), &e[..e.len().min(300)]);
    assert!(!out.exists());
}

/// Items 5 and 6 end to end: `verify` on a folder with symlink loops and a FIFO finishes, counts
/// the one fixture once and reports the FIFO as an ERROR naming what it is.
#[cfg(unix)]
#[test]
fn verify_finishes_on_symlink_loops_and_fifos() {
    let dir = Scratch::new("rel-verify");
    std::fs::create_dir(dir.join("gelu")).unwrap();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/gelu");
    let first = std::fs::read_dir(&source).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "npz")).min().unwrap();
    std::fs::copy(first, dir.join("gelu/case.npz")).unwrap();
    std::os::unix::fs::symlink(".", dir.join("gelu/a")).unwrap();
    std::os::unix::fs::symlink("..", dir.join("gelu/up")).unwrap();
    assert!(Command::new("mkfifo").arg(dir.join("gelu/x.npz")).status().unwrap().success());
    let result = shaderlens(&["verify", dir.0.to_str().unwrap()], &[], MINUTE);
    let text = String::from_utf8_lossy(&result.stdout);
    assert_eq!(result.status.code(), Some(2), "{text}");
    assert_eq!(text.lines().filter(|l| l.starts_with("PASS  gelu/case")).count(), 1, "{text}");
    assert!(text.lines().any(|l| l.starts_with("ERROR gelu/x") && l.contains("a FIFO")), "{text}");
    assert!(text.contains("verify: 1 passed, 1 failed"), "{text}");
}
