// dk and dv of the fused attention backward: an invocation owns 4 keys and walks the queries that
// see them, 4 at a time, in order. Per block of 4 queries it recomputes the 4 x 4 scores (one walk
// over the head size in vec4 steps) and dO·v (one walk over Dv), turns them into the pattern p and
// ds = p (dO·v - delta), then adds p dO into the keys' dv rows and scale ds q into their dk rows.
//
// The accumulators live in a scratch buffer, one row of d4 + dv4 vec4s per key (dk's then dv's),
// owned by this invocation alone; the first segment clears them. The host dispatches one segment
// of queries [seg_begin, seg_end) at a time (lavapipe and llvmpipe stop an invocation after 65535
// loop iterations); the last segment writes dk and dv out. Under the causal mask the walk starts
// at the first query that sees the tile's first key. No workgroup memory, no barriers.

@group(0) @binding(1) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> k: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> v: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> gz: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> info: array<vec4<f32>>;   // per query tile: lse, delta
@group(0) @binding(6) var<storage, read_write> acc: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read_write> gk: array<f32>;
@group(0) @binding(8) var<storage, read_write> gv: array<f32>;

// Write accumulator row `a` (d4, or dv4, vec4s) to the strided dk (dv) row at `base`, padding left out.
fn write_k(a: u32, base: u32) {
    for (var c = 0u; c < params.d4; c++) {
        let x = acc[a + c];
        for (var e = 0u; e < 4u; e++) {
            if (c * 4u + e < params.d) {
                gk[base + c * 4u + e] = x[e];
            }
        }
    }
}

fn write_v(a: u32, base: u32) {
    for (var c = 0u; c < params.dv4; c++) {
        let x = acc[a + c];
        for (var e = 0u; e < 4u; e++) {
            if (c * 4u + e < params.dv) {
                gv[base + c * 4u + e] = x[e];
            }
        }
    }
}

@compute @workgroup_size(64)
fn dkdv(@builtin(workgroup_id) wg: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let g = invocation(wg, nwg, li);
    if (g >= params.count) {
        return;
    }
    let bh = g / params.tiles;
    let b = bh / params.heads;
    let h = bh % params.heads;
    let j0 = (g % params.tiles) * 4u;
    let width = params.d4 + params.dv4;
    let a0 = g * 4u * width;   // this invocation's accumulator rows: dk then dv per key
    let a1 = a0 + width;
    let a2 = a1 + width;
    let a3 = a2 + width;
    if (params.seg_begin == 0u) {
        for (var c = 0u; c < width; c++) {
            acc[a0 + c] = vec4<f32>(0.0);
            acc[a1 + c] = vec4<f32>(0.0);
            acc[a2 + c] = vec4<f32>(0.0);
            acc[a3 + c] = vec4<f32>(0.0);
        }
    }
    // Keys past Sk are clamped for loading; no query sees them.
    let keys = min(vec4<u32>(j0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(params.sk - 1u));
    let kr = b * params.k_b + h * params.k_h + keys * params.k_j;
    let vr = b * params.v_b + h * params.v_h + keys * params.v_j;
    var first = 0u;   // the first query that sees key j0, rounded down to its tile
    if (params.causal != 0u) {
        first = u32(max(i32(j0) + i32(params.sq) - i32(params.sk), 0)) / 4u * 4u;
    }
    let dv0 = params.d4;
    for (var i0 = max(params.seg_begin, first); i0 < params.seg_end; i0 += 4u) {
        let rows = min(vec4<u32>(i0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(params.sq - 1u));
        let qr = b * params.q_b + h * params.q_h + rows * params.q_i;
        let zr = b * params.gz_b + h * params.gz_h + rows * params.gz_i;
        // s_r and dp_r: key r against the 4 queries.
        var s0 = vec4<f32>(0.0);
        var s1 = vec4<f32>(0.0);
        var s2 = vec4<f32>(0.0);
        var s3 = vec4<f32>(0.0);
        for (var c = 0u; c < params.d4; c++) {
            let x0 = q[qr.x + c];
            let x1 = q[qr.y + c];
            let x2 = q[qr.z + c];
            let x3 = q[qr.w + c];
            s0 += dots(k[kr.x + c], x0, x1, x2, x3);
            s1 += dots(k[kr.y + c], x0, x1, x2, x3);
            s2 += dots(k[kr.z + c], x0, x1, x2, x3);
            s3 += dots(k[kr.w + c], x0, x1, x2, x3);
        }
        var dp0 = vec4<f32>(0.0);
        var dp1 = vec4<f32>(0.0);
        var dp2 = vec4<f32>(0.0);
        var dp3 = vec4<f32>(0.0);
        for (var c = 0u; c < params.dv4; c++) {
            let z0 = gz[zr.x + c];
            let z1 = gz[zr.y + c];
            let z2 = gz[zr.z + c];
            let z3 = gz[zr.w + c];
            dp0 += dots(v[vr.x + c], z0, z1, z2, z3);
            dp1 += dots(v[vr.y + c], z0, z1, z2, z3);
            dp2 += dots(v[vr.z + c], z0, z1, z2, z3);
            dp3 += dots(v[vr.w + c], z0, z1, z2, z3);
        }
        let tile = bh * params.tiles_q + i0 / 4u;
        let lse = info[2u * tile];
        let delta = info[2u * tile + 1u];
        let vis = visible4(i0);
        let m0 = vec4<u32>(j0) < vis;
        let m1 = vec4<u32>(j0 + 1u) < vis;
        let m2 = vec4<u32>(j0 + 2u) < vis;
        let m3 = vec4<u32>(j0 + 3u) < vis;
        let p0 = pattern(s0, lse, m0);
        let p1 = pattern(s1, lse, m1);
        let p2 = pattern(s2, lse, m2);
        let p3 = pattern(s3, lse, m3);
        let t0 = select(vec4<f32>(0.0), params.scale * p0 * (dp0 - delta), m0);
        let t1 = select(vec4<f32>(0.0), params.scale * p1 * (dp1 - delta), m1);
        let t2 = select(vec4<f32>(0.0), params.scale * p2 * (dp2 - delta), m2);
        let t3 = select(vec4<f32>(0.0), params.scale * p3 * (dp3 - delta), m3);
        for (var c = 0u; c < params.dv4; c++) {
            let z0 = gz[zr.x + c];
            let z1 = gz[zr.y + c];
            let z2 = gz[zr.z + c];
            let z3 = gz[zr.w + c];
            acc[a0 + dv0 + c] += combine(p0, z0, z1, z2, z3);
            acc[a1 + dv0 + c] += combine(p1, z0, z1, z2, z3);
            acc[a2 + dv0 + c] += combine(p2, z0, z1, z2, z3);
            acc[a3 + dv0 + c] += combine(p3, z0, z1, z2, z3);
        }
        for (var c = 0u; c < params.d4; c++) {
            let x0 = q[qr.x + c];
            let x1 = q[qr.y + c];
            let x2 = q[qr.z + c];
            let x3 = q[qr.w + c];
            acc[a0 + c] += combine(t0, x0, x1, x2, x3);
            acc[a1 + c] += combine(t1, x0, x1, x2, x3);
            acc[a2 + c] += combine(t2, x0, x1, x2, x3);
            acc[a3 + c] += combine(t3, x0, x1, x2, x3);
        }
    }
    if (params.last == 0u) {
        return;
    }
    let ab = array<u32, 4>(a0, a1, a2, a3);
    for (var r = 0u; r < 4u; r++) {
        let j = j0 + r;
        if (j >= params.sk) {
            break;
        }
        write_k(ab[r], b * params.gk_b + h * params.gk_h + j * params.gk_j);
        write_v(ab[r] + dv0, b * params.gv_b + h * params.gv_h + j * params.gv_j);
    }
}
