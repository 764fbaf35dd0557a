// Fixed-order tree reductions over a workgroup of `size` invocations (a power of two, at most
// TREE_MAX): every invocation puts its value in, pairs at distance size / 2 combine, then
// size / 4, ..., and every invocation gets the result. The order never changes, so the same
// inputs give the same bits every run (no float atomics). Every invocation of the workgroup must
// call a helper, in uniform control flow. Prepended by src/gpu/shaders.rs (cross-entropy, the
// backward's totals, the optimizer's gradient norm).

const TREE_MAX: u32 = 256u;
var<workgroup> tree_values: array<f32, TREE_MAX>;

// The sum of every invocation's `value`, returned to all.
fn tree_sum(li: u32, value: f32, size: u32) -> f32 {
    tree_values[li] = value;
    workgroupBarrier();
    for (var step = size / 2u; step > 0u; step = step / 2u) {
        if (li < step) {
            tree_values[li] = tree_values[li] + tree_values[li + step];
        }
        workgroupBarrier();
    }
    let result = tree_values[0];
    workgroupBarrier(); // everyone has read the result before a next call overwrites it
    return result;
}

// The largest of every invocation's `value`, returned to all.
fn tree_max(li: u32, value: f32, size: u32) -> f32 {
    tree_values[li] = value;
    workgroupBarrier();
    for (var step = size / 2u; step > 0u; step = step / 2u) {
        if (li < step) {
            tree_values[li] = max(tree_values[li], tree_values[li + step]);
        }
        workgroupBarrier();
    }
    let result = tree_values[0];
    workgroupBarrier(); // everyone has read the result before a next call overwrites it
    return result;
}

