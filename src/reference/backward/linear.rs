//! Backward of `matmul` (2-D) and of the linear maps `y = x W + b` that the model is built from.
//!
//! For `out = a b`: `da = dout bᵀ`, `db = aᵀ dout`. For `y [..., m] = x [..., n] W [n, m] + b [m]`
//! the leading axes of `x` are rows: `dx = dy Wᵀ`, `dW = xᵀ dy` and `db` = the column sums of
//! `dy` (summed in row order, so the same bits on every run). The forwards are
//! [`crate::reference::matmul`] and `linear` in [`crate::reference::transformer`].

use ndarray::{Array2, ArrayD, ArrayView2, ArrayViewD, Axis, Ix2};

use super::{reshaped, shape_err};
use crate::error::{fmt_shape, Error, Result};

/// `(da, db)` for `out = a [M, K] @ b [K, N]` given `dout [M, N]`.
pub fn matmul_backward(
    a: ArrayViewD<'_, f64>,
    b: ArrayViewD<'_, f64>,
    dout: ArrayViewD<'_, f64>,
) -> Result<(ArrayD<f64>, ArrayD<f64>)> {
    let two = |name: &str, x: ArrayViewD<'_, f64>| -> Result<Array2<f64>> {
        x.into_dimensionality::<Ix2>()
            .map(|v| v.to_owned())
            .map_err(|_| Error::Shape(format!("matmul backward needs a rank-2 {name}")))
    };
    let (a, b, dout) = (two("a", a)?, two("b", b)?, two("dout", dout)?);
    if a.ncols() != b.nrows() || dout.dim() != (a.nrows(), b.ncols()) {
        return Err(Error::Shape(format!(
            "matmul backward: a is {}, b is {} and dout is {}; dout must be [{}, {}] and the inner sizes equal",
            fmt_shape(a.shape()),
            fmt_shape(b.shape()),
            fmt_shape(dout.shape()),
            a.nrows(),
            b.ncols()
        )));
    }
    let (da, db) = (dout.dot(&b.t()), a.t().dot(&dout));
    Ok((reshaped(&da, da.shape())?, reshaped(&db, db.shape())?))
}

/// The gradients of `y = x W + b`.
#[derive(Clone, Debug)]
pub struct LinearGrads {
    /// d/dx, the shape of x.
    pub dx: ArrayD<f64>,
    /// d/dW \[n, m\].
    pub dw: ArrayD<f64>,
    /// d/db \[m\].
    pub db: ArrayD<f64>,
}

/// `x [..., n]` as rows `[rows, n]`.
pub(crate) fn rows(x: ArrayViewD<'_, f64>) -> Result<ArrayView2<'_, f64>> {
    let n = *x.shape().last().ok_or_else(|| Error::Shape("a linear map needs x of rank >= 1".into()))?;
    let count = x.len() / n.max(1);
    let x = if x.is_standard_layout() { x } else { return Err(Error::Shape("x must be in C order".into())) };
    x.into_shape_with_order((count, n)).map_err(shape_err)
}

/// Backward of `y [..., m] = x [..., n] @ w [n, m] + b [m]` given `dy [..., m]`.
pub fn linear_backward(x: ArrayViewD<'_, f64>, w: ArrayViewD<'_, f64>, dy: ArrayViewD<'_, f64>) -> Result<LinearGrads> {
    let w2 = w.into_dimensionality::<Ix2>().map_err(|_| Error::Shape("linear backward needs a rank-2 W".into()))?;
    let mut y_shape = x.shape().to_vec();
    if let Some(last) = y_shape.last_mut() {
        *last = w2.ncols();
    }
    if x.shape().last() != Some(&w2.nrows()) || dy.shape() != y_shape.as_slice() {
        return Err(Error::Shape(format!(
            "linear backward: x is {}, W is {} and dy is {}; dy must be {}",
            fmt_shape(x.shape()),
            fmt_shape(w2.shape()),
            fmt_shape(dy.shape()),
            fmt_shape(&y_shape)
        )));
    }
    let x_std = x.as_standard_layout();
    let dy_std = dy.as_standard_layout();
    let xr = rows(x_std.view())?;
    let dyr = rows(dy_std.view())?;
    let dx = reshaped(&dyr.dot(&w2.t()), x.shape())?;
    let dw = xr.t().dot(&dyr);
    Ok(LinearGrads { dx, dw: reshaped(&dw, dw.shape())?, db: column_sums(dy_std.view())? })
}

/// The sums over every leading axis of `dy [..., m]`: `[m]`, rows added in order.
pub fn column_sums(dy: ArrayViewD<'_, f64>) -> Result<ArrayD<f64>> {
    let std = dy.as_standard_layout();
    let r = rows(std.view())?;
    Ok(r.sum_axis(Axis(0)).into_dyn())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{arr1, arr2, arr3};

    #[test]
    fn linear_backward_by_hand() {
        let x = arr3(&[[[1.0, 2.0], [3.0, 4.0]]]).into_dyn();
        let w = arr2(&[[1.0, 0.0, -1.0], [2.0, 1.0, 0.5]]).into_dyn();
        let dy = arr3(&[[[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]]]).into_dyn();
        let g = linear_backward(x.view(), w.view(), dy.view()).unwrap();
        assert_eq!(g.dx, arr3(&[[[1.0, 2.0], [-1.0, 1.5]]]).into_dyn());
        assert_eq!(g.dw, arr2(&[[1.0, 3.0, 3.0], [2.0, 4.0, 4.0]]).into_dyn());
        assert_eq!(g.db, arr1(&[1.0, 1.0, 1.0]).into_dyn());
        let e = linear_backward(x.view(), w.view(), x.view()).unwrap_err().to_string();
        assert!(e.contains("dy must be [1, 2, 3]"), "{e}");
    }
}
