//! Grokking's progress measures (Nanda et al. 2023, "Progress measures for grokking via
//! mechanistic interpretability") for a model trained on modular addition `a + b mod p`:
//!
//! - the Fourier basis of Z_p ([`fourier_basis`]): the constant, then cos and sin of
//!   `2πkx/p` for k = 1..(p−1)/2, each of unit norm;
//! - the embedding's norm per frequency ([`embedding_norms`]): W_E's rows 0..p−1 projected on
//!   the basis, the cos and sin components of frequency k together; the key frequencies
//!   ([`key_frequencies`]) are the largest of these (the constant left out);
//! - the restricted loss: the cross-entropy of the logits kept only in the directions
//!   cos(2πk(a+b−c)/p) and sin(2πk(a+b−c)/p) of the key frequencies k (directions of the whole
//!   p × p × p logit table, a, b the inputs and c the output), over every pair (a, b);
//! - the excluded loss: the cross-entropy of the logits with those components removed, over the
//!   training pairs;
//! - the total squared weight: the sum of squares of every parameter;
//! - the neuron–logit map's norm per frequency ([`neuron_logit_norms`]): `W_L = W_out · W_U`
//!   (last MLP's neurons to the outputs 0..p−1) in the Fourier basis over the output, the other
//!   place where Nanda et al. read the key frequencies; its own key frequencies beside the
//!   embedding's.
//!
//! Everything here is float64 on the host: [`measure`] runs the float64 reference forward
//! (`crate::reference::transformer::forward`) on all p² pairs and works on its logits. The
//! pieces take plain arrays, so `tests/progress_measures.rs` checks them against numpy
//! (`scripts/make_progress_fixtures.py`) and against constructed logit tables.

use std::f64::consts::PI;

use ndarray::{Array2, Array3, ArrayD, ArrayView2, ArrayView3, Axis};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::games::modular::{all_examples, Op};
use crate::model::hooks::Names;
use crate::model::weights::Weights;
use crate::transformer::Config;

/// The progress measures of one set of weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// The key frequencies, ascending.
    pub key_frequencies: Vec<usize>,
    /// The embedding's norm per frequency, index 0 the constant, index k frequency k.
    pub embedding_norms: Vec<f64>,
    /// Cross-entropy over every pair with the logits restricted to the key frequencies.
    pub restricted_loss: f64,
    /// Cross-entropy over the training pairs with the key frequencies removed from the logits.
    pub excluded_loss: f64,
    /// The sum of squares of every parameter.
    pub total_squared_weight: f64,
    /// The neuron–logit map's norm per frequency ([`neuron_logit_norms`]); absent without MLPs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub neuron_logit_norms: Option<Vec<f64>>,
    /// The key frequencies of [`Progress::neuron_logit_norms`], ascending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub neuron_logit_key_frequencies: Option<Vec<usize>>,
}

/// The unit-norm Fourier basis of Z_p as rows \[p, p\]: row 0 the constant, rows 2k−1 and 2k
/// cos and sin of frequency k.
pub fn fourier_basis(p: usize) -> Result<Array2<f64>> {
    if p < 3 || p.is_multiple_of(2) {
        return Err(Error::Input(format!("progress measures: p = {p} must be an odd prime >= 3")));
    }
    let mut basis = Array2::zeros((p, p));
    for x in 0..p {
        basis[[0, x]] = 1.0 / (p as f64).sqrt();
        for k in 1..=(p - 1) / 2 {
            let angle = 2.0 * PI * (k * x) as f64 / p as f64;
            basis[[2 * k - 1, x]] = angle.cos();
            basis[[2 * k, x]] = angle.sin();
        }
    }
    for mut row in basis.rows_mut().into_iter().skip(1) {
        let norm = row.dot(&row).sqrt();
        row /= norm;
    }
    Ok(basis)
}

/// The norm of the embedding `w_e` \[d_vocab ≥ p, d_model\]'s rows 0..p−1 per frequency:
/// (p+1)/2 values, index 0 the constant's.
pub fn embedding_norms(w_e: ArrayView2<'_, f64>, p: usize) -> Result<Vec<f64>> {
    if w_e.nrows() < p {
        return Err(Error::Shape(format!("progress measures: embed.W_E has {} rows but p = {p} needs at least p", w_e.nrows())));
    }
    let basis = fourier_basis(p)?;
    let coefficients = basis.dot(&w_e.slice(ndarray::s![..p, ..]));
    let sq = |r: usize| coefficients.row(r).dot(&coefficients.row(r));
    Ok((0..=(p - 1) / 2).map(|k| if k == 0 { sq(0).sqrt() } else { (sq(2 * k - 1) + sq(2 * k)).sqrt() }).collect())
}

/// The norm per frequency of the neuron–logit map `W_L = w_out · w_u[:, ..p]` \[d_mlp, p\]
/// in the Fourier basis over the output c (all neurons together): (p+1)/2 values, index 0 the
/// constant's. `w_out` is \[d_mlp, d_model\], `w_u` \[d_model, d_vocab_out ≥ p\].
pub fn neuron_logit_norms(w_out: ArrayView2<'_, f64>, w_u: ArrayView2<'_, f64>, p: usize) -> Result<Vec<f64>> {
    if w_out.ncols() != w_u.nrows() || w_u.ncols() < p {
        return Err(Error::Shape(format!("progress measures: W_out is {:?} and W_U {:?}; want [d_mlp, d_model] and [d_model, at least p = {p}]", w_out.shape(), w_u.shape())));
    }
    let w_l = w_out.dot(&w_u.slice(ndarray::s![.., ..p]));
    let coefficients = w_l.dot(&fourier_basis(p)?.t());
    let sq = |r: usize| coefficients.column(r).dot(&coefficients.column(r));
    Ok((0..=(p - 1) / 2).map(|k| if k == 0 { sq(0).sqrt() } else { (sq(2 * k - 1) + sq(2 * k)).sqrt() }).collect())
}

/// The `count` frequencies (≥ 1) of largest norm, ascending.
pub fn key_frequencies(norms: &[f64], count: usize) -> Result<Vec<usize>> {
    if count == 0 || count >= norms.len() {
        return Err(Error::Input(format!("progress measures: {count} key frequencies asked, but there are {} (1..=(p-1)/2)", norms.len().saturating_sub(1))));
    }
    let mut order: Vec<usize> = (1..norms.len()).collect();
    order.sort_by(|&a, &b| norms[b].total_cmp(&norms[a]).then(a.cmp(&b)));
    let mut keys = order[..count].to_vec();
    keys.sort_unstable();
    Ok(keys)
}

/// The part of `logits` \[a, b, c\] in the directions cos and sin of 2πk(a+b−c)/p for each `k`.
pub fn key_part(logits: ArrayView3<'_, f64>, keys: &[usize]) -> Result<Array3<f64>> {
    let p = check_table(logits)?;
    let mut part = Array3::zeros((p, p, p));
    for &k in keys {
        if k == 0 || k > (p - 1) / 2 {
            return Err(Error::Input(format!("progress measures: key frequency {k} is outside 1..={}", (p - 1) / 2)));
        }
        for trig in [f64::cos, f64::sin] {
            let dir = Array3::from_shape_fn((p, p, p), |(a, b, c)| trig(2.0 * PI * (k * ((a + b + p * p - c) % p)) as f64 / p as f64));
            let coefficient = (&logits * &dir).sum() / (&dir * &dir).sum();
            part.scaled_add(coefficient, &dir);
        }
    }
    Ok(part)
}

/// Mean cross-entropy of the table `logits` \[a, b, c\] at the pairs `pairs`, the answer being
/// `(a + b) mod p`.
pub fn addition_loss(logits: ArrayView3<'_, f64>, pairs: &[(usize, usize)]) -> Result<f64> {
    let p = check_table(logits)?;
    if pairs.is_empty() {
        return Err(Error::Input("progress measures: no pairs to take the loss over".into()));
    }
    let mut total = 0.0;
    for &(a, b) in pairs {
        if a >= p || b >= p {
            return Err(Error::Input(format!("progress measures: pair ({a}, {b}) is outside 0..{p}")));
        }
        let row = logits.slice(ndarray::s![a, b, ..]);
        let max = row.fold(f64::NEG_INFINITY, |m, &x| m.max(x));
        let lse = max + row.iter().map(|&x| (x - max).exp()).sum::<f64>().ln();
        total += lse - row[(a + b) % p];
    }
    Ok(total / pairs.len() as f64)
}

fn check_table(logits: ArrayView3<'_, f64>) -> Result<usize> {
    let s = logits.shape();
    if s[0] != s[1] || s[1] != s[2] {
        return Err(Error::Shape(format!("progress measures: the logit table is {s:?} but must be [p, p, p]")));
    }
    Ok(s[0])
}

/// The model's logits at the last position for every pair (a, b), as a table \[a, b, c\]
/// (float64 reference forward on the host).
pub fn logit_table(config: &Config, weights: &Weights<ArrayD<f64>>, p: usize) -> Result<Array3<f64>> {
    if config.d_vocab_out != p {
        return Err(Error::Input(format!("progress measures: the model's d_vocab_out is {} but p = {p}", config.d_vocab_out)));
    }
    let (tokens, _) = all_examples(p as u64, Op::Add)?;
    let run = crate::reference::transformer::forward(config, weights, tokens.view().into_dyn(), &Names::Nothing, &[])?;
    let last = run.logits.index_axis(Axis(1), tokens.ncols() - 1).to_owned();
    last.into_shape_with_order((p, p, p)).map_err(|e| Error::Shape(format!("progress measures: logits: {e}")))
}

/// Every progress measure of `weights` (a model trained on `a + b mod p`), with `keys` key
/// frequencies and the excluded loss over `train` pairs.
pub fn measure(config: &Config, weights: &Weights<ArrayD<f64>>, p: usize, train: &[(usize, usize)], keys: usize) -> Result<Progress> {
    let w_e = weights.w_e.view().into_dimensionality::<ndarray::Ix2>().map_err(|e| Error::Shape(format!("embed.W_E: {e}")))?;
    let embedding_norms = embedding_norms(w_e, p)?;
    let key_frequencies = key_frequencies(&embedding_norms, keys)?;
    let logits = logit_table(config, weights, p)?;
    let part = key_part(logits.view(), &key_frequencies)?;
    let all: Vec<(usize, usize)> = (0..p).flat_map(|a| (0..p).map(move |b| (a, b))).collect();
    let neuron_logit_norms = match weights.blocks.last().and_then(|b| b.mlp.as_ref()) {
        Some(mlp) => Some(neuron_logit_norms(two_d(&mlp.w_out, "W_out")?, two_d(&weights.w_u, "unembed.W_U")?, p)?),
        None => None,
    };
    let neuron_logit_key_frequencies = neuron_logit_norms.as_deref().map(|n| self::key_frequencies(n, keys)).transpose()?;
    Ok(Progress {
        neuron_logit_norms,
        neuron_logit_key_frequencies,
        restricted_loss: addition_loss(part.view(), &all)?,
        excluded_loss: addition_loss((&logits - &part).view(), train)?,
        total_squared_weight: weights.named().iter().map(|(_, a)| a.iter().map(|x| x * x).sum::<f64>()).sum(),
        key_frequencies,
        embedding_norms,
    })
}

/// `a` as a matrix, or an error naming it.
fn two_d<'a>(a: &'a ArrayD<f64>, name: &str) -> Result<ArrayView2<'a, f64>> {
    a.view().into_dimensionality::<ndarray::Ix2>().map_err(|e| Error::Shape(format!("{name}: {e}")))
}

/// The (a, b) of each row of `tokens` \[n, 3\] (the modular game's `a b =` rows).
pub fn pairs_of(tokens: ArrayView2<'_, i64>) -> Vec<(usize, usize)> {
    tokens.rows().into_iter().map(|r| (r[0] as usize, r[1] as usize)).collect()
}
