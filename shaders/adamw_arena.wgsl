// AdamW over every parameter of a model at once (shaderlens train): the parameters, their
// moments and their gradients lie end to end in flat "arena" buffers. Three entry points, all
// dispatched on a 2-D grid of 256-invocation workgroups (linear index wg.y * num_wg.x + wg.x):
//
//   sum_squares:  partials[w] = sum of src[i]^2 over chunk w (CHUNK elements, strided by 256,
//                 then a fixed tree): the same order every run, so the norm is deterministic.
//   finish_norm:  one workgroup: dst[0] = sqrt(sum of the partials) (the global L2 norm, as
//                 torch.nn.utils.clip_grad_norm_ computes it), dst[1] = the clip factor
//                 min(1, max_norm / (norm + 1e-6)) when clipping, else 1.
//   adamw_arena:  adamw.wgsl's update (PyTorch's order) with g = grad[i] * dst[1] and the
//                 decoupled decay applied only where mask[i] != 0 (biases and norms may be exempt).
//
// Bindings: 1 src (the input: gradients, or the partials), 2 dst (partials, or norm and factor),
// 3 param, 4 m, 5 v, 6 mask. Every scalar of the step is folded on the host in float64.

struct Params {
    n: u32,
    chunk: u32,
    count: u32,
    clip: u32,
    max_norm: f32,
    decay: f32,
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    step_size: f32,
    bias2_sqrt: f32,
    eps: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
@group(0) @binding(3) var<storage, read_write> param: array<f32>;
@group(0) @binding(4) var<storage, read_write> m: array<f32>;
@group(0) @binding(5) var<storage, read_write> v: array<f32>;
@group(0) @binding(6) var<storage, read_write> mask: array<u32>;

const WG: u32 = 256u;

@compute @workgroup_size(256)
fn sum_squares(@builtin(workgroup_id) wg: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let w = workgroup_index(wg, nwg);
    if (w >= params.count) {
        return;
    }
    let start = w * params.chunk;
    let end = min(start + params.chunk, params.n);
    var acc = 0.0;
    for (var i = start + lid; i < end; i = i + WG) {
        let g = src[i];
        acc = acc + g * g;
    }
    let sum = tree_sum(lid, acc, WG);
    if (lid == 0u) {
        dst[w] = sum;
    }
}

@compute @workgroup_size(256)
fn finish_norm(@builtin(local_invocation_index) lid: u32) {
    var acc = 0.0;
    for (var i = lid; i < params.count; i = i + WG) {
        acc = acc + src[i];
    }
    let sum = tree_sum(lid, acc, WG);
    if (lid == 0u) {
        let norm = sqrt(sum);
        dst[0] = norm;
        var factor = 1.0;
        if (params.clip != 0u) {
            factor = min(1.0, params.max_norm / (norm + 1e-6));
        }
        dst[1] = factor;
    }
}

@compute @workgroup_size(256)
fn adamw_arena(@builtin(workgroup_id) wg: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let i = grid_index(wg, nwg, lid, WG);
    if (i >= params.n) {
        return;
    }
    let g = src[i] * dst[1];
    var p = param[i];
    if (mask[i] != 0u) {
        p = p * params.decay;
    }
    let m1 = m[i] + (g - m[i]) * params.one_minus_beta1;
    let v1 = v[i] * params.beta2 + params.one_minus_beta2 * g * g;
    m[i] = m1;
    v[i] = v1;
    param[i] = p - params.step_size * m1 / (sqrt(v1) / params.bias2_sqrt + params.eps);
}
