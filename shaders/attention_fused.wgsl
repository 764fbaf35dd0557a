// Fused attention (flash-attention style): out = softmax(scale q kᵀ, masked) v in one pass over
// the keys, never writing the Sq x Sk pattern.
//
// An invocation owns 4 queries and all Dv value columns. It walks the visible keys in blocks of 8:
// the 4 x 8 block of scores comes from one walk over the head dimension in vec4 steps (4 q and
// 8 k vec4 loads per step for 128 multiply-adds; nothing of length D is kept, so D may be any
// size), then the online softmax updates each query's running maximum m and sum l,
//     m' = max(m, block max),  c = exp(m - m'),  p = exp(s - m'),  l' = c l + sum p,
// and the accumulators become c acc + p v. At the end out = acc / l (zero when the query sees no
// key). Masked keys get p = 0 and never raise the maximum; the running maximum starts at a finite
// -3e38, so no arithmetic touches an infinity.
//
// Where the accumulators live: 4 x Dv floats do not fit in registers for Dv up to 256, so they
// live in a scratch buffer the host allocates, [B*H, query tiles * 4, Dv/4] vec4s (the size of
// out, never Sq x Sk), which each invocation owns a disjoint slice of. That way one score pass
// serves every value column whatever Dv is, with no workgroup memory and no barriers (slow on CPU
// adapters such as lavapipe). A per-invocation array would do the same job, but CPU compilers
// take seconds to tens of seconds on a 256-column one (lavapipe: 7 s at 128 columns, 26 s at 256)
// and run it no faster. The accumulators are read and written once per 8 keys; the first block
// overwrites them, so the buffer needs no clearing. 64 invocations a workgroup.
//
// The host dispatches the kernel once per segment of keys [j_begin, j_end), because lavapipe and
// llvmpipe stop an invocation after 65535 loop iterations in total (silently): between segments
// m and l wait in `stats` and the accumulators in `acc`; the last segment writes out (and, when
// params.keep_stats is set, the final m and l of every query to `stats`, for a backward pass).

@group(0) @binding(1) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> k: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> v: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read_write> acc: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> stats: array<vec4<f32>>;   // per tile: m, l

// Scaled scores, or LOWEST where masked (so that they never raise the maximum).
fn scaled(s: vec4<f32>, vis: vec4<bool>) -> vec4<f32> {
    return select(vec4<f32>(LOWEST), params.scale * s, vis);
}

fn hmax(x: vec4<f32>, y: vec4<f32>) -> f32 {
    let z = max(x, y);
    return max(max(z.x, z.y), max(z.z, z.w));
}

fn hsum(x: vec4<f32>, y: vec4<f32>) -> f32 {
    return dot(x + y, vec4<f32>(1.0));
}

// exp(s - m) for the visible keys, 0 for the masked ones.
fn weights(s: vec4<f32>, m: f32, vis: vec4<bool>) -> vec4<f32> {
    return select(vec4<f32>(0.0), exp(s - m), vis);
}

// w * x for a key the query sees, 0 for a masked one (whose v is never used: 0 * NaN is NaN).
fn term(w: f32, x: vec4<f32>, sees: bool) -> vec4<f32> {
    return select(vec4<f32>(0.0), w * x, sees);
}

// c * acc + (weights of 8 keys) . (their 8 value vec4s), masked keys left out.
fn update(acc: vec4<f32>, c: f32, lo: vec4<f32>, hi: vec4<f32>, ml: vec4<bool>, mh: vec4<bool>, v0: vec4<f32>,
          v1: vec4<f32>, v2: vec4<f32>, v3: vec4<f32>, v4: vec4<f32>, v5: vec4<f32>, v6: vec4<f32>,
          v7: vec4<f32>) -> vec4<f32> {
    return c * acc + term(lo.x, v0, ml.x) + term(lo.y, v1, ml.y) + term(lo.z, v2, ml.z) + term(lo.w, v3, ml.w)
        + term(hi.x, v4, mh.x) + term(hi.y, v5, mh.y) + term(hi.z, v6, mh.z) + term(hi.w, v7, mh.w);
}

@compute @workgroup_size(64)
fn attention_fused(@builtin(workgroup_id) wg: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) li: u32) {
    let g = grid_index(wg, nwg, li, WG);
    if (g >= params.count) {
        return;
    }
    let t = tile_of(g, 4u);
    let dv4 = params.dv4;
    let a0 = (t.bh * params.tiles_i * 4u + t.i0) * dv4;   // this invocation's accumulator rows
    let a1 = a0 + dv4;
    let a2 = a1 + dv4;
    let a3 = a2 + dv4;
    let last_j = vec4<u32>(params.sk - 1u);
    let rows = min(vec4<u32>(t.i0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(params.sq - 1u));
    let seen = vec4<u32>(visible(rows.x), visible(rows.y), visible(rows.z), visible(rows.w));
    let qr = t.b * params.q_b + t.h * params.q_h + rows * params.q_i;
    let kbase = t.b * params.k_b + t.h * params.k_h;
    let vbase = t.b * params.v_b + t.h * params.v_h;

    var m = vec4<f32>(LOWEST);       // running maximum per query
    var l = vec4<f32>(0.0);          // running sum per query
    if (params.j_begin > 0u) {
        m = stats[2u * g];
        l = stats[2u * g + 1u];
    }

    for (var j0 = params.j_begin; j0 < min(seen.w, params.j_end); j0 += 8u) {
        // Keys past Sk are clamped to the last one for loading; the mask gives them p = 0.
        let lo = vec4<u32>(j0) + vec4<u32>(0u, 1u, 2u, 3u);
        let hi = lo + vec4<u32>(4u);
        let kl = kbase + min(lo, last_j) * params.k_j;
        let kh = kbase + min(hi, last_j) * params.k_j;
        var sc = qk_block(qr, kl, kh);
        let v0l = lo < vec4<u32>(seen.x);
        let v0h = hi < vec4<u32>(seen.x);
        let v1l = lo < vec4<u32>(seen.y);
        let v1h = hi < vec4<u32>(seen.y);
        let v2l = lo < vec4<u32>(seen.z);
        let v2h = hi < vec4<u32>(seen.z);
        let v3l = lo < vec4<u32>(seen.w);
        let v3h = hi < vec4<u32>(seen.w);
        sc.r0l = scaled(sc.r0l, v0l);
        sc.r0h = scaled(sc.r0h, v0h);
        sc.r1l = scaled(sc.r1l, v1l);
        sc.r1h = scaled(sc.r1h, v1h);
        sc.r2l = scaled(sc.r2l, v2l);
        sc.r2h = scaled(sc.r2h, v2h);
        sc.r3l = scaled(sc.r3l, v3l);
        sc.r3h = scaled(sc.r3h, v3h);
        let m_new = max(m, vec4<f32>(hmax(sc.r0l, sc.r0h), hmax(sc.r1l, sc.r1h), hmax(sc.r2l, sc.r2h), hmax(sc.r3l, sc.r3h)));
        let c = exp(m - m_new);
        let p0l = weights(sc.r0l, m_new.x, v0l);
        let p0h = weights(sc.r0h, m_new.x, v0h);
        let p1l = weights(sc.r1l, m_new.y, v1l);
        let p1h = weights(sc.r1h, m_new.y, v1h);
        let p2l = weights(sc.r2l, m_new.z, v2l);
        let p2h = weights(sc.r2h, m_new.z, v2h);
        let p3l = weights(sc.r3l, m_new.w, v3l);
        let p3h = weights(sc.r3h, m_new.w, v3h);
        l = c * l + vec4<f32>(hsum(p0l, p0h), hsum(p1l, p1h), hsum(p2l, p2h), hsum(p3l, p3h));
        m = m_new;

        let vl = vbase + min(lo, last_j) * params.v_j;
        let vh = vbase + min(hi, last_j) * params.v_j;
        for (var ci = 0u; ci < dv4; ci++) {
            let x0 = v[vl.x + ci];
            let x1 = v[vl.y + ci];
            let x2 = v[vl.z + ci];
            let x3 = v[vl.w + ci];
            let x4 = v[vh.x + ci];
            let x5 = v[vh.y + ci];
            let x6 = v[vh.z + ci];
            let x7 = v[vh.w + ci];
            // The first block overwrites whatever the accumulator buffer held.
            let k0 = select(acc[a0 + ci], vec4<f32>(0.0), j0 == 0u);
            let k1 = select(acc[a1 + ci], vec4<f32>(0.0), j0 == 0u);
            let k2 = select(acc[a2 + ci], vec4<f32>(0.0), j0 == 0u);
            let k3 = select(acc[a3 + ci], vec4<f32>(0.0), j0 == 0u);
            acc[a0 + ci] = update(k0, c.x, p0l, p0h, v0l, v0h, x0, x1, x2, x3, x4, x5, x6, x7);
            acc[a1 + ci] = update(k1, c.y, p1l, p1h, v1l, v1h, x0, x1, x2, x3, x4, x5, x6, x7);
            acc[a2 + ci] = update(k2, c.z, p2l, p2h, v2l, v2h, x0, x1, x2, x3, x4, x5, x6, x7);
            acc[a3 + ci] = update(k3, c.w, p3l, p3h, v3l, v3h, x0, x1, x2, x3, x4, x5, x6, x7);
        }
    }

    if (params.j_end < params.sk || params.keep_stats != 0u) {
        // More segments follow, or the caller wants the row statistics (for a backward pass):
        // keep the running maximum and sum.
        stats[2u * g] = m;
        stats[2u * g + 1u] = l;
    }
    if (params.j_end < params.sk) {
        return;
    }
    // 0 where no key (or only -inf scores) was seen; NaN stays NaN (numpy's row is NaN).
    let inv = select(1.0 / l, vec4<f32>(0.0), l <= vec4<f32>(0.0));
    let ob = t.b * params.o_b + t.h * params.o_h;
    for (var r = 0u; r < 4u; r++) {
        let i = t.i0 + r;
        if (i >= params.sq) {
            break;
        }
        let row = ob + i * params.o_i;
        for (var ci = 0u; ci < dv4; ci++) {
            // A query that sees no key never wrote its accumulators.
            let o = select(acc[a0 + r * dv4 + ci], vec4<f32>(0.0), seen[r] == 0u) * inv[r];
            for (var x = 0u; x < 4u; x++) {
                if (ci * 4u + x < params.dv) {
                    out[row + ci * 4u + x] = o[x];
                }
            }
        }
    }
}
