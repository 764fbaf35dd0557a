//! GPU layer norm (with and without w and b, with the per-row scale) against the float64
//! reference, on both row paths, with SPEC's tolerance (`1e-5 + 1e-4 |want|`), over random shapes
//! and every SPEC edge case.

mod common;

use ndarray::{ArrayD, IxDyn};
use proptest::prelude::*;
use shaderlens::ops::layer_norm::{self, RowPath};
use shaderlens::ops::{AUTO_INVOCATION_ROW_LEN_CPU, AUTO_INVOCATION_ROW_LEN_GPU, MAX_INVOCATION_ROW_LEN};
use shaderlens::{reference, GpuTensor};

use common::{array, normals};

const ATOL: f64 = 1e-5;
const RTOL: f64 = 1e-4;
/// Auto, both paths, and the workgroup path at the CPU and GPU workgroup sizes.
const PATHS: [RowPath; 4] = [RowPath::Auto, RowPath::InvocationPerRow, RowPath::WorkgroupOf(32), RowPath::WorkgroupOf(256)];

/// `offset + spread * N(0, 1)` of `shape`.
fn rows(shape: &[usize], offset: f32, spread: f32, seed: u64) -> ArrayD<f32> {
    let count = shape.iter().product();
    array(shape, normals(seed, count).into_iter().map(|v| offset + spread * v).collect())
}

/// Random `w` and `b` of length n.
fn affine(n: usize, seed: u64) -> (ArrayD<f32>, ArrayD<f32>) {
    let w = normals(seed ^ 0x5555, n).into_iter().map(|v| 1.0 + 0.5 * v).collect();
    (array(&[n], w), array(&[n], normals(seed ^ 0xaaaa, n)))
}

/// Checks out and scale on every row path, with and without `(w, b)`, against the reference.
fn check(x: &ArrayD<f32>, wb: Option<&(ArrayD<f32>, ArrayD<f32>)>, eps: f32, what: &str) {
    let gpu = common::gpu();
    let x64 = x.mapv(f64::from);
    let wb64 = wb.map(|(w, b)| (w.mapv(f64::from), b.mapv(f64::from)));
    let wb64_views = wb64.as_ref().map(|(w, b)| (w.view(), b.view()));
    let (want, want_scale) = reference::layer_norm::layer_norm_full(x64.view(), wb64_views, f64::from(eps)).expect("reference");
    for path in PATHS {
        let views = wb.map(|(w, b)| (w.view(), b.view()));
        let (got, scale) = layer_norm::run_full_with(&gpu, x.view(), views, eps, path).expect("gpu layer_norm");
        let label = format!("{what} ({path:?}, affine {})", wb.is_some());
        common::assert_close(&got, &want, ATOL, RTOL, &label);
        common::assert_close(&scale, &want_scale, ATOL, RTOL, &format!("{label} scale"));
    }
}

/// Checks with random `(w, b)` and without (`LNPre`).
fn check_both(x: &ArrayD<f32>, eps: f32, seed: u64, what: &str) {
    let n = x.shape().last().copied().unwrap_or(0);
    check(x, Some(&affine(n, seed)), eps, what);
    check(x, None, eps, what);
}

/// Row lengths either side of the Auto thresholds (64, 1024), the workgroup sizes (32, 256) and
/// the unrolled loops' steps (8, 8 x 32, 8 x 256), and anything up to a few thousand.
fn row_length() -> impl Strategy<Value = usize> {
    let (cpu, gpu) = (AUTO_INVOCATION_ROW_LEN_CPU, AUTO_INVOCATION_ROW_LEN_GPU);
    prop_oneof![1usize..=9, 30usize..=34, (gpu - 2)..=(gpu + 2), 254usize..=258, (cpu - 2)..=(cpu + 2), 2046usize..=2050, 1usize..=3000]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn random_shapes_match_reference(
        n in row_length(),
        count in 1usize..=70,
        offset in prop_oneof![Just(0.0f32), Just(1e4), Just(-3e4), Just(5.0)],
        spread in prop_oneof![Just(1.0f32), Just(0.01), Just(30.0)],
        eps in prop_oneof![Just(1e-5f32), Just(1e-12), Just(0.1)],
        seed in any::<u64>(),
    ) {
        let count = count.min((30_000 / n).max(1));
        let x = rows(&[count, n], offset, spread, seed);
        check_both(&x, eps, seed, &format!("[{count}, {n}] at {offset} ± {spread}, eps {eps}"));
    }
}

#[test]
fn offset_rows_keep_their_spread() {
    // Rows whose mean is 10^4 times their spread, short and long, on both sides of zero.
    for (offset, spread) in [(1e4f32, 1.0f32), (-3e4, 3.0), (2e5, 20.0), (1e4, 1.0)] {
        for shape in [[5usize, 64], [3, 300], [2, 3000]] {
            check_both(&rows(&shape, offset, spread, 41), 1e-5, 42, &format!("{shape:?} at {offset} ± {spread}"));
        }
    }
}

#[test]
fn constant_rows_give_b() {
    let gpu = common::gpu();
    for n in [1usize, 5, 300] {
        let x = array(&[3, n], [vec![1e4; n], vec![-7.25; n], vec![0.0; n]].concat());
        let (w, b) = affine(n, 5);
        for eps in [1e-5f32, 1e-12] {
            check(&x, Some(&(w.clone(), b.clone())), eps, &format!("constant rows of {n}, eps {eps}"));
            for path in PATHS {
                let got = layer_norm::run_full_with(&gpu, x.view(), Some((w.view(), b.view())), eps, path).expect("gpu").0;
                for row in got.rows() {
                    assert_eq!(row.into_dyn(), b.view(), "{path:?} n={n} eps={eps}: a constant row must give exactly b");
                }
            }
        }
    }
}

#[test]
fn eps_extremes() {
    for eps in [1e-12f32, 0.1] {
        check_both(&rows(&[4, 64], 0.5, 0.01, 51), eps, 52, &format!("spread 0.01, eps {eps}"));
        check_both(&rows(&[2, 700], 0.0, 1.0, 53), eps, 54, &format!("[2, 700], eps {eps}"));
    }
}

#[test]
fn single_elements_and_ranks() {
    // N = 1: x - mean = 0, so out = b and scale = sqrt(eps).
    let x = array(&[6, 1], vec![3.0, -1e4, 0.0, 2e5, 1e-30, 7.0]);
    check_both(&x, 1e-5, 61, "[6, 1]");
    check_both(&array(&[1, 1], vec![42.0]), 1e-5, 62, "[1, 1]");
    check_both(&rows(&[33], 1.0, 2.0, 63), 1e-5, 64, "rank 1 [33]");
    check_both(&rows(&[2, 3, 17], 1.0, 2.0, 65), 1e-5, 66, "rank 3 [2, 3, 17]");
    check_both(&rows(&[1, 1, 1], 1.0, 2.0, 67), 1e-5, 68, "[1, 1, 1]");
}

#[test]
fn long_rows_and_many_rows() {
    check_both(&rows(&[3, 4099], 1e4, 1.0, 71), 1e-5, 72, "[3, 4099] at 1e4");
    check_both(&rows(&[70_000, 3], 0.0, 1.0, 73), 1e-5, 74, "[70000, 3]");
    // 600,000 rows: more workgroups than one grid dimension holds on the invocation path too.
    let gpu = common::gpu();
    let x = rows(&[600_000, 2], 1e4, 1.0, 78);
    let want = reference::layer_norm::layer_norm_full(x.mapv(f64::from).view(), None, 1e-5).expect("reference");
    let (got, scale) = layer_norm::run_full_with(&gpu, x.view(), None, 1e-5, RowPath::InvocationPerRow).expect("gpu");
    common::assert_close(&got, &want.0, ATOL, RTOL, "[600000, 2]");
    common::assert_close(&scale, &want.1, ATOL, RTOL, "[600000, 2] scale");
    // Either side of the longest row the invocation path takes when asked.
    for n in [MAX_INVOCATION_ROW_LEN, MAX_INVOCATION_ROW_LEN + 1] {
        check(&rows(&[2, n], -3e4, 1.0, 75), None, 1e-5, &format!("[2, {n}] at -3e4"));
    }
}

#[test]
fn every_workgroup_size() {
    let gpu = common::gpu();
    for shape in [[3usize, 1], [5, 37], [2, 700], [1, 5000]] {
        let x = rows(&shape, 1e4, 1.0, 76);
        let (w, b) = affine(shape[1], 77);
        let want = reference::layer_norm::layer_norm_full(
            x.mapv(f64::from).view(),
            Some((w.mapv(f64::from).view(), b.mapv(f64::from).view())),
            1e-5,
        )
        .expect("reference");
        for size in [32, 64, 128, 256] {
            let path = RowPath::WorkgroupOf(size);
            let (got, scale) = layer_norm::run_full_with(&gpu, x.view(), Some((w.view(), b.view())), 1e-5, path).expect("gpu");
            common::assert_close(&got, &want.0, ATOL, RTOL, &format!("{shape:?} workgroup {size}"));
            common::assert_close(&scale, &want.1, ATOL, RTOL, &format!("{shape:?} workgroup {size} scale"));
        }
    }
}

#[test]
fn rows_past_llvmpipes_loop_cap() {
    // One row of 6M: 3 loops of 6M / 256 iterations per invocation would pass llvmpipe's cap of
    // 65535 loop iterations if the loops took one element at a time.
    let gpu = common::gpu();
    let n = 6_000_000;
    let x = rows(&[n], 1e4, 1.0, 81);
    let want = reference::layer_norm::layer_norm_full(x.mapv(f64::from).view(), None, 1e-5).expect("reference");
    let (got, scale) = layer_norm::run_full(&gpu, x.view(), None, 1e-5).expect("gpu");
    common::assert_close(&got, &want.0, ATOL, RTOL, "[6000000] at 1e4");
    common::assert_close(&scale, &want.1, ATOL, RTOL, "[6000000] scale");
}

#[test]
fn record_into_full_writes_lnpre_and_scale() {
    let gpu = common::gpu();
    let x = rows(&[2, 5, 40], 3.0, 2.0, 91);
    let xt = GpuTensor::upload(&gpu, x.view(), "x").expect("upload");
    let out = GpuTensor::empty(&gpu, &[2, 5, 40], "out").expect("alloc");
    let scale = GpuTensor::empty(&gpu, &[2, 5, 1], "scale").expect("alloc");
    let mut encoder = gpu.encoder();
    layer_norm::record_into_full(&gpu, &mut encoder, &xt, None, 1e-5, &out, Some(&scale)).expect("record");
    gpu.submit_and_wait(encoder).expect("submit");
    let (want, want_scale) = reference::layer_norm::layer_norm_full(x.mapv(f64::from).view(), None, 1e-5).expect("reference");
    common::assert_close(&out.read(&gpu).expect("read"), &want, ATOL, RTOL, "LNPre via record_into_full");
    common::assert_close(&scale.read(&gpu).expect("read"), &want_scale, ATOL, RTOL, "scale via record_into_full");
}

#[test]
fn empty_rows_have_nan_scale() {
    let gpu = common::gpu();
    let x = array(&[3, 0], vec![]);
    let (out, scale) = layer_norm::run_full(&gpu, x.view(), None, 1e-5).expect("gpu");
    assert_eq!(out.shape(), &[3, 0]);
    assert!(scale.iter().all(|v| v.is_nan()), "{scale}");
    let (_, want) = reference::layer_norm::layer_norm_full(x.mapv(f64::from).view(), None, 1e-5).expect("reference");
    assert!(want.iter().all(|v| v.is_nan()));
}

#[test]
fn shape_and_eps_errors() {
    let gpu = common::gpu();
    let x = ArrayD::<f32>::zeros(IxDyn(&[2, 4]));
    let (w5, b4) = (ArrayD::<f32>::zeros(IxDyn(&[5])), ArrayD::<f32>::zeros(IxDyn(&[4])));
    let e = layer_norm::run(&gpu, x.view(), w5.view(), b4.view(), 1e-5).unwrap_err().to_string();
    assert!(e.starts_with("w is [5] but x's last dimension is 4"), "{e}");
    let e = layer_norm::run(&gpu, x.view(), b4.view(), w5.view(), 1e-5).unwrap_err().to_string();
    assert!(e.starts_with("b is [5] but x's last dimension is 4"), "{e}");
    let w2 = ArrayD::<f32>::zeros(IxDyn(&[1, 4]));
    let e = layer_norm::run(&gpu, x.view(), w2.view(), b4.view(), 1e-5).unwrap_err().to_string();
    assert!(e.starts_with("w is [1, 4] but x's last dimension is 4"), "{e}");
    let scalar = ArrayD::<f32>::zeros(IxDyn(&[]));
    let e = layer_norm::run(&gpu, scalar.view(), b4.view(), b4.view(), 1e-5).unwrap_err().to_string();
    assert!(e.contains("rank >= 1") && e.contains("scalar"), "{e}");
    for eps in [-1.0f32, f32::NAN, f32::INFINITY] {
        let e = layer_norm::run(&gpu, x.view(), b4.view(), b4.view(), eps).unwrap_err().to_string();
        assert!(e.contains("eps"), "{e}");
    }
    let xt = GpuTensor::upload(&gpu, x.view(), "x").expect("upload");
    let out = GpuTensor::empty(&gpu, &[2, 4], "out").expect("alloc");
    let bad_scale = GpuTensor::empty(&gpu, &[2], "scale").expect("alloc");
    let e = layer_norm::record_into_full(&gpu, &mut gpu.encoder(), &xt, None, 1e-5, &out, Some(&bad_scale)).unwrap_err();
    assert_eq!(e.to_string(), "layer_norm scale output is [2] but must be [2, 1] for x [2, 4]");
    let bad_out = GpuTensor::empty(&gpu, &[4, 2], "out").expect("alloc");
    let e = layer_norm::record_into_full(&gpu, &mut gpu.encoder(), &xt, None, 1e-5, &bad_out, None).unwrap_err();
    assert_eq!(e.to_string(), "layer_norm output is [4, 2] but x is [2, 4]");
}
