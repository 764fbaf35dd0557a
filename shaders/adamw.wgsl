// AdamW (torch.optim.AdamW's single-tensor update, SPEC's `adamw`), elementwise over one flat
// buffer: the parameter, its first and second moments are updated in place, the gradient is
// read. One invocation per element, 256 per workgroup, on a 2-D grid of workgroups (linear index
// wg.y * num_wg.x + wg.x), so that a trainer can lay every parameter of a model end to end and
// update them all with one dispatch.
//
// The step's scalars are folded on the host in float64 (PyTorch computes them in Python floats):
//   decay = 1 - lr * weight_decay, step_size = lr / (1 - beta1^t), bias2_sqrt = sqrt(1 - beta2^t).
// The order of operations is PyTorch's:
//   p <- p * decay;  m <- m + (g - m) * (1 - beta1);  v <- v * beta2 + (1 - beta2) * g * g;
//   p <- p - step_size * m / (sqrt(v) / bias2_sqrt + eps).

struct Params {
    n: u32,
    decay: f32,
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    step_size: f32,
    bias2_sqrt: f32,
    eps: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> param: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;

const WG: u32 = 256u;

@compute @workgroup_size(256)
fn adamw(@builtin(workgroup_id) wg: vec3<u32>,
         @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
    let i = grid_index(wg, nwg, lid, WG);
    if (i >= params.n) {
        return;
    }
    let g = grad[i];
    let p = param[i] * params.decay;
    let m1 = m[i] + (g - m[i]) * params.one_minus_beta1;
    let v1 = v[i] * params.beta2 + params.one_minus_beta2 * g * g;
    m[i] = m1;
    v[i] = v1;
    param[i] = p - params.step_size * m1 / (sqrt(v1) / params.bias2_sqrt + params.eps);
}
