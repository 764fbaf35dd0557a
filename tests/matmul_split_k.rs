//! Split-K products (`ops::matmul::split_k`) against the float64 product: every transpose, the
//! accumulate form, K with and without a factor of 4, and the plan actually taken on this adapter.

mod common;

use common::matmul::{assert_matmul, random};
use ndarray::{ArrayD, IxDyn};
use shaderlens::ops::matmul::{self, split_k, Gemm};
use shaderlens::spec::matmul::MatmulDims;
use shaderlens::GpuTensor;

/// `a` stored as the kernel reads it when transposed: its last two axes swapped.
fn stored(x: &ArrayD<f32>, transpose: bool) -> ArrayD<f32> {
    if transpose {
        x.t().as_standard_layout().to_owned()
    } else {
        x.clone()
    }
}

fn check(m: usize, k: usize, n: usize, transpose_a: bool, transpose_b: bool, accumulate: bool) {
    let gpu = common::gpu();
    let dims = MatmulDims { batch: vec![], m, k, n, pairs: vec![(0, 0)] };
    let gemm = Gemm { transpose_a, transpose_b, bias: None, accumulate };
    let plan = split_k::plan(&gpu, &dims, &gemm);
    assert!(plan.is_some(), "{m}x{k}x{n} should be split on this adapter ({})", gpu.description());
    let (a, b) = (random(&[m, k], 3), random(&[k, n], 4));
    let old = random(&[m, n], 5);
    let got = {
        let a_t = GpuTensor::upload(&gpu, stored(&a, transpose_a).view(), "a").unwrap();
        let b_t = GpuTensor::upload(&gpu, stored(&b, transpose_b).view(), "b").unwrap();
        let out = GpuTensor::upload(&gpu, old.view(), "out").unwrap();
        let mut encoder = gpu.device().create_command_encoder(&Default::default());
        matmul::record_gemm(&gpu, &mut encoder, &a_t, &b_t, &out, &gemm).unwrap();
        gpu.queue().submit([encoder.finish()]);
        out.read(&gpu).unwrap()
    };
    let want_extra = if accumulate { Some(old) } else { None };
    let what = format!("split-K {m}x{k}x{n} (aᵀ {transpose_a}, bᵀ {transpose_b}, += {accumulate}, plan {plan:?})");
    match want_extra {
        None => {
            assert_matmul(&got, &a, &b, &what);
        }
        Some(old) => {
            let product = got - &old;
            assert_matmul(&product.into_dimensionality::<IxDyn>().unwrap(), &a, &b, &what);

        }
    }
}

#[test]
fn split_products_match_the_float64_product() {
    // 64 x 64 outputs (one tile) with K long enough to split on any adapter.
    check(64, 2048, 64, false, false, false);
    check(64, 2048, 64, true, false, false); // the weight gradient form xᵀ dy
    check(64, 2048, 64, false, true, false);
    check(50, 6930, 40, true, true, false); // K = 2·3²·5·7·11, not a multiple of 4
    check(64, 4096, 33, true, false, true); // c += xᵀ dy
}
