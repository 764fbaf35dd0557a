//! `attention`'s sizes and its one shape check, shared by the GPU op and the float64 reference so
//! that host and GPU reject the same inputs with the same words.

use crate::error::{element_count, fmt_shape, Error, Result};

/// The sizes of one attention call: q \[B,H,Sq,D\], k \[B,H,Sk,D\], v \[B,H,Sk,Dv\].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionDims {
    /// B, the batch size.
    pub batch: usize,
    /// H, the number of heads.
    pub heads: usize,
    /// Sq, the number of queries.
    pub sq: usize,
    /// Sk, the number of keys (and values).
    pub sk: usize,
    /// D, the query and key head size.
    pub d: usize,
    /// Dv, the value head size.
    pub dv: usize,
}

impl AttentionDims {
    /// The output's shape, \[B, H, Sq, Dv\].
    pub fn out_shape(&self) -> [usize; 4] {
        [self.batch, self.heads, self.sq, self.dv]
    }

    /// The pattern's (and the scores') shape, \[B, H, Sq, Sk\].
    pub fn pattern_shape(&self) -> [usize; 4] {
        [self.batch, self.heads, self.sq, self.sk]
    }

    /// How many keys query `i` sees ([`visible_keys`] for these sizes).
    pub fn visible(&self, causal: bool, i: usize) -> usize {
        visible_keys(causal, self.sq, self.sk, i)
    }
}

/// How many keys query `i` of `sq` sees among `sk`: all of them, or under SPEC's (bottom-right)
/// causal mask the keys `j <= i + sk - sq` (with `sq == sk`, the keys `j <= i`). The one home
/// of the causal mask for the host code: the float64 references and the model's all use it.
pub fn visible_keys(causal: bool, sq: usize, sk: usize, i: usize) -> usize {
    if causal {
        // sk less the queries after i (sq - i - 1), without overflowing for any sizes.
        sk.saturating_sub(sq.saturating_sub(i.saturating_add(1)))
    } else {
        sk
    }
}

/// Checks the shapes of q \[B,H,Sq,D\], k \[B,H,Sk,D\] and v \[B,H,Sk,Dv\] and returns the sizes.
///
/// All three must have rank 4; B and H must be equal in all three (no broadcasting); k and v
/// must have the same number of keys; q and k the same head size.
pub fn attention_shapes(q: &[usize], k: &[usize], v: &[usize]) -> Result<AttentionDims> {
    for (name, shape, last) in [("q", q, "Sq, D"), ("k", k, "Sk, D"), ("v", v, "Sk, Dv")] {
        if shape.len() != 4 {
            return Err(Error::Shape(format!(
                "{name} is {} but attention needs a rank-4 {name} [B, H, {last}]",
                fmt_shape(shape)
            )));
        }
    }
    let differ = |name: &str, shape: &[usize], other: &str, other_shape: &[usize], what: &str, a: usize, b: usize| {
        Error::Shape(format!(
            "{name} is {} but {other} is {}: {what} {a} and {b} differ",
            fmt_shape(shape),
            fmt_shape(other_shape)
        ))
    };
    for (name, shape) in [("k", k), ("v", v)] {
        if shape[0] != q[0] {
            return Err(differ(name, shape, "q", q, "batch sizes", shape[0], q[0]));
        }
        if shape[1] != q[1] {
            return Err(differ(name, shape, "q", q, "head counts", shape[1], q[1]));
        }
    }
    if k[3] != q[3] {
        return Err(differ("k", k, "q", q, "head dims", k[3], q[3]));
    }
    if v[2] != k[2] {
        return Err(differ("v", v, "k", k, "key counts", v[2], k[2]));
    }
    let dims = AttentionDims { batch: q[0], heads: q[1], sq: q[2], sk: k[2], d: q[3], dv: v[3] };
    let inputs = || format!("(q {}, k {}, v {})", fmt_shape(q), fmt_shape(k), fmt_shape(v));
    element_count(&dims.out_shape(), &format!("attention out {}", inputs()))?;
    element_count(&dims.pattern_shape(), &format!("attention pattern {}", inputs()))?;
    Ok(dims)
}
