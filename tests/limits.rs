//! Device limits: on a `Gpu` opened with artificially low limits (1 MiB storage bindings, 8
//! workgroups per grid dimension, 4 storage buffers per stage), every op either splits the work
//! (attention without the pattern takes the fused path, which never stores it) or refuses it
//! before any GPU work with an error that names the limit — never a wgpu validation panic. A
//! destroyed device makes every later call an `Error::Gpu("device lost: …")`.

mod common;

use std::sync::OnceLock;

use ndarray::{ArrayD, IxDyn};
use shaderlens::ops::{self, attention_layer::Request, gelu::Gelu};
use shaderlens::reference::{self, attention_layer::AttentionWeights};
use shaderlens::{Error, Gpu};

const BINDING: u64 = 1 << 20;
const PER_DIMENSION: u32 = 8;

/// A second device on the test adapter with low limits (each within the adapter's).
fn small_gpu() -> &'static Gpu {
    static SMALL: OnceLock<Gpu> = OnceLock::new();
    SMALL.get_or_init(|| {
        let mut limits = common::gpu().limits().clone();
        limits.max_storage_buffer_binding_size = BINDING;
        limits.max_buffer_size = BINDING * 4;
        limits.max_compute_workgroups_per_dimension = PER_DIMENSION;
        Gpu::with_limits(limits).expect("a device with lower limits than the adapter's")
    })
}

fn ones(shape: &[usize]) -> ArrayD<f32> {
    let mut n = 0u32;
    ArrayD::from_shape_fn(IxDyn(shape), |_| {
        n = n.wrapping_add(1);
        (n % 7) as f32 * 0.25 - 0.5
    })
}

/// Asserts that `result` is a limit error naming `limit` (and, when given, `what`).
fn refused<T>(result: shaderlens::Result<T>, limit: &str, what: &str) {
    match result {
        Err(e @ Error::Limit { .. }) => {
            let message = e.to_string();
            assert!(message.contains(limit) && message.contains(what), "{message}");
        }
        Err(e) => panic!("{what}: want a limit error naming {limit}, got {e}"),
        Ok(_) => panic!("{what}: want a limit error naming {limit}, got a result"),
    }
}

#[test]
fn the_device_has_the_limits_asked_for() {
    let _turn = common::gpu();
    let gpu = small_gpu();
    assert_eq!(gpu.limits().max_storage_buffer_binding_size, BINDING);
    assert_eq!(gpu.device().limits().max_compute_workgroups_per_dimension, PER_DIMENSION);
}

#[test]
fn tensors_past_the_binding_size_are_refused_by_every_op() {
    let _turn = common::gpu();
    let gpu = small_gpu();
    let big = ones(&[300, 1000]); // 1.2 MB
    let binding = "max_storage_buffer_binding_size";
    refused(ops::gelu::run(gpu, Gelu::Tanh, big.view()), binding, "x of shape [300, 1000]");
    refused(ops::softmax::run(gpu, big.view()), binding, "x of shape [300, 1000]");
    let w = ones(&[1000]);
    refused(ops::layer_norm::run(gpu, big.view(), w.view(), w.view(), 1e-5), binding, "x of shape [300, 1000]");
    refused(ops::matmul::run(gpu, big.view(), ones(&[1000, 2]).view()), binding, "a of shape [300, 1000]");
    // Small inputs whose product is too large: refused before either is uploaded.
    refused(ops::matmul::run(gpu, ones(&[1024, 1]).view(), ones(&[1, 1024]).view()), binding, "matmul out of shape [1024, 1024]");
    let q = ones(&[1, 1, 600, 4]);
    refused(ops::attention::run(gpu, q.view(), q.view(), q.view(), true, 0.5, true), binding, "the attention pattern [1, 1, 600, 600]");
    refused(ops::attention::run_scores(gpu, q.view(), q.view(), true, 0.5), binding, "the attention scores [1, 1, 600, 600]");
}

#[test]
fn attention_without_the_pattern_splits_into_the_fused_path() {
    let _turn = common::gpu();
    let gpu = small_gpu();
    // The pattern (1.44 MB) does not fit, but the fused path never stores it.
    let (q, k, v) = (ones(&[1, 1, 600, 4]), ones(&[1, 1, 600, 4]).mapv(|x| -x), ones(&[1, 1, 600, 3]));
    let (out, pattern) = ops::attention::run(gpu, q.view(), k.view(), v.view(), true, 0.5, false).expect("fused path");
    assert!(pattern.is_none());
    let (want, _) = reference::attention::attention(q.mapv(f64::from).view(), k.mapv(f64::from).view(), v.mapv(f64::from).view(), true, 0.5)
        .expect("reference");
    common::assert_close(&out, &want, 1e-4, 1e-3, "fused attention on the small device");

    let (h, dm, dh, s) = (2, 8, 4, 600);
    let weights = AttentionWeights {
        w_q: ones(&[h, dm, dh]),
        w_k: ones(&[h, dm, dh]).mapv(|x| x * 0.5),
        w_v: ones(&[h, dm, dh]),
        b_q: ones(&[h, dh]),
        b_k: ones(&[h, dh]),
        b_v: ones(&[h, dh]),
        w_o: ones(&[h, dh, dm]),
        b_o: ones(&[dm]),
    };
    let x = ones(&[1, s, dm]);
    let views = weights.map(|_, a| a.view());
    refused(ops::attention_layer::run(gpu, x.view(), &views, Request::pattern()), "max_storage_buffer_binding_size", "pattern [1, 2, 600, 600]");
    let layer = ops::attention_layer::run(gpu, x.view(), &views, Request::default()).expect("fused layer");
    let w64 = weights.map(|_, a| a.mapv(f64::from));
    let want = reference::attention_layer::attention_layer(x.mapv(f64::from).view(), &w64.map(|_, a| a.view())).expect("reference");
    common::assert_close(&layer.out, &want.out, 1e-4, 1e-3, "fused attention_layer on the small device");
}

#[test]
fn work_past_the_dispatch_grid_is_refused_and_work_up_to_it_runs() {
    let _turn = common::gpu();
    let gpu = small_gpu();
    let grid = "max_compute_workgroups_per_dimension";
    let most = (PER_DIMENSION * PER_DIMENSION) as usize; // workgroups on an 8 x 8 grid
    // gelu: 256 invocations a workgroup.
    let x = ones(&[most * 256]);
    let got = ops::gelu::run(gpu, Gelu::Erf, x.view()).expect("a full 8 x 8 grid");
    common::assert_close(&got, &reference::gelu::gelu(Gelu::Erf, x.mapv(f64::from).view()), 1e-5, 1e-4, "gelu on a full grid");
    refused(ops::gelu::run(gpu, Gelu::Erf, ones(&[most * 256 + 1]).view()), grid, "gelu workgroups");
    // Row ops: at most 64 rows a workgroup (8 on CPU adapters) on the invocation path.
    let rows = ones(&[most * 64 + 64, 3]);
    refused(ops::softmax::run(gpu, rows.view()), grid, "softmax");
    let w = ones(&[3]);
    refused(ops::layer_norm::run(gpu, rows.view(), w.view(), w.view(), 1e-5), grid, "layer_norm");
    // matmul: one workgroup per (batch, tile).
    refused(ops::matmul::run(gpu, ones(&[most + 1, 1, 3]).view(), ones(&[3, 1]).view()), grid, "matmul workgroups");
    let got = ops::matmul::run(gpu, ones(&[most, 1, 3]).view(), ones(&[3, 1]).view()).expect("a full grid of batches");
    assert_eq!(got.shape(), &[most, 1, 1]);
    // attention: 64 (batch, head, query tile) items a workgroup.
    let q = ones(&[most * 64 + 1, 1, 1, 4]);
    for want_pattern in [false, true] {
        refused(ops::attention::run(gpu, q.view(), q.view(), q.view(), false, 1.0, want_pattern), grid, "attention");
    }
}

#[test]
fn too_few_storage_bindings_is_an_error_naming_the_limit() {
    let _turn = common::gpu();
    let mut limits = common::gpu().limits().clone();
    limits.max_storage_buffers_per_shader_stage = 4;
    let gpu = Gpu::with_limits(limits).expect("a device with 4 storage buffers a stage");
    let q = ones(&[1, 1, 4, 4]);
    // The fused attention kernel binds 6 storage buffers; gelu binds 2 and still runs.
    let e = ops::attention::run(&gpu, q.view(), q.view(), q.view(), true, 0.5, false).expect_err("6 bindings > 4");
    let message = e.to_string();
    assert!(message.contains("max_storage_buffers_per_shader_stage") && message.contains("attention_fused"), "{message}");
    assert!(ops::gelu::run(&gpu, Gelu::Tanh, q.view()).is_ok());
}

#[test]
fn a_lost_device_makes_every_later_call_an_error() {
    let _turn = common::gpu();
    let gpu = Gpu::new().expect("a second device");
    let x = ones(&[2, 3]);
    assert!(ops::gelu::run(&gpu, Gelu::Tanh, x.view()).is_ok());
    gpu.device().destroy();
    for result in [
        ops::gelu::run(&gpu, Gelu::Tanh, x.view()).map(|_| ()),
        ops::softmax::run(&gpu, x.view()).map(|_| ()),
        ops::matmul::run(&gpu, x.view(), ones(&[3, 2]).view()).map(|_| ()),
        shaderlens::GpuTensor::upload(&gpu, x.view(), "x").map(|_| ()),
    ] {
        match result {
            Err(Error::Gpu(message)) => assert!(message.starts_with("device lost"), "{message}"),
            other => panic!("want Error::Gpu(\"device lost: …\"), got {other:?}"),
        }
    }
}
