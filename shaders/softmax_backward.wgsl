// Softmax backward along rows: dx = y (dy - sum_j y_j dy_j), one invocation per row (rows are
// attention rows here, at most n_ctx long; the host refuses rows longer than
// MAX_INVOCATION_ROW_LEN). Where y is 0 (a causally hidden key) dx is exactly 0.
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
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

const WG: u32 = 64u;

@compute @workgroup_size(64)
fn softmax_backward(@builtin(workgroup_id) wg: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) li: u32) {
    let row = grid_index(wg, nwg, li, WG);
    if (row >= params.rows) {
        return;
    }
    let n = params.cols;
    let base = row * n;
    var dot = 0.0;
    for (var j = 0u; j < n; j++) {
        dot += y[base + j] * dy[base + j];
    }
    for (var j = 0u; j < n; j++) {
        dx[base + j] = y[base + j] * (dy[base + j] - dot);
    }
}

// causal_mask: dx = y with the keys a causal mask hides set to 0 (query i = row % params.a of
// params.a queries sees keys j <= i + cols - params.a, SPEC's bottom-right alignment), one
// invocation per row: what the forward's pattern @ v used when an intervention wrote there.
@compute @workgroup_size(64)
fn causal_mask(@builtin(workgroup_id) wg: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) li: u32) {
    _ = arrayLength(&dy); // bound (bindings are consecutive) but unused
    let row = grid_index(wg, nwg, li, WG);
    if (row >= params.rows) {
        return;
    }
    let n = params.cols;
    let base = row * n;
    let i = row % params.a;
    for (var j = 0u; j < n; j++) {
        dx[base + j] = select(y[base + j], 0.0, j + params.a > i + n);
    }
}
