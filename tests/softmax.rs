//! GPU softmax against the float64 reference, on both row paths, with SPEC's tolerance
//! (`1e-5 + 1e-4 |want|`), over random shapes and every SPEC edge case.

mod common;

use ndarray::{ArrayD, IxDyn};
use proptest::prelude::*;
use shaderlens::ops::softmax::{self, RowPath};
use shaderlens::ops::{AUTO_INVOCATION_ROW_LEN_CPU, AUTO_INVOCATION_ROW_LEN_GPU, MAX_INVOCATION_ROW_LEN};
use shaderlens::reference;

use common::{array, normals};

const ATOL: f64 = 1e-5;
const RTOL: f64 = 1e-4;
/// Auto, both paths, and the workgroup path at the CPU and GPU workgroup sizes.
const PATHS: [RowPath; 4] = [RowPath::Auto, RowPath::InvocationPerRow, RowPath::WorkgroupOf(32), RowPath::WorkgroupOf(256)];

/// Checks every row path against the reference.
fn check(x: &ArrayD<f32>, what: &str) {
    let gpu = common::gpu();
    let want = reference::softmax::softmax(x.mapv(f64::from).view()).expect("reference");
    for path in PATHS {
        let got = softmax::run_with(&gpu, x.view(), path).expect("gpu softmax");
        common::assert_close(&got, &want, ATOL, RTOL, &format!("{what} ({path:?})"));
    }
}

/// Row lengths around the thresholds and workgroup sizes, and anything up to a few thousand.
/// Row lengths either side of the Auto thresholds (64, 1024), the workgroup sizes (32, 256) and
/// the unrolled loops' steps (8, 8 x 32, 8 x 256), and anything up to a few thousand.
fn row_length() -> impl Strategy<Value = usize> {
    let (cpu, gpu) = (AUTO_INVOCATION_ROW_LEN_CPU, AUTO_INVOCATION_ROW_LEN_GPU);
    prop_oneof![1usize..=9, 30usize..=34, (gpu - 2)..=(gpu + 2), 254usize..=258, (cpu - 2)..=(cpu + 2), 2046usize..=2050, 1usize..=3000]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn random_shapes_match_reference(n in row_length(), rows in 1usize..=70, spread in prop_oneof![Just(1.0f32), Just(10.0), Just(100.0)], seed in any::<u64>()) {
        let rows = rows.min((40_000 / n).max(1));
        let data = normals(seed, rows * n).into_iter().map(|v| v * spread).collect();
        check(&array(&[rows, n], data), &format!("[{rows}, {n}] spread {spread}"));
    }
}

#[test]
fn huge_logits() {
    let big = f32::MAX;
    let rows: Vec<f32> = [
        [1e30, -1e30, 1e30, 0.0, 5e29],
        [3e38, -3e38, 2.9e38, 3e38, -1.0],
        [big, -big, big, -big, 0.0],
        [-3e38, -3e38, -3e38, -3e38, -3e38],
        [-big, -big, -big, -big, -big],
    ]
    .concat();
    check(&array(&[5, 5], rows), "huge logits");
    // The same magnitudes in a row longer than the threshold.
    let mut long = normals(7, 1000).into_iter().map(|v| v * 1e30).collect::<Vec<_>>();
    long[3] = 3e38;
    long[999] = -3e38;
    check(&array(&[1, 1000], long), "huge logits, long row");
}

#[test]
fn neg_inf_entries_and_rows_give_exact_zeros() {
    let gpu = common::gpu();
    let inf = f32::INFINITY;
    for n in [4usize, 300] {
        let mut data = normals(3, 3 * n);
        data[..n].fill(-inf); // row 0: all -inf
        for i in (0..n).step_by(2) {
            data[n + i] = -inf; // row 1: every other entry
        }
        data[2 * n + 1] = -inf; // row 2: one entry
        let x = array(&[3, n], data.clone());
        check(&x, &format!("-inf rows of {n}"));
        for path in PATHS {
            let got = softmax::run_with(&gpu, x.view(), path).expect("gpu softmax");
            for (i, (&g, &v)) in got.iter().zip(&data).enumerate() {
                if v == -inf {
                    assert!(g == 0.0, "{path:?} n={n}: element {i} is -inf but got {g}");
                }
            }
        }
    }
}

#[test]
fn rows_of_one_give_one() {
    let gpu = common::gpu();
    let x = array(&[10, 1], vec![-3e38, -1.0, 0.0, 1e-30, 5.0, 3e38, f32::MAX, -f32::MAX, 7.0, 1e4]);
    for path in PATHS {
        let got = softmax::run_with(&gpu, x.view(), path).expect("gpu softmax");
        assert!(got.iter().all(|&v| v == 1.0), "{path:?}: {got}");
    }
    let all_neg_inf = array(&[2, 1], vec![f32::NEG_INFINITY; 2]);
    let got = softmax::run(&gpu, all_neg_inf.view()).expect("gpu softmax");
    assert!(got.iter().all(|&v| v == 0.0), "{got}");
    check(&array(&[1, 1, 1], vec![4.0]), "[1, 1, 1]");
}

#[test]
fn ranks_one_and_three() {
    check(&array(&[37], normals(11, 37)), "rank 1 [37]");
    check(&array(&[2, 3, 50], normals(12, 300)), "rank 3 [2, 3, 50]");
    check(&array(&[2, 1, 700], normals(13, 1400)), "rank 3 [2, 1, 700]");
}

#[test]
fn long_rows() {
    check(&array(&[3, 4099], normals(21, 3 * 4099).into_iter().map(|v| v * 5.0).collect()), "[3, 4099]");
    check(&array(&[100_000], normals(22, 100_000).into_iter().map(|v| v * 3.0).collect()), "[100000]");
    // Either side of the longest row the invocation path takes when asked.
    for n in [MAX_INVOCATION_ROW_LEN, MAX_INVOCATION_ROW_LEN + 1] {
        check(&array(&[2, n], normals(23, 2 * n)), &format!("[2, {n}]"));
    }
}

#[test]
fn every_workgroup_size() {
    let gpu = common::gpu();
    for shape in [[3usize, 1], [5, 37], [2, 700], [1, 5000]] {
        let x = array(&shape, normals(24, shape[0] * shape[1]).into_iter().map(|v| v * 20.0).collect());
        let want = reference::softmax::softmax(x.mapv(f64::from).view()).expect("reference");
        for size in [32, 64, 128, 256] {
            let got = softmax::run_with(&gpu, x.view(), RowPath::WorkgroupOf(size)).expect("gpu softmax");
            common::assert_close(&got, &want, ATOL, RTOL, &format!("{shape:?} workgroup {size}"));
        }
    }
    for size in [0, 16, 48, 512] {
        let e = softmax::run_with(&gpu, array(&[1, 4], vec![0.0; 4]).view(), RowPath::WorkgroupOf(size)).unwrap_err();
        assert!(e.to_string().contains("power of two from 32 to 256"), "{e}");
    }
}

#[test]
fn many_short_rows_beyond_one_grid_dimension() {
    // 70,000 rows: more workgroups than one grid dimension holds on the workgroup-per-row path.
    check(&array(&[70_000, 3], normals(31, 210_000)), "[70000, 3]");
    // 600,000 rows: more workgroups than one grid dimension holds on the invocation path too
    // (8 rows per workgroup on CPU adapters, 64 elsewhere).
    let gpu = common::gpu();
    let x = array(&[600_000, 2], normals(32, 1_200_000));
    let want = reference::softmax::softmax(x.mapv(f64::from).view()).expect("reference");
    for path in [RowPath::Auto, RowPath::InvocationPerRow] {
        let got = softmax::run_with(&gpu, x.view(), path).expect("gpu softmax");
        common::assert_close(&got, &want, ATOL, RTOL, &format!("[600000, 2] ({path:?})"));
    }
}

#[test]
fn tiny_differences() {
    let base = 1e4f32;
    let row: Vec<f32> = (0..64).map(|i| f32::from_bits(base.to_bits() + (i % 5) as u32)).collect();
    check(&array(&[1, 64], row), "one-ulp differences at 1e4");
}

#[test]
fn shape_errors() {
    let gpu = common::gpu();
    let scalar = ArrayD::<f32>::zeros(IxDyn(&[]));
    let e = softmax::run(&gpu, scalar.view()).unwrap_err().to_string();
    assert!(e.contains("rank >= 1") && e.contains("scalar"), "{e}");
    let x = shaderlens::GpuTensor::upload(&gpu, array(&[2, 3], vec![0.0; 6]).view(), "x").expect("upload");
    let out = shaderlens::GpuTensor::empty(&gpu, &[3, 2], "out").expect("alloc");
    let e = softmax::record_into(&gpu, &mut gpu.encoder(), &x, &out).unwrap_err().to_string();
    assert_eq!(e, "softmax output is [3, 2] but x is [2, 3]");
    let empty = array(&[4, 0], vec![]);
    assert_eq!(softmax::run(&gpu, empty.view()).expect("empty").shape(), &[4, 0]);
}

#[test]
fn rows_past_llvmpipes_loop_cap() {
    // One row of 6M: 3 loops of 6M / 256 iterations per invocation would pass llvmpipe's cap of
    // 65535 loop iterations if the loops took one element at a time.
    let gpu = common::gpu();
    let x = array(&[6_000_000], normals(41, 6_000_000).into_iter().map(|v| v * 4.0).collect());
    let want = reference::softmax::softmax(x.mapv(f64::from).view()).expect("reference");
    let got = softmax::run(&gpu, x.view()).expect("gpu softmax");
    common::assert_close(&got, &want, ATOL, RTOL, "[6000000]");
}
