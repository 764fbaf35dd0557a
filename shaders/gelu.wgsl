// GELU activations, elementwise: one invocation per element, 256 per workgroup.
//
// Both forms are written so that no intermediate overflows for |x| up to float32's range:
//   gelu_tanh(x) = 0.5 x (1 + tanh(u)) = x * sigmoid(2u) = x / (1 + exp(-2u)),
//     u = sqrt(2/pi) (x + 0.044715 x^3); exp(-2u) may reach +inf, and x / inf = 0 (no NaN);
//     the built-in tanh is avoided because some drivers compute it as a ratio of exponentials
//     that overflows to inf/inf.
//   gelu_erf(x) = x * Phi(x), Phi(x) = 0.5 erfc(-x / sqrt 2); erfc is computed directly (not as
//     1 - erf) so that the far negative tail keeps its relative accuracy.
//
// The workgroup grid is 2-D (x up to 65535 wide); the linear index is wg.y * num_wg.x + wg.x.

struct Params {
    n: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

const WG: u32 = 256u;

// erfc(z) for any z, relative error about 1.2e-7 in exact arithmetic (Chebyshev fit of
// Numerical Recipes' erfcc); erfc(-z) = 2 - erfc(z).
fn erfc_approx(z: f32) -> f32 {
    let a = abs(z);
    let t = 1.0 / (1.0 + 0.5 * a);
    let poly = -a * a - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
        t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
        t * (-0.82215223 + t * 0.17087277))))))));
    let r = t * exp(poly);
    return select(r, 2.0 - r, z < 0.0);
}

@compute @workgroup_size(256)
fn gelu_tanh(@builtin(workgroup_id) wg: vec3<u32>,
             @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) li: u32) {
    let i = grid_index(wg, nwg, li, WG);
    if (i >= params.n) {
        return;
    }
    let v = x[i];
    let u = 0.7978845608028654 * (v + 0.044715 * v * v * v);
    out[i] = v / (1.0 + exp(-2.0 * u));
}

@compute @workgroup_size(256)
fn gelu_erf(@builtin(workgroup_id) wg: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) li: u32) {
    let i = grid_index(wg, nwg, li, WG);
    if (i >= params.n) {
        return;
    }
    let v = x[i];
    out[i] = v * 0.5 * erfc_approx(-v * 0.7071067811865476);
}
