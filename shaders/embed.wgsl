// Token and positional embedding of a TransformerLens model, for tokens [B, S]:
//   out[b, s, :] = W_E[tokens[b, s], :]  (flag bit 0, hook_embed)
//                + W_pos[s, :]           (flag bit 1, hook_pos_embed, broadcast over the batch)
// With both bits set this is the first residual stream, blocks.0.hook_resid_pre, in one pass;
// with one bit it writes that hook's tensor alone (for the cache or an intervention). The sum is
// one float32 addition, exactly as TransformerLens's `embed + pos_embed`.
//
// Elementwise: one invocation per output element, 256 per workgroup, on a 2-D grid of
// workgroups (linear index wg.y * num_workgroups.x + wg.x). Token ids were checked on the host
// (0 <= id < d_vocab) and arrive as u32.

struct Params {
    n: u32,        // B * S * d_model
    seq: u32,      // S
    d_model: u32,
    flags: u32,    // bit 0: add W_E[token], bit 1: add W_pos[s]
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> tokens: array<u32>;
@group(0) @binding(2) var<storage, read> w_e: array<f32>;
@group(0) @binding(3) var<storage, read> w_pos: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

const WG: u32 = 256u;

@compute @workgroup_size(256)
fn embed(@builtin(workgroup_id) wg: vec3<u32>,
         @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) li: u32) {
    let i = grid_index(wg, nwg, li, WG);
    if (i >= params.n) {
        return;
    }
    let row = i / params.d_model;        // b * S + s
    let c = i - row * params.d_model;
    var v = 0.0;
    if ((params.flags & 1u) != 0u) {
        v = w_e[tokens[row] * params.d_model + c];
    }
    if ((params.flags & 2u) != 0u) {
        v += w_pos[(row % params.seq) * params.d_model + c];
    }
    out[i] = v;
}
