// Attention scores: scores[b, h, i, j] = scale * q[b, h, i, :] . k[b, h, j, :], or -inf where the
// causal mask hides key j from query i. Written into the pattern buffer (which the softmax then
// normalises in place) or into a separate scores tensor (TransformerLens's hook_attn_scores).
//
// Register blocking: an invocation owns a 4 x 8 tile (4 queries x 8 keys) and walks the head
// dimension once in vec4 steps, loading 4 q and 8 k vec4s per step for 128 multiply-adds, with no
// workgroup memory and no barriers (barriers are very slow on CPU adapters such as lavapipe, and
// there a load costs far more than arithmetic). Rows and keys past the end are clamped to the
// last one, so every load is in bounds, and are never stored. Tiles the causal mask hides
// entirely skip the dot products. 64 invocations a workgroup.

@group(0) @binding(1) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> k: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> scores: array<f32>;

fn store_row(base: u32, i: u32, j0: u32, lo: vec4<f32>, hi: vec4<f32>) {
    if (i >= params.sq) {
        return;
    }
    let seen = visible(i);
    let row = base + i * params.sk;
    for (var c = 0u; c < 8u; c++) {
        let j = j0 + c;
        if (j < params.sk) {
            let s = select(hi[c % 4u], lo[c % 4u], c < 4u);
            scores[row + j] = select(params.neg_inf, params.scale * s, j < seen);
        }
    }
}

@compute @workgroup_size(64)
fn scores_kernel(@builtin(workgroup_id) wg: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) li: u32) {
    let g = grid_index(wg, nwg, li, WG);
    if (g >= params.count) {
        return;
    }
    let t = tile_of(g, 4u);
    let j0 = t.jt * 8u;
    let step = vec4<u32>(0u, 1u, 2u, 3u);
    let last_j = vec4<u32>(params.sk - 1u);
    let qr = t.b * params.q_b + t.h * params.q_h + min(vec4<u32>(t.i0) + step, vec4<u32>(params.sq - 1u)) * params.q_i;
    let kbase = t.b * params.k_b + t.h * params.k_h;
    let kl = kbase + min(vec4<u32>(j0) + step, last_j) * params.k_j;
    let kh = kbase + min(vec4<u32>(j0 + 4u) + step, last_j) * params.k_j;

    var sc = Block();
    // The tile's last row sees the most keys (visibility never decreases with i).
    if (j0 < visible(min(t.i0 + 3u, params.sq - 1u))) {
        sc = qk_block(qr, kl, kh);
    }
    let base = t.bh * params.sq * params.sk;
    store_row(base, t.i0, j0, sc.r0l, sc.r0h);
    store_row(base, t.i0 + 1u, j0, sc.r1l, sc.r1h);
    store_row(base, t.i0 + 2u, j0, sc.r2l, sc.r2h);
    store_row(base, t.i0 + 3u, j0, sc.r3l, sc.r3h);
}
