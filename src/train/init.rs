//! A fresh model's weights as TransformerLens 3.9's `init_weights` makes them for `init_mode`
//! `"gpt2"` (`HookedTransformer._init_weights_gpt2`): every parameter whose name contains `W_`
//! (the embeddings, `W_Q`/`W_K`/`W_V`/`W_O`, `W_in`/`W_out`, `W_U`) is drawn from
//! `normal(0, initializer_range)`, and the rest keep their construction values: layer-norm
//! weights 1, every bias 0. TransformerLens's default `initializer_range` is
//! `0.8 / sqrt(d_model)` (see [`super::config`]).
//!
//! The numbers come from shaderlens's own seeded PCG64 streams, one per parameter (its index in
//! state-dict order, [`crate::games::dataset::game_rng`]), through the Box–Muller transform, so
//! they are the same on every platform but not torch's numbers. Each value is rounded to float32
//! (what the GPU holds) and kept as float64, so that both backends start from the same model.

use ndarray::ArrayD;
use rand::Rng;

use crate::error::{Error, Result};
use crate::games::dataset::game_rng;
use crate::model::weights::{weight_shapes, Weights};
use crate::transformer::Config;

/// Salt that separates the initial weights' streams from the data's (the data uses
/// `game_rng(seed, epoch)` and `game_rng(seed, u64::MAX)`).
const INIT_SALT: u64 = 0x1417_0000_0000_0000;

/// The initial weights of `config` for `seed`, as TransformerLens's gpt2 init lays them out.
pub fn init_weights(config: &Config, initializer_range: f64, seed: u64) -> Result<Weights<ArrayD<f64>>> {
    if !(initializer_range.is_finite() && initializer_range > 0.0) {
        return Err(Error::Input(format!("initializer_range is {initializer_range} but must be a finite number > 0")));
    }
    let order: Vec<String> = weight_shapes(config).into_iter().map(|(n, _)| n).collect();
    Weights::build(config, |name, shape| {
        let index = order.iter().position(|n| n == name).unwrap_or(0) as u64;
        Ok(init_one(name, shape, initializer_range, seed, index))
    })
}

/// Whether TransformerLens's gpt2 init draws parameter `name` from the normal distribution.
pub fn is_matrix(name: &str) -> bool {
    name.contains("W_")
}

fn init_one(name: &str, shape: &[usize], std: f64, seed: u64, index: u64) -> ArrayD<f64> {
    if is_matrix(name) {
        let mut rng = game_rng(seed, INIT_SALT + index);
        let mut normal = Normal::default();
        return ArrayD::from_shape_simple_fn(shape, || (normal.sample(&mut rng) * std) as f32 as f64);
    }
    // Layer-norm weights (`ln*.w`) are 1; biases (`b_*`, `ln*.b`) are 0.
    let one = name.rsplit('.').next() == Some("w");
    ArrayD::from_elem(shape, if one { 1.0 } else { 0.0 })
}

/// Standard normal numbers by the Box–Muller transform, two per pair of uniforms.
#[derive(Default)]
struct Normal {
    spare: Option<f64>,
}

impl Normal {
    fn sample(&mut self, rng: &mut impl Rng) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        // u1 in (0, 1] so that ln(u1) is finite; 53 random bits each.
        let u1 = ((rng.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64;
        let u2 = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let r = (-2.0 * u1.ln()).sqrt();
        let angle = 2.0 * std::f64::consts::PI * u2;
        self.spare = Some(r * angle.sin());
        r * angle.cos()
    }
}
