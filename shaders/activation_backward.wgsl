// Backward of the MLP activations, elementwise: dx = dy * f'(x), one invocation per element,
// 256 per workgroup. The float64 twins are in src/reference/backward/activation.rs.
//
//   gelu_tanh'(x) = 0.5 (1 + t) + 0.5 x sech^2(u) sqrt(2/pi) (1 + 3 * 0.044715 x^2),
//     u = sqrt(2/pi) (x + 0.044715 x^3), t = tanh(u) computed from e = exp(-2|u|) (no overflow),
//     sech^2 = 4e / (1 + e)^2; the second term is 0 where sech^2 is 0 (so x^2 never meets 0*inf).
//   gelu_erf'(x) = Phi(x) + x phi(x), Phi through erfc (as the forward), x phi(x) 0 where phi is.
//   relu'(x) = 1 for x > 0, else 0.
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
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

const WG: u32 = 256u;

fn erfc_approx(z: f32) -> f32 {
    let a = abs(z);
    let t = 1.0 / (1.0 + 0.5 * a);
    let poly = -a * a - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
        t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
        t * (-0.82215223 + t * 0.17087277))))))));
    let r = t * exp(poly);
    return select(r, 2.0 - r, z < 0.0);
}

fn gelu_tanh_grad(v: f32) -> f32 {
    let c = 0.7978845608028654;
    let u = c * (v + 0.044715 * v * v * v);
    let e = exp(-2.0 * abs(u));
    let t = sign(u) * (1.0 - e) / (1.0 + e);
    let sech2 = 4.0 * e / ((1.0 + e) * (1.0 + e));
    let tail = select(0.5 * v * sech2 * c * (1.0 + 3.0 * 0.044715 * v * v), 0.0, sech2 == 0.0);
    return 0.5 * (1.0 + t) + tail;
}

fn gelu_erf_grad(v: f32) -> f32 {
    let cdf = 0.5 * erfc_approx(-v * 0.7071067811865476);
    let pdf = exp(-0.5 * v * v) * 0.3989422804014327;
    return cdf + select(v * pdf, 0.0, pdf == 0.0);
}


@compute @workgroup_size(256)
fn gelu_tanh_backward(@builtin(workgroup_id) wg: vec3<u32>,
                      @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) li: u32) {
    let i = grid_index(wg, nwg, li, WG);
    if (i < params.n) {
        dx[i] = dy[i] * gelu_tanh_grad(x[i]);
    }
}

@compute @workgroup_size(256)
fn gelu_erf_backward(@builtin(workgroup_id) wg: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) li: u32) {
    let i = grid_index(wg, nwg, li, WG);
    if (i < params.n) {
        dx[i] = dy[i] * gelu_erf_grad(x[i]);
    }
}

@compute @workgroup_size(256)
fn relu_backward(@builtin(workgroup_id) wg: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) li: u32) {
    let i = grid_index(wg, nwg, li, WG);
    if (i < params.n) {
        dx[i] = select(0.0, dy[i], x[i] > 0.0);
    }
}
