// Deterministic reductions for the backward pass: column sums (bias gradients, LayerNorm's
// weight gradients) and the sum of a vector (the loss). Every sum runs in a fixed order, so the
// same inputs give the same bits on every run; no float atomics.
//
// column_sum: one invocation per (chunk of params.a rows, column): out[chunk, col] = sum over
//   the chunk's rows r, in order, of x[r, col] (times y[r, col] when flags bit 0), added to the
//   old out when flags bit 1. The host reduces [chunks, cols] again until one row is left.
// total: one workgroup of 256 invocations: out[0] = params.value * sum x[0..n] (each invocation
//   sums a stride, then a fixed tree), plus the old out[0] when flags bit 1.
//
// The workgroup grid is 2-D; the linear index is wg.y * num_wg.x + wg.x.

struct Params {
    n: u32,
    rows: u32,
    cols: u32,
    flags: u32,
    value: f32,
    a: u32,
    b: u32,
    c: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

const WG: u32 = 256u;

@compute @workgroup_size(256)
fn column_sum(@builtin(workgroup_id) wg: vec3<u32>,
              @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) li: u32) {
    let i = grid_index(wg, nwg, li, WG);
    if (i >= params.n) {
        return;
    }
    let cols = params.cols;
    let chunk = i / cols;
    let col = i % cols;
    let start = chunk * params.a;
    let end = min(params.rows, start + params.a);
    var s = 0.0;
    if ((params.flags & 1u) != 0u) {
        for (var r = start; r < end; r++) {
            s += x[r * cols + col] * y[r * cols + col];
        }
    } else {
        for (var r = start; r < end; r++) {
            s += x[r * cols + col];
        }
    }
    if ((params.flags & 2u) != 0u) {
        s += out[i];
    }
    out[i] = s;
}

@compute @workgroup_size(256)
fn total(@builtin(local_invocation_index) li: u32) {
    _ = arrayLength(&y); // bound (bindings are consecutive) but unused
    var s = 0.0;
    for (var j = li; j < params.n; j += WG) {
        s += x[j];
    }
    let sum = tree_sum(li, s, WG);
    if (li == 0u) {
        var t = sum * params.value;
        if ((params.flags & 2u) != 0u) {
            t += out[0];
        }
        out[0] = t;
    }
}
