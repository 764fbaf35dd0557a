// Grokfast's EMA gradient filter (Lee et al. 2024) over the gradient arena of shaderlens train,
// before the norm, the clip and AdamW (shaders/adamw_arena.wgsl):
//
//   h[i] = alpha * h[i] + one_minus_alpha * g[i]   (h[i] = g[i] first when params.first != 0)
//   g[i] = g[i] + lambda * h[i]
//
// One invocation per element, on a 2-D grid of 256-invocation workgroups (linear index
// wg.y * num_wg.x + wg.x). Bindings: 1 grad (the arena, updated in place), 2 h (the average).
// The float64 twin is src/train/grokfast.rs.

struct Params {
    n: u32,
    first: u32,
    alpha: f32,
    one_minus_alpha: f32,
    lambda: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> h: array<f32>;

@compute @workgroup_size(256)
fn grokfast_arena(@builtin(workgroup_id) wg: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let i = grid_index(wg, nwg, lid, 256u);
    if (i >= params.n) {
        return;
    }
    let g = grad[i];
    var old = h[i];
    if (params.first != 0u) {
        old = g;
    }
    let avg = params.alpha * old + params.one_minus_alpha * g;
    h[i] = avg;
    grad[i] = g + params.lambda * avg;
}
