//! Arbitrary shapes (tiny, zero, huge, overflowing) into every op's shape check, and — when the
//! arrays and outputs are small enough to build — into the host references themselves, with
//! values that include NaN and ±inf. Nothing may panic, abort or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ndarray::{ArrayD, IxDyn};
use shaderlens::ops::gelu::Gelu;
use shaderlens::reference::attention_layer::AttentionWeights;
use shaderlens::reference::{attention, attention_layer, gelu, layer_norm, matmul, softmax};

/// Reads shapes and values from the fuzzer's bytes.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn byte(&mut self) -> u8 {
        let (&b, rest) = self.0.split_first().unwrap_or((&0, &[]));
        self.0 = rest;
        b
    }

    /// Mostly small dimensions (0 to 5), sometimes moderate, sometimes anything a usize holds.
    fn dim(&mut self) -> usize {
        match self.byte() {
            b @ 0..=199 => usize::from(b % 6),
            b @ 200..=249 => usize::from(b),
            _ => (0..8).fold(0usize, |acc, _| acc << 8 | usize::from(self.byte())),
        }
    }

    fn shape(&mut self) -> Vec<usize> {
        let rank = usize::from(self.byte() % 6);
        (0..rank).map(|_| self.dim()).collect()
    }

    fn value(&mut self) -> f64 {
        match self.byte() {
            0 => f64::NAN,
            1 => f64::INFINITY,
            2 => f64::NEG_INFINITY,
            3 => 1e300,
            4 => -1e300,
            b => f64::from(b) / 16.0 - 8.0,
        }
    }
}

/// The most elements an array (input or output) may have for the references to be run on it.
const SMALL: usize = 1 << 12;

fn small(shapes: &[&[usize]]) -> bool {
    shapes.iter().all(|s| s.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).is_some_and(|n| n <= SMALL))
}

/// An array of `shape` with values from the bytes, or None when ndarray refuses the shape.
fn array(bytes: &mut Bytes<'_>, shape: &[usize]) -> Option<ArrayD<f64>> {
    let count = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).filter(|&n| n <= SMALL)?;
    let data = (0..count).map(|_| bytes.value()).collect();
    ArrayD::from_shape_vec(IxDyn(shape), data).ok()
}

fuzz_target!(|data: &[u8]| {
    let mut bytes = Bytes(data);
    let shapes: Vec<Vec<usize>> = (0..9).map(|_| bytes.shape()).collect();
    let s = |i: usize| shapes[i].as_slice();
    let flag = bytes.byte();

    // Every shape function, on arbitrary shapes.
    let _ = softmax::check_shape(s(0));
    let _ = layer_norm::check_shapes(s(0), Some((s(1), s(2))));
    let _ = layer_norm::check_shapes(s(0), None);
    let _ = layer_norm::scale_shape(s(0));
    let matmul_out = matmul::output_shape(s(0), s(1));
    if let Ok(out) = &matmul_out {
        if small(&[out]) {
            let dims = matmul::batch_pairs(s(0), s(1)).expect("output_shape accepted these shapes");
            assert_eq!(&dims.out_shape(), out);
        }
    }
    let attention_dims = attention::attention_shapes(s(0), s(1), s(2));
    let weights = AttentionWeights { w_q: s(1), w_k: s(2), w_v: s(3), b_q: s(4), b_k: s(5), b_v: s(6), w_o: s(7), b_o: s(8) };
    let layer_dims = attention_layer::attention_layer_shapes(s(0), &weights);

    // The references, whenever the arrays involved are small enough to build.
    let Some(x) = array(&mut bytes, s(0)) else { return };
    if small(&[s(0)]) {
        let _ = softmax::softmax(x.view());
        let _ = gelu::gelu(if flag & 1 == 0 { Gelu::Tanh } else { Gelu::Erf }, x.view());
        let scale_shape = layer_norm::scale_shape(s(0));
        if small(&[&scale_shape]) {
            let _ = layer_norm::layer_norm_full(x.view(), None, bytes.value());
            if let (Some(w), Some(b)) = (array(&mut bytes, s(1)), array(&mut bytes, s(2))) {
                let _ = layer_norm::layer_norm_full(x.view(), Some((w.view(), b.view())), bytes.value().abs());
            }
        }
    }
    let Some(y) = array(&mut bytes, s(1)) else { return };
    if matmul_out.is_ok_and(|out| small(&[&out])) {
        let _ = matmul::matmul(x.view(), y.view());
    }
    let Some(z) = array(&mut bytes, s(2)) else { return };
    if let Ok(dims) = attention_dims {
        if small(&[&dims.out_shape(), &dims.pattern_shape()]) {
            let _ = attention::attention(x.view(), y.view(), z.view(), flag & 2 != 0, bytes.value());
        }
    }
    if let Ok(dims) = layer_dims {
        let (b, t, h, d) = (dims.batch, dims.seq, dims.heads, dims.d_head);
        if small(&[&[b, t, h, d], &[b, h, t, t], &[b, t, dims.d_model]]) {
            let rest: Option<Vec<ArrayD<f64>>> = (3..9).map(|i| array(&mut bytes, s(i))).collect();
            if let Some(rest) = rest {
                let w = AttentionWeights {
                    w_q: y.view(),
                    w_k: z.view(),
                    w_v: rest[0].view(),
                    b_q: rest[1].view(),
                    b_k: rest[2].view(),
                    b_v: rest[3].view(),
                    w_o: rest[4].view(),
                    b_o: rest[5].view(),
                };
                let _ = attention_layer::attention_layer(x.view(), &w);
            }
        }
    }
});
