// The vec4 projection, for inner and d_head multiples of 4 (GPT-2, Othello-GPT, most models):
// a tile is 8 rows x 8 columns (two vec4s, each within one head), and each step of the inner walk
// loads 8 x vec4s and 8 w vec4s (4 inner rows x 2 column vec4s) for 256 multiply-adds. A CPU
// adapter such as lavapipe pays per load, not per float, so vec4 loads and this many
// multiply-adds per load are what make it fast there (8 x 8 runs about 1.3 times as fast as
// 4 x 8 on lavapipe).

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
    let g = grid_index(wg, nwg, li, WG);
    if (g >= params.count) {
        return;
    }
    let inner4 = params.inner / 4u;
    let dh4 = params.d_head / 4u;
    let cols4 = params.cols / 4u;
    let r0 = (g / params.col_tiles) * 8u;
    let lo = (g % params.col_tiles) * 2u;
    let hi = min(lo + 1u, cols4 - 1u);
    let last = vec4<u32>(params.rows - 1u);
    let xa = min(vec4<u32>(r0) + vec4<u32>(0u, 1u, 2u, 3u), last) * inner4;
    let xb = min(vec4<u32>(r0) + vec4<u32>(4u, 5u, 6u, 7u), last) * inner4;
    // Row m of column vec4 c (head h = c / dh4) is w[h * inner * dh4 + m * dh4 + c % dh4].
    let wl = (lo / dh4) * params.inner * dh4 + lo % dh4;
    let wh = (hi / dh4) * params.inner * dh4 + hi % dh4;

    var a0 = vec4<f32>(0.0);
    var a1 = vec4<f32>(0.0);
    var a2 = vec4<f32>(0.0);
    var a3 = vec4<f32>(0.0);
    var a4 = vec4<f32>(0.0);
    var a5 = vec4<f32>(0.0);
    var a6 = vec4<f32>(0.0);
    var a7 = vec4<f32>(0.0);
    var b0 = vec4<f32>(0.0);
    var b1 = vec4<f32>(0.0);
    var b2 = vec4<f32>(0.0);
    var b3 = vec4<f32>(0.0);
    var b4 = vec4<f32>(0.0);
    var b5 = vec4<f32>(0.0);
    var b6 = vec4<f32>(0.0);
    var b7 = vec4<f32>(0.0);
    for (var m = 0u; m < inner4; m++) {
        let row = 4u * m * dh4;
        let l0 = w[wl + row];
        let l1 = w[wl + row + dh4];
        let l2 = w[wl + row + 2u * dh4];
        let l3 = w[wl + row + 3u * dh4];
        let h0 = w[wh + row];
        let h1 = w[wh + row + dh4];
        let h2 = w[wh + row + 2u * dh4];
        let h3 = w[wh + row + 3u * dh4];
        let x0 = x[xa.x + m];
        let x1 = x[xa.y + m];
        let x2 = x[xa.z + m];
        let x3 = x[xa.w + m];
        let x4 = x[xb.x + m];
        let x5 = x[xb.y + m];
        let x6 = x[xb.z + m];
        let x7 = x[xb.w + m];
        a0 = mix(a0, x0, l0, l1, l2, l3);
        a1 = mix(a1, x1, l0, l1, l2, l3);
        a2 = mix(a2, x2, l0, l1, l2, l3);
        a3 = mix(a3, x3, l0, l1, l2, l3);
        a4 = mix(a4, x4, l0, l1, l2, l3);
        a5 = mix(a5, x5, l0, l1, l2, l3);
        a6 = mix(a6, x6, l0, l1, l2, l3);
        a7 = mix(a7, x7, l0, l1, l2, l3);
        b0 = mix(b0, x0, h0, h1, h2, h3);
        b1 = mix(b1, x1, h0, h1, h2, h3);
        b2 = mix(b2, x2, h0, h1, h2, h3);
        b3 = mix(b3, x3, h0, h1, h2, h3);
        b4 = mix(b4, x4, h0, h1, h2, h3);
        b5 = mix(b5, x5, h0, h1, h2, h3);
        b6 = mix(b6, x6, h0, h1, h2, h3);
        b7 = mix(b7, x7, h0, h1, h2, h3);
    }
    let bl = b[lo];
    let bh = b[hi];
    let two = lo + 1u < cols4;
    store(r0, lo, true, a0 + bl);
    store(r0 + 1u, lo, true, a1 + bl);
    store(r0 + 2u, lo, true, a2 + bl);
    store(r0 + 3u, lo, true, a3 + bl);
    store(r0 + 4u, lo, true, a4 + bl);
    store(r0 + 5u, lo, true, a5 + bl);
    store(r0 + 6u, lo, true, a6 + bl);
    store(r0 + 7u, lo, true, a7 + bl);
    store(r0, hi, two, b0 + bh);
    store(r0 + 1u, hi, two, b1 + bh);
    store(r0 + 2u, hi, two, b2 + bh);
    store(r0 + 3u, hi, two, b3 + bh);
    store(r0 + 4u, hi, two, b4 + bh);
    store(r0 + 5u, hi, two, b5 + bh);
    store(r0 + 6u, hi, two, b6 + bh);
    store(r0 + 7u, hi, two, b7 + bh);
}
