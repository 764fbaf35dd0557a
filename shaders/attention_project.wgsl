// The vec4 projection, for inner and d_head multiples of 4 (GPT-2, Othello-GPT, most models):
// a tile is 4 rows x 8 columns (two vec4s, each within one head), and each step of the inner walk
// loads 4 x vec4s and 8 w vec4s (4 inner rows x 2 column vec4s) for 128 multiply-adds. A CPU
// adapter such as lavapipe pays per load, not per float, so vec4 loads are what make this fast
// there.

@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> w: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> out: array<vec4<f32>>;

// acc + (x's 4 inner values) . (w's 4 inner rows).
fn mix(acc: vec4<f32>, xr: vec4<f32>, w0: vec4<f32>, w1: vec4<f32>, w2: vec4<f32>, w3: vec4<f32>) -> vec4<f32> {
    return acc + xr.x * w0 + xr.y * w1 + xr.z * w2 + xr.w * w3;
}

fn store(r: u32, c4: u32, valid: bool, value: vec4<f32>) {
    if (r < params.rows && valid) {
        out[r * (params.cols / 4u) + c4] = value;
    }
}

@compute @workgroup_size(64)
fn project4(@builtin(workgroup_id) wg: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) li: u32) {
    let g = invocation(wg, nwg, li);
    if (g >= params.count) {
        return;
    }
    let inner4 = params.inner / 4u;
    let dh4 = params.d_head / 4u;
    let cols4 = params.cols / 4u;
    let r0 = (g / params.col_tiles) * 4u;
    let lo = (g % params.col_tiles) * 2u;
    let hi = min(lo + 1u, cols4 - 1u);
    let xr = min(vec4<u32>(r0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(params.rows - 1u)) * inner4;
    // Row m of column vec4 c (head h = c / dh4) is w[h * inner * dh4 + m * dh4 + c % dh4].
    let wl = (lo / dh4) * params.inner * dh4 + lo % dh4;
    let wh = (hi / dh4) * params.inner * dh4 + hi % dh4;

    var a0 = vec4<f32>(0.0);
    var a1 = vec4<f32>(0.0);
    var a2 = vec4<f32>(0.0);
    var a3 = vec4<f32>(0.0);
    var b0 = vec4<f32>(0.0);
    var b1 = vec4<f32>(0.0);
    var b2 = vec4<f32>(0.0);
    var b3 = vec4<f32>(0.0);
    for (var m = 0u; m < inner4; m++) {
        let x0 = x[xr.x + m];
        let x1 = x[xr.y + m];
        let x2 = x[xr.z + m];
        let x3 = x[xr.w + m];
        let row = 4u * m * dh4;
        let l0 = w[wl + row];
        let l1 = w[wl + row + dh4];
        let l2 = w[wl + row + 2u * dh4];
        let l3 = w[wl + row + 3u * dh4];
        let h0 = w[wh + row];
        let h1 = w[wh + row + dh4];
        let h2 = w[wh + row + 2u * dh4];
        let h3 = w[wh + row + 3u * dh4];
        a0 = mix(a0, x0, l0, l1, l2, l3);
        a1 = mix(a1, x1, l0, l1, l2, l3);
        a2 = mix(a2, x2, l0, l1, l2, l3);
        a3 = mix(a3, x3, l0, l1, l2, l3);
        b0 = mix(b0, x0, h0, h1, h2, h3);
        b1 = mix(b1, x1, h0, h1, h2, h3);
        b2 = mix(b2, x2, h0, h1, h2, h3);
        b3 = mix(b3, x3, h0, h1, h2, h3);
    }
    let bl = b[lo];
    let bh = b[hi];
    let two = lo + 1u < cols4;
    store(r0, lo, true, a0 + bl);
    store(r0 + 1u, lo, true, a1 + bl);
    store(r0 + 2u, lo, true, a2 + bl);
    store(r0 + 3u, lo, true, a3 + bl);
    store(r0, hi, two, b0 + bh);
    store(r0 + 1u, hi, two, b1 + bh);
    store(r0 + 2u, hi, two, b2 + bh);
    store(r0 + 3u, hi, two, b3 + bh);
}
