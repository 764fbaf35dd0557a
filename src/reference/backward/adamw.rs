//! SPEC's `adamw` op in float64: update number `t` of `torch.optim.AdamW`, and global-norm
//! gradient clipping as `torch.nn.utils.clip_grad_norm_`.
//!
//! The update, in PyTorch's own order (`torch/optim/adamw.py`, single-tensor path):
//! `p ← p (1 − lr·wd)`; `m ← m + (g − m)(1 − β1)`; `v ← β2 v + (1 − β2) g²`;
//! `p ← p − (lr / (1 − β1^t)) · m / (sqrt(v) / sqrt(1 − β2^t) + eps)`, which is SPEC's formula.
//! Clipping: `total = ‖(‖g_i‖)_i‖₂`, every gradient times `min(1, max_norm / (total + 1e-6))`.

use ndarray::{ArrayD, ArrayViewD, Zip};

pub use crate::spec::adamw::{check_shapes, AdamW, StepScalars};

use crate::error::{Error, Result};

/// The state after one AdamW update.
#[derive(Clone, Debug)]
pub struct AdamWState {
    /// The parameter.
    pub param: ArrayD<f64>,
    /// The first moment.
    pub m: ArrayD<f64>,
    /// The second moment.
    pub v: ArrayD<f64>,
}

/// AdamW's update number `step` (t ≥ 1) of `param` with `grad`, from moments `m` and `v`.
pub fn adamw(
    param: ArrayViewD<'_, f64>,
    grad: ArrayViewD<'_, f64>,
    m: ArrayViewD<'_, f64>,
    v: ArrayViewD<'_, f64>,
    step: i64,
    hp: &AdamW,
) -> Result<AdamWState> {
    let k = hp.step_scalars(step)?;
    check_shapes(param.shape(), grad.shape(), m.shape(), v.shape())?;
    let mut state = AdamWState { param: param.to_owned(), m: m.to_owned(), v: v.to_owned() };
    Zip::from(&mut state.param).and(&mut state.m).and(&mut state.v).and(&grad).for_each(|p, m, v, &g| {
        *p *= k.decay;
        *m += (g - *m) * (1.0 - hp.beta1);
        *v = *v * hp.beta2 + (1.0 - hp.beta2) * g * g;
        let denom = v.sqrt() / k.bias2_sqrt + hp.eps;
        *p -= k.step_size * *m / denom;
    });
    Ok(state)
}

/// Scales `grads` in place as `clip_grad_norm_(max_norm)` does and returns their global L2 norm
/// before clipping.
pub fn clip_grad_norm(grads: &mut [&mut ArrayD<f64>], max_norm: f64) -> Result<f64> {
    if !(max_norm.is_finite() && max_norm > 0.0) {
        return Err(Error::Input(format!("max_grad_norm is {max_norm} but must be a finite number > 0")));
    }
    let total = grads.iter().map(|g| g.iter().map(|x| x * x).sum::<f64>()).sum::<f64>().sqrt();
    let coef = (max_norm / (total + 1e-6)).min(1.0);
    for g in grads.iter_mut() {
        g.mapv_inplace(|x| x * coef);
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::arr1;

    #[test]
    fn first_step_moves_by_lr_against_the_gradient_sign() {
        // t = 1, no decay: m̂ = g, v̂ = g², so the step is lr g / (|g| + eps) ≈ lr sign(g).
        let hp = AdamW { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 0.0, weight_decay: 0.0 };
        let p = arr1(&[1.0, 1.0]).into_dyn();
        let g = arr1(&[3.0, -0.5]).into_dyn();
        let z = arr1(&[0.0, 0.0]).into_dyn();
        let s = adamw(p.view(), g.view(), z.view(), z.view(), 1, &hp).unwrap();
        assert!((s.param[0] - 0.9).abs() < 1e-15 && (s.param[1] - 1.1).abs() < 1e-15, "{:?}", s.param);
        let e = adamw(p.view(), g.view(), z.view(), z.view(), 0, &hp).unwrap_err().to_string();
        assert!(e.contains("step is 0"), "{e}");
        let bad = AdamW { beta2: 1.0, ..hp };
        assert!(adamw(p.view(), g.view(), z.view(), z.view(), 1, &bad).unwrap_err().to_string().contains("beta2"));
    }

    #[test]
    fn clipping_scales_only_above_the_norm() {
        let mut a = arr1(&[3.0]).into_dyn();
        let mut b = arr1(&[4.0]).into_dyn();
        let norm = clip_grad_norm(&mut [&mut a, &mut b], 1.0).unwrap();
        assert_eq!(norm, 5.0);
        assert!((a[0] - 3.0 / (5.0 + 1e-6)).abs() < 1e-15);
        let norm = clip_grad_norm(&mut [&mut a, &mut b], 10.0).unwrap();
        assert!((norm - 5.0 / (5.0 + 1e-6)).abs() < 1e-12 && a[0] == 3.0 / (5.0 + 1e-6));
    }
}
