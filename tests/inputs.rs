//! Bad and awkward inputs: every one is handled as SPEC says or refused with a clear error, and
//! none panics, allocates from a lying header, or dispatches work for an empty output.
//!
//! The fixtures in `tests/data/inputs` (written by its `make_inputs.py`, expectations from numpy)
//! cover Fortran-order and big-endian arrays, 0-length dimensions, NaN and ±inf inputs through
//! every op, refused dtypes and npy members whose header disagrees with their bytes. The rest of
//! this file feeds the reader truncated and corrupted bytes and the references and ops shapes that
//! no memory holds.

mod common;

use std::path::Path;

use ndarray::{ArrayD, IxDyn};
use shaderlens::fixture::Fixture;
use shaderlens::ops::{self, attention_layer::Request, gelu::Gelu};
use shaderlens::reference::{self, attention_layer::AttentionWeights};
use shaderlens::verify::{self, Status};
use shaderlens::Error;

fn data() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/inputs")
}

/// `(path, status, text)` rows of tests/data/inputs/MANIFEST.tsv.
fn manifest() -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(data().join("MANIFEST.tsv")).expect("the manifest is readable");
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut cols = l.splitn(3, '\t').map(str::to_string);
            let mut next = || cols.next().unwrap_or_default();
            (next(), next(), next())
        })
        .collect()
}

#[test]
fn every_input_fixture_passes_or_is_refused_as_the_manifest_says() {
    let gpu = common::gpu();
    let rows = manifest();
    assert!(rows.len() >= 50, "only {} rows", rows.len());
    let mut wrong = Vec::new();
    for (path, status, text) in &rows {
        let report = verify::verify_file(&gpu, &data().join(path));
        let got = match report.status {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Error => "ERROR",
        };
        let message = report.message.clone().unwrap_or_default();
        if got != status || !message.contains(text.as_str()) {
            wrong.push(format!("{path}: want {status} {text:?}, got {}", verify::line(&report)));
        }
    }
    assert!(wrong.is_empty(), "{} of {} fixtures:\n{}", wrong.len(), rows.len(), wrong.join("\n"));
}

/// A small valid npz (stored members), the seed for the corruption tests below.
fn small_npz() -> Vec<u8> {
    std::fs::read(data().join("softmax/x_big_endian.npz")).expect("fixture exists")
}

#[test]
fn every_truncation_of_an_npz_is_an_error_not_a_panic() {
    let bytes = small_npz();
    let whole = Fixture::from_bytes("softmax", "whole", &bytes).expect("the whole file reads");
    assert!(whole.input("x").is_ok());
    for cut in 0..bytes.len() {
        // Either the archive is refused, or the cut member is unreadable: x never loads whole.
        if let Ok(fixture) = Fixture::from_bytes("softmax", "cut", &bytes[..cut]) {
            let x = fixture.input("x");
            let out = fixture.expected("out");
            assert!(x.is_err() || out.is_err(), "a file cut at {cut} of {} bytes read whole", bytes.len());
        }
    }
}

#[test]
fn corrupted_bytes_never_panic() {
    let bytes = small_npz();
    for i in 0..bytes.len() {
        for value in [0x00, 0xff, bytes[i] ^ 0x01, bytes[i] ^ 0x80, b'(', b'9'] {
            let mut corrupt = bytes.clone();
            corrupt[i] = value;
            if let Ok(fixture) = Fixture::from_bytes("softmax", "corrupt", &corrupt) {
                let names: Vec<String> = fixture.names().map(str::to_string).collect();
                for name in names {
                    let _ = (fixture.input(&name), fixture.expected(&name), fixture.scalar_f64(&name));
                    let _ = (fixture.scalar_bool(&name), fixture.int_array(&name));
                }
            }
        }
    }
    for garbage in [&b""[..], b"PK", b"PK\x05\x06", &[0u8; 22], b"\x93NUMPY\x01\x00"] {
        let e = Fixture::from_bytes("gelu", "garbage", garbage).expect_err("garbage is refused");
        assert!(e.to_string().contains("not a readable npz (zip) file"), "{e}");
    }
}

#[test]
fn fortran_and_big_endian_arrays_read_as_numpy_sees_them() {
    let fixture = Fixture::open(&data().join("layer_norm/big_endian_fortran.npz")).expect("reads");
    let x = fixture.input("x").expect("x is float32");
    assert!(x.is_standard_layout(), "inputs come back in C order");
    let eps = fixture.scalar_f64("eps").expect("a big-endian float64 scalar reads");
    assert_eq!(eps, 1e-5);
    // The expected output was computed by numpy from the same logical array, so the host
    // reference only matches if the element order and byte order were both read right.
    let (w, b) = (fixture.input("w").expect("w"), fixture.input("b").expect("b"));
    let got = reference::layer_norm::layer_norm(x.mapv(f64::from).view(), w.mapv(f64::from).view(), b.mapv(f64::from).view(), eps)
        .expect("shapes agree");
    let want = fixture.expected("out").expect("out");
    common::assert_close(&got.mapv(|v| v as f32), &want, 1e-5, 1e-4, "layer_norm of a big-endian Fortran x");
}

fn zeros(shape: &[usize]) -> ArrayD<f32> {
    ArrayD::zeros(IxDyn(shape))
}

#[test]
fn empty_outputs_dispatch_nothing() {
    let gpu = common::gpu();
    let before = gpu.dispatch_count();
    let x = zeros(&[3, 0, 5]);
    assert_eq!(ops::gelu::run(&gpu, Gelu::Erf, x.view()).expect("gelu").shape(), &[3, 0, 5]);
    assert_eq!(ops::softmax::run(&gpu, x.view()).expect("softmax").shape(), &[3, 0, 5]);
    let out = ops::matmul::run(&gpu, zeros(&[2, 0, 4]).view(), zeros(&[4, 3]).view()).expect("matmul");
    assert_eq!(out.shape(), &[2, 0, 3]);
    let out = ops::matmul::run(&gpu, zeros(&[1 << 40, 0, 4]).view(), zeros(&[4, 3]).view()).expect("2^40 empty batches");
    assert_eq!(out.shape(), &[1 << 40, 0, 3]);
    let (w, b) = (zeros(&[5]), zeros(&[5]));
    let out = ops::layer_norm::run(&gpu, zeros(&[0, 5]).view(), w.view(), b.view(), 1e-5).expect("layer_norm");
    assert_eq!(out.shape(), &[0, 5]);
    let (q, k, v) = (zeros(&[1, 2, 0, 4]), zeros(&[1, 2, 3, 4]), zeros(&[1, 2, 3, 4]));
    for want_pattern in [true, false] {
        let (out, pattern) = ops::attention::run(&gpu, q.view(), k.view(), v.view(), true, 0.5, want_pattern).expect("attention");
        assert_eq!(out.shape(), &[1, 2, 0, 4]);
        assert_eq!(pattern.map(|p| p.shape().to_vec()), want_pattern.then(|| vec![1, 2, 0, 3]));
    }
    let weights = AttentionWeights {
        w_q: zeros(&[2, 8, 4]),
        w_k: zeros(&[2, 8, 4]),
        w_v: zeros(&[2, 8, 4]),
        b_q: zeros(&[2, 4]),
        b_k: zeros(&[2, 4]),
        b_v: zeros(&[2, 4]),
        w_o: zeros(&[2, 4, 8]),
        b_o: zeros(&[8]),
    };
    let views = weights.map(|_, a| a.view());
    let layer = ops::attention_layer::run(&gpu, zeros(&[3, 0, 8]).view(), &views, Request::all()).expect("layer");
    assert_eq!(layer.out.shape(), &[3, 0, 8]);
    assert_eq!(gpu.dispatch_count(), before, "an empty output dispatched work");
}

#[test]
fn a_zero_length_dimension_that_leaves_the_output_full_still_computes_it() {
    // K = 0: numpy's matmul is all zeros; Sk = 0: every query sees no key, so out is zeros;
    // N = 0 in layer_norm: every row's scale is sqrt(NaN + eps) = NaN, as numpy's mean of nothing.
    let gpu = common::gpu();
    let out = ops::matmul::run(&gpu, zeros(&[2, 0]).view(), zeros(&[0, 3]).view()).expect("matmul");
    assert_eq!(out, zeros(&[2, 3]));
    let v = ArrayD::from_elem(IxDyn(&[1, 1, 0, 2]), 1.0f32);
    let (out, _) = ops::attention::run(&gpu, zeros(&[1, 1, 3, 4]).view(), zeros(&[1, 1, 0, 4]).view(), v.view(), false, 1.0, false)
        .expect("attention");
    assert_eq!(out, zeros(&[1, 1, 3, 2]));
    let (out, scale) = ops::layer_norm::run_full(&gpu, zeros(&[2, 0]).view(), None, 1e-5).expect("layer_norm");
    assert_eq!(out.shape(), &[2, 0]);
    assert!(scale.iter().all(|s| s.is_nan()) && scale.shape() == [2, 1], "{scale:?}");
}

/// Error messages that refuse outputs no host memory holds (tiny inputs, huge derived shapes).
fn refused<T: std::fmt::Debug>(result: Result<T, Error>, what: &str) -> String {
    let e = result.expect_err(what).to_string();
    assert!(!e.is_empty(), "{what}");
    e
}

#[test]
fn references_refuse_outputs_no_memory_holds_without_panicking() {
    let f = |shape: &[usize]| ArrayD::<f64>::zeros(IxDyn(shape));
    // [2^31, 0] @ [0, 2^31] is 2^62 zeros: ndarray would panic, Vec would abort.
    let e = refused(reference::matmul::matmul(f(&[1 << 31, 0]).view(), f(&[0, 1 << 31]).view()), "matmul");
    assert!(e.contains("more than the host can allocate") && e.contains("[2147483648, 2147483648]"), "{e}");
    // 2^32 x 2^32 batches overflow the element count itself.
    let e = refused(reference::matmul::matmul(f(&[1 << 32, 1, 1, 0]).view(), f(&[1 << 32, 0, 1]).view()), "batches");
    assert!(e.contains("more elements than a usize can count"), "{e}");
    let e = refused(reference::layer_norm::layer_norm_full(f(&[1 << 61, 0]).view(), None, 1e-5), "scale");
    assert!(e.contains("layer_norm scale of shape [2305843009213693952, 1]"), "{e}");
    let q = f(&[1, 1, 1 << 31, 0]);
    let e = refused(reference::attention::attention(q.view(), q.view(), q.view(), false, 1.0), "pattern");
    assert!(e.contains("attention scores of shape [1, 1, 2147483648, 2147483648]"), "{e}");
    let q = f(&[1, 1, 1 << 40, 0]);
    let e = refused(reference::attention::attention_shapes(q.shape(), q.shape(), q.shape()), "overflow");
    assert!(e.contains("attention pattern") && e.contains("more elements than a usize can count"), "{e}");
    // Empty outputs of any nominal size come back at once.
    assert_eq!(reference::softmax::softmax(f(&[1 << 40, 0]).view()).expect("softmax").shape(), &[1 << 40, 0]);
    let out = reference::matmul::matmul(f(&[1 << 40, 0, 3]).view(), f(&[3, 2]).view()).expect("empty matmul");
    assert_eq!(out.shape(), &[1 << 40, 0, 2]);
}

#[test]
fn gpu_ops_refuse_outputs_beyond_the_device_before_uploading() {
    let gpu = common::gpu();
    let a = ArrayD::<f32>::zeros(IxDyn(&[1 << 31, 0]));
    let b = ArrayD::<f32>::zeros(IxDyn(&[0, 1 << 31]));
    let e = refused(ops::matmul::run(&gpu, a.view(), b.view()), "matmul");
    assert!(e.contains("matmul out of shape [2147483648, 2147483648]") && e.contains("max_storage_buffer_binding_size"), "{e}");
    let q = ArrayD::<f32>::zeros(IxDyn(&[1, 1, 1 << 20, 0]));
    let e = refused(ops::attention::run(&gpu, q.view(), q.view(), q.view(), false, 1.0, true), "pattern");
    assert!(e.contains("the attention pattern [1, 1, 1048576, 1048576]") && e.contains("fused path"), "{e}");
    // The fused path needs no pattern, and out [1, 1, 2^20, 0] is empty.
    let (out, _) = ops::attention::run(&gpu, q.view(), q.view(), q.view(), false, 1.0, false).expect("fused");
    assert_eq!(out.shape(), &[1, 1, 1 << 20, 0]);
}
