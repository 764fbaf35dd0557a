//! Every matmul kernel variant, not just the ones the autotuner picks here, against the float64
//! reference with SPEC's tolerance: random shapes (sizes of 1, sizes that are not multiples of any
//! tile, broadcast batches), the awkward edges, and the autotuner's bookkeeping.

mod common;

use common::matmul::{assert_matmul, broadcast_batches, random};
use ndarray::{ArrayD, IxDyn};
use proptest::prelude::*;
use shaderlens::ops::matmul::{self, Variant};
use shaderlens::{Gpu, GpuTensor};

/// Runs `a @ b` with every variant in `variants` that supports the shape and checks each one;
/// returns how many ran.
fn check_variants(variants: &[Variant], a_shape: &[usize], b_shape: &[usize], seed: u64) -> usize {
    let gpu = common::gpu();
    check_on(&gpu, variants, a_shape, b_shape, seed)
}

/// [`check_variants`] on a given device.
fn check_on(gpu: &Gpu, variants: &[Variant], a_shape: &[usize], b_shape: &[usize], seed: u64) -> usize {
    let a = random(a_shape, seed);
    let b = random(b_shape, seed ^ 0x5EED);
    let (k, n) = (a_shape[a_shape.len() - 1], b_shape[b_shape.len() - 1]);
    let mut ran = 0;
    for &variant in variants {
        if !variant.supports(gpu, k, n) {
            continue;
        }
        let got = matmul::run_with(gpu, a.view(), b.view(), variant).unwrap();
        assert_matmul(&got, &a, &b, &format!("{variant}: {a_shape:?} @ {b_shape:?}"));
        ran += 1;
    }
    ran
}

/// [`check_variants`] with every variant.
fn check_all(a_shape: &[usize], b_shape: &[usize], seed: u64) -> usize {
    check_variants(&Variant::ALL, a_shape, b_shape, seed)
}

/// The kernels without workgroup memory (cheap on CPU adapters).
const BLOCKED: [Variant; 4] = [Variant::Vec4Block32, Variant::Vec4Block8, Variant::ScalarBlock16, Variant::ScalarBlock8];

/// `(a shape, b shape)` with broadcast batches, M and N up to `mn`, K mostly up to 70 and
/// sometimes up to `k_max`; half the cases have K and N multiples of 4 (where the vec4 kernels run).
fn shapes(mn: usize, k_max: usize) -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    (broadcast_batches(), 1..=mn, 1..=mn, prop_oneof![4 => 1usize..=70, 1 => 71..=k_max], any::<bool>()).prop_map(
        |((a_batch, b_batch), m, n, k, aligned)| {
            let (k, n) = if aligned { (k.next_multiple_of(4), n.next_multiple_of(4)) } else { (k, n) };
            let mut a_shape = a_batch;
            a_shape.extend([m, k]);
            let mut b_shape = b_batch;
            b_shape.extend([k, n]);
            (a_shape, b_shape)
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20))]

    #[test]
    fn blocked_variants_match_reference((a_shape, b_shape) in shapes(150, 300), seed in any::<u64>()) {
        let ran = check_variants(&BLOCKED, &a_shape, &b_shape, seed);
        prop_assert!(ran >= 2, "only {ran} variants ran");
    }
}

proptest! {
    // The tiled kernel's barriers are slow on CPU adapters (about 5 ms each on llvmpipe GL), so
    // its shapes keep few workgroups and few slices of K; they still cross every tile edge.
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn tiled_variant_matches_reference(
        (a_shape, b_shape) in shapes(140, 100).prop_filter("at most 2 batches", |(a, b)| a.len() + b.len() <= 5),
        seed in any::<u64>(),
    ) {
        prop_assert_eq!(check_variants(&[Variant::Tiled], &a_shape, &b_shape, seed), 1);
    }
}

#[test]
fn every_variant_is_tested_somewhere() {
    let gpu = common::gpu();
    // On a device that lacks the tiled kernel's limits it cannot run; everything else must.
    for variant in Variant::ALL {
        let transpose_b = variant.kind() == matmul::Kind::Vec4Nt; // a bᵀ only
        let supported = variant.supports_product(&gpu, false, transpose_b, 8, 8);
        assert!(supported || variant == Variant::Tiled, "{variant} unsupported on 8 x 8");
        assert_eq!(Variant::from_name(variant.name()), Some(variant));
    }
    assert!(!Variant::Vec4Block8.supports(&gpu, 6, 8) && !Variant::Vec4Block32.supports(&gpu, 8, 6));
    assert!(!Variant::Vec4Block8.supports(&gpu, 0, 8), "vec4 kernels need K > 0");
}

#[test]
fn edges_for_every_variant() {
    check_all(&[1, 1], &[1, 1], 1);
    check_all(&[1, 4], &[4, 4], 2);
    // One past each tile size (64, 128, 256) in M and N, K past a multiple of the tiled kernel's 8.
    check_all(&[65, 12], &[12, 129], 3);
    check_all(&[257, 20], &[20, 68], 4);
    check_all(&[129, 9], &[9, 257], 5);
    check_all(&[3, 1027], &[1027, 5], 6);
    check_all(&[2, 1, 5, 8], &[3, 8, 4], 7);
    check_all(&[41, 37], &[37, 1], 8);
}

#[test]
fn grids_wider_than_the_device_allows_for_every_variant() {
    // A device whose grid rows hold 8 workgroups: every variant must spread its workgroups over
    // rows (as on a real device with more than 65535), and the validation layer refuses any
    // dispatch that does not. (The shared test GPU's turn is held meanwhile.)
    let shared = common::gpu();
    let wanted = shared.adapter_info();
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends: wanted.backend.into(),
        ..wgpu::InstanceDescriptor::new_without_display_handle_from_env()
    });
    let adapters = pollster::block_on(instance.enumerate_adapters(wanted.backend.into()));
    let adapter = adapters.into_iter().find(|a| a.get_info().name == wanted.name).expect("the test GPU's adapter again");
    let limits = wgpu::Limits { max_compute_workgroups_per_dimension: 8, ..adapter.limits() };
    let desc = wgpu::DeviceDescriptor { required_limits: limits, ..Default::default() };
    let (device, queue) = pollster::block_on(adapter.request_device(&desc)).expect("a device");
    let gpu = Gpu::from_device(device, queue);
    // 9 batches: 9 to 36 workgroups (at most 8 x 8 fit the grid).
    assert_eq!(check_on(&gpu, &Variant::ALL, &[9, 100, 20], &[9, 20, 100], 9), 5);
    assert_eq!(check_on(&gpu, &Variant::ALL, &[9, 100, 21], &[21, 99], 10), 3);
}

#[test]
fn k_zero_writes_zeros_with_every_variant() {
    let gpu = common::gpu();
    let a = GpuTensor::upload(&gpu, random(&[5, 0], 1).view(), "a").unwrap();
    let b = GpuTensor::upload(&gpu, random(&[0, 3], 1).view(), "b").unwrap();
    for variant in Variant::ALL.into_iter().filter(|v| v.supports(&gpu, 0, 3)) {
        let out = GpuTensor::upload(&gpu, ArrayD::from_elem(IxDyn(&[5, 3]), 7.0f32).view(), "out").unwrap();
        let mut encoder = gpu.encoder();
        matmul::record_with(&gpu, &mut encoder, &a, &b, &out, variant).unwrap();
        gpu.submit_and_wait(encoder).unwrap();
        assert_eq!(out.read(&gpu).unwrap(), ArrayD::<f32>::zeros(IxDyn(&[5, 3])), "{variant}");
    }
}

#[test]
fn unsupported_variant_is_an_error() {
    let gpu = common::gpu();
    let e = matmul::run_with(&gpu, random(&[3, 6], 1).view(), random(&[6, 5], 2).view(), Variant::Vec4Block8).unwrap_err();
    assert!(e.to_string().contains("vec4_8x8 cannot compute a [3, 6] @ b [6, 5]"), "{e}");
}

#[test]
fn autotune_remembers_a_supported_winner_per_bucket() {
    let gpu = common::gpu();
    // Big enough to be measured (over 2^24 flops), small enough for a CPU adapter.
    let (a, b) = (random(&[200, 260], 11), random(&[260, 170], 12));
    let chosen = matmul::choose(&gpu, a.shape(), b.shape()).unwrap();
    assert!(chosen.supports(&gpu, 260, 170));
    if gpu.tune().enabled() {
        let winners = gpu.tune().winners();
        assert!(winners.iter().any(|(key, name)| key.op == "matmul" && *name == chosen.name()), "{winners:?}");
    }
    // The same bucket gives the same answer without measuring again, and the product is right.
    assert_eq!(matmul::choose(&gpu, &[210, 262], &[262, 171]).unwrap(), chosen);
    let got = matmul::run(&gpu, a.view(), b.view()).unwrap();
    assert_matmul(&got, &a, &b, "autotuned 200 x 260 @ 260 x 170");
}
