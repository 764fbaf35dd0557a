//! Backward of TransformerLens's LayerNorm (`LN`, and `LNPre` without weights), in the steps its
//! hooks split it into, so that a gradient can stop at or be changed by `hook_scale` and
//! `hook_normalized` as in the forward (the forward is [`crate::reference::layer_norm`]).
//!
//! Forward: `c = x - mean(x)`, `s = sqrt(mean(c²) + eps)` (`hook_scale`; an intervention may
//! replace it by `s'`), `n = c / s'` (`hook_normalized`), `y = n w + b` (`LN`) or `y = n`.
//! Backward, per row of N:
//! - [`affine_backward`]: `dn = dy w`, `dw = Σ_rows dy n`, `db = Σ_rows dy`;
//! - [`normalize_backward`]: `dc = dn / s'` and `ds' = -Σ_j dn_j c_j / s'²` (what
//!   TransformerLens caches as `hook_scale_grad`);
//! - [`scale_backward`]: `dc += ds c / (N s)` (through `s = sqrt(mean c² + eps)`), then
//!   `dx = dc - mean(dc)` (through the centring).
//!
//! [`layer_norm_backward`] chains the three for a plain call.

use ndarray::{ArrayD, ArrayViewD, Axis, Zip};

use super::linear::column_sums;
use super::same_shape;
use crate::error::{Error, Result};
use crate::reference::layer_norm::{check_eps, check_shapes, scale_shape};

/// Every gradient of one layer norm.
#[derive(Clone, Debug)]
pub struct LayerNormGrads {
    /// d/dx.
    pub dx: ArrayD<f64>,
    /// d/dw (`LN` only).
    pub dw: Option<ArrayD<f64>>,
    /// d/db (`LN` only).
    pub db: Option<ArrayD<f64>>,
    /// d/d`hook_scale` \[..., 1\].
    pub d_scale: ArrayD<f64>,
    /// d/d`hook_normalized`.
    pub d_normalized: ArrayD<f64>,
}

/// `c = x - mean(x)` per row, with the forward's refined mean.
pub fn centred(x: ArrayViewD<'_, f64>) -> Result<ArrayD<f64>> {
    let (_, n) = check_shapes(x.shape(), None)?;
    let mut c = x.to_owned();
    if c.is_empty() {
        return Ok(c);
    }
    let last = Axis(x.ndim() - 1);
    for mut row in c.lanes_mut(last) {
        let mut mean = row.sum() / n as f64;
        mean += row.fold(0.0, |acc, &v| acc + (v - mean)) / n as f64;
        row.mapv_inplace(|v| v - mean);
    }
    Ok(c)
}

/// `(dn, dw, db)` for `y = n w + b` given `dy` (both \[..., N\], `w` \[N\]).
pub fn affine_backward(
    normalized: ArrayViewD<'_, f64>,
    w: ArrayViewD<'_, f64>,
    dy: ArrayViewD<'_, f64>,
) -> Result<(ArrayD<f64>, ArrayD<f64>, ArrayD<f64>)> {
    same_shape("layer norm dy", dy.shape(), normalized.shape())?;
    check_shapes(normalized.shape(), Some((w.shape(), w.shape())))?;
    let dn = &dy * &w;
    let dw = column_sums((&dy * &normalized).view())?;
    Ok((dn, dw, column_sums(dy)?))
}

/// `(dc, d_scale)` for `n = c / s'`: the direct part of d/dc and d/d`s'` \[..., 1\].
pub fn normalize_backward(
    c: ArrayViewD<'_, f64>,
    scale_used: ArrayViewD<'_, f64>,
    dn: ArrayViewD<'_, f64>,
) -> Result<(ArrayD<f64>, ArrayD<f64>)> {
    same_shape("layer norm d normalized", dn.shape(), c.shape())?;
    same_shape("layer norm scale", scale_used.shape(), &scale_shape(c.shape()))?;
    let dc = &dn / &scale_used;
    let mut d_scale = scale_used.to_owned();
    if c.is_empty() {
        return Ok((dc, d_scale));
    }
    let last = Axis(c.ndim() - 1);
    for ((mut ds, c_row), dn_row) in d_scale.lanes_mut(last).into_iter().zip(c.lanes(last)).zip(dn.lanes(last)) {
        let s = ds[0];
        let dot = Zip::from(&c_row).and(&dn_row).fold(0.0, |acc, &c, &d| acc + c * d);
        ds[0] = -dot / (s * s);
    }
    Ok((dc, d_scale))
}

/// `dx` from `dc` (the direct part) and `d_scale` (d/d`s`, after any intervention on it), for
/// input `x` and `eps`: through `s = sqrt(mean c² + eps)` and the centring.
pub fn scale_backward(x: ArrayViewD<'_, f64>, eps: f64, d_scale: ArrayViewD<'_, f64>, dc: ArrayViewD<'_, f64>) -> Result<ArrayD<f64>> {
    check_eps(eps)?;
    same_shape("layer norm dc", dc.shape(), x.shape())?;
    same_shape("layer norm d scale", d_scale.shape(), &scale_shape(x.shape()))?;
    let c = centred(x.view())?;
    let mut dx = dc.to_owned();
    if dx.is_empty() {
        return Ok(dx);
    }
    let n = *x.shape().last().unwrap_or(&1) as f64;
    let last = Axis(x.ndim() - 1);
    for ((mut row, c_row), ds) in dx.lanes_mut(last).into_iter().zip(c.lanes(last)).zip(d_scale.lanes(last)) {
        let s = (c_row.fold(0.0, |acc, &v| acc + v * v) / n + eps).sqrt();
        if s == 0.0 {
            return Err(Error::Input("layer norm backward: a constant row with eps 0 has scale 0, so no gradient".into()));
        }
        Zip::from(&mut row).and(&c_row).for_each(|d, &c| *d += ds[0] * c / (n * s));
        let mean = row.sum() / n;
        row.mapv_inplace(|d| d - mean);
    }
    Ok(dx)
}

/// The whole backward of `layer_norm(x, w, b, eps)` (`w` absent: `LNPre`) given `dy`.
pub fn layer_norm_backward(x: ArrayViewD<'_, f64>, w: Option<ArrayViewD<'_, f64>>, eps: f64, dy: ArrayViewD<'_, f64>) -> Result<LayerNormGrads> {
    let (normalized, scale) = crate::reference::layer_norm::layer_norm_full(x.view(), None, eps)?;
    let (dn, dw, db) = match w {
        Some(w) => {
            let (dn, dw, db) = affine_backward(normalized.view(), w, dy)?;
            (dn, Some(dw), Some(db))
        }
        None => {
            same_shape("layer norm dy", dy.shape(), x.shape())?;
            (dy.to_owned(), None, None)
        }
    };
    let c = centred(x.view())?;
    let (dc, d_scale) = normalize_backward(c.view(), scale.view(), dn.view())?;
    let dx = scale_backward(x, eps, d_scale.view(), dc.view())?;
    Ok(LayerNormGrads { dx, dw, db, d_scale, d_normalized: dn })
}
