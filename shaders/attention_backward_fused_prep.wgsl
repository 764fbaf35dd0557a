// The per-query inputs of the fused attention backward, one invocation per tile of 4 queries:
// lse = m + ln(l) from the forward's row statistics (0 for a query that saw no key, which the
// mask keeps out of every sum anyway) and delta = dO · O, into `info` as two vec4s per tile
// (lse, then delta). dO comes zero-padded as vec4 rows, out as strided floats.

@group(0) @binding(1) var<storage, read> out: array<f32>;
@group(0) @binding(2) var<storage, read> gz: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> stats: array<vec4<f32>>;   // per tile: m, l
@group(0) @binding(4) var<storage, read_write> info: array<vec4<f32>>;

// Out's 4 floats from column c0 of the row at `base`, 0 past Dv (unrolled: every loop iteration
// counts against llvmpipe's 65535).
fn out4(base: u32, c0: u32) -> vec4<f32> {
    var x = vec4<f32>(0.0);
    if (c0 < params.dv) { x.x = out[base + c0]; }
    if (c0 + 1u < params.dv) { x.y = out[base + c0 + 1u]; }
    if (c0 + 2u < params.dv) { x.z = out[base + c0 + 2u]; }
    if (c0 + 3u < params.dv) { x.w = out[base + c0 + 3u]; }
    return x;
}

@compute @workgroup_size(64)
fn prep(@builtin(workgroup_id) wg: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let g = grid_index(wg, nwg, li, WG);
    if (g >= params.count) {
        return;
    }
    let bh = g / params.tiles;
    let b = bh / params.heads;
    let h = bh % params.heads;
    let i0 = (g % params.tiles) * 4u;
    var delta = vec4<f32>(0.0);
    for (var r = 0u; r < 4u; r++) {
        let i = i0 + r;
        if (i >= params.sq) {
            break;
        }
        let ob = b * params.o_b + h * params.o_h + i * params.o_i;
        let zb = b * params.gz_b + h * params.gz_h + i * params.gz_i;
        var s = 0.0;
        for (var c = 0u; c < params.dv4; c++) {
            s += dot(gz[zb + c], out4(ob, c * 4u));
        }
        delta[r] = s;
    }
    let m = stats[2u * g];
    let l = stats[2u * g + 1u];
    info[2u * g] = select(m + log(l), vec4<f32>(0.0), l <= vec4<f32>(0.0));
    info[2u * g + 1u] = delta;
}
