//! GPU attention (unfused with the pattern, fused without it) against the float64 reference, with
//! SPEC's tolerance `1e-4 + 1e-3 |want|`, over random shapes and each SPEC edge case.

mod common;

use ndarray::{ArrayD, IxDyn};
use proptest::prelude::*;
use shaderlens::ops::attention;
use shaderlens::{reference, Error, GpuTensor};

const ATOL: f64 = 1e-4;
const RTOL: f64 = 1e-3;

/// Deterministic uniform values in [lo, hi) (xorshift64*), so targeted tests need no RNG crate.
fn uniform(shape: &[usize], seed: u64, lo: f32, hi: f32) -> ArrayD<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let n = shape.iter().product();
    let data = (0..n)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let unit = (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 24) as f32;
            lo + (hi - lo) * unit
        })
        .collect();
    ArrayD::from_shape_vec(IxDyn(shape), data).unwrap()
}

/// Runs both GPU paths and checks out, pattern and fused out against the reference; returns the
/// reference (out, pattern).
fn check(
    q: &ArrayD<f32>,
    k: &ArrayD<f32>,
    v: &ArrayD<f32>,
    causal: bool,
    scale: f32,
    what: &str,
) -> (ArrayD<f64>, ArrayD<f64>) {
    let gpu = common::gpu();
    let (q64, k64, v64) = (q.mapv(f64::from), k.mapv(f64::from), v.mapv(f64::from));
    let (want_out, want_pattern) =
        reference::attention::attention(q64.view(), k64.view(), v64.view(), causal, f64::from(scale)).unwrap();
    let (out, pattern) = attention::run(&gpu, q.view(), k.view(), v.view(), causal, scale, true).unwrap();
    common::assert_close(&pattern.unwrap(), &want_pattern, ATOL, RTOL, &format!("{what}: pattern"));
    common::assert_close(&out, &want_out, ATOL, RTOL, &format!("{what}: unfused out"));
    let (fused, none) = attention::run(&gpu, q.view(), k.view(), v.view(), causal, scale, false).unwrap();
    assert!(none.is_none(), "{what}: the fused path returned a pattern");
    common::assert_close(&fused, &want_out, ATOL, RTOL, &format!("{what}: fused out"));
    (want_out, want_pattern)
}

/// Random q, k, v of the given sizes, values in [-1, 1).
fn qkv(b: usize, h: usize, sq: usize, sk: usize, d: usize, dv: usize, seed: u64) -> [ArrayD<f32>; 3] {
    [
        uniform(&[b, h, sq, d], seed, -1.0, 1.0),
        uniform(&[b, h, sk, d], seed + 1, -1.0, 1.0),
        uniform(&[b, h, sk, dv], seed + 2, -1.0, 1.0),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn gpu_matches_reference(b in 1usize..3, h in 1usize..3, sq in 1usize..40, sk in 1usize..40,
                             d in 1usize..70, dv in 1usize..70, causal: bool, scale in 0.01f32..2.0,
                             seed in 0u64..1_000_000) {
        let [q, k, v] = qkv(b, h, sq, sk, d, dv, seed);
        check(&q, &k, &v, causal, scale, &format!("b{b} h{h} sq{sq} sk{sk} d{d} dv{dv} causal {causal} scale {scale}"));
    }
}

#[test]
fn single_token() {
    let [q, k, v] = qkv(1, 1, 1, 1, 8, 8, 1);
    let (out, pattern) = check(&q, &k, &v, true, 0.35, "single token");
    assert_eq!(pattern[[0, 0, 0, 0]], 1.0);
    assert_eq!(out, v.mapv(f64::from));
    let [q, k, v] = qkv(1, 1, 1, 1, 1, 1, 2);
    check(&q, &k, &v, false, 1.0, "every dim 1");
}

#[test]
fn fewer_queries_than_keys_causal() {
    let [q, k, v] = qkv(2, 3, 4, 11, 16, 16, 3);
    check(&q, &k, &v, true, 0.25, "cached prefix sq4 sk11");
    let [q, k, v] = qkv(1, 2, 1, 20, 8, 8, 4);
    check(&q, &k, &v, true, 0.25, "decode step sq1 sk20");
}

#[test]
fn more_queries_than_keys_causal_gives_zero_rows() {
    let [q, k, v] = qkv(1, 2, 9, 5, 8, 6, 5);
    let (out, pattern) = check(&q, &k, &v, true, 0.5, "sq9 sk5");
    for i in 0..4 {
        assert!(pattern.slice(ndarray::s![.., .., i, ..]).iter().all(|&p| p == 0.0));
        assert!(out.slice(ndarray::s![.., .., i, ..]).iter().all(|&o| o == 0.0));
    }
    let gpu = common::gpu();
    let (got, got_pattern) = attention::run(&gpu, q.view(), k.view(), v.view(), true, 0.5, true).unwrap();
    let (fused, _) = attention::run(&gpu, q.view(), k.view(), v.view(), true, 0.5, false).unwrap();
    for i in 0..4 {
        assert!(got_pattern.as_ref().unwrap().slice(ndarray::s![.., .., i, ..]).iter().all(|&p| p == 0.0));
        assert!(got.slice(ndarray::s![.., .., i, ..]).iter().all(|&o| o == 0.0));
        assert!(fused.slice(ndarray::s![.., .., i, ..]).iter().all(|&o| o == 0.0));
    }
}

#[test]
fn value_head_differs_from_query_head() {
    let [q, k, v] = qkv(1, 2, 7, 9, 24, 40, 6);
    check(&q, &k, &v, true, 0.2, "d24 dv40");
    let [q, k, v] = qkv(2, 1, 5, 3, 70, 3, 7);
    check(&q, &k, &v, false, 0.1, "d70 dv3");
    let [q, k, v] = qkv(1, 1, 6, 6, 3, 130, 8);
    check(&q, &k, &v, true, 0.5, "d3 dv130 (three fused chunks)");
}

#[test]
fn head_size_256() {
    let [q, k, v] = qkv(1, 2, 33, 33, 256, 256, 9);
    check(&q, &k, &v, true, 1.0 / 16.0, "d256 dv256 causal");
    check(&q, &k, &v, false, 1.0 / 16.0, "d256 dv256");
}

#[test]
fn long_sequence_2048() {
    let [q, k, v] = qkv(1, 1, 2048, 2048, 64, 64, 10);
    check(&q, &k, &v, true, 0.125, "sq=sk=2048 causal");
    let [q, k, v] = qkv(1, 1, 16, 2048, 64, 64, 11);
    check(&q, &k, &v, false, 0.125, "sq16 sk2048");
}

#[test]
fn peaky_logits_stay_exact() {
    // |q . k| reaches ~6 for D = 32, so scale 50 puts scores at several hundred: the softmax must
    // shift by the row maximum.
    let [q, k, v] = qkv(2, 2, 23, 23, 32, 16, 12);
    let (_, pattern) = check(&q, &k, &v, true, 50.0, "peaky causal");
    assert!(pattern.iter().any(|&p| p > 0.999), "the test should contain near one-hot rows");
    check(&q, &k, &v, false, 50.0, "peaky non-causal");
    // Logits of any magnitude: 1e4 and 1e30.
    check(&q, &k, &v, true, 1e4, "scores ~1e4");
    check(&q, &k, &v, false, 1e30, "scores ~1e30");
    // One-hot rows: score 300 for one key and -300 for the others, plus close rivals.
    let mut k = uniform(&[1, 1, 10, 4], 13, -0.01, 0.01);
    let mut q = ArrayD::<f32>::zeros(IxDyn(&[1, 1, 10, 4]));
    for j in 0..10 {
        k[[0, 0, j, j % 4]] += if j % 2 == 0 { 1.0 } else { -1.0 };
        q[[0, 0, j, j % 4]] = if j % 2 == 0 { 300.0 } else { -300.0 };
    }
    let v = uniform(&[1, 1, 10, 5], 14, -1.0, 1.0);
    check(&q, &k, &v, false, 1.0, "one-hot 300");
    check(&q, &k, &v, true, 1.0, "one-hot 300 causal");
}

#[test]
fn scale_zero_gives_uniform_rows() {
    let [q, k, v] = qkv(1, 1, 5, 7, 4, 3, 15);
    let (_, pattern) = check(&q, &k, &v, false, 0.0, "scale 0");
    assert!(pattern.iter().all(|&p| (p - 1.0 / 7.0).abs() < 1e-15));
}

#[test]
fn scores_are_scaled_and_masked() {
    let gpu = common::gpu();
    let [q, k, v] = qkv(2, 1, 6, 9, 12, 5, 16);
    let (q64, k64, v64) = (q.mapv(f64::from), k.mapv(f64::from), v.mapv(f64::from));
    for causal in [false, true] {
        let want = reference::attention::attention_scores(q64.view(), k64.view(), v64.view(), causal, 0.3).unwrap();
        let got = attention::run_scores(&gpu, q.view(), k.view(), causal, 0.3).unwrap();
        common::assert_close(&got, &want, ATOL, RTOL, "scores");
        assert_eq!(got.iter().filter(|x| **x == f32::NEG_INFINITY).count(), if causal { 2 * 15 } else { 0 });
    }
}

#[test]
fn all_outputs_in_one_recording() {
    // The unfused path copies the scores before the softmax; the fused path adds a scores pass.
    let gpu = common::gpu();
    let [q, k, v] = qkv(1, 2, 5, 8, 6, 7, 17);
    let (q64, k64, v64) = (q.mapv(f64::from), k.mapv(f64::from), v.mapv(f64::from));
    let want_scores = reference::attention::attention_scores(q64.view(), k64.view(), v64.view(), true, 0.4).unwrap();
    let (want_out, want_pattern) =
        reference::attention::attention(q64.view(), k64.view(), v64.view(), true, 0.4).unwrap();
    for with_pattern in [true, false] {
        let (qt, kt, vt) = (
            GpuTensor::upload(&gpu, q.view(), "q").unwrap(),
            GpuTensor::upload(&gpu, k.view(), "k").unwrap(),
            GpuTensor::upload(&gpu, v.view(), "v").unwrap(),
        );
        let out = GpuTensor::empty(&gpu, &[1, 2, 5, 7], "out").unwrap();
        let pattern = GpuTensor::empty(&gpu, &[1, 2, 5, 8], "pattern").unwrap();
        let scores = GpuTensor::empty(&gpu, &[1, 2, 5, 8], "scores").unwrap();
        let mut encoder = gpu.encoder();
        let outputs =
            attention::Outputs { out: &out, pattern: with_pattern.then_some(&pattern), scores: Some(&scores) };
        attention::record_outputs_into(&gpu, &mut encoder, &qt, &kt, &vt, true, 0.4, outputs).unwrap();
        gpu.submit_and_wait(encoder).unwrap();
        common::assert_close(&scores.read(&gpu).unwrap(), &want_scores, ATOL, RTOL, "scores");
        common::assert_close(&out.read(&gpu).unwrap(), &want_out, ATOL, RTOL, "out");
        if with_pattern {
            common::assert_close(&pattern.read(&gpu).unwrap(), &want_pattern, ATOL, RTOL, "pattern");
        }
    }
}

#[test]
fn empty_dimensions() {
    let gpu = common::gpu();
    // No keys: every query sees nothing, so the output is zero (and the pattern empty).
    let [q, k, v] = qkv(1, 2, 3, 0, 4, 5, 18);
    for want_pattern in [true, false] {
        let (out, pattern) = attention::run(&gpu, q.view(), k.view(), v.view(), false, 1.0, want_pattern).unwrap();
        assert_eq!(out.shape(), &[1, 2, 3, 5]);
        assert!(out.iter().all(|&o| o == 0.0));
        assert_eq!(pattern.map(|p| p.len()), want_pattern.then_some(0));
    }
    for (b, sq, d, dv) in [(0, 3, 4, 5), (1, 0, 4, 5), (1, 3, 0, 5), (1, 3, 4, 0)] {
        let [q, k, v] = qkv(b, 2, sq, 6, d, dv, 19);
        check(&q, &k, &v, true, 1.0, &format!("b{b} sq{sq} d{d} dv{dv}"));
    }
}

#[test]
fn bad_shapes_are_named() {
    let gpu = common::gpu();
    type Case<'a> = (&'a [usize], &'a [usize], &'a [usize], &'a str);
    let cases: [Case; 6] = [
        (
            &[1, 2, 3, 16],
            &[1, 2, 5, 8],
            &[1, 2, 5, 8],
            "k is [1, 2, 5, 8] but q is [1, 2, 3, 16]: head dims 8 and 16 differ",
        ),
        (&[2, 3, 4], &[1, 2, 5, 8], &[1, 2, 5, 8], "q is [2, 3, 4] but attention needs a rank-4 q [B, H, Sq, D]"),
        (
            &[1, 2, 3, 8],
            &[2, 2, 5, 8],
            &[1, 2, 5, 8],
            "k is [2, 2, 5, 8] but q is [1, 2, 3, 8]: batch sizes 2 and 1 differ",
        ),
        (
            &[1, 2, 3, 8],
            &[1, 2, 5, 8],
            &[1, 1, 5, 8],
            "v is [1, 1, 5, 8] but q is [1, 2, 3, 8]: head counts 1 and 2 differ",
        ),
        (
            &[1, 2, 3, 8],
            &[1, 2, 5, 8],
            &[1, 2, 6, 4],
            "v is [1, 2, 6, 4] but k is [1, 2, 5, 8]: key counts 6 and 5 differ",
        ),
        (
            &[1, 2, 3, 8],
            &[1, 2, 5, 8],
            &[1, 2, 5, 8, 1],
            "v is [1, 2, 5, 8, 1] but attention needs a rank-4 v [B, H, Sk, Dv]",
        ),
    ];
    for (qs, ks, vs, message) in cases {
        let (q, k, v) =
            (ArrayD::<f32>::zeros(IxDyn(qs)), ArrayD::<f32>::zeros(IxDyn(ks)), ArrayD::<f32>::zeros(IxDyn(vs)));
        let e = attention::run(&gpu, q.view(), k.view(), v.view(), true, 1.0, true).unwrap_err();
        assert_eq!(e.to_string(), message);
        let e = reference::attention::attention(
            q.mapv(f64::from).view(),
            k.mapv(f64::from).view(),
            v.mapv(f64::from).view(),
            true,
            1.0,
        )
        .unwrap_err();
        assert_eq!(e.to_string(), message);
    }
    // A caller's output of the wrong shape.
    let t = |s: &[usize]| GpuTensor::empty(&gpu, s, "t").unwrap();
    let (q, k, v, out) = (t(&[1, 1, 3, 4]), t(&[1, 1, 5, 4]), t(&[1, 1, 5, 2]), t(&[1, 1, 3, 4]));
    let e = attention::record_into(&gpu, &mut gpu.encoder(), &q, &k, &v, true, 1.0, &out, None).unwrap_err();
    assert_eq!(
        e.to_string(),
        "out is [1, 1, 3, 4] but q [1, 1, 3, 4], k [1, 1, 5, 4] and v [1, 1, 5, 2] need out [1, 1, 3, 2]"
    );
}

#[test]
fn pattern_too_large_is_refused_with_advice() {
    // 65536² floats (16 GiB) exceed every adapter's binding limit; q, k and v are small.
    let gpu = common::gpu();
    let [q, k, v] = [
        ArrayD::<f32>::zeros(IxDyn(&[1, 1, 65536, 1])),
        ArrayD::zeros(IxDyn(&[1, 1, 65536, 1])),
        ArrayD::zeros(IxDyn(&[1, 1, 65536, 1])),
    ];
    let e = attention::run(&gpu, q.view(), k.view(), v.view(), true, 1.0, true).unwrap_err();
    assert!(matches!(e, Error::Limit { .. }), "{e}");
    let message = e.to_string();
    assert!(message.contains("attention pattern [1, 1, 65536, 65536]") && message.contains("fused"), "{message}");
}

#[test]
fn fused_path_needs_no_room_for_the_pattern() {
    // 32 queries x 2^20 keys: the pattern (128 MiB) exceeds lavapipe's 128 MiB binding limit, the
    // fused path never stores it. Values near 1 keep the long sums well inside the tolerance.
    let gpu = common::gpu();
    let (sq, sk) = (32, 1 << 20);
    let [q, k, _] = qkv(1, 1, sq, sk, 4, 4, 20);
    let v = uniform(&[1, 1, sk, 3], 21, 0.5, 1.5);
    let (q64, k64, v64) = (q.mapv(f64::from), k.mapv(f64::from), v.mapv(f64::from));
    let (want, _) = reference::attention::attention(q64.view(), k64.view(), v64.view(), true, 0.5).unwrap();
    let (got, _) = attention::run(&gpu, q.view(), k.view(), v.view(), true, 0.5, false).unwrap();
    common::assert_close(&got, &want, ATOL, RTOL, "fused, 2^20 keys");
    if (sq * sk * 4) as u64 > gpu.limits().max_storage_buffer_binding_size {
        let e = attention::run(&gpu, q.view(), k.view(), v.view(), true, 0.5, true).unwrap_err();
        assert!(matches!(e, Error::Limit { .. }), "{e}");
    }
}

#[test]
fn walks_longer_than_lavapipes_loop_limit() {
    // lavapipe and llvmpipe stop an invocation after 65535 loop iterations in total; the host
    // splits the keys into segments. Rows of 70000 keys (softmax and pattern @ v) ...
    let q = uniform(&[1, 1, 3, 4], 22, -1.0, 1.0);
    let k = uniform(&[1, 1, 70000, 4], 23, -1.0, 1.0);
    let v = uniform(&[1, 1, 70000, 5], 24, 0.5, 1.5);
    check(&q, &k, &v, true, 0.5, "sq3 sk70000 causal");
    check(&q, &k, &v, false, 0.5, "sq3 sk70000");
    // ... and fused blocks that cost 130 iterations each (D = Dv = 256) over 4096 keys.
    let [q, k, v] = qkv(1, 1, 8, 4096, 256, 256, 25);
    check(&q, &k, &v, true, 1.0 / 16.0, "d256 sk4096");
}
