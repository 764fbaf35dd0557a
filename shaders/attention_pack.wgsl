// Packs a strided [B, H, rows, cols] input into contiguous rows of cols4 = ceil(cols / 4) vec4s,
// zero-padded, for the vec4 loads of the other attention kernels. Only used when a head size is
// not a multiple of 4 (or a stride is not). Reuses Params: heads, sq = rows, dv = cols,
// dv4 = cols4, q_b/q_h/q_i = the input's strides in floats, count = B * H * rows * cols4.
// One invocation per output vec4, 64 a workgroup.

@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<vec4<f32>>;

@compute @workgroup_size(64)
fn pack(@builtin(workgroup_id) wg: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let g = grid_index(wg, nwg, li, WG);
    if (g >= params.count) {
        return;
    }
    let c0 = (g % params.dv4) * 4u;
    let rest = g / params.dv4;
    let row = rest % params.sq;
    let bh = rest / params.sq;
    let base = (bh / params.heads) * params.q_b + (bh % params.heads) * params.q_h + row * params.q_i;
    let last = params.dv - 1u;
    var x = vec4<f32>(0.0);
    for (var c = 0u; c < 4u; c++) {
        x[c] = select(0.0, src[base + min(c0 + c, last)], c0 + c < params.dv);
    }
    dst[g] = x;
}
