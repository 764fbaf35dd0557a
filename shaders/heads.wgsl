// Per-head kernels of TransformerLens's optional hooks, on C-order float32 tensors:
//
//   repeat_heads   out[r, h, d] = x[r, d]                          (hook_attn_in, hook_q_input...:
//                                                                   the residual repeated per head)
//   project_heads  out[r, h, j] = sum_i x[r, h, i] w[h, i, j] (+ bias[h, j] with flag bit 0)
//                                                                  (q, k, v from per-head inputs;
//                                                                   attn.hook_result from z and W_O)
//   sum_heads      out[r, j] = sum_h x[r, h, j] + w[j]             (hook_attn_out from hook_result
//                                                                   and b_O)
//
// r runs over the B·S rows, h over `heads`, i over `k` (the inner length) and j over `m`. One
// invocation per output element, 256 a workgroup, on a 2-D grid (linear workgroup index
// wg.y * num_workgroups.x + wg.x). project_heads loops k times and sum_heads `heads` times: the
// host refuses more than 65535 (llvmpipe's cap on an invocation's loop iterations).
//
// Binding 1 is the output and bindings 2.. the inputs, so each entry point binds a prefix
// (project_heads binds a stand-in for the bias when flag bit 0 is off).

struct Params {
    n: u32,
    heads: u32,
    k: u32,
    m: u32,
    flags: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

const BIAS: u32 = 1u;
const WG: u32 = 256u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> w: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;


@compute @workgroup_size(256)
fn repeat_heads(@builtin(workgroup_id) wg: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) li: u32) {
    let o = grid_index(wg, nwg, li, WG);
    if (o >= params.n) {
        return;
    }
    // o = (r * heads + h) * m + d
    let d = o % params.m;
    let r = o / (params.m * params.heads);
    out[o] = x[r * params.m + d];
}

@compute @workgroup_size(256)
fn project_heads(@builtin(workgroup_id) wg: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) li: u32) {
    let o = grid_index(wg, nwg, li, WG);
    if (o >= params.n) {
        return;
    }
    // o = (r * heads + h) * m + j; x row (r, h) starts at (r * heads + h) * k.
    let j = o % params.m;
    let rh = o / params.m;
    let h = rh % params.heads;
    let xb = rh * params.k;
    let wb = h * params.k * params.m + j;
    var acc = 0.0;
    for (var i = 0u; i < params.k; i += 1u) {
        acc += x[xb + i] * w[wb + i * params.m];
    }
    if ((params.flags & BIAS) != 0u) {
        acc += bias[h * params.m + j];
    }
    out[o] = acc;
}

@compute @workgroup_size(256)
fn sum_heads(@builtin(workgroup_id) wg: vec3<u32>,
             @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) li: u32) {
    let o = grid_index(wg, nwg, li, WG);
    if (o >= params.n) {
        return;
    }
    // o = r * m + j
    let j = o % params.m;
    let r = o / params.m;
    var acc = 0.0;
    for (var h = 0u; h < params.heads; h += 1u) {
        acc += x[(r * params.heads + h) * params.m + j];
    }
    out[o] = acc + w[j];
}
