//! Arbitrary bytes as an npz fixture: the reader, every typed accessor, and the host half of
//! `verify` for every op whose arrays the file happens to hold. Nothing may panic, abort, hang or
//! allocate more than the bytes justify.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ndarray::ArrayD;
use shaderlens::fixture::Fixture;
use shaderlens::ops::gelu::Gelu;
use shaderlens::reference::attention_layer::AttentionWeights;
use shaderlens::reference::{attention, attention_layer, gelu, layer_norm, matmul, softmax};

/// Outputs larger than this are only shape-checked, not computed.
const SMALL: usize = 1 << 14;

fn small(shape: &[usize]) -> bool {
    shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).is_some_and(|n| n <= SMALL)
}

fn f64s(a: &ArrayD<f32>) -> ArrayD<f64> {
    a.mapv(f64::from)
}

fuzz_target!(|data: &[u8]| {
    let Ok(fixture) = Fixture::from_bytes("fuzz", "case", data) else { return };
    let names: Vec<String> = fixture.names().map(String::from).collect();
    for name in &names {
        let _ = fixture.input(name);
        let _ = fixture.input_rank(name, 2);
        let _ = fixture.expected(name);
        let _ = fixture.expected_shaped(name, &[2, 3]);
        let _ = fixture.scalar_f64(name);
        let _ = fixture.scalar_bool(name);
        let _ = fixture.int_array(name);
    }
    // The host half of verify's checks, for each op whose inputs are present.
    if let (Ok(a), Ok(b)) = (fixture.input("a"), fixture.input("b")) {
        if let Ok(shape) = matmul::output_shape(a.shape(), b.shape()) {
            let _ = fixture.expected_shaped("out", &shape);
            if small(&shape) {
                let _ = matmul::matmul(f64s(&a).view(), f64s(&b).view());
            }
        }
    }
    if let Ok(x) = fixture.input("x") {
        let x64 = f64s(&x);
        let _ = softmax::softmax(x64.view());
        let _ = gelu::gelu(Gelu::Tanh, x64.view());
        let _ = gelu::gelu(Gelu::Erf, x64.view());
        if let (Ok(w), Ok(b), Ok(eps)) = (fixture.input("w"), fixture.input("b"), fixture.scalar_f64("eps")) {
            if small(&layer_norm::scale_shape(x.shape())) {
                let _ = layer_norm::layer_norm(x64.view(), f64s(&w).view(), f64s(&b).view(), eps);
            }
        }
    }
    if let (Ok(q), Ok(k), Ok(v)) = (fixture.input("q"), fixture.input("k"), fixture.input("v")) {
        let causal = fixture.scalar_bool("causal").unwrap_or(false);
        let scale = fixture.scalar_f64("scale").unwrap_or(1.0);
        if let Ok(dims) = attention::attention_shapes(q.shape(), k.shape(), v.shape()) {
            let _ = fixture.expected_shaped("pattern", &dims.pattern_shape());
            if small(&dims.pattern_shape()) && small(&dims.out_shape()) {
                let _ = attention::attention(f64s(&q).view(), f64s(&k).view(), f64s(&v).view(), causal, scale);
            }
        }
    }
    let names = ["W_Q", "W_K", "W_V", "b_Q", "b_K", "b_V", "W_O", "b_O"];
    if let (Ok(x), [Ok(w_q), Ok(w_k), Ok(w_v), Ok(b_q), Ok(b_k), Ok(b_v), Ok(w_o), Ok(b_o)]) =
        (fixture.input("x"), names.map(|n| fixture.input(n)))
    {
        let w = AttentionWeights { w_q, w_k, w_v, b_q, b_k, b_v, w_o, b_o };
        if let Ok(dims) = attention_layer::attention_layer_shapes(x.shape(), &w.map(|_, a| a.shape())) {
            let (b, s, h, d) = (dims.batch, dims.seq, dims.heads, dims.d_head);
            if small(&[b, s, h, d]) && small(&[b, h, s, s]) && small(&[b, s, dims.d_model]) {
                let w64 = w.map(|_, a| f64s(a));
                let _ = attention_layer::attention_layer(f64s(&x).view(), &w64.map(|_, a| a.view()));
            }
        }
    }
});
