//! What `bench` measures: the shapes of each op, and for one shape, the GPU work to time (per
//! variant), the host reference to time, and how much work one run does.
//!
//! Shapes are the ones small transformer models use: square matmuls 256 to 4096 and the MLP of
//! Othello-GPT (3776 tokens = 64 games x 59 moves, d_model 512, d_mlp 2048) both ways; softmax and
//! layer norm over the residual stream [3776, 512] and over attention rows [64*8*59, 59];
//! attention at B=64 H=8 S=59 D=64 and a long S=1024; the whole forward pass of an
//! Othello-GPT-sized model on 8 games, and on 64 with `large`. The large sizes (matmul 2048^3 and
//! up, the 64-game forward: over 2^33 flops) run only with `large` (`SHADERLENS_BENCH_LARGE=1` or
//! `--large`, and always on non-CPU adapters). `quick` replaces everything with tiny shapes, for
//! tests.

use crate::error::{Error, Result};
use crate::gpu::Gpu;

pub use super::run::{inputs, GpuRun, Prepared, Record, Work};

/// How `bench` prepares one op at one shape (`variants`: one run per kernel where there are several).
pub type Prepare = for<'a> fn(&'a Gpu, &[usize], bool) -> Result<Prepared<'a>>;

/// One op `bench` knows: its name, the rank a `--shape` for it has, its standard shapes and how to
/// prepare it. Adding an op to `bench` is one row of [`REGISTRY`].
pub struct BenchOp {
    /// The op's name on the command line and in the output.
    pub name: &'static str,
    /// The rank of a shape for this op and what its axes are (`None`: any rank of at least 1).
    pub rank: Option<(usize, &'static str)>,
    /// The shapes of `--quick` (tiny, for tests).
    pub quick: &'static [&'static [usize]],
    /// The standard shapes.
    pub standard: &'static [&'static [usize]],
    /// Shapes that run only with `large` (over 2^33 flops, or slow on CPU adapters).
    pub large: &'static [&'static [usize]],
    /// Uploads the inputs and returns the runs.
    pub prepare: Prepare,
}

/// The ops `bench` knows, in the order it runs them.
pub const REGISTRY: &[BenchOp] = &[
    BenchOp {
        name: "matmul",
        rank: Some((3, "M,K,N")),
        quick: &[&[64, 64, 64], &[33, 17, 29]],
        standard: &[
            &[256, 256, 256],
            &[512, 512, 512],
            &[1024, 1024, 1024],
            &[3776, 512, 2048],
            &[3776, 2048, 512],
        ],
        large: &[&[2048, 2048, 2048], &[4096, 4096, 4096]],
        prepare: super::kernels::prepare_matmul,
    },
    BenchOp {
        name: "gelu",
        rank: None,
        quick: &[&[1000]],
        standard: &[&[3776, 2048]],
        large: &[],
        prepare: super::kernels::prepare_gelu,
    },
    BenchOp {
        name: "softmax",
        rank: None,
        quick: &[&[64, 59]],
        standard: &[&[3776, 512], &[64 * 8 * 59, 59]],
        large: &[],
        prepare: super::kernels::prepare_softmax,
    },
    BenchOp {
        name: "layer_norm",
        rank: None,
        quick: &[&[64, 59]],
        standard: &[&[3776, 512], &[64 * 8 * 59, 59]],
        large: &[],
        prepare: super::kernels::prepare_layer_norm,
    },
    BenchOp {
        name: "attention",
        rank: Some((4, "B,H,S,D")),
        quick: &[&[1, 2, 9, 8]],
        standard: &[&[64, 8, 59, 64], &[1, 8, 1024, 64]],
        large: &[],
        prepare: super::kernels::prepare_attention,
    },
    BenchOp {
        name: "attention_backward",
        rank: Some((4, "B,H,S,D")),
        quick: &[&[1, 2, 9, 8]],
        standard: &[&[64, 8, 59, 64], &[1, 8, 1024, 64]],
        large: &[],
        prepare: |gpu, s, _| super::attention_backward::prepare(gpu, s),
    },
    BenchOp {
        name: "transformer",
        rank: Some((4, "B,S,layers,d_model")),
        quick: &[&[2, 5, 2, 64]],
        standard: &[&[8, 59, 8, 512]],
        large: &[&[64, 59, 8, 512]],
        prepare: |gpu, s, _| super::transformer::prepare(gpu, s),
    },
    BenchOp {
        name: "train_step",
        rank: Some((5, "B,S,layers,d_model,heads")),
        quick: &[&[4, 3, 1, 16, 2], &[2, 5, 1, 16, 2]],
        standard: &[&[3830, 3, 1, 128, 4], &[8, 59, 2, 128, 4]],
        large: &[&[64, 59, 8, 512, 8]],
        prepare: |gpu, s, _| super::train_step::prepare(gpu, s),
    },
];

/// The names of the ops `bench` knows, in [`REGISTRY`]'s order.
pub fn ops() -> impl Iterator<Item = &'static str> {
    REGISTRY.iter().map(|op| op.name)
}

/// The registry's row for `name`, or an error listing the ops `bench` knows.
pub fn find(name: &str) -> Result<&'static BenchOp> {
    REGISTRY.iter().find(|op| op.name == name).ok_or_else(|| {
        Error::Input(format!(
            "unknown op {name:?} (bench knows {})",
            ops().collect::<Vec<_>>().join(", ")
        ))
    })
}

/// One op at one shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Case {
    /// The op's name (one of the ops in [`REGISTRY`]).
    pub op: &'static str,
    /// matmul: `[M, K, N]`; attention: `[B, H, S, D]` (causal); transformer: `[B, S, layers,
    /// d_model]` (see [`super::transformer`]); the others: the input's shape.
    pub shape: Vec<usize>,
}

/// The cases for `op` (every op when `None`) at the given size settings, or only `op` at
/// `shape` when a shape is given (it then needs an op).
pub fn list(
    op: Option<&str>,
    shape: Option<&[usize]>,
    quick: bool,
    large: bool,
) -> Result<Vec<Case>> {
    let chosen = op.map(find).transpose()?;
    if let Some(shape) = shape {
        let op = chosen.ok_or_else(|| Error::Input("a shape needs an op".into()))?;
        let rank_ok = match op.rank {
            Some((rank, _)) => shape.len() == rank,
            None => !shape.is_empty(),
        };
        if !rank_ok || shape.contains(&0) {
            let axes = op.rank.map_or("the input's shape", |(_, axes)| axes);
            return Err(Error::Shape(format!(
                "bench shape {shape:?} does not fit {} (its shape is {axes}; no zeros)",
                op.name
            )));
        }
        return Ok(vec![Case {
            op: op.name,
            shape: shape.to_vec(),
        }]);
    }
    let mut cases = Vec::new();
    for entry in REGISTRY
        .iter()
        .filter(|e| chosen.is_none_or(|c| c.name == e.name))
    {
        let sizes: Vec<&[usize]> = if quick {
            entry.quick.to_vec()
        } else {
            entry
                .standard
                .iter()
                .chain(if large { entry.large } else { &[] })
                .copied()
                .collect()
        };
        cases.extend(sizes.into_iter().map(|shape| Case {
            op: entry.name,
            shape: shape.to_vec(),
        }));
    }
    Ok(cases)
}

/// Uploads the inputs of `case` and returns its runs, host reference and work. With `variants`,
/// ops that have several kernels get one extra run per kernel.
pub fn prepare<'a>(gpu: &'a Gpu, case: &Case, variants: bool) -> Result<Prepared<'a>> {
    (find(case.op)?.prepare)(gpu, &case.shape, variants)
}
