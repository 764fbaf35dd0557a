// out[b, h, i, :] = pattern[b, h, i, :] @ v[b, h, :, :], the second product of unfused attention.
//
// Register blocking: an invocation owns 4 queries x 4 value columns and walks the keys once,
// loading 4 pattern and 4 v values per key for 16 multiply-adds; no workgroup memory, no
// barriers. The walk stops at the last key the tile's last query sees: past it every pattern
// entry of the tile is zero. Queries and columns past the end are clamped for loading and never
// stored. A query that sees no key (or Sk = 0) gets a zero row. 64 invocations a workgroup.

@group(0) @binding(1) var<storage, read> pattern: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

fn store_row(base: u32, i: u32, e0: u32, o: vec4<f32>) {
    if (i >= params.sq) {
        return;
    }
    let row = base + i * params.o_i;
    for (var c = 0u; c < 4u; c++) {
        if (e0 + c < params.dv) {
            out[row + e0 + c] = o[c];
        }
    }
}

@compute @workgroup_size(64)
fn pattern_v(@builtin(workgroup_id) wg: vec3<u32>,
             @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) li: u32) {
    let g = invocation(wg, nwg, li);
    if (g >= params.count) {
        return;
    }
    let t = tile_of(g, 4u);
    let e0 = t.jt * 4u;
    let last_i = params.sq - 1u;
    let last_e = params.dv - 1u;
    let pb = t.bh * params.sq * params.sk;
    let p0 = pb + min(t.i0, last_i) * params.sk;
    let p1 = pb + min(t.i0 + 1u, last_i) * params.sk;
    let p2 = pb + min(t.i0 + 2u, last_i) * params.sk;
    let p3 = pb + min(t.i0 + 3u, last_i) * params.sk;
    let vb = t.b * params.v_b + t.h * params.v_h;
    let c0 = min(e0, last_e);
    let c1 = min(e0 + 1u, last_e);
    let c2 = min(e0 + 2u, last_e);
    let c3 = min(e0 + 3u, last_e);

    var o0 = vec4<f32>(0.0);
    var o1 = vec4<f32>(0.0);
    var o2 = vec4<f32>(0.0);
    var o3 = vec4<f32>(0.0);
    let keys = visible(min(t.i0 + 3u, last_i));
    for (var j = 0u; j < keys; j++) {
        let vr = vb + j * params.v_j;
        let vj = vec4<f32>(v[vr + c0], v[vr + c1], v[vr + c2], v[vr + c3]);
        o0 += pattern[p0 + j] * vj;
        o1 += pattern[p1 + j] * vj;
        o2 += pattern[p2 + j] * vj;
        o3 += pattern[p3 + j] * vj;
    }
    let ob = t.b * params.o_b + t.h * params.o_h;
    store_row(ob, t.i0, e0, o0);
    store_row(ob, t.i0 + 1u, e0, o1);
    store_row(ob, t.i0 + 2u, e0, o2);
    store_row(ob, t.i0 + 3u, e0, o3);
}
