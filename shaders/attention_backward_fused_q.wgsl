// dq of the fused attention backward: an invocation owns 4 queries and walks the keys they see,
// 4 at a time, in order (as the forward does, 4 queries by 8 keys there). Per block it recomputes
// the 4 x 4 scores and dO·v, turns them into ds = p (dO·v - delta) and adds scale ds k into the
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
    let g = invocation(wg, nwg, li);
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
    for (var j0 = params.seg_begin; j0 < min(params.seg_end, seen); j0 += 4u) {
        // Keys past Sk are clamped for loading; the mask leaves them out.
        let js = vec4<u32>(j0) + vec4<u32>(0u, 1u, 2u, 3u);
        let kr = kb + min(js, last_j) * params.k_j;
        let vr = vb + min(js, last_j) * params.v_j;
        // s_r and dp_r: query r against the 4 keys.
        var s0 = vec4<f32>(0.0);
        var s1 = vec4<f32>(0.0);
        var s2 = vec4<f32>(0.0);
        var s3 = vec4<f32>(0.0);
        for (var c = 0u; c < d4; c++) {
            let y0 = k[kr.x + c];
            let y1 = k[kr.y + c];
            let y2 = k[kr.z + c];
            let y3 = k[kr.w + c];
            s0 += dots(q[qr.x + c], y0, y1, y2, y3);
            s1 += dots(q[qr.y + c], y0, y1, y2, y3);
            s2 += dots(q[qr.z + c], y0, y1, y2, y3);
            s3 += dots(q[qr.w + c], y0, y1, y2, y3);
        }
        var dp0 = vec4<f32>(0.0);
        var dp1 = vec4<f32>(0.0);
        var dp2 = vec4<f32>(0.0);
        var dp3 = vec4<f32>(0.0);
        for (var c = 0u; c < params.dv4; c++) {
            let y0 = v[vr.x + c];
            let y1 = v[vr.y + c];
            let y2 = v[vr.z + c];
            let y3 = v[vr.w + c];
            dp0 += dots(gz[zr.x + c], y0, y1, y2, y3);
            dp1 += dots(gz[zr.y + c], y0, y1, y2, y3);
            dp2 += dots(gz[zr.z + c], y0, y1, y2, y3);
            dp3 += dots(gz[zr.w + c], y0, y1, y2, y3);
        }
        let m0 = js < vec4<u32>(vis.x);
        let m1 = js < vec4<u32>(vis.y);
        let m2 = js < vec4<u32>(vis.z);
        let m3 = js < vec4<u32>(vis.w);
        let t0 = select(vec4<f32>(0.0), params.scale * pattern(s0, vec4<f32>(lse.x), m0) * (dp0 - delta.x), m0);
        let t1 = select(vec4<f32>(0.0), params.scale * pattern(s1, vec4<f32>(lse.y), m1) * (dp1 - delta.y), m1);
        let t2 = select(vec4<f32>(0.0), params.scale * pattern(s2, vec4<f32>(lse.z), m2) * (dp2 - delta.z), m2);
        let t3 = select(vec4<f32>(0.0), params.scale * pattern(s3, vec4<f32>(lse.w), m3) * (dp3 - delta.w), m3);
        for (var c = 0u; c < d4; c++) {
            let y0 = k[kr.x + c];
            let y1 = k[kr.y + c];
            let y2 = k[kr.z + c];
            let y3 = k[kr.w + c];
            acc[a0 + c] += combine(t0, y0, y1, y2, y3);
            acc[a1 + c] += combine(t1, y0, y1, y2, y3);
            acc[a2 + c] += combine(t2, y0, y1, y2, y3);
            acc[a3 + c] += combine(t3, y0, y1, y2, y3);
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
            for (var e = 0u; e < 4u; e++) {
                if (c * 4u + e < params.d) {
                    gq[base + c * 4u + e] = x[e];
                }
            }
        }
    }
}
