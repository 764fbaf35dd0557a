// Backward of the token and positional embeddings, as deterministic gathers (no float atomics:
// the same bits on every run). The float64 twins are in src/reference/backward/embedding.rs.
//
// embed_backward: one invocation per (vocab row v, column): dW_E[v, col] = sum, over the
//   positions p that hold token v in (b, s) order, of d[p, col]. The host sorts the positions
//   by token (a stable counting sort): `offsets` [V + 1] and `positions` [B S].
// pos_embed_backward: one invocation per (position s < n_ctx, column): dW_pos[s, col] =
//   sum over b in order of d[b, s, col] for s < S (params.a), 0 past it.
// flags bit 1 adds to the old out. The grid is 2-D; linear index wg.y * num_wg.x + wg.x.

struct Params {
    n: u32,
    rows: u32,
    cols: u32,
    flags: u32,
    value: f32,
    a: u32,
    b: u32,
    c: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> d: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read> offsets: array<u32>;
@group(0) @binding(4) var<storage, read> positions: array<u32>;

const WG: u32 = 256u;

@compute @workgroup_size(256)
fn embed_backward(@builtin(workgroup_id) wg: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) li: u32) {
    let i = grid_index(wg, nwg, li, WG);
    if (i >= params.n) {
        return;
    }
    let cols = params.cols;
    let v = i / cols;
    let col = i % cols;
    var s = 0.0;
    for (var k = offsets[v]; k < offsets[v + 1u]; k++) {
        s += d[positions[k] * cols + col];
    }
    if ((params.flags & 2u) != 0u) {
        s += out[i];
    }
    out[i] = s;
}

@compute @workgroup_size(256)
fn pos_embed_backward(@builtin(workgroup_id) wg: vec3<u32>,
                      @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) li: u32) {
    let i = grid_index(wg, nwg, li, WG);
    if (i >= params.n) {
        return;
    }
    let cols = params.cols;
    let pos = i / cols;
    let col = i % cols;
    let seq = params.a;
    var s = 0.0;
    if (pos < seq) {
        for (var b = 0u; b < params.rows; b++) {
            s += d[(b * seq + pos) * cols + col];
        }
    }
    if ((params.flags & 2u) != 0u) {
        s += out[i];
    }
    out[i] = s;
}
