// Softmax along the last axis of a C-order [rows, n] view of x.
//
// Two entry points, chosen on the host by the row length n and the adapter type (the sizes are
// override constants: on lavapipe ROWS_WG = 8, WIDE_WG = 32, on GPUs 64 and 256):
//   softmax_rows  one invocation per row, ROWS_WG rows per workgroup. No workgroup memory and no
//                 barriers, which suits lavapipe (where a barrier switches every SIMD chunk of the
//                 workgroup) and many short rows on any device.
//   softmax_wide  one workgroup of WIDE_WG invocations per row, for long rows. Invocation t
//                 owns elements t, t + WIDE_WG, ... (coalesced on GPUs). Each invocation
//                 reduces its elements to a pair (m, s): its own maximum m and s = sum exp(x - m).
//                 Pairs combine as (max(m1, m2), s1 exp(m1 - M) + s2 exp(m2 - M)), so one
//                 reduction gives the row's maximum and sum together. The reduction has two
//                 levels and a broadcast (256 -> 16 -> 1 -> all), three barriers in all.
//
// Numerics. Every exp argument is a difference against a maximum, so it is <= 0 and nothing
// overflows for logits of any finite magnitude (a difference like -3e38 - 3e38 rounds to -inf,
// which is fine). exp_or_zero returns exactly 0 below -88 (where the f32 result is subnormal or
// zero anyway), so -inf entries give exactly 0 without relying on how a driver treats exp(-inf).
// The running maximum starts at the lowest finite f32 rather than -inf, so a row that is all -inf
// ends with sum 0, and its outputs are 0 (not 0/0). NaN and +inf follow numpy: a NaN entry, or
// inf - inf at a +inf entry, makes the sum NaN and so every output of the row NaN. Nothing relies
// on max() seeing a NaN (drivers differ): the NaN travels through exp and the sum, and the tests
// below are written so that a NaN fails them (`d <= -88` and `s <= 0` are false for NaN).
//
// Loops take eight elements an iteration: llvmpipe (lavapipe and Mesa GL) stops any invocation
// after 65535 loop iterations in total, counting every loop of the shader, and silently leaves the
// rest undone. Eight at a time, an invocation of the workgroup path loops about
// 3 n / (8 WIDE_WG) times: under the cap for rows up to about 170000 WIDE_WG elements (the host
// raises WIDE_WG for longer rows; 256 covers the largest 128 MiB binding). The host sends rows
// longer than MAX_INVOCATION_ROW_LEN (16384) to the workgroup path whatever the caller asked for.
//
// Rows are laid out on a 2-D workgroup grid (x up to 65535 wide): the linear workgroup index is
// wg.y * num_workgroups.x + wg.x, and workgroups past the end return at once.

struct Params {
    rows: u32,
    n: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

const LOWEST: f32 = -3.4028234663852886e38;
// ROWS_WG rows per workgroup on the invocation path, an override constant that the host picks per
// adapter (see the Rust op); the workgroup path's sizes are reduce_rows.wgsl's.
override ROWS_WG: u32 = 64u;

// exp(d) for d <= 0, exactly 0 for d <= -88 (including d = -inf), NaN for NaN.
fn exp_or_zero(d: f32) -> f32 {
    return select(exp(d), 0.0, d <= -88.0);
}

// Combines two (max, sum) pairs (in x and y), for reduce_rows.wgsl's reduce_row.
fn combine(a: vec4<f32>, b: vec4<f32>) -> vec4<f32> {
    let m = max(a.x, b.x);
    return vec4<f32>(m, a.y * exp_or_zero(a.x - m) + b.y * exp_or_zero(b.x - m), 0.0, 0.0);
}

// 1 / sum, 0 for a row with no finite entry (sum 0), NaN for a NaN sum.
fn inverse_sum(s: f32) -> f32 {
    return select(1.0 / s, 0.0, s <= 0.0);
}

// The largest element among first, first + stride, ... of the row at base (LOWEST if none).
fn row_max(base: u32, first: u32, stride: u32) -> f32 {
    let n = params.n;
    let s = stride;
    var m = LOWEST;
    var i = first;
    while (i + 7u * s < n) {
        let p = base + i;
        let lo = max(max(x[p], x[p + s]), max(x[p + 2u * s], x[p + 3u * s]));
        let hi = max(max(x[p + 4u * s], x[p + 5u * s]), max(x[p + 6u * s], x[p + 7u * s]));
        m = max(m, max(lo, hi));
        i += 8u * s;
    }
    while (i < n) {
        m = max(m, x[base + i]);
        i += s;
    }
    return m;
}

// exp of element p of x less m.
fn e(p: u32, m: f32) -> f32 {
    return exp_or_zero(x[p] - m);
}

// The sum of exp(x - m) over first, first + stride, ... of the row at base.
fn row_sum_exp(base: u32, m: f32, first: u32, stride: u32) -> f32 {
    let n = params.n;
    let s = stride;
    var sum = 0.0;
    var i = first;
    while (i + 7u * s < n) {
        let p = base + i;
        let lo = (e(p, m) + e(p + s, m)) + (e(p + 2u * s, m) + e(p + 3u * s, m));
        let hi = (e(p + 4u * s, m) + e(p + 5u * s, m)) + (e(p + 6u * s, m) + e(p + 7u * s, m));
        sum += lo + hi;
        i += 8u * s;
    }
    while (i < n) {
        sum += e(base + i, m);
        i += s;
    }
    return sum;
}

// Writes exp(x - m) * inv over first, first + stride, ... of the row at base.
fn write_row(base: u32, m: f32, inv: f32, first: u32, stride: u32) {
    let n = params.n;
    let s = stride;
    var i = first;
    while (i + 7u * s < n) {
        let p = base + i;
        // Written out, not as a loop: every loop iteration counts against llvmpipe's cap.
        out[p] = e(p, m) * inv;
        out[p + s] = e(p + s, m) * inv;
        out[p + 2u * s] = e(p + 2u * s, m) * inv;
        out[p + 3u * s] = e(p + 3u * s, m) * inv;
        out[p + 4u * s] = e(p + 4u * s, m) * inv;
        out[p + 5u * s] = e(p + 5u * s, m) * inv;
        out[p + 6u * s] = e(p + 6u * s, m) * inv;
        out[p + 7u * s] = e(p + 7u * s, m) * inv;
        i += 8u * s;
    }
    while (i < n) {
        out[base + i] = e(base + i, m) * inv;
        i += s;
    }
}

@compute @workgroup_size(ROWS_WG)
fn softmax_rows(@builtin(workgroup_id) wg: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) li: u32) {
    let row = grid_index(wg, nwg, li, ROWS_WG);
    if (row >= params.rows) {
        return;
    }
    let base = row * params.n;
    let m = row_max(base, 0u, 1u);
    write_row(base, m, inverse_sum(row_sum_exp(base, m, 0u, 1u)), 0u, 1u);
}

@compute @workgroup_size(WIDE_WG)
fn softmax_wide(@builtin(workgroup_id) wg: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) li: u32) {
    let row = workgroup_index(wg, nwg);
    if (row >= params.rows) {
        return; // uniform across the workgroup, so the barriers below stay in uniform control flow
    }
    let base = row * params.n;
    let m = row_max(base, li, WIDE_WG);
    let t = reduce_row(li, vec4<f32>(m, row_sum_exp(base, m, li, WIDE_WG), 0.0, 0.0));
    write_row(base, t.x, inverse_sum(t.y), li, WIDE_WG);
}
