// Fused attention (flash-attention style): out = softmax(scale q kᵀ, masked) v in one pass over
// the keys, never writing the Sq x Sk pattern.
//
// An invocation owns 4 queries and a chunk of up to 64 value columns. It walks the visible keys in
// blocks of 4: the 4 x 4 block of scores comes from one walk over the head dimension (4 q and 4 k
// loads per step for 16 multiply-adds, so D may be any size: nothing of length D is kept), then
// the online softmax updates each query's running maximum m and sum l,
//     m' = max(m, block max),  c = exp(m - m'),  p = exp(s - m'),  l' = c l + sum p,
// and the accumulators become c acc + p v. At the end out = acc / l (zero when the query sees no
// key). Masked keys get p = 0 and never raise the maximum; the running maximum starts at a finite
// -3e38, so no arithmetic touches an infinity.
//
// Why a 64-column chunk in a per-invocation array: the 4 x 64 accumulators (1 KiB) let one score
// computation serve 64 value columns without workgroup memory or barriers (slow on CPU adapters
// such as lavapipe). Wider values (Dv up to 256 and beyond) take ceil(Dv / 64) invocations per
// query tile, each recomputing the scores: for D = Dv = 256 that is 4 score passes, still cheaper
// in memory traffic than writing and re-reading the pattern. Heads of 64 or fewer (GPT-2,
// Othello-GPT, Pythia) do no recomputation. 64 invocations a workgroup.

@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

const CHUNK4: u32 = 16u;   // value columns per invocation, in vec4s (64 columns)

fn vrow(base: u32, c: vec4<u32>) -> vec4<f32> {
    return vec4<f32>(v[base + c.x], v[base + c.y], v[base + c.z], v[base + c.w]);
}

@compute @workgroup_size(64)
fn attention_fused(@builtin(workgroup_id) wg: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) li: u32) {
    let g = invocation(wg, nwg, li);
    if (g >= params.count) {
        return;
    }
    let t = tile_of(g, 4u);
    let col0 = t.jt * CHUNK4 * 4u;
    let chunk4 = min(CHUNK4, (params.dv - col0 + 3u) / 4u);
    let last_i = params.sq - 1u;
    let last_j = params.sk - 1u;
    let last_e = params.dv - 1u;
    let rows = min(vec4<u32>(t.i0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(last_i));
    let seen = vec4<u32>(visible(rows.x), visible(rows.y), visible(rows.z), visible(rows.w));
    let qb = t.b * params.q_b + t.h * params.q_h;
    let qr = vec4<u32>(qb) + rows * params.q_i;
    let kb = t.b * params.k_b + t.h * params.k_h;
    let vb = t.b * params.v_b + t.h * params.v_h;

    var acc: array<vec4<f32>, 64>;   // [query r][column vec4 c] at r * CHUNK4 + c
    for (var a = 0u; a < 64u; a++) {
        acc[a] = vec4<f32>(0.0);
    }
    var m = vec4<f32>(LOWEST);   // running maximum per query
    var l = vec4<f32>(0.0);      // running sum per query

    for (var j0 = 0u; j0 < seen.w; j0 += 4u) {
        let keys = vec4<u32>(j0) + vec4<u32>(0u, 1u, 2u, 3u);
        let kr = vec4<u32>(kb) + min(keys, vec4<u32>(last_j)) * params.k_j;
        var s0 = vec4<f32>(0.0);
        var s1 = vec4<f32>(0.0);
        var s2 = vec4<f32>(0.0);
        var s3 = vec4<f32>(0.0);
        for (var d = 0u; d < params.d; d++) {
            let kd = vec4<f32>(k[kr.x + d], k[kr.y + d], k[kr.z + d], k[kr.w + d]);
            s0 += q[qr.x + d] * kd;
            s1 += q[qr.y + d] * kd;
            s2 += q[qr.z + d] * kd;
            s3 += q[qr.w + d] * kd;
        }
        // Masked scores drop to LOWEST (so they never raise the maximum) and get p = 0.
        let vis0 = keys < vec4<u32>(seen.x);
        let vis1 = keys < vec4<u32>(seen.y);
        let vis2 = keys < vec4<u32>(seen.z);
        let vis3 = keys < vec4<u32>(seen.w);
        s0 = select(vec4<f32>(LOWEST), params.scale * s0, vis0);
        s1 = select(vec4<f32>(LOWEST), params.scale * s1, vis1);
        s2 = select(vec4<f32>(LOWEST), params.scale * s2, vis2);
        s3 = select(vec4<f32>(LOWEST), params.scale * s3, vis3);
        let block = vec4<f32>(max(max(s0.x, s0.y), max(s0.z, s0.w)), max(max(s1.x, s1.y), max(s1.z, s1.w)),
                              max(max(s2.x, s2.y), max(s2.z, s2.w)), max(max(s3.x, s3.y), max(s3.z, s3.w)));
        let m_new = max(m, block);
        let c = exp(m - m_new);
        let p0 = select(vec4<f32>(0.0), exp(s0 - m_new.x), vis0);
        let p1 = select(vec4<f32>(0.0), exp(s1 - m_new.y), vis1);
        let p2 = select(vec4<f32>(0.0), exp(s2 - m_new.z), vis2);
        let p3 = select(vec4<f32>(0.0), exp(s3 - m_new.w), vis3);
        l = c * l + vec4<f32>(dot(p0, vec4<f32>(1.0)), dot(p1, vec4<f32>(1.0)),
                              dot(p2, vec4<f32>(1.0)), dot(p3, vec4<f32>(1.0)));
        m = m_new;

        // Keys past Sk are clamped to the last one for loading; their p is 0.
        let vr = vec4<u32>(vb) + min(keys, vec4<u32>(last_j)) * params.v_j;
        for (var ci = 0u; ci < chunk4; ci++) {
            let e = min(vec4<u32>(col0 + ci * 4u) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(last_e));
            let v0 = vrow(vr.x, e);
            let v1 = vrow(vr.y, e);
            let v2 = vrow(vr.z, e);
            let v3 = vrow(vr.w, e);
            acc[ci] = c.x * acc[ci] + p0.x * v0 + p0.y * v1 + p0.z * v2 + p0.w * v3;
            acc[CHUNK4 + ci] = c.y * acc[CHUNK4 + ci] + p1.x * v0 + p1.y * v1 + p1.z * v2 + p1.w * v3;
            acc[2u * CHUNK4 + ci] = c.z * acc[2u * CHUNK4 + ci] + p2.x * v0 + p2.y * v1 + p2.z * v2 + p2.w * v3;
            acc[3u * CHUNK4 + ci] = c.w * acc[3u * CHUNK4 + ci] + p3.x * v0 + p3.y * v1 + p3.z * v2 + p3.w * v3;
        }
    }

    let inv = select(vec4<f32>(0.0), 1.0 / max(l, vec4<f32>(1.0e-30)), l > vec4<f32>(0.0));
    let ob = t.b * params.o_b + t.h * params.o_h;
    for (var r = 0u; r < 4u; r++) {
        let i = t.i0 + r;
        if (i >= params.sq) {
            break;
        }
        let row = ob + i * params.o_i;
        for (var ci = 0u; ci < chunk4; ci++) {
            let o = acc[r * CHUNK4 + ci] * inv[r];
            for (var x = 0u; x < 4u; x++) {
                let col = col0 + ci * 4u + x;
                if (col < params.dv) {
                    out[row + col] = o[x];
                }
            }
        }
    }
}
