//! Cross-entropy (SPEC's Gradients) on the GPU: `shaders/cross_entropy_backward.wgsl` writes each
//! row's loss and d loss / d logits (one workgroup per row; log-sum-exp shifted by the row
//! maximum), then [`super::reduce::total`] sums the rows in a fixed order and divides by the
//! number of counted positions. The targets are checked on the host before any GPU work, by the
//! float64 twin's own check ([`crate::spec::loss::check_targets`]): a target
//! `>= d_vocab_out` is an error naming its position, and targets that count no position are
//! refused.

use ndarray::ArrayViewD;

use super::{count, launch, Params, CROSS_ENTROPY};
use crate::error::{fmt_shape, Error, Result};
use crate::gpu::Gpu;
use crate::spec::loss::check_targets;
use crate::tensor::GpuTensor;

/// Checks `targets` against `logits_shape` and returns them as i32 (negative: no loss) with the
/// number of counted positions.
pub fn prepare_targets(logits_shape: &[usize], targets: ArrayViewD<'_, i64>) -> Result<(Vec<i32>, usize)> {
    let counted = check_targets(logits_shape, targets.view())?;
    let ids = targets.iter().map(|&t| if t < 0 { -1 } else { t as i32 }).collect();
    Ok((ids, counted))
}

/// Records the loss (into `loss`, one element) and `dlogits` (the logits' shape) for `logits`
/// \[..., V\] and the i32 `targets` buffer of [`prepare_targets`] with `counted` positions;
/// `row_loss` \[rows\] is working space. One workgroup walks each row.
#[allow(clippy::too_many_arguments)]
pub fn record(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    logits: &GpuTensor,
    targets: &wgpu::Buffer,
    counted: usize,
    dlogits: &GpuTensor,
    row_loss: &GpuTensor,
    loss: &GpuTensor,
) -> Result<()> {
    let io = Io { logits, targets, counted, dlogits, row_loss, loss };
    record_with(gpu, encoder, &io, "cross_entropy", 1)
}

/// The longest row [`record_short_rows`] takes (one invocation walks it three times).
pub const SHORT_ROW: usize = 64;

/// [`record`] for many short rows (at most [`SHORT_ROW`] logits, e.g. a board probe's 3 classes
/// per square): one invocation per row instead of one workgroup, the same loss and gradient.
#[allow(clippy::too_many_arguments)]
pub fn record_short_rows(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    logits: &GpuTensor,
    targets: &wgpu::Buffer,
    counted: usize,
    dlogits: &GpuTensor,
    row_loss: &GpuTensor,
    loss: &GpuTensor,
) -> Result<()> {
    let vocab = logits.shape().last().copied().unwrap_or(1);
    if vocab > SHORT_ROW {
        return Err(Error::Shape(format!("short-row cross-entropy of logits {}: rows longer than {SHORT_ROW}", fmt_shape(logits.shape()))));
    }
    let io = Io { logits, targets, counted, dlogits, row_loss, loss };
    record_with(gpu, encoder, &io, "cross_entropy_short", 256)
}

/// The buffers of one cross-entropy.
struct Io<'a> {
    logits: &'a GpuTensor,
    targets: &'a wgpu::Buffer,
    counted: usize,
    dlogits: &'a GpuTensor,
    row_loss: &'a GpuTensor,
    loss: &'a GpuTensor,
}

/// Checks the buffers, then records entry point `entry` (`rows_per_group` rows a workgroup) and
/// the total of the row losses.
fn record_with(gpu: &Gpu, encoder: &mut wgpu::CommandEncoder, io: &Io<'_>, entry: &'static str, rows_per_group: u64) -> Result<()> {
    let Io { logits, targets, counted, dlogits, row_loss, loss } = *io;
    super::same_shape("cross-entropy", &[("logits", logits), ("dlogits", dlogits)])?;
    let (rows, vocab) = super::rows_of(logits);
    if row_loss.len() != rows || loss.len() != 1 || targets.size() < (rows * 4) as u64 {
        return Err(Error::Shape(format!(
            "cross-entropy of logits {} needs {rows} targets, {rows} row losses and one loss, not {} and {}",
            fmt_shape(logits.shape()),
            fmt_shape(row_loss.shape()),
            fmt_shape(loss.shape())
        )));
    }
    if counted == 0 {
        return Err(Error::Input("cross-entropy: the targets count no position".into()));
    }
    let inv = 1.0 / counted as f32;
    let params = Params { rows: count(rows, "cross-entropy rows")?, cols: count(vocab, "cross-entropy vocabulary")?, value: inv, ..Params::default() };
    launch(gpu, encoder, CROSS_ENTROPY, entry, params, &[logits.buffer(), targets, dlogits.buffer(), row_loss.buffer()], rows as u64, rows_per_group)?;
    super::reduce::total(gpu, encoder, row_loss, inv, loss, false)
}

/// Uploads, runs and reads back: `(loss, dlogits)` for host `logits` and `targets`.
pub fn run(gpu: &Gpu, logits: ArrayViewD<'_, f32>, targets: ArrayViewD<'_, i64>) -> Result<(f32, ndarray::ArrayD<f32>)> {
    let (ids, counted) = prepare_targets(logits.shape(), targets)?;
    let x = GpuTensor::upload(gpu, logits, "logits")?;
    let buffer = gpu.buffer_with("targets", bytemuck::cast_slice(&ids), wgpu::BufferUsages::STORAGE);
    let outputs = crate::ops::run_many(gpu, |encoder| {
        let d = GpuTensor::empty(gpu, x.shape(), "dlogits")?;
        let rows = GpuTensor::empty(gpu, &[ids.len()], "row losses")?;
        let loss = GpuTensor::empty(gpu, &[1], "loss")?;
        record(gpu, encoder, &x, &buffer, counted, &d, &rows, &loss)?;
        Ok(vec![loss, d])
    })?;
    let loss = outputs[0].iter().next().copied().unwrap_or(f32::NAN);
    Ok((loss, outputs[1].clone()))
}
