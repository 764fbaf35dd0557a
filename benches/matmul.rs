//! Criterion bench of `matmul` at the shapes of `shaderlens bench matmul` (see benches/common).

mod common;

use criterion::{criterion_group, criterion_main, Criterion};

fn matmul(c: &mut Criterion) {
    common::bench_op(c, "matmul");
}

criterion_group!(benches, matmul);
criterion_main!(benches);
