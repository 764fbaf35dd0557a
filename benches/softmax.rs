//! Criterion bench of `softmax` at the shapes of `shaderlens bench softmax` (see benches/common).

mod common;

use criterion::{criterion_group, criterion_main, Criterion};

fn softmax(c: &mut Criterion) {
    common::bench_op(c, "softmax");
}

criterion_group!(benches, softmax);
criterion_main!(benches);
