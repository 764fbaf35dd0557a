//! `attention_layer`'s weights (under TransformerLens's names, generic over what holds them), its
//! sizes and its one shape check, shared by the GPU op, the model and the float64 reference.

use crate::error::{element_count, fmt_shape, Error, Result};

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
