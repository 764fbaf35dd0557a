// Swaps the middle two axes of a 4-D tensor, times a factor: out[a, c, b, d] = value * x[a, b,
// c, d] for x [A, B, C, D] (params.a = B, params.b = C, params.cols = D), added to the old out
// when flags bit 1. The backward uses it for TransformerLens's [B, S, H, d_head] <->
// [B, H, S, d_head] (with the attention scale folded into dQ and dK) and for the packed QKV
// weight gradients [d_model, H, d_head] -> [H, d_model, d_head]. One invocation per element.
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
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

const WG: u32 = 256u;

@compute @workgroup_size(256)
fn swap_axes(@builtin(workgroup_id) wg: vec3<u32>,
             @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) li: u32) {
    let i = grid_index(wg, nwg, li, WG);
    if (i >= params.n) {
        return;
    }
    // i indexes out [A, C, B, D].
    let dd = params.cols;
    let bb = params.a;
    let cc = params.b;
    let d = i % dd;
    let t = i / dd;
    let b = t % bb;
    let t2 = t / bb;
    let c = t2 % cc;
    let a = t2 / cc;
    var v = params.value * x[((a * bb + b) * cc + c) * dd + d];
    if ((params.flags & 2u) != 0u) {
        v += out[i];
    }
    out[i] = v;
}
