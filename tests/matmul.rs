//! GPU `matmul` against the float64 host reference, with SPEC's matmul tolerance
//! `2 K 2^-24 (|a| |b|)_ij + 1e-30`, over random and awkward shapes and numpy broadcasting.

mod common;

use common::matmul::{assert_matmul, broadcast_batches, random};
use ndarray::{ArrayD, IxDyn};
use proptest::prelude::*;
use shaderlens::ops::matmul;
use shaderlens::GpuTensor;

/// Runs `a @ b` on the GPU and checks it; returns the error ratio.
fn check(a_shape: &[usize], b_shape: &[usize], seed: u64) -> f64 {
    let gpu = common::gpu();
    let a = random(a_shape, seed);
    let b = random(b_shape, seed ^ 0xABCD);
    let got = matmul::run(&gpu, a.view(), b.view()).unwrap();
    let ratio = assert_matmul(&got, &a, &b, &format!("{a_shape:?} @ {b_shape:?}"));
    eprintln!("{a_shape:?} @ {b_shape:?}: error ratio {ratio:.4}");
    ratio
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn random_shapes_match_reference(
        (a_batch, b_batch) in broadcast_batches(),
        m in 1usize..=70,
        n in 1usize..=70,
        k in prop_oneof![4 => 1usize..=70, 1 => 71usize..=600],
        aligned in any::<bool>(),
        seed in any::<u64>(),
    ) {
        // Half the cases round K and N up to multiples of 4, which take the vec4 kernel.
        let (k, n) = if aligned { (k.next_multiple_of(4), n.next_multiple_of(4)) } else { (k, n) };
        let mut a_shape = a_batch;
        a_shape.extend([m, k]);
        let mut b_shape = b_batch;
        b_shape.extend([k, n]);
        check(&a_shape, &b_shape, seed);
    }
}

#[test]
fn one_by_one() {
    check(&[1, 1], &[1, 1], 1);
}

#[test]
fn ragged_257_129_63() {
    check(&[257, 63], &[63, 129], 2);
}

#[test]
fn long_inner_dimension() {
    check(&[3, 4096], &[4096, 5], 3);
}

#[test]
fn single_row_and_single_column() {
    check(&[1, 37], &[37, 41], 4);
    check(&[41, 37], &[37, 1], 5);
    check(&[1, 37], &[37, 1], 6);
    check(&[4, 1, 9], &[9, 1], 7);
}

#[test]
fn broadcasting_batches() {
    check(&[2, 1, 5, 7], &[3, 7, 4], 8);
    check(&[5, 7], &[3, 7, 4], 9);
    check(&[3, 5, 7], &[7, 4], 10);
    check(&[1, 3, 5, 7], &[2, 1, 7, 4], 11);
}

#[test]
fn vec4_kernel_edges() {
    // K and N multiples of 4 take the vec4 kernel; M, N not multiples of its 32x64 tile.
    check(&[37, 12], &[12, 68], 15);
    check(&[1, 4], &[4, 4], 16);
    check(&[33, 8], &[8, 132], 17);
    check(&[2, 1, 5, 8], &[3, 8, 4], 18);
    check(&[7, 16], &[5, 16, 20], 19);
    check(&[64, 1024], &[1024, 64], 20);
}

#[test]
fn more_workgroups_than_one_grid_row() {
    // 70,000 batches of 1x1 outputs: more workgroups than one dimension of the grid holds.
    check(&[70_000, 1, 3], &[70_000, 3, 1], 12);
}

#[test]
fn non_contiguous_inputs() {
    let gpu = common::gpu();
    let a = random(&[9, 13], 13);
    let b = random(&[11, 9], 14);
    let got = matmul::run(&gpu, a.t(), b.t()).unwrap();
    assert_matmul(&got, &a.t().to_owned(), &b.t().to_owned(), "transposed views");
}

#[test]
fn zero_size_dimensions() {
    let gpu = common::gpu();
    let got = matmul::run(&gpu, random(&[0, 5], 1).view(), random(&[5, 3], 2).view()).unwrap();
    assert_eq!(got.shape(), &[0, 3]);
    let got = matmul::run(&gpu, random(&[0, 4, 5], 1).view(), random(&[5, 3], 2).view()).unwrap();
    assert_eq!(got.shape(), &[0, 4, 3]);
    let got = matmul::run(&gpu, random(&[4, 5], 1).view(), random(&[5, 0], 2).view()).unwrap();
    assert_eq!(got.shape(), &[4, 0]);
    // K = 0: every output is an empty sum, and must be written as 0 even into a used buffer.
    let a = GpuTensor::upload(&gpu, random(&[4, 0], 1).view(), "a").unwrap();
    let b = GpuTensor::upload(&gpu, random(&[0, 3], 1).view(), "b").unwrap();
    let out = GpuTensor::upload(&gpu, ArrayD::from_elem(IxDyn(&[4, 3]), 7.0f32).view(), "out").unwrap();
    let mut encoder = gpu.encoder();
    matmul::record_into(&gpu, &mut encoder, &a, &b, &out).unwrap();
    gpu.submit_and_wait(encoder).unwrap();
    assert_eq!(out.read(&gpu).unwrap(), ArrayD::<f32>::zeros(IxDyn(&[4, 3])));
}

#[test]
fn shape_errors() {
    let gpu = common::gpu();
    let e = matmul::run(&gpu, random(&[3, 4], 1).view(), random(&[5, 6], 1).view()).unwrap_err();
    assert_eq!(e.to_string(), "a is [3, 4] but b is [5, 6]: inner dimensions 4 and 5 differ");
    let e = matmul::run(&gpu, random(&[4], 1).view(), random(&[4, 2], 1).view()).unwrap_err().to_string();
    assert!(e.contains("a is [4]") && e.contains("rank"), "{e}");
    let e = matmul::run(&gpu, random(&[2, 4], 1).view(), random(&[4], 1).view()).unwrap_err().to_string();
    assert!(e.contains("b is [4]") && e.contains("rank"), "{e}");
    let e = matmul::run(&gpu, random(&[2, 3, 4], 1).view(), random(&[3, 4, 6], 1).view()).unwrap_err().to_string();
    assert!(e.contains("[2, 3, 4]") && e.contains("[3, 4, 6]") && e.contains("2 against 3"), "{e}");

    let a = GpuTensor::upload(&gpu, random(&[3, 4], 1).view(), "a").unwrap();
    let b = GpuTensor::upload(&gpu, random(&[4, 3], 1).view(), "b").unwrap();
    let wrong = GpuTensor::empty(&gpu, &[3, 4], "out").unwrap();
    let mut encoder = gpu.encoder();
    let e = matmul::record_into(&gpu, &mut encoder, &a, &b, &wrong).unwrap_err().to_string();
    assert!(e.contains("output is [3, 4]") && e.contains("[3, 3]"), "{e}");
    let square = GpuTensor::upload(&gpu, random(&[3, 3], 1).view(), "square").unwrap();
    let e = matmul::record_into(&gpu, &mut encoder, &square, &square, &square).unwrap_err().to_string();
    assert!(e.contains("share a buffer"), "{e}");
}

#[test]
fn chained_products_stay_on_the_gpu() {
    let gpu = common::gpu();
    let (a, b, c) = (random(&[2, 17, 33], 21), random(&[33, 29], 22), random(&[2, 29, 6], 23));
    let mut encoder = gpu.encoder();
    let ta = GpuTensor::upload(&gpu, a.view(), "a").unwrap();
    let tb = GpuTensor::upload(&gpu, b.view(), "b").unwrap();
    let tc = GpuTensor::upload(&gpu, c.view(), "c").unwrap();
    let ab = matmul::record(&gpu, &mut encoder, &ta, &tb).unwrap();
    let abc = matmul::record(&gpu, &mut encoder, &ab, &tc).unwrap();
    gpu.submit_and_wait(encoder).unwrap();
    let got_ab = ab.read(&gpu).unwrap();
    let got = abc.read(&gpu).unwrap();
    assert_matmul(&got_ab, &a, &b, "a @ b");
    // The second product is checked against the GPU's own a @ b, so that only its own rounding counts.
    assert_matmul(&got, &got_ab, &c, "(a @ b) @ c");
}
