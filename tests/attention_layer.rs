//! The GPU attention layer (projections, attention, output projection) against the float64
//! reference, with SPEC's tolerance `1e-4 + 1e-3 |want|` on the output, the pattern and every
//! intermediate, on the unfused and the fused path.

mod common;

use ndarray::{ArrayD, IxDyn};
use proptest::prelude::*;
use shaderlens::ops::attention_layer::{self, Request};
use shaderlens::reference::attention_layer::{attention_layer, AttentionWeights};

const ATOL: f64 = 1e-4;
const RTOL: f64 = 1e-3;

/// Deterministic uniform values in [-scale, scale) (xorshift64*).
fn uniform(shape: &[usize], seed: u64, scale: f32) -> ArrayD<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let n = shape.iter().product();
    let data = (0..n)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let unit = (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 24) as f32;
            scale * (2.0 * unit - 1.0)
        })
        .collect();
    ArrayD::from_shape_vec(IxDyn(shape), data).unwrap()
}

/// x and weights of the given sizes: weights uniform with variance 1/fan_in, biases of size `bias`.
fn layer(
    b: usize,
    s: usize,
    dm: usize,
    h: usize,
    dh: usize,
    bias: f32,
    seed: u64,
) -> (ArrayD<f32>, AttentionWeights<ArrayD<f32>>) {
    let w_in = 3f32.sqrt() / (dm.max(1) as f32).sqrt();
    let w_out = 3f32.sqrt() / ((h * dh).max(1) as f32).sqrt();
    let weights = AttentionWeights {
        w_q: uniform(&[h, dm, dh], seed + 1, w_in),
        w_k: uniform(&[h, dm, dh], seed + 2, w_in),
        w_v: uniform(&[h, dm, dh], seed + 3, w_in),
        b_q: uniform(&[h, dh], seed + 4, bias),
        b_k: uniform(&[h, dh], seed + 5, bias),
        b_v: uniform(&[h, dh], seed + 6, bias),
        w_o: uniform(&[h, dh, dm], seed + 7, w_out),
        b_o: uniform(&[dm], seed + 8, bias),
    };
    (uniform(&[b, s, dm], seed, 1.0), weights)
}

/// Runs the layer with every intermediate, with the pattern only, and fused, against the reference.
fn check(b: usize, s: usize, dm: usize, h: usize, dh: usize, bias: f32, seed: u64) {
    let gpu = common::gpu();
    let what = format!("b{b} s{s} dm{dm} h{h} dh{dh}");
    let (x, weights) = layer(b, s, dm, h, dh, bias, seed);
    let want =
        attention_layer(x.mapv(f64::from).view(), &weights.map(|_, a| a.mapv(f64::from)).map(|_, a| a.view())).unwrap();
    let views = weights.map(|_, a| a.view());

    let all = attention_layer::run(&gpu, x.view(), &views, Request::all()).unwrap();
    common::assert_close(&all.out, &want.out, ATOL, RTOL, &format!("{what}: out"));
    for (name, got, want) in [
        ("pattern", &all.pattern, &want.pattern),
        ("q", &all.q, &want.q),
        ("k", &all.k, &want.k),
        ("v", &all.v, &want.v),
        ("attn_scores", &all.attn_scores, &want.attn_scores),
        ("z", &all.z, &want.z),
    ] {
        common::assert_close(got.as_ref().unwrap(), want, ATOL, RTOL, &format!("{what}: {name}"));
    }

    let spec = attention_layer::run(&gpu, x.view(), &views, Request::pattern()).unwrap();
    common::assert_close(&spec.out, &want.out, ATOL, RTOL, &format!("{what}: out (pattern only)"));
    common::assert_close(
        spec.pattern.as_ref().unwrap(),
        &want.pattern,
        ATOL,
        RTOL,
        &format!("{what}: pattern (pattern only)"),
    );
    assert!(spec.q.is_none() && spec.attn_scores.is_none() && spec.z.is_none());

    let fused = attention_layer::run(&gpu, x.view(), &views, Request { z: true, ..Request::default() }).unwrap();
    common::assert_close(&fused.out, &want.out, ATOL, RTOL, &format!("{what}: out (fused)"));
    common::assert_close(fused.z.as_ref().unwrap(), &want.z, ATOL, RTOL, &format!("{what}: z (fused)"));
    assert!(fused.pattern.is_none());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]
    #[test]
    fn gpu_matches_reference(b in 1usize..3, s in 1usize..20, dm in 1usize..40, h in 1usize..4, dh in 1usize..20,
                             seed in 0u64..1_000_000) {
        check(b, s, dm, h, dh, 0.5, seed);
    }
}

#[test]
fn othello_gpt_shape() {
    check(1, 59, 512, 8, 64, 0.1, 1);
}

#[test]
fn single_position() {
    check(1, 1, 16, 2, 8, 0.5, 2);
    check(3, 1, 12, 4, 4, 0.5, 3);
}

#[test]
fn every_dimension_one() {
    check(1, 1, 1, 1, 1, 0.5, 4);
}

#[test]
fn head_sizes_not_powers_of_two() {
    check(1, 7, 30, 3, 10, 0.5, 5); // scalar projections, packed attention rows
    check(2, 9, 36, 3, 12, 0.5, 6); // vec4 projections
    check(1, 5, 24, 12, 1, 0.5, 7); // d_head = 1 with many heads
}

#[test]
fn small_batch_and_large_biases() {
    check(2, 5, 16, 2, 8, 0.5, 8);
    check(2, 6, 16, 2, 8, 20.0, 9);
}

#[test]
fn bad_shapes_are_named() {
    let gpu = common::gpu();
    let (x, weights) = layer(1, 3, 8, 2, 4, 0.5, 10);
    let run = |x: &ArrayD<f32>, w: &AttentionWeights<ArrayD<f32>>| {
        let e =
            attention_layer::run(&gpu, x.view(), &w.map(|_, a| a.view()), Request::pattern()).unwrap_err().to_string();
        let r = attention_layer(x.mapv(f64::from).view(), &w.map(|_, a| a.mapv(f64::from)).map(|_, a| a.view()));
        assert_eq!(r.unwrap_err().to_string(), e);
        e
    };
    assert_eq!(run(&uniform(&[3, 8], 0, 1.0), &weights), "x is [3, 8] but attention_layer needs x as [B, S, d_model]");
    assert_eq!(
        run(&uniform(&[1, 3, 9], 0, 1.0), &weights),
        "W_Q is [2, 8, 4] but x is [1, 3, 9]: d_model 8 and 9 differ"
    );
    let bad = AttentionWeights { b_k: uniform(&[2, 5], 0, 1.0), ..weights.clone() };
    assert_eq!(
        run(&x, &bad),
        "b_K is [2, 5] but x [1, 3, 8] and W_Q [2, 8, 4] (H 2, d_model 8, d_head 4) need b_K [2, 4]"
    );
    let bad = AttentionWeights { w_o: uniform(&[2, 8, 4], 0, 1.0), ..weights.clone() };
    assert_eq!(
        run(&x, &bad),
        "W_O is [2, 8, 4] but x [1, 3, 8] and W_Q [2, 8, 4] (H 2, d_model 8, d_head 4) need W_O [2, 4, 8]"
    );
    let zero = layer(1, 3, 8, 2, 0, 0.5, 11).1;
    assert_eq!(run(&x, &zero), "W_Q is [2, 8, 0]: d_head is 0, so the attention scale 1/sqrt(d_head) is undefined");
}

#[test]
fn record_into_caller_tensors() {
    use shaderlens::GpuTensor;
    let gpu = common::gpu();
    let (x, weights) = layer(2, 7, 20, 2, 8, 0.5, 12);
    let want =
        attention_layer(x.mapv(f64::from).view(), &weights.map(|_, a| a.mapv(f64::from)).map(|_, a| a.view())).unwrap();
    let xt = GpuTensor::upload(&gpu, x.view(), "x").unwrap();
    let wt = weights.map(|name, a| GpuTensor::upload(&gpu, a.view(), name).unwrap());
    let out = GpuTensor::empty(&gpu, &[2, 7, 20], "out").unwrap();
    let pattern = GpuTensor::empty(&gpu, &[2, 2, 7, 7], "pattern").unwrap();
    for with_pattern in [false, true] {
        let mut encoder = gpu.encoder();
        attention_layer::record_into(
            &gpu,
            &mut encoder,
            &xt,
            &wt.map(|_, t| t),
            &out,
            with_pattern.then_some(&pattern),
        )
        .unwrap();
        gpu.submit_and_wait(encoder).unwrap();
        common::assert_close(&out.read(&gpu).unwrap(), &want.out, ATOL, RTOL, "out");
    }
    common::assert_close(&pattern.read(&gpu).unwrap(), &want.pattern, ATOL, RTOL, "pattern");
    let wrong = GpuTensor::empty(&gpu, &[2, 7, 21], "out").unwrap();
    let e = attention_layer::record_into(&gpu, &mut gpu.encoder(), &xt, &wt.map(|_, t| t), &wrong, None).unwrap_err();
    assert_eq!(e.to_string(), "out is [2, 7, 21] but x [2, 7, 20] and W_Q [2, 20, 8] need out [2, 7, 20]");
}
