//! `shaderlens analyze lens | dla | patch` (issue 17 item 6): each writes its numbers and a
//! PNG that is not blank, the numbers are the GPU readings that tests/lens.rs checks against
//! TransformerLens, and bad inputs are refused by name with exit code 2.

#[path = "common/files.rs"]
mod files;

use std::path::Path;
use std::process::Command;

use ndarray::ArrayD;
use shaderlens::fixture::Fixture;

use files::{npy, npz, Scratch};

/// Splits tests/data/lens/ln.npz into a weights npz and a prompts npz in `dir`.
fn split(dir: &Scratch) -> (String, String, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fixture = Fixture::open(&root.join("tests/data/lens/ln.npz")).unwrap();
    let config = shaderlens::transformer::Config::from_file(&root.join("tests/data/lens/ln.json")).unwrap();
    let mut weights = Vec::new();
    for (name, _) in shaderlens::transformer::weights::weight_shapes(&config) {
        let a: ArrayD<f32> = fixture.input(&name).unwrap();
        weights.push((name, npy(&a)));
    }
    let members: Vec<(&str, Vec<u8>)> = weights.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    std::fs::write(dir.join("w.npz"), npz(&members, false)).unwrap();
    let prompts: Vec<(&str, Vec<u8>)> = [("clean", "tokens"), ("answer", "answer"), ("wrong", "wrong")].iter().map(|&(k, src)| (k, npy(&fixture.int_array(src).unwrap()))).collect();
    std::fs::write(dir.join("p.npz"), npz(&prompts, false)).unwrap();
    let s = |p: std::path::PathBuf| p.display().to_string();
    (s(root.join("tests/data/lens/ln.json")), s(dir.join("w.npz")), s(dir.join("p.npz")))
}

fn shaderlens(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_shaderlens")).args(args).output().unwrap()
}

/// A PNG of at least `min` pixels a side with more than a handful of colours.
fn assert_picture(path: &Path, min: u32) {
    let image = image::open(path).unwrap().to_rgb8();
    assert!(image.width() >= min && image.height() >= min / 2, "{} is {}x{}", path.display(), image.width(), image.height());
    let colours: std::collections::HashSet<[u8; 3]> = image.pixels().map(|p| p.0).collect();
    assert!(colours.len() > 20, "{} has only {} colours", path.display(), colours.len());
}

#[test]
fn lens_and_dla_write_numbers_and_pictures() {
    let dir = Scratch::new("analyze_cli");
    let (model, weights, prompts) = split(&dir);
    for what in ["lens", "dla"] {
        let (out, png) = (dir.join(&format!("{what}.npz")), dir.join(&format!("{what}.png")));
        let run = shaderlens(&["analyze", what, "--model", &model, "--weights", &weights, "--prompts", &prompts, "--out", out.to_str().unwrap(), "--png", png.to_str().unwrap()]);
        assert!(run.status.success(), "{what}: {}", String::from_utf8_lossy(&run.stderr));
        assert_picture(&png, 400);
        let written = Fixture::open(&out).unwrap();
        let want = Fixture::open(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/lens/ln.npz")).unwrap();
        let (key, expect) = if what == "lens" { ("logit_lens", "logit_lens") } else { ("logit_attrs.heads", "logit_attrs.heads") };
        let got = written.expected(key).unwrap();
        let want = want.expected(expect).unwrap();
        let got = if what == "dla" { got.index_axis(ndarray::Axis(2), got.shape()[2] - 1).to_owned() } else { got };
        assert_eq!(got.shape(), want.shape(), "{what} {key}");
        for (g, w) in got.iter().zip(want.iter()) {
            assert!((g - w).abs() < 1e-3 + 1e-3 * w.abs(), "{what} {key}: {g} vs {w}");
        }
    }
}

#[test]
fn patch_heat_maps_are_drawn_and_bad_inputs_refused() {
    let dir = Scratch::new("analyze_cli_patch");
    let (model, weights, prompts) = split(&dir);
    // Corrupt = clean with the last token changed: enough for `shaderlens patch`.
    let fixture = Fixture::open(Path::new(&prompts)).unwrap();
    let clean = fixture.int_array("clean").unwrap();
    let mut corrupt = clean.clone();
    for b in 0..clean.shape()[0] {
        corrupt[[b, clean.shape()[1] - 1]] = (clean[[b, clean.shape()[1] - 1]] + 1) % 11;
    }
    let members = [("clean", npy(&clean)), ("corrupt", npy(&corrupt)), ("answer", npy(&fixture.int_array("answer").unwrap())), ("wrong", npy(&fixture.int_array("wrong").unwrap()))];
    std::fs::write(dir.join("pairs.npz"), npz(&members, false)).unwrap();
    let sweeps = dir.join("sweeps.npz");
    let run = shaderlens(&["patch", "--model", &model, "--weights", &weights, "--prompts", dir.join("pairs.npz").to_str().unwrap(), "--out", sweeps.to_str().unwrap(), "--sweep", "resid_pre", "z_all_pos", "z_by_pos"]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let png = dir.join("sweeps.png");
    let run = shaderlens(&["analyze", "patch", "--sweeps", sweeps.to_str().unwrap(), "--png", png.to_str().unwrap()]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    // The summary names what it drew: z_by_pos (three axes) as one map per layer (2 layers).
    let said = String::from_utf8_lossy(&run.stdout);
    assert!(said.contains("4 heat maps of the patched metric (patch.resid_pre, patch.z_all_pos, patch.z_by_pos (one per layer))") && !said.contains("not drawn"), "{said}");
    assert_picture(&png, 800);
    // The same sweeps as the fraction of the clean-corrupt difference restored.
    let restored = dir.join("restored.png");
    let run = shaderlens(&["analyze", "patch", "--sweeps", sweeps.to_str().unwrap(), "--png", restored.to_str().unwrap(), "--restored"]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(String::from_utf8_lossy(&run.stdout).contains("4 heat maps of the fraction restored"), "{}", String::from_utf8_lossy(&run.stdout));
    assert_picture(&restored, 800);
    // Identical clean and corrupt prompts leave nothing to restore: refused by name, nothing drawn.
    let same = [("clean", npy(&clean)), ("corrupt", npy(&clean)), ("answer", npy(&fixture.int_array("answer").unwrap())), ("wrong", npy(&fixture.int_array("wrong").unwrap()))];
    std::fs::write(dir.join("same.npz"), npz(&same, false)).unwrap();
    let same_sweeps = dir.join("same_sweeps.npz");
    let run = shaderlens(&["patch", "--model", &model, "--weights", &weights, "--prompts", dir.join("same.npz").to_str().unwrap(), "--out", same_sweeps.to_str().unwrap(), "--sweep", "resid_pre"]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let never = dir.join("never.png");
    let run = shaderlens(&["analyze", "patch", "--sweeps", same_sweeps.to_str().unwrap(), "--png", never.to_str().unwrap(), "--restored"]);
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("clean and corrupt metrics are equal"), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(!never.exists());
    // The picture may not replace its input.
    let run = shaderlens(&["analyze", "patch", "--sweeps", sweeps.to_str().unwrap(), "--png", sweeps.to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("--png"), "{}", String::from_utf8_lossy(&run.stderr));
    // A prompts file without `wrong` is refused by name.
    std::fs::write(dir.join("no_wrong.npz"), npz(&members[..3], false)).unwrap();
    let out = dir.join("x.npz");
    let run = shaderlens(&["analyze", "dla", "--model", &model, "--weights", &weights, "--prompts", dir.join("no_wrong.npz").to_str().unwrap(), "--out", out.to_str().unwrap(), "--png", dir.join("x.png").to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("wrong"), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(!out.exists(), "a refused run wrote its output");
}
