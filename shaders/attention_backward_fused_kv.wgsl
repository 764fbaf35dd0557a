// dk and dv of the fused attention backward: an invocation owns 4 keys and walks the queries that
// see them, 8 at a time, in order. Per block of 8 queries it recomputes the 4 x 8 scores (one walk
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

// Write accumulator row `a` (d4, or dv4, vec4s) to the strided dk (dv) row at `base`, padding left
// out (unrolled: every loop iteration counts against llvmpipe's 65535).
fn write_k(a: u32, base: u32) {
    for (var c = 0u; c < params.d4; c++) {
        let x = acc[a + c];
        let col = c * 4u;
        if (col < params.d) { gk[base + col] = x.x; }
        if (col + 1u < params.d) { gk[base + col + 1u] = x.y; }
        if (col + 2u < params.d) { gk[base + col + 2u] = x.z; }
        if (col + 3u < params.d) { gk[base + col + 3u] = x.w; }
    }
}

fn write_v(a: u32, base: u32) {
    for (var c = 0u; c < params.dv4; c++) {
        let x = acc[a + c];
        let col = c * 4u;
        if (col < params.dv) { gv[base + col] = x.x; }
        if (col + 1u < params.dv) { gv[base + col + 1u] = x.y; }
        if (col + 2u < params.dv) { gv[base + col + 2u] = x.z; }
        if (col + 3u < params.dv) { gv[base + col + 3u] = x.w; }
    }
}

@compute @workgroup_size(64)
fn dkdv(@builtin(workgroup_id) wg: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let g = grid_index(wg, nwg, li, WG);
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
    var first = 0u;   // the first query that sees key j0, rounded down to a multiple of 8 (as segments)
    if (params.causal != 0u) {
        first = u32(max(i32(j0) + i32(params.sq) - i32(params.sk), 0)) / 8u * 8u;
    }
    let dv0 = params.d4;
    let last_tile = params.tiles_q - 1u;
    for (var i0 = max(params.seg_begin, first); i0 < params.seg_end; i0 += 8u) {
        // 8 queries a block: lo = i0..i0+3, hi = i0+4..i0+7 (past Sq clamped, masked).
        let lo = min(vec4<u32>(i0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(params.sq - 1u));
        let hi = min(vec4<u32>(i0) + vec4<u32>(4u, 5u, 6u, 7u), vec4<u32>(params.sq - 1u));
        let ql = b * params.q_b + h * params.q_h + lo * params.q_i;
        let qh = b * params.q_b + h * params.q_h + hi * params.q_i;
        let zl = b * params.gz_b + h * params.gz_h + lo * params.gz_i;
        let zh = b * params.gz_b + h * params.gz_h + hi * params.gz_i;
        // s and dp of key r against the low and the high 4 queries.
        var sc = Block();
        for (var c = 0u; c < params.d4; c++) {
            let x0 = q[ql.x + c];
            let x1 = q[ql.y + c];
            let x2 = q[ql.z + c];
            let x3 = q[ql.w + c];
            let x4 = q[qh.x + c];
            let x5 = q[qh.y + c];
            let x6 = q[qh.z + c];
            let x7 = q[qh.w + c];
            let y0 = k[kr.x + c];
            let y1 = k[kr.y + c];
            let y2 = k[kr.z + c];
            let y3 = k[kr.w + c];
            sc = block_step(sc, y0, y1, y2, y3,
                                x0, x1, x2, x3, x4, x5, x6, x7);
        }
        var dp = Block();
        for (var c = 0u; c < params.dv4; c++) {
            let z0 = gz[zl.x + c];
            let z1 = gz[zl.y + c];
            let z2 = gz[zl.z + c];
            let z3 = gz[zl.w + c];
            let z4 = gz[zh.x + c];
            let z5 = gz[zh.y + c];
            let z6 = gz[zh.z + c];
            let z7 = gz[zh.w + c];
            let y0 = v[vr.x + c];
            let y1 = v[vr.y + c];
            let y2 = v[vr.z + c];
            let y3 = v[vr.w + c];
            dp = block_step(dp, y0, y1, y2, y3,
                                z0, z1, z2, z3, z4, z5, z6, z7);
        }
        let tl = bh * params.tiles_q + i0 / 4u;
        let th = bh * params.tiles_q + min(i0 / 4u + 1u, last_tile);
        let lse_l = info[2u * tl];
        let dl = info[2u * tl + 1u];
        let lse_h = info[2u * th];
        let dh = info[2u * th + 1u];
        let vl = visible4(i0);
        let vh = visible4(i0 + 4u);
        let m0l = vec4<u32>(j0) < vl;
        let m0h = vec4<u32>(j0) < vh;
        let m1l = vec4<u32>(j0 + 1u) < vl;
        let m1h = vec4<u32>(j0 + 1u) < vh;
        let m2l = vec4<u32>(j0 + 2u) < vl;
        let m2h = vec4<u32>(j0 + 2u) < vh;
        let m3l = vec4<u32>(j0 + 3u) < vl;
        let m3h = vec4<u32>(j0 + 3u) < vh;
        let p0l = pattern(sc.r0l, lse_l, m0l);
        let p0h = pattern(sc.r0h, lse_h, m0h);
        let p1l = pattern(sc.r1l, lse_l, m1l);
        let p1h = pattern(sc.r1h, lse_h, m1h);
        let p2l = pattern(sc.r2l, lse_l, m2l);
        let p2h = pattern(sc.r2h, lse_h, m2h);
        let p3l = pattern(sc.r3l, lse_l, m3l);
        let p3h = pattern(sc.r3h, lse_h, m3h);
        let t0l = grad_score(p0l, dp.r0l, dl, m0l);
        let t0h = grad_score(p0h, dp.r0h, dh, m0h);
        let t1l = grad_score(p1l, dp.r1l, dl, m1l);
        let t1h = grad_score(p1h, dp.r1h, dh, m1h);
        let t2l = grad_score(p2l, dp.r2l, dl, m2l);
        let t2h = grad_score(p2h, dp.r2h, dh, m2h);
        let t3l = grad_score(p3l, dp.r3l, dl, m3l);
        let t3h = grad_score(p3h, dp.r3h, dh, m3h);
        for (var c = 0u; c < params.dv4; c++) {
            let z0 = gz[zl.x + c];
            let z1 = gz[zl.y + c];
            let z2 = gz[zl.z + c];
            let z3 = gz[zl.w + c];
            let z4 = gz[zh.x + c];
            let z5 = gz[zh.y + c];
            let z6 = gz[zh.z + c];
            let z7 = gz[zh.w + c];
            acc[a0 + dv0 + c] += combine(p0l, z0, z1, z2, z3) + combine(p0h, z4, z5, z6, z7);
            acc[a1 + dv0 + c] += combine(p1l, z0, z1, z2, z3) + combine(p1h, z4, z5, z6, z7);
            acc[a2 + dv0 + c] += combine(p2l, z0, z1, z2, z3) + combine(p2h, z4, z5, z6, z7);
            acc[a3 + dv0 + c] += combine(p3l, z0, z1, z2, z3) + combine(p3h, z4, z5, z6, z7);
        }
        for (var c = 0u; c < params.d4; c++) {
            let x0 = q[ql.x + c];
            let x1 = q[ql.y + c];
            let x2 = q[ql.z + c];
            let x3 = q[ql.w + c];
            let x4 = q[qh.x + c];
            let x5 = q[qh.y + c];
            let x6 = q[qh.z + c];
            let x7 = q[qh.w + c];
            acc[a0 + c] += combine(t0l, x0, x1, x2, x3) + combine(t0h, x4, x5, x6, x7);
            acc[a1 + c] += combine(t1l, x0, x1, x2, x3) + combine(t1h, x4, x5, x6, x7);
            acc[a2 + c] += combine(t2l, x0, x1, x2, x3) + combine(t2h, x4, x5, x6, x7);
            acc[a3 + c] += combine(t3l, x0, x1, x2, x3) + combine(t3h, x4, x5, x6, x7);
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
