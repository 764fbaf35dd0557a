//! The float64 references against the fixtures that TransformerLens and PyTorch made
//! (scripts/make_grad_fixtures.py, scripts/make_train_fixtures.py), under SPEC's tolerances:
//! every `transformer_grad`, `adamw` and `train` fixture passes; the FAIL variants (a gradient 1 %
//! off, a flipped sign, a loss 0.1 % off) are caught; the ERROR variants are refused with a
//! message naming the problem.

mod grad_support;

use std::path::Path;

use grad_support::{config_from_tl, json_of, npz_files};
use shaderlens::fixture::Fixture;
use shaderlens::reference::backward::fixtures::{check_adamw, check_train, check_transformer_grad};
use shaderlens::reference::backward::train::Optimizer;
use shaderlens::Result;

fn check_grad_file(path: &Path) -> Result<shaderlens::compare::Comparison> {
    let config = config_from_tl(&json_of(path));
    check_transformer_grad(&config, &Fixture::open(path)?)
}

#[test]
fn every_transformer_grad_fixture_passes() {
    let files = npz_files("transformer_grad");
    assert!(files.len() >= 9, "{} fixtures", files.len());
    for path in files {
        let c = check_grad_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        println!("{}: ratio {:.3e}", path.display(), c.ratio);
        assert!(c.passed(), "{}: ratio {} worst {:?}", path.display(), c.ratio, c.worst);
        // The reference is far inside the tolerance: float64 against float64.
        assert!(c.ratio < 1e-3, "{}: ratio {}", path.display(), c.ratio);
    }
}

#[test]
fn fail_variants_are_caught() {
    let files = npz_files("fail/transformer_grad");
    assert_eq!(files.len(), 4);
    for path in files {
        let c = check_grad_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let worst = c.worst.clone().unwrap();
        println!("{}: ratio {:.3e} at {} {:?}", path.display(), c.ratio, worst.output, worst.index);
        assert!(!c.passed(), "{} passed with ratio {}", path.display(), c.ratio);
        let case = path.file_stem().unwrap().to_str().unwrap();
        let want_output = match case {
            "grad_one_percent_off" => "grad.blocks.0.mlp.W_in",
            "hook_grad_one_percent_off" => "cache.blocks.1.hook_resid_mid_grad",
            "flipped_sign" => "grad.blocks.1.attn.W_V",
            "loss_off" => "loss",
            other => panic!("unknown FAIL case {other}"),
        };
        assert_eq!(worst.output, want_output, "{case}");
    }
}

#[test]
fn error_variants_are_refused_by_name() {
    let files = npz_files("error/transformer_grad");
    assert_eq!(files.len(), 4);
    for path in files {
        let message = check_grad_file(&path).err().unwrap_or_else(|| panic!("{} was checked", path.display())).to_string();
        println!("{}: {message}", path.display());
        let case = path.file_stem().unwrap().to_str().unwrap();
        let want = match case {
            "targets_missing" => "missing array \"targets\"",
            "targets_misshaped" => "targets are [2, 7] but the logits are [2, 6, 11]",
            "target_out_of_range" => "target 11 at position [1, 3] is out of range",
            "no_counted_position" => "count no position",
            other => panic!("unknown ERROR case {other}"),
        };
        assert!(message.contains(want), "{case}: {message}");
    }
}

#[test]
fn every_adamw_fixture_passes() {
    let files = npz_files("adamw");
    assert!(files.len() >= 5);
    for path in files {
        let c = check_adamw(&Fixture::open(&path).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        println!("{}: ratio {:.3e}", path.display(), c.ratio);
        assert!(c.ratio < 1e-3, "{}: ratio {} worst {:?}", path.display(), c.ratio, c.worst);
    }
}

#[test]
fn every_train_fixture_passes() {
    let files = npz_files("train");
    assert!(files.len() >= 4);
    for path in files {
        let json = json_of(&path);
        let config = config_from_tl(&json["model"]);
        let optimizer = Optimizer::from_value(&json["optimizer"]).unwrap();
        let npz = Fixture::open(&path).unwrap();
        assert!(!npz.names().any(|k| k.starts_with("final.") && k.ends_with("b_K")), "SPEC leaves out final.*b_K");
        let c = check_train(&config, &optimizer, &npz).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        println!("{}: ratio {:.3e}", path.display(), c.ratio);
        assert!(c.ratio < 1e-2, "{}: ratio {} worst {:?}", path.display(), c.ratio, c.worst);
    }
}

#[test]
fn a_train_fixture_with_a_changed_final_weight_fails() {
    // The train check is not vacuous: move one final weight by 1 % of its size plus the floor.
    let path = &npz_files("train")[0];
    let json = json_of(path);
    let config = config_from_tl(&json["model"]);
    let optimizer = Optimizer::from_value(&json["optimizer"]).unwrap();
    let npz = Fixture::open(path).unwrap();
    let mut arrays = std::collections::BTreeMap::new();
    for name in npz.names() {
        arrays.insert(name.to_string(), npz.get(name).unwrap().clone());
    }
    let key = "final.unembed.W_U";
    let shaderlens::fixture::NpyArray::F64(a) = arrays.get_mut(key).unwrap() else { panic!("{key} is not float64") };
    a[[0, 0]] += 0.01 * a[[0, 0]].abs() + 2e-4;
    let bad = Fixture::from_arrays("train", "changed", arrays);
    let c = check_train(&config, &optimizer, &bad).unwrap();
    assert!(!c.passed(), "ratio {}", c.ratio);
    assert_eq!(c.worst.unwrap().output, key);
}
