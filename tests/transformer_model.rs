//! The model format's refusals, odd shapes against the float64 reference, recording into a
//! caller's encoder, and the `run` command end to end.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use ndarray::{ArrayD, IxDyn};
use shaderlens::fixture::{Fixture, NpyArray};
use shaderlens::reference::transformer::forward as reference_forward;
use shaderlens::transformer::cli::{cell_size, colour_map};
use shaderlens::transformer::{hook_names, Config, Intervention, Model, Names, Options, Weights};

fn fixture(case: &str, ext: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("fixtures/transformer/{case}.{ext}"))
}

fn tiny_json() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("tiny", "json")).unwrap()).unwrap()
}

fn config_error(edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>)) -> String {
    let mut json = tiny_json();
    edit(json.as_object_mut().unwrap());
    Config::from_json(&json.to_string()).unwrap_err().to_string()
}

#[test]
fn configs_with_unknown_keys_or_values_are_refused_by_name() {
    let e = config_error(|c| {
        c.insert("rotary_dimm".into(), 4.into());
    });
    assert!(e.contains("unknown field `rotary_dimm`"), "{e}");
    let e = config_error(|c| {
        c.insert("act_fn".into(), "silu".into());
    });
    assert!(e.contains("act_fn \"silu\" is not supported"), "{e}");
    let e = config_error(|c| {
        c.insert("normalization_type".into(), "RMSNorm".into());
    });
    assert!(e.contains("normalization_type \"RMSNorm\" is not supported"), "{e}");
    let e = config_error(|c| {
        c.insert("positional_embedding_type".into(), "rotary".into());
    });
    assert!(e.contains("positional_embedding_type \"rotary\" is not supported"), "{e}");
    let e = config_error(|c| {
        c.remove("eps");
    });
    assert!(e.contains("missing field `eps`"), "{e}");
    let e = config_error(|c| {
        c.insert("d_mlp".into(), serde_json::Value::Null);
    });
    assert!(e.contains("d_mlp is null but attn_only is false"), "{e}");
    let e = config_error(|c| {
        c.insert("n_heads".into(), 0.into());
    });
    assert!(e.contains("n_heads is 0"), "{e}");
    let config = Config::from_json(&tiny_json().to_string()).unwrap();
    assert_eq!(Config::from_json(&config.to_json()).unwrap(), config);
}

/// The tiny fixture's arrays with `edit` applied, as a fixture in memory.
fn tiny_arrays(edit: impl FnOnce(&mut BTreeMap<String, NpyArray>)) -> Fixture {
    let npz = Fixture::open(&fixture("tiny", "npz")).unwrap();
    let mut arrays: BTreeMap<String, NpyArray> = npz.names().map(|n| (n.to_string(), npz.get(n).unwrap().clone())).collect();
    edit(&mut arrays);
    Fixture::from_arrays("transformer", "tiny", arrays)
}

#[test]
fn weights_that_do_not_fit_the_config_are_refused_by_name() {
    let config = Config::from_file(&fixture("tiny", "json")).unwrap();
    let err = |f: Fixture| Weights::from_fixture(&config, &f).unwrap_err().to_string();
    let e = err(tiny_arrays(|a| {
        a.remove("blocks.0.mlp.W_in");
    }));
    assert!(e.contains("weight blocks.0.mlp.W_in [8, 16] is missing"), "{e}");
    let e = err(tiny_arrays(|a| {
        a.insert("blocks.0.attn.W_O".into(), NpyArray::F32(ArrayD::zeros(IxDyn(&[2, 8, 4]))));
    }));
    assert!(e.contains("weight blocks.0.attn.W_O is [2, 8, 4] but this config needs [2, 4, 8]"), "{e}");
    let e = err(tiny_arrays(|a| {
        a.insert("unembed.b_U".into(), NpyArray::F64(ArrayD::zeros(IxDyn(&[5]))));
    }));
    assert!(e.contains("weight unembed.b_U is float64 but weights must be float32"), "{e}");
    let e = err(tiny_arrays(|a| {
        a.insert("blocks.1.ln1.w".into(), NpyArray::F32(ArrayD::zeros(IxDyn(&[8]))));
    }));
    assert!(e.contains("\"blocks.1.ln1.w\", which is not a weight of this config"), "{e}");
    // Buffers are not weights.
    let f = tiny_arrays(|a| {
        a.insert("blocks.0.attn.IGNORE".into(), NpyArray::F32(ArrayD::zeros(IxDyn(&[]))));
        a.insert("blocks.0.attn.mask".into(), NpyArray::Bool(ArrayD::from_elem(IxDyn(&[4, 4]), true)));
    });
    assert!(Weights::from_fixture(&config, &f).is_ok());
}

#[test]
fn bad_tokens_hooks_and_interventions_are_refused() {
    let gpu = common::gpu();
    let model = Model::from_files(&gpu, &fixture("tiny", "json"), &fixture("tiny", "npz")).unwrap();
    let tokens = |v: Vec<i64>, shape: &[usize]| ArrayD::from_shape_vec(IxDyn(shape), v).unwrap();
    let e = model.forward(&gpu, tokens(vec![0, 5, 1], &[1, 3]).view()).unwrap_err().to_string();
    assert!(e.contains("token 5 at [0, 1] is out of range"), "{e}");
    let e = model.forward(&gpu, tokens(vec![0, -1], &[1, 2]).view()).unwrap_err().to_string();
    assert!(e.contains("token -1 at [0, 1]"), "{e}");
    let e = model.forward(&gpu, tokens(vec![0; 5], &[1, 5]).view()).unwrap_err().to_string();
    assert!(e.contains("tokens have 5 positions but the model's n_ctx is 4"), "{e}");
    let e = model.forward(&gpu, tokens(vec![0; 3], &[3]).view()).unwrap_err().to_string();
    assert!(e.contains("tokens are [3] but must be [batch, positions]"), "{e}");
    let ok = tokens(vec![1, 2], &[1, 2]);
    let run = |iv: Intervention| model.run(&gpu, ok.view(), &Options { names: Names::Nothing, interventions: &[iv] }).unwrap_err().to_string();
    let e = run(Intervention::zero("blocks.0.hook_resid_pre").at_head(0));
    assert!(e.contains("blocks.0.hook_resid_pre: this hook has no head axis"), "{e}");
    let e = run(Intervention::zero("blocks.0.attn.hook_z").at_head(2));
    assert!(e.contains("head 2 is out of range for [1, 2, 2, 4]"), "{e}");
    let e = run(Intervention::replace("hook_embed", ArrayD::zeros(IxDyn(&[1, 3, 8]))));
    assert!(e.contains("the replacement is [1, 3, 8] but the activation is [1, 2, 8]"), "{e}");
    let e = run(Intervention::zero("blocks.0.mlp.hook_out"));
    assert!(e.contains("\"blocks.0.mlp.hook_out\" is not a hook of this model"), "{e}");
}

/// Deterministic pseudo-random weights in [-0.5, 0.5) (LayerNorm weights near 1).
fn random_weights(config: &Config, seed: u64) -> Weights<ArrayD<f32>> {
    let mut state = seed;
    Weights::build(config, |name, shape| {
        let n: usize = shape.iter().product();
        let values = (0..n)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let u = (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
                if name.ends_with("ln1.w") || name.ends_with("ln2.w") || name.ends_with("final.w") { 1.0 + 0.2 * u } else { u }
            })
            .collect();
        Ok(ArrayD::from_shape_vec(IxDyn(shape), values).unwrap())
    })
    .unwrap()
}

#[test]
fn odd_shapes_match_the_reference() {
    // Sizes that are not multiples of 4 (the scalar projection and packed attention paths), every
    // normalisation, both GELUs, one-element dimensions, and a model without blocks.
    let gpu = common::gpu();
    let configs = [
        r#"{"n_layers": 2, "d_model": 6, "n_heads": 3, "d_head": 5, "d_mlp": 7, "d_vocab": 11, "d_vocab_out": 9,
            "n_ctx": 9, "act_fn": "gelu_new", "normalization_type": "LN", "attn_only": false, "eps": 1e-5,
            "positional_embedding_type": "standard"}"#,
        r#"{"n_layers": 1, "d_model": 1, "n_heads": 1, "d_head": 1, "d_mlp": 1, "d_vocab": 1, "d_vocab_out": 1,
            "n_ctx": 1, "act_fn": "gelu", "normalization_type": "LNPre", "attn_only": false, "eps": 1e-5,
            "positional_embedding_type": "standard"}"#,
        r#"{"n_layers": 2, "d_model": 12, "n_heads": 2, "d_head": 3, "d_mlp": 10, "d_vocab": 7, "d_vocab_out": 70,
            "n_ctx": 33, "act_fn": "relu", "normalization_type": null, "attn_only": false, "eps": 1e-5,
            "positional_embedding_type": "standard"}"#,
        r#"{"n_layers": 0, "d_model": 4, "n_heads": 1, "d_head": 4, "d_mlp": null, "d_vocab": 3, "d_vocab_out": 3,
            "n_ctx": 5, "act_fn": "relu", "normalization_type": "LN", "attn_only": true, "eps": 1e-5,
            "positional_embedding_type": "standard"}"#,
    ];
    for (i, json) in configs.iter().enumerate() {
        let config = Config::from_json(json).unwrap();
        let weights = random_weights(&config, i as u64 + 1);
        let (batch, seq) = (3, config.n_ctx);
        let tokens = ArrayD::from_shape_fn(IxDyn(&[batch, seq]), |ix| ((ix[0] * 5 + ix[1] * 3) % config.d_vocab) as i64);
        let model = Model::load(&gpu, config.clone(), &weights).unwrap();
        let w64 = weights.try_map(&config, |_, a| Ok(a.mapv(f64::from))).unwrap();
        let want = reference_forward(&config, &w64, tokens.view(), &Names::All, &[]).unwrap();
        let got = model.run_with_cache(&gpu, tokens.view(), Names::All).unwrap();
        common::assert_close(&got.logits, &want.logits, 1e-4, 1e-3, &format!("config {i}: logits"));
        assert_eq!(got.cache.len(), hook_names(&config).len());
        for (name, a) in got.cache.iter() {
            common::assert_close(a, want.cache.get(name).unwrap(), 1e-4, 1e-3, &format!("config {i}: {name}"));
        }
        let alone = model.forward(&gpu, tokens.view()).unwrap();
        common::assert_close(&alone, &want.logits, 1e-4, 1e-3, &format!("config {i}: logits, nothing cached"));
    }
}

#[test]
fn a_forward_pass_records_into_one_caller_encoder() {
    let gpu = common::gpu();
    let model = Model::from_files(&gpu, &fixture("gelu_new_3layer", "json"), &fixture("gelu_new_3layer", "npz")).unwrap();
    let npz = Fixture::open(&fixture("gelu_new_3layer", "npz")).unwrap();
    let tokens = npz.int_array("tokens").unwrap();
    let options = Options { names: Names::only(["blocks.1.attn.hook_pattern"]), interventions: &[] };
    let mut encoder = gpu.encoder();
    let outputs = model.record(&gpu, &mut encoder, tokens.view(), &options).unwrap();
    gpu.queue().submit([encoder.finish()]); // the caller's one submission holds the whole pass
    let logits = outputs.logits.read(&gpu).unwrap();
    let want = npz.expected("logits").unwrap();
    common::assert_close(&logits, &want, 1e-4, 1e-3, "logits recorded into the caller's encoder");
    let pattern = outputs.cache.get("blocks.1.attn.hook_pattern").unwrap().read(&gpu).unwrap();
    common::assert_close(&pattern, &npz.expected("cache.blocks.1.attn.hook_pattern").unwrap(), 1e-4, 1e-3, "pattern");
}

fn shaderlens(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_shaderlens")).args(args).output().expect("the shaderlens binary runs")
}

#[test]
fn the_run_command_writes_logits_cache_entries_and_a_pattern_grid() {
    let dir = std::env::temp_dir().join(format!("shaderlens_run_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let tokens_path = dir.join("tokens.npy");
    let tokens = ArrayD::from_shape_vec(IxDyn(&[2, 7]), vec![4i32, 1, 2, 3, 0, 5, 6, 0, 0, 1, 1, 2, 2, 3]).unwrap();
    ndarray_npy::write_npy(&tokens_path, &tokens).unwrap();
    let (out, png) = (dir.join("out.npz"), dir.join("patterns.png"));
    let path = |p: &Path| p.to_str().unwrap().to_string();
    let (json, weights) = (path(&fixture("gelu_new_3layer", "json")), path(&fixture("gelu_new_3layer", "npz")));
    let args = ["run", "--model", &json, "--weights", &weights, "--tokens", &path(&tokens_path), "--out", &path(&out)];
    let mut with_cache = args.to_vec();
    let png_path = path(&png);
    with_cache.extend(["--cache", "blocks.0.hook_resid_pre", "blocks.2.attn.hook_z", "--pattern-png", &png_path]);
    let result = shaderlens(&with_cache);
    assert_eq!(result.status.code(), Some(0), "{}", String::from_utf8_lossy(&result.stderr));
    let npz = Fixture::open(&out).unwrap();
    let names: Vec<&str> = npz.names().collect();
    assert_eq!(names, ["cache.blocks.0.hook_resid_pre", "cache.blocks.2.attn.hook_z", "logits", "tokens"]);
    assert_eq!(npz.get("logits").unwrap().shape(), Some(&[2, 7, 40][..]));
    assert_eq!(npz.get("cache.blocks.2.attn.hook_z").unwrap().shape(), Some(&[2, 7, 4, 16][..]));
    // 3 layers x 4 heads, one labelled 360 x 320 panel each, one row per layer.
    let image = image::open(&png).unwrap().to_rgb8();
    assert_eq!(image.dimensions(), (4 * 360, 3 * 320));
    let colours: std::collections::HashSet<[u8; 3]> = image.pixels().map(|p| p.0).collect();
    assert!(colours.len() > 50, "the picture has {} colours", colours.len());
    // The unlabelled grid (cells only) is still there for callers that draw it.
    let cell = cell_size(7) as u32;
    assert_eq!(cell, 63);
    assert_eq!(colour_map(0.0), [68, 1, 84]);

    let mut all = args.to_vec();
    all.extend(["--cache", "all"]);
    assert_eq!(shaderlens(&all).status.code(), Some(0));
    assert_eq!(Fixture::open(&out).unwrap().names().count(), 2 + hook_names(&Config::from_file(Path::new(&json)).unwrap()).len());

    let mut bad = args.to_vec();
    bad.extend(["--cache", "blocks.0.hook_nothing"]);
    let result = shaderlens(&bad);
    assert_eq!(result.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&result.stderr).contains("\"blocks.0.hook_nothing\" is not a hook of this model"));
    std::fs::remove_dir_all(&dir).ok();
}
