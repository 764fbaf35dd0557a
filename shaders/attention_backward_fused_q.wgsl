// dq of the fused attention backward: an invocation owns 4 queries and walks the keys they see,
// 8 at a time, in order (as the forward does). Per block it recomputes
// the 4 x 8 scores and dO·v, turns them into ds = p (dO·v - delta) and adds scale ds k into the
// queries' dq rows.
//
// The accumulators live in a scratch buffer, one row of d4 vec4s per query, owned by this
// invocation alone; the first segment clears them. The host dispatches one segment of keys
// [seg_begin, seg_end) at a time (lavapipe and llvmpipe stop an invocation after 65535 loop
// iterations); the last segment writes dq out. A query that sees no key keeps dq = 0.

@group(0) @binding(1) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> k: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> v: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> gz: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> info: array<vec4<f32>>;   // per query tile: lse, delta
@group(0) @binding(6) var<storage, read_write> acc: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read_write> gq: array<f32>;

@compute @workgroup_size(64)
fn dq(@builtin(workgroup_id) wg: vec3<u32>,
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
    let d4 = params.d4;
    let a0 = g * 4u * d4;   // this invocation's accumulator rows
    let a1 = a0 + d4;
    let a2 = a1 + d4;
    let a3 = a2 + d4;
    if (params.seg_begin == 0u) {
        for (var c = 0u; c < d4; c++) {
            acc[a0 + c] = vec4<f32>(0.0);
            acc[a1 + c] = vec4<f32>(0.0);
            acc[a2 + c] = vec4<f32>(0.0);
            acc[a3 + c] = vec4<f32>(0.0);
        }
    }
    let rows = min(vec4<u32>(i0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(params.sq - 1u));
    let qr = b * params.q_b + h * params.q_h + rows * params.q_i;
    let zr = b * params.gz_b + h * params.gz_h + rows * params.gz_i;
    let vis = visible4(i0);
    let seen = max(max(vis.x, vis.y), max(vis.z, vis.w));
    let lse = info[2u * g];
    let delta = info[2u * g + 1u];
    let last_j = vec4<u32>(params.sk - 1u);
    let kb = b * params.k_b + h * params.k_h;
    let vb = b * params.v_b + h * params.v_h;
    for (var j0 = params.seg_begin; j0 < min(params.seg_end, seen); j0 += 8u) {
        // 8 keys a block: lo = j0..j0+3, hi = j0+4..j0+7; keys past Sk are clamped for loading
        // and masked.
        let jl = vec4<u32>(j0) + vec4<u32>(0u, 1u, 2u, 3u);
        let jh = jl + vec4<u32>(4u);
        let kl = kb + min(jl, last_j) * params.k_j;
        let kh = kb + min(jh, last_j) * params.k_j;
        let vl = vb + min(jl, last_j) * params.v_j;
        let vh = vb + min(jh, last_j) * params.v_j;
        // s and dp of query r against the low and the high 4 keys.
        let sc = qk_block(qr, kl, kh);
        var dp = Block();
        for (var c = 0u; c < params.dv4; c++) {
            let y0 = v[vl.x + c];
            let y1 = v[vl.y + c];
            let y2 = v[vl.z + c];
            let y3 = v[vl.w + c];
            let y4 = v[vh.x + c];
            let y5 = v[vh.y + c];
            let y6 = v[vh.z + c];
            let y7 = v[vh.w + c];
            let z0 = gz[zr.x + c];
            let z1 = gz[zr.y + c];
            let z2 = gz[zr.z + c];
            let z3 = gz[zr.w + c];
            dp = block_step(dp, z0, z1, z2, z3,
                                y0, y1, y2, y3, y4, y5, y6, y7);
        }
        let m0l = jl < vec4<u32>(vis.x);
        let m0h = jh < vec4<u32>(vis.x);
        let m1l = jl < vec4<u32>(vis.y);
        let m1h = jh < vec4<u32>(vis.y);
        let m2l = jl < vec4<u32>(vis.z);
        let m2h = jh < vec4<u32>(vis.z);
        let m3l = jl < vec4<u32>(vis.w);
        let m3h = jh < vec4<u32>(vis.w);
        let t0l = grad_score(pattern(sc.r0l, vec4<f32>(lse.x), m0l), dp.r0l, vec4<f32>(delta.x), m0l);
        let t0h = grad_score(pattern(sc.r0h, vec4<f32>(lse.x), m0h), dp.r0h, vec4<f32>(delta.x), m0h);
        let t1l = grad_score(pattern(sc.r1l, vec4<f32>(lse.y), m1l), dp.r1l, vec4<f32>(delta.y), m1l);
        let t1h = grad_score(pattern(sc.r1h, vec4<f32>(lse.y), m1h), dp.r1h, vec4<f32>(delta.y), m1h);
        let t2l = grad_score(pattern(sc.r2l, vec4<f32>(lse.z), m2l), dp.r2l, vec4<f32>(delta.z), m2l);
        let t2h = grad_score(pattern(sc.r2h, vec4<f32>(lse.z), m2h), dp.r2h, vec4<f32>(delta.z), m2h);
        let t3l = grad_score(pattern(sc.r3l, vec4<f32>(lse.w), m3l), dp.r3l, vec4<f32>(delta.w), m3l);
        let t3h = grad_score(pattern(sc.r3h, vec4<f32>(lse.w), m3h), dp.r3h, vec4<f32>(delta.w), m3h);
        for (var c = 0u; c < d4; c++) {
            let y0 = k[kl.x + c];
            let y1 = k[kl.y + c];
            let y2 = k[kl.z + c];
            let y3 = k[kl.w + c];
            let y4 = k[kh.x + c];
            let y5 = k[kh.y + c];
            let y6 = k[kh.z + c];
            let y7 = k[kh.w + c];
            acc[a0 + c] += combine(t0l, y0, y1, y2, y3) + combine(t0h, y4, y5, y6, y7);
            acc[a1 + c] += combine(t1l, y0, y1, y2, y3) + combine(t1h, y4, y5, y6, y7);
            acc[a2 + c] += combine(t2l, y0, y1, y2, y3) + combine(t2h, y4, y5, y6, y7);
            acc[a3 + c] += combine(t3l, y0, y1, y2, y3) + combine(t3h, y4, y5, y6, y7);
        }
    }
    if (params.last == 0u) {
        return;
    }
    for (var r = 0u; r < 4u; r++) {
        let i = i0 + r;
        if (i >= params.sq) {
            break;
        }
        let base = b * params.gq_b + h * params.gq_h + i * params.gq_i;
        let a = a0 + r * d4;
        for (var c = 0u; c < d4; c++) {
            let x = acc[a + c];
            let col = c * 4u;
            if (col < params.d) { gq[base + col] = x.x; }
            if (col + 1u < params.d) { gq[base + col + 1u] = x.y; }
            if (col + 2u < params.d) { gq[base + col + 2u] = x.z; }
            if (col + 3u < params.d) { gq[base + col + 3u] = x.w; }
        }
    }
}
