//! Criterion bench of `layer_norm` at the shapes of `shaderlens bench layer_norm` (see benches/common).

mod common;

use criterion::{criterion_group, criterion_main, Criterion};

fn layer_norm(c: &mut Criterion) {
    common::bench_op(c, "layer_norm");
}

criterion_group!(benches, layer_norm);
criterion_main!(benches);
