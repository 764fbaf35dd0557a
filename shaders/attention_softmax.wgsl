// Masked row softmax in place over the pattern buffer [B, H, Sq, Sk], which holds the scores.
//
// One invocation owns one row and walks it three times: the maximum over the keys the row sees,
// the sum of exp(x - max), then the normalised values (exp(x - max) / sum), writing zeros for the
// keys the causal mask hides. Shifting by the row maximum keeps logits of any magnitude exact and
// makes the largest term exactly 1, so the sum is >= 1. A row that sees no key becomes all zeros.
// The mask is recomputed from the indices rather than read from the -inf entries, so no
// arithmetic touches an infinity. Rows are independent, so there is no workgroup memory and no
// barrier, and rows of any length work; 64 rows a workgroup.

@group(0) @binding(1) var<storage, read_write> pattern: array<f32>;

@compute @workgroup_size(64)
fn softmax_rows(@builtin(workgroup_id) wg: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) li: u32) {
    let g = invocation(wg, nwg, li);
    if (g >= params.count) {
        return;
    }
    let row = g * params.sk;
    let seen = visible(g % params.sq);
    var top = select(0.0, pattern[row], seen > 0u);
    for (var j = 1u; j < seen; j++) {
        top = max(top, pattern[row + j]);
    }
    var sum = 0.0;
    for (var j = 0u; j < seen; j++) {
        sum += exp(pattern[row + j] - top);
    }
    let inv = 1.0 / sum;
    for (var j = 0u; j < seen; j++) {
        pattern[row + j] = exp(pattern[row + j] - top) * inv;
    }
    for (var j = seen; j < params.sk; j++) {
        pattern[row + j] = 0.0;
    }
}
