//! Criterion bench of `gelu` at the shapes of `shaderlens bench gelu` (see benches/common).

mod common;

use criterion::{criterion_group, criterion_main, Criterion};

fn gelu(c: &mut Criterion) {
    common::bench_op(c, "gelu");
}

criterion_group!(benches, gelu);
criterion_main!(benches);
