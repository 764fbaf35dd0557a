// The 4 x 8 block of dot products every attention kernel walks (prepended by src/gpu/shaders.rs
// to attention_scores, attention_fused and the fused backward's dq and dk/dv kernels, which all
// declare q and k as vec4 arrays). An invocation owns 4 rows (queries, or keys in the dk/dv
// kernel) and takes 8 columns at a time, walking the shared dimension in vec4 steps: 4 + 8 vec4
// loads per step for 128 multiply-adds, with no workgroup memory and no barriers (barriers are
// very slow on CPU adapters such as lavapipe, and there a load costs far more than arithmetic).
// Every sum runs in one fixed order (the order each kernel had when it wrote this out itself).

// Row r's dot products with the low (l: columns 0..3) and high (h: 4..7) half of the 8 columns.
struct Block {
    r0l: vec4<f32>,
    r0h: vec4<f32>,
    r1l: vec4<f32>,
    r1h: vec4<f32>,
    r2l: vec4<f32>,
    r2h: vec4<f32>,
    r3l: vec4<f32>,
    r3h: vec4<f32>,
}

// One vector's dot products with 4 others.
fn dots(x: vec4<f32>, a: vec4<f32>, b: vec4<f32>, c: vec4<f32>, d: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(dot(x, a), dot(x, b), dot(x, c), dot(x, d));
}

// The block after one vec4 step: x0..x3 the 4 rows' vec4s, y0..y7 the 8 columns'.
fn block_step(s: Block, x0: vec4<f32>, x1: vec4<f32>, x2: vec4<f32>, x3: vec4<f32>,
              y0: vec4<f32>, y1: vec4<f32>, y2: vec4<f32>, y3: vec4<f32>,
              y4: vec4<f32>, y5: vec4<f32>, y6: vec4<f32>, y7: vec4<f32>) -> Block {
    return Block(s.r0l + dots(x0, y0, y1, y2, y3), s.r0h + dots(x0, y4, y5, y6, y7),
                 s.r1l + dots(x1, y0, y1, y2, y3), s.r1h + dots(x1, y4, y5, y6, y7),
                 s.r2l + dots(x2, y0, y1, y2, y3), s.r2h + dots(x2, y4, y5, y6, y7),
                 s.r3l + dots(x3, y0, y1, y2, y3), s.r3h + dots(x3, y4, y5, y6, y7));
}

// The raw (unscaled, unmasked) scores of 4 queries against 8 keys: q rows start at qr (vec4
// offsets), k rows at kl (keys 0..3) and kh (keys 4..7); rows past the end are the caller's to
// clamp.
fn qk_block(qr: vec4<u32>, kl: vec4<u32>, kh: vec4<u32>) -> Block {
    var s = Block();
    for (var d = 0u; d < params.d4; d++) {
        s = block_step(s, q[qr.x + d], q[qr.y + d], q[qr.z + d], q[qr.w + d],
                       k[kl.x + d], k[kl.y + d], k[kl.z + d], k[kl.w + d],
                       k[kh.x + d], k[kh.y + d], k[kh.z + d], k[kh.w + d]);
    }
    return s;
}

