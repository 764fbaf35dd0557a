// Masked row softmax in place over the pattern buffer [B, H, Sq, Sk], which holds the scores.
//
// One invocation owns one row, in two kernels, each dispatched once per segment of keys
// [j_begin, j_end) (see below):
//   softmax_stats     walks the keys the row sees with an online maximum m and sum l of
//                     exp(x - m), kept in `stats` between segments; one exp per key:
//                     e = exp(-|x - m|), then l = l e + 1 if x is the new maximum, else l + e;
//   softmax_normalize writes exp(x - m) / l for the keys the row sees and 0 for the keys the
//                     causal mask hides.
// Shifting by the row maximum keeps logits of any magnitude exact and makes the largest term
// exactly 1, so l >= 1. A row that sees no key becomes all zeros. The mask is recomputed from the
// indices rather than read from the -inf entries, and the running maximum starts at a finite
// -3e38. Non-finite scores follow numpy: a NaN or +inf score makes l NaN (numpy's sum holds NaN
// or inf - inf), and a NaN row is NaN everywhere, its hidden keys included (numpy's 0 / NaN).
// Rows are independent: no workgroup memory, no barrier, 64 rows a workgroup.
//
// Why segments: lavapipe and llvmpipe stop a shader invocation after 65535 loop iterations in
// total, silently; the host keeps every dispatch's walk well below that, so rows of any length
// work there too.

@group(0) @binding(1) var<storage, read_write> pattern: array<f32>;
@group(0) @binding(2) var<storage, read_write> stats: array<f32>;   // per row: m, l

@compute @workgroup_size(64)
fn softmax_stats(@builtin(workgroup_id) wg: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) li: u32) {
    let g = grid_index(wg, nwg, li, WG);
    if (g >= params.count) {
        return;
    }
    let row = g * params.sk;
    let end = min(visible(g % params.sq), params.j_end);
    var m = LOWEST;
    var l = 0.0;
    if (params.j_begin > 0u) {
        m = stats[2u * g];
        l = stats[2u * g + 1u];
    }
    for (var j = params.j_begin; j < end; j++) {
        let x = pattern[row + j];
        let e = exp(-abs(x - m));
        l = select(l + e, l * e + 1.0, x > m);
        // NaN + -inf and inf + -inf are both NaN: the row's sum is poisoned as numpy's is.
        l = select(l, x + params.neg_inf, nan_or_pos_inf(x));
        m = max(m, x);
    }
    stats[2u * g] = m;
    stats[2u * g + 1u] = l;
}

@compute @workgroup_size(64)
fn softmax_normalize(@builtin(workgroup_id) wg: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) li: u32) {
    let g = grid_index(wg, nwg, li, WG);
    if (g >= params.count) {
        return;
    }
    let row = g * params.sk;
    let seen = visible(g % params.sq);
    let end = min(params.j_end, params.sk);
    let m = stats[2u * g];
    let l = stats[2u * g + 1u];
    // l >= 1 wherever a key is seen and 0 where none is (or every seen score is -inf); NaN for a
    // row with a NaN or +inf score, which 1 / l keeps.
    let inv = select(1.0 / l, 1.0, l < 1.0);
    let hidden = select(0.0, l, is_nan(l));   // numpy's exp(-inf) / sum: 0, or NaN in a NaN row
    for (var j = params.j_begin; j < min(end, seen); j++) {
        pattern[row + j] = exp(pattern[row + j] - m) * inv;
    }
    for (var j = max(params.j_begin, seen); j < end; j++) {
        pattern[row + j] = hidden;
    }
}
