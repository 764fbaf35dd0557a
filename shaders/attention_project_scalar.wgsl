// The scalar projection, for any inner size and d_head (e.g. d_head = 10): a tile is 4 rows x 4
// columns, and each step of the inner walk loads 4 x and 4 w floats for 16 multiply-adds.

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

fn store(r: u32, c0: u32, value: vec4<f32>) {
    if (r >= params.rows) {
        return;
    }
    for (var c = 0u; c < 4u; c++) {
        if (c0 + c < params.cols) {
            out[r * params.cols + c0 + c] = value[c] + b[c0 + c];
        }
    }
}

@compute @workgroup_size(64)
fn project1(@builtin(workgroup_id) wg: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) li: u32) {
    let g = grid_index(wg, nwg, li, WG);
    if (g >= params.count) {
        return;
    }
    let r0 = (g / params.col_tiles) * 4u;
    let c0 = (g % params.col_tiles) * 4u;
    let xr = min(vec4<u32>(r0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(params.rows - 1u)) * params.inner;
    // Row m of column c (head h = c / d_head) is w[h * inner * d_head + m * d_head + c % d_head].
    let c = min(vec4<u32>(c0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(params.cols - 1u));
    let wc = (c / params.d_head) * params.inner * params.d_head + c % params.d_head;

    var a0 = vec4<f32>(0.0);
    var a1 = vec4<f32>(0.0);
    var a2 = vec4<f32>(0.0);
    var a3 = vec4<f32>(0.0);
    for (var m = 0u; m < params.inner; m++) {
        let row = m * params.d_head;
        let wm = vec4<f32>(w[wc.x + row], w[wc.y + row], w[wc.z + row], w[wc.w + row]);
        a0 += x[xr.x + m] * wm;
        a1 += x[xr.y + m] * wm;
        a2 += x[xr.z + m] * wm;
        a3 += x[xr.w + m] * wm;
    }
    store(r0, c0, a0);
    store(r0 + 1u, c0, a1);
    store(r0 + 2u, c0, a2);
    store(r0 + 3u, c0, a3);
}
