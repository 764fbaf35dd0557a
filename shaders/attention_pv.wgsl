// out[b, h, i, :] = pattern[b, h, i, :] @ v[b, h, :, :], the second product of unfused attention.
//
// Dispatched once per segment of keys [j_begin, j_end) (lavapipe stops an invocation after 65535
// loop iterations in total): the first segment writes out, later ones add to it.
//
// Register blocking: an invocation owns 4 queries x 8 value columns and walks the keys once,
// loading 4 pattern floats and 2 v vec4s per key for 32 multiply-adds; no workgroup memory, no
// barriers. The walk stops at the last key the tile's last query sees: past it every pattern
// entry of the tile is zero. Queries and columns past the end are clamped for loading and never
// stored. A query that sees no key gets a zero row. 64 invocations a workgroup.

@group(0) @binding(1) var<storage, read> pattern: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

fn store_row(base: u32, i: u32, e0: u32, lo: vec4<f32>, hi: vec4<f32>) {
    if (i >= params.sq) {
        return;
    }
    let row = base + i * params.o_i + e0;
    let first = params.j_begin == 0u;
    for (var c = 0u; c < 4u; c++) {
        if (e0 + c < params.dv) {
            out[row + c] = select(out[row + c], 0.0, first) + lo[c];
        }
        if (e0 + 4u + c < params.dv) {
            out[row + 4u + c] = select(out[row + 4u + c], 0.0, first) + hi[c];
        }
    }
}

@compute @workgroup_size(64)
fn pattern_v(@builtin(workgroup_id) wg: vec3<u32>,
             @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) li: u32) {
    let g = grid_index(wg, nwg, li, WG);
    if (g >= params.count) {
        return;
    }
    let t = tile_of(g, 4u);
    let e0 = t.jt * 8u;
    let last_i = params.sq - 1u;
    let pr = t.bh * params.sq * params.sk
        + min(vec4<u32>(t.i0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(last_i)) * params.sk;
    let vb = t.b * params.v_b + t.h * params.v_h;
    let c0 = e0 / 4u;
    let c1 = min(c0 + 1u, params.dv4 - 1u);

    var a0 = vec4<f32>(0.0);
    var a1 = vec4<f32>(0.0);
    var a2 = vec4<f32>(0.0);
    var a3 = vec4<f32>(0.0);
    var b0 = vec4<f32>(0.0);
    var b1 = vec4<f32>(0.0);
    var b2 = vec4<f32>(0.0);
    var b3 = vec4<f32>(0.0);
    let keys = min(visible(min(t.i0 + 3u, last_i)), params.j_end);
    // Keys each query sees: a masked key's v is never used, even as 0 * v (NaN for a NaN v).
    let rows = min(vec4<u32>(t.i0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(last_i));
    let seen = vec4<u32>(visible(rows.x), visible(rows.y), visible(rows.z), visible(rows.w));
    for (var j = params.j_begin; j < keys; j++) {
        let vr = vb + j * params.v_j;
        let lo = v[vr + c0];
        let hi = v[vr + c1];
        let p = vec4<f32>(pattern[pr.x + j], pattern[pr.y + j], pattern[pr.z + j], pattern[pr.w + j]);
        let sees = vec4<u32>(j) < seen;
        a0 += select(vec4<f32>(0.0), p.x * lo, sees.x);
        b0 += select(vec4<f32>(0.0), p.x * hi, sees.x);
        a1 += select(vec4<f32>(0.0), p.y * lo, sees.y);
        b1 += select(vec4<f32>(0.0), p.y * hi, sees.y);
        a2 += select(vec4<f32>(0.0), p.z * lo, sees.z);
        b2 += select(vec4<f32>(0.0), p.z * hi, sees.z);
        a3 += select(vec4<f32>(0.0), p.w * lo, sees.w);
        b3 += select(vec4<f32>(0.0), p.w * hi, sees.w);
    }
    let ob = t.b * params.o_b + t.h * params.o_h;
    store_row(ob, t.i0, e0, a0, b0);
    store_row(ob, t.i0 + 1u, e0, a1, b1);
    store_row(ob, t.i0 + 2u, e0, a2, b2);
    store_row(ob, t.i0 + 3u, e0, a3, b3);
}
