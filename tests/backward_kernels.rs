//! Every backward kernel (`shaders/*_backward.wgsl`) against its float64 twin in
//! `shaderlens::reference::backward`, over awkward shapes (dims of 1, lengths either side of the
//! workgroup and chunk sizes), with SPEC's gradient tolerance `1e-6 + 1e-3 |want|` (the loss:
//! `1e-5 + 1e-4 |want|`); the deterministic kernels also give the same bits twice.

mod common;

use ndarray::{ArrayD, IxDyn};
use proptest::prelude::*;
use shaderlens::ops::backward::{activation, embedding, loss, permute, reduce, rows};
use shaderlens::ops::gelu::Gelu;
use shaderlens::reference::backward as refb;
use shaderlens::tensor::GpuTensor;
use shaderlens::Gpu;

use common::{array, normals};

const ATOL: f64 = 1e-6;
const RTOL: f64 = 1e-3;

fn up(gpu: &Gpu, a: &ArrayD<f32>) -> GpuTensor {
    GpuTensor::upload(gpu, a.view(), "input").expect("upload")
}

fn empty(gpu: &Gpu, shape: &[usize]) -> GpuTensor {
    GpuTensor::empty(gpu, shape, "output").expect("alloc")
}

/// Records with `f`, submits, and reads back `outs`.
fn run(gpu: &Gpu, outs: &[&GpuTensor], f: impl FnOnce(&mut wgpu::CommandEncoder) -> shaderlens::Result<()>) -> Vec<ArrayD<f32>> {
    let mut encoder = gpu.encoder();
    f(&mut encoder).expect("record");
    gpu.submit_and_wait(encoder).expect("submit");
    outs.iter().map(|t| t.read(gpu).expect("read")).collect()
}

fn f64s(a: &ArrayD<f32>) -> ArrayD<f64> {
    a.mapv(f64::from)
}

fn check_cross_entropy(b: usize, s: usize, v: usize, seed: u64) {
    let gpu = common::gpu();
    let logits = array(&[b, s, v], normals(seed, b * s * v).iter().map(|x| 4.0 * x).collect());
    let mut targets = ArrayD::<i64>::zeros(IxDyn(&[b, s]));
    for (i, t) in targets.iter_mut().enumerate() {
        *t = if i % 3 == 1 { -1 } else { ((i * 7 + seed as usize) % v) as i64 };
    }
    if targets.iter().all(|&t| t < 0) {
        targets[[0, 0]] = 0;
    }
    let want = refb::loss::cross_entropy(f64s(&logits).view(), targets.view()).expect("reference");
    let (got_loss, got_grad) = loss::run(&gpu, logits.view(), targets.view()).expect("gpu");
    let what = format!("cross-entropy [{b}, {s}, {v}]");
    assert!((f64::from(got_loss) - want.loss).abs() <= 1e-5 + 1e-4 * want.loss.abs(), "{what}: loss {got_loss} want {}", want.loss);
    common::assert_close(&got_grad, &want.grad, ATOL, RTOL, &what);
}

#[test]
fn cross_entropy_matches_reference_on_edges() {
    for (b, s, v) in [(1, 1, 1), (1, 1, 2), (2, 3, 63), (2, 5, 64), (1, 4, 65), (3, 2, 1000)] {
        check_cross_entropy(b, s, v, (b * 100 + s * 10 + v) as u64);
    }
}

#[test]
fn cross_entropy_of_huge_logits_is_not_quantised() {
    // ln(1 + e^-1) at logits (1e4, 1e4 - 1): a naive float32 log_softmax loses it to rounding.
    let gpu = common::gpu();
    let logits = array(&[1, 2], vec![1e4, 1e4 - 1.0]);
    let targets = ndarray::arr1(&[0i64]).into_dyn();
    let (got, _) = loss::run(&gpu, logits.view(), targets.view()).expect("gpu");
    let want = (1.0 + (-1f64).exp()).ln();
    assert!((f64::from(got) - want).abs() <= 1e-5 + 1e-4 * want, "{got} vs {want}");
}

#[test]
fn out_of_range_target_is_refused_by_position_before_gpu_work() {
    let gpu = common::gpu();
    let logits = array(&[2, 3, 5], vec![0.0; 30]);
    let targets = ndarray::arr2(&[[0i64, 1, -1], [4, 5, 0]]).into_dyn();
    let before = gpu.dispatch_count();
    let e = loss::run(&gpu, logits.view(), targets.view()).unwrap_err().to_string();
    assert!(e.contains("target 5 at position [1, 1]"), "{e}");
    assert_eq!(gpu.dispatch_count(), before);
}

fn check_column_sums(rows_n: usize, cols: usize, weighted: bool) {
    let gpu = common::gpu();
    let x = array(&[rows_n, cols], normals(rows_n as u64, rows_n * cols));
    let y = array(&[rows_n, cols], normals(cols as u64 + 7, rows_n * cols));
    let prod = if weighted { &f64s(&x) * &f64s(&y) } else { f64s(&x) };
    let want = refb::linear::column_sums(prod.view()).expect("reference");
    let (xt, yt, out) = (up(&gpu, &x), up(&gpu, &y), empty(&gpu, &[cols]));
    let got = run(&gpu, &[&out], |e| reduce::column_sums(&gpu, e, &xt, weighted.then_some(&yt), &out, false));
    let again = run(&gpu, &[&out], |e| reduce::column_sums(&gpu, e, &xt, weighted.then_some(&yt), &out, false));
    assert_eq!(got[0], again[0], "column sums are not deterministic");
    // Any order of float32 summation: 2 n 2^-24 Σ|terms| bounds the error.
    let bound = prod.mapv(f64::abs).sum_axis(ndarray::Axis(0)) * (2.0 * rows_n as f64 * 2f64.powi(-24)) + 1e-30;
    for ((g, w), b) in got[0].iter().zip(want.iter()).zip(bound.iter()) {
        assert!((f64::from(*g) - w).abs() <= *b, "column sums {rows_n}x{cols}: {g} vs {w}");
    }
}

#[test]
fn column_sums_over_chunks() {
    for (r, c) in [(1, 1), (1, 5), (255, 3), (256, 1), (257, 2), (700, 33), (256 * 256 + 3, 2)] {
        check_column_sums(r, c, r % 2 == 1);
        check_column_sums(r, c, r % 2 == 0);
    }
}

fn check_softmax_backward(rows_n: usize, n: usize, seed: u64) {
    let gpu = common::gpu();
    let x = array(&[rows_n, n], normals(seed, rows_n * n));
    let mut y = shaderlens::reference::softmax::softmax(f64s(&x).view()).expect("softmax");
    // Hide a key in every other row, as the causal mask does.
    for (r, mut row) in y.rows_mut().into_iter().enumerate() {
        if r % 2 == 1 && n > 1 {
            let hidden = row[n - 1];
            row[n - 1] = 0.0;
            row[0] += hidden;
        }
    }
    let y = y.into_dyn();
    let yf = y.mapv(|v| v as f32);
    let dy = array(&[rows_n, n], normals(seed + 1, rows_n * n));
    let want = refb::softmax::softmax_backward(f64s(&yf).view(), f64s(&dy).view()).expect("reference");
    let (yt, dyt, dx) = (up(&gpu, &yf), up(&gpu, &dy), empty(&gpu, &[rows_n, n]));
    let got = run(&gpu, &[&dx], |e| rows::softmax_backward(&gpu, e, &yt, &dyt, &dx));
    common::assert_close(&got[0], &want, ATOL, RTOL, &format!("softmax backward {rows_n}x{n}"));
    for (r, row) in got[0].rows().into_iter().enumerate() {
        if r % 2 == 1 && n > 1 {
            assert_eq!(row[n - 1], 0.0, "a hidden key's gradient is exactly 0");
        }
    }
}

fn check_layer_norm(rows_n: usize, n: usize, seed: u64) {
    let gpu = common::gpu();
    let eps = 1e-5;
    let x = array(&[rows_n, n], normals(seed, rows_n * n).iter().map(|v| 3.0 * v + 1.0).collect());
    let dn = array(&[rows_n, n], normals(seed + 1, rows_n * n));
    let want = refb::layer_norm::layer_norm_backward(f64s(&x).view(), None, eps, f64s(&dn).view()).expect("reference");
    let (_, scale) = shaderlens::reference::layer_norm::layer_norm_full(f64s(&x).view(), None, eps).expect("forward");
    let scale = scale.mapv(|v| v as f32);
    let (xt, st, dnt) = (up(&gpu, &x), up(&gpu, &scale), up(&gpu, &dn));
    let (ds, dx) = (empty(&gpu, scale.shape()), empty(&gpu, &[rows_n, n]));
    let what = format!("layer norm backward {rows_n}x{n}");
    let both = run(&gpu, &[&ds, &dx], |e| rows::layer_norm_backward(&gpu, e, &xt, &st, &dnt, eps as f32, rows::LayerNormStep::Both, &ds, &dx, false));
    // d_scale = -Σ c·dn / s² is a sum of n terms that can cancel: besides ATOL/RTOL, allow each
    // row float32's summation bound, 2 n 2^-24 Σ|c·dn| / s² (c = x - mean).
    let x64 = f64s(&x);
    let dn64 = f64s(&dn);
    for (r, (x_row, dn_row)) in x64.rows().into_iter().zip(dn64.rows()).enumerate() {
        let mean = x_row.mean().unwrap_or(0.0);
        let s = f64::from(scale[[r, 0]]);
        let terms: f64 = x_row.iter().zip(dn_row.iter()).map(|(&xv, &d)| ((xv - mean) * d).abs()).sum();
        let bound = 2.0 * n as f64 * 2f64.powi(-24) * terms / (s * s);
        let (g, w) = (f64::from(both[0][[r, 0]]), want.d_scale[[r, 0]]);
        assert!((g - w).abs() <= ATOL + RTOL * w.abs() + bound, "{what} d_scale row {r}: got {g}, want {w} (summation bound {bound:e})");
    }
    common::assert_close(&both[1], &want.dx, ATOL, RTOL, &format!("{what} dx"));
    // The two steps of the hooked path give the same, and accumulate adds.
    let split = run(&gpu, &[&ds, &dx], |e| {
        rows::layer_norm_backward(&gpu, e, &xt, &st, &dnt, eps as f32, rows::LayerNormStep::Scale, &ds, &dx, false)?;
        rows::layer_norm_backward(&gpu, e, &xt, &st, &dnt, eps as f32, rows::LayerNormStep::Input, &ds, &dx, true)
    });
    common::assert_close(&split[1], &(&want.dx * 2.0), ATOL, RTOL, &format!("{what} split + accumulate"));
}

fn check_activation(kind: Option<Gelu>, n: usize, seed: u64) {
    let gpu = common::gpu();
    let mut xs = normals(seed, n).iter().map(|v| 4.0 * v).collect::<Vec<_>>();
    for (i, edge) in [0.0f32, -30.0, 30.0, 1e20, -1e20, 3e38].into_iter().enumerate() {
        if i < n {
            xs[i] = edge;
        }
    }
    let x = array(&[n], xs);
    let dy = array(&[n], normals(seed + 5, n));
    let want = match kind {
        Some(k) => refb::activation::gelu_backward(k, f64s(&x).view(), f64s(&dy).view()),
        None => refb::activation::relu_backward(f64s(&x).view(), f64s(&dy).view()),
    }
    .expect("reference");
    let (xt, dyt, dx) = (up(&gpu, &x), up(&gpu, &dy), empty(&gpu, &[n]));
    let got = run(&gpu, &[&dx], |e| activation::record_into(&gpu, e, kind, &xt, &dyt, &dx));
    common::assert_close(&got[0], &want, ATOL, RTOL, &format!("activation backward {kind:?} n={n}"));
}

#[test]
fn activations_match_reference_with_tails() {
    for kind in [Some(Gelu::Tanh), Some(Gelu::Erf), None] {
        for n in [1, 6, 255, 257, 3000] {
            check_activation(kind, n, n as u64);
        }
    }
}

fn check_embedding(b: usize, s: usize, vocab: usize, dm: usize, n_ctx: usize, seed: u64) {
    let gpu = common::gpu();
    let tokens: Vec<u32> = (0..b * s).map(|i| ((i * 5 + seed as usize) % vocab) as u32 / if i % 4 == 0 { 1 } else { 2 }).collect();
    let d = array(&[b, s, dm], normals(seed, b * s * dm));
    let tokens_i64 = ArrayD::from_shape_vec(IxDyn(&[b, s]), tokens.iter().map(|&t| i64::from(t)).collect()).expect("tokens");
    let want_e = refb::embedding::embedding_backward(tokens_i64.view(), f64s(&d).view(), vocab).expect("reference");
    let want_p = refb::embedding::pos_embedding_backward(f64s(&d).view(), n_ctx).expect("reference");
    let index = embedding::TokenIndex::new(&tokens, vocab).expect("index");
    let offsets = gpu_buffer(&gpu, &index.offsets);
    let positions = gpu_buffer(&gpu, &index.positions);
    let dt = up(&gpu, &d);
    let (dwe, dwp) = (empty(&gpu, &[vocab, dm]), empty(&gpu, &[n_ctx, dm]));
    let record = |e: &mut wgpu::CommandEncoder| {
        embedding::embed_backward(&gpu, e, &dt, &offsets, &positions, &dwe, false)?;
        embedding::pos_embed_backward(&gpu, e, &dt, &dwp, false)
    };
    let got = run(&gpu, &[&dwe, &dwp], record);
    let again = run(&gpu, &[&dwe, &dwp], record);
    assert_eq!(got, again, "embedding backward is not deterministic");
    let what = format!("embedding backward b={b} s={s} vocab={vocab} dm={dm}");
    common::assert_close(&got[0], &want_e, ATOL, RTOL, &what);
    common::assert_close(&got[1], &want_p, ATOL, RTOL, &what);
}

fn gpu_buffer(gpu: &Gpu, data: &[u32]) -> wgpu::Buffer {
    use wgpu::util::DeviceExt;
    let bytes: &[u8] = if data.is_empty() { &[0; 4] } else { bytemuck::cast_slice(data) };
    gpu.device().create_buffer_init(&wgpu::util::BufferInitDescriptor { label: None, contents: bytes, usage: wgpu::BufferUsages::STORAGE })
}

#[test]
fn embedding_backward_is_ordered_and_exact() {
    for (b, s, v, dm, ctx) in [(1, 1, 1, 1, 1), (2, 3, 4, 5, 7), (3, 17, 61, 33, 20), (1, 60, 7, 257, 64)] {
        check_embedding(b, s, v, dm, ctx, (b + s + v) as u64);
    }
}

#[test]
fn causal_mask_zeroes_hidden_keys_bottom_right() {
    let gpu = common::gpu();
    for (sq, sk) in [(1, 1), (3, 3), (2, 5), (5, 5)] {
        let p = array(&[2, sq, sk], normals((sq * sk) as u64, 2 * sq * sk));
        let mut want = p.mapv(f64::from);
        for ((_, i, j), v) in want.view_mut().into_dimensionality::<ndarray::Ix3>().expect("3-D").indexed_iter_mut() {
            if j > i + (sk - sq) {
                *v = 0.0;
            }
        }
        let (pt, out) = (up(&gpu, &p), empty(&gpu, &[2, sq, sk]));
        let got = run(&gpu, &[&out], |e| rows::causal_mask(&gpu, e, &pt, &out));
        common::assert_close(&got[0], &want, 0.0, 0.0, &format!("causal mask {sq}x{sk}"));
    }
}

#[test]
fn swap_axes_permutes_and_scales() {
    let gpu = common::gpu();
    let dims = [2, 3, 4, 5];
    let x = array(&dims, (0..120).map(|v| v as f32).collect());
    let want = x.view().permuted_axes(IxDyn(&[0, 2, 1, 3])).mapv(|v| f64::from(v) * 0.5);
    let (xt, out) = (up(&gpu, &x), empty(&gpu, &[2, 4, 3, 5]));
    let got = run(&gpu, &[&out], |e| permute::swap_axes(&gpu, e, &xt, dims, 0.5, &out, false));
    common::assert_close(&got[0], &want, 0.0, 0.0, "swap axes");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn cross_entropy_any_shape(b in 1usize..4, s in 1usize..6, v in 1usize..200, seed in 0u64..1000) {
        check_cross_entropy(b, s, v, seed);
    }

    #[test]
    fn softmax_backward_any_shape(r in 1usize..80, n in 1usize..300, seed in 0u64..1000) {
        check_softmax_backward(r, n, seed);
    }

    #[test]
    fn layer_norm_backward_any_shape(r in 1usize..80, n in 1usize..600, seed in 0u64..1000) {
        check_layer_norm(r, n, seed);
    }

    #[test]
    fn column_sums_any_shape(r in 1usize..1200, c in 1usize..70, weighted: bool) {
        check_column_sums(r, c, weighted);
    }

    #[test]
    fn embedding_any_shape(b in 1usize..4, s in 1usize..20, v in 1usize..70, dm in 1usize..40, seed in 0u64..100) {
        check_embedding(b, s, v, dm, s + 3, seed);
    }
}
