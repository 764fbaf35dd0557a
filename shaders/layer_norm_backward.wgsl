// LayerNorm backward (TransformerLens's LN and LNPre without their affine part, which is a
// column multiply and column sums on the host side), one invocation per row of N.
//
// Forward: c = x - mean(x) (the refined two-pass mean of the forward), s = sqrt(mean(c^2) + eps),
// s' = hook_scale after its interventions (`scale`), n = c / s'.
// flags bit 0: d_scale[row] = -sum_j dn_j c_j / s'^2 (d/d hook_scale, before its hook).
// flags bit 1: dx = dc - mean(dc), dc = dn / s' + ds c / (N s), with ds = the value just computed
//   (bit 0) or d_scale[row] as the hook left it; flags bit 2 adds dx to the old contents of dx.
// flags bit 3: RMS norm (TransformerLens's RMS and RMSPre): no centring, c = x, s = sqrt(mean(x^2)
//   + eps), and dx = dc (no mean subtracted).
// The workgroup grid is 2-D; the linear index is wg.y * num_wg.x + wg.x.

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
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> scale: array<f32>;
@group(0) @binding(3) var<storage, read> dn: array<f32>;
@group(0) @binding(4) var<storage, read_write> d_scale: array<f32>;
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;

const WG: u32 = 64u;

@compute @workgroup_size(64)
fn layer_norm_backward(@builtin(workgroup_id) wg: vec3<u32>,
                       @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) li: u32) {
    let row = grid_index(wg, nwg, li, WG);
    if (row >= params.rows) {
        return;
    }
    let n = params.cols;
    let nf = f32(n);
    let base = row * n;
    let rms = (params.flags & 8u) != 0u;
    var mean = 0.0;
    if (!rms) {
        for (var j = 0u; j < n; j++) {
            mean += x[base + j];
        }
        mean = mean / nf;
        var fix = 0.0;
        for (var j = 0u; j < n; j++) {
            fix += x[base + j] - mean;
        }
        mean += fix / nf;
    }
    let s_used = scale[row];
    var ds = 0.0;
    if ((params.flags & 1u) != 0u) {
        var dot = 0.0;
        for (var j = 0u; j < n; j++) {
            dot += dn[base + j] * (x[base + j] - mean);
        }
        ds = -dot / (s_used * s_used);
        d_scale[row] = ds;
    } else {
        ds = d_scale[row];
    }
    if ((params.flags & 2u) == 0u) {
        return;
    }
    var sq = 0.0;
    var sum_dn = 0.0;
    for (var j = 0u; j < n; j++) {
        let c = x[base + j] - mean;
        sq += c * c;
        sum_dn += dn[base + j];
    }
    let s = sqrt(sq / nf + params.value);
    let k = ds / (nf * s);
    // mean(dc) = mean(dn) / s' + k mean(c), and mean(c) is 0 up to rounding: kept for exactness.
    var sum_c = 0.0;
    for (var j = 0u; j < n; j++) {
        sum_c += x[base + j] - mean;
    }
    var mean_dc = (sum_dn / s_used + k * sum_c) / nf;
    if (rms) {
        mean_dc = 0.0;
    }
    let acc = (params.flags & 4u) != 0u;
    for (var j = 0u; j < n; j++) {
        let c = x[base + j] - mean;
        var d = dn[base + j] / s_used + k * c - mean_dc;
        if (acc) {
            d += dx[base + j];
        }
        dx[base + j] = d;
    }
}
