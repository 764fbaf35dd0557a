// Row-wise kernels of TransformerLens's variants, over the last axis of a C-order [rows, n] view:
//
//   rms_norm  scale = sqrt(mean(x^2) + eps), out = x / scale [* w]   (RMSNorm, RMSNormPre)
//             flag bit 0 multiplies by w, bit 1 writes the per-row scale (hook_scale)
//   solu      out = x * softmax(x)                                    (SoLU, act_fn solu / solu_ln)
//   solu_backward  dx = p (dy + x dy - sum(x p dy)), p = softmax(x)   (SoLU's backward; at the end)
//
// One invocation per row, 64 rows a workgroup, on a 2-D grid (linear workgroup index
// wg.y * num_workgroups.x + wg.x; invocations past the last row return at once). No workgroup
// memory, no barriers. Each invocation reads its row three times (largest magnitude or maximum,
// sum, write), the first two four elements a loop iteration: llvmpipe stops an invocation after
// 65535 loop iterations in all (1.5 n here), so the host refuses rows longer than 32768 elements.
//
// Numerics. rms_norm multiplies a row whose largest magnitude m exceeds 2^32 by a power of two k
// that brings m into [4, 8) (exact) before squaring, so that mean(x^2) cannot overflow; the scale
// is then sqrt(mean((k x)^2) + k^2 eps) / k. solu shifts by the row maximum before exp, as softmax does,
// so any finite row gives finite values.
//
// Binding 1 is the output and bindings 2.. the inputs and the second output, so solu binds a
// prefix (out, x) and rms_norm all four (the host binds stand-ins for w and scale when unused).

struct Params {
    rows: u32,
    n: u32,
    flags: u32,
    eps: f32,
}

const WEIGHT: u32 = 1u;
const SCALE: u32 = 2u;
const WG: u32 = 64u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> w: array<f32>;
@group(0) @binding(4) var<storage, read_write> scale: array<f32>;


// The largest magnitude of the row at base.
fn amax(base: u32) -> f32 {
    let n = params.n;
    var m = 0.0;
    var i = 0u;
    while (i + 3u < n) {
        m = max(m, max(max(abs(x[base + i]), abs(x[base + i + 1u])), max(abs(x[base + i + 2u]), abs(x[base + i + 3u]))));
        i += 4u;
    }
    while (i < n) {
        m = max(m, abs(x[base + i]));
        i += 1u;
    }
    return m;
}

// The largest value of the row at base.
fn row_max(base: u32) -> f32 {
    let n = params.n;
    var m = x[base];
    var i = 1u;
    while (i + 3u < n) {
        m = max(m, max(max(x[base + i], x[base + i + 1u]), max(x[base + i + 2u], x[base + i + 3u])));
        i += 4u;
    }
    while (i < n) {
        m = max(m, x[base + i]);
        i += 1u;
    }
    return m;
}

fn sq(v: f32) -> f32 {
    return v * v;
}

@compute @workgroup_size(64)
fn rms_norm(@builtin(workgroup_id) wg: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) li: u32) {
    let row = grid_index(wg, nwg, li, WG);
    if (row >= params.rows) {
        return;
    }
    let n = params.n;
    let base = row * n;
    // k: a power of two that brings a huge row's largest magnitude near 1 (else 1).
    let m = amax(base);
    var k = 1.0;
    if (m > 4294967296.0 && m <= 3.4028235e38) {
        let e = i32((bitcast<u32>(m) >> 23u) & 0xffu) - 127;
        k = bitcast<f32>(u32(129 - e) << 23u);
    }
    var sum = 0.0;
    var i = 0u;
    while (i + 3u < n) {
        sum += (sq(x[base + i] * k) + sq(x[base + i + 1u] * k)) + (sq(x[base + i + 2u] * k) + sq(x[base + i + 3u] * k));
        i += 4u;
    }
    while (i < n) {
        sum += sq(x[base + i] * k);
        i += 1u;
    }
    // For n = 0 this is 0/0 = NaN, as the reference's mean of an empty row is.
    let scaled = sqrt(sum / f32(n) + params.eps * k * k);
    let s = select(scaled / k, sqrt(params.eps), scaled == 0.0);
    if ((params.flags & SCALE) != 0u) {
        scale[row] = s;
    }
    let inv = 1.0 / scaled;
    let weighted = (params.flags & WEIGHT) != 0u;
    i = 0u;
    while (i < n) {
        // x / s computed as (k x) / (k s), so a huge row loses nothing to 1/s underflowing.
        var y = (x[base + i] * k) * inv;
        if (weighted) {
            y = y * w[i];
        }
        out[base + i] = y;
        i += 1u;
    }
}

@compute @workgroup_size(64)
fn solu(@builtin(workgroup_id) wg: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let row = grid_index(wg, nwg, li, WG);
    if (row >= params.rows || params.n == 0u) {
        return;
    }
    let n = params.n;
    let base = row * n;
    let m = row_max(base);
    var sum = 0.0;
    var i = 0u;
    while (i + 3u < n) {
        sum += (exp(x[base + i] - m) + exp(x[base + i + 1u] - m)) + (exp(x[base + i + 2u] - m) + exp(x[base + i + 3u] - m));
        i += 4u;
    }
    while (i < n) {
        sum += exp(x[base + i] - m);
        i += 1u;
    }
    let inv = 1.0 / sum;
    i = 0u;
    while (i < n) {
        let v = x[base + i];
        out[base + i] = v * (exp(v - m) * inv);
        i += 1u;
    }
}

// SoLU's backward: dx = p (dy + x dy - sum(x p dy)) with p = softmax(x) (shifted by the row
// maximum, as solu), dy read from binding 3 (w's slot; this entry binds out = dx, x, dy). Three
// reads of the row after its maximum: 3.25 n loop iterations, so the host refuses rows longer
// than 16384 elements.
@compute @workgroup_size(64)
fn solu_backward(@builtin(workgroup_id) wg: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) li: u32) {
    let row = grid_index(wg, nwg, li, WG);
    if (row >= params.rows || params.n == 0u) {
        return;
    }
    let n = params.n;
    let base = row * n;
    let m = row_max(base);
    var sum = 0.0;
    var i = 0u;
    while (i < n) {
        sum += exp(x[base + i] - m);
        i += 1u;
    }
    let inv = 1.0 / sum;
    var dot = 0.0;
    i = 0u;
    while (i < n) {
        let v = x[base + i];
        dot += v * (exp(v - m) * inv) * w[base + i];
        i += 1u;
    }
    i = 0u;
    while (i < n) {
        let v = x[base + i];
        let g = w[base + i];
        out[base + i] = (exp(v - m) * inv) * (g + v * g - dot);
        i += 1u;
    }
}
