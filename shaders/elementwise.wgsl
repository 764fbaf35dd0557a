// The small elementwise kernels of a transformer forward pass, on C-order float32 tensors:
//
//   add        out = a + b                                   (residual stream additions)
//   columns    out = act(a * b[col] + c[col])                (LayerNorm's w and b after the
//              with flag bits: 1 multiply by b, 2 add c,      normalisation; ReLU of the MLP)
//              4 apply ReLU; col = i % cols
//   rescale    out = out * a[row] / b[row], row = i / cols   (a changed hook_scale: normalized =
//                                                             centred / scale with the new scale)
//   intervene  out = f(out, a) where the index is selected:  (hook interventions, in place)
//              flags 0: zero, 1: scale by value, 2: take a
//
// intervene decodes the element's index over `dims` (the tensor's shape padded on the left with
// ones to rank 4) and changes it only where every axis matches `sel` (an index, or 0xffffffff
// for the whole axis): e.g. one head of hook_z [B, S, H, dh], or one position of a residual.
//
// Binding 1 is always the output and bindings 2.. the inputs, so each entry point binds a prefix
// (the host passes exactly the buffers an entry point uses). One invocation per element, 256 per
// workgroup, on a 2-D grid of workgroups (linear index wg.y * num_workgroups.x + wg.x). No loops,
// no workgroup memory.

struct Params {
    n: u32,
    cols: u32,
    flags: u32,
    value: f32,
    dims: vec4<u32>,
    sel: vec4<u32>,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read> c: array<f32>;

const WG: u32 = 256u;
const ALL: u32 = 0xffffffffu;


@compute @workgroup_size(256)
fn add(@builtin(workgroup_id) wg: vec3<u32>,
       @builtin(num_workgroups) nwg: vec3<u32>,
       @builtin(local_invocation_index) li: u32) {
    let i = grid_index(wg, nwg, li, WG);
    if (i >= params.n) {
        return;
    }
    out[i] = a[i] + b[i];
}

@compute @workgroup_size(256)
fn columns(@builtin(workgroup_id) wg: vec3<u32>,
           @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) li: u32) {
    let i = grid_index(wg, nwg, li, WG);
    if (i >= params.n) {
        return;
    }
    let col = i % params.cols;
    var v = a[i];
    if ((params.flags & 1u) != 0u) {
        v = v * b[col];
    }
    if ((params.flags & 2u) != 0u) {
        v = v + c[col];
    }
    if ((params.flags & 4u) != 0u) {
        v = max(v, 0.0);
    }
    out[i] = v;
}

@compute @workgroup_size(256)
fn rescale(@builtin(workgroup_id) wg: vec3<u32>,
           @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) li: u32) {
    let i = grid_index(wg, nwg, li, WG);
    if (i >= params.n) {
        return;
    }
    let row = i / params.cols;
    out[i] = out[i] * a[row] / b[row];
}

@compute @workgroup_size(256)
fn intervene(@builtin(workgroup_id) wg: vec3<u32>,
             @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) li: u32) {
    let i = grid_index(wg, nwg, li, WG);
    if (i >= params.n) {
        return;
    }
    let d = params.dims;
    let i3 = i % d.w;
    let i2 = (i / d.w) % d.z;
    let i1 = (i / (d.w * d.z)) % d.y;
    let i0 = i / (d.w * d.z * d.y);
    let at = vec4<u32>(i0, i1, i2, i3);
    let hit = (params.sel == vec4<u32>(ALL)) | (params.sel == at);
    if (!all(hit)) {
        return;
    }
    if (params.flags == 0u) {
        out[i] = 0.0;
    } else if (params.flags == 1u) {
        out[i] = out[i] * params.value;
    } else {
        out[i] = a[i];
    }
}
