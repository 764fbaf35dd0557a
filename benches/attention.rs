//! Criterion bench of `attention` and of its fused backward `attention_backward` at the shapes of
//! `shaderlens bench attention` and `shaderlens bench attention_backward` (see benches/common).

mod common;

use criterion::{criterion_group, criterion_main, Criterion};

fn attention(c: &mut Criterion) {
    common::bench_op(c, "attention");
    common::bench_op(c, "attention_backward");
}

criterion_group!(benches, attention);
criterion_main!(benches);
