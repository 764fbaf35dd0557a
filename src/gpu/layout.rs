//! The Rust side of every kernel's uniform `Params`, listed so that a test
//! (`tests/params_layout.rs`) can check each against its WGSL struct with naga's layouter: the
//! struct's size, and the offset of every field. `#[repr(C)]` structs mirrored by hand drift
//! silently otherwise (a field added on one side reads garbage on the other).

use super::Shader;

/// One `Params` struct: the shader whose `struct Params` it mirrors, its size, and its fields as
/// `(name, byte offset, count)`. A field of `count` > 1 is a `[u32; count]` that the WGSL spells
/// as `count` scalars named `<name>_…` (e.g. `q: [u32; 3]` for `q_b`, `q_h`, `q_i`) or as one
/// vector called `<name>`. Fields whose names start with `_` are padding and are not listed.
#[derive(Clone, Copy, Debug)]
pub struct ParamsLayout {
    /// The shader (with its prepended common files) that declares `struct Params`.
    pub shader: Shader,
    /// The Rust type's path, for messages.
    pub rust: &'static str,
    /// `size_of` the Rust type.
    pub size: usize,
    /// `(name, offset, count)` of every non-padding field.
    pub fields: &'static [(&'static str, usize, usize)],
}

/// A [`ParamsLayout`] for `$ty` in `$shader`: `params_layout!(Params, SHADER, [n, cols, q[3]])`.
macro_rules! params_layout {
    ($ty:ty, $shader:expr, [$($field:ident $([$count:literal])?),* $(,)?]) => {
        $crate::gpu::layout::ParamsLayout {
            shader: $shader,
            rust: concat!(module_path!(), "::", stringify!($ty)),
            size: std::mem::size_of::<$ty>(),
            fields: &[$((stringify!($field), std::mem::offset_of!($ty, $field), $crate::gpu::layout::params_layout!(@count $($count)?))),*],
        }
    };
    (@count) => { 1 };
    (@count $count:literal) => { $count };
}
pub(crate) use params_layout;

/// Every kernel's `Params` in shaderlens (one entry per shader that declares one).
pub fn all() -> Vec<ParamsLayout> {
    let mut all = Vec::new();
    all.extend_from_slice(crate::ops::adamw::LAYOUTS);
    all.extend_from_slice(crate::train::gpu_optimizer::LAYOUTS);
    all.extend_from_slice(crate::ops::matmul::LAYOUTS);
    all.extend_from_slice(crate::ops::softmax::LAYOUTS);
    all.extend_from_slice(crate::ops::layer_norm::LAYOUTS);
    all.extend_from_slice(crate::ops::gelu::LAYOUTS);
    all.extend_from_slice(crate::ops::attention::kernels::LAYOUTS);
    all.extend_from_slice(crate::ops::attention::backward_fused::LAYOUTS);
    all.extend_from_slice(crate::transformer::kernels::LAYOUTS);
    all.extend_from_slice(crate::ops::backward::LAYOUTS);
    all.extend_from_slice(crate::transformer::variant_kernels::LAYOUTS);
    all
}
