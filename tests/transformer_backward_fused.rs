//! The model's backward on the fused attention path (`src/transformer/backward_attention.rs`):
//! with no pattern or scores gradient asked for and no intervention on them, the backward's
//! forward keeps the fused attention's row statistics and the backward recomputes the pattern
//! from them. Checked against the float64 reference and against the pattern path (the same
//! model with every block's `hook_pattern_grad` asked for) on awkward shapes (S not a multiple
//! of the kernels' tiles of 4 and 8, d_head 1 and 3, one batch row, one head), with and without
//! interventions on hook_q, hook_k, hook_v and hook_z; and the memory a step holds: no
//! \[B, H, S, S\] tensor on the fused path.

mod common;

use common::model::weights;

use ndarray::{ArrayD, IxDyn};
use shaderlens::reference::backward::model::transformer_grad;
use shaderlens::transformer::{Config, GradArrays, GradOptions, Intervention, Model, Names, Seed, Weights};

/// A model of `layers` blocks, `heads` heads of `d_head`, LN and gelu (or attention-only).
fn config(layers: usize, heads: usize, d_head: usize, seq: usize, attn_only: bool) -> Config {
    let d_mlp = if attn_only { "null".to_string() } else { "10".to_string() };
    Config::from_json(&format!(
        r#"{{"n_layers": {layers}, "d_model": 6, "n_heads": {heads}, "d_head": {d_head}, "d_mlp": {d_mlp}, "d_vocab": 7,
            "d_vocab_out": 5, "n_ctx": {seq}, "act_fn": "gelu", "normalization_type": "LN",
            "attn_only": {attn_only}, "eps": 1e-5, "positional_embedding_type": "standard"}}"#
    ))
    .expect("config")
}

/// Tokens \[B, S\] and next-token-like targets (some ignored).
fn tokens_targets(batch: usize, seq: usize) -> (ArrayD<i64>, ArrayD<i64>) {
    let tokens = ArrayD::from_shape_fn(IxDyn(&[batch, seq]), |ix| ((ix[0] * 5 + ix[1] * 3 + 1) % 7) as i64);
    let targets = ArrayD::from_shape_fn(IxDyn(&[batch, seq]), |ix| if (ix[0] + ix[1]) % 4 == 3 { -1 } else { ((ix[0] + 2 * ix[1]) % 5) as i64 });
    (tokens, targets)
}

/// Every block's `hook_pattern`: asking for their gradients puts every block on the pattern path.
fn patterns(config: &Config) -> Vec<String> {
    (0..config.n_layers).map(|l| format!("blocks.{l}.attn.hook_pattern")).collect()
}

/// One backward of a fresh model (so that its memory is this path's alone), with `names`.
fn run(config: &Config, w: &Weights<ArrayD<f32>>, batch: usize, names: &Names, interventions: &[Intervention]) -> (GradArrays, u64) {
    let gpu = common::gpu();
    let (tokens, targets) = tokens_targets(batch, config.n_ctx);
    let model = Model::load(&gpu, config.clone(), w).expect("load");
    let options = GradOptions { names: names.clone(), interventions };
    let grads = model.backward(&gpu, tokens.view(), &Seed::CrossEntropy(targets.view()), &options).expect("backward");
    (grads.read(&gpu, config).expect("read"), model.backward_bytes().expect("bytes"))
}

/// The GPU's loss, parameter gradients and hook gradients against the float64 reference.
fn against_reference(config: &Config, w: &Weights<ArrayD<f32>>, batch: usize, got: &GradArrays, names: &Names, interventions: &[Intervention], what: &str) {
    let (tokens, targets) = tokens_targets(batch, config.n_ctx);
    let w64 = w.try_map(config, |_, a| Ok(a.mapv(f64::from))).expect("widen");
    let want = transformer_grad(config, &w64, tokens.view(), targets.view(), names, interventions).expect("reference");
    common::model::assert_grads_match(got, &want, what);
}

/// The fused and the pattern path's parameter gradients agree to float32 rounding (relative to
/// the largest element, with a floor of 1e-2 for gradients that are 0 up to rounding, as `b_K`'s:
/// the softmax does not see a bias shared by every key).
fn paths_agree(fused: &GradArrays, pattern: &GradArrays, what: &str) {
    for ((name, a), (_, b)) in fused.params.named().into_iter().zip(pattern.params.named()) {
        let scale = b.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-2);
        let worst = a.iter().zip(b.iter()).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(worst <= 1e-4 * scale, "{what}: {name} differs by {worst} (largest {scale})");
    }
    assert!((fused.loss.expect("loss") - pattern.loss.expect("loss")).abs() < 1e-5, "{what}: loss");
}

/// (layers, heads, d_head, S, batch, attention-only)
const SHAPES: &[(usize, usize, usize, usize, usize, bool)] =
    &[(2, 2, 3, 9, 2, false), (1, 1, 1, 5, 1, false), (2, 3, 1, 13, 1, true), (1, 2, 4, 1, 3, false), (2, 1, 5, 8, 2, false)];

#[test]
fn the_fused_path_matches_the_reference_and_the_pattern_path_on_awkward_shapes() {
    for (i, &(layers, heads, d_head, seq, batch, attn_only)) in SHAPES.iter().enumerate() {
        let config = config(layers, heads, d_head, seq, attn_only);
        let w = weights(&config, 7 + i as u64);
        let what = format!("{layers} layers, {heads}x{d_head} heads, S {seq}, B {batch}, attn_only {attn_only}");
        let (fused, _) = run(&config, &w, batch, &Names::Nothing, &[]);
        against_reference(&config, &w, batch, &fused, &Names::Nothing, &[], &what);
        let names = Names::only(patterns(&config));
        let (pattern, _) = run(&config, &w, batch, &names, &[]);
        against_reference(&config, &w, batch, &pattern, &names, &[], &what);
        paths_agree(&fused, &pattern, &what);
    }
}

#[test]
fn interventions_on_q_k_v_and_z_flow_through_the_fused_path() {
    let config = config(2, 2, 3, 7, false);
    let w = weights(&config, 21);
    let batch = 2;
    let replace_k = ArrayD::from_shape_fn(IxDyn(&[batch, 7, 2, 3]), |ix| 0.1 * (ix[1] as f32) - 0.2 * (ix[3] as f32));
    let cases: Vec<(&str, Vec<Intervention>)> = vec![
        ("zero a head of z", vec![Intervention::zero("blocks.0.attn.hook_z").at_head(1)]),
        ("scale z", vec![Intervention::scale("blocks.1.attn.hook_z", -1.5).at_pos(3)]),
        ("scale q", vec![Intervention::scale("blocks.0.attn.hook_q", 2.0)]),
        ("replace k", vec![Intervention::replace("blocks.1.attn.hook_k", replace_k).at_head(0)]),
        ("zero v", vec![Intervention::zero("blocks.0.attn.hook_v").at_pos(0), Intervention::scale("blocks.1.attn.hook_v", 0.5)]),
    ];
    // Hook gradients through the fused blocks, and one pattern-path block beside them.
    let hook_names = ["blocks.0.attn.hook_q", "blocks.0.attn.hook_k", "blocks.0.attn.hook_v", "blocks.1.attn.hook_z", "blocks.0.ln1.hook_normalized"];
    for (what, interventions) in &cases {
        for names in [Names::Nothing, Names::only(hook_names), Names::only(["blocks.1.attn.hook_pattern", "blocks.0.attn.hook_q"])] {
            let (fused, _) = run(&config, &w, batch, &names, interventions);
            against_reference(&config, &w, batch, &fused, &names, interventions, &format!("{what}, names {names:?}"));
        }
        let (fused, _) = run(&config, &w, batch, &Names::Nothing, interventions);
        let (pattern, _) = run(&config, &w, batch, &Names::only(patterns(&config)), interventions);
        paths_agree(&fused, &pattern, what);
    }
}

#[test]
fn the_fused_path_holds_no_seq_by_seq_tensor() {
    // d_model 6 and d_head 1: one [B, H, S, S] tensor outweighs everything else a step holds.
    let (heads, seq, batch) = (4, 96, 2);
    let config = config(1, heads, 1, seq, true);
    let w = weights(&config, 5);
    let square = (batch * heads * seq * seq * 4) as u64;
    let (_, fused) = run(&config, &w, batch, &Names::Nothing, &[]);
    let (_, pattern) = run(&config, &w, batch, &Names::only(patterns(&config)), &[]);
    assert!(fused < square, "the fused step holds {fused} bytes, one [B,H,S,S] tensor is {square}");
    assert!(pattern >= 3 * square, "the pattern path holds {pattern} bytes, expected at least 3 x {square}");
}
