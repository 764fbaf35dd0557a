//! A linear probe trained on the GPU with the training kernels, and its predictions.
//!
//! The activations and targets are uploaded once as [`Rows`]: chunks of at most
//! [`CHUNK_ROWS`] rows (bounded so that no buffer passes the device's binding limit and no
//! matmul invocation walks more rows than llvmpipe allows), which stay on the GPU for every
//! step. One step, one submission, no readback: per chunk `logits = x W + b`
//! ([`record_gemm`] with a bias), the cross-entropy rows and d logits
//! ([`crate::ops::backward::loss::record_short_rows`], scaled by the WHOLE set's count so the chunks add up to the
//! full-batch mean), `dW (+)= xᵀ dlogits` ([`record_gemm`] with `aᵀ`), `db (+)= Σ dlogits`
//! ([`crate::ops::backward::reduce::column_sums`]); then AdamW on `W` and on `b`
//! ([`crate::ops::adamw`]). The float64 twin is [`super::reference::HostProbe`].

use ndarray::{Array1, Array2, ArrayView2, Axis};

use super::{Hyper, Weights, CLASSES, OUTPUTS, SQUARES};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::ops::adamw::{record_into as adamw_into, State};
use crate::ops::backward::{loss, reduce};
use crate::ops::matmul::{record_gemm, Gemm};
use crate::tensor::GpuTensor;

/// The most rows one chunk holds.
pub const CHUNK_ROWS: usize = 8192;

/// One chunk of rows on the GPU with its working space.
#[derive(Debug)]
struct Chunk {
    x: GpuTensor,
    targets: wgpu::Buffer,
    logits: GpuTensor,
    dlogits: GpuTensor,
    row_loss: GpuTensor,
    loss: GpuTensor,
}

/// Activations \[rows, d\] and their targets \[rows, 64\], uploaded in chunks.
#[derive(Debug)]
pub struct Rows {
    chunks: Vec<Chunk>,
    d: usize,
    rows: usize,
}

impl Rows {
    /// Uploads `x` \[rows, d\] and `targets` \[rows, 64\] (classes 0..3), checked first.
    pub fn upload(gpu: &Gpu, x: ArrayView2<'_, f32>, targets: ArrayView2<'_, i64>) -> Result<Rows> {
        let d = x.ncols();
        let rows = super::reference::check(x, targets, d)?;
        let per = CHUNK_ROWS.min((gpu.limits().max_storage_buffer_binding_size as usize / (4 * d.max(OUTPUTS))).max(1));
        let mut chunks = Vec::new();
        for start in (0..rows).step_by(per) {
            let end = (start + per).min(rows);
            let n = end - start;
            let (ids, _) = loss::prepare_targets(&[n, SQUARES, CLASSES], targets.slice(ndarray::s![start..end, ..]).into_dyn())?;
            chunks.push(Chunk {
                x: GpuTensor::upload(gpu, x.slice(ndarray::s![start..end, ..]).into_dyn(), "probe activations")?,
                targets: gpu.buffer_with("probe targets", bytemuck::cast_slice(&ids), wgpu::BufferUsages::STORAGE),
                logits: GpuTensor::empty(gpu, &[n, OUTPUTS], "probe logits")?,
                dlogits: GpuTensor::empty(gpu, &[n, OUTPUTS], "probe dlogits")?,
                row_loss: GpuTensor::empty(gpu, &[n * SQUARES], "probe row losses")?,
                loss: GpuTensor::empty(gpu, &[1], "probe loss")?,
            });
        }
        Ok(Rows { chunks, d, rows })
    }

    /// The number of rows.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// True when there is no row (never, after [`Rows::upload`]).
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }
}

/// A probe on the GPU: `W`, `b`, their AdamW moments and gradients.
#[derive(Debug)]
pub struct GpuProbe {
    w: State,
    b: State,
    dw: GpuTensor,
    db: GpuTensor,
    hyper: Hyper,
    steps: i64,
}

impl GpuProbe {
    /// A probe starting from `weights` with zero moments.
    pub fn new(gpu: &Gpu, weights: &Weights, hyper: Hyper) -> Result<GpuProbe> {
        hyper.check()?;
        let (d, out) = weights.w.dim();
        if out != OUTPUTS || weights.b.len() != OUTPUTS {
            return Err(Error::Shape(format!("probe weights {:?} and {:?}; expected [d, {OUTPUTS}] and [{OUTPUTS}]", weights.w.shape(), weights.b.shape())));
        }
        let up = |a: ndarray::ArrayViewD<'_, f64>, name: &str| GpuTensor::upload(gpu, a.mapv(|v| v as f32).view(), name);
        let zeros = |shape: &[usize], name: &str| GpuTensor::empty(gpu, shape, name);
        Ok(GpuProbe {
            w: State { param: up(weights.w.view().into_dyn(), "probe W")?, m: zeros(&[d, OUTPUTS], "probe W m")?, v: zeros(&[d, OUTPUTS], "probe W v")? },
            b: State { param: up(weights.b.view().into_dyn(), "probe b")?, m: zeros(&[OUTPUTS], "probe b m")?, v: zeros(&[OUTPUTS], "probe b v")? },
            dw: zeros(&[d, OUTPUTS], "probe dW")?,
            db: zeros(&[OUTPUTS], "probe db")?,
            hyper,
            steps: 0,
        })
    }

    /// Trains a fresh probe (seeded init, [`Hyper::steps`] full-batch updates) on `rows`.
    pub fn fit(gpu: &Gpu, rows: &Rows, hyper: Hyper) -> Result<GpuProbe> {
        let mut probe = GpuProbe::new(gpu, &super::init(rows.d, hyper.seed), hyper)?;
        for _ in 0..hyper.steps {
            probe.step(gpu, rows)?;
        }
        Ok(probe)
    }

    fn check(&self, rows: &Rows) -> Result<()> {
        if rows.d != self.w.param.shape()[0] {
            return Err(Error::Shape(format!("probe of width {} given activations of width {}", self.w.param.shape()[0], rows.d)));
        }
        Ok(())
    }

    /// Records `logits = x W + b` for one chunk.
    fn record_logits(&self, gpu: &Gpu, encoder: &mut wgpu::CommandEncoder, c: &Chunk) -> Result<()> {
        record_gemm(gpu, encoder, &c.x, &self.w.param, &c.logits, &Gemm { bias: Some(&self.b.param), ..Gemm::default() })
    }

    /// One full-batch AdamW update on `rows` (one submission, nothing read back).
    pub fn step(&mut self, gpu: &Gpu, rows: &Rows) -> Result<()> {
        self.check(rows)?;
        let count = rows.rows * SQUARES;
        self.steps += 1;
        gpu.scoped(|| {
            let mut encoder = gpu.encoder();
            for (i, c) in rows.chunks.iter().enumerate() {
                let n = c.x.shape()[0];
                self.record_logits(gpu, &mut encoder, c)?;
                let cells = [n * SQUARES, CLASSES];
                loss::record_short_rows(gpu, &mut encoder, &c.logits.reshaped(&cells)?, &c.targets, count, &c.dlogits.reshaped(&cells)?, &c.row_loss, &c.loss)?;
                let accumulate = i > 0;
                record_gemm(gpu, &mut encoder, &c.x, &c.dlogits, &self.dw, &Gemm { transpose_a: true, accumulate, ..Gemm::default() })?;
                reduce::column_sums(gpu, &mut encoder, &c.dlogits, None, &self.db, accumulate)?;
            }
            adamw_into(gpu, &mut encoder, &self.w, &self.dw, self.steps, &self.hyper.adamw)?;
            adamw_into(gpu, &mut encoder, &self.b, &self.db, self.steps, &self.hyper.adamw)?;
            gpu.submit_and_wait(encoder)
        })
    }

    /// The mean loss of the last [`GpuProbe::step`] (before its update), summed over the chunks.
    pub fn last_loss(&self, gpu: &Gpu, rows: &Rows) -> Result<f64> {
        let losses: Vec<&GpuTensor> = rows.chunks.iter().map(|c| &c.loss).collect();
        Ok(GpuTensor::read_all(gpu, &losses)?.iter().flat_map(|a| a.iter().map(|&v| v as f64)).sum())
    }

    /// The logits \[rows, 192\] of `rows`, read back.
    pub fn logits(&self, gpu: &Gpu, rows: &Rows) -> Result<Array2<f32>> {
        self.check(rows)?;
        let arrays = gpu.scoped(|| {
            let mut encoder = gpu.encoder();
            for c in &rows.chunks {
                self.record_logits(gpu, &mut encoder, c)?;
            }
            gpu.submit_and_wait(encoder)?;
            GpuTensor::read_all(gpu, &rows.chunks.iter().map(|c| &c.logits).collect::<Vec<_>>())
        })?;
        let views: Vec<_> = arrays.iter().map(|a| a.view().into_shape_with_order((a.len() / OUTPUTS, OUTPUTS))).collect::<std::result::Result<_, _>>().map_err(|e| Error::Shape(e.to_string()))?;
        ndarray::concatenate(Axis(0), &views).map_err(|e| Error::Shape(e.to_string()))
    }

    /// The predicted class of every square of `rows` \[rows, 64\].
    pub fn predict(&self, gpu: &Gpu, rows: &Rows) -> Result<Array2<i64>> {
        Ok(super::classes(self.logits(gpu, rows)?.view()))
    }

    /// The weights, read back.
    pub fn weights(&self, gpu: &Gpu) -> Result<Weights> {
        let all = GpuTensor::read_all(gpu, &[&self.w.param, &self.b.param])?;
        let d = self.w.param.shape()[0];
        let w = Array2::from_shape_vec((d, OUTPUTS), all[0].iter().map(|&v| v as f64).collect()).map_err(|e| Error::Shape(e.to_string()))?;
        let b = Array1::from_iter(all[1].iter().map(|&v| v as f64));
        Ok(Weights { w, b })
    }
}
