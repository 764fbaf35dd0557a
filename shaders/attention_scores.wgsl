// Attention scores: scores[b, h, i, j] = scale * q[b, h, i, :] . k[b, h, j, :], or -inf where the
// causal mask hides key j from query i. Written into the pattern buffer (which the softmax then
// normalises in place) or into a separate scores tensor (TransformerLens's hook_attn_scores).
//
// Register blocking: an invocation owns a 4 x 4 tile (4 queries x 4 keys) and walks the head
// dimension once, loading 4 q and 4 k values per step for 16 multiply-adds, with no workgroup
// memory and no barriers (barriers are very slow on CPU adapters such as lavapipe, and there a
// load costs far more than an arithmetic op). Rows and keys past the end are clamped to the last
// one, so every load is in bounds, and are never stored. Tiles the causal mask hides entirely skip
// the dot products. 64 invocations a workgroup.

@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read_write> scores: array<f32>;

fn store_row(base: u32, i: u32, j0: u32, s: vec4<f32>) {
    if (i >= params.sq) {
        return;
    }
    let seen = visible(i);
    let row = base + i * params.sk;
    for (var c = 0u; c < 4u; c++) {
        let j = j0 + c;
        if (j < params.sk) {
            scores[row + j] = select(params.neg_inf, params.scale * s[c], j < seen);
        }
    }
}

@compute @workgroup_size(64)
fn scores_kernel(@builtin(workgroup_id) wg: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) li: u32) {
    let g = invocation(wg, nwg, li);
    if (g >= params.count) {
        return;
    }
    let t = tile_of(g, 4u);
    let j0 = t.jt * 4u;
    let last_i = params.sq - 1u;
    let last_j = params.sk - 1u;
    let qb = t.b * params.q_b + t.h * params.q_h;
    let kb = t.b * params.k_b + t.h * params.k_h;
    let q0 = qb + min(t.i0, last_i) * params.q_i;
    let q1 = qb + min(t.i0 + 1u, last_i) * params.q_i;
    let q2 = qb + min(t.i0 + 2u, last_i) * params.q_i;
    let q3 = qb + min(t.i0 + 3u, last_i) * params.q_i;
    let k0 = kb + min(j0, last_j) * params.k_j;
    let k1 = kb + min(j0 + 1u, last_j) * params.k_j;
    let k2 = kb + min(j0 + 2u, last_j) * params.k_j;
    let k3 = kb + min(j0 + 3u, last_j) * params.k_j;

    var s0 = vec4<f32>(0.0);
    var s1 = vec4<f32>(0.0);
    var s2 = vec4<f32>(0.0);
    var s3 = vec4<f32>(0.0);
    // The tile's last row sees the most keys (visibility never decreases with i).
    if (j0 < visible(min(t.i0 + 3u, last_i))) {
        for (var d = 0u; d < params.d; d++) {
            let kd = vec4<f32>(k[k0 + d], k[k1 + d], k[k2 + d], k[k3 + d]);
            s0 += q[q0 + d] * kd;
            s1 += q[q1 + d] * kd;
            s2 += q[q2 + d] * kd;
            s3 += q[q3 + d] * kd;
        }
    }
    let base = t.bh * params.sq * params.sk;
    store_row(base, t.i0, j0, s0);
    store_row(base, t.i0 + 1u, j0, s1);
    store_row(base, t.i0 + 2u, j0, s2);
    store_row(base, t.i0 + 3u, j0, s3);
}
