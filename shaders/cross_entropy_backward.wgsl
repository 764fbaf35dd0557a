// Cross-entropy over the positions that have a target, and its gradient with respect to the
// logits (SPEC's Gradients): one workgroup of 64 invocations per row of logits.
//
// Per row: m = max(x), s = sum exp(x - m) (reduce_tree.wgsl's fixed-order tree reductions, so
// the same bits on every run), row_loss = (m - x[t]) + log(s) (log-sum-exp shifted by the row
// maximum; never log(softmax)), dlogits = (exp(x - m) / s - onehot(t)) * params.value, where
// params.value is 1 / (number of counted positions). A row whose target is negative gets loss 0
// and gradient 0. The target is read for every invocation and used through select() only, so
// every barrier is in uniform control flow.
//
// The workgroup grid is 2-D: row = wg.y * num_wg.x + wg.x.

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
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> targets: array<i32>;
@group(0) @binding(3) var<storage, read_write> dlogits: array<f32>;
@group(0) @binding(4) var<storage, read_write> row_loss: array<f32>;

const WG: u32 = 64u;

@compute @workgroup_size(64)
fn cross_entropy(@builtin(workgroup_id) wg: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) li: u32) {
    let row = workgroup_index(wg, nwg);
    if (row >= params.rows) {
        return;
    }
    let v = params.cols;
    let base = row * v;
    var m = bitcast<f32>(0xff800000u);
    for (var j = li; j < v; j += WG) {
        m = max(m, logits[base + j]);
    }
    m = tree_max(li, m, WG);
    var s = 0.0;
    for (var j = li; j < v; j += WG) {
        s += exp(logits[base + j] - m);
    }
    s = tree_sum(li, s, WG);
    let t = targets[row];
    let counted = t >= 0;
    for (var j = li; j < v; j += WG) {
        let p = exp(logits[base + j] - m) / s;
        let d = (p - select(0.0, 1.0, i32(j) == t)) * params.value;
        dlogits[base + j] = select(0.0, d, counted);
    }
    if (li == 0u) {
        let picked = logits[base + u32(max(t, 0))];
        row_loss[row] = select(0.0, (m - picked) + log(s), counted);
    }
}

// The same loss and gradient for SHORT rows (a probe's 3 classes per square): one invocation per
// row, 256 per workgroup, walking the row in order (max, then the sum, then the gradient), so
// that millions of tiny rows cost one invocation each instead of a workgroup each.
@compute @workgroup_size(256)
fn cross_entropy_short(@builtin(workgroup_id) wg: vec3<u32>,
                       @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) li: u32) {
    let row = grid_index(wg, nwg, li, 256u);
    if (row >= params.rows) {
        return;
    }
    let v = params.cols;
    let base = row * v;
    var m = bitcast<f32>(0xff800000u);
    for (var j = 0u; j < v; j++) {
        m = max(m, logits[base + j]);
    }
    var s = 0.0;
    for (var j = 0u; j < v; j++) {
        s += exp(logits[base + j] - m);
    }
    let t = targets[row];
    let counted = t >= 0;
    for (var j = 0u; j < v; j++) {
        let p = exp(logits[base + j] - m) / s;
        let d = (p - select(0.0, 1.0, i32(j) == t)) * params.value;
        dlogits[base + j] = select(0.0, d, counted);
    }
    let picked = logits[base + u32(max(t, 0))];
    row_loss[row] = select(0.0, (m - picked) + log(s), counted);
}
