//! The general product `out = op(a) op(b) (+ bias) (+ out)` with every kernel variant and every
//! transposition it supports, against the float64 reference on awkward shapes (sizes of 1, one
//! past every tile, K not a multiple of 4, broadcast batches, K = 0), and the refusals.

mod common;

use common::matmul::{allowed, random};
use ndarray::{ArrayD, Axis, Dimension};
use shaderlens::ops::matmul::{self, Gemm, Kind, Variant};
use shaderlens::reference::matmul as reference;
use shaderlens::{Gpu, GpuTensor};

/// `x` with its last two axes swapped, in C order.
fn swap_last(x: &ArrayD<f32>) -> ArrayD<f32> {
    let r = x.ndim();
    let mut v = x.view();
    v.swap_axes(r - 2, r - 1);
    v.as_standard_layout().into_owned()
}

/// One product: a and b logical \[batch.., M, K\] and \[batch.., K, N\] shapes.
struct Case {
    a: Vec<usize>,
    b: Vec<usize>,
}

/// Runs the case with `variant` (if it supports it) for the given transposes, bias and
/// accumulation, and checks it; returns whether it ran.
fn check(gpu: &Gpu, variant: Variant, case: &Case, (ta, tb): (bool, bool), (with_bias, accumulate): (bool, bool), seed: u64) -> bool {
    let (k, n) = (case.a[case.a.len() - 1], case.b[case.b.len() - 1]);
    if !variant.supports_product(gpu, ta, tb, k, n) {
        return false;
    }
    let (a, b) = (random(&case.a, seed), random(&case.b, seed ^ 0xB));
    let out_shape = reference::output_shape(&case.a, &case.b).unwrap();
    let bias = random(&[n], seed ^ 0xB1A5);
    let old = random(&out_shape, seed ^ 0x01D);
    let stored_a = if ta { swap_last(&a) } else { a.clone() };
    let stored_b = if tb { swap_last(&b) } else { b.clone() };
    let up = |x: &ArrayD<f32>, name| GpuTensor::upload(gpu, x.view(), name).unwrap();
    let (ga, gb, gbias) = (up(&stored_a, "a"), up(&stored_b, "b"), up(&bias, "bias"));
    let out = if accumulate { up(&old, "out") } else { GpuTensor::empty(gpu, &out_shape, "out").unwrap() };
    let gemm = Gemm { transpose_a: ta, transpose_b: tb, bias: with_bias.then_some(&gbias), accumulate };
    let mut encoder = gpu.encoder();
    matmul::record_gemm_with(gpu, &mut encoder, &ga, &gb, &out, &gemm, variant).unwrap();
    gpu.submit_and_wait(encoder).unwrap();
    let got = out.read(gpu).unwrap();

    let mut want = reference::matmul(a.mapv(f64::from).view(), b.mapv(f64::from).view()).unwrap();
    let mut tol = allowed(&a, &b);
    let last = want.ndim() - 1;
    if with_bias {
        for mut row in want.lanes_mut(Axis(last)) {
            row.zip_mut_with(&bias, |w, &c| *w += f64::from(c));
        }
        for mut row in tol.lanes_mut(Axis(last)) {
            row.zip_mut_with(&bias, |t, &c| *t += 2f64.powi(-22) * f64::from(c).abs());
        }
    }
    if accumulate {
        want.zip_mut_with(&old, |w, &c| *w += f64::from(c));
        tol.zip_mut_with(&old, |t, &c| *t += 2f64.powi(-22) * f64::from(c).abs());
    }
    // The sums after the product round once or twice more.
    tol.zip_mut_with(&want, |t, &w| *t += 2f64.powi(-22) * w.abs());
    let what = format!("{variant} a{} {:?} @ b{} {:?} bias {with_bias} accumulate {accumulate}", if ta { "ᵀ" } else { "" }, case.a, if tb { "ᵀ" } else { "" }, case.b);
    assert_eq!(got.shape(), want.shape(), "{what}");
    for ((i, &g), (&w, &t)) in got.indexed_iter().zip(want.iter().zip(tol.iter())) {
        assert!((f64::from(g) - w).abs() <= t, "{what}: at {:?} got {g}, want {w} (allowed {t:e})", i.slice());
    }
    true
}

fn case(a: &[usize], b: &[usize]) -> Case {
    Case { a: a.to_vec(), b: b.to_vec() }
}

const LAYOUTS: [(bool, bool); 4] = [(false, false), (false, true), (true, false), (true, true)];
const EPILOGUES: [(bool, bool); 4] = [(false, false), (true, false), (false, true), (true, true)];

#[test]
fn every_variant_and_transpose_matches_the_reference() {
    let gpu = common::gpu();
    let cases = [
        case(&[1, 1], &[1, 1]),
        case(&[1, 4], &[4, 4]),
        case(&[65, 12], &[12, 129]),
        case(&[37, 9], &[9, 61]),
        case(&[257, 20], &[20, 68]),
        case(&[3, 131], &[131, 5]),
        case(&[2, 1, 5, 8], &[3, 8, 4]),
        case(&[41, 36], &[36, 1]),
    ];
    let mut ran = std::collections::BTreeMap::new();
    for variant in Variant::ALL {
        // The tiled kernel's barriers are slow on CPU adapters: fewer of its cases.
        let cases = if variant.kind() == Kind::Tiled { &cases[2..4] } else { &cases[..] };
        for (c, case) in cases.iter().enumerate() {
            for (l, &layout) in LAYOUTS.iter().enumerate() {
                let epilogue = EPILOGUES[(c + l) % 4];
                if check(&gpu, variant, case, layout, epilogue, (c * 4 + l) as u64) {
                    *ran.entry((variant.name(), layout)).or_insert(0) += 1;
                }
            }
        }
    }
    // Every variant ran every transposition it claims, on several shapes.
    for variant in Variant::ALL {
        for layout in LAYOUTS {
            if variant.supports_product(&gpu, layout.0, layout.1, 8, 8) {
                let count = ran.get(&(variant.name(), layout)).copied().unwrap_or(0);
                assert!(count >= 2, "{variant} {layout:?} ran on {count} shapes");
            }
        }
    }
    assert!(ran.keys().any(|(name, layout)| name.starts_with("vec4nt") && *layout == (false, true)));
}

#[test]
fn k_zero_gives_the_bias_and_the_old_output() {
    let gpu = common::gpu();
    for (i, layout) in LAYOUTS.into_iter().enumerate() {
        for epilogue in EPILOGUES {
            let variant = [Variant::ScalarBlock8, Variant::ScalarBlock16][i % 2];
            assert!(check(&gpu, variant, &case(&[5, 0], &[0, 3]), layout, epilogue, 3));
        }
    }
}

#[test]
fn bad_gemm_arguments_are_refused_by_name() {
    let gpu = common::gpu();
    let t = |shape: &[usize]| GpuTensor::upload(&gpu, random(shape, 1).view(), "t").unwrap();
    let (a, b, out) = (t(&[4, 6]), t(&[5, 6]), t(&[4, 5]));
    let mut encoder = gpu.encoder();
    let e = matmul::record_gemm(&gpu, &mut encoder, &a, &b, &out, &Gemm::default()).unwrap_err().to_string();
    assert!(e.contains("[4, 6]") && e.contains("[5, 6]"), "{e}");
    let transposed = Gemm { transpose_b: true, ..Gemm::default() };
    matmul::record_gemm(&gpu, &mut encoder, &a, &b, &out, &transposed).expect("a bᵀ fits");
    let bias = t(&[4]);
    let e = matmul::record_gemm(&gpu, &mut encoder, &a, &b, &out, &Gemm { bias: Some(&bias), ..transposed }).unwrap_err().to_string();
    assert!(e.contains("bias is [4]") && e.contains("5 columns"), "{e}");
    let e = matmul::record_gemm(&gpu, &mut encoder, &a, &b, &out, &Gemm { bias: Some(&out), ..transposed }).unwrap_err().to_string();
    assert!(e.contains("bias"), "{e}");
    let v = t(&[6]);
    let e = matmul::record_gemm(&gpu, &mut encoder, &v, &b, &out, &Gemm { transpose_a: true, ..Gemm::default() }).unwrap_err().to_string();
    assert!(e.contains("rank >= 2"), "{e}");
    let (square, out4) = (t(&[6, 5]), t(&[4, 5]));
    let e = matmul::record_gemm_with(&gpu, &mut encoder, &a, &square, &out4, &Gemm::default(), Variant::Vec4NtBlock8).unwrap_err().to_string();
    assert!(e.contains("vec4nt_8x8 cannot compute a [4, 6] @ b [6, 5]"), "{e}");
    let e = matmul::record_gemm_with(&gpu, &mut encoder, &a, &b, &out, &transposed, Variant::Vec4Block8).unwrap_err().to_string();
    assert!(e.contains("vec4_8x8 cannot compute a [4, 6] @ bᵀ [5, 6]"), "{e}");
}

#[test]
fn the_committed_kernels_are_what_the_generator_writes() {
    let root = env!("CARGO_MANIFEST_DIR");
    let status = std::process::Command::new("python3")
        .arg(format!("{root}/scripts/gen_matmul_wgsl.py"))
        .arg("--check")
        .status()
        .expect("python3 runs scripts/gen_matmul_wgsl.py (install python3)");
    assert!(status.success(), "shaders/matmul*.wgsl or src/ops/matmul/table.rs differ from scripts/gen_matmul_wgsl.py's output: run it");
}
