//! Every WGSL kernel shaderlens compiles, assembled from its pieces in one place.
//!
//! WGSL (and wgpu 30) has no `#import`, so code that several kernels share lives in piece files in
//! `shaders/` that are prepended to a kernel's own file: [`shader!`] concatenates them at compile
//! time, in the order given, and this table says which kernel takes which pieces. WGSL resolves
//! module-scope names in any order, so a piece may call a function the kernel defines (the row
//! reduction calls the kernel's `combine`) and a kernel may use what a piece declares.
//!
//! The pieces:
//! - `reduce_rows.wgsl`: the two-level workgroup reduction of per-invocation partials over a row
//!   (softmax's and layer norm's wide path), with its workgroup-size override constants; the
//!   kernel defines the `combine` it calls.
//! - `reduce_tree.wgsl`: fixed-order tree sums and maxima over a workgroup (cross-entropy, the
//!   backward's totals, the optimizer's gradient norm).
//! - `attention_tile.wgsl`: the 4 x 8 block of dot products (and the q·k walk) of the attention
//!   scores, the fused forward and the fused backward.
//! - `grid.wgsl`: the 2-D workgroup grid's linear numbering (every kernel but matmul's, whose
//!   generator writes its own).
//! - `attention_common.wgsl`, `attention_backward_fused_common.wgsl`, `matmul_common.wgsl`: a
//!   family's parameters and helpers.
//!
//! Modules take their kernels from here (`const SHADER: Shader = shaders::SOFTMAX;`), and
//! `tests/shaders_portable.rs` validates every entry of [`ALL`] on every backend and checks that
//! every file in `shaders/` is a kernel of it or a piece of one.

use super::Shader;

/// A kernel's [`Shader`]: the named pieces of `shaders/`, then the kernel's own file
/// (`shader!("softmax", "grid", "reduce_rows")`). Paths are absolute, so the macro works from any
/// module.
macro_rules! shader {
    ($name:literal $(, $piece:literal)* $(,)?) => {
        Shader {
            name: $name,
            source: concat!(
                $(include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/shaders/", $piece, ".wgsl")),)*
                include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/shaders/", $name, ".wgsl"))
            ),
        }
    };
}

/// Softmax along the last axis.
pub const SOFTMAX: Shader = shader!("softmax", "grid", "reduce_rows");
/// Layer norm along the last axis.
pub const LAYER_NORM: Shader = shader!("layer_norm", "grid", "reduce_rows");
/// GELU (tanh and erf forms).
pub const GELU: Shader = shader!("gelu", "grid");
/// Element-wise AdamW on one tensor.
pub const ADAMW: Shader = shader!("adamw", "grid");
/// AdamW over a flat parameter arena, with the global gradient norm.
pub const ADAMW_ARENA: Shader = shader!("adamw_arena", "grid", "reduce_tree");
/// Grokfast's gradient filter over a flat arena.
pub const GROKFAST_ARENA: Shader = shader!("grokfast_arena", "grid");
/// The blocked (register-tiled) matmul kernels, generated.
pub const MATMUL: Shader = shader!("matmul", "matmul_common");
/// The workgroup-memory tiled matmul.
pub const MATMUL_TILED: Shader = shader!("matmul_tiled", "matmul_common");
/// Attention scores q·kᵀ (masked, scaled).
pub const ATTENTION_SCORES: Shader = shader!("attention_scores", "grid", "attention_common", "attention_tile");
/// Attention's in-place softmax over the pattern.
pub const ATTENTION_SOFTMAX: Shader = shader!("attention_softmax", "grid", "attention_common");
/// pattern · v.
pub const ATTENTION_PV: Shader = shader!("attention_pv", "grid", "attention_common");
/// Fused attention forward (online softmax).
pub const ATTENTION_FUSED: Shader = shader!("attention_fused", "grid", "attention_common", "attention_tile");
/// Zero-pads head sizes that are not a multiple of 4.
pub const ATTENTION_PACK: Shader = shader!("attention_pack", "grid", "attention_common");
/// The fused attention backward's per-query prelude (lse, delta).
pub const ATTENTION_BACKWARD_PREP: Shader =
    shader!("attention_backward_fused_prep", "grid", "attention_backward_fused_common");
/// The fused attention backward's dk and dv.
pub const ATTENTION_BACKWARD_KV: Shader = shader!("attention_backward_fused_kv", "grid", "attention_backward_fused_common", "attention_tile");
/// The fused attention backward's dq.
pub const ATTENTION_BACKWARD_Q: Shader = shader!("attention_backward_fused_q", "grid", "attention_backward_fused_common", "attention_tile");
/// Token and position embedding.
pub const EMBED: Shader = shader!("embed", "grid");
/// The model's element-wise kernels (residual adds, hooks, interventions).
pub const ELEMENTWISE: Shader = shader!("elementwise", "grid");
/// Row kernels of the TransformerLens variants (RMS norm, SoLU).
pub const NORM_ROWS: Shader = shader!("norm_rows", "grid");
/// Head repeats, projections and sums of the TransformerLens variants.
pub const HEADS: Shader = shader!("heads", "grid");
/// Cross-entropy loss and its gradient.
pub const CROSS_ENTROPY_BACKWARD: Shader = shader!("cross_entropy_backward", "grid", "reduce_tree");
/// Deterministic column sums and totals for the backward pass.
pub const REDUCE_BACKWARD: Shader = shader!("reduce_backward", "grid", "reduce_tree");
/// Softmax's backward and the causal mask's.
pub const SOFTMAX_BACKWARD: Shader = shader!("softmax_backward", "grid");
/// Layer norm's backward.
pub const LAYER_NORM_BACKWARD: Shader = shader!("layer_norm_backward", "grid");
/// GELU and ReLU backward.
pub const ACTIVATION_BACKWARD: Shader = shader!("activation_backward", "grid");
/// Embedding backward (scatter by token, in a fixed order).
pub const EMBED_BACKWARD: Shader = shader!("embed_backward", "grid");
/// Axis swaps for the backward pass.
pub const PERMUTE_BACKWARD: Shader = shader!("permute_backward", "grid");

/// Every kernel shader, for tests that validate them all.
pub const ALL: &[Shader] = &[
    SOFTMAX,
    LAYER_NORM,
    GELU,
    ADAMW,
    ADAMW_ARENA,
    GROKFAST_ARENA,
    MATMUL,
    MATMUL_TILED,
    ATTENTION_SCORES,
    ATTENTION_SOFTMAX,
    ATTENTION_PV,
    ATTENTION_FUSED,
    ATTENTION_PACK,
    ATTENTION_BACKWARD_PREP,
    ATTENTION_BACKWARD_KV,
    ATTENTION_BACKWARD_Q,
    EMBED,
    ELEMENTWISE,
    NORM_ROWS,
    HEADS,
    CROSS_ENTROPY_BACKWARD,
    REDUCE_BACKWARD,
    SOFTMAX_BACKWARD,
    LAYER_NORM_BACKWARD,
    ACTIVATION_BACKWARD,
    EMBED_BACKWARD,
    PERMUTE_BACKWARD,
];
