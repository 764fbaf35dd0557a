//! Host reference for `attention_layer`, in float64: TransformerLens's attention block.
//!
//! For x \[B,S,d_model\] and per-head weights, `q = x W_Q[h] + b_Q[h]` (likewise k and v, each
//! \[B,S,H,d_head\] as TransformerLens caches them), causal attention with scale `1/sqrt(d_head)`
//! per head (see [`crate::reference::attention`]), `z` \[B,S,H,d_head\], and
//! `out = Σ_h z_h W_O[h] + b_O`. [`attention_layer_shapes`] ([`crate::spec::attention_layer`]) is the
//! one shape check, shared with the GPU op.

use ndarray::{s, Array2, Array4, ArrayD, ArrayView2, ArrayView3, ArrayViewD, Ix1};

pub use crate::spec::attention_layer::{attention_layer_shapes, AttentionWeights, LayerDims};

use crate::error::{Error, Result};
use crate::reference::attention::attention_scores;

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
