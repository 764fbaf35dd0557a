// Shared by every attention kernel (prepended to attention_scores, attention_softmax,
// attention_pv, attention_fused and attention_pack, after grid.wgsl, by src/gpu/shaders.rs;
// attention_scores and attention_fused also take attention_tile.wgsl): the parameters, the causal
// mask and the work-item decoding.
//
// q, k, v and out are addressed as [B, H, rows, cols] through strides for batch, head and row,
// with contiguous columns. The attention op passes the strides of contiguous [B, H, S, D]
// tensors; attention_layer those of TransformerLens's [B, S, H, dh] layout, so that its
// projections and z never need a transpose. q, k and v are read as vec4s (a CPU adapter such as
// lavapipe pays per load, not per float, so this alone makes the kernels about twice as fast):
// their strides are in vec4s, and their rows hold d4 (or dv4) vec4s. When a head size is not a
// multiple of 4, the host first packs that input into zero-padded rows with attention_pack (the
// zeros add nothing to any dot product). out, the pattern and the scores are plain floats; the
// pattern and the scores are always contiguous [B, H, Sq, Sk].
//
// Work is split into tiles; one invocation owns one tile. Invocations are numbered linearly over
// a 2-D grid of 64-wide workgroups (the grid's x is at most 65535), and the number decodes as
// (bh, query tile, column tile) with the column tile fastest.

struct Params {
    heads: u32,
    sq: u32,
    sk: u32,
    d4: u32,        // q and k row length in vec4s (D rounded up to a multiple of 4, over 4)
    dv: u32,
    dv4: u32,       // v row length in vec4s
    causal: u32,
    scale: f32,
    neg_inf: f32,   // -inf comes from the host: WGSL has no infinite literals
    q_b: u32,       // q, k, v strides in vec4s
    q_h: u32,
    q_i: u32,
    k_b: u32,
    k_h: u32,
    k_j: u32,
    v_b: u32,
    v_h: u32,
    v_j: u32,
    o_b: u32,       // out strides in floats
    o_h: u32,
    o_i: u32,
    count: u32,     // invocations that own a tile
    tiles_i: u32,   // query tiles per (b, h)
    tiles_j: u32,   // column tiles (keys or value columns; 1 for the fused kernel) per query tile
    j_begin: u32,   // the segment of keys this dispatch walks (softmax, pattern_v, fused)
    j_end: u32,
    keep_stats: u32, // fused kernel: write every query tile's final m and l to `stats`
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> params: Params;

const WG: u32 = 64u;

// A finite stand-in for -inf in running maxima, so that no kernel does arithmetic on infinities
// (drivers differ on exp(-inf)); any real logit is larger.
const LOWEST: f32 = -3.0e38;

// How many keys query i sees: j is visible iff j <= i + Sk - Sq (bottom-right causal mask).
fn visible(i: u32) -> u32 {
    if (params.causal == 0u) {
        return params.sk;
    }
    let limit = i32(i) + 1 + i32(params.sk) - i32(params.sq);
    return u32(clamp(limit, 0, i32(params.sk)));
}

// The tile an invocation owns: (b, h, first query, column tile).
struct Tile {
    b: u32,
    h: u32,
    bh: u32,
    i0: u32,
    jt: u32,
}

fn tile_of(g: u32, rows_per_tile: u32) -> Tile {
    let jt = g % params.tiles_j;
    let rest = g / params.tiles_j;
    let it = rest % params.tiles_i;
    let bh = rest / params.tiles_i;
    return Tile(bh / params.heads, bh % params.heads, bh, it * rows_per_tile, jt);
}


// NaN tests from the bits: a compiler that assumes finite math may drop `x != x`, but not an
// integer comparison.
fn is_nan(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;
}

// Whether x is NaN or +inf: a score that makes numpy's softmax row NaN (through inf - inf).
fn nan_or_pos_inf(x: f32) -> bool {
    return is_nan(x) || bitcast<u32>(x) == 0x7f800000u;
}
