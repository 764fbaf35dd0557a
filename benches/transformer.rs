//! Criterion bench of `transformer` at the shapes of `shaderlens bench transformer` (see benches/common).

mod common;

use criterion::{criterion_group, criterion_main, Criterion};

fn transformer(c: &mut Criterion) {
    common::bench_op(c, "transformer");
}

criterion_group!(benches, transformer);
criterion_main!(benches);
