//! Grokking's progress measures (`shaderlens::analysis::progress`) against numpy
//! (`scripts/make_progress_fixtures.py` → `tests/data/progress/`) and on constructed cases: a
//! logit table that is exactly one frequency keeps its whole loss when restricted to it and falls
//! to chance (ln p) when it is excluded.

use std::f64::consts::PI;
use std::path::Path;

use ndarray::{Array3, Ix2, Ix3};
use shaderlens::analysis::progress::{addition_loss, embedding_norms, fourier_basis, key_frequencies, key_part, measure, neuron_logit_norms};
use shaderlens::fixture::Fixture;

fn close(got: f64, want: f64, what: &str) {
    assert!((got - want).abs() <= 1e-9 * (1.0 + want.abs()), "{what}: {got} vs {want}");
}

#[test]
fn the_pieces_match_numpy() {
    for name in ["p7", "p11"] {
        let f = Fixture::open(Path::new(&format!("tests/data/progress/{name}.npz"))).unwrap();
        let w_e = f.expected("w_e").unwrap().into_dimensionality::<Ix2>().unwrap();
        let logits = f.expected("logits").unwrap().into_dimensionality::<Ix3>().unwrap();
        let p = logits.shape()[0];
        let basis = fourier_basis(p).unwrap();
        for (g, w) in basis.iter().zip(f.expected("basis").unwrap().iter()) {
            close(*g, *w, &format!("{name} basis"));
        }
        let norms = embedding_norms(w_e.view(), p).unwrap();
        let want = f.expected("embedding_norms").unwrap();
        assert_eq!(norms.len(), want.len());
        for (g, w) in norms.iter().zip(want.iter()) {
            close(*g, *w, &format!("{name} embedding norm"));
        }
        let keys: Vec<usize> = f.int_array("keys").unwrap().iter().map(|&k| k as usize).collect();
        let part = key_part(logits.view(), &keys).unwrap();
        for (g, w) in part.iter().zip(f.expected("key_part").unwrap().iter()) {
            close(*g, *w, &format!("{name} key part"));
        }
        let train: Vec<(usize, usize)> = f.int_array("train").unwrap().into_dimensionality::<Ix2>().unwrap().rows().into_iter().map(|r| (r[0] as usize, r[1] as usize)).collect();
        let all: Vec<(usize, usize)> = (0..p).flat_map(|a| (0..p).map(move |b| (a, b))).collect();
        close(addition_loss(part.view(), &all).unwrap(), f.scalar_f64("restricted_loss").unwrap(), &format!("{name} restricted loss"));
        close(addition_loss((&logits - &part).view(), &train).unwrap(), f.scalar_f64("excluded_loss").unwrap(), &format!("{name} excluded loss"));
    }
}

#[test]
fn a_one_frequency_table_keeps_its_loss_restricted_and_is_at_chance_excluded() {
    let (p, k) = (13usize, 5usize);
    let logits = Array3::from_shape_fn((p, p, p), |(a, b, c)| 4.0 * (2.0 * PI * (k * ((a + b + p - c) % p)) as f64 / p as f64).cos());
    let all: Vec<(usize, usize)> = (0..p).flat_map(|a| (0..p).map(move |b| (a, b))).collect();
    let full = addition_loss(logits.view(), &all).unwrap();
    assert!(full < 0.5 * (p as f64).ln(), "the table should be better than chance ({full})");
    let part = key_part(logits.view(), &[k]).unwrap();
    close(addition_loss(part.view(), &all).unwrap(), full, "restricted loss");
    close(addition_loss((&logits - &part).view(), &all[..40]).unwrap(), (p as f64).ln(), "excluded loss");
    // Another frequency holds none of it: restricted to it the table is at chance.
    let other = key_part(logits.view(), &[k - 1]).unwrap();
    close(addition_loss(other.view(), &all).unwrap(), (p as f64).ln(), "restricted to the wrong frequency");
}

#[test]
fn key_frequencies_are_the_largest_norms_without_the_constant() {
    let norms = [9.0, 1.0, 5.0, 0.5, 7.0, 2.0];
    assert_eq!(key_frequencies(&norms, 2).unwrap(), [2, 4]);
    assert_eq!(key_frequencies(&norms, 3).unwrap(), [2, 4, 5]);
    assert!(key_frequencies(&norms, 0).unwrap_err().to_string().contains("key frequencies"));
    assert!(key_frequencies(&norms, 6).unwrap_err().to_string().contains("key frequencies"));
    // A one-frequency embedding: that frequency has all the norm.
    let p = 11;
    let w_e = ndarray::Array2::from_shape_fn((p + 1, 3), |(x, j)| if x < p { (2.0 * PI * (3 * x) as f64 / p as f64 + j as f64).cos() } else { 7.0 });
    let n = embedding_norms(w_e.view(), p).unwrap();
    assert_eq!(key_frequencies(&n, 1).unwrap(), [3]);
    assert!(n.iter().enumerate().all(|(i, &x)| i == 3 || x < 1e-9), "{n:?}");
}

/// A synthetic MLP whose neurons write to the outputs only through cos and sin of frequency 4
/// (W_U's two directions) plus the constant: the neuron–logit map's key frequency is 4, and
/// every other frequency has no norm, whatever W_out mixes.
#[test]
fn neuron_logit_map_finds_the_known_key_frequency() {
    let (p, d_mlp) = (13, 6);
    let w_u = ndarray::Array2::from_shape_fn((3, p + 2), |(j, c)| {
        let t = 2.0 * PI * (4 * c) as f64 / p as f64;
        [t.cos(), t.sin(), 0.5][j]
    });
    let w_out = ndarray::Array2::from_shape_fn((d_mlp, 3), |(n, j)| ((n * 5 + j * 3) % 7) as f64 - 3.0);
    let norms = neuron_logit_norms(w_out.view(), w_u.view(), p).unwrap();
    assert_eq!(norms.len(), 7);
    assert_eq!(key_frequencies(&norms, 1).unwrap(), [4]);
    assert!(norms[4] > 1.0 && norms[0] > 1.0, "{norms:?}");
    assert!(norms.iter().enumerate().all(|(k, &x)| k == 0 || k == 4 || x < 1e-9), "{norms:?}");
    // Shapes that do not chain are refused by name.
    let err = neuron_logit_norms(w_out.view(), w_u.t(), p).unwrap_err().to_string();
    assert!(err.contains("W_out") && err.contains("W_U"), "{err}");
}

#[test]
fn bad_inputs_are_refused_by_name() {
    let bad = Array3::<f64>::zeros((3, 3, 4));
    assert!(key_part(bad.view(), &[1]).unwrap_err().to_string().contains("[p, p, p]"));
    let table = Array3::<f64>::zeros((5, 5, 5));
    assert!(key_part(table.view(), &[3]).unwrap_err().to_string().contains("key frequency 3"));
    assert!(addition_loss(table.view(), &[(5, 0)]).unwrap_err().to_string().contains("outside"));
    assert!(addition_loss(table.view(), &[]).unwrap_err().to_string().contains("no pairs"));
    assert!(fourier_basis(4).unwrap_err().to_string().contains("odd prime"));
    assert!(embedding_norms(ndarray::Array2::zeros((3, 2)).view(), 5).unwrap_err().to_string().contains("W_E"));
}

#[test]
fn measure_runs_the_model_on_every_pair() {
    let c = shaderlens::train::config::TrainConfig::from_toml(
        "steps = 1\n[model]\nn_layers = 1\nd_model = 8\nn_heads = 2\nd_head = 4\nd_mlp = 16\n[data]\np = 7\n",
        &[],
    )
    .unwrap();
    let w = shaderlens::train::init::init_weights(&c.model, c.initializer_range, 1).unwrap();
    let train = [(0, 1), (2, 3), (6, 6)];
    let m = measure(&c.model, &w, 7, &train, 2).unwrap();
    assert_eq!(m.key_frequencies.len(), 2);
    assert_eq!(m.embedding_norms.len(), 4);
    assert_eq!(m.neuron_logit_norms.as_ref().map(Vec::len), Some(4));
    assert_eq!(m.neuron_logit_key_frequencies.as_ref().map(Vec::len), Some(2));
    close(m.total_squared_weight, shaderlens::train::global_norm(&w).powi(2), "total squared weight");
    assert!(m.restricted_loss.is_finite() && m.excluded_loss.is_finite());
    assert!(measure(&c.model, &w, 5, &train, 2).unwrap_err().to_string().contains("d_vocab_out"));
}
