// Batched matrix product out[batch] = a[batch] @ b[batch], float32, tiled through workgroup
// memory with double buffering: the classic GPU kernel (the register-blocked kernels that suit CPU
// drivers are in shaders/matmul.wgsl, with the same bindings and Params). Either operand may be
// transposed: a and b are read through the strides in Params.
//
// A workgroup of TW x TW = 16 x 16 invocations computes a BT x BT = 128 x 128 tile of the output;
// each invocation an 8 x 8 block in registers, its rows tile_row + y + 16 i and columns
// tile_col + x + 16 j interleaved across the workgroup so that neighbouring invocations store
// neighbouring outputs and read neighbouring words of workgroup memory. K advances BK = 8 at a
// time through two stages of workgroup memory (a 128 x 8 slice of a, stored k-major, and an
// 8 x 128 slice of b: 2 x 2 x 4 KiB = 16 KiB, WebGPU's default limit): while the workgroup
// multiplies out of one stage, each invocation has already loaded its 4 + 4 elements of the next
// slice into registers, and writes them into the other stage before the one barrier per slice.
// Why one barrier is enough: stage s+1 is written in iteration s, after the barrier that ended
// iteration s-1, the last one to read it.
//
// Global loads are coalesced (consecutive invocations read consecutive columns of b and
// consecutive k of a row of a); loads past the edge of K read 0 for both a and b, so padded steps
// add exact zeros, and rows or columns past M or N are clamped and never stored. Any M, N, K.
//
// Every output is one fused multiply-add chain in increasing k, as in the register-blocked kernels.
//
// Dispatch and broadcasting as in shaders/matmul_common.wgsl: a linear workgroup index on a 2-D grid and
// per-batch element offsets of a and b.

// Params, the bindings and store1 (which adds the bias and the old output as the flags ask)
// are in shaders/matmul_common.wgsl, which the host prepends.

const TW: u32 = 16u;                   // invocations along each side of the workgroup
const TB: u32 = 8u;                    // outputs along each side of an invocation's block
const BT: u32 = 128u;                  // TW * TB: the tile's side
const BK: u32 = 8u;                    // steps of k per stage
const STAGE: u32 = 1024u;              // BK * BT: elements of one stage of either slice
const PER_INVOCATION: u32 = 4u;        // STAGE / (TW * TW): elements each invocation loads per slice

var<workgroup> tile_a: array<f32, 2048>;  // 2 stages x BK x BT, k-major (a transposed)
var<workgroup> tile_b: array<f32, 2048>;  // 2 stages x BK x BT

// Loads this invocation's share of slice `s` (k = s BK .. s BK + 7) of a and b into registers.
fn fetch(s: u32, tid: u32, base: vec2<u32>, tile_row: u32, tile_col: u32,
         sa: ptr<function, array<f32, 4>>, sb: ptr<function, array<f32, 4>>) {
    let kk = params.k;
    for (var l = 0u; l < PER_INVOCATION; l += 1u) {
        let e = tid + l * TW * TW;
        // a: element (row e / BK, k e % BK) of the slice.
        let ka = s * BK + e % BK;
        let row = min(tile_row + e / BK, params.m - 1u);
        (*sa)[l] = select(0.0, a[base.x + row * params.a_rs + min(ka, kk - 1u) * params.a_ks], ka < kk);
        // b: element (k e / BT, column e % BT) of the slice.
        let kb = s * BK + e / BT;
        let col = min(tile_col + e % BT, params.n - 1u);
        (*sb)[l] = select(0.0, b[base.y + min(kb, kk - 1u) * params.b_ks + col * params.b_js], kb < kk);
    }
}

// Writes the registers that `fetch` filled into stage `stage` (0 or 1) of workgroup memory.
fn deposit(stage: u32, tid: u32, sa: ptr<function, array<f32, 4>>, sb: ptr<function, array<f32, 4>>) {
    let offset = stage * STAGE;
    for (var l = 0u; l < PER_INVOCATION; l += 1u) {
        let e = tid + l * TW * TW;
        tile_a[offset + (e % BK) * BT + e / BK] = (*sa)[l];
        tile_b[offset + e] = (*sb)[l];
    }
}

@compute @workgroup_size(TW, TW)
fn matmul_tiled(@builtin(workgroup_id) wg: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_id) lid: vec3<u32>,
                @builtin(local_invocation_index) tid: u32) {
    let index = wg.y * nwg.x + wg.x;
    if (index >= params.workgroups) {
        return;
    }
    let batch = index / params.tiles_per_batch;
    let tile = index % params.tiles_per_batch;
    let tile_row = (tile / params.tiles_n) * BT;
    let tile_col = (tile % params.tiles_n) * BT;
    let base = offsets[batch];

    var acc: array<f32, 64>;           // acc[i * TB + j]: row lid.y + TW i, column lid.x + TW j
    var sa: array<f32, 4>;
    var sb: array<f32, 4>;
    let slices = (params.k + BK - 1u) / BK;
    if (slices > 0u) {
        fetch(0u, tid, base, tile_row, tile_col, &sa, &sb);
        deposit(0u, tid, &sa, &sb);
    }
    workgroupBarrier();
    for (var s = 0u; s < slices; s += 1u) {
        let more = s + 1u < slices;
        if (more) {
            fetch(s + 1u, tid, base, tile_row, tile_col, &sa, &sb);
        }
        let offset = (s & 1u) * STAGE;
        for (var q = 0u; q < BK; q += 1u) {
            var av: array<f32, 8>;
            var bv: array<f32, 8>;
            for (var i = 0u; i < TB; i += 1u) {
                av[i] = tile_a[offset + q * BT + lid.y + TW * i];
                bv[i] = tile_b[offset + q * BT + lid.x + TW * i];
            }
            for (var i = 0u; i < TB; i += 1u) {
                for (var j = 0u; j < TB; j += 1u) {
                    acc[i * TB + j] = fma(av[i], bv[j], acc[i * TB + j]);
                }
            }
        }
        if (more) {
            deposit((s + 1u) & 1u, tid, &sa, &sb);
        }
        workgroupBarrier();
    }

    let out_base = batch * params.m * params.n;
    for (var i = 0u; i < TB; i += 1u) {
        let row = tile_row + lid.y + TW * i;
        for (var j = 0u; j < TB; j += 1u) {
            store1(out_base, row, tile_col + lid.x + TW * j, acc[i * TB + j]);
        }
    }
}
