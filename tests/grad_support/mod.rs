//! Helpers shared by the gradient and training tests: a seeded generator, random tiny models, and
//! where the fixtures live.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use ndarray::{ArrayD, IxDyn};
use shaderlens::transformer::{Config, Weights};

/// A splitmix64 generator: deterministic data without a dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u = self.uniform().max(1e-300);
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * self.uniform()).cos()
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn array(&mut self, shape: &[usize], scale: f64) -> ArrayD<f64> {
        ArrayD::from_shape_fn(IxDyn(shape), |_| scale * self.normal())
    }
}

/// A SPEC config from its fields.
pub fn config(norm: &str, act: &str, attn_only: bool, n_layers: usize, d_vocab: usize, d_vocab_out: usize) -> Config {
    let norm = if norm == "null" { "null".to_string() } else { format!("\"{norm}\"") };
    let d_mlp = if attn_only { "null" } else { "12" };
    Config::from_json(&format!(
        r#"{{"n_layers": {n_layers}, "d_model": 8, "n_heads": 2, "d_head": 4, "d_mlp": {d_mlp}, "d_vocab": {d_vocab},
            "d_vocab_out": {d_vocab_out}, "n_ctx": 5, "act_fn": "{act}", "normalization_type": {norm},
            "attn_only": {attn_only}, "eps": 1e-5, "positional_embedding_type": "standard"}}"#
    ))
    .unwrap()
}

/// Random float64 weights of `config`: matrices normal / sqrt(fan in), biases 0.1 normal, layer
/// norm weights 1 + 0.1 normal, W_E normal, W_pos 0.5 normal.
pub fn random_weights(config: &Config, rng: &mut Rng) -> Weights<ArrayD<f64>> {
    Weights::build(config, |name, shape| {
        let leaf = name.rsplit('.').next().unwrap();
        Ok(match leaf {
            "W_E" => rng.array(shape, 1.0),
            "W_pos" => rng.array(shape, 0.5),
            "w" => rng.array(shape, 0.1).mapv(|v| v + 1.0),
            "W_O" => rng.array(shape, 1.0 / ((shape[0] * shape[1]) as f64).sqrt()),
            l if l.starts_with("W_") => rng.array(shape, 1.0 / (shape[shape.len() - 2] as f64).sqrt()),
            _ => rng.array(shape, 0.1),
        })
    })
    .unwrap()
}

/// The JSON beside an npz.
pub fn json_of(npz: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(npz.with_extension("json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Every npz of a fixture folder, sorted: `adamw`, `train`, `transformer_grad` are fixtures/<op>;
/// `transformer_grad_bad`, `fail/<op>` and `error/<op>` the adversarial cases in
/// tests/data/verify_bad/<op> (FAIL and ERROR cases share the folder; callers pick by name).
pub fn npz_files(folder: &str) -> Vec<PathBuf> {
    let (base, folder) = match folder {
        "adamw" | "transformer_grad" | "train" => ("fixtures", folder),
        "transformer_grad_bad" => ("tests/data/verify_bad", "transformer_grad"),
        "fail/adamw" | "error/adamw" => ("tests/data/verify_bad", "adamw"),
        "fail/train" | "error/train" => ("tests/data/verify_bad", "train"),
        other => panic!("no fixture folder {other}"),
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(base).join(folder);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "npz"))
        .collect();
    files.sort();
    files
}
