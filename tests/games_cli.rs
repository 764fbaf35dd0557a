//! `shaderlens games` as a user runs it: the files it writes hold what the library generates, no
//! temporary file is left behind, and bad arguments are refused by name with exit code 2.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ndarray::{Array2, Array3};
use ndarray_npy::NpzReader;
use shaderlens::games::generate;
use shaderlens::games::modular::{ModularData, Op};

fn shaderlens(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shaderlens")).args(args).output().expect("the shaderlens binary runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A fresh, empty folder for one test.
fn folder(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("games_cli_{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

#[test]
fn othello_writes_the_seed_s_games_and_nothing_else() {
    let dir = folder("othello");
    for compress in [false, true] {
        let out = dir.join(if compress { "z.npz" } else { "g.npz" });
        let mut args = vec!["games", "othello", "--games", "150", "--seed", "11", "--out", out.to_str().unwrap()];
        if compress {
            args.push("--compress");
        }
        let run = shaderlens(&args);
        assert_eq!(run.status.code(), Some(0), "{}", stderr(&run));
        assert!(String::from_utf8_lossy(&run.stdout).contains("150 games"));
        let want = generate(11, 0, 150, 1).unwrap();
        let mut npz = NpzReader::new(File::open(&out).unwrap()).unwrap();
        let mut names = npz.names().unwrap();
        names.sort();
        assert_eq!(names, ["boards", "legal", "player", "tokens"]);
        let tokens: Array2<i64> = npz.by_name("tokens").unwrap();
        let boards: Array3<i8> = npz.by_name("boards").unwrap();
        let player: Array2<i8> = npz.by_name("player").unwrap();
        let legal: Array3<bool> = npz.by_name("legal").unwrap();
        assert_eq!((tokens, boards, player, legal), (want.tokens, want.boards, want.player, want.legal));
    }
    assert_eq!(entries(&dir), ["g.npz", "z.npz"], "no temporary file is left");
}

#[test]
fn modular_writes_the_split() {
    let dir = folder("modular");
    let out = dir.join("data.npz");
    let run = shaderlens(&["games", "modular", "--p", "113", "--op", "add", "--train-fraction", "0.3", "--seed", "0", "--out", out.to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(0), "{}", stderr(&run));
    let want = ModularData::new(113, Op::Add, 0.3, 0).unwrap();
    let mut npz = NpzReader::new(File::open(&out).unwrap()).unwrap();
    let train_tokens: Array2<i64> = npz.by_name("train_tokens").unwrap();
    let train_targets: Array2<i64> = npz.by_name("train_targets").unwrap();
    let test_tokens: Array2<i64> = npz.by_name("test_tokens").unwrap();
    let test_targets: Array2<i64> = npz.by_name("test_targets").unwrap();
    assert_eq!(train_tokens.shape(), [3830, 3]);
    assert_eq!((train_tokens, train_targets, test_tokens, test_targets), (want.train_tokens, want.train_targets, want.test_tokens, want.test_targets));
    assert_eq!(entries(&dir), ["data.npz"]);
}

#[test]
fn bad_arguments_are_refused_by_name() {
    let dir = folder("bad");
    let out = dir.join("g.npz");
    let out = out.to_str().unwrap();
    let missing = dir.join("no/such/folder/g.npz");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["othello", "--games", "0", "--out", out], "--games must be at least 1"),
        (vec!["othello", "--games", "1000000000000", "--out", out], "GiB"),
        (vec!["othello", "--games", "-3", "--out", out], "--games"),
        (vec!["othello", "--games", "10", "--seed", "x", "--out", out], "--seed"),
        (vec!["othello", "--games", "10", "--threads", "100000", "--out", out], "--threads 100000 is more than 1024"),
        (vec!["othello", "--games", "10", "--out", dir.to_str().unwrap()], "is a folder"),
        (vec!["othello", "--games", "10", "--out", missing.to_str().unwrap()], "does not exist"),
        (vec!["othello", "--games", "10", "--out", ""], "--out"),
        (vec!["modular", "--p", "100", "--op", "add", "--train-fraction", "0.3", "--out", out], "not prime"),
        (vec!["modular", "--p", "113", "--op", "pow", "--train-fraction", "0.3", "--out", out], "--op"),
        (vec!["modular", "--p", "113", "--op", "add", "--train-fraction", "0", "--out", out], "fraction"),
        (vec!["modular", "--p", "113", "--op", "add", "--train-fraction", "0.3", "--out", dir.to_str().unwrap()], "is a folder"),
    ];
    for (args, needle) in cases {
        let run = shaderlens(&[&["games"][..], &args].concat());
        let err = stderr(&run);
        assert_eq!(run.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: expected {needle:?} in {err}");
    }
    assert!(entries(&dir).is_empty(), "a refused command writes nothing: {:?}", entries(&dir));
}
