//! The GPU ops, one module per op of SPEC.
//!
//! Every op offers the same three calls:
//! - `record_into(gpu, encoder, inputs…, out)` records into a caller's encoder, writing a tensor
//!   the caller allocated (nothing is submitted; chain as many as you like before one submit);
//! - `record(gpu, encoder, inputs…)` does the same and allocates the output;
//! - `run(gpu, arrays…)` uploads ndarray inputs, submits, waits and reads the result back.
//!
//! Shapes are checked before any GPU work, with the same checks the host references use.

pub mod adamw;
pub mod attention;
pub mod attention_layer;
pub mod backward;
pub mod gelu;
pub mod layer_norm;
pub mod matmul;
pub mod softmax;

use ndarray::ArrayD;

use crate::error::{Error, Result};
use crate::gpu::{Gpu, Shader};
use crate::tensor::GpuTensor;

/// Records with `f` into a fresh encoder, submits, waits and reads back every tensor `f` returns,
/// all inside wgpu error scopes so that a GPU error comes back as an `Err`.
pub(crate) fn run_many(
    gpu: &Gpu,
    f: impl FnOnce(&mut wgpu::CommandEncoder) -> Result<Vec<GpuTensor>>,
) -> Result<Vec<ArrayD<f32>>> {
    gpu.scoped(|| {
        let mut encoder = gpu.encoder();
        let outputs = f(&mut encoder)?;
        gpu.submit_and_wait(encoder)?;
        outputs.iter().map(|t| t.read(gpu)).collect()
    })
}

/// [`run_many`] for ops with one output.
pub(crate) fn run_single(
    gpu: &Gpu,
    f: impl FnOnce(&mut wgpu::CommandEncoder) -> Result<GpuTensor>,
) -> Result<ArrayD<f32>> {
    let mut outputs = run_many(gpu, |encoder| Ok(vec![f(encoder)?]))?;
    Ok(outputs.remove(0))
}

/// The longest row that the one-invocation-per-row path takes. llvmpipe (lavapipe and Mesa GL)
/// silently stops an invocation after 65535 loop iterations in all, so a single invocation must
/// not walk rows of unbounded length; real GPUs would be slow there anyway.
pub const MAX_INVOCATION_ROW_LEN: usize = 16384;

/// [`RowPath::Auto`] takes the invocation-per-row path for rows of at most this many elements
/// on CPU adapters (lavapipe, Mesa llvmpipe GL, SwiftShader, WARP). Measured on lavapipe: there a
/// workgroup per row costs microseconds of barrier overhead per row, and the invocation path
/// (8 rows per workgroup) wins up to about 1024 elements and ties up to 4096.
pub const AUTO_INVOCATION_ROW_LEN_CPU: usize = 1024;

/// [`RowPath::Auto`] takes the invocation-per-row path for rows of at most this many elements on
/// other adapters (real GPUs, where one thread per row reads memory uncoalesced and leaves most
/// of the device idle when rows are few; a 256-invocation workgroup per row is the usual choice
/// above a warp's width or two).
pub const AUTO_INVOCATION_ROW_LEN_GPU: usize = 64;

/// How a row-wise op (softmax, layer norm) spreads rows over invocations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RowPath {
    /// The invocation path for rows up to [`AUTO_INVOCATION_ROW_LEN_CPU`] or
    /// [`AUTO_INVOCATION_ROW_LEN_GPU`] elements (by the adapter type), the workgroup path above.
    #[default]
    Auto,
    /// One invocation per row, for rows of up to [`MAX_INVOCATION_ROW_LEN`] elements (longer rows
    /// still take the workgroup path).
    InvocationPerRow,
    /// One workgroup per row, of the adapter's preferred size (32 invocations on CPU adapters,
    /// 256 elsewhere).
    WorkgroupPerRow,
    /// One workgroup per row of the given size: a power of two from 32 to 256 (raised for rows of
    /// millions of elements, where llvmpipe's loop cap needs more invocations).
    WorkgroupOf(u32),
}

/// A row-wise op's kernel pair: the entry points of its invocation and workgroup paths.
pub(crate) struct RowKernels {
    pub shader: Shader,
    pub per_invocation: &'static str,
    pub per_workgroup: &'static str,
}

impl RowKernels {
    /// Records the op over `rows` rows of `n` elements with the path `path` asks for.
    #[allow(clippy::too_many_arguments)]
    pub fn record<P: bytemuck::Pod>(
        &self,
        gpu: &Gpu,
        encoder: &mut wgpu::CommandEncoder,
        params: &P,
        buffers: &[&wgpu::Buffer],
        rows: usize,
        n: usize,
        path: RowPath,
    ) -> Result<()> {
        let cpu = gpu.device().adapter_info().device_type == wgpu::DeviceType::Cpu;
        // Measured on lavapipe: 32 and 64 tie on long rows and 32 wins on medium ones.
        let preferred_wide = if cpu { 32 } else { 256 };
        let auto_len = if cpu { AUTO_INVOCATION_ROW_LEN_CPU } else { AUTO_INVOCATION_ROW_LEN_GPU };
        let wide = match path {
            RowPath::Auto => n > auto_len,
            RowPath::InvocationPerRow => n > MAX_INVOCATION_ROW_LEN,
            RowPath::WorkgroupPerRow | RowPath::WorkgroupOf(_) => true,
        };
        let what = self.shader.name;
        if wide {
            let asked = match path {
                RowPath::WorkgroupOf(size) => size,
                _ => preferred_wide,
            };
            if !(asked.is_power_of_two() && (32..=256).contains(&asked)) {
                return Err(Error::Input(format!(
                    "{what}: a workgroup per row must have a power of two from 32 to 256 invocations, not {asked}"
                )));
            }
            // Each invocation loops about 3 n / (8 size) times; llvmpipe's cap of 65535 loop
            // iterations needs size >= n / 170000 (256 covers any row a binding can hold).
            let size = asked.max(((n / 150_000) as u32 + 1).next_power_of_two()).min(256);
            // The reduction's first level combines `group` partials each: about sqrt(size).
            let group = 1u64 << size.trailing_zeros().div_ceil(2);
            let constants = [("WIDE_WG", u64::from(size)), ("GROUP", group)];
            let kernel = gpu.kernel::<P>(self.shader, self.per_workgroup, &constants)?;
            let grid = gpu.grid(rows as u64, &format!("{what} rows (one workgroup each)"))?;
            kernel.record(gpu, encoder, params, buffers, grid);
        } else {
            // On lavapipe a workgroup of 8 is one SIMD chunk, and more workgroups keep every core
            // busy (measured 1.5x to 2x faster than 64 there).
            let rows_per_workgroup: u32 = if cpu { 8 } else { 64 };
            let kernel = gpu.kernel::<P>(self.shader, self.per_invocation, &[("ROWS_WG", u64::from(rows_per_workgroup))])?;
            let count = (rows as u64).div_ceil(u64::from(rows_per_workgroup));
            let grid = gpu.grid(count, &format!("{what} row workgroups"))?;
            kernel.record(gpu, encoder, params, buffers, grid);
        }
        Ok(())
    }
}
