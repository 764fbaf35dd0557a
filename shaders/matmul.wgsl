// Batched matrix product out[batch] = a[batch] @ b[batch], float32, register-blocked, two kernels:
//
//   matmul_vec4 (K and N multiples of 4): a, b and out are read and written as vec4. Each
//     invocation computes an 8 x 8 block (8 rows, two vec4s of columns) held in sixteen vec4
//     accumulators; per step of 4 in k it loads one vec4 of a per row and four rows of b per
//     column group, then does 256 fused multiply-adds from 16 vec4 loads.
//   matmul (any shape): scalar loads; each invocation computes a 4 x 4 block in four vec4
//     accumulators, K consumed 4 at a time with a scalar tail.
//
// A workgroup is WG_X x WG_Y = 8 x 8 invocations, so a tile is 64 x 64 outputs (vec4 kernel) or
// 32 x 32 (scalar kernel). Rows and columns of a block are interleaved across the workgroup:
// invocation (x, y) owns rows tile_row + y + 8 i and columns (vec4s) tile_col + x + 8 j, so that
// neighbouring invocations read neighbouring elements of b and write neighbouring outputs.
//
// Why no workgroup memory, and why vec4: on CPU drivers (lavapipe, llvmpipe) a barrier is
// expensive, and every load from storage or workgroup memory whose address differs between
// invocations becomes a loop over the SIMD lanes, paid once per load instruction whatever its
// width. So the kernels load straight from storage buffers into
// registers, as few and as wide loads as possible (measured on llvmpipe, 1024^3: the scalar 4x4
// kernel ~2.7 GFLOP/s, vec4 4x4 ~9, vec4 4x8 ~13.7, vec4 8x8 ~1.45x less CPU time than 4x8).
//
// Any M, N, K: rows and columns past the edge are clamped for loading (so the inner loop has no
// branches) and skipped when storing.
//
// Dispatch: all (batch, tile row, tile column) workgroups form one linear index, spread over a
// 2-D grid (x at most 65535 wide); the index is wg.y * num_workgroups.x + wg.x and workgroups at
// or past params.workgroups return at once. Broadcasting is resolved on the host: offsets[batch]
// holds the element offsets of the a and b matrices that output batch multiplies.
//
// Each output is accumulated sequentially in k with fma, well within SPEC's classic
// 2 K 2^-24 (|a| |b|) bound.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    tiles_n: u32,         // column tiles per matrix
    tiles_per_batch: u32, // row tiles * column tiles
    workgroups: u32,      // tiles_per_batch * batches
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(3) var<storage, read> offsets: array<vec2<u32>>;

// The scalar kernel's view of the buffers.
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

// The vec4 kernel's view of the same bindings (only used when K % 4 == N % 4 == 0, K > 0). Each
// entry point uses one view only, and wgpu compiles a pipeline from its entry point's globals
// alone, so no backend sees two variables at one binding.
@group(0) @binding(1) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b4: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> out4: array<vec4<f32>>;

const WG_X: u32 = 8u;
const WG_Y: u32 = 8u;

// Splits the linear workgroup index into (batch, first row, first column) for this invocation;
// tiles are `rows` x `cols` (columns counted in vec4s for the vec4 kernel).
fn tile_origin(index: u32, lid: vec3<u32>, rows: u32, cols: u32) -> vec3<u32> {
    let batch = index / params.tiles_per_batch;
    let tile = index % params.tiles_per_batch;
    return vec3<u32>(batch, (tile / params.tiles_n) * rows + lid.y, (tile % params.tiles_n) * cols + lid.x);
}

// acc + x.x p0 + x.y p1 + x.z p2 + x.w p3: four steps of k for one row and four columns.
fn mac4(acc: vec4<f32>, x: vec4<f32>, p0: vec4<f32>, p1: vec4<f32>, p2: vec4<f32>, p3: vec4<f32>) -> vec4<f32> {
    return fma(vec4<f32>(x.w), p3, fma(vec4<f32>(x.z), p2, fma(vec4<f32>(x.y), p1, fma(vec4<f32>(x.x), p0, acc))));
}

// Stores one vec4 of the vec4 kernel's block unless it lies past the matrix's edge.
fn store4(out_base: u32, row: u32, col4: u32, value: vec4<f32>) {
    let n4 = params.n / 4u;
    if (row < params.m && col4 < n4) {
        out4[out_base + row * n4 + col4] = value;
    }
}

@compute @workgroup_size(WG_X, WG_Y)
fn matmul_vec4(@builtin(workgroup_id) wg: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
    let index = wg.y * nwg.x + wg.x;
    if (index >= params.workgroups) {
        return;
    }
    let m = params.m;
    let n4 = params.n / 4u;
    let k4 = params.k / 4u;
    let origin = tile_origin(index, lid, 8u * WG_Y, 2u * WG_X);
    let row0 = origin.y;
    let c0 = origin.z;
    // K and N are multiples of 4, so every matrix offset is too.
    let base = offsets[origin.x] / 4u;

    // Clamped rows of a (offsets of their first vec4) and the two column groups of b.
    let ra0 = min(row0 + 0u * WG_Y, m - 1u) * k4 + base.x;
    let ra1 = min(row0 + 1u * WG_Y, m - 1u) * k4 + base.x;
    let ra2 = min(row0 + 2u * WG_Y, m - 1u) * k4 + base.x;
    let ra3 = min(row0 + 3u * WG_Y, m - 1u) * k4 + base.x;
    let ra4 = min(row0 + 4u * WG_Y, m - 1u) * k4 + base.x;
    let ra5 = min(row0 + 5u * WG_Y, m - 1u) * k4 + base.x;
    let ra6 = min(row0 + 6u * WG_Y, m - 1u) * k4 + base.x;
    let ra7 = min(row0 + 7u * WG_Y, m - 1u) * k4 + base.x;
    var bp = base.y + min(c0, n4 - 1u);
    var bq = base.y + min(c0 + WG_X, n4 - 1u);

    // acc{row}{p|q}: row i of the block, column group p (c0) or q (c0 + WG_X).
    var acc0p = vec4<f32>(0.0);
    var acc0q = vec4<f32>(0.0);
    var acc1p = vec4<f32>(0.0);
    var acc1q = vec4<f32>(0.0);
    var acc2p = vec4<f32>(0.0);
    var acc2q = vec4<f32>(0.0);
    var acc3p = vec4<f32>(0.0);
    var acc3q = vec4<f32>(0.0);
    var acc4p = vec4<f32>(0.0);
    var acc4q = vec4<f32>(0.0);
    var acc5p = vec4<f32>(0.0);
    var acc5q = vec4<f32>(0.0);
    var acc6p = vec4<f32>(0.0);
    var acc6q = vec4<f32>(0.0);
    var acc7p = vec4<f32>(0.0);
    var acc7q = vec4<f32>(0.0);
    for (var k = 0u; k < k4; k += 1u) {
        // Rows 4k..4k+3 of b at both column groups: 8 vec4 loads for 16 rows x 8 columns x 4 k.
        let p0 = b4[bp];
        let p1 = b4[bp + n4];
        let p2 = b4[bp + 2u * n4];
        let p3 = b4[bp + 3u * n4];
        let q0 = b4[bq];
        let q1 = b4[bq + n4];
        let q2 = b4[bq + 2u * n4];
        let q3 = b4[bq + 3u * n4];
        bp += 4u * n4;
        bq += 4u * n4;
        let x0 = a4[ra0 + k];
        acc0p = mac4(acc0p, x0, p0, p1, p2, p3);
        acc0q = mac4(acc0q, x0, q0, q1, q2, q3);
        let x1 = a4[ra1 + k];
        acc1p = mac4(acc1p, x1, p0, p1, p2, p3);
        acc1q = mac4(acc1q, x1, q0, q1, q2, q3);
        let x2 = a4[ra2 + k];
        acc2p = mac4(acc2p, x2, p0, p1, p2, p3);
        acc2q = mac4(acc2q, x2, q0, q1, q2, q3);
        let x3 = a4[ra3 + k];
        acc3p = mac4(acc3p, x3, p0, p1, p2, p3);
        acc3q = mac4(acc3q, x3, q0, q1, q2, q3);
        let x4 = a4[ra4 + k];
        acc4p = mac4(acc4p, x4, p0, p1, p2, p3);
        acc4q = mac4(acc4q, x4, q0, q1, q2, q3);
        let x5 = a4[ra5 + k];
        acc5p = mac4(acc5p, x5, p0, p1, p2, p3);
        acc5q = mac4(acc5q, x5, q0, q1, q2, q3);
        let x6 = a4[ra6 + k];
        acc6p = mac4(acc6p, x6, p0, p1, p2, p3);
        acc6q = mac4(acc6q, x6, q0, q1, q2, q3);
        let x7 = a4[ra7 + k];
        acc7p = mac4(acc7p, x7, p0, p1, p2, p3);
        acc7q = mac4(acc7q, x7, q0, q1, q2, q3);
    }

    let out_base = origin.x * m * n4;
    store4(out_base, row0 + 0u * WG_Y, c0, acc0p);
    store4(out_base, row0 + 0u * WG_Y, c0 + WG_X, acc0q);
    store4(out_base, row0 + 1u * WG_Y, c0, acc1p);
    store4(out_base, row0 + 1u * WG_Y, c0 + WG_X, acc1q);
    store4(out_base, row0 + 2u * WG_Y, c0, acc2p);
    store4(out_base, row0 + 2u * WG_Y, c0 + WG_X, acc2q);
    store4(out_base, row0 + 3u * WG_Y, c0, acc3p);
    store4(out_base, row0 + 3u * WG_Y, c0 + WG_X, acc3q);
    store4(out_base, row0 + 4u * WG_Y, c0, acc4p);
    store4(out_base, row0 + 4u * WG_Y, c0 + WG_X, acc4q);
    store4(out_base, row0 + 5u * WG_Y, c0, acc5p);
    store4(out_base, row0 + 5u * WG_Y, c0 + WG_X, acc5q);
    store4(out_base, row0 + 6u * WG_Y, c0, acc6p);
    store4(out_base, row0 + 6u * WG_Y, c0 + WG_X, acc6q);
    store4(out_base, row0 + 7u * WG_Y, c0, acc7p);
    store4(out_base, row0 + 7u * WG_Y, c0 + WG_X, acc7q);
}

@compute @workgroup_size(WG_X, WG_Y)
fn matmul(@builtin(workgroup_id) wg: vec3<u32>,
          @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_id) lid: vec3<u32>) {
    let index = wg.y * nwg.x + wg.x;
    if (index >= params.workgroups) {
        return;
    }
    let m = params.m;
    let n = params.n;
    let kk = params.k;
    let origin = tile_origin(index, lid, 4u * WG_Y, 4u * WG_X);
    let row0 = origin.y;
    let col0 = origin.z;
    let base = offsets[origin.x];

    // Clamped rows of a (as offsets of their first element) and columns of b.
    let ra = vec4<u32>(min(row0, m - 1u), min(row0 + WG_Y, m - 1u),
                       min(row0 + 2u * WG_Y, m - 1u), min(row0 + 3u * WG_Y, m - 1u)) * kk + base.x;
    let cb = vec4<u32>(min(col0, n - 1u), min(col0 + WG_X, n - 1u),
                       min(col0 + 2u * WG_X, n - 1u), min(col0 + 3u * WG_X, n - 1u)) + base.y;

    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    let k4 = kk & ~3u;
    var k = 0u;
    for (; k < k4; k += 4u) {
        // a rows 0..3 at k..k+3, and b rows k..k+3 at the block's four columns.
        let a0 = vec4<f32>(a[ra.x + k], a[ra.x + k + 1u], a[ra.x + k + 2u], a[ra.x + k + 3u]);
        let a1 = vec4<f32>(a[ra.y + k], a[ra.y + k + 1u], a[ra.y + k + 2u], a[ra.y + k + 3u]);
        let a2 = vec4<f32>(a[ra.z + k], a[ra.z + k + 1u], a[ra.z + k + 2u], a[ra.z + k + 3u]);
        let a3 = vec4<f32>(a[ra.w + k], a[ra.w + k + 1u], a[ra.w + k + 2u], a[ra.w + k + 3u]);
        let r0 = k * n;
        let r1 = r0 + n;
        let r2 = r1 + n;
        let r3 = r2 + n;
        let b0 = vec4<f32>(b[r0 + cb.x], b[r0 + cb.y], b[r0 + cb.z], b[r0 + cb.w]);
        let b1 = vec4<f32>(b[r1 + cb.x], b[r1 + cb.y], b[r1 + cb.z], b[r1 + cb.w]);
        let b2 = vec4<f32>(b[r2 + cb.x], b[r2 + cb.y], b[r2 + cb.z], b[r2 + cb.w]);
        let b3 = vec4<f32>(b[r3 + cb.x], b[r3 + cb.y], b[r3 + cb.z], b[r3 + cb.w]);
        acc0 = fma(vec4<f32>(a0.w), b3, fma(vec4<f32>(a0.z), b2, fma(vec4<f32>(a0.y), b1, fma(vec4<f32>(a0.x), b0, acc0))));
        acc1 = fma(vec4<f32>(a1.w), b3, fma(vec4<f32>(a1.z), b2, fma(vec4<f32>(a1.y), b1, fma(vec4<f32>(a1.x), b0, acc1))));
        acc2 = fma(vec4<f32>(a2.w), b3, fma(vec4<f32>(a2.z), b2, fma(vec4<f32>(a2.y), b1, fma(vec4<f32>(a2.x), b0, acc2))));
        acc3 = fma(vec4<f32>(a3.w), b3, fma(vec4<f32>(a3.z), b2, fma(vec4<f32>(a3.y), b1, fma(vec4<f32>(a3.x), b0, acc3))));
    }
    for (; k < kk; k += 1u) {
        let r = k * n;
        let bk = vec4<f32>(b[r + cb.x], b[r + cb.y], b[r + cb.z], b[r + cb.w]);
        acc0 = fma(vec4<f32>(a[ra.x + k]), bk, acc0);
        acc1 = fma(vec4<f32>(a[ra.y + k]), bk, acc1);
        acc2 = fma(vec4<f32>(a[ra.z + k]), bk, acc2);
        acc3 = fma(vec4<f32>(a[ra.w + k]), bk, acc3);
    }

    let out_base = origin.x * m * n;
    let accs = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    for (var i = 0u; i < 4u; i += 1u) {
        let row = row0 + i * WG_Y;
        if (row >= m) {
            break;
        }
        let o = out_base + row * n + col0;
        for (var j = 0u; j < 4u; j += 1u) {
            if (col0 + j * WG_X < n) {
                out[o + j * WG_X] = accs[i][j];
            }
        }
    }
}
