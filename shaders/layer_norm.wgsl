// Layer norm over the last axis of a C-order [rows, n] view of x:
//   scale = sqrt(var + eps), out = (x - mean) / scale [* w + b], biased variance.
// Flags choose the optional parts at run time (every binding is always bound; the host binds small
// dummy buffers for the parts it does not want): bit 0 applies w and b (without them this is
// TransformerLens's LNPre), bit 1 writes the per-row scale (TransformerLens's hook_scale).
//
// Two entry points, chosen on the host by the row length n and the adapter type (the sizes are
// override constants: on lavapipe ROWS_WG = 8, WIDE_WG = 32, on GPUs 64 and 256):
//   layer_norm_rows  one invocation per row, ROWS_WG rows per workgroup; no workgroup memory, no
//                    barriers (good for lavapipe and for many short rows anywhere).
//   layer_norm_wide  one workgroup of WIDE_WG invocations per row for long rows. Invocation t
//                    owns elements t, t + WIDE_WG, ... and reduces them to (count, mean, M2); the partial
//                    statistics merge with Chan et al.'s parallel formula in a two-level
//                    reduction and a broadcast (256 -> 16 -> 1 -> all): three barriers per row.
//
// Numerics. A row whose mean is 10^4 times its spread loses the spread if x is summed directly in
// f32 (the rounding of a sum of values near 1e4 exceeds the spread). So every row is first
// shifted by its first element x0: d = x - x0 is exact for nearby values (Sterbenz) and of the
// order of the spread. Each invocation then takes two passes over its own elements (mean of d,
// then the sum of squared deviations from that mean), and Chan's merge never subtracts large
// nearly equal numbers. A constant row gives d = 0, var = 0 and, with eps > 0, exactly b.
// Rows whose largest magnitude exceeds 2^32 are scaled first by a power of two k that brings it
// into [2, 4): otherwise x - x0 may overflow, and squared deviations summed over a long row
// overflow to inf (rows of spread 1e18 over 512 elements returned exactly b, [3e38, -3e38] NaN).
// Scaling by a power of two is exact, and so is every later step's scale invariance (sums,
// squares, the square root of k^2 (var + eps)), so scaled rows round as they would unscaled.
// The statistics are then those of k x: var(k x) + k^2 eps = k^2 (var + eps), so the outputs are
// unchanged and the hook's scale is sqrt(...) / k. Other rows take k = 1 (bit for bit as before).
// That costs one more read of the row (its largest magnitude), sixteen elements an iteration so
// that llvmpipe's loop cap still holds for the largest binding.
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
    eps: f32,
    flags: u32,
}

const AFFINE: u32 = 1u;
const SCALE: u32 = 2u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read_write> scale: array<f32>;

// ROWS_WG rows per workgroup on the invocation path, an override constant that the host picks per
// adapter (see the Rust op); the workgroup path's sizes are reduce_rows.wgsl's.
override ROWS_WG: u32 = 64u;

// The row's power-of-two scale k (see Numerics) and its exponent.
var<private> row_k: f32 = 1.0;
var<private> row_e: i32 = 0;

// Element i of the row at base, scaled, less the row's (scaled) shift.
fn d(base: u32, i: u32, shift: f32) -> f32 {
    return x[base + i] * row_k - shift;
}

// The largest magnitude among elements first, first + stride, ... of the row at base.
fn amax_of(base: u32, first: u32, stride: u32) -> f32 {
    let n = params.n;
    let s = stride;
    var m = 0.0;
    var i = first;
    while (i + 15u * s < n) {
        var lo = max(max(abs(x[base + i]), abs(x[base + i + s])), max(abs(x[base + i + 2u * s]), abs(x[base + i + 3u * s])));
        lo = max(lo, max(max(abs(x[base + i + 4u * s]), abs(x[base + i + 5u * s])), max(abs(x[base + i + 6u * s]), abs(x[base + i + 7u * s]))));
        var hi = max(max(abs(x[base + i + 8u * s]), abs(x[base + i + 9u * s])), max(abs(x[base + i + 10u * s]), abs(x[base + i + 11u * s])));
        hi = max(hi, max(max(abs(x[base + i + 12u * s]), abs(x[base + i + 13u * s])), max(abs(x[base + i + 14u * s]), abs(x[base + i + 15u * s]))));
        m = max(m, max(lo, hi));
        i += 16u * s;
    }
    while (i < n) {
        m = max(m, abs(x[base + i]));
        i += s;
    }
    return m;
}

// Chooses k from the row's largest magnitude: 2^(2 - e) where amax = f 2^e, f in [0.5, 1), when
// amax > 2^32 and finite (inf and NaN rows keep k = 1 and come out NaN as SPEC's formula gives).
fn set_scale(amax: f32) {
    if (amax > 4294967296.0 && amax <= 3.4028235e38) {
        let e = i32((bitcast<u32>(amax) >> 23u) & 0xffu) - 126;
        row_e = 2 - e;
        row_k = bitcast<f32>(u32(127 + row_e) << 23u);
    }
}

// Statistics of elements first, first + stride, ... of the row at base, shifted:
// (count, mean, M2 = sum of squared deviations from the mean). Two passes over the elements.
fn stats_of(base: u32, shift: f32, first: u32, stride: u32) -> vec3<f32> {
    let n = params.n;
    let s = stride;
    var sum = 0.0;
    var i = first;
    while (i + 7u * s < n) {
        let lo = (d(base, i, shift) + d(base, i + s, shift)) + (d(base, i + 2u * s, shift) + d(base, i + 3u * s, shift));
        let hi = (d(base, i + 4u * s, shift) + d(base, i + 5u * s, shift)) + (d(base, i + 6u * s, shift) + d(base, i + 7u * s, shift));
        sum += lo + hi;
        i += 8u * s;
    }
    while (i < n) {
        sum += d(base, i, shift);
        i += s;
    }
    // The count is an f32: exact for rows of up to 2^24 elements.
    let count = f32(select(0u, (n - first + s - 1u) / s, first < n));
    let mean = select(0.0, sum / count, count > 0.0);
    var m2 = 0.0;
    i = first;
    while (i + 7u * s < n) {
        let lo = (sq(d(base, i, shift) - mean) + sq(d(base, i + s, shift) - mean)) +
                 (sq(d(base, i + 2u * s, shift) - mean) + sq(d(base, i + 3u * s, shift) - mean));
        let hi = (sq(d(base, i + 4u * s, shift) - mean) + sq(d(base, i + 5u * s, shift) - mean)) +
                 (sq(d(base, i + 6u * s, shift) - mean) + sq(d(base, i + 7u * s, shift) - mean));
        m2 += lo + hi;
        i += 8u * s;
    }
    while (i < n) {
        m2 += sq(d(base, i, shift) - mean);
        i += s;
    }
    return vec3<f32>(count, mean, m2);
}

fn sq(v: f32) -> f32 {
    return v * v;
}

// Chan, Golub and LeVeque's merge of two sets' statistics (count, mean, M2 in x, y, z), for
// reduce_rows.wgsl's reduce_row.
fn combine(a: vec4<f32>, b: vec4<f32>) -> vec4<f32> {
    let count = a.x + b.x;
    if (b.x == 0.0) {
        return a;
    }
    let fraction = b.x / count;
    let delta = b.y - a.y;
    return vec4<f32>(count, a.y + delta * fraction, a.z + b.z + delta * delta * a.x * fraction, 0.0);
}

// Writes output element i of the row at base.
fn put(base: u32, i: u32, shift: f32, mean: f32, inv: f32, affine: bool) {
    let y = (d(base, i, shift) - mean) * inv;
    if (affine) {
        out[base + i] = y * w[i] + b[i];
    } else {
        out[base + i] = y;
    }
}

// Writes the row's outputs from element `first` on with `stride`, given its statistics.
fn write_row(row: u32, base: u32, shift: f32, st: vec3<f32>, first: u32, stride: u32) {
    let n = params.n;
    let s = stride;
    // For n = 0 this is 0/0 = NaN, as the reference's mean of an empty row is.
    let variance = st.z / f32(n);
    // k^2 eps, exact or (when k < 1) negligibly small; k = 1 leaves eps as it is.
    let root = sqrt(variance + params.eps * row_k * row_k);
    // A constant row scaled down can lose k^2 eps to underflow: its deviations are all 0 and
    // SPEC's answer (eps > 0) is 0, not 0 * inf.
    let inv = select(1.0 / root, 0.0, root == 0.0 && params.eps > 0.0);
    let mean = st.y;
    let affine = (params.flags & AFFINE) != 0u;
    if ((params.flags & SCALE) != 0u && first == 0u) {
        // (var = 0 and k^2 eps lost to underflow: the scale is sqrt(0 + eps).)
        scale[row] = select(root / row_k, sqrt(params.eps), root == 0.0);
    }
    var i = first;
    while (i + 7u * s < n) {
        // Written out, not as a loop: every loop iteration counts against llvmpipe's cap.
        put(base, i, shift, mean, inv, affine);
        put(base, i + s, shift, mean, inv, affine);
        put(base, i + 2u * s, shift, mean, inv, affine);
        put(base, i + 3u * s, shift, mean, inv, affine);
        put(base, i + 4u * s, shift, mean, inv, affine);
        put(base, i + 5u * s, shift, mean, inv, affine);
        put(base, i + 6u * s, shift, mean, inv, affine);
        put(base, i + 7u * s, shift, mean, inv, affine);
        i += 8u * s;
    }
    while (i < n) {
        put(base, i, shift, mean, inv, affine);
        i += s;
    }
}

// The shift of a row: its first element (0 for an empty row, which has none).
fn shift_of(base: u32) -> f32 {
    if (params.n == 0u) {
        return 0.0;
    }
    return x[base] * row_k;
}

@compute @workgroup_size(ROWS_WG)
fn layer_norm_rows(@builtin(workgroup_id) wg: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) li: u32) {
    let row = grid_index(wg, nwg, li, ROWS_WG);
    if (row >= params.rows) {
        return;
    }
    let base = row * params.n;
    set_scale(amax_of(base, 0u, 1u));
    let shift = shift_of(base);
    write_row(row, base, shift, stats_of(base, shift, 0u, 1u), 0u, 1u);
}

@compute @workgroup_size(WIDE_WG)
fn layer_norm_wide(@builtin(workgroup_id) wg: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) li: u32) {
    let row = workgroup_index(wg, nwg);
    if (row >= params.rows) {
        return; // uniform across the workgroup, so the barriers below stay in uniform control flow
    }
    let base = row * params.n;
    set_scale(reduce_row_amax(li, amax_of(base, li, WIDE_WG)));
    let shift = shift_of(base);
    let st = reduce_row(li, vec4<f32>(stats_of(base, shift, li, WIDE_WG), 0.0));
    write_row(row, base, shift, st.xyz, li, WIDE_WG);
}
