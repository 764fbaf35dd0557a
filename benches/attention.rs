//! Criterion bench of `attention` at the shapes of `shaderlens bench attention` (see benches/common).

mod common;

use criterion::{criterion_group, criterion_main, Criterion};

fn attention(c: &mut Criterion) {
    common::bench_op(c, "attention");
}

criterion_group!(benches, attention);
criterion_main!(benches);
