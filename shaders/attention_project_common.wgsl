// Shared by attention_project and attention_project_scalar (prepended, after grid.wgsl, by
// src/gpu/shaders.rs): per-head projections of an attention layer,
//     out[r, h * d_head + d] = sum_m x[r, m] * w[h, m, d] + b[h, d],
// for x [rows, inner], w [heads, inner, d_head], b [heads, d_head] and out [rows, heads * d_head].
// With x = the residual stream [B*S, d_model] this writes q, k or v directly in TransformerLens's
// [B, S, H, d_head] layout; with heads = 1, x = z [B*S, H*d_head] and w = W_O viewed as
// [1, H*d_head, d_model] it is the output projection sum_h z_h W_O[h] + b_O.
//
// An invocation owns a tile of a few rows x a few columns and walks the inner dimension once
// (register blocking, no workgroup memory, no barriers: barriers are very slow on CPU adapters).
// Rows and columns past the end are clamped for loading and never stored. Invocations are numbered
// linearly over a 2-D grid of 64-wide workgroups as (row tile, column tile), column tile fastest.

struct Params {
    rows: u32,
    inner: u32,
    heads: u32,
    d_head: u32,
    cols: u32,        // heads * d_head
    count: u32,       // invocations that own a tile
    col_tiles: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;

const WG: u32 = 64u;

