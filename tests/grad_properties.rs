//! Property tests of the op backward references over awkward shapes (every dimension from 1 up,
//! lengths that are not multiples of anything): each against central finite differences of its
//! forward. These are the shapes the GPU backward kernels will be checked on against the same
//! references.

mod grad_support;

use grad_support::Rng;
use ndarray::{ArrayD, IxDyn, Zip};
use proptest::prelude::*;
use shaderlens::reference::backward::gradcheck::{gradcheck, STEP};
use shaderlens::reference::backward::{attention, layer_norm, linear, loss, softmax};
use shaderlens::Result;

fn project(y: &ArrayD<f64>, r: &ArrayD<f64>) -> f64 {
    Zip::from(y).and(r).fold(0.0, |acc, &a, &b| acc + a * b)
}

fn check(what: &str, f: impl FnMut(&ArrayD<f64>) -> Result<f64>, x: &ArrayD<f64>, g: &ArrayD<f64>) -> std::result::Result<(), TestCaseError> {
    let report = gradcheck(f, x, g, STEP).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert!(report.passed(), "{}: {}", what, report);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn linear_any_shape(rows in 1usize..6, n in 1usize..7, m in 1usize..7, seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let (x, w, r) = (rng.array(&[rows, n], 1.0), rng.array(&[n, m], 1.0), rng.array(&[rows, m], 1.0));
        let g = linear::linear_backward(x.view(), w.view(), r.view()).unwrap();
        let f = |x: &ArrayD<f64>, w: &ArrayD<f64>| Ok(project(&shaderlens::reference::matmul::matmul(x.view(), w.view())?, &r));
        check("dx", |x| f(x, &w), &x, &g.dx)?;
        check("dW", |w| f(&x, w), &w, &g.dw)?;
        prop_assert_eq!(g.db, r.sum_axis(ndarray::Axis(0)));
    }

    #[test]
    fn softmax_any_row(rows in 1usize..4, n in 1usize..9, spread in 0.1f64..20.0, seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let (x, r) = (rng.array(&[rows, n], spread), rng.array(&[rows, n], 1.0));
        let y = shaderlens::reference::softmax::softmax(x.view()).unwrap();
        let dx = softmax::softmax_backward(y.view(), r.view()).unwrap();
        check("softmax", |x| Ok(project(&shaderlens::reference::softmax::softmax(x.view())?, &r)), &x, &dx)?;
    }

    #[test]
    fn layer_norm_any_row(rows in 1usize..4, n in 2usize..11, offset in -50.0f64..50.0, affine in any::<bool>(), seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let x = rng.array(&[rows, n], 1.0).mapv(|v| v + offset);
        let (w, b, r) = (rng.array(&[n], 0.5).mapv(|v| v + 1.0), rng.array(&[n], 0.5), rng.array(&[rows, n], 1.0));
        let eps = 1e-5;
        let g = layer_norm::layer_norm_backward(x.view(), affine.then(|| w.view()), eps, r.view()).unwrap();
        let f = |x: &ArrayD<f64>| -> Result<f64> {
            let y = if affine {
                shaderlens::reference::layer_norm::layer_norm(x.view(), w.view(), b.view(), eps)?
            } else {
                shaderlens::reference::layer_norm::layer_norm_full(x.view(), None, eps)?.0
            };
            Ok(project(&y, &r))
        };
        check("layer norm dx", f, &x, &g.dx)?;
    }

    #[test]
    fn attention_any_shape(b in 1usize..3, h in 1usize..3, sq in 1usize..5, sk in 1usize..5, d in 1usize..4, dv in 1usize..4,
                           causal in any::<bool>(), seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let (q, k, v) = (rng.array(&[b, h, sq, d], 1.0), rng.array(&[b, h, sk, d], 1.0), rng.array(&[b, h, sk, dv], 1.0));
        let r = rng.array(&[b, h, sq, dv], 1.0);
        let scale = 1.0 / (d as f64).sqrt();
        let g = attention::attention_backward(q.view(), k.view(), v.view(), causal, scale, r.view()).unwrap();
        let f = |q: &ArrayD<f64>, k: &ArrayD<f64>, v: &ArrayD<f64>| -> Result<f64> {
            Ok(project(&shaderlens::reference::attention::attention(q.view(), k.view(), v.view(), causal, scale)?.0, &r))
        };
        check("dq", |q| f(q, &k, &v), &q, &g.dq)?;
        check("dk", |k| f(&q, k, &v), &k, &g.dk)?;
        check("dv", |v| f(&q, &k, v), &v, &g.dv)?;
        // The fused path's recomputation from row statistics gives the same gradients.
        let (out, _) = shaderlens::reference::attention::attention(q.view(), k.view(), v.view(), causal, scale).unwrap();
        let stats = attention::row_stats(q.view(), k.view(), causal, scale).unwrap();
        let (dq, dk, dv) = attention::flash_backward(q.view(), k.view(), v.view(), out.view(), r.view(), &stats, causal, scale).unwrap();
        for (name, fused, plain) in [("dq", &dq, &g.dq), ("dk", &dk, &g.dk), ("dv", &dv, &g.dv)] {
            let worst = Zip::from(fused).and(plain).fold(0.0f64, |m, &a, &b| m.max((a - b).abs() / (1e-12 + 1e-9 * b.abs())));
            prop_assert!(worst <= 1.0, "flash {}: {}", name, worst);
        }
    }

    #[test]
    fn cross_entropy_any_targets(rows in 1usize..6, vocab in 1usize..8, spread in 0.1f64..30.0, seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let logits = rng.array(&[rows, vocab], spread);
        let mut targets = ArrayD::from_shape_fn(IxDyn(&[rows]), |_| rng.below(vocab + 2) as i64 - 2);
        targets[[0]] = rng.below(vocab) as i64;
        let ce = loss::cross_entropy(logits.view(), targets.view()).unwrap();
        check("cross-entropy", |l| Ok(loss::cross_entropy(l.view(), targets.view())?.loss), &logits, &ce.grad)?;
    }
}
