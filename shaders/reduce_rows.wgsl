// Workgroup reductions over one row for the row kernels' wide path (softmax, layer norm), where a
// workgroup of WIDE_WG invocations owns a row: each invocation reduces its own elements (t,
// t + WIDE_WG, ...) to a partial, and these helpers combine the partials and hand the result to
// every invocation. Prepended by src/gpu/shaders.rs.
//
// Workgroup sizes are override constants that the host picks per adapter (see the Rust ops):
// WIDE_WG invocations per row (a power of two, at most MAX_WIDE_WG), whose partials reduce in two
// levels: WIDE_WG / GROUP invocations each combine GROUP partials, then one combines those, and a
// broadcast (256 -> 16 -> 1 -> all): three barriers. The order is fixed, so the same inputs give
// the same bits every run. Every invocation of the workgroup must call a helper, in uniform
// control flow (a row past the end returns before, for the whole workgroup at once).
//
// A partial is a vec4<f32> whose meaning is the kernel's: the kernel defines
//     fn combine(a: vec4<f32>, b: vec4<f32>) -> vec4<f32>
// (softmax: (max, sum of exp) pairs; layer norm: Chan's merge of (count, mean, M2)).

override WIDE_WG: u32 = 256u;
override GROUP: u32 = 16u;
const MAX_WIDE_WG: u32 = 256u;
const MAX_GROUPS: u32 = 64u;

var<workgroup> partial: array<vec4<f32>, MAX_WIDE_WG>;
var<workgroup> middle: array<vec4<f32>, MAX_GROUPS>;
var<workgroup> total: vec4<f32>;

// Every invocation's `value` combined with the kernel's combine(), in two levels, returned to all.
fn reduce_row(li: u32, value: vec4<f32>) -> vec4<f32> {
    partial[li] = value;
    workgroupBarrier();
    let groups = WIDE_WG / GROUP;
    if (li < groups) {
        var acc = partial[li * GROUP];
        for (var j = 1u; j < GROUP; j++) {
            acc = combine(acc, partial[li * GROUP + j]);
        }
        middle[li] = acc;
    }
    workgroupBarrier();
    if (li == 0u) {
        var acc = middle[0];
        for (var j = 1u; j < groups; j++) {
            acc = combine(acc, middle[j]);
        }
        total = acc;
    }
    workgroupBarrier();
    return total;
}

// The largest of every invocation's `value`, a magnitude (>= 0; 0 if all are), in one level
// (invocation 0 reads them all), returned to all.
fn reduce_row_amax(li: u32, value: f32) -> f32 {
    partial[li] = vec4<f32>(value, 0.0, 0.0, 0.0);
    workgroupBarrier();
    if (li == 0u) {
        var m = 0.0;
        for (var j = 0u; j < WIDE_WG; j++) {
            m = max(m, partial[j].x);
        }
        total = vec4<f32>(m, 0.0, 0.0, 0.0);
    }
    workgroupBarrier();
    return total.x;
}

