//! Model configs as TransformerLens saves them (`json.dump(model.cfg.to_dict(), f, default=str)`):
//! every field of `HookedTransformerConfig` is known, those that cannot change the forward pass are
//! ignored, those that can are read or refused by name with their value, and a key TransformerLens
//! does not know is refused. `fixtures/transformer/tiny.json` is such a full config, written by
//! TransformerLens 3.9 itself.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{json, Map, Value};
use shaderlens::transformer::config::tl_fields::{Rule, FIELDS};
use shaderlens::transformer::{Activation, Config};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// tiny.json: the full `to_dict()` config of a 1-layer model (d_head 4, n_heads 2, LN, relu).
fn full() -> Map<String, Value> {
    let text = std::fs::read_to_string(root().join("fixtures/transformer/tiny.json")).unwrap();
    match serde_json::from_str(&text).unwrap() {
        Value::Object(map) => map,
        other => panic!("tiny.json is not an object: {other}"),
    }
}

fn parse(map: &Map<String, Value>) -> Result<Config, String> {
    Config::from_json(&Value::Object(map.clone()).to_string()).map_err(|e| e.to_string())
}

fn with(edits: &[(&str, Value)]) -> Result<Config, String> {
    let mut map = full();
    for (key, value) in edits {
        map.insert(key.to_string(), value.clone());
    }
    parse(&map)
}

fn refused(edits: &[(&str, Value)]) -> String {
    match with(edits) {
        Ok(config) => panic!("{edits:?} was accepted: {config:?}"),
        Err(e) => e,
    }
}

#[test]
fn the_field_table_is_exactly_transformerlens_to_dict() {
    let saved: BTreeSet<String> = full().keys().cloned().collect();
    let table: BTreeSet<String> = FIELDS.iter().map(|(name, _)| name.to_string()).collect();
    assert_eq!(FIELDS.len(), table.len(), "a field is listed twice");
    assert_eq!(saved, table, "tiny.json (TransformerLens 3.9's to_dict) and tl_fields::FIELDS differ");
}

#[test]
fn a_full_config_reads_as_its_spec_keys() {
    let map = full();
    let spec: Map<String, Value> = shaderlens::transformer::config::CONFIG_KEYS
        .iter()
        .map(|k| (k.to_string(), map[*k].clone()))
        .collect();
    let config = parse(&map).unwrap();
    assert_eq!(config, parse(&spec).unwrap());
    assert_eq!(config.score_scale(0), 0.5, "attn_scale 2.0 = sqrt(d_head 4)");
    assert!(config.causal);
    assert_eq!(Config::from_json(&config.to_json()).unwrap(), config);
}

#[test]
fn fields_that_do_not_change_the_forward_pass_are_ignored_whatever_their_value() {
    let base = parse(&full()).unwrap();
    let edits = [
        ("device", json!("cuda:3")),
        ("dtype", json!("torch.bfloat16")),
        ("seed", json!(1234)),
        ("model_name", json!("x".repeat(500))),
        ("n_params", json!(1)),
        ("initializer_range", json!(7.5)),
        ("tokenizer_name", json!("gpt2")),
        ("default_prepend_bos", json!(false)),
        ("rotary_dim", json!(64)),
        ("rotary_base", json!(500000)),
        ("window_size", json!(3)),
        ("attn_types", json!(["global", "local"])),
        ("tie_word_embeddings", json!(true)),
        ("uses_rms_norm", json!(true)),
        ("original_architecture", json!("GPT2LMHeadModel")),
    ];
    for (key, value) in edits {
        assert_eq!(with(&[(key, value.clone())]).unwrap(), base, "{key} = {value}");
    }
    // Values that are TransformerLens's no-op for a field that could change the forward pass.
    for (key, value) in [
        ("output_logits_soft_cap", json!(0.0)),
        ("attn_scores_soft_cap", json!(-1.0)),
        ("attn_scores_soft_cap", Value::Null),
        ("final_rms", json!(false)),
        ("n_key_value_heads", Value::Null),
        ("n_key_value_heads", json!(2)),
        ("num_experts", Value::Null),
    ] {
        assert_eq!(with(&[(key, value.clone())]).unwrap(), base, "{key} = {value}");
    }
}

#[test]
fn fields_that_change_the_forward_pass_are_refused_by_name_with_their_value() {
    let cases = [
        ("n_key_value_heads", json!(1)),
        ("gated_mlp", json!(true)),
        ("num_experts", json!(4)),
        ("experts_per_token", json!(2)),
        ("use_qk_norm", json!(true)),
        ("clip_qkv", json!(8.0)),
        ("use_logn_attn", json!(true)),
        ("use_local_attn", json!(true)),
        ("original_architecture", json!("Olmo2ForCausalLM")),
        ("post_embedding_ln", json!(true)),
        ("load_in_4bit", json!(true)),
        ("use_normalization_before_and_after", json!(true)),
        ("attn_scores_soft_cap", json!(50.0)),
        ("output_logits_soft_cap", json!(30.0)),
        ("use_attention_sinks", json!(true)),
    ];
    for (key, value) in &cases {
        let e = refused(&[(key, value.clone())]);
        assert!(e.contains(&format!("{key} is {value} but shaderlens needs")), "{key}: {e}");
    }
    // Every refusable field of the table is exercised above.
    let tested: BTreeSet<&str> = cases.iter().map(|(k, _)| *k).collect();
    for (name, rule) in FIELDS {
        if let Rule::Refused { .. } = rule {
            assert!(tested.contains(name), "no refusal test for {name}");
        }
    }
    // A long value is cut short in the message.
    let e = refused(&[("clip_qkv", json!(vec![1.5; 100]))]);
    assert!(e.contains("clip_qkv is [1.5,1.5,") && e.contains(",... but") && e.len() < 300, "{e}");
}

#[test]
fn spec_values_shaderlens_does_not_implement_are_refused_by_name() {
    for (key, value, want) in [
        ("act_fn", json!("silu"), "act_fn \"silu\" is not supported"),
        ("act_fn", json!("relu2"), "act_fn \"relu2\" is not supported"),
        ("normalization_type", json!("RMSNorm"), "normalization_type \"RMSNorm\" is not supported"),
        ("positional_embedding_type", json!("alibi"), "positional_embedding_type \"alibi\" is not supported"),
        ("positional_embedding_type", json!("rotary"), "positional_embedding_type \"rotary\" is not supported"),
        ("final_rms", json!("yes"), "final_rms is \"yes\" but must be true or false"),
        ("use_attn_result", json!(1), "use_attn_result is 1 but must be true or false"),
        ("attention_dir", json!("sideways"), "attention_dir is \"sideways\""),
        ("attn_scale", json!(0.0), "attn_scale is 0.0 but must be a finite number > 0"),
        ("use_attn_scale", json!("yes"), "use_attn_scale is \"yes\" but must be true or false"),
        ("n_layers", json!(-1), "n_layers is -1 but must be a whole number"),
        ("d_vocab_out", json!(2.5), "d_vocab_out is 2.5 but must be a whole number"),
        ("attn_scael", json!(2.0), "unknown field `attn_scael`"),
    ] {
        let e = refused(&[(key, value)]);
        assert!(e.contains(want), "{key}: {e}");
    }
    let e = Config::from_json("[1, 2]").unwrap_err().to_string();
    assert!(e.contains("expected a JSON object"), "{e}");
}

#[test]
fn attention_only_models_ignore_d_mlp_and_act_fn() {
    for (d_mlp, act_fn) in [(json!(32), json!("relu")), (Value::Null, Value::Null), (json!(4), json!("solu_ln"))] {
        let config = with(&[("attn_only", json!(true)), ("d_mlp", d_mlp), ("act_fn", act_fn)]).unwrap();
        assert_eq!(config.mlp(), None);
        assert_eq!(config.d_mlp, None);
        assert_eq!(Config::from_json(&config.to_json()).unwrap(), config);
    }
    // MLP features do not matter without an MLP; neither does final_rms without normalisation.
    assert!(with(&[("attn_only", json!(true)), ("gated_mlp", json!(true)), ("num_experts", json!(8))]).is_ok());
    assert!(with(&[("normalization_type", Value::Null), ("final_rms", json!(true))]).is_ok());
    let e = refused(&[("attn_only", json!(true)), ("parallel_attn_mlp", json!(true))]);
    assert!(e.contains("parallel_attn_mlp is true but attn_only is true"), "{e}");
    let parallel = with(&[("parallel_attn_mlp", json!(true))]).unwrap();
    assert!(parallel.parallel_attn_mlp);
    assert_eq!(parallel.variants(), ["parallel_attn_mlp true"]);
    assert_eq!(Config::from_json(&parallel.to_json()).unwrap(), parallel);
}

#[test]
fn the_attention_scale_and_direction_are_read() {
    let scale = |edits: &[(&str, Value)], layer| with(edits).unwrap().score_scale(layer);
    assert_eq!(scale(&[("use_attn_scale", json!(false)), ("attn_scale", json!(-1.0))], 0), 1.0);
    assert_eq!(scale(&[("use_attn_scale", json!(false)), ("attn_scale", json!(7.0))], 0), 1.0);
    assert_eq!(scale(&[("attn_scale", json!(8.0))], 0), 0.125);
    assert_eq!(scale(&[("attn_scale", json!(-1.0))], 0), 0.5);
    assert_eq!(scale(&[("scale_attn_by_inverse_layer_idx", json!(true))], 3), 1.0 / 8.0);
    assert_eq!(scale(&[("scale_attn_by_inverse_layer_idx", json!(true)), ("use_attn_scale", json!(false))], 1), 0.5);
    let config = with(&[("attention_dir", json!("bidirectional")), ("attn_scale", json!(3.0))]).unwrap();
    assert!(!config.causal);
    assert_eq!(Config::from_json(&config.to_json()).unwrap(), config);
    assert_eq!(config.variants(), ["attn_scale 3 (use_attn_scale false means 1)", "attention_dir \"bidirectional\""]);
    let e = config.refuse_variants("the backward pass").unwrap_err().to_string();
    assert!(e.contains("the backward pass does not implement attn_scale 3"), "{e}");
    // A plain model, and the GELU variants, are plain.
    assert!(with(&[]).unwrap().variants().is_empty());
    assert!(with(&[("act_fn", json!("gelu_fast")), ("attn_scale", json!(-1.0))]).unwrap().refuse_variants("x").is_ok());
    let by_layer = with(&[("scale_attn_by_inverse_layer_idx", json!(true))]).unwrap();
    assert_eq!(by_layer.variants(), ["scale_attn_by_inverse_layer_idx true"]);
}

#[test]
fn the_gelu_variants_map_to_the_tanh_kernel() {
    for (name, act) in [
        ("gelu_new", Activation::GeluTanh),
        ("gelu_pytorch_tanh", Activation::GeluPytorchTanh),
        ("gelu_fast", Activation::GeluFast),
    ] {
        let config = with(&[("act_fn", json!(name))]).unwrap();
        assert_eq!(config.act_fn, act);
        assert_eq!(act.gelu(), Some(shaderlens::ops::gelu::Gelu::Tanh));
        assert_eq!(Config::from_json(&config.to_json()).unwrap(), config);
    }
}

#[test]
fn the_docs_table_lists_every_field() {
    let docs = std::fs::read_to_string(root().join("docs/transformerlens.md")).unwrap();
    for (name, rule) in FIELDS {
        let row = docs
            .lines()
            .find(|l| l.starts_with(&format!("| `{name}` |")))
            .unwrap_or_else(|| panic!("docs/transformerlens.md has no row for `{name}`"));
        let kind = match rule {
            Rule::Used => "used",
            Rule::Ignored(_) => "ignored",
            Rule::Refused { .. } => "refused",
        };
        assert!(row.contains(kind), "the row for `{name}` does not say {kind}: {row}");
    }
}

#[test]
fn verify_names_the_refused_field_of_a_transformerlens_model() {
    let manifest = std::fs::read_to_string(root().join("tests/data/verify_bad/MANIFEST.tsv")).unwrap();
    let mut seen = 0;
    for line in manifest.lines() {
        let cols: Vec<&str> = line.split('\t').collect();
        let Some(field) = cols.get(2).and_then(|why| why.strip_prefix("refused field `")).and_then(|r| r.split('`').next())
        else {
            continue;
        };
        let path = format!("tests/data/verify_bad/{}", cols[0]);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_shaderlens"))
            .args(["verify", "--json", &path])
            .current_dir(root())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let v: Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {text}"));
        assert_eq!(v["status"], "ERROR", "{path}: {v}");
        let message = v["message"].as_str().unwrap_or_default();
        assert!(message.contains(field), "{path}: the message does not name {field}: {message}");
        seen += 1;
    }
    assert!(seen >= 7, "only {seen} refused-field cases in the manifest");
}

#[test]
fn the_toy_model_variants_and_optional_hooks_are_read_and_listed() {
    use shaderlens::transformer::config::{NormForm, OptionalHooks};
    use shaderlens::transformer::Normalization;
    let config = with(&[("normalization_type", json!("RMS")), ("act_fn", json!("solu_ln"))]).unwrap();
    assert_eq!(config.normalization, Normalization::Rms);
    assert_eq!(config.block_norm(), Some(NormForm::rms(true)));
    // solu_ln's LayerNorm has weights only in LN models.
    assert_eq!(config.mlp_norm(), Some(NormForm::layer_norm(false)));
    assert_eq!(config.variants(), ["normalization_type \"RMS\"", "act_fn \"solu_ln\""]);
    let e = config.refuse_variants("the backward pass").unwrap_err().to_string();
    assert!(e.contains("the backward pass does not implement normalization_type \"RMS\""), "{e}");
    assert_eq!(Config::from_json(&config.to_json()).unwrap(), config);
    // final_rms: an RMS final norm for LN and LNPre, nothing without normalisation.
    let final_rms = with(&[("final_rms", json!(true))]).unwrap();
    assert_eq!((final_rms.block_norm(), final_rms.final_norm()), (Some(NormForm::layer_norm(true)), Some(NormForm::rms(true))));
    assert_eq!(final_rms.variants(), ["final_rms true"]);
    let pre = with(&[("final_rms", json!(true)), ("normalization_type", json!("LNPre"))]).unwrap();
    assert_eq!(pre.final_norm(), Some(NormForm::rms(false)));
    assert!(with(&[("final_rms", json!(true)), ("normalization_type", Value::Null)]).unwrap().variants().is_empty());
    // shortformer, and the optional hooks.
    let short = with(&[("positional_embedding_type", json!("shortformer"))]).unwrap();
    assert!(short.shortformer);
    assert_eq!(short.variants(), ["positional_embedding_type \"shortformer\""]);
    assert_eq!(Config::from_json(&short.to_json()).unwrap(), short);
    let hooks = with(&[("use_attn_result", json!(true)), ("use_hook_tokens", json!(true)), ("use_attn_in", Value::Null)]).unwrap();
    assert_eq!(hooks.optional_hooks, OptionalHooks { attn_result: true, tokens: true, ..OptionalHooks::default() });
    assert_eq!(hooks.variants(), ["use_attn_result true", "use_hook_tokens true"]);
    assert_eq!(Config::from_json(&hooks.to_json()).unwrap(), hooks);
    // Shortformer positions on per-head inputs.
    let both = with(&[("positional_embedding_type", json!("shortformer")), ("use_split_qkv_input", json!(true))]).unwrap();
    assert_eq!(both.variants(), ["positional_embedding_type \"shortformer\"", "use_split_qkv_input true"]);
}
