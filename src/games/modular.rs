//! Modular arithmetic data (SPEC's **Games → Modular arithmetic**): every example `(a, b)` of
//! `a op b mod p` for a prime `p` as tokens `[a, b, p]` (token `p` is "=") with targets
//! `[−1, −1, c]`, split into train and test by a seeded shuffle, served whole or in mini-batches.
//!
//! This is the grokking data set (Power et al.; Nanda et al. use p = 113, add, 30 % train).

use ndarray::{s, Array2};
use rand::RngExt;
use rand_pcg::Pcg64;

use crate::{Error, Result};

/// Targets at positions that carry no loss (the operands), as SPEC's Gradients ignore them.
pub const IGNORE: i64 = -1;
/// The largest prime modulus accepted: p² examples of 48 bytes (tokens and targets) must stay a
/// few hundred MB.
pub const MAX_P: u64 = 4093;

/// The operation, mod p.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// a + b.
    Add,
    /// a − b.
    Sub,
    /// a · b.
    Mul,
    /// a · b⁻¹, for b ≠ 0 only.
    Div,
}

impl std::str::FromStr for Op {
    type Err = Error;

    fn from_str(s: &str) -> Result<Op> {
        match s {
            "add" => Ok(Op::Add),
            "sub" => Ok(Op::Sub),
            "mul" => Ok(Op::Mul),
            "div" => Ok(Op::Div),
            other => Err(Error::Input(format!("modular op {other:?} is not one of add, sub, mul, div"))),
        }
    }
}

impl Op {
    /// `a op b mod p` (a, b < p; b ≠ 0 for div). `p` prime.
    pub fn apply(self, a: u64, b: u64, p: u64) -> u64 {
        match self {
            Op::Add => (a + b) % p,
            Op::Sub => (a + p - b) % p,
            Op::Mul => (a * b) % p,
            Op::Div => (a * inverse(b, p)) % p,
        }
    }
}

/// b⁻¹ mod a prime p, by Fermat's little theorem (b^(p−2)); b must not be 0 mod p.
pub fn inverse(b: u64, p: u64) -> u64 {
    let (mut base, mut exp, mut acc) = (b % p, p - 2, 1u64);
    while exp > 0 {
        if exp & 1 == 1 {
            acc = acc * base % p;
        }
        base = base * base % p;
        exp >>= 1;
    }
    acc
}

/// True when `p` is prime (trial division, meant for moduli up to [`MAX_P`]).
pub fn is_prime(p: u64) -> bool {
    p >= 2 && (2..).take_while(|&d| d <= p / d).all(|d| !p.is_multiple_of(d))
}

/// Every example of `op` mod `p`, in order of (a, b): tokens and targets, each int64 [n, 3].
pub fn all_examples(p: u64, op: Op) -> Result<(Array2<i64>, Array2<i64>)> {
    if p > MAX_P {
        return Err(Error::Input(format!("modular p = {p} is larger than {MAX_P} (p² examples would not fit in memory comfortably)")));
    }
    if !is_prime(p) {
        return Err(Error::Input(format!("modular p = {p} is not prime (SPEC: p must be a prime)")));
    }
    let first_b = if op == Op::Div { 1 } else { 0 };
    let n = (p * (p - first_b)) as usize;
    let mut tokens = Array2::zeros((n, 3));
    let mut targets = Array2::from_elem((n, 3), IGNORE);
    let mut row = 0;
    for a in 0..p {
        for b in first_b..p {
            tokens[[row, 0]] = a as i64;
            tokens[[row, 1]] = b as i64;
            tokens[[row, 2]] = p as i64;
            targets[[row, 2]] = op.apply(a, b, p) as i64;
            row += 1;
        }
    }
    Ok((tokens, targets))
}

/// The shuffle of `0..n` that seed `seed` and `salt` give (Fisher–Yates on a PCG64 stream), the
/// same on every platform.
fn permutation(n: usize, seed: u64, salt: u64) -> Vec<usize> {
    let mut rng = super::dataset::game_rng(seed, salt);
    shuffle(&mut rng, n)
}

fn shuffle(rng: &mut Pcg64, n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = rng.random_range(0..=i as u64) as usize;
        order.swap(i, j);
    }
    order
}

/// A train/test split of one modular arithmetic task.
#[derive(Clone, Debug, PartialEq)]
pub struct ModularData {
    /// The prime modulus (also the "=" token; the vocabulary is p + 1).
    pub p: u64,
    /// The operation.
    pub op: Op,
    /// int64 [n_train, 3].
    pub train_tokens: Array2<i64>,
    /// int64 [n_train, 3]: −1, −1, the answer.
    pub train_targets: Array2<i64>,
    /// int64 [n_test, 3].
    pub test_tokens: Array2<i64>,
    /// int64 [n_test, 3].
    pub test_targets: Array2<i64>,
}

impl ModularData {
    /// All examples of `op` mod `p`, shuffled by `seed`; the first ⌊fraction · n⌋ train, the rest
    /// test (so p = 113, 30 % gives 3,830 train examples, as in Nanda et al.).
    pub fn new(p: u64, op: Op, train_fraction: f64, seed: u64) -> Result<ModularData> {
        if !(train_fraction > 0.0 && train_fraction <= 1.0) {
            return Err(Error::Input(format!("modular train fraction {train_fraction} is not in (0, 1]")));
        }
        let (tokens, targets) = all_examples(p, op)?;
        let n = tokens.nrows();
        let n_train = (train_fraction * n as f64).floor() as usize;
        if n_train == 0 {
            return Err(Error::Input(format!("modular train fraction {train_fraction} of {n} examples leaves no training example")));
        }
        let order = permutation(n, seed, u64::MAX);
        let pick = |rows: &[usize], from: &Array2<i64>| from.select(ndarray::Axis(0), rows);
        let (train, test) = order.split_at(n_train);
        Ok(ModularData {
            p,
            op,
            train_tokens: pick(train, &tokens),
            train_targets: pick(train, &targets),
            test_tokens: pick(test, &tokens),
            test_targets: pick(test, &targets),
        })
    }

    /// The training set cut into mini-batches of `size` for epoch `epoch` (the last one may be
    /// smaller), in an order reshuffled each epoch from `(seed, epoch)`: a resumed run that knows
    /// its epoch gets the same batches again. `size` ≥ the training set is the full batch.
    pub fn epoch_batches(&self, size: usize, seed: u64, epoch: u64) -> Result<Vec<(Array2<i64>, Array2<i64>)>> {
        if size == 0 {
            return Err(Error::Input("modular mini-batch size must be at least 1".into()));
        }
        let n = self.train_tokens.nrows();
        let order = permutation(n, seed, epoch);
        Ok(order
            .chunks(size)
            .map(|rows| (self.train_tokens.select(ndarray::Axis(0), rows), self.train_targets.select(ndarray::Axis(0), rows)))
            .collect())
    }

    /// The answers of the test set, the last target column (int64 [n_test]).
    pub fn test_answers(&self) -> ndarray::ArrayView1<'_, i64> {
        self.test_targets.slice(s![.., 2])
    }
}
