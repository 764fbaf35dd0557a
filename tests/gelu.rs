//! gelu (tanh form) and gelu_erf on the GPU against the float64 references, at SPEC's tolerance
//! `1e-5 + 1e-4 |want|`: dense grids, the far tails (no NaN, no overflow), random lengths that are
//! not multiples of the workgroup, empty inputs, and chaining without readback.

mod common;

use ndarray::{Array, ArrayD, IxDyn};
use proptest::prelude::*;
use shaderlens::ops::gelu::{self, Gelu};
use shaderlens::{reference, GpuTensor};

const KINDS: [Gelu; 2] = [Gelu::Tanh, Gelu::Erf];

fn check(x: &ArrayD<f32>, what: &str) {
    let gpu = common::gpu();
    for kind in KINDS {
        let got = gelu::run(&gpu, kind, x.view()).expect("gelu runs");
        let want = reference::gelu::gelu(kind, x.mapv(f64::from).view());
        common::assert_close(&got, &want, 1e-5, 1e-4, &format!("{what} ({kind:?})"));
    }
}

#[test]
fn dense_grid_matches_reference() {
    let x = Array::linspace(-20.0f32, 20.0, 70001).into_dyn();
    check(&x, "linspace(-20, 20)");
}

#[test]
fn far_tails_are_finite_and_exact() {
    let values = [-3.4e38f32, -1e30, -1e4, -1e3, -50.0, -10.0, 10.0, 50.0, 1e3, 1e4, 1e30, 3.4e38, 1e-30, -1e-30, 0.0, -0.0];
    let x = Array::from(values.to_vec()).into_dyn();
    check(&x, "tails");
    let gpu = common::gpu();
    for kind in KINDS {
        let got = gelu::run(&gpu, kind, x.view()).unwrap();
        assert!(got.iter().all(|v| v.is_finite()), "{kind:?} gave a non-finite value: {got}");
    }
}

#[test]
fn empty_input_gives_empty_output() {
    let gpu = common::gpu();
    let x = ArrayD::<f32>::zeros(IxDyn(&[3, 0, 2]));
    let got = gelu::run(&gpu, Gelu::Erf, x.view()).unwrap();
    assert_eq!(got.shape(), &[3, 0, 2]);
}

#[test]
fn chained_in_one_encoder_without_readback() {
    let gpu = common::gpu();
    let x = Array::linspace(-4.0f32, 4.0, 1000).into_dyn();
    let input = GpuTensor::upload(&gpu, x.view(), "x").unwrap();
    let mut encoder = gpu.encoder();
    let once = gelu::record(&gpu, &mut encoder, Gelu::Tanh, &input).unwrap();
    let twice = gelu::record(&gpu, &mut encoder, Gelu::Erf, &once).unwrap();
    gpu.submit_and_wait(encoder).unwrap();
    let want = x.mapv(|v| reference::gelu::gelu_erf(reference::gelu::gelu_tanh(f64::from(v))));
    common::assert_close(&twice.read(&gpu).unwrap(), &want, 1e-5, 1e-4, "gelu_erf(gelu_tanh(x))");
}

#[test]
fn output_shape_mismatch_is_an_error() {
    let gpu = common::gpu();
    let x = GpuTensor::upload(&gpu, Array::zeros(IxDyn(&[4])).view(), "x").unwrap();
    let out = GpuTensor::empty(&gpu, &[5], "out").unwrap();
    let err = gelu::record_into(&gpu, &mut gpu.encoder(), Gelu::Tanh, &x, &out).unwrap_err();
    assert!(err.to_string().contains("gelu output is [5] but x is [4]"), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn random_lengths_and_scales(len in 1usize..5000, scale in prop_oneof![Just(1.0f32), Just(10.0), Just(1e3)], seed in any::<u32>()) {
        let x: Vec<f32> = (0..len).map(|i| {
            let h = (i as u32).wrapping_mul(2654435761).wrapping_add(seed).rotate_left(13);
            (h as f32 / u32::MAX as f32 * 2.0 - 1.0) * scale
        }).collect();
        check(&Array::from(x).into_dyn(), &format!("len {len} scale {scale}"));
    }
}
