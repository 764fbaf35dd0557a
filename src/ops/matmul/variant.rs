//! The matmul kernels shaderlens has, what each needs, and which one an adapter prefers.
//!
//! All of them compute the same thing (every output one fused multiply-add chain in increasing k)
//! with the same bindings and `Params`, so any of them can serve any call it supports:
//!
//! | variant | shader, entry | block an invocation | tile a workgroup | needs |
//! |---|---|---|---|---|
//! | `vec4_32x32` | `matmul.wgsl`, `matmul_vec4_32x32` | 32 x 32 | 256 x 256 | K, N multiples of 4 |
//! | `vec4_8x8` | `matmul.wgsl`, `matmul_vec4_8x8` | 8 x 8 | 64 x 64 | K, N multiples of 4 |
//! | `scalar_16x16` | `matmul.wgsl`, `matmul_scalar_16x16` | 16 x 16 | 128 x 128 | — |
//! | `scalar_8x8` | `matmul.wgsl`, `matmul_scalar_8x8` | 8 x 8 | 64 x 64 | — |
//! | `tiled` | `matmul_tiled.wgsl`, `matmul_tiled` | 8 x 8 | 128 x 128 | 256 invocations, 16 KiB workgroup memory |
//!
//! The register-blocked kernels (no workgroup memory) suit CPU drivers, the big blocks most; the
//! tiled, double-buffered kernel is the classic one for GPUs. Which is fastest where is measured by
//! the autotuner ([`super::autotune`]); [`Variant::preferred`] is the order it falls back on.

use crate::gpu::{Gpu, Shader};

const BLOCKED: Shader = Shader { name: "matmul", source: include_str!("../../../shaders/matmul.wgsl") };
const TILED: Shader = Shader { name: "matmul_tiled", source: include_str!("../../../shaders/matmul_tiled.wgsl") };

/// Workgroup memory the tiled kernel declares: two stages of a 128 x 8 and an 8 x 128 slice.
const TILED_WORKGROUP_BYTES: u32 = 2 * 2 * 1024 * 4;

/// One matmul kernel; see the module documentation for the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Variant {
    /// vec4 loads, 32 x 32 outputs an invocation.
    Vec4Block32,
    /// vec4 loads, 8 x 8 outputs an invocation.
    Vec4Block8,
    /// Scalar loads, 16 x 16 outputs an invocation.
    ScalarBlock16,
    /// Scalar loads, 8 x 8 outputs an invocation.
    ScalarBlock8,
    /// Workgroup-memory tiles of 128 x 128 with double buffering.
    Tiled,
}

impl Variant {
    /// Every variant.
    pub const ALL: [Variant; 5] =
        [Variant::Vec4Block32, Variant::Vec4Block8, Variant::ScalarBlock16, Variant::ScalarBlock8, Variant::Tiled];

    /// The variant's name as `bench` prints it and `SHADERLENS_MATMUL_VARIANT` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Vec4Block32 => "vec4_32x32",
            Variant::Vec4Block8 => "vec4_8x8",
            Variant::ScalarBlock16 => "scalar_16x16",
            Variant::ScalarBlock8 => "scalar_8x8",
            Variant::Tiled => "tiled",
        }
    }

    /// The variant called `name`, if there is one.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.name() == name)
    }

    /// Shader and entry point.
    pub(super) fn kernel(self) -> (Shader, &'static str) {
        match self {
            Variant::Vec4Block32 => (BLOCKED, "matmul_vec4_32x32"),
            Variant::Vec4Block8 => (BLOCKED, "matmul_vec4_8x8"),
            Variant::ScalarBlock16 => (BLOCKED, "matmul_scalar_16x16"),
            Variant::ScalarBlock8 => (BLOCKED, "matmul_scalar_8x8"),
            Variant::Tiled => (TILED, "matmul_tiled"),
        }
    }

    /// Output tile of one workgroup, `[rows, columns]`.
    pub fn tile(self) -> [u64; 2] {
        match self {
            Variant::Vec4Block32 => [256, 256],
            Variant::Vec4Block8 | Variant::ScalarBlock8 => [64, 64],
            Variant::ScalarBlock16 | Variant::Tiled => [128, 128],
        }
    }

    /// Whether the kernel reads and writes vec4s (and so needs K and N multiples of 4).
    pub fn is_vec4(self) -> bool {
        matches!(self, Variant::Vec4Block32 | Variant::Vec4Block8)
    }

    /// Whether this variant can compute a product with inner size `k` and `n` columns on `gpu`.
    pub fn supports(self, gpu: &Gpu, k: usize, n: usize) -> bool {
        if self.is_vec4() {
            // Every row of a, b and out must start on a 16-byte boundary, and a vec4 binding must
            // hold at least one vec4.
            return k.is_multiple_of(4) && n.is_multiple_of(4) && k > 0;
        }
        if self == Variant::Tiled {
            let l = gpu.limits();
            return l.max_compute_invocations_per_workgroup >= 256
                && l.max_compute_workgroup_size_x >= 16
                && l.max_compute_workgroup_size_y >= 16
                && l.max_compute_workgroup_storage_size >= TILED_WORKGROUP_BYTES;
        }
        true
    }

    /// Every variant in the order this adapter prefers them when nothing has been measured: the
    /// big register blocks first on CPU adapters, the tiled kernel first on GPUs.
    pub fn preferred(gpu: &Gpu) -> [Variant; 5] {
        if gpu.adapter_info().device_type == wgpu::DeviceType::Cpu {
            Self::ALL
        } else {
            [Variant::Tiled, Variant::Vec4Block8, Variant::ScalarBlock8, Variant::Vec4Block32, Variant::ScalarBlock16]
        }
    }
}

impl std::fmt::Display for Variant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
