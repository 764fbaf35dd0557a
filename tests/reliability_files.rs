//! Issue 14's file defects without a GPU: npz lookup and lazy reading (items 4, 10, unreadable
//! members), the fixture walk (items 5, 6), escaped text lines (item 11), and the safe writer
//! `shaderlens::io` (items 12-16).

#[path = "common/files.rs"]
mod files;

use std::path::{Path, PathBuf};

use files::{npy, npz, Scratch};
use ndarray::{ArrayD, IxDyn};
use shaderlens::fixture::{Fixture, NpyArray};
use shaderlens::io::{check_outputs, write_atomic};
use shaderlens::verify::{self, Report, Status};
use std::io::Write;

fn ones(shape: &[usize], value: f32) -> ArrayD<f32> {
    ArrayD::from_elem(IxDyn(shape), value)
}

/// Item 10: `embed.W_E.npy` (zeros, first) and `embed.W_E` (ones, last): numpy's `NpzFile`
/// takes the member stored under exactly the name asked for, and so does shaderlens.
#[test]
fn npz_lookup_takes_the_exact_name_first_as_numpy_does() {
    let bytes = npz(&[("embed.W_E.npy", npy(&ones(&[5, 8], 0.0))), ("embed.W_E", npy(&ones(&[5, 8], 1.0)))], false);
    let fixture = Fixture::from_bytes("transformer", "dup", &bytes).unwrap();
    assert_eq!(fixture.names().collect::<Vec<_>>(), ["embed.W_E"]);
    let a = fixture.input("embed.W_E").unwrap();
    assert!(a.iter().all(|&v| v == 1.0), "took the zeros: {a:?}");
    // With only the `.npy` member, the stripped name finds it.
    let bytes = npz(&[("x.npy", npy(&ones(&[2], 3.0)))], true);
    assert_eq!(Fixture::from_bytes("gelu", "x", &bytes).unwrap().input("x").unwrap()[[0]], 3.0);
}

/// Messages: an unreadable weight says why it cannot be read, not that it is missing.
#[test]
fn an_unreadable_weight_says_why() {
    let dir = Scratch::new("rel-unreadable");
    let (m, w, _) = files::tiny_model(&dir.0);
    let fixture = Fixture::open(&w).unwrap();
    let mut members: Vec<(String, Vec<u8>)> = Vec::new();
    for name in fixture.names() {
        let mut bytes = npy(&fixture.input(name).unwrap());
        if name == "embed.W_E" {
            bytes.truncate(bytes.len() - 12);
        }
        members.push((format!("{name}.npy"), bytes));
    }
    let members: Vec<(&str, Vec<u8>)> = members.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    let bad = Fixture::from_bytes("transformer", "bad", &npz(&members, true)).unwrap();
    let config = shaderlens::transformer::Config::from_file(&m).unwrap();
    let e = shaderlens::transformer::Weights::from_fixture(&config, &bad).unwrap_err().to_string();
    assert!(e.contains("embed.W_E") && e.contains("truncated") && !e.contains("missing"), "{e}");
}

/// Item 3: a config of 10^7 layers against a one-layer weights file is refused at once, naming
/// n_layers, before any per-layer table is built.
#[test]
fn a_config_with_far_more_layers_than_the_weights_is_refused_first() {
    let dir = Scratch::new("rel-layers");
    let (m, w, _) = files::tiny_model(&dir.0);
    let mut json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&m).unwrap()).unwrap();
    for layers in [10_000_000u64, 2] {
        json["n_layers"] = layers.into();
        let config = shaderlens::transformer::Config::from_json(&json.to_string()).unwrap();
        let e = shaderlens::transformer::Weights::from_fixture(&config, &Fixture::open(&w).unwrap()).unwrap_err().to_string();
        assert!(e.contains(&format!("n_layers {layers}")), "{e}");
    }
}

fn gelu_fixture() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/gelu");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files.into_iter().find(|p| p.extension().is_some_and(|e| e == "npz")).unwrap()
}

/// Item 5: symlinks back up the tree or to themselves neither loop nor count a fixture twice.
#[cfg(unix)]
#[test]
fn the_fixture_walk_survives_symlink_cycles_and_counts_each_file_once() {
    let dir = Scratch::new("rel-walk");
    std::fs::create_dir(dir.join("gelu")).unwrap();
    std::fs::copy(gelu_fixture(), dir.join("gelu/case.npz")).unwrap();
    std::os::unix::fs::symlink(".", dir.join("gelu/a")).unwrap();
    std::os::unix::fs::symlink(".", dir.join("gelu/b")).unwrap();
    std::os::unix::fs::symlink("..", dir.join("gelu/up")).unwrap();
    std::os::unix::fs::symlink("case.npz", dir.join("gelu/alias.npz")).unwrap();
    let found = verify::collect(std::slice::from_ref(&dir.0));
    let ok: Vec<_> = found.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(ok.len(), 1, "{found:?}");
    assert!(found.iter().all(|r| r.is_ok()), "{found:?}");
    // A folder given twice, or inside one already given, is listed once and is no error.
    let found = verify::collect(&[dir.0.clone(), dir.join("gelu"), dir.join("gelu/case.npz")]);
    assert!(matches!(found.as_slice(), [Ok(_)]), "{found:?}");
}

/// Item 6: a FIFO named like a fixture, given or found, is an error saying what it is (opening it
/// would block forever), and so are devices.
#[cfg(unix)]
#[test]
fn fifos_and_devices_are_errors_not_hangs() {
    let dir = Scratch::new("rel-fifo");
    std::fs::create_dir(dir.join("gelu")).unwrap();
    let fifo = dir.join("gelu/x.npz");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo (coreutils) must be installed");
    assert!(made.success());
    for paths in [vec![dir.0.clone()], vec![fifo.clone()]] {
        let found = verify::collect(&paths);
        assert!(
            matches!(found.as_slice(), [Err((p, m))] if *p == fifo && m.contains("is a FIFO, not a regular file")),
            "{found:?}"
        );
    }
    let e = Fixture::open(&fifo).unwrap_err().to_string();
    assert!(e.contains("a FIFO"), "{e}");
    let found = verify::collect(&[PathBuf::from("/dev/zero")]);
    assert!(matches!(found.as_slice(), [Err((_, m))] if m.contains("character device")), "{found:?}");
    let e = shaderlens::transformer::cli::read_tokens(&fifo).unwrap_err().to_string();
    assert!(e.contains("a FIFO"), "{e}");
}

/// Item 11: a name with a newline or an ANSI escape cannot forge a line or recolour the terminal.
#[test]
fn text_lines_escape_names_and_messages() {
    let report = Report {
        op: "gelu".into(),
        case: "x\nPASS  gelu:forged  gpu 0.000  ref 0.000\x1b[32m".into(),
        path: String::new(),
        status: Status::Error,
        gpu_ratio: None,
        ref_ratio: None,
        message: Some("bad\rname\u{202e}".into()),
    };
    let line = verify::line(&report);
    assert!(!line.contains(['\n', '\r', '\x1b', '\u{202e}']), "{line:?}");
    assert!(line.starts_with("ERROR gelu/x\\nPASS  gelu:forged"), "{line}");
    assert!(line.contains("\\u{1b}[32m") && line.contains("\\u{202e}"), "{line}");
}

/// Items 13 and 16: a write that fails leaves the old file as it was and no temporary file.
#[test]
fn a_failed_write_leaves_the_old_file_whole() {
    let dir = Scratch::new("rel-atomic");
    let path = dir.join("out.npz");
    std::fs::write(&path, b"the old file").unwrap();
    let e = write_atomic(&path, |w| {
        w.write_all(b"half of a new file").unwrap();
        Err::<(), _>(shaderlens::Error::Input("stopped halfway".into()))
    })
    .unwrap_err();
    assert!(e.to_string().contains("stopped halfway"));
    assert_eq!(std::fs::read(&path).unwrap(), b"the old file");
    assert_eq!(dir.listing(), ["out.npz"]);
    write_atomic(&path, |w| {
        w.write_all(b"the new file").unwrap();
        Ok(())
    })
    .unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"the new file");
    assert_eq!(dir.listing(), ["out.npz"]);
}

/// Item 14: writers racing on one path each leave a complete file: the last rename wins.
#[test]
fn racing_writers_never_leave_a_mixed_file() {
    let dir = Scratch::new("rel-race");
    let path = dir.join("out.bin");
    std::thread::scope(|s| {
        for t in 0..4u8 {
            let path = path.clone();
            s.spawn(move || {
                for _ in 0..10 {
                    write_atomic(&path, |w| {
                        for _ in 0..64 {
                            w.write_all(&[t; 1024]).unwrap();
                        }
                        Ok(())
                    })
                    .unwrap();
                }
            });
        }
    });
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes.len(), 64 * 1024);
    assert!(bytes.iter().all(|&b| b == bytes[0]), "a mixed file");
    assert_eq!(dir.listing(), ["out.bin"]);
}

/// Items 12, 15, 16: outputs that are inputs (by any spelling, or a hard link), each other, a
/// device, or in a missing folder are refused before anything is written.
#[cfg(unix)]
#[test]
fn outputs_that_are_inputs_devices_or_nowhere_are_refused() {
    let dir = Scratch::new("rel-outputs");
    let weights = dir.join("w.npz");
    std::fs::write(&weights, b"weights").unwrap();
    std::fs::hard_link(&weights, dir.join("link.npz")).unwrap();
    std::os::unix::fs::symlink("w.npz", dir.join("sym.npz")).unwrap();
    let inputs = [("--weights", weights.as_path())];
    let spelled = dir.0.join(".").join("w.npz");
    for (out, says) in [
        (spelled.as_path(), "same file as --weights"),
        (&dir.join("link.npz"), "same file as --weights"),
        (&dir.join("sym.npz"), "same file as --weights"),
        (Path::new("/dev/full"), "a character device"),
        (Path::new("/nonexistent/p.png"), "/nonexistent"),
        (dir.0.as_path(), "a folder"),
    ] {
        let e = check_outputs(&inputs, &[("--out", out)]).unwrap_err().to_string();
        assert!(e.contains(says), "{}: {e}", out.display());
    }
    let out = dir.join("out.npz");
    let e = check_outputs(&inputs, &[("--out", &out), ("--pattern-png", &out)]).unwrap_err().to_string();
    assert!(e.contains("--pattern-png") && e.contains("same file as --out"), "{e}");
    check_outputs(&inputs, &[("--out", &out), ("--pattern-png", &dir.join("p.png"))]).unwrap();
    assert_eq!(std::fs::read(&weights).unwrap(), b"weights");
    let e = write_atomic(Path::new("/dev/full"), |_| Ok(())).unwrap_err().to_string();
    assert!(e.contains("not a regular file"), "{e}");
}

/// An int64 array survives the trip through a lazily read npz (the reader's typed accessors).
#[test]
fn lazily_read_arrays_keep_their_types() {
    let tokens = ArrayD::from_shape_vec(IxDyn(&[1, 3]), vec![1i64, 2, 3]).unwrap();
    let bytes = npz(&[("tokens.npy", npy(&tokens)), ("junk.npy", b"not an npy file".to_vec())], true);
    let fixture = Fixture::from_bytes("transformer", "t", &bytes).unwrap();
    assert_eq!(fixture.int_array("tokens").unwrap(), tokens);
    assert!(matches!(fixture.get("junk"), Err(e) if e.to_string().contains("not an npy file")));
    assert!(matches!(fixture.get("tokens"), Ok(NpyArray::I64(_))));
}
