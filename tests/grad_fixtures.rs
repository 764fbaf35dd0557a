//! The float64 references against the fixtures that TransformerLens and PyTorch made
//! (scripts/make_grad_fixtures.py, scripts/make_train_fixtures.py), under SPEC's tolerances:
//! every `transformer_grad`, `adamw` and `train` fixture passes; the FAIL variants (a gradient 1 %
//! off, a flipped sign, a loss 0.1 % off, an AdamW output or a final weight just out of
//! tolerance) are caught at the changed array; the ERROR variants are refused with a message
//! naming the problem; the clipped training fixtures really clip.

mod grad_support;

use std::path::Path;

use grad_support::{json_of, npz_files};
use shaderlens::transformer::Config;
use shaderlens::fixture::Fixture;
use shaderlens::reference::backward::fixtures::{check_adamw, check_train, check_transformer_grad, weights_from_fixture};
use shaderlens::reference::backward::train::{train, Optimizer};
use shaderlens::Result;

fn check_grad_file(path: &Path) -> Result<shaderlens::compare::Comparison> {
    let config = Config::from_file(&path.with_extension("json"))?;
    check_transformer_grad(&config, &Fixture::open(path)?)
}

/// The adversarial `transformer_grad` cases named `cases` (tests/data/verify_bad/transformer_grad).
fn bad_grad_files(cases: &[&str]) -> Vec<std::path::PathBuf> {
    npz_files("transformer_grad_bad").into_iter().filter(|p| cases.iter().any(|c| p.file_stem().is_some_and(|s| s == *c))).collect()
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
    let files = bad_grad_files(&["grad_one_percent_off", "hook_grad_one_percent_off", "flipped_sign", "loss_off"]);
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
    let files = bad_grad_files(&["targets_missing", "targets_misshaped", "target_out_of_range", "no_counted_position"]);
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
        let config = Config::from_json(&json["model"].to_string()).unwrap();
        let optimizer = Optimizer::from_value(&json["optimizer"]).unwrap();
        let npz = Fixture::open(&path).unwrap();
        assert!(!npz.names().any(|k| k.starts_with("final.") && k.ends_with("b_K")), "SPEC leaves out final.*b_K");
        let c = check_train(&config, &optimizer, &npz).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        println!("{}: ratio {:.3e}", path.display(), c.ratio);
        assert!(c.ratio < 1e-2, "{}: ratio {} worst {:?}", path.display(), c.ratio, c.worst);
    }
}

fn check_train_file(path: &Path) -> Result<shaderlens::compare::Comparison> {
    let json = json_of(path);
    let config = Config::from_json(&json["model"].to_string()).unwrap();
    let optimizer = Optimizer::from_value(&json["optimizer"])?;
    check_train(&config, &optimizer, &Fixture::open(path)?)
}

#[test]
fn adamw_and_train_fail_variants_are_caught() {
    for (folder, want) in [
        ("fail/adamw", vec![("param_out_off", "param_out"), ("m_out_flipped", "m_out")]),
        ("fail/train", vec![("final_off", "final.blocks.0.mlp.W_in"), ("losses_off", "losses")]),
    ] {
        let files: Vec<_> = npz_files(folder).into_iter().filter(|p| want.iter().any(|(n, _)| p.file_stem().is_some_and(|s| s == *n))).collect();
        assert_eq!(files.len(), want.len(), "{folder}");
        for path in files {
            let c = if folder.ends_with("adamw") { check_adamw(&Fixture::open(&path).unwrap()) } else { check_train_file(&path) }
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let case = path.file_stem().unwrap().to_str().unwrap();
            let worst = c.worst.clone().unwrap();
            println!("{folder}/{case}: ratio {:.3e} at {}", c.ratio, worst.output);
            assert!(!c.passed(), "{folder}/{case} passed");
            let (_, output) = want.iter().find(|(n, _)| *n == case).unwrap_or_else(|| panic!("unknown case {case}"));
            assert_eq!(worst.output, *output, "{folder}/{case}");
        }
    }
}

#[test]
fn adamw_and_train_error_variants_are_refused_by_name() {
    let cases = [
        ("error/adamw", "step_zero", "step is 0"),
        ("error/adamw", "step_missing", "missing array \"step\""),
        ("error/adamw", "grad_shape_differs", "adamw grad is [3, 4] but param is [3, 5]"),
        ("error/adamw", "beta2_one", "beta2 is 1 but must lie in [0, 1)"),
        ("error/train", "lr_wrong_length", "lr [4]"),
        ("error/train", "target_out_of_range", "train update 2: target 99 at position [1, 0] is out of range"),
        ("error/train", "targets_missing", "missing array \"targets\""),
    ];
    for folder in ["error/adamw", "error/train"] {
        let mine = |p: &std::path::PathBuf| cases.iter().any(|c| c.0 == folder && p.file_stem().is_some_and(|s| s == c.1));
        let files: Vec<_> = npz_files(folder).into_iter().filter(mine).collect();
        assert_eq!(files.len(), cases.iter().filter(|c| c.0 == folder).count(), "{folder}");
        for path in files {
            let case = path.file_stem().unwrap().to_str().unwrap();
            let result = if folder.ends_with("adamw") { check_adamw(&Fixture::open(&path).unwrap()) } else { check_train_file(&path) };
            let message = result.err().unwrap_or_else(|| panic!("{folder}/{case} was checked")).to_string();
            println!("{folder}/{case}: {message}");
            let (_, _, want) = cases.iter().find(|c| c.0 == folder && c.1 == case).unwrap_or_else(|| panic!("unknown case {case}"));
            assert!(message.contains(want), "{folder}/{case}: {message}");
        }
    }
}

#[test]
fn the_clipped_train_fixtures_really_clip() {
    // Clipping is exercised only if some update's norm exceeds max_grad_norm; without clipping
    // the same run must end elsewhere (so the fixture tells clipping from no clipping).
    for case in ["clipped_warmup", "grokking_shaped"] {
        let path = npz_files("train").into_iter().find(|p| p.file_stem().unwrap() == case).unwrap();
        let json = json_of(&path);
        let config = Config::from_json(&json["model"].to_string()).unwrap();
        let optimizer = Optimizer::from_value(&json["optimizer"]).unwrap();
        let max = optimizer.max_grad_norm.unwrap();
        let npz = Fixture::open(&path).unwrap();
        let weights = weights_from_fixture(&config, &npz).unwrap();
        let (tokens, targets) = (npz.int_array("tokens").unwrap(), npz.int_array("targets").unwrap());
        let lr: Vec<f64> = npz.expected("lr").unwrap().iter().copied().collect();
        let run = train(&config, &weights, tokens.view(), targets.view(), &lr, &optimizer).unwrap();
        println!("{case}: gradient norms {:?}, max {max}", run.grad_norms);
        assert!(run.grad_norms.iter().any(|&n| n > 1.5 * max), "{case}: {:?}", run.grad_norms);
        let unclipped = Optimizer { max_grad_norm: None, ..optimizer };
        assert!(check_train(&config, &unclipped, &npz).unwrap().ratio > 1.0, "{case}: no clipping passes too");
    }
}
