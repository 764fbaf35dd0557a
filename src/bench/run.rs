//! What one bench case hands the timing loop: its GPU runs, its host reference and its work, and
//! the deterministic inputs every case uses. Shared by the op cases (`cases.rs`) and the
//! transformer case (`transformer.rs`), which import it and not each other.

use ndarray::{ArrayD, IxDyn};

use crate::error::Result;

/// How much one run of a case does: the rate `bench` reports is this over the time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Work {
    /// Floating-point operations (multiply and add counted apart).
    Flops(f64),
    /// Bytes read and written at least once.
    Bytes(f64),
}

/// Records one run of a variant into an encoder.
pub type Record<'a> = Box<dyn FnMut(&mut wgpu::CommandEncoder) -> Result<()> + 'a>;

/// One way of running a case on the GPU.
pub struct GpuRun<'a> {
    /// The kernel variant's name (`"default"` for ops with one).
    pub variant: String,
    /// How the variant was chosen: `"autotune"`, `"static"` (autotuning off or work too small to
    /// measure), `"only"` (the op has one), or `"fixed"` (a row that shows one variant by name).
    pub choice: &'static str,
    /// Records the run.
    pub record: Record<'a>,
}

/// A case ready to time: its GPU runs, its host reference, its work.
pub struct Prepared<'a> {
    /// The GPU runs: the op's own choice first, then (with `variants`) every other variant.
    pub runs: Vec<GpuRun<'a>>,
    /// Runs the float64 host reference once on inputs already converted.
    pub host: Box<dyn FnMut() -> Result<()> + 'a>,
    /// The work of one run.
    pub work: Work,
}

/// Deterministic inputs in [-1, 1) (splitmix64), so that every run times the same numbers.
pub fn inputs(shape: &[usize], seed: u64) -> ArrayD<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5EED;
    ArrayD::from_shape_simple_fn(IxDyn(shape), || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        ((z >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    })
}
