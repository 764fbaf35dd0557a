// Shared by the fused attention backward kernels (prepended to attention_backward_fused_prep,
// _kv and _q, after grid.wgsl, by src/gpu/shaders.rs; _kv and _q also take attention_tile.wgsl):
// the parameters, the causal mask and small helpers.
//
// The backward of out = softmax(scale q kᵀ, masked) v, FlashAttention-2 style: the pattern is
// recomputed block by block from each query's log-sum-exp (lse = m + ln l from the forward's row
// statistics), p_ij = exp(scale q_i·k_j - lse_i), and with delta_i = dO_i·O_i
//     dv_j += p_ij dO_i,   ds_ij = p_ij (dO_i·v_j - delta_i),   dk_j += scale ds_ij q_i,
//     dq_i += scale ds_ij k_j.
// No Sq x Sk matrix is ever stored, and no float atomics are used: one kernel owns 4 keys and walks
// the queries (dk, dv), another owns 4 queries and walks the keys (dq), so every sum has one owner
// and one fixed order (bit-identical results run after run).
//
// q, k, v and dO are read as zero-padded vec4 rows (strides in vec4s; the host packs a head size
// that is not a multiple of 4); out and the gradients dq, dk, dv are plain floats addressed through
// strides, so that TransformerLens's [B, S, H, dh] layout needs no transpose.

struct Params {
    heads: u32,
    sq: u32,
    sk: u32,
    d: u32,          // q/k head size in floats, and in vec4s
    d4: u32,
    dv: u32,         // v head size in floats, and in vec4s
    dv4: u32,
    causal: u32,
    scale: f32,
    count: u32,      // invocations that own a tile
    tiles: u32,      // tiles of 4 (queries or keys) that one (b, h) has in this kernel
    tiles_q: u32,    // query tiles per (b, h): the rows of `info`
    seg_begin: u32,  // the segment of the walked dimension this dispatch covers
    seg_end: u32,
    last: u32,       // 1 on the last segment: write the gradients out
    _pad0: u32,
    q_b: u32,        // q, k, v, dO strides in vec4s
    q_h: u32,
    q_i: u32,
    k_b: u32,
    k_h: u32,
    k_j: u32,
    v_b: u32,
    v_h: u32,
    v_j: u32,
    gz_b: u32,
    gz_h: u32,
    gz_i: u32,
    o_b: u32,        // out, dq, dk, dv strides in floats
    o_h: u32,
    o_i: u32,
    gq_b: u32,
    gq_h: u32,
    gq_i: u32,
    gk_b: u32,
    gk_h: u32,
    gk_j: u32,
    gv_b: u32,
    gv_h: u32,
    gv_j: u32,
}

@group(0) @binding(0) var<uniform> params: Params;

const WG: u32 = 64u;

// How many keys query i sees (0 for a padding query past Sq): j is visible iff
// j <= i + Sk - Sq (the forward's bottom-right causal mask).
fn visible(i: u32) -> u32 {
    if (i >= params.sq) {
        return 0u;
    }
    if (params.causal == 0u) {
        return params.sk;
    }
    let limit = i32(i) + 1 + i32(params.sk) - i32(params.sq);
    return u32(clamp(limit, 0, i32(params.sk)));
}

fn visible4(i0: u32) -> vec4<u32> {
    return vec4<u32>(visible(i0), visible(i0 + 1u), visible(i0 + 2u), visible(i0 + 3u));
}


// w.x a + w.y b + w.z c + w.w d.
fn combine(w: vec4<f32>, a: vec4<f32>, b: vec4<f32>, c: vec4<f32>, d: vec4<f32>) -> vec4<f32> {
    return w.x * a + w.y * b + w.z * c + w.w * d;
}

// The recomputed pattern p = exp(scale s - lse) where `seen`, else 0 (never NaN from a masked key).
fn pattern(s: vec4<f32>, lse: vec4<f32>, seen: vec4<bool>) -> vec4<f32> {
    return select(vec4<f32>(0.0), exp(params.scale * s - lse), seen);
}

// The scaled score gradient scale p (dp - delta) where `seen`, else 0.
fn grad_score(p: vec4<f32>, dp: vec4<f32>, delta: vec4<f32>, seen: vec4<bool>) -> vec4<f32> {
    return select(vec4<f32>(0.0), params.scale * p * (dp - delta), seen);
}
