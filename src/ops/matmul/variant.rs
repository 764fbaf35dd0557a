//! The matmul kernels shaderlens has, what each needs, and which one an adapter prefers.
//!
//! All of them compute the same thing (every output one fused multiply-add chain in increasing k)
//! with the same bindings and `Params`, so any of them can serve any call it supports. The list
//! itself (names, entry points, tiles, kinds) is generated with the WGSL (`table.rs`, from
//! `scripts/gen_matmul_wgsl.py`):
//!
//! | variant | block an invocation | tile a workgroup | computes | needs |
//! |---|---|---|---|---|
//! | `vec4_32x32` | 32 x 32 | 256 x 256 | `a b` | K, N multiples of 4 |
//! | `vec4_8x8` | 8 x 8 | 64 x 64 | `a b` | K, N multiples of 4 |
//! | `scalar_16x16` | 16 x 16 | 128 x 128 | any transposes | — |
//! | `scalar_8x8` | 8 x 8 | 64 x 64 | any transposes | — |
//! | `tiled` | 8 x 8 | 128 x 128 | any transposes | 256 invocations, 16 KiB workgroup memory |
//! | `vec4nt_16x16` | 16 x 16 | 128 x 128 | `a bᵀ` | K a multiple of 4 |
//! | `vec4nt_8x8` | 8 x 8 | 64 x 64 | `a bᵀ` | K a multiple of 4 |
//!
//! The register-blocked kernels (no workgroup memory) suit CPU drivers, the big blocks most; the
//! tiled, double-buffered kernel is the classic one for GPUs. Which is fastest where is measured by
//! the autotuner ([`super::autotune`]); [`Variant::preferred`] is the order it falls back on.

use crate::gpu::{Gpu, Shader};

pub use super::table::{Kind, Variant};

pub(super) const BLOCKED: Shader = crate::gpu::shaders::MATMUL;
pub(super) const TILED: Shader = crate::gpu::shaders::MATMUL_TILED;

/// Workgroup memory the tiled kernel declares: two stages of a 128 x 8 and an 8 x 128 slice.
const TILED_WORKGROUP_BYTES: u32 = 2 * 2 * 1024 * 4;

impl Variant {
    /// The variant called `name`, if there is one.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.name() == name)
    }

    /// Shader and entry point.
    pub(super) fn kernel(self) -> (Shader, &'static str) {
        match self.kind() {
            Kind::Tiled => (TILED, self.entry()),
            _ => (BLOCKED, self.entry()),
        }
    }

    /// Whether the kernel reads and writes vec4s along N (and so needs K and N multiples of 4).
    pub fn is_vec4(self) -> bool {
        self.kind() == Kind::Vec4
    }

    /// Whether this variant can compute `a b` (no transposes) with inner size `k` and `n`
    /// columns on `gpu`.
    pub fn supports(self, gpu: &Gpu, k: usize, n: usize) -> bool {
        self.supports_product(gpu, false, false, k, n)
    }

    /// Whether this variant can compute `op(a) op(b)` (`transpose_a`, `transpose_b`) with inner
    /// size `k` and `n` columns on `gpu`.
    pub fn supports_product(self, gpu: &Gpu, transpose_a: bool, transpose_b: bool, k: usize, n: usize) -> bool {
        match self.kind() {
            // Every row of a, b and out must start on a 16-byte boundary, and a vec4 binding must
            // hold at least one vec4.
            Kind::Vec4 => !transpose_a && !transpose_b && k.is_multiple_of(4) && n.is_multiple_of(4) && k > 0,
            Kind::Vec4Nt => !transpose_a && transpose_b && k.is_multiple_of(4) && k > 0,
            Kind::Scalar => true,
            Kind::Tiled => {
                let l = gpu.limits();
                l.max_compute_invocations_per_workgroup >= 256
                    && l.max_compute_workgroup_size_x >= 16
                    && l.max_compute_workgroup_size_y >= 16
                    && l.max_compute_workgroup_storage_size >= TILED_WORKGROUP_BYTES
            }
        }
    }

    /// Every variant in the order this adapter prefers them when nothing has been measured: the
    /// big register blocks first on CPU adapters, the tiled kernel first on GPUs.
    pub fn preferred(gpu: &Gpu) -> [Variant; 7] {
        if gpu.adapter_info().device_type == wgpu::DeviceType::Cpu {
            [
                Variant::Vec4Block32,
                Variant::Vec4NtBlock16,
                Variant::Vec4Block8,
                Variant::Vec4NtBlock8,
                Variant::ScalarBlock16,
                Variant::ScalarBlock8,
                Variant::Tiled,
            ]
        } else {
            [
                Variant::Tiled,
                Variant::Vec4Block8,
                Variant::Vec4NtBlock8,
                Variant::ScalarBlock8,
                Variant::Vec4Block32,
                Variant::Vec4NtBlock16,
                Variant::ScalarBlock16,
            ]
        }
    }
}

impl std::fmt::Display for Variant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
