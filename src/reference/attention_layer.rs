//! Host reference for `attention_layer`, in float64: TransformerLens's attention block.
//!
//! For x \[B,S,d_model\] and per-head weights, `q = x W_Q[h] + b_Q[h]` (likewise k and v, each
//! \[B,S,H,d_head\] as TransformerLens caches them), causal attention with scale `1/sqrt(d_head)`
//! per head (see [`crate::reference::attention`]), `z` \[B,S,H,d_head\], and
//! `out = Σ_h z_h W_O[h] + b_O`. [`attention_layer_shapes`] is the one shape check, shared with
//! the GPU op.

use ndarray::{s, Array2, Array4, ArrayD, ArrayView2, ArrayView3, ArrayViewD, Ix1};

use crate::error::{element_count, fmt_shape, Error, Result};
use crate::reference::attention::attention_scores;

/// The weights of one attention layer, under TransformerLens's names: `W_Q` `W_K` `W_V`
/// \[H, d_model, d_head\], `b_Q` `b_K` `b_V` \[H, d_head\], `W_O` \[H, d_head, d_model\], `b_O`
/// \[d_model\]. Generic so that the same struct holds ndarray views, GPU tensors or shapes.
#[derive(Clone, Copy, Debug)]
pub struct AttentionWeights<T> {
    /// `W_Q` \[H, d_model, d_head\].
    pub w_q: T,
    /// `W_K` \[H, d_model, d_head\].
    pub w_k: T,
    /// `W_V` \[H, d_model, d_head\].
    pub w_v: T,
    /// `b_Q` \[H, d_head\].
    pub b_q: T,
    /// `b_K` \[H, d_head\].
    pub b_k: T,
    /// `b_V` \[H, d_head\].
    pub b_v: T,
    /// `W_O` \[H, d_head, d_model\].
    pub w_o: T,
    /// `b_O` \[d_model\].
    pub b_o: T,
}

impl<T> AttentionWeights<T> {
    /// Applies `f` to every weight, e.g. to take shapes or to upload.
    pub fn map<'a, U>(&'a self, mut f: impl FnMut(&'static str, &'a T) -> U) -> AttentionWeights<U> {
        AttentionWeights {
            w_q: f("W_Q", &self.w_q),
            w_k: f("W_K", &self.w_k),
            w_v: f("W_V", &self.w_v),
            b_q: f("b_Q", &self.b_q),
            b_k: f("b_K", &self.b_k),
            b_v: f("b_V", &self.b_v),
            w_o: f("W_O", &self.w_o),
            b_o: f("b_O", &self.b_o),
        }
    }

    /// `map` that stops at the first error.
    pub fn try_map<'a, U>(
        &'a self,
        mut f: impl FnMut(&'static str, &'a T) -> Result<U>,
    ) -> Result<AttentionWeights<U>> {
        Ok(AttentionWeights {
            w_q: f("W_Q", &self.w_q)?,
            w_k: f("W_K", &self.w_k)?,
            w_v: f("W_V", &self.w_v)?,
            b_q: f("b_Q", &self.b_q)?,
            b_k: f("b_K", &self.b_k)?,
            b_v: f("b_V", &self.b_v)?,
            w_o: f("W_O", &self.w_o)?,
            b_o: f("b_O", &self.b_o)?,
        })
    }
}

/// The sizes of one attention layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerDims {
    /// B.
    pub batch: usize,
    /// S, the sequence length.
    pub seq: usize,
    /// d_model.
    pub d_model: usize,
    /// H, the number of heads.
    pub heads: usize,
    /// d_head.
    pub d_head: usize,
}

impl LayerDims {
    /// The scale of the scores, `1/sqrt(d_head)`.
    pub fn scale(&self) -> f64 {
        1.0 / (self.d_head as f64).sqrt()
    }
}

/// Checks x \[B,S,d_model\] and the weights' shapes against each other and returns the sizes.
pub fn attention_layer_shapes(x: &[usize], w: &AttentionWeights<&[usize]>) -> Result<LayerDims> {
    let rank = |name: &str, shape: &[usize], want: &str| {
        if shape.len() == want.split(',').count() {
            return Ok(());
        }
        Err(Error::Shape(format!("{name} is {} but attention_layer needs {name} as [{want}]", fmt_shape(shape))))
    };
    rank("x", x, "B, S, d_model")?;
    rank("W_Q", w.w_q, "H, d_model, d_head")?;
    let (h, dm, dh) = (w.w_q[0], w.w_q[1], w.w_q[2]);
    if dm != x[2] {
        return Err(Error::Shape(format!(
            "W_Q is {} but x is {}: d_model {dm} and {} differ",
            fmt_shape(w.w_q),
            fmt_shape(x),
            x[2]
        )));
    }
    if dh == 0 {
        return Err(Error::Shape(format!(
            "W_Q is {}: d_head is 0, so the attention scale 1/sqrt(d_head) is undefined",
            fmt_shape(w.w_q)
        )));
    }
    let expect = [
        ("W_K", w.w_k, vec![h, dm, dh]),
        ("W_V", w.w_v, vec![h, dm, dh]),
        ("b_Q", w.b_q, vec![h, dh]),
        ("b_K", w.b_k, vec![h, dh]),
        ("b_V", w.b_v, vec![h, dh]),
        ("W_O", w.w_o, vec![h, dh, dm]),
        ("b_O", w.b_o, vec![dm]),
    ];
    for (name, shape, want) in expect {
        if shape != want.as_slice() {
            return Err(Error::Shape(format!(
                "{name} is {} but x {} and W_Q {} (H {h}, d_model {dm}, d_head {dh}) need {name} {}",
                fmt_shape(shape),
                fmt_shape(x),
                fmt_shape(w.w_q),
                fmt_shape(&want)
            )));
        }
    }
    let dims = LayerDims { batch: x[0], seq: x[1], d_model: dm, heads: h, d_head: dh };
    let (b, s) = (dims.batch, dims.seq);
    for (what, shape) in [("rows", vec![b, s]), ("q, k, v and z", vec![b, s, h, dh]), ("pattern", vec![b, h, s, s])] {
        element_count(&shape, &format!("attention_layer {what} (x {}, W_Q {})", fmt_shape(x), fmt_shape(w.w_q)))?;
    }
    Ok(dims)
}

/// Everything the layer computes, in float64, under TransformerLens's layouts.
#[derive(Clone, Debug)]
pub struct LayerActivations {
    /// `hook_q` \[B, S, H, d_head\].
    pub q: ArrayD<f64>,
    /// `hook_k` \[B, S, H, d_head\].
    pub k: ArrayD<f64>,
    /// `hook_v` \[B, S, H, d_head\].
    pub v: ArrayD<f64>,
    /// `hook_attn_scores` \[B, H, S, S\], `-inf` where masked.
    pub attn_scores: ArrayD<f64>,
    /// `hook_pattern` \[B, H, S, S\].
    pub pattern: ArrayD<f64>,
    /// `hook_z` \[B, S, H, d_head\].
    pub z: ArrayD<f64>,
    /// `hook_result` summed over heads plus `b_O`: the layer's output \[B, S, d_model\].
    pub out: ArrayD<f64>,
}

/// The attention layer in float64, with every intermediate.
pub fn attention_layer(x: ArrayViewD<'_, f64>, w: &AttentionWeights<ArrayViewD<'_, f64>>) -> Result<LayerActivations> {
    let dims = attention_layer_shapes(x.shape(), &w.map(|_, a| a.shape()))?;
    let LayerDims { batch, seq, d_model, heads, d_head } = dims;
    let shape_err = |e: ndarray::ShapeError| Error::Shape(e.to_string());
    let rows = x.to_shape((batch * seq, d_model)).map_err(shape_err)?;
    // q, k, v as [B, S, H, d_head]: one (B·S x d_model) @ (d_model x d_head) product per head.
    let project = |w: ArrayView3<'_, f64>, b: ArrayView2<'_, f64>| {
        let out = crate::reference::filled(&[batch, seq, heads, d_head], 0.0, "attention_layer q, k or v")?;
        let mut out = out.into_dimensionality::<ndarray::Ix4>().map_err(shape_err)?;
        for h in 0..heads {
            let y = rows.dot(&w.slice(s![h, .., ..])) + b.slice(s![h, ..]);
            let y = y.to_shape((batch, seq, d_head)).map_err(shape_err)?;
            out.slice_mut(s![.., .., h, ..]).assign(&y);
        }
        Ok::<_, Error>(out)
    };
    let q = project(rank(&w.w_q)?, rank(&w.b_q)?)?;
    let k = project(rank(&w.w_k)?, rank(&w.b_k)?)?;
    let v = project(rank(&w.w_v)?, rank(&w.b_v)?)?;
    let attn_scores = attention_scores(by_head(&q), by_head(&k), by_head(&v), true, dims.scale())?;
    let (z_by_head, pattern) =
        crate::reference::attention::attention(by_head(&q), by_head(&k), by_head(&v), true, dims.scale())?;
    let z = z_by_head.permuted_axes(vec![0, 2, 1, 3]).as_standard_layout().into_owned();
    // out = z [B·S, H·d_head] @ W_O [H·d_head, d_model] + b_O.
    let z_rows = z.to_shape((batch * seq, heads * d_head)).map_err(shape_err)?;
    let w_o = w.w_o.to_shape((heads * d_head, d_model)).map_err(shape_err)?;
    let b_o = rank::<Ix1>(&w.b_o)?;
    let out: Array2<f64> = z_rows.dot(&w_o) + b_o;
    let out = out.into_shape_with_order((batch, seq, d_model)).map_err(shape_err)?;
    Ok(LayerActivations {
        q: q.into_dyn(),
        k: k.into_dyn(),
        v: v.into_dyn(),
        attn_scores,
        pattern,
        z,
        out: out.into_dyn(),
    })
}

/// A view of `a` with a fixed rank (already checked by [`attention_layer_shapes`]).
fn rank<'a, D: ndarray::Dimension>(a: &'a ArrayViewD<'_, f64>) -> Result<ndarray::ArrayView<'a, f64, D>> {
    a.view().into_dimensionality::<D>().map_err(|e| Error::Shape(e.to_string()))
}

/// q, k or v \[B, S, H, d_head\] viewed heads first, \[B, H, S, d_head\], for the attention reference.
fn by_head(a: &Array4<f64>) -> ArrayViewD<'_, f64> {
    a.view().permuted_axes([0, 2, 1, 3]).into_dyn()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{array, Array};

    #[test]
    fn one_position_passes_v_through_w_o() {
        // With S = 1 the pattern is 1, so z = v = x W_V + b_V and out = z W_O + b_O.
        let x = array![[[1.0, 2.0]]].into_dyn();
        let w = AttentionWeights {
            w_q: Array::from_elem((1, 2, 1), 5.0).into_dyn(),
            w_k: Array::from_elem((1, 2, 1), -3.0).into_dyn(),
            w_v: array![[[0.5], [0.25]]].into_dyn(),
            b_q: array![[1.0]].into_dyn(),
            b_k: array![[1.0]].into_dyn(),
            b_v: array![[0.125]].into_dyn(),
            w_o: array![[[2.0, -1.0]]].into_dyn(),
            b_o: array![10.0, 20.0].into_dyn(),
        };
        let got = attention_layer(x.view(), &w.map(|_, a| a.view())).unwrap();
        assert_eq!(got.pattern.as_slice().unwrap(), &[1.0]);
        assert_eq!(got.z.as_slice().unwrap(), &[1.125]);
        assert_eq!(got.out.as_slice().unwrap(), &[12.25, 18.875]);
        assert_eq!(got.attn_scores.as_slice().unwrap(), &[16.0 * -8.0]);
    }
}
