//! The steady state allocates nothing: a second forward pass of a model (same shapes), with or
//! without an activation cache and interventions, creates no buffer and no bind group, and a
//! repeated op call on the same tensors creates none either.

mod common;

use std::path::Path;

use ndarray::{ArrayD, IxDyn};
use shaderlens::ops::{gelu, layer_norm, matmul, softmax};
use shaderlens::transformer::{Config, Intervention, Model, Names, Options, Weights};
use shaderlens::{Gpu, GpuTensor};

fn model(gpu: &Gpu, case: &str) -> Model {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/transformer");
    Model::from_files(gpu, &dir.join(format!("{case}.json")), &dir.join(format!("{case}.npz"))).expect("model loads")
}

/// (buffers, bind groups, dispatches) created so far.
fn counters(gpu: &Gpu) -> [u64; 3] {
    [gpu.buffers_created(), gpu.bind_groups_created(), gpu.dispatch_count()]
}

/// Runs `f` twice and asserts that the second run dispatched work but created nothing.
fn second_run_creates_nothing(gpu: &Gpu, what: &str, mut f: impl FnMut()) {
    f();
    let before = counters(gpu);
    f();
    let after = counters(gpu);
    assert_eq!(after[0], before[0], "{what}: the second run created {} buffers", after[0] - before[0]);
    assert_eq!(after[1], before[1], "{what}: the second run created {} bind groups", after[1] - before[1]);
    assert!(after[2] > before[2], "{what}: the second run dispatched nothing");
}

#[test]
fn the_second_forward_of_a_model_creates_no_buffers_and_no_bind_groups() {
    let gpu = common::gpu();
    for case in ["tiny", "othello_small", "gelu_new_3layer", "attn_only_lnpre"] {
        let model = model(&gpu, case);
        let (batch, seq) = (3, model.config().n_ctx.min(7));
        let ids: Vec<i64> = (0..batch * seq).map(|i| (i * 7 % model.config().d_vocab) as i64).collect();
        let tokens = ArrayD::from_shape_vec(IxDyn(&[batch, seq]), ids).unwrap();
        let mut first = None;
        second_run_creates_nothing(&gpu, case, || {
            let logits = model.forward(&gpu, tokens.view()).expect("forward");
            // Reusing the outputs' buffers must not change what the second run returns.
            match &first {
                None => first = Some(logits),
                Some(first) => assert_eq!(first, &logits, "{case}: the second forward differs"),
            }
        });
        let ablate = [Intervention::zero("blocks.0.attn.hook_z").at_head(0)];
        let options = Options { names: Names::All, interventions: &ablate };
        second_run_creates_nothing(&gpu, &format!("{case} with every hook cached"), || {
            let run = model.run(&gpu, tokens.view(), &options).expect("run with cache");
            assert!(run.cache.len() > 5);
        });
    }
}

#[test]
fn the_second_forward_creates_nothing_even_when_the_first_autotuned_its_products() {
    // Products over 2^24 flops are autotuned on the first forward (many submissions in the middle
    // of its recording); the second forward must still find every bind group cached.
    let gpu = common::gpu();
    let config = Config::from_json(
        r#"{"n_layers": 2, "d_model": 256, "n_heads": 4, "d_head": 64, "d_mlp": 1024, "d_vocab": 61,
            "d_vocab_out": 61, "n_ctx": 32, "act_fn": "gelu", "normalization_type": "LN",
            "attn_only": false, "eps": 1e-5, "positional_embedding_type": "standard"}"#,
    )
    .unwrap();
    let weights = Weights::build(&config, |_, shape| Ok(ArrayD::from_elem(IxDyn(shape), 0.01f32))).unwrap();
    let model = Model::load(&gpu, config, &weights).unwrap();
    let tokens = ArrayD::from_shape_fn(IxDyn(&[4, 32]), |ix| ((ix[0] * 7 + ix[1]) % 61) as i64);
    second_run_creates_nothing(&gpu, "a model whose products are autotuned", || {
        model.forward(&gpu, tokens.view()).expect("forward");
    });
}

#[test]
fn repeated_op_calls_on_the_same_tensors_create_nothing() {
    let gpu = common::gpu();
    let up = |shape: &[usize], seed| GpuTensor::upload(&gpu, common::array(shape, common::normals(seed, shape.iter().product())).view(), "x").unwrap();
    let (a, b, x) = (up(&[37, 20], 1), up(&[20, 12], 2), up(&[5, 33], 3));
    let (w, bias) = (up(&[33], 4), up(&[33], 5));
    let out = GpuTensor::empty(&gpu, &[37, 12], "out").unwrap();
    let y = GpuTensor::empty(&gpu, &[5, 33], "y").unwrap();
    second_run_creates_nothing(&gpu, "matmul, softmax, layer_norm, gelu", || {
        let mut encoder = gpu.encoder();
        matmul::record_into(&gpu, &mut encoder, &a, &b, &out).unwrap();
        softmax::record_into(&gpu, &mut encoder, &x, &y).unwrap();
        layer_norm::record_into_full(&gpu, &mut encoder, &x, Some((&w, &bias)), 1e-5, &y, None).unwrap();
        layer_norm::record_into_full(&gpu, &mut encoder, &x, None, 1e-5, &y, None).unwrap();
        gelu::record_into(&gpu, &mut encoder, gelu::Gelu::Tanh, &x, &y).unwrap();
        gpu.submit_and_wait(encoder).unwrap();
        out.read(&gpu).unwrap();
    });
}
