//! Modular arithmetic data (SPEC's Games): each operation against plain integer arithmetic, div's
//! inverse and its b ≠ 0, refusals, and the train/test split's sizes, coverage and determinism.

use std::collections::HashSet;

use shaderlens::games::modular::{all_examples, inverse, is_prime, ModularData, Op};

fn rows(tokens: &ndarray::Array2<i64>) -> Vec<(i64, i64)> {
    tokens.rows().into_iter().map(|r| (r[0], r[1])).collect()
}

#[test]
fn every_op_gives_the_answer_of_integer_arithmetic() {
    let p = 13u64;
    for (op, f) in [
        (Op::Add, (|a, b| a + b) as fn(i64, i64) -> i64),
        (Op::Sub, |a, b| a - b),
        (Op::Mul, |a, b| a * b),
    ] {
        let (tokens, targets) = all_examples(p, op).unwrap();
        assert_eq!(tokens.nrows(), 169, "{op:?}");
        for (t, y) in tokens.rows().into_iter().zip(targets.rows()) {
            assert_eq!(t[2], 13);
            assert_eq!((y[0], y[1]), (-1, -1));
            assert_eq!(y[2], f(t[0], t[1]).rem_euclid(13), "{op:?} {} {}", t[0], t[1]);
        }
    }
}

#[test]
fn div_is_multiplication_by_the_inverse_and_skips_b_zero() {
    for p in [2u64, 3, 13, 113] {
        for b in 1..p {
            assert_eq!(b * inverse(b, p) % p, 1, "inverse of {b} mod {p}");
        }
    }
    let (tokens, targets) = all_examples(13, Op::Div).unwrap();
    assert_eq!(tokens.nrows(), 13 * 12);
    for (t, y) in tokens.rows().into_iter().zip(targets.rows()) {
        assert_ne!(t[1], 0, "div never divides by 0");
        // c = a / b  <=>  c * b = a (mod p)
        assert_eq!((y[2] * t[1]) % 13, t[0], "{} / {} = {}", t[0], t[1], y[2]);
    }
}

#[test]
fn a_non_prime_modulus_or_a_bad_fraction_is_refused() {
    assert!(is_prime(2) && is_prime(113) && is_prime(4093));
    for p in [0u64, 1, 4, 9, 226, 4087] {
        let err = all_examples(p, Op::Add).unwrap_err().to_string();
        assert!(err.contains("not prime"), "{p}: {err}");
    }
    assert!(all_examples(4099, Op::Add).unwrap_err().to_string().contains("larger than"));
    for f in [0.0, -0.1, 1.5, f64::NAN] {
        assert!(ModularData::new(113, Op::Add, f, 0).unwrap_err().to_string().contains("fraction"), "{f}");
    }
    assert!(ModularData::new(2, Op::Add, 0.1, 0).unwrap_err().to_string().contains("no training example"));
    assert!("pow".parse::<Op>().unwrap_err().to_string().contains("add, sub, mul, div"));
}

#[test]
fn the_split_has_the_stated_sizes_covers_every_example_once_and_is_seeded() {
    let data = ModularData::new(113, Op::Add, 0.3, 0).unwrap();
    assert_eq!(data.train_tokens.nrows(), 3830, "Nanda et al.'s 3,830 training examples");
    assert_eq!(data.test_tokens.nrows(), 12769 - 3830);
    let train: HashSet<_> = rows(&data.train_tokens).into_iter().collect();
    let test: HashSet<_> = rows(&data.test_tokens).into_iter().collect();
    assert_eq!(train.len(), 3830);
    assert!(train.is_disjoint(&test));
    assert_eq!(train.len() + test.len(), 12769);
    assert_eq!(ModularData::new(113, Op::Add, 0.3, 0).unwrap(), data, "same seed, same split");
    let other = ModularData::new(113, Op::Add, 0.3, 1).unwrap();
    assert_ne!(other.train_tokens, data.train_tokens, "another seed, another split");
    let div = ModularData::new(7, Op::Div, 0.5, 3).unwrap();
    assert_eq!((div.train_tokens.nrows(), div.test_tokens.nrows()), (21, 21));
    assert_eq!(data.test_answers().len(), data.test_tokens.nrows());
}

#[test]
fn mini_batches_cover_the_training_set_each_epoch_in_a_seeded_order() {
    let data = ModularData::new(31, Op::Mul, 0.4, 9).unwrap();
    let n = data.train_tokens.nrows();
    let epoch0 = data.epoch_batches(64, 5, 0).unwrap();
    assert_eq!(epoch0.len(), n.div_ceil(64));
    assert!(epoch0[..epoch0.len() - 1].iter().all(|(t, y)| t.nrows() == 64 && y.nrows() == 64));
    let seen: HashSet<_> = epoch0.iter().flat_map(|(t, _)| rows(t)).collect();
    assert_eq!(seen, rows(&data.train_tokens).into_iter().collect());
    assert_eq!(data.epoch_batches(64, 5, 0).unwrap(), epoch0);
    assert_ne!(data.epoch_batches(64, 5, 1).unwrap()[0].0, epoch0[0].0);
    let full = data.epoch_batches(usize::MAX, 5, 0).unwrap();
    assert_eq!((full.len(), full[0].0.nrows()), (1, n));
    assert!(data.epoch_batches(0, 5, 0).is_err());
}
