//! The GPU trainer's optimizer step over all of a real model's parameters (flat arenas, the
//! gradient norm reduced on the GPU, the clip factor applied there, one AdamW dispatch) against
//! the float64 reference: `clip_grad_norm` then `adamw` per parameter, with and without the
//! weight-decay exemption for biases and layer norms, over two updates.

mod common;

use ndarray::ArrayD;
use shaderlens::reference::backward::adamw::{adamw, clip_grad_norm, AdamW};
use shaderlens::train::config::Optimizer;
use shaderlens::train::decays;
use shaderlens::train::gpu_optimizer::GpuOptimizer;
use shaderlens::train::init::init_weights;
use shaderlens::transformer::weights::Weights;
use shaderlens::transformer::Config;
use shaderlens::GpuTensor;

fn config() -> Config {
    Config::from_json(
        r#"{"n_layers": 2, "d_model": 16, "n_heads": 2, "d_head": 8, "d_mlp": 32, "d_vocab": 8, "d_vocab_out": 7,
            "n_ctx": 3, "act_fn": "relu", "normalization_type": "LN", "attn_only": false, "eps": 1e-5,
            "positional_embedding_type": "standard"}"#,
    )
    .unwrap()
}

/// Random float32 gradients for every parameter, seeded per update.
fn gradients(config: &Config, seed: u64, scale: f32) -> Weights<ArrayD<f64>> {
    let mut k = 0;
    Weights::build(config, |_, shape| {
        k += 1;
        let n = shape.iter().product();
        let data = common::normals(seed * 100 + k, n).into_iter().map(|x| (x * scale) as f64).collect();
        Ok(ArrayD::from_shape_vec(shape, data).unwrap())
    })
    .unwrap()
}

/// A parameter's name, value and moments as the reference updates them.
type Tracked = (String, ArrayD<f64>, ArrayD<f64>, ArrayD<f64>);

fn check(optimizer: Optimizer, scale: f32) {
    let gpu = common::gpu();
    let config = config();
    let initial = init_weights(&config, 0.2, 3).unwrap();
    let upload = |w: &Weights<ArrayD<f64>>| w.try_map(&config, |n, a| GpuTensor::upload(&gpu, a.mapv(|x| x as f32).view(), n)).unwrap();
    let model = upload(&initial);
    let opt = GpuOptimizer::new(&gpu, &config, optimizer, &model).unwrap();
    let mut params: Vec<Tracked> =
        initial.named().into_iter().map(|(n, a)| (n, a.clone(), ArrayD::zeros(a.raw_dim()), ArrayD::zeros(a.raw_dim()))).collect();
    for (t, lr) in [(1u64, 1e-2), (2, 5e-3)] {
        let grads = gradients(&config, t, scale);
        opt.step(&gpu, &upload(&grads), &model, t, lr).unwrap();
        let mut g: Vec<ArrayD<f64>> = grads.named().into_iter().map(|(_, a)| a.clone()).collect();
        let norm = match optimizer.max_grad_norm {
            Some(max) => clip_grad_norm(&mut g.iter_mut().collect::<Vec<_>>(), max).unwrap(),
            None => g.iter().map(|a| a.iter().map(|x| x * x).sum::<f64>()).sum::<f64>().sqrt(),
        };
        let got_norm = opt.grad_norm(&gpu).unwrap();
        assert!((got_norm - norm).abs() <= 1e-5 * norm, "update {t}: norm {got_norm} vs {norm}");
        for ((name, p, m, v), g) in params.iter_mut().zip(&g) {
            let wd = if decays(name, optimizer.decay_biases_and_norms) { optimizer.adamw.weight_decay } else { 0.0 };
            let hp = AdamW { lr, weight_decay: wd, ..optimizer.adamw };
            let s = adamw(p.view(), g.view(), m.view(), v.view(), t as i64, &hp).unwrap();
            (*p, *m, *v) = (s.param, s.m, s.v);
        }
    }
    let state = opt.state(&gpu).unwrap();
    let from_model: Vec<ArrayD<f32>> = model.named().iter().map(|(_, t)| t.read(&gpu).unwrap()).collect();
    for (i, (name, p, m, v)) in params.iter().enumerate() {
        let find = |w: &Weights<ArrayD<f64>>| w.named().into_iter().find(|(n, _)| n == name).unwrap().1.mapv(|x| x as f32);
        common::assert_close(&find(&state.params), p, 1e-6, 1e-5, &format!("param {name}"));
        common::assert_close(&find(&state.m), m, 1e-6, 1e-5, &format!("m {name}"));
        common::assert_close(&find(&state.v), v, 1e-6, 1e-5, &format!("v {name}"));
        common::assert_close(&from_model[i], p, 1e-6, 1e-5, &format!("model tensor {name}"));
    }
}

#[test]
fn clipped_step_with_exempt_biases_and_norms_matches_the_reference() {
    let hp = AdamW { lr: 1e-2, beta1: 0.9, beta2: 0.98, eps: 1e-8, weight_decay: 1.0 };
    // The gradients' norm is about 70 · scale (4,800 parameters): 0.5 clips both updates, and m, v see the factor.
    check(Optimizer { adamw: hp, decay_biases_and_norms: false, max_grad_norm: Some(0.5), grokfast: None }, 0.1);
}

#[test]
fn unclipped_step_decaying_everything_matches_the_reference() {
    let hp = AdamW { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.1 };
    check(Optimizer { adamw: hp, decay_biases_and_norms: true, max_grad_norm: None, grokfast: None }, 1.0);
}

#[test]
fn exemption_flags_biases_and_norms_only() {
    for (name, exempt) in [("blocks.0.attn.b_Q", true), ("blocks.1.ln2.w", true), ("ln_final.b", true), ("unembed.b_U", true), ("embed.W_E", false), ("blocks.0.mlp.W_in", false)] {
        assert_eq!(decays(name, false), !exempt, "{name}");
        assert!(decays(name, true), "{name} decays by default");
    }
}
