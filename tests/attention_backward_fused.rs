//! The fused (FlashAttention-2 style) attention backward against the float64 reference backward,
//! with SPEC's `transformer_grad` gradient tolerance `1e-6 + 1e-3 |want|`: random awkward shapes,
//! the masking edge cases, peaky logits, long rows that take several dispatch segments, scale 0,
//! TransformerLens's [B, S, H, dh] layout, bit-identical reruns, and the errors.

mod common;

use ndarray::{ArrayD, Axis, IxDyn};
use proptest::prelude::*;
use shaderlens::ops::attention::backward_fused::{self, Grads, Saved};
use shaderlens::ops::attention::row_stats_shape;
use shaderlens::reference::attention::attention_shapes;
use shaderlens::reference::backward::attention::attention_backward;
use shaderlens::GpuTensor;

const ATOL: f64 = 1e-6;
const RTOL: f64 = 1e-3;

/// Deterministic uniform values in [lo, hi) (xorshift64*).
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

/// q, k, v (values in [-amp, amp)) and d_out (in [-1, 1)) of the given sizes.
#[allow(clippy::too_many_arguments)]
fn inputs(b: usize, h: usize, sq: usize, sk: usize, d: usize, dv: usize, amp: f32, seed: u64) -> [ArrayD<f32>; 4] {
    [
        uniform(&[b, h, sq, d], seed, -amp, amp),
        uniform(&[b, h, sk, d], seed + 1, -amp, amp),
        uniform(&[b, h, sk, dv], seed + 2, -1.0, 1.0),
        uniform(&[b, h, sq, dv], seed + 3, -1.0, 1.0),
    ]
}

/// Runs the GPU backward and checks dq, dk, dv against the float64 reference; returns them.
fn check(x: &[ArrayD<f32>; 4], causal: bool, scale: f32, what: &str) -> [ArrayD<f32>; 3] {
    check_within(x, causal, scale, ATOL, what)
}

/// [`check`] with absolute tolerance `atol`.
fn check_within(x: &[ArrayD<f32>; 4], causal: bool, scale: f32, atol: f64, what: &str) -> [ArrayD<f32>; 3] {
    let gpu = common::gpu();
    let [q, k, v, d_out] = x;
    let got = backward_fused::run(&gpu, [q.view(), k.view(), v.view()], d_out.view(), causal, scale).unwrap();
    let f = |a: &ArrayD<f32>| a.mapv(f64::from);
    let want = attention_backward(f(q).view(), f(k).view(), f(v).view(), causal, f64::from(scale), f(d_out).view()).unwrap();
    for (name, g, w) in [("dq", &got[0], &want.dq), ("dk", &got[1], &want.dk), ("dv", &got[2], &want.dv)] {
        common::assert_close(g, w, atol, RTOL, &format!("{what}: {name}"));
    }
    got
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20))]
    #[test]
    fn gpu_matches_reference(b in 1usize..3, h in 1usize..3, sq in 1usize..23, sk in 1usize..23,
                             d in 1usize..19, dv in 1usize..19, causal: bool, scale in 0.01f32..1.5,
                             seed in 0u64..1_000_000) {
        let x = inputs(b, h, sq, sk, d, dv, 1.0, seed);
        check(&x, causal, scale, &format!("b{b} h{h} sq{sq} sk{sk} d{d} dv{dv} causal {causal} scale {scale}"));
    }
}

#[test]
fn every_dim_one() {
    check(&inputs(1, 1, 1, 1, 1, 1, 1.0, 1), true, 1.0, "all ones causal");
    check(&inputs(1, 1, 1, 1, 1, 1, 1.0, 2), false, 0.5, "all ones");
    check(&inputs(3, 1, 1, 7, 1, 5, 1.0, 3), true, 0.7, "one query, decode step");
}

#[test]
fn queries_that_see_no_key_contribute_nothing() {
    // Sq 9 > Sk 5 under the bottom-right causal mask: queries 0..4 see no key.
    let got = check(&inputs(2, 2, 9, 5, 6, 7, 1.0, 4), true, 0.5, "sq9 sk5 causal");
    for i in 0..4 {
        assert!(got[0].index_axis(Axis(2), i).iter().all(|&x| x == 0.0), "query {i} sees no key but has a nonzero dq");
    }
    check(&inputs(1, 3, 5, 13, 8, 4, 1.0, 5), true, 0.3, "sq5 sk13 causal (cached prefix)");
    check(&inputs(1, 2, 13, 6, 5, 9, 1.0, 6), false, 0.3, "sq13 sk6 not causal");
}

#[test]
fn head_sizes_differ_and_are_large() {
    check(&inputs(1, 2, 7, 9, 24, 40, 1.0, 7), true, 0.2, "d24 dv40");
    check(&inputs(2, 1, 5, 3, 70, 3, 1.0, 8), false, 0.1, "d70 dv3");
    check(&inputs(1, 1, 10, 10, 256, 256, 1.0, 9), true, 1.0 / 16.0, "d256 dv256");
}

#[test]
fn scale_zero_gives_uniform_pattern_and_no_dq_dk() {
    let x = inputs(2, 2, 6, 10, 5, 3, 1.0, 10);
    let got = check(&x, true, 0.0, "scale 0 causal");
    assert!(got[0].iter().chain(got[1].iter()).all(|&g| g == 0.0), "scale 0 must give dq = dk = 0");
    assert!(got[2].iter().any(|&g| g != 0.0), "dv is not 0 at scale 0");
    check(&x, false, 0.0, "scale 0");
}

#[test]
fn peaky_logits() {
    // Scores up to ~±15 from 8-term dot products at scale 1: rows close to one-hot, recomputed from the saved statistics.
    let f = |a: &ArrayD<f32>| a.mapv(f64::from);
    let one_hot_rows = |x: &[ArrayD<f32>; 4], scale, above| {
        let (_, p) = shaderlens::reference::attention::attention(f(&x[0]).view(), f(&x[1]).view(), f(&x[2]).view(), true, scale).unwrap();
        p.iter().filter(|&&p| p > above).count()
    };
    let x = inputs(2, 2, 19, 19, 8, 16, 2.0, 11);
    assert!(one_hot_rows(&x, 1.0, 0.9) > 8, "the test should contain near one-hot rows");
    check(&x, true, 1.0, "peaky causal");
    check(&x, false, 1.0, "peaky");
    // Sharper still: scores up to ~±30 from 32-term dot products, and scale 50. float32's rounding
    // of q·k (times the scale) moves the recomputed p by ~1e-5 relative, and ds = p (dO·v - dO·O)
    // cancels where p is near 1; numpy in float32 with the exact delta lands at the same error
    // (ratios 0.3-1.2 against 1e-6 + 1e-3|want| at ±30, 12-23 at scale 50), so these are held
    // to absolute tolerances of 1e-5 and the forward's 1e-4.
    let x = inputs(2, 2, 19, 19, 32, 16, 2.5, 12);
    assert!(one_hot_rows(&x, 1.0, 0.99) > 16, "the test should contain near one-hot rows");
    check_within(&x, true, 1.0, 1e-5, "±30 causal");
    check_within(&x, false, 1.0, 1e-5, "±30");
    let x = inputs(2, 2, 19, 19, 32, 16, 1.0, 13);
    check_within(&x, true, 50.0, 1e-4, "scale 50 causal");
    check_within(&x, false, 50.0, 1e-4, "scale 50");
}

#[test]
fn long_rows_take_several_segments() {
    // Sk in the thousands with small B·H; at head size 256 both walks (queries for dk/dv, keys for
    // dq) are split into several dispatches (every 992 queries, 1344 keys).
    check(&inputs(1, 1, 1500, 1500, 256, 256, 0.5, 13), true, 1.0 / 16.0, "sq=sk=1500 d256 causal");
    check(&inputs(1, 2, 6, 3000, 16, 16, 1.0, 14), false, 0.25, "sq6 sk3000");
    check(&inputs(1, 1, 2048, 2048, 64, 64, 1.0, 15), true, 0.125, "sq=sk=2048 causal");
}

#[test]
fn empty_dimensions_give_zero_gradients() {
    // No key: out is 0, so dq is 0 and dk, dv are empty; no value column: everything 0.
    let got = check(&inputs(1, 2, 5, 0, 4, 3, 1.0, 16), true, 0.5, "sk0");
    assert!(got[0].iter().all(|&x| x == 0.0));
    let got = check(&inputs(1, 2, 5, 6, 4, 0, 1.0, 17), false, 0.5, "dv0");
    assert!(got[0].iter().chain(got[1].iter()).all(|&x| x == 0.0));
    let got = check(&inputs(1, 2, 0, 6, 4, 3, 1.0, 18), true, 0.5, "sq0");
    assert!(got[1].iter().chain(got[2].iter()).all(|&x| x == 0.0), "keys no query sees get 0");
    check(&inputs(2, 1, 5, 6, 0, 3, 1.0, 19), true, 0.5, "d0");
}

#[test]
fn two_runs_give_the_same_bits() {
    let gpu = common::gpu();
    let [q, k, v, d_out] = inputs(2, 3, 37, 41, 20, 12, 1.0, 20);
    let run = || backward_fused::run(&gpu, [q.view(), k.view(), v.view()], d_out.view(), true, 0.3).unwrap();
    let (a, b) = (run(), run());
    for (x, y) in a.iter().zip(&b) {
        let bits = |t: &ArrayD<f32>| t.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(x), bits(y), "the fused backward is not deterministic");
    }
}

/// [B, H, S, ·] to TransformerLens's [B, S, H, ·], contiguous.
fn to_bshd(x: &ArrayD<f32>) -> ArrayD<f32> {
    let mut t = x.clone();
    t.swap_axes(1, 2);
    t.as_standard_layout().into_owned()
}

#[test]
fn transformer_lens_layout_matches() {
    let gpu = common::gpu();
    for (sq, d, causal) in [(13, 6, true), (9, 8, false)] {
        let x = inputs(2, 3, sq, sq, d, d, 1.0, 21);
        let want = check(&x, causal, 0.4, "heads-first twin");
        let dims = attention_shapes(x[0].shape(), x[1].shape(), x[2].shape()).unwrap();
        let up = |a: &ArrayD<f32>, name| GpuTensor::upload(&gpu, to_bshd(a).view(), name).unwrap();
        let (q, k, v, dz) = (up(&x[0], "q"), up(&x[1], "k"), up(&x[2], "v"), up(&x[3], "dz"));
        let empty = |shape: &[usize], name| GpuTensor::empty(&gpu, shape, name).unwrap();
        let z = empty(q.shape(), "z");
        let stats = empty(&row_stats_shape(&dims), "stats");
        let grads = [empty(q.shape(), "dq"), empty(k.shape(), "dk"), empty(v.shape(), "dv")];
        let mut encoder = gpu.encoder();
        backward_fused::record_bshd_forward(&gpu, &mut encoder, &q, &k, &v, causal, 0.4, &z, &stats).unwrap();
        let saved = Saved { q: &q, k: &k, v: &v, out: &z, row_stats: &stats };
        let g = Grads { dq: &grads[0], dk: &grads[1], dv: &grads[2] };
        backward_fused::record_bshd_into(&gpu, &mut encoder, saved, &dz, causal, 0.4, g).unwrap();
        gpu.submit_and_wait(encoder).unwrap();
        for (name, got, want) in [("dq", &grads[0], &want[0]), ("dk", &grads[1], &want[1]), ("dv", &grads[2], &want[2])] {
            let got = got.read(&gpu).unwrap();
            let want = to_bshd(want);
            // The same kernels on the same numbers: only the packing of the layout differs.
            let worst = got.iter().zip(want.iter()).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(worst <= 1e-6, "sq{sq} d{d}: {name} in [B, S, H, dh] differs from [B, H, S, dh] by {worst}");
        }
    }
}

#[test]
fn bad_inputs_are_refused_by_name() {
    let gpu = common::gpu();
    let [q, k, v, d_out] = inputs(1, 2, 5, 6, 4, 3, 1.0, 22);
    let e = backward_fused::run(&gpu, [q.view(), k.view(), v.view()], k.view(), true, 0.5).unwrap_err();
    assert!(e.to_string().contains("d_out is"), "{e}");
    let e = backward_fused::run(&gpu, [q.view(), v.view(), v.view()], d_out.view(), true, 0.5).unwrap_err();
    assert!(e.to_string().contains('k') || e.to_string().contains('D'), "{e}");

    let dims = attention_shapes(q.shape(), k.shape(), v.shape()).unwrap();
    let up = |a: &ArrayD<f32>, name| GpuTensor::upload(&gpu, a.view(), name).unwrap();
    let (tq, tk, tv, tz) = (up(&q, "q"), up(&k, "k"), up(&v, "v"), up(&d_out, "d_out"));
    let out = GpuTensor::empty(&gpu, &dims.out_shape(), "out").unwrap();
    let stats = GpuTensor::empty(&gpu, &row_stats_shape(&dims), "stats").unwrap();
    let (dk, dv) = (GpuTensor::empty(&gpu, k.shape(), "dk").unwrap(), GpuTensor::empty(&gpu, v.shape(), "dv").unwrap());
    let saved = Saved { q: &tq, k: &tk, v: &tv, out: &out, row_stats: &stats };
    let mut encoder = gpu.encoder();
    // A gradient written over an input.
    let e = backward_fused::record_into(&gpu, &mut encoder, saved, &tz, true, 0.5, Grads { dq: &tq, dk: &dk, dv: &dv }).unwrap_err();
    assert!(e.to_string().contains("dq shares its buffer with q"), "{e}");
    // Row statistics of the wrong shape.
    let bad = GpuTensor::empty(&gpu, &[1, 2, 5, 2], "bad").unwrap();
    let dq = GpuTensor::empty(&gpu, q.shape(), "dq").unwrap();
    let grads = Grads { dq: &dq, dk: &dk, dv: &dv };
    let e = backward_fused::record_into(&gpu, &mut encoder, Saved { row_stats: &bad, ..saved }, &tz, true, 0.5, grads).unwrap_err();
    assert!(e.to_string().contains("row_stats is"), "{e}");
    // Head sizes whose loops one invocation cannot finish on a CPU driver.
    let wide = |n, seed| uniform(&[1, 1, 2, n], seed, -1.0, 1.0);
    let (wq, wk, wv, wz) = (wide(30000, 23), wide(30000, 24), wide(1, 25), wide(1, 26));
    let e = backward_fused::run(&gpu, [wq.view(), wk.view(), wv.view()], wz.view(), true, 0.5).unwrap_err();
    assert!(e.to_string().contains("D 30000 and Dv 1 are too large"), "{e}");
    // A gradient of the wrong shape.
    let e = backward_fused::record_into(&gpu, &mut encoder, saved, &tz, true, 0.5, Grads { dk: &dv, ..grads }).unwrap_err();
    assert!(e.to_string().contains("dk is"), "{e}");
}
